#!/usr/bin/env python3
"""mdeploy serve with the real clients: every fixture served by one `mdeploy serve` and asked
through each API (TF Serving REST `instances` and `inputs`, KServe v2 REST binary and JSON via
tritonclient.http, KServe v2 gRPC via tritonclient.grpc, TF Serving gRPC via
tensorflow-serving-api), its outputs compared with the framework's; then bad requests, TLS and
bearer-token auth (serve_checks.py). Started by `cargo xtask conformance` with its own venv
(requirements-tf.txt and tensorflow-serving-api, in the TensorFlow venv); see README.md. Exit status: 0 when every failure is listed in
known-failures.txt, 1 otherwise."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# TensorFlow's and gRPC's start-up chatter (no GPU, absl not initialized) is noise here.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import fixtures  # noqa: E402
import serve_checks  # noqa: E402
import serve_clients  # noqa: E402
from common import (  # noqa: E402
    FAIL,
    FIXED,
    KNOWN,
    PASS,
    REL_TOL,
    SKIPPED,
    Case,
    CaseError,
    KnownFailures,
    compare_outputs_rel,
    error_line,
    fmt_num,
    table,
)
from serve_server import Server, ServerError  # noqa: E402

LOAD_TIMEOUT = 900.0  # every fixture loaded and warmed up by a debug build, one after another
JOBS = 2


@dataclass
class Served:
    fixture: fixtures.Fixture
    name: str  # the model's name on the server


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mdeploy", type=Path, required=True, help="the mdeploy binary to test")
    p.add_argument("--repo", type=Path, required=True, help="the repository root")
    p.add_argument(
        "--only",
        help="run only cases whose id contains this (e.g. onnx/mlp, :serve-tfs, serve:bad)",
    )
    p.add_argument("--fixtures", type=Path, help="fixtures folder (default <repo>/fixtures)")
    p.add_argument(
        "--skip-checks", action="store_true", help="only the fixtures, no bad-input/TLS/auth checks"
    )
    p.add_argument("--list-failures", action="store_true", help="end with known-failures lines")
    return p.parse_args(argv)


def model_name(fx: fixtures.Fixture) -> str:
    """`keras/normalization/model.h5` → `keras-normalization-model_h5`: one URL path segment."""
    return fx.id.replace("/", "-").replace(".", "_")


def build_root(found: list[fixtures.Fixture], root: Path) -> list[Served]:
    """MODEL_ROOT/NAME/1/ per fixture: a link to its model file inside the version folder, or
    the version folder itself a link to its model folder (SavedModel, TF.js)."""
    served = []
    for fx in found:
        if fx.model is None:
            continue
        name = model_name(fx)
        version = root / name / "1"
        version.parent.mkdir(parents=True)
        if fx.model.is_dir():
            version.symlink_to(fx.model.resolve(), target_is_directory=True)
        else:
            version.mkdir()
            # Copies, not links: mdeploy refuses a file a model names (external data) whose
            # real path leaves the model's folder, as a link into the fixtures would.
            for f in companions(fx):
                shutil.copyfile(f, version / f.name)
        served.append(Served(fx, name))
    return served


def companions(fx: fixtures.Fixture) -> list[Path]:
    """The model file and the files it needs beside it (ONNX external data): every file of the
    fixture folder but its inputs, outputs, metadata and other model files."""
    others = set(fixtures.MODEL_NAMES) - {fx.model.name}
    return [fx.model] + [
        f
        for f in sorted(fx.dir.iterdir())
        if f.is_file() and f != fx.model and f.name not in others
        and f.suffix not in (".npy", ".json")
    ]


def case_ids(s: Served) -> list[str]:
    return [f"{s.fixture.id}:serve-{api}" for api, _ in serve_clients.APIS]


def run_fixture(server: Server, s: Served, load_error: str | None, known, only) -> list[Case]:
    wanted = [i for i in case_ids(s) if only is None or only in i]
    cases = []
    try:
        if load_error is not None:
            raise CaseError(f"not served: {load_error}")
        inputs = fixtures.numbered(s.fixture.dir, "input")
        expected = fixtures.numbered(s.fixture.dir, "expected")
        meta = serve_clients.metadata(server, s.name)
    except Exception as err:
        problem = str(err) if isinstance(err, CaseError) else error_line(err)
        return [known.settle(Case(i), False, problem[:300]) for i in wanted]
    tol = max(REL_TOL, fixtures.source_tolerance(s.fixture))
    for api, call in serve_clients.APIS:
        case_id = f"{s.fixture.id}:serve-{api}"
        if case_id not in wanted:
            continue
        case = Case(case_id, extra={"fixture": s.fixture.id, "api": api})
        if api == "tfs-rest-instances" and not rows_apply(inputs, expected):
            cases.append(rows_not_applicable(server, s, meta, inputs, expected, case))
            continue
        try:
            got = call(server, s.name, meta, inputs)
            case.max_abs, case.rel, worst = compare_outputs_rel(got, expected)
        except CaseError as err:
            cases.append(known.settle(case, False, str(err)))
            continue
        except Exception as err:
            cases.append(known.settle(case, False, error_line(err)[:300]))
            continue
        ok = case.rel <= tol
        cases.append(
            known.settle(case, ok, "" if ok else f"output {worst}: rel {case.rel:.2e} > {tol:g}")
        )
    serve_clients.close_clients()
    return cases


def rows_apply(inputs: list, expected: list) -> bool:
    """TF Serving's row format splits every input and output along one shared first dimension."""
    return (
        serve_clients.batch_of(inputs) is not None and serve_clients.batch_of(expected) is not None
    )


