//! The conformance venvs: `.cache/conformance/venv` with `conformance/requirements.txt`
//! installed (the runtimes), and `.cache/conformance/serve-venv` with
//! `conformance/serve-requirements.txt` (TensorFlow and the serving clients; apart because
//! TensorFlow pins a protobuf other than onnx's).

use crate::util::{self, Stamp};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const STEP: &str = "install Python runtimes";

/// Creates the venv if needed, installs the pinned requirements unless the stamp says they
/// already are, and returns the venv's interpreter.
pub fn ensure_venv(repo: &Path) -> Result<PathBuf> {
    ensure(repo, "venv", "requirements.txt", &[])
}

/// The serving tests' venv. Its requirements pin every package, transitive ones too, and are
/// installed with `--no-deps`: tensorflow-serving-api declares a dependency on `tensorflow`
/// that pip would otherwise resolve again.
pub fn ensure_serve_venv(repo: &Path) -> Result<PathBuf> {
    ensure(repo, "serve-venv", "serve-requirements.txt", &["--no-deps"])
}

/// `.cache/conformance/<name>` with `conformance/<requirements>` installed (pip `extra` flags).
fn ensure(repo: &Path, name: &str, requirements: &str, extra: &[&str]) -> Result<PathBuf> {
    let requirements = repo.join("conformance").join(requirements);
    let venv = util::cache_dir(repo).join(name);
    let python = venv_python(&venv);

    let version = match util::output(Command::new(&python).arg("--version")) {
        Some(version) => version,
        None => create_venv(&venv, &python)?,
    };
    let stamp = Stamp::new(
        venv.join(".mdeploy-requirements.stamp"),
        &[&util::read(&requirements)?, version.as_bytes()],
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
            .args(extra)
            .args(["--quiet", "-r"])
            .arg(&requirements),
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
