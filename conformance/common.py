"""Shared pieces of the conformance runner: case results, known failures, running mdeploy,
comparing arrays, printing tables."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Part A (fixtures): pass iff max|got - exp| / max(max|exp|, REL_FLOOR) <= REL_TOL.
REL_TOL = 1e-4
REL_FLOOR = 1e-6
# Part B (ONNX node tests): the onnx backend test runner's own default tolerance.
NODE_RTOL = 1e-3
NODE_ATOL = 1e-5

# Final statuses of a case.
PASS, FAIL, KNOWN, FIXED = "pass", "fail", "known", "fixed"
UNSUPPORTED, SKIPPED = "unsupported", "skipped"


@dataclass
class Case:
    """One checked thing: a fixture on a target, a fixture's --verify run, or a node test."""

    id: str
    status: str = PASS
    detail: str = ""  # why it failed / was skipped; the known-failures reason for KNOWN
    error: str = ""  # the observed error of a KNOWN case
    rel: float | None = None
    max_abs: float | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"id": self.id, "status": self.status}
        for key in ("detail", "error", "rel", "max_abs"):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = value
        out.update(self.extra)
        return out


class CaseError(Exception):
    """A case failed for a reason worth one line in the report."""


class KnownFailures:
    """`conformance/known-failures.txt`: lines `<id> <reason...>`, `#` starts a comment."""

    def __init__(self, path: Path):
        self.path = path
        self.reasons: dict[str, str] = {}
        self.seen: set[str] = set()
        if path.exists():
            for line in path.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    case_id, _, reason = line.partition(" ")
                    self.reasons[case_id] = reason.strip() or "(no reason given)"

    def settle(self, case: Case, passed: bool, error: str = "") -> Case:
        """Sets the final status of a case that either passed or failed with `error`."""
        reason = self.reasons.get(case.id)
        if reason is not None:
            self.seen.add(case.id)
        if passed:
            case.status = PASS if reason is None else FIXED
            case.detail = "" if reason is None else "fixed — remove from known-failures"
        elif reason is None:
            case.status, case.detail = FAIL, error
        else:
            case.status, case.detail, case.error = KNOWN, reason, error
        return case

    def unused(self) -> list[str]:
        """Listed ids that no case of this run settled (passed or failed)."""
        return sorted(i for i in self.reasons if i not in self.seen)


@dataclass
class Converted:
    code: int
    stderr: str
    stdout: str = ""

    def first_lines(self, n: int = 3) -> str:
        return first_lines(self.stderr, n) or f"exit {self.code} with no message"


