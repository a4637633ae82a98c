"""Part B: the ONNX backend node tests shipped in the `onnx` package, each converted ONNX → ONNX
by mdeploy and run in onnxruntime, compared with the outputs the test ships.

A case whose ONNX conversion passes and whose graph keeps an op with an operand computed at run
time (`Op::Dynamic`: the tests feed shapes, axes, pads, k, … as graph inputs) or control flow
(`Op::If`, `Op::Loop`: If, Loop and Scan that do not fold away) is also converted to TFLite and
TF.js and run in LiteRT and @tensorflow/tfjs, as the cases `node:<name>:tflite` and
`node:<name>:tfjs`: those are the only node tests where the channels-last writers meet such ops
(static ones are covered by the fixtures)."""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import (
    FAIL,
    FIXED,
    KNOWN,
    PASS,
    SKIPPED,
    UNSUPPORTED,
    Case,
    CaseError,
    KnownFailures,
    check_outputs_allclose,
    error_line,
    run_mdeploy,
    shorten,
    unsupported_ops,
)
from targets import run_onnx, run_tflite, run_tfjs

CONVERT_TIMEOUT = 120.0
EXIT_UNSUPPORTED = 4

SKIP_NON_TENSOR = "non-tensor I/O"
SKIP_ORT_CANNOT_RUN = "onnxruntime cannot run the original"
SKIP_ORT_DISAGREES = "onnxruntime disagrees with the expected outputs on the original too"

# The targets a case with run-time operands is also converted to: (`--to`, `-o` name, runner).
DYNAMIC_TARGETS = (("tflite", "out.tflite", run_tflite), ("tfjs", "out_tfjs", run_tfjs))
# `mdeploy inspect --ir` prints such a node as `node <name> = Dynamic(<member> ...)`, and
# control flow as `= If(If {...})` / `= Loop(Loop {...})`.
DYNAMIC_NODE = re.compile(r"= (Dynamic|If|Loop)\(")


def node_root() -> Path:
    import onnx

    return Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data" / "node"


def case_dirs(only: str | None) -> list[Path]:
    root = node_root()
    dirs = sorted(p for p in root.iterdir() if (p / "model.onnx").is_file())
    return [d for d in dirs if only is None or any(only in i for i in case_ids(d.name))]


def case_ids(name: str) -> list[str]:
    return [f"node:{name}"] + [f"node:{name}:{t}" for t, _, _ in DYNAMIC_TARGETS]


def run(mdeploy: Path, known: KnownFailures, only: str | None, work: Path, jobs: int) -> list[Case]:
    dirs = case_dirs(only)
    print(f"node tests: {len(dirs)} cases from {node_root()}", flush=True)
    start, cases = time.monotonic(), []

    def run_one(d: Path) -> list[Case]:
        return run_dir(d, mdeploy, known, work, only)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for i, dir_cases in enumerate(pool.map(run_one, dirs), 1):
            cases.extend(dir_cases)
            if i % 250 == 0 or i == len(dirs):
                print(f"  {i}/{len(dirs)} ({time.monotonic() - start:.0f} s)", flush=True)
    return cases


def run_dir(
    case_dir: Path, mdeploy: Path, known: KnownFailures, work: Path, only: str | None
) -> list[Case]:
    """The ONNX case, then (when it passed and keeps run-time operands) the TFLite and TF.js
    cases."""
    case = run_case(case_dir, mdeploy, known, work)
    cases = [case]
    if case.status not in (PASS, FIXED) or not has_dynamic_ops(case_dir, mdeploy):
        return cases
    inputs = load_tensors(case_dir / "test_data_set_0", "input")
    expected = load_tensors(case_dir / "test_data_set_0", "output")
    for target, out_name, runner in DYNAMIC_TARGETS:
        case_id = f"{case.id}:{target}"
        if only is None or only in case_id or only in case.id:
            sub = run_on_target(
                Case(case_id), case_dir, (target, out_name, runner), mdeploy, known, work, inputs,
                expected,
            )
            cases.append(sub)
    return cases


def has_dynamic_ops(case_dir: Path, mdeploy: Path) -> bool:
    shown = run_mdeploy(mdeploy, ["inspect", "--ir", str(case_dir / "model.onnx")], CONVERT_TIMEOUT)
    return shown.code == 0 and bool(DYNAMIC_NODE.search(shown.stdout))