def rows_not_applicable(server, s: Served, meta, inputs, expected, case: Case) -> Case:
    """A model the row format cannot carry: when its inputs do share a first dimension (only the
    outputs do not), TF Serving answers 400 naming the columnar format, and so must we."""
    case.status = SKIPPED
    if serve_clients.batch_of(inputs) is None:
        case.detail = "n/a: the inputs do not share a first dimension (row format)"
        return case
    try:
        serve_clients.tfs_rest_instances(server, s.name, meta, inputs)
        got = "HTTP 200"
    except CaseError as err:
        got = str(err)
    if got.startswith("HTTP 400"):
        case.detail = "n/a: the outputs do not share a first dimension; 400 as TF Serving"
    else:
        case.status = FAIL
        case.detail = f"outputs without a shared first dimension: expected HTTP 400, got {got}"
    return case


def run_fixtures(mdeploy: Path, fixture_root: Path, known, only, work: Path) -> list[Case]:
    found = [
        fx
        for fx in fixtures.discover(fixture_root)
        if only is None or any(only in f"{fx.id}:serve-{api}" for api, _ in serve_clients.APIS)
    ]
    if not found:
        return []
    served = build_root(found, work / "models")
    print(f"serve: {len(served)} fixtures under {fixture_root}, one server", flush=True)
    server = Server(mdeploy, work / "models", [])
    try:
        start = time.monotonic()
        server.start()
        states = server.wait_models([s.name for s in served], LOAD_TIMEOUT)
        ready = sum(v is None for v in states.values())
        print(f"serve: {ready}/{len(served)} models serving after {time.monotonic() - start:.0f} s")
        with ThreadPoolExecutor(max_workers=JOBS) as pool:
            results = pool.map(
                lambda s: run_fixture(server, s, states[s.name], known, only), served
            )
            cases = [c for r in results for c in r]
        if not server.alive():
            raise ServerError(f"the server exited during the run: {server.log_tail()}")
        return cases
    finally:
        server.stop()


def result_text(case: Case, width: int = 110) -> str:
    return fixtures.result_text(case, width)


def report(cases: list[Case], title: str) -> None:
    print(f"\n== {title} ==")
    if not cases:
        print("(none)")
        return
    rows = []
    for c in cases:
        subject, _, api = c.id.rpartition(":")
        rows.append([subject, api, result_text(c), fmt_num(c.rel)])
    print(table(["fixture / check", "api", "result", f"rel (pass <= {REL_TOL:g})"], rows))


def per_api(cases: list[Case], title: str) -> None:
    counts: dict[str, list[int]] = {}
    for c in cases:
        api = c.id.rpartition(":")[2].removeprefix("serve-")
        row = counts.setdefault(api, [0, 0, 0, 0])
        row[{PASS: 0, FIXED: 0, FAIL: 1, KNOWN: 2}.get(c.status, 3)] += 1
    print(f"\n== serve: {title} per API ==")
    print(
        table(
            ["api", "passed", "failed", "known", "n/a"],
            [[api, *map(str, v)] for api, v in sorted(counts.items())],
        )
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    repo, mdeploy = args.repo.resolve(), args.mdeploy.resolve()
    known = KnownFailures(Path(__file__).resolve().parent / "known-failures.txt")
    work = Path(tempfile.mkdtemp(prefix="mdeploy-serve-"))
    began = time.monotonic()
    cases: list[Case] = []
    checks: list[Case] = []
    try:
        cases = run_fixtures(
            mdeploy, args.fixtures or repo / "fixtures", known, args.only, work
        )
        report(cases, "serve: fixtures × APIs")
        if not args.skip_checks:
            checks = serve_checks.run(mdeploy, repo, known, args.only, work)
            report(checks, "serve: bad requests, TLS, auth")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    all_cases = cases + checks
    per_api(cases, "fixtures")
    per_api(checks, "bad requests, TLS, auth")
    for c in all_cases:
        if c.status == FIXED:
            print(f"  WARNING {c.id} passes: fixed — remove it from {known.path.name}")
    if not args.only and not args.skip_checks:
        for case_id in known.unused():
            if ":serve-" in case_id or case_id.startswith("serve:"):
                print(f"  WARNING {known.path.name} lists {case_id}, which is no case of this run")
    failed = [c for c in all_cases if c.status == FAIL]
    t = {
        "passed": sum(c.status in (PASS, FIXED) for c in all_cases),
        "failed": len(failed),
        "known": sum(c.status == KNOWN for c in all_cases),
    }
    summary = repo / ".cache" / "conformance" / "serve-summary.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(
        json.dumps({"totals": t, "cases": [c.to_json() for c in all_cases]}, indent=1) + "\n"
    )
    verdict = "FAILED" if failed else "OK"
    print(
        f"\nserve conformance {verdict}: {t['passed']} passed, {t['failed']} failed, "
        f"{t['known']} known in {time.monotonic() - began:.0f} s (summary: {summary})"
    )
    if args.list_failures:
        print(f"\n# {len(failed)} unexpected failures, in known-failures.txt form:")
        for c in failed:
            print(f"{c.id} {c.detail[:160]}")
    if args.only and not all_cases:
        # `cargo xtask conformance --only` filters run.py's cases too: not an error here.
        print(f"serve.py: no serve case id contains '{args.only}'")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
