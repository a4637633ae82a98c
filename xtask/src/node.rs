//! The conformance Node packages: `.cache/conformance/node/node_modules` from the committed
//! `conformance/package.json` + `package-lock.json` (`npm ci`).

use crate::util::{self, Stamp};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const STEP: &str = "install Node runtimes";
const FILES: [&str; 2] = ["package.json", "package-lock.json"];

/// Installs the pinned packages unless the stamp says they already are; returns `node_modules`.
pub fn ensure_modules(repo: &Path) -> Result<PathBuf> {
    let source = repo.join("conformance");
    let dir = util::cache_dir(repo).join("node");
    let modules = dir.join("node_modules");
    let node = util::output(Command::new("node").arg("--version"))
        .with_context(|| format!("step '{STEP}' failed: `node --version` does not run"))?;

    let manifest = util::read(&source.join(FILES[0]))?;
    let lock = std::fs::read(source.join(FILES[1])).ok();
    let stamp = Stamp::new(
        dir.join(".mdeploy-packages.stamp"),
        &[
            &manifest,
            lock.as_deref().unwrap_or_default(),
            node.as_bytes(),
        ],
    );
    if stamp.is_current() && modules.join("@tensorflow").join("tfjs").is_dir() {
        eprintln!(
            "    node {node} packages at {} are up to date",
            modules.display()
        );
        return Ok(modules);
    }
    stamp.remove();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(FILES[0]), &manifest)?;

    // No install scripts: the packages we use are plain JavaScript, and nothing may download.
    let flags = ["--ignore-scripts", "--no-audit", "--no-fund"];
    if let Some(lock) = &lock {
        std::fs::write(dir.join(FILES[1]), lock)?;
        util::run(STEP, npm().arg("ci").args(flags).current_dir(&dir))?;
    } else {
        util::run(STEP, npm().arg("install").args(flags).current_dir(&dir))?;
        std::fs::copy(dir.join(FILES[1]), source.join(FILES[1]))?;
        eprintln!("    wrote conformance/package-lock.json: commit it");
    }
    // The stamp hashes the lock as committed; a lock generated just now changes it next run.
    stamp.write()?;
    Ok(modules)
}

fn npm() -> Command {
    Command::new(if cfg!(windows) { "npm.cmd" } else { "npm" })
}
