//! Python venvs with pinned requirements: the conformance venv (`.cache/conformance/venv` with
//! `conformance/requirements.txt`) and the serving benchmark's (see `bench_serve.rs`).

use crate::util::{self, Stamp};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const STEP: &str = "install Python runtimes";

/// Creates the venv if needed, installs the pinned requirements unless the stamp says they
/// already are, and returns the venv's interpreter.
pub fn ensure_venv(repo: &Path) -> Result<PathBuf> {
    ensure_venv_at(
        &util::cache_dir(repo).join("venv"),
        &repo.join("conformance").join("requirements.txt"),
    )
}

/// [`ensure_venv`] for any venv folder and requirements file.
pub fn ensure_venv_at(venv: &Path, requirements: &Path) -> Result<PathBuf> {
    let python = venv_python(venv);

    let version = match util::output(Command::new(&python).arg("--version")) {
        Some(version) => version,
        None => create_venv(venv, &python)?,
    };
    let stamp = Stamp::new(
        venv.join(".mdeploy-requirements.stamp"),
        &[&util::read(requirements)?, version.as_bytes()],
    );
    if stamp.is_current() {
        eprintln!("    {version} venv at {} is up to date", venv.display());
        return Ok(python);
    }
    stamp.remove();
    util::run(
        STEP,
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(["--quiet", "-r"])
            .arg(requirements),
    )?;
    stamp.write()?;
    Ok(python)
}

/// `python3 -m venv` (or `$MDEPLOY_PYTHON -m venv`), replacing a broken venv; returns the version.
fn create_venv(venv: &Path, python: &Path) -> Result<String> {
    if venv.exists() {
        eprintln!("    {} is broken or stale: recreating it", venv.display());
        std::fs::remove_dir_all(venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    let base = std::env::var_os("MDEPLOY_PYTHON").unwrap_or_else(|| "python3".into());
    util::run(STEP, Command::new(&base).args(["-m", "venv"]).arg(venv))?;
    util::output(Command::new(python).arg("--version"))
        .with_context(|| format!("step '{STEP}' failed: {} does not run", python.display()))
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}
