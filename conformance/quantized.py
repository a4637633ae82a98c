"""Quantized variants of Part A: every fixture converted with `--int8` (dynamic range: int8
weights, float activations), `--float16` and `--int8 --calibration` (full integer, calibrated on
the fixture's own input), run in each target's real runtime, compared with
the source framework's outputs under a tolerance derived from the quantization; and, for the
trained fixtures (a folder with `x_test.npy`, `y_test.npy`, `calibration.npy`), top-1 accuracy on
the test set and file sizes against the float conversion, with full-integer int8 too.

Case ids: `<fixture>:<target>+int8`, `+float16`, `+int8full`, and for trained fixtures
`<fixture>:<target>+accuracy` (the Done-when figures).

Tolerances (pass iff rel <= REL and every output's cosine >= COS):
- float16: every weight is rounded to 11 significant bits (relative error <= 2^-11 = 4.9e-4);
  through the handful of weighted layers of a fixture (<= ~10) the output error stays under
  ~10 x 4.9e-4: rel <= 5e-3, cosine >= 0.9999.
- int8 (symmetric, per channel): a weight's error is <= scale/2 = max|w_c|/254 (0.4% of its
  channel's largest weight; ~0.1% rms for uniform rounding); summed over a layer's products and
  compounded over the layers this gives a few percent of the output range at worst: rel <= 5e-2,
  cosine >= 0.999 (an rms error of ~4.5% of the output's norm).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from common import (
    SKIPPED,
    Case,
    CaseError,
    KnownFailures,
    compare_rel,
    error_line,
    fmt_num,
    run_mdeploy,
    shorten,
    table,
)
from fixtures import CONVERT_TIMEOUT, discover, numbered, source_tolerance
from targets import Target, base_targets, output_size

# variant -> (mdeploy flags, rel tolerance, cosine floor)
VARIANTS = {
    "int8": (["--int8"], 5e-2, 0.999),
    "float16": (["--float16"], 5e-3, 0.9999),
    # Full integer, calibrated on the fixture's own input (so ranges fit the compared data):
    # every activation is rounded to 8 bits (relative error <= 1/255 of its range, ~0.1% rms)
    # on top of the int8 weights, through every layer: rel <= 1e-1, cosine >= 0.999.
    "int8full": (["--int8", "--calibration", "{calibration}"], 1e-1, 0.999),
}
# Done-when bounds on the trained fixtures (top-1 points vs float, size ratio vs float).
ACCURACY_DROP = {"int8": 0.5, "int8full": 1.0, "float16": 0.0}
SIZE_RATIO = {"int8": 0.3, "int8full": 0.3, "float16": 0.55}
# The size bounds are stated for the trained digits CNN (38k parameters); on smaller models the
# fixed per-tensor costs (scales, int32 biases, Q/DQ nodes and their names) weigh more, so
# other trained fixtures only print their ratios.
SIZE_CHECKED = ("digits/cnn/",)


def trained(fx) -> bool:
    return all((fx.dir / f).is_file() for f in ("x_test.npy", "y_test.npy", "calibration.npy"))


# TF.js keeps float activations (its loader dequantizes stored weights): no full integer.
NOT_FOR = {"tfjs": ("int8full",)}


def variants_for(target: Target) -> list[str]:
    return [v for v in VARIANTS if v not in NOT_FOR.get(target.to_format, ())]


def case_ids(fx, targets: list[Target], only: str | None) -> list[str]:
    ids = [f"{fx.id}:{t.name}+{v}" for t in targets for v in variants_for(t)]
    if trained(fx):
        ids += [f"{fx.id}:{t.name}+accuracy" for t in targets]
    return [i for i in ids if only is None or only in i]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    return float(a @ b / max(na * nb, 1e-300))


def convert(mdeploy, model: Path, target: Target, out: Path, flags: list[str]):
    out.parent.mkdir(parents=True, exist_ok=True)
    args = ["convert", str(model), "--to", target.to_format, "-o", str(out), "--quiet", *flags]
    if "--int8" in flags or "--float16" in flags:
        args.append("--no-accuracy")  # the runtime comparison below is the check
    return run_mdeploy(mdeploy, args, CONVERT_TIMEOUT)


def calibration_file(fx, inputs: list, out_dir: Path) -> Path:
    """The fixture's inputs as a calibration set: input.npy itself for one input, else an .npz
    with `arr_0`, `arr_1`… in input order."""
    if len(inputs) == 1:
        return fx.dir / "input.npy"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "calibration.npz"
    np.savez(path, *inputs)
    return path


def run_variant(fx, target, variant, inputs, expected, mdeploy, known, out: Path) -> Case:
    flags, rel_tol, cos_floor = VARIANTS[variant]
    # A quantized source is only defined to within its own quantization step.
    rel_tol = max(rel_tol, source_tolerance(fx))
    if "{calibration}" in flags and len({np.shape(x)[:1] for x in inputs}) > 1:
        # Samples run along axis 0 of every input; inputs of different leading sizes (qlinear's
        # operands) are not a calibration set, so there is no full-integer model to check.
        case = Case(f"{fx.id}:{target.name}+{variant}", extra={"fixture": fx.id, "target": target.name})
        case.status = SKIPPED
        case.detail = "the inputs have different leading sizes: not a calibration set"
        return case
    if "{calibration}" in flags:
        calib = str(calibration_file(fx, inputs, out.parent))
        flags = [calib if f == "{calibration}" else f for f in flags]
    case = Case(f"{fx.id}:{target.name}+{variant}", extra={"fixture": fx.id, "target": target.name})
    converted = convert(mdeploy, fx.model, target, out, flags)
    if converted.code != 0:
        msg = shorten(converted.first_lines(), fx.dir, out.parent)
        return known.settle(case, False, f"convert exit {converted.code}: {msg}")
    try:
        got = target.run(out, inputs)
        if len(got) != len(expected):
            raise CaseError(f"{len(got)} outputs, expected {len(expected)}")
        worst_rel, worst_cos, worst_abs = 0.0, 1.0, 0.0
        for g, e in zip(got, expected):
            max_abs, rel = compare_rel(g, e)
            worst_rel, worst_abs = max(worst_rel, rel), max(worst_abs, max_abs)
            if np.asarray(e).dtype.kind == "f":
                worst_cos = min(worst_cos, cosine(g, e))
        case.rel, case.max_abs = worst_rel, worst_abs
        case.extra["cosine"] = worst_cos
    except CaseError as err:
        return known.settle(case, False, str(err))
    except Exception as err:
        return known.settle(case, False, f"{target.name} runtime: {error_line(err)}")
    ok = worst_rel <= rel_tol and worst_cos >= cos_floor
    why = f"rel {worst_rel:.2e} (<= {rel_tol:g}), cosine {worst_cos:.6f} (>= {cos_floor:g})"
    return known.settle(case, ok, "" if ok else why)


def top1(target: Target, path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the first output, the test set run in batches of 64 (int8 inputs are
    quantized with the model's parameters by the runner)."""
    hits = 0
    for s in range(0, len(x), 64):
        out = np.asarray(target.run(path, [x[s : s + 64]])[0])
        hits += int((out.reshape(len(out), -1).argmax(-1) == y[s : s + 64]).sum())
    return hits / len(x)


