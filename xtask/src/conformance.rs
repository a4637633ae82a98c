//! `cargo xtask conformance`: build mdeploy, install the pinned runtimes into
//! `.cache/conformance/` (`venv`, `tfvenv` for TensorFlow and the serving clients, `node`), run
//! `conformance/run.py` with the runtimes venv's Python (it starts the TensorFlow venv's own),
//! then `conformance/serve.py` (mdeploy serve with the real clients) with the TensorFlow venv's.

use crate::util::{self, Exit};
use crate::{node, python};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const USAGE: &str = "usage: cargo xtask conformance [--only SUBSTR] [--skip-node-tests] \
[--skip-serve] [--targets LIST] [-- RUN_PY_ARGS]";

pub fn run(args: &[String]) -> Result<()> {
    run_with(args, &|_| {})
}

/// [`run`], with `setup` applied to the cargo command that builds mdeploy (CI passes the lint
/// wrapper its test build used, so this build is the same one).
pub fn run_with(args: &[String], setup: &dyn Fn(&mut std::process::Command)) -> Result<()> {
    let args = runner_args(args)?;
    let repo = util::repo_root();

    util::header("conformance 1/6: build mdeploy");
    let mdeploy = build_mdeploy(&repo, setup)?;

    util::header("conformance 2/6: Python runtimes (onnxruntime, ai-edge-litert, onnx)");
    let python = python::ensure_venv(&repo)?;

    util::header(
        "conformance 3/6: TensorFlow (SavedModel runtime, tf2onnx, tensorflowjs, serving clients)",
    );
    let tf_python = python::ensure_tf_venv(&repo)?;

    util::header("conformance 4/6: Node runtimes (@tensorflow/tfjs)");
    node::ensure_modules(&repo)?;

    util::header("conformance 5/6: run converted models in the real runtimes");
    let converted = util::run(
        "conformance run",
        Command::new(python)
            .arg(repo.join("conformance").join("run.py"))
            .arg("--mdeploy")
            .arg(&mdeploy)
            .arg("--repo")
            .arg(&repo)
            .args(args.run_py),
    );
    if args.skip_serve {
        return converted;
    }
    // Run even when step 5 failed, so one CI run reports both; step 5's failure comes first.
    util::header("conformance 6/6: mdeploy serve with the real clients (TF Serving, KServe)");
    let served = util::run(
        "serve conformance",
        Command::new(tf_python)
            .arg(repo.join("conformance").join("serve.py"))
            .arg("--mdeploy")
            .arg(&mdeploy)
            .arg("--repo")
            .arg(&repo)
            .args(args.serve),
    );
    converted.and(served)
}

/// What our flags mean for the two runners.
#[derive(Debug, Default, PartialEq)]
struct RunnerArgs {
    run_py: Vec<String>,
    /// `--only` goes to serve.py too.
    serve: Vec<String>,
    skip_serve: bool,
}

/// Checks our flags and turns them into run.py's and serve.py's; everything after `--` is
/// passed to run.py as is.
fn runner_args(args: &[String]) -> Result<RunnerArgs> {
    let mut out = RunnerArgs::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--skip-node-tests" => out.run_py.push(arg.clone()),
            "--skip-serve" => out.skip_serve = true,
            "--only" | "--targets" => {
                let Some(value) = iter.next() else {
                    return Err(Exit::usage(format!("{arg} needs a value\n{USAGE}")).into());
                };
                out.run_py.extend([arg.clone(), value.clone()]);
                if arg == "--only" {
                    out.serve.extend([arg.clone(), value.clone()]);
                }
            }
            "--" => out.run_py.extend(iter.by_ref().cloned()),
            _ if arg.starts_with("--only=") => {
                out.run_py.push(arg.clone());
                out.serve.push(arg.clone());
            }
            _ if arg.starts_with("--targets=") => out.run_py.push(arg.clone()),
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(Exit::usage(format!("unknown argument '{arg}'\n{USAGE}")).into()),
        }
    }
    Ok(out)
}

/// `cargo build --bin mdeploy` (dev profile); returns the binary's path. mdeploy has no
/// dev-dependencies and xtask is not in its workspace, so this resolves the features
/// `cargo run` and `cargo test` do: after either it is a no-op.
fn build_mdeploy(repo: &Path, setup: &dyn Fn(&mut std::process::Command)) -> Result<PathBuf> {
    // CARGO_TARGET_DIR is resolved against our working directory, as cargo itself would, and
    // handed to the child as an absolute path because the child runs from the repository root.
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::env::current_dir()?.join(dir),
        None => repo.join("target"),
    };
    let mut cmd = util::cargo();
    cmd.args(["build", "--bin", "mdeploy", "--manifest-path"])
        .arg(repo.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(repo);
    setup(&mut cmd);
    util::run("build mdeploy", &mut cmd)?;
    let bin = target_dir
        .join("debug")
        .join(format!("mdeploy{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "step 'build mdeploy' failed: cargo succeeded but {} is missing",
            bin.display()
        );
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::{runner_args, RunnerArgs};

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_pass_through_to_run_py() {
        let got = runner_args(&args(&[
            "--only",
            "node:",
            "--skip-node-tests",
            "--",
            "--keep",
        ]));
        assert_eq!(
            got.unwrap(),
            RunnerArgs {
                run_py: args(&["--only", "node:", "--skip-node-tests", "--keep"]),
                serve: args(&["--only", "node:"]),
                skip_serve: false,
            }
        );
        assert_eq!(
            runner_args(&args(&["--targets=onnx", "--skip-serve"])).unwrap(),
            RunnerArgs {
                run_py: args(&["--targets=onnx"]),
                serve: vec![],
                skip_serve: true,
            }
        );
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for bad in [&["--bogus"][..], &["--only"][..]] {
            let err = runner_args(&args(bad)).unwrap_err();
            assert_eq!(err.downcast_ref::<crate::util::Exit>().unwrap().code, 2);
        }
    }
}
