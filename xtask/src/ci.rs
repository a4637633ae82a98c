//! `cargo xtask ci`: everything CI checks, in order, stopping at the first failure.

use crate::{conformance, util};
use anyhow::Result;

/// `args` go to the conformance step (e.g. `--skip-node-tests`).
pub fn run(args: &[String]) -> Result<()> {
    let repo = util::repo_root();
    let checks: [(&str, &[&str]); 4] = [
        ("cargo fmt", &["fmt", "--all", "--", "--check"]),
        (
            "codegen --check",
            &["run", "-q", "-p", "xtask", "--", "codegen", "--check"],
        ),
        (
            "cargo clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("cargo test", &["test", "--workspace"]),
    ];
    for (i, (step, cargo_args)) in checks.iter().enumerate() {
        util::header(&format!("ci {}/5: {step}", i + 1));
        util::run(step, util::cargo().args(*cargo_args).current_dir(&repo))?;
    }
    util::header("ci 5/5: conformance");
    conformance::run(args)?;
    eprintln!("\nci: all checks passed");
    Ok(())
}