def run_accuracy(fx, target, mdeploy, known, out_dir: Path) -> tuple[Case, list]:
    """The Done-when figures: float, int8 dynamic, int8 full integer, float16 on the test set."""
    case = Case(f"{fx.id}:{target.name}+accuracy", extra={"fixture": fx.id, "target": target.name})
    x, y = np.load(fx.dir / "x_test.npy"), np.load(fx.dir / "y_test.npy")
    calib = fx.dir / "calibration.npy"
    ext = Path(target.out_name).suffix
    forms = {
        "float": [],
        "int8": ["--int8"],
        "int8full": ["--int8", "--calibration", str(calib)],
        "float16": ["--float16"],
    }
    forms = {k: v for k, v in forms.items() if k not in NOT_FOR.get(target.to_format, ())}
    rows, problems, figures = [], [], {}
    for form, flags in forms.items():
        out = out_dir / f"{form}{ext}"
        converted = convert(mdeploy, fx.model, target, out, flags)
        if converted.code != 0:
            problems.append(f"{form}: convert exit {converted.code}: {converted.first_lines(1)}")
            continue
        try:
            acc = top1(target, out, x, y)
        except Exception as err:
            problems.append(f"{form}: {target.name} runtime: {error_line(err)}")
            continue
        figures[form] = (acc, output_size(out))
    base = figures.get("float")
    for form, (acc, size) in figures.items():
        ratio = size / base[1] if base else None
        drop = (base[0] - acc) * 100 if base else None
        rows.append([fx.id, target.name, form, f"{acc * 100:.2f}%", str(size),
                     "-" if ratio is None else f"{ratio:.3f}",
                     "-" if drop is None else f"{drop:+.2f}"])
        if form in ACCURACY_DROP and base:
            if drop > ACCURACY_DROP[form] + 1e-9:
                problems.append(f"{form}: top-1 {acc * 100:.2f}% is {drop:.2f} points under float")
            if fx.id.startswith(SIZE_CHECKED) and ratio > SIZE_RATIO[form]:
                problems.append(f"{form}: size {ratio:.3f}x of float > {SIZE_RATIO[form]}x")
    case.extra["figures"] = {k: {"top1": a, "bytes": b} for k, (a, b) in figures.items()}
    return known.settle(case, not problems, "; ".join(problems)), rows


