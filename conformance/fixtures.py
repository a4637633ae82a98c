"""Part A: every fixture under `fixtures/<source>/<name>/`, converted to every enabled target and
run in that target's real runtime, compared with what the source framework produced."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common import (
    FAIL,
    FIXED,
    KNOWN,
    PASS,
    REL_TOL,
    Case,
    CaseError,
    KnownFailures,
    compare_outputs_rel,
    error_line,
    fmt_num,
    run_mdeploy,
    shorten,
    table,
)
from targets import (
    TFJS_FLOAT16_TOL,
    TFJS_INT8_TOL,
    TFJS_UINT16_TOL,
    Target,
    tfjs_weight_ratio,
    tflite_op_counts,
)

MODEL_NAMES = ("model.onnx", "model.tflite", "model.h5", "model.keras", "model")
CONVERT_TIMEOUT = 600.0
# Fixtures with a dynamic batch: their .tflite, TF.js and SavedModel outputs are also run at
# batch 4 (cases `<id>:tflite@batch4`, `<id>:tfjs@batch4`, `<id>:saved_model@batch4`),
# the inputs' first row repeated to fill it; rows are independent, so the expected outputs are
# the framework's rows repeated the same way.
DYNAMIC_BATCH = ("onnx/dynamic_batch", "onnx/dynamo_cnn", "tfjs/graph_cnn", "tfjs/layers_keras3")
RESIZED_BATCH = 4


@dataclass
class Fixture:
    id: str  # "<source>/<name>"
    dir: Path
    model: Path | None


@dataclass
class FixtureResult:
    fixture: Fixture
    cases: list[Case] = field(default_factory=list)  # one per target, then "verify"
    transposes: int | None = None
    op_types: dict[str, int] = field(default_factory=dict)


def discover(root: Path) -> list[Fixture]:
    """`<root>/<source>/<name>/` with an `expected.npy` is a fixture (so `scripts/` is not). A
    folder holding several model files (Keras: `model.h5` and `model.keras`, same inputs and
    expected outputs) gives one fixture per file, `<source>/<name>/<file>`."""
    found = []
    for source in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for case in sorted(p for p in source.iterdir() if (p / "expected.npy").is_file()):
            models = [case / m for m in MODEL_NAMES if (case / m).exists()]
            if len(models) <= 1:
                model = models[0] if models else None
                found.append(Fixture(f"{source.name}/{case.name}", case, model))
            else:
                for model in models:
                    found.append(Fixture(f"{source.name}/{case.name}/{model.name}", case, model))
    return found


def source_tolerance(fx: Fixture) -> float:
    """The fixture's own rel tolerance (`meta.json` `rel_tolerance`): a quantized source (a
    TFLite model with int8 weights or activations) is only defined to within its quantization
    step, which the fixture script computes; 0 for every other fixture."""
    try:
        meta = json.loads((fx.dir / "meta.json").read_text())
    except (OSError, ValueError):
        return 0.0
    return float(meta.get("rel_tolerance") or 0.0)


def numbered(directory: Path, stem: str) -> list[np.ndarray]:
    """`stem.npy`, `stem_1.npy`, `stem_2.npy`… in order, up to the first missing one."""
    paths = [directory / f"{stem}.npy"]
    while (nxt := directory / f"{stem}_{len(paths)}.npy").is_file():
        paths.append(nxt)
    return [np.load(p, allow_pickle=False) for p in paths if p.is_file()]


def run(
    root: Path,
    mdeploy: Path,
    targets: list[Target],
    known: KnownFailures,
    only: str | None,
    work: Path,
    jobs: int,
) -> list[FixtureResult]:
    chosen = [fx for fx in discover(root) if case_ids(fx, targets, only)]
    names = ", ".join(t.name for t in targets)
    print(f"fixtures: {len(chosen)} under {root}, targets: {names}", flush=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(
            pool.map(lambda fx: run_fixture(fx, mdeploy, targets, known, only, work), chosen)
        )


def sizes(fx: Fixture) -> list[str]:
    """Labels of the fixture's extra input sizes: `sizes/<label>/` holds `input*.npy` and the
    framework's `expected*.npy` at other sizes of its run-time dimensions (a longer sequence,
    batch 1), so every output is also run there (cases `<id>:<target>@<label>`)."""
    root = fx.dir / "sizes"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "expected.npy").is_file())


def case_ids(fx: Fixture, targets: list[Target], only: str | None) -> list[str]:
    """The fixture's case ids (one per target and size, then verify) that `--only` selects."""
    ids = []
    for t in targets:
        if t.applies_to(fx.id):
            ids.append(f"{fx.id}:{t.name}")
            ids.extend(f"{fx.id}:{t.name}@{label}" for label in sizes(fx))
    for resizable in ("tflite", "tfjs", "saved_model"):
        if fx.id in DYNAMIC_BATCH and any(t.name == resizable for t in targets):
            ids.append(f"{fx.id}:{resizable}@batch{RESIZED_BATCH}")
    ids.append(f"{fx.id}:verify")
    return [i for i in ids if only is None or only in i]


