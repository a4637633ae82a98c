#!/usr/bin/env python3
"""mdeploy conformance: converted models run in the real runtimes.

Part A converts every fixture to every enabled target and compares the runtime's outputs with
the source framework's; Part B runs the ONNX backend node tests through mdeploy; Part C scores
optimized variants (pruned, clustered) of the trained fixtures by top-1 accuracy (variants.py).
Normally started by `cargo xtask conformance`, which installs the pinned runtimes; see README.md
beside this file. Exit status: 0 when every failure is listed in known-failures.txt, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures  # noqa: E402
import node_tests  # noqa: E402
import quantized  # noqa: E402
import targets as targets_mod  # noqa: E402
import variants  # noqa: E402
from common import FAIL, FIXED, KNOWN, PASS, KnownFailures  # noqa: E402

# Enabled targets (runners in targets.py); the quantized TF.js variants run on a few fixtures
# (targets.TFJS_QUANT_FIXTURES). Override with --targets or MDEPLOY_CONFORMANCE_TARGETS.
DEFAULT_TARGETS = os.environ.get(
    "MDEPLOY_CONFORMANCE_TARGETS", "onnx,tflite,tfjs,tfjs-int8,tfjs-uint16,tfjs-float16,saved_model,"
    "saved_model-tflite_converter,saved_model-tfjs_converter,saved_model-tf2onnx",
)
JOBS = 2  # conversions are subprocesses; the machines have two cores


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mdeploy", type=Path, required=True, help="the mdeploy binary to test")
    p.add_argument("--repo", type=Path, required=True, help="the repository root")
    p.add_argument(
        "--only", help="run only cases whose id contains this (e.g. onnx/, :tflite, node:test_conv)"
    )
    p.add_argument("--skip-node-tests", action="store_true", help="skip Part B")
    p.add_argument(
        "--skip-quantized",
        action="store_true",
        help="skip the quantized variants (int8, float16) of Part A",
    )
    p.add_argument(
        "--targets",
        default=DEFAULT_TARGETS,
        help=f"comma-separated targets of Part A (default {DEFAULT_TARGETS}; known: "
        f"{', '.join(targets_mod.TARGETS)})",
    )
    p.add_argument(
        "--list-failures",
        action="store_true",
        help="end with the unexpected failures as known-failures.txt lines, to review and paste",
    )
    p.add_argument("--fixtures", type=Path, help="fixtures folder (default <repo>/fixtures)")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the converted files in <repo>/.cache/conformance/out/",
    )
    return p.parse_args(argv)


def select_targets(names: str) -> list[targets_mod.Target]:
    chosen = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        if name not in targets_mod.TARGETS:
            sys.exit(f"run.py: unknown target '{name}' (known: {', '.join(targets_mod.TARGETS)})")
        chosen.append(targets_mod.TARGETS[name])
    return chosen


def work_dir(cache: Path, keep: bool) -> Path:
    if keep:
        out = cache / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        return out
    return Path(tempfile.mkdtemp(prefix="mdeploy-conformance-"))


def totals(cases) -> dict:
    return {
        "passed": sum(c.status in (PASS, FIXED) for c in cases),
        "failed": sum(c.status == FAIL for c in cases),
        "known": sum(c.status == KNOWN for c in cases),
    }


def print_totals(fixture_cases, node_cases, known: KnownFailures, stale: list[str]) -> dict:
    all_cases = fixture_cases + node_cases
    t = totals(all_cases)
    print("\n== Totals ==")
    print(f"  fixtures:   {_line(totals(fixture_cases))}")
    print(f"  node tests: {_line(totals(node_cases))} (unsupported and skipped not counted)")
    for c in all_cases:
        if c.status == FIXED:
            print(f"  WARNING {c.id} passes: fixed — remove it from {known.path.name}")
    for case_id in stale:
        print(
            f"  WARNING {known.path.name} lists {case_id}, which is no converted case of this run"
        )
    unexpected = [c for c in all_cases if c.status == FAIL]
    verdict = "FAILED" if unexpected else "OK"
    print(f"\nconformance {verdict}: {_line(t)}")
    return t


def print_failure_lines(cases) -> None:
    failed = [c for c in cases if c.status == FAIL]
    print(f"\n# {len(failed)} unexpected failures, in known-failures.txt form:")
    for c in failed:
        print(f"{c.id} {c.detail[:160]}")


def should_have_run(case_id: str, args, chosen) -> bool:
    """Whether a known-failures id names a case this run converted (a filtered run checks none)."""
    if args.only:
        return False
    if case_id.startswith("node:"):
        return not args.skip_node_tests
    if "+" in case_id.rsplit(":", 1)[-1] and args.skip_quantized:
        return False
    target = case_id.rsplit(":", 1)[-1].split("@", 1)[0].split("+", 1)[0]
    return target in {t.name for t in chosen} | {"verify"}


def _line(t: dict) -> str:
    return f"{t['passed']} passed, {t['failed']} failed, {t['known']} known"


def write_summary(
    path: Path,
    args,
    fixture_results,
    node_summary,
    t: dict,
    variant_rows: list,
    quant_cases: list,
    pair_table: dict,
) -> None:
    all_cases = [c for r in fixture_results for c in r.cases] + quant_cases
    all_cases += [r.case for r in variant_rows]
    summary = {
        "mdeploy": str(args.mdeploy),
        "totals": t,
        "unexpected_failures": [c.id for c in all_cases if c.status == FAIL]
        + [f["id"] for f in (node_tests.all_failures(node_summary) if node_summary else [])],
        "fixtures": [
            {
                "fixture": r.fixture.id,
                "transposes": r.transposes,
                "op_types": r.op_types,
                "cases": [c.to_json() for c in r.cases],
            }
            for r in fixture_results
        ],
        "pairs": pair_table,
        "node_tests": node_summary,
        "variants": [r.case.to_json() for r in variant_rows],
        "quantized": [c.to_json() for c in quant_cases],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"summary: {path}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repo, mdeploy = args.repo.resolve(), args.mdeploy.resolve()
    if not os.access(mdeploy, os.X_OK):
        sys.exit(f"run.py: {mdeploy} is not an executable")
    cache = repo / ".cache" / "conformance"
    known = KnownFailures(Path(__file__).resolve().parent / "known-failures.txt")
    chosen = select_targets(args.targets)
    targets_mod.NODE_MODULES = cache / "node" / "node_modules"
    targets_mod.TF_PYTHON = cache / "tfvenv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    work = work_dir(cache, args.keep)
    try:
        fixture_results = fixtures.run(
            args.fixtures or repo / "fixtures", mdeploy, chosen, known, args.only, work, JOBS
        )
        fixtures.report(fixture_results)
        pair_table = fixtures.report_pairs(fixture_results)
        variant_rows = variants.run(
            args.fixtures or repo / "fixtures", mdeploy, chosen, known, args.only, work, JOBS
        )
        variants.report(variant_rows)
        quant_cases = (
            []
            if args.skip_quantized
            else quantized.run(
                args.fixtures or repo / "fixtures", mdeploy, chosen, known, args.only, work, JOBS
            )
        )
        node_cases = (
            [] if args.skip_node_tests else node_tests.run(mdeploy, known, args.only, work, JOBS)
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    node_summary = node_tests.summarize(node_cases) if not args.skip_node_tests else None
    if node_summary:
        node_tests.report(node_summary)
    fixture_cases = [c for r in fixture_results for c in r.cases] + quant_cases + [
        r.case for r in variant_rows
    ]
    stale = [i for i in known.unused() if should_have_run(i, args, chosen)]
    t = print_totals(fixture_cases, node_cases, known, stale)
    write_summary(
        cache / "summary.json", args, fixture_results, node_summary, t, variant_rows, quant_cases,
        pair_table,
    )
    if args.list_failures:
        print_failure_lines(fixture_cases + node_cases)
    if args.only and not fixture_cases and not node_cases:
        print(f"run.py: no case id contains '{args.only}'")
        return 1
    return 1 if t["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