def run_mdeploy(mdeploy: Path, args: list[str], timeout: float) -> Converted:
    try:
        proc = subprocess.run(
            [str(mdeploy), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return Converted(code=-1, stderr=f"timed out after {timeout:.0f} s")
    return Converted(code=proc.returncode, stderr=proc.stderr, stdout=proc.stdout)


def first_lines(text: str, n: int = 3) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[:n])


def error_line(err: BaseException) -> str:
    return first_lines(f"{type(err).__name__}: {err}", 1)


def shorten(text: str, *dirs: Path) -> str:
    """Drops the case's own folders from messages: `/long/path/model.onnx` → `model.onnx`."""
    for d in dirs:
        text = text.replace(f"{d}{os.sep}", "")
    return text


UNSUPPORTED_RE = re.compile(r"unsupported op\s+(\S+)\s+at node")


def unsupported_ops(stderr: str) -> list[str]:
    """The op types of mdeploy's `unsupported op <OpType> at node '<name>': <reason>` lines."""
    return sorted(set(UNSUPPORTED_RE.findall(stderr)))


# ---------------------------------------------------------------- comparing arrays


def _is_float(dtype: np.dtype) -> bool:
    # ml_dtypes' bfloat16 / float8 / float4 are not np.floating subclasses but are floats.
    return dtype.kind in "fc" or (dtype.kind == "V" and "float" in dtype.name)


def _as_compared(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "c":
        return a.astype(np.complex128)
    if _is_float(a.dtype):
        return a.astype(np.float64)
    if a.dtype.kind == "V":  # ml_dtypes int4 / uint4 and the like
        return a.astype(np.int64)
    return a


def _nan_mismatch(got: np.ndarray, exp: np.ndarray) -> bool:
    return bool(np.any(np.isnan(got) != np.isnan(exp)))


def compare_rel(got: np.ndarray, exp: np.ndarray) -> tuple[float, float]:
    """(max abs error, rel) of one output; raises CaseError on a shape or NaN mismatch."""
    got, exp = np.asarray(got), np.asarray(exp)
    if got.shape != exp.shape:
        raise CaseError(f"shape {list(got.shape)}, expected {list(exp.shape)}")
    g, e = _as_compared(got), _as_compared(exp)
    if g.dtype.kind in "OSUb" or e.dtype.kind in "OSUb":
        return (0.0, 0.0) if np.array_equal(g, e) else (float("inf"), float("inf"))
    if g.dtype.kind != "c" and e.dtype.kind != "c":
        g, e = g.astype(np.float64), e.astype(np.float64)
    if _nan_mismatch(g, e):
        raise CaseError("NaN in different places")
    finite = ~np.isnan(e)
    if not finite.any():
        return 0.0, 0.0
    diff = np.abs(g[finite] - e[finite])
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = max(float(np.abs(e[finite]).max()) if diff.size else 0.0, REL_FLOOR)
    return max_abs, max_abs / scale


def compare_outputs_rel(got: list, exp: list) -> tuple[float, float, int]:
    """Worst (max abs, rel, output index) over all outputs; raises CaseError on a count, shape
    or NaN mismatch."""
    if len(got) != len(exp):
        raise CaseError(f"{len(got)} outputs, expected {len(exp)}")
    worst = (0.0, 0.0, 0)
    for i, (g, e) in enumerate(zip(got, exp)):
        try:
            max_abs, rel = compare_rel(g, e)
        except CaseError as err:
            raise CaseError(f"output {i}: {err}") from None
        if rel > worst[1]:
            worst = (max_abs, rel, i)
    return worst


def check_allclose(got: np.ndarray, exp: np.ndarray) -> None:
    """Node-test comparison: same shape and dtype; floats allclose(NODE_RTOL, NODE_ATOL) with
    NaN equal to NaN; everything else exact. Raises CaseError."""
    got, exp = np.asarray(got), np.asarray(exp)
    if got.dtype == np.uint8 and exp.dtype.kind == "V" and exp.dtype.itemsize == 1:
        got = got.view(exp.dtype)  # onnxruntime hands float8 outputs back as their raw bytes
    if got.shape != exp.shape:
        raise CaseError(f"shape {list(got.shape)}, expected {list(exp.shape)}")
    if got.dtype != exp.dtype and not (got.dtype.kind in "OSU" and exp.dtype.kind in "OSU"):
        raise CaseError(f"dtype {got.dtype}, expected {exp.dtype}")
    g, e = _as_compared(got), _as_compared(exp)
    if _is_float(got.dtype):
        if not np.allclose(g, e, rtol=NODE_RTOL, atol=NODE_ATOL, equal_nan=True):
            bad = ~np.isclose(g, e, rtol=NODE_RTOL, atol=NODE_ATOL, equal_nan=True)
            diff = np.abs(g - e)[bad]
            worst = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("nan")
            raise CaseError(f"{int(bad.sum())}/{g.size} values differ, max abs err {worst:.3g}")
    elif g.dtype.kind in "OSU" or e.dtype.kind in "OSU":
        if [_text(x) for x in g.ravel()] != [_text(x) for x in e.ravel()]:
            raise CaseError("strings differ")
    elif not np.array_equal(g, e):
        raise CaseError(f"{int((g != e).sum())}/{g.size} values differ")


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def check_outputs_allclose(got: list, exp: list) -> None:
    if len(got) != len(exp):
        raise CaseError(f"{len(got)} outputs, expected {len(exp)}")
    for i, (g, e) in enumerate(zip(got, exp)):
        try:
            check_allclose(g, e)
        except CaseError as err:
            raise CaseError(f"output {i}: {err}") from None


# ---------------------------------------------------------------- printing


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), "-+-".join("-" * w for w in widths)]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(lines)


def fmt_num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}"
