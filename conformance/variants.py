"""Part C: optimized and quantized outputs in the real runtimes, scored by real accuracy.

Every fixture folder holding a held-out split (`x_test.npy` images, `y_test.npy` labels; the
trained digits models, fixtures/scripts/make_digits_fixtures.py) is converted once per VARIANT
and target, run by that target's runtime on the whole split, and scored by top-1 accuracy
against the labels. A case passes when the accuracy is at most the variant's bound below the
framework's own accuracy on the split (`keras_test_accuracy` in meta.json). The table also shows
each file's size and gzip-compressed size.

Adding a variant is one line in VARIANTS: a name, the mdeploy subcommand and flags (the model,
`--to`, `-o` and `--quiet` are added), and the accepted accuracy drop.
"""

from __future__ import annotations

import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import FAIL, FIXED, KNOWN, PASS, Case, CaseError, error_line, run_mdeploy, shorten, table
from fixtures import Fixture, discover
from targets import Target, base_targets, output_bytes, output_size

CONVERT_TIMEOUT = 600.0


@dataclass(frozen=True)
class Variant:
    name: str
    args: list  # the mdeploy subcommand and its flags
    max_drop: float  # accepted top-1 accuracy drop below the framework's, as a fraction


VARIANTS = [
    Variant("float", ["convert"], 0.0),
    Variant("prune50", ["optimize", "--prune", "0.5"], 0.03),
    Variant("prune50-layer", ["optimize", "--prune", "0.5", "--prune-scope", "layer"], 0.03),
    Variant("cluster16", ["optimize", "--cluster", "16"], 0.03),
    Variant("cluster16-int8", ["optimize", "--cluster", "16", "--int8"], 0.03),
]


@dataclass
class Row:
    case: Case
    accuracy: float | None = None
    reference: float | None = None
    bytes: int | None = None
    gzip_bytes: int | None = None


def scored(root: Path) -> list[Fixture]:
    """Fixtures with a held-out split to score on."""
    return [
        fx
        for fx in discover(root)
        if (fx.dir / "x_test.npy").is_file() and (fx.dir / "y_test.npy").is_file()
    ]


def case_id(fx: Fixture, target: Target, v: Variant) -> str:
    return f"{fx.id}:{target.name}+{v.name}"


def run(root, mdeploy, targets, known, only, work: Path, jobs: int) -> list[Row]:
    jobs_list = [
        (fx, t, v)
        for fx in scored(root)
        for t in base_targets(targets)
        for v in VARIANTS
        if only is None or only in case_id(fx, t, v)
    ]
    if not jobs_list:
        return []
    print(f"variants: {len(jobs_list)} cases ({', '.join(v.name for v in VARIANTS)})", flush=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda j: run_case(*j, mdeploy, known, work), jobs_list))


def reference_accuracy(fx: Fixture) -> float:
    meta = json.loads((fx.dir / "meta.json").read_text())
    return float(meta["keras_test_accuracy"])


def run_case(fx: Fixture, target: Target, v: Variant, mdeploy, known, work: Path) -> Row:
    cid = case_id(fx, target, v)
    row = Row(Case(cid, extra={"fixture": fx.id, "target": target.name, "variant": v.name}))
    out = work / "variants" / cid.replace("/", "__").replace(":", "__") / target.out_name
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        row.reference = reference_accuracy(fx)
        args = [v.args[0], str(fx.model), *v.args[1:], "--to", target.to_format, "-o", str(out)]
        done = run_mdeploy(mdeploy, [*args, "--quiet"], CONVERT_TIMEOUT)
        if done.code != 0:
            raise CaseError(
                f"{v.args[0]} exit {done.code}: {shorten(done.first_lines(), fx.dir, out.parent)}"
            )
        row.bytes = output_size(out)
        row.gzip_bytes = len(gzip.compress(output_bytes(out), compresslevel=6, mtime=0))
        x = np.load(fx.dir / "x_test.npy", allow_pickle=False)
        y = np.load(fx.dir / "y_test.npy", allow_pickle=False)
        try:
            got = target.run(out, [x])
        except CaseError:
            raise
        except Exception as err:  # the runtime refused the file: that is the finding
            raise CaseError(f"{target.name} runtime: {error_line(err)}") from err
        pred = np.asarray(got[0]).reshape(len(y), -1).argmax(axis=1)
        row.accuracy = float((pred == y).mean())
    except (CaseError, OSError, ValueError, KeyError) as err:
        problem = str(err) if isinstance(err, CaseError) else error_line(err)
        row.case = known.settle(row.case, False, problem)
        return row
    row.case.extra.update(
        accuracy=row.accuracy, reference=row.reference, bytes=row.bytes, gzip_bytes=row.gzip_bytes
    )
    drop = row.reference - row.accuracy
    # One sample of slack: the runtimes' float rounding may flip a near-tie.
    ok = drop <= v.max_drop + 1.0 / len(y) + 1e-12
    detail = "" if ok else f"top-1 {row.accuracy:.4f} is {drop:.4f} below {row.reference:.4f}"
    row.case = known.settle(row.case, ok, detail)
    return row


def report(rows: list[Row]) -> None:
    if not rows:
        return
    print("\n== Part C: optimized and quantized variants, top-1 accuracy on the held-out split ==")
    status = {PASS: "pass", FIXED: "pass (fixed)", KNOWN: "known", FAIL: "FAIL"}
    lines = []
    for r in rows:
        c = r.case
        fixture, rest = c.id.split(":", 1)
        target, variant = rest.split("+", 1)
        acc = "-" if r.accuracy is None else f"{r.accuracy * 100:.2f}%"
        ref = "-" if r.reference is None else f"{r.reference * 100:.2f}%"
        result = status.get(c.status, c.status) + (f": {c.detail}" if c.detail else "")
        lines.append(
            [
                fixture,
                target,
                variant,
                acc,
                ref,
                "-" if r.bytes is None else str(r.bytes),
                "-" if r.gzip_bytes is None else str(r.gzip_bytes),
                result[:100],
            ]
        )
    print(
        table(
            ["fixture", "target", "variant", "top-1", "framework", "bytes", "gzip", "result"], lines
        )
    )
    bounds = ", ".join(f"{v.name} {v.max_drop * 100:g}%" for v in VARIANTS)
    print(f"pass = top-1 at most this far below the framework's (plus one sample): {bounds}")