def run_fixture(fx, mdeploy, targets, known, only, work) -> FixtureResult:
    result = FixtureResult(fx)
    out_dir = work / "fixtures" / fx.id.replace("/", "__")
    try:
        if fx.model is None:
            raise CaseError("no model file (" + ", ".join(MODEL_NAMES) + "/)")
        inputs, expected = numbered(fx.dir, "input"), numbered(fx.dir, "expected")
    except (CaseError, OSError, ValueError) as err:
        problem = str(err) if isinstance(err, CaseError) else error_line(err)
        result.cases = [known.settle(Case(i), False, problem) for i in case_ids(fx, targets, only)]
        return result

    wanted = case_ids(fx, targets, only)
    for target in targets:
        if f"{fx.id}:{target.name}" in wanted:
            out = out_dir / target.name / target.out_name
            result.cases.append(run_target(fx, target, inputs, expected, mdeploy, known, out))
            resized = f"{fx.id}:{target.name}@batch{RESIZED_BATCH}"
            if resized in wanted:
                result.cases.append(run_resized(fx, target, inputs, expected, known, out, resized))
            for label in sizes(fx):
                if f"{fx.id}:{target.name}@{label}" in wanted:
                    result.cases.append(run_at_size(fx, target, label, known, out))
    verify_out = out_dir / "verify" / "out.onnx"
    if f"{fx.id}:verify" in wanted:
        result.cases.append(run_verify(fx, mdeploy, known, verify_out))
    onnx_out = out_dir / "onnx" / "out.onnx"
    for produced in (onnx_out, verify_out):
        if produced.is_file():
            result.op_types = count_op_types(produced)
            result.transposes = result.op_types.get("Transpose", 0)
            break
    return result


