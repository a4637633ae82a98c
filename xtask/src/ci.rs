//! `cargo xtask ci`: everything CI checks, in order, stopping at the first failure.
//!
//! One compilation of the product's dependencies serves the README's main-job command
//! (`cargo run`), the lints, the tests and the conformance tier:
//! - xtask is a workspace of its own, so its dependencies never change the features of
//!   mdeploy's (a shared workspace made `cargo run` and `cargo test` compile tract separately);
//! - clippy runs as the compiler of mdeploy's own crates during the test build
//!   (`RUSTC_WORKSPACE_WRAPPER=clippy-driver`, which is what `cargo clippy` does for
//!   `cargo check`), so the dependencies are built once, in build mode, instead of once more in
//!   check mode. Cargo hashes the wrapper into mdeploy's crates only: dependencies built by
//!   `cargo run` are reused, and `cargo run` after CI rebuilds only mdeploy itself.

use crate::{conformance, util};
use anyhow::Result;
use std::process::Command;

/// `args` go to the conformance step (e.g. `--skip-node-tests`).
pub fn run(args: &[String]) -> Result<()> {
    let repo = util::repo_root();
    let xtask = repo.join("xtask").join("Cargo.toml");
    let xtask = xtask.to_string_lossy().into_owned();
    let lint_wrapper = clippy_wrapper();
    let mut checks: Vec<(&str, Vec<&str>, bool)> = vec![
        ("cargo fmt", vec!["fmt", "--all", "--", "--check"], false),
        (
            "cargo fmt (xtask)",
            vec!["fmt", "--manifest-path", &xtask, "--", "--check"],
            false,
        ),
        (
            "codegen --check",
            vec![
                "run",
                "-q",
                "--manifest-path",
                &xtask,
                "--",
                "codegen",
                "--check",
            ],
            false,
        ),
        (
            "cargo clippy (xtask)",
            vec![
                "clippy",
                "--manifest-path",
                &xtask,
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            false,
        ),
        (
            "cargo test (xtask)",
            vec!["test", "--manifest-path", &xtask],
            false,
        ),
    ];
    if let Lints::Separate = lint_wrapper {
        let clippy = [
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ];
        checks.push(("cargo clippy", clippy.to_vec(), false));
    }
    // Lints (through the wrapper, when there is one) and tests of mdeploy in one build.
    checks.push(("cargo test", vec!["test", "--workspace"], true));
    let total = checks.len() + 1;
    for (i, (step, cargo_args, lint)) in checks.iter().enumerate() {
        util::header(&format!("ci {}/{total}: {step}", i + 1));
        let mut cmd = util::cargo();
        cmd.args(cargo_args).current_dir(&repo);
        if *lint {
            lint_wrapper.apply(&mut cmd);
        }
        util::run(step, &mut cmd)?;
    }
    util::header(&format!("ci {total}/{total}: conformance"));
    conformance::run_with(args, &|cmd| lint_wrapper.apply(cmd))?;
    eprintln!("\nci: all checks passed");
    Ok(())
}

/// How the lints run: clippy-driver as the compiler of mdeploy's crates when it is installed,
/// a separate `cargo clippy` otherwise.
enum Lints {
    Wrapper(std::ffi::OsString),
    Separate,
}

impl Lints {
    fn apply(&self, cmd: &mut Command) {
        match self {
            // CLIPPY_ARGS is how cargo-clippy hands its `-- ARGS` to clippy-driver.
            Lints::Wrapper(driver) => {
                cmd.env("RUSTC_WORKSPACE_WRAPPER", driver).env(
                    "CLIPPY_ARGS",
                    "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__",
                );
            }
            Lints::Separate => {}
        }
    }
}

fn clippy_wrapper() -> Lints {
    let works = Command::new("clippy-driver")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        Lints::Wrapper("clippy-driver".into())
    } else {
        Lints::Separate
    }
}