def run_on_target(
    case: Case,
    case_dir: Path,
    target: tuple,
    mdeploy: Path,
    known: KnownFailures,
    work: Path,
    inputs: list,
    expected: list,
) -> Case:
    name, out_name, runner = target
    out = work / "node" / case_dir.name / name / out_name
    out.parent.mkdir(parents=True, exist_ok=True)
    args = ["convert", str(case_dir / "model.onnx"), "--to", name, "-o", str(out), "--quiet"]
    converted = run_mdeploy(mdeploy, args, CONVERT_TIMEOUT)
    converted.stderr = shorten(converted.stderr, case_dir, out.parent)
    if converted.code == EXIT_UNSUPPORTED:
        # The second line names the op and why (the first only counts them).
        case.status, case.detail = UNSUPPORTED, converted.first_lines(2)
        case.extra["unsupported_ops"] = unsupported_ops(converted.stderr)
        return case
    if converted.code != 0:
        return known.settle(
            case, False, f"convert exit {converted.code}: {converted.first_lines()}"
        )
    try:
        got = runner(out, inputs)
        if name == "tfjs":
            got = as_tfjs_holds(got, expected)
        check_outputs_allclose(got, expected)
        return known.settle(case, True)
    except CaseError as err:
        problem = str(err)
    except Exception as err:  # the runtime refused or failed on our output
        problem = shorten(f"{name}: {error_line(err)}", out.parent)
    return known.settle(case, False, problem)


def as_tfjs_holds(got: list, expected: list) -> list:
    """TF.js has int32 for every integer type and float32 for every float type: its outputs
    are compared in the expected dtype when the kinds agree (the values are still exact or
    within the tolerance)."""
    out = []
    for g, e in zip(got, expected):
        g, e = np.asarray(g), np.asarray(e)
        same_kind = (g.dtype.kind in "iu" and e.dtype.kind in "iu") or (
            g.dtype.kind == "f" and e.dtype.kind == "f"
        )
        out.append(g.astype(e.dtype) if same_kind and g.dtype != e.dtype else g)
    return out + got[len(expected) :]


def run_case(case_dir: Path, mdeploy: Path, known: KnownFailures, work: Path) -> Case:
    import onnx

    case = Case(f"node:{case_dir.name}")
    model = onnx.load(str(case_dir / "model.onnx"))
    if not plain_tensor_io(model.graph):
        case.status, case.detail = SKIPPED, SKIP_NON_TENSOR
        return case
    inputs = load_tensors(case_dir / "test_data_set_0", "input")
    expected = load_tensors(case_dir / "test_data_set_0", "output")

    out = work / "node" / case_dir.name / "out.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    args = ["convert", str(case_dir / "model.onnx"), "--to", "onnx", "-o", str(out), "--quiet"]
    converted = run_mdeploy(mdeploy, args, CONVERT_TIMEOUT)
    converted.stderr = shorten(converted.stderr, case_dir, out.parent)
    if converted.code == EXIT_UNSUPPORTED:
        case.status, case.detail = UNSUPPORTED, converted.first_lines(1)
        ops = unsupported_ops(converted.stderr)
        case.extra["unsupported_ops"] = ops or sorted({n.op_type for n in model.graph.node})
        return case
    if converted.code != 0:
        return known.settle(
            case, False, f"convert exit {converted.code}: {converted.first_lines()}"
        )

    got = None
    try:
        got = run_onnx(out, inputs)
        check_outputs_allclose(got, expected)
        return known.settle(case, True)
    except CaseError as err:
        problem = str(err)
    except Exception as err:  # onnxruntime refused or failed on our output
        problem = shorten(f"onnxruntime: {error_line(err)}", out.parent)
    skip = runtime_problem(case_dir / "model.onnx", inputs, expected, got)
    if skip:
        case.status, case.detail, case.error = SKIPPED, skip, problem
        return case
    return known.settle(case, False, problem)


def runtime_problem(original: Path, inputs: list, expected: list, got: list | None) -> str | None:
    """When our output failed: is onnxruntime itself unable to pass this case on the original
    model? Then the case says nothing about mdeploy."""
    try:
        reference = run_onnx(original, inputs)
    except Exception:
        return SKIP_ORT_CANNOT_RUN
    try:
        check_outputs_allclose(reference, expected)
        return None  # onnxruntime passes on the original: the failure is ours
    except CaseError:
        pass
    if got is None:
        return None
    try:
        check_outputs_allclose(got, reference)  # ours agrees with onnxruntime on the original
        return SKIP_ORT_DISAGREES
    except CaseError:
        return None


