//! `cargo xtask man`: the man pages into target/man (mdeploy.1, mdeploy-convert.1, …).
//!
//! The pages come from the binary's hidden `man` subcommand, not from linking mdeploy here:
//! xtask depending on mdeploy would compile tract again with xtask's unified feature set.

use crate::util;
use anyhow::Result;

pub fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        return Err(util::Exit::usage(format!("man takes no arguments (got '{arg}')")).into());
    }
    let repo = util::repo_root();
    let out_dir = repo.join("target").join("man");
    util::run(
        "mdeploy man",
        util::cargo()
            .args([
                "run",
                "--quiet",
                "--bin",
                "mdeploy",
                "--",
                "man",
                "--out-dir",
            ])
            .arg(&out_dir)
            .current_dir(&repo),
    )?;
    eprintln!("man pages written to {}", out_dir.display());
    eprintln!(
        "view one with: man -l {}",
        out_dir.join("mdeploy.1").display()
    );
    Ok(())
}