def repeat_rows(a: np.ndarray, n: int) -> np.ndarray:
    """`a` with its first axis filled to `n` by repeating its rows in order."""
    return np.concatenate([a] * (n // len(a) + 1))[:n]


def run_resized(fx, target, inputs, expected, known, out: Path, case_id: str) -> Case:
    """The file converted for `target`, run again with the batch resized to RESIZED_BATCH."""
    case = Case(case_id, extra={"fixture": fx.id, "target": f"{target.name}@batch"})
    if not out.exists():
        return known.settle(case, False, "no converted file (the conversion failed)")
    try:
        got = target.run(out, [repeat_rows(x, RESIZED_BATCH) for x in inputs])
        want = [repeat_rows(e, RESIZED_BATCH) for e in expected]
        case.max_abs, case.rel, worst = compare_outputs_rel(got, want)
    except CaseError as err:
        return known.settle(case, False, str(err))
    except Exception as err:
        return known.settle(case, False, f"{target.name} runtime: {error_line(err)}")
    tol = max(REL_TOL, source_tolerance(fx))
    ok = case.rel <= tol
    return known.settle(case, ok, "" if ok else f"output {worst}: rel {case.rel:.2e} > {tol:g}")


def run_at_size(fx, target, label: str, known, out: Path) -> Case:
    """The file converted for `target`, run on the inputs of `sizes/<label>/`."""
    case = Case(f"{fx.id}:{target.name}@{label}", extra={"fixture": fx.id, "target": f"{target.name}@size"})
    if not out.exists():
        return known.settle(case, False, "no converted file (the conversion failed)")
    d = fx.dir / "sizes" / label
    try:
        got = target.run(out, numbered(d, "input"))
        case.max_abs, case.rel, worst = compare_outputs_rel(got, numbered(d, "expected"))
    except CaseError as err:
        return known.settle(case, False, str(err))
    except Exception as err:
        return known.settle(case, False, f"{target.name} runtime: {error_line(err)}")
    tol = max(target.tolerance or REL_TOL, source_tolerance(fx))
    ok = case.rel <= tol
    return known.settle(case, ok, "" if ok else f"output {worst}: rel {case.rel:.2e} > {tol:g}")


def run_target(fx, target, inputs, expected, mdeploy, known, out: Path) -> Case:
    case = Case(f"{fx.id}:{target.name}", extra={"fixture": fx.id, "target": target.name})
    out.parent.mkdir(parents=True, exist_ok=True)
    converted = run_mdeploy(
        mdeploy,
        ["convert", str(fx.model), "--to", target.to_format, "-o", str(out), "--quiet"]
        + list(target.convert_args),
        CONVERT_TIMEOUT,
    )
    converted.stderr = shorten(converted.stderr, fx.dir, out.parent)
    if converted.code != 0:
        return known.settle(
            case, False, f"convert exit {converted.code}: {converted.first_lines()}"
        )
    if target.name == "tflite":
        try:
            case.extra["transposes"] = tflite_op_counts(out).get("TRANSPOSE", 0)
        except Exception as err:  # the run below reports the same problem
            case.extra["transposes_error"] = error_line(err)
    if target.size_ratio:
        ratio = tfjs_weight_ratio(out)
        if ratio is not None:
            case.extra["size_ratio"] = round(ratio, 4)
    try:
        got = target.run(out, inputs)
        case.max_abs, case.rel, worst = compare_outputs_rel(got, expected)
    except CaseError as err:
        return known.settle(case, False, str(err))
    except Exception as err:  # the runtime refused the file: that is the finding
        problem = shorten(f"{target.name} runtime: {error_line(err)}", out.parent)
        return known.settle(case, False, problem)
    tol = max(target.tolerance or REL_TOL, source_tolerance(fx))
    ok = case.rel <= tol
    return known.settle(case, ok, "" if ok else f"output {worst}: rel {case.rel:.2e} > {tol:g}")


def run_verify(fx, mdeploy, known, out: Path) -> Case:
    case = Case(f"{fx.id}:verify", extra={"fixture": fx.id, "target": "verify"})
    out.parent.mkdir(parents=True, exist_ok=True)
    converted = run_mdeploy(
        mdeploy,
        ["convert", str(fx.model), "--to", "onnx", "-o", str(out), "--verify", "--quiet"],
        CONVERT_TIMEOUT,
    )
    converted.stderr = shorten(converted.stderr, fx.dir, out.parent)
    ok = converted.code == 0
    return known.settle(case, ok, "" if ok else f"exit {converted.code}: {converted.first_lines()}")


def count_op_types(path: Path) -> dict[str, int]:
    """Op types in an ONNX model, subgraphs (If/Loop/Scan bodies) included."""
    import onnx

    counts: Counter[str] = Counter()

    def walk(graph):
        for node in graph.node:
            counts[node.op_type] += 1
            for attr in node.attribute:
                for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                    walk(sub)

    try:
        walk(onnx.load(str(path), load_external_data=False).graph)
    except Exception:  # an unreadable output already fails its case
        return {}
    return dict(sorted(counts.items()))


def result_text(case: Case | None, width: int = 110) -> str:
    """The table's result cell; long reasons are cut (summary.json has them whole)."""
    if case is None:
        return "-"
    text = {
        PASS: "pass",
        FIXED: "pass (fixed — remove from known-failures)",
        FAIL: f"FAIL: {case.detail}",
        KNOWN: f"known: {case.detail}",
    }.get(case.status, f"{case.status}: {case.detail}")
    return text if len(text) <= width else text[: width - 1] + "…"


def report(results: list[FixtureResult]) -> None:
    rows = []
    for r in results:
        verify = next((c for c in r.cases if c.id.endswith(":verify")), None)
        verify_text = "-" if verify is None else result_text(verify).split(":")[0]
        targets = [c for c in r.cases if c is not verify] or [None]
        for case in targets:
            target = case.id.rsplit(":", 1)[1] if case else "-"
            rel = fmt_num(case.rel) if case else "-"
            transposes = "-" if r.transposes is None else str(r.transposes)
            if case and "transposes" in case.extra:
                transposes = str(case.extra["transposes"])
            elif case and target != "onnx":
                transposes = "-"
            size = "-"
            if case and "size_ratio" in case.extra:
                size = f"{case.extra['size_ratio']:.3f}"
            rows.append(
                [r.fixture.id, target, result_text(case), rel, transposes, size, verify_text]
            )
        if verify is not None and verify.status in (FAIL, KNOWN, FIXED):
            rows.append([r.fixture.id, "verify", result_text(verify), "-", "", "", ""])
    print("\n== Part A: fixtures × targets ==")
    if not rows:
        print("(no fixtures)")
        return
    print(
        table(
            [
                "fixture",
                "target",
                "result",
                f"rel (pass <= {REL_TOL:g})",
                "transposes",
                "weights/f32",
                "verify",
            ],
            rows,
        )
    )
    print(
        "rel = max|got - expected| / max(max|expected|, 1e-6) over all outputs; "
        "transposes = Transpose nodes in the produced ONNX (TRANSPOSE ops in the .tflite on tflite "
        "rows); @batch4 = the .tflite (or TF.js model) run at batch 4; verify = `convert --to onnx --verify`; "
        "weights/f32 = shard bytes of a quantized TF.js output over its weights in float32 "
        f"(tfjs-int8 rows pass at rel <= {TFJS_INT8_TOL:g}, tfjs-uint16 at <= {TFJS_UINT16_TOL:g}, "
        f"tfjs-float16 at <= {TFJS_FLOAT16_TOL:g})"
    )


def source_format(fx: Fixture) -> str:
    """The format a fixture's model is in, as the support matrix names it."""
    name = fx.model.name if fx.model else ""
    if name == "model.h5":
        return "Keras .h5"
    if name == "model.keras":
        return "Keras .keras"
    return {
        "onnx": "ONNX",
        "saved_model": "SavedModel",
        "tflite": "TFLite",
        "tfjs": "TF.js",
        "digits": "Keras .h5",
    }.get(fx.id.split("/", 1)[0], fx.id.split("/", 1)[0])


PAIR_TARGETS = ("onnx", "tflite", "tfjs", "saved_model")


def pairs(results: list[FixtureResult]) -> dict[str, dict[str, dict[str, int]]]:
    """Per source format and target: the fixtures tried, those whose every row for the target
    (extra sizes and batches included) passed, and the rows passed of all rows."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for r in results:
        src = out.setdefault(source_format(r.fixture), {})
        for target in PAIR_TARGETS:
            rows = [
                c for c in r.cases if c.id.rsplit(":", 1)[1].split("@", 1)[0] == target
            ]
            if not rows:
                continue
            cell = src.setdefault(target, {"fixtures": 0, "all_pass": 0, "rows": 0, "passed": 0})
            passed = sum(c.status in (PASS, FIXED) for c in rows)
            cell["fixtures"] += 1
            cell["all_pass"] += passed == len(rows)
            cell["rows"] += len(rows)
            cell["passed"] += passed
    return out


def report_pairs(results: list[FixtureResult]) -> dict:
    """Prints the every-pair table (source format × target) the README's support matrix quotes."""
    p = pairs(results)
    if not p:
        return p
    rows = []
    for src in sorted(p):
        cells = []
        for target in PAIR_TARGETS:
            c = p[src].get(target)
            cells.append(
                "-" if c is None else f"{c['all_pass']}/{c['fixtures']} ({c['passed']}/{c['rows']} rows)"
            )
        rows.append([src, *cells])
    print("\n== Every pair: fixtures whose every row passed / fixtures (rows passed / rows) ==")
    print(table(["source \\ target", *PAIR_TARGETS], rows))
    return p