def plain_tensor_io(graph) -> bool:
    initializers = {t.name for t in graph.initializer}
    values = [v for v in graph.input if v.name not in initializers] + list(graph.output)
    return all(v.type.WhichOneof("value") == "tensor_type" for v in values)


def load_tensors(directory: Path, prefix: str) -> list:
    import onnx
    from onnx import numpy_helper

    paths = sorted(directory.glob(f"{prefix}_*.pb"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    arrays = []
    for path in paths:
        tensor = onnx.TensorProto()
        tensor.ParseFromString(path.read_bytes())
        arrays.append(numpy_helper.to_array(tensor))
    return arrays


# ---------------------------------------------------------------- report


def category(case: Case) -> str:
    if case.status == SKIPPED:
        return f"skipped: {case.detail}"
    return {PASS: "passed", FIXED: "passed", FAIL: "failed", KNOWN: "known"}.get(
        case.status, case.status
    )


def target_of(case: Case) -> str:
    """`onnx` for `node:<name>`, else the suffix of `node:<name>:<target>`."""
    parts = case.id.split(":")
    return parts[2] if len(parts) > 2 else "onnx"


def summarize(cases: list[Case]) -> dict:
    """The ONNX cases' summary, with the TFLite/TF.js cases of run-time operands summarized
    apart under `targets`."""
    summary = summarize_cases([c for c in cases if target_of(c) == "onnx"])
    summary["targets"] = {
        t: summarize_cases([c for c in cases if target_of(c) == t]) for t, _, _ in DYNAMIC_TARGETS
    }
    return summary


def all_failures(summary: dict) -> list[dict]:
    """Failures of the ONNX cases and of the TFLite/TF.js ones."""
    subs = summary.get("targets", {}).values()
    return summary["failures"] + [f for t in subs for f in t["failures"]]


def summarize_cases(cases: list[Case]) -> dict:
    counts = Counter(category(c) for c in cases)
    converted = counts["passed"] + counts["failed"] + counts["known"]
    ops = Counter(op for c in cases for op in c.extra.get("unsupported_ops", []))
    return {
        "cases": len(cases),
        "counts": dict(sorted(counts.items())),
        "pass_rate": counts["passed"] / converted if converted else None,
        "failures": [{"id": c.id, "error": c.detail} for c in cases if c.status == FAIL],
        "fixed": [c.id for c in cases if c.status == FIXED],
        "unsupported_ops": dict(ops.most_common()),
        "results": [c.to_json() for c in cases],
    }


def report(summary: dict, top: int = 25) -> None:
    print("\n== Part B: ONNX backend node tests (onnx → mdeploy → onnxruntime) ==")
    report_counts(summary, top)
    for target, sub in summary.get("targets", {}).items():
        if sub["cases"]:
            print(f"\n  -- run-time operands on {target} (node:<name>:{target}) --")
            report_counts(sub, top, indent="  ")


def report_counts(summary: dict, top: int, indent: str = "") -> None:
    width = max(map(len, summary["counts"]), default=0)
    for name, count in summary["counts"].items():
        print(f"{indent}  {name:<{width}} {count:>5}")
    rate = summary["pass_rate"]
    passed, converted = summary["counts"].get("passed", 0), _converted(summary)
    print(
        f"{indent}  pass rate among converted cases: {passed}/{converted}"
        + (f" = {rate:.1%}" if rate is not None else "")
    )
    failures = summary["failures"]
    if failures:
        print(f"\n{indent}  failures ({len(failures)}):")
        for f in failures:
            print(f"{indent}    {f['id']}: {f['error']}")
    if summary["unsupported_ops"]:
        print(f"\n{indent}  top unsupported op types (cases):")
        for op, count in list(summary["unsupported_ops"].items())[:top]:
            print(f"{indent}    {op:<32} {count:>4}")


def _converted(summary: dict) -> int:
    counts = summary["counts"]
    return counts.get("passed", 0) + counts.get("failed", 0) + counts.get("known", 0)
