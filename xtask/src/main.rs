//! `cargo xtask <task>`: the project's automation, in Rust so a fresh machine needs only cargo
//! (plus python3 and node for the conformance tier, whose packages the task installs itself).
//!
//! Adding a task is one entry in [`TASKS`] (plus its `mod` line).

mod bench;
mod bench_any;
mod bench_floor;
mod bench_latency;
mod bench_serve;
mod bench_serve_report;
mod bench_tflite;
mod ci;
mod codegen;
mod conformance;
mod man;
mod node;
mod python;
mod util;

use std::process::ExitCode;

/// A task gets the arguments after its name.
type Task = fn(&[String]) -> anyhow::Result<()>;

const TASKS: &[(&str, &str, Task)] = &[
    (
        "ci",
        "fmt --check, clippy -D warnings, tests, then conformance [conformance flags]",
        ci::run,
    ),
    (
        "conformance",
        "run converted fixtures and ONNX node tests in the real runtimes, then mdeploy serve \
         with the real clients [--only SUBSTR] [--skip-node-tests] [--skip-serve] \
         [--targets onnx,tflite] [-- run.py args]",
        conformance::run,
    ),
    (
        "bench",
        "wall time and peak RSS of conversions (release build), with reference-tool ratios, \
         and serving throughput against FastAPI + onnxruntime [serve: only the serving section; any: \
         only MobileNetV2 read from TFLite and TF.js, after a full run made its files; latency: \
         only the converted files' latency; floor: only ResNet50 converted to every target \
         against the time to read its variables]",
        bench::run,
    ),
    (
        "man",
        "man pages into target/man (mdeploy.1 and one per subcommand)",
        man::run,
    ),
    (
        "codegen",
        "regenerate src/gen/ from schemas/ [--check]",
        codegen::run,
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        usage();
        return ExitCode::from(2);
    };
    if name == "-h" || name == "--help" || name == "help" {
        usage();
        return ExitCode::SUCCESS;
    }
    let Some((_, _, task)) = TASKS.iter().find(|(n, _, _)| n == name) else {
        eprintln!("xtask: unknown task '{name}'\n");
        usage();
        return ExitCode::from(2);
    };
    match task(&args[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nxtask {name}: {err:#}");
            let code = err.downcast_ref::<util::Exit>().map_or(1, |s| s.code);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

fn usage() {
    eprintln!("usage: cargo xtask <task> [args]\n\ntasks:");
    for (name, help, _) in TASKS {
        eprintln!("  {name:<12} {help}");
    }
}
