"""Part B: the ONNX backend node tests shipped in the `onnx` package, each converted ONNX → ONNX
by mdeploy and run in onnxruntime, compared with the outputs the test ships."""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
from targets import run_onnx

CONVERT_TIMEOUT = 120.0
EXIT_UNSUPPORTED = 4

SKIP_NON_TENSOR = "non-tensor I/O"
SKIP_ORT_CANNOT_RUN = "onnxruntime cannot run the original"
SKIP_ORT_DISAGREES = "onnxruntime disagrees with the expected outputs on the original too"


def node_root() -> Path:
    import onnx

    return Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data" / "node"


def case_dirs(only: str | None) -> list[Path]:
    root = node_root()
    dirs = sorted(p for p in root.iterdir() if (p / "model.onnx").is_file())
    return [d for d in dirs if only is None or only in f"node:{d.name}"]


def run(mdeploy: Path, known: KnownFailures, only: str | None, work: Path, jobs: int) -> list[Case]:
    dirs = case_dirs(only)
    print(f"node tests: {len(dirs)} cases from {node_root()}", flush=True)
    start, cases = time.monotonic(), []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for i, case in enumerate(pool.map(lambda d: run_case(d, mdeploy, known, work), dirs), 1):
            cases.append(case)
            if i % 250 == 0 or i == len(dirs):
                print(f"  {i}/{len(dirs)} ({time.monotonic() - start:.0f} s)", flush=True)
    return cases


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


def summarize(cases: list[Case]) -> dict:
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
    width = max(map(len, summary["counts"]), default=0)
    for name, count in summary["counts"].items():
        print(f"  {name:<{width}} {count:>5}")
    rate = summary["pass_rate"]
    passed, converted = summary["counts"].get("passed", 0), _converted(summary)
    print(
        f"  pass rate among converted cases: {passed}/{converted}"
        + (f" = {rate:.1%}" if rate is not None else "")
    )
    if summary["failures"]:
        print(f"\n  failures ({len(summary['failures'])}):")
        for f in summary["failures"]:
            print(f"    {f['id']}: {f['error']}")
    if summary["unsupported_ops"]:
        print("\n  top unsupported op types (cases):")
        for op, count in list(summary["unsupported_ops"].items())[:top]:
            print(f"    {op:<32} {count:>4}")


def _converted(summary: dict) -> int:
    counts = summary["counts"]
    return counts.get("passed", 0) + counts.get("failed", 0) + counts.get("known", 0)