def run(root: Path, mdeploy: Path, targets: list[Target], known: KnownFailures, only, work: Path,
        jobs: int) -> list[Case]:
    targets = base_targets(targets)
    chosen = [fx for fx in discover(root) if fx.model is not None and case_ids(fx, targets, only)]
    print(f"quantized variants: {len(chosen)} fixtures", flush=True)
    accuracy_rows: list = []

    def one(fx) -> list[Case]:
        wanted = case_ids(fx, targets, only)
        try:
            inputs, expected = numbered(fx.dir, "input"), numbered(fx.dir, "expected")
        except (OSError, ValueError) as err:
            return [known.settle(Case(i), False, error_line(err)) for i in wanted]
        cases = []
        base = work / "quantized" / fx.id.replace("/", "__")
        for t in targets:
            for v in variants_for(t):
                if f"{fx.id}:{t.name}+{v}" in wanted:
                    out = base / f"{t.name}_{v}" / t.out_name
                    cases.append(run_variant(fx, t, v, inputs, expected, mdeploy, known, out))
            if f"{fx.id}:{t.name}+accuracy" in wanted:
                case, rows = run_accuracy(fx, t, mdeploy, known, base / f"{t.name}_accuracy")
                cases.append(case)
                accuracy_rows.extend(rows)
        return cases

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = [c for cs in pool.map(one, chosen) for c in cs]
    report(results, sorted(accuracy_rows))
    return results


def report(cases: list[Case], accuracy_rows: list) -> None:
    rows = []
    for c in cases:
        if c.id.endswith("+accuracy"):
            continue
        fixture, variant = c.id.rsplit(":", 1)
        status = c.status if not c.detail else f"{c.status}: {c.detail}"
        rows.append([fixture, variant, status[:110], fmt_num(c.rel),
                     "-" if "cosine" not in c.extra else f"{c.extra['cosine']:.6f}"])
    print("\n== Quantized variants (int8 dynamic range, float16, full integer int8) ==")
    if rows:
        print(table(["fixture", "target+variant", "result", "rel", "cosine"], rows))
    if accuracy_rows:
        print("\n== Trained fixtures: top-1 on x_test, size vs float ==")
        print(table(["fixture", "target", "form", "top-1", "bytes", "size/float", "drop (points)"],
                    accuracy_rows))
        for c in cases:
            if c.id.endswith("+accuracy") and c.detail:
                print(f"  {c.id}: {c.status}: {c.detail}")
