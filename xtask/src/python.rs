//! The conformance venvs under `.cache/conformance/`: `venv` with `conformance/requirements.txt`
//! (onnxruntime, LiteRT, onnx) and `tfvenv` with `conformance/requirements-tf.txt` (TensorFlow,
//! the SavedModel target's runtime, the converters that read SavedModels, and the serving
//! clients `conformance/serve.py` drives `mdeploy serve` with). They are apart because
//! TensorFlow pins its own protobuf and ml_dtypes. The serving benchmark's venv (see
//! `bench_serve.rs`) is made the same way.

use crate::util::{self, Stamp};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A venv: its folder under the cache, its pinned requirements (in `conformance/`), and
/// packages installed after them without their dependencies.
struct Spec {
    dir: &'static str,
    requirements: &'static str,
    no_deps: &'static [&'static str],
    step: &'static str,
}

const RUNTIMES: Spec = Spec {
    dir: "venv",
    requirements: "requirements.txt",
    no_deps: &[],
    step: "install Python runtimes",
};

/// tensorflowjs's own requirements pin other TensorFlow versions (through
/// tensorflow_decision_forests, tensorflow_hub, jax); the SavedModel conversion does not use
/// them (conformance/tf_worker.py stubs their imports). tensorflow-serving-api declares a
/// dependency on `tensorflow` that pip would resolve again; the one installed is the one it
/// needs.
const TENSORFLOW: Spec = Spec {
    dir: "tfvenv",
    requirements: "requirements-tf.txt",
    no_deps: &["tensorflowjs==4.22.0", "tensorflow-serving-api==2.21.0"],
    step: "install TensorFlow",
};

/// The runtimes' venv; returns its interpreter.
pub fn ensure_venv(repo: &Path) -> Result<PathBuf> {
    ensure(repo, &RUNTIMES)
}

/// The TensorFlow venv; returns its interpreter.
pub fn ensure_tf_venv(repo: &Path) -> Result<PathBuf> {
    ensure(repo, &TENSORFLOW)
}

fn ensure(repo: &Path, spec: &Spec) -> Result<PathBuf> {
    let requirements = repo.join("conformance").join(spec.requirements);
    let venv = util::cache_dir(repo).join(spec.dir);
    ensure_at(&venv, &requirements, spec.no_deps, spec.step)
}

/// A venv at any folder with any pinned requirements file (the serving benchmark's); returns
/// its interpreter.
pub fn ensure_venv_at(venv: &Path, requirements: &Path) -> Result<PathBuf> {
    ensure_at(venv, requirements, &[], "install Python packages")
}

/// Creates the venv if needed, installs the pinned requirements (then `no_deps` packages without
/// their dependencies) unless the stamp says they already are, and returns the venv's
/// interpreter.
fn ensure_at(venv: &Path, requirements: &Path, no_deps: &[&str], step: &str) -> Result<PathBuf> {
    let python = venv_python(venv);

    let version = match util::output(Command::new(&python).arg("--version")) {
        Some(version) => version,
        None => create_venv(venv, &python, step)?,
    };
    let requirements_text = util::read(requirements)?;
    let no_deps_text = no_deps.join("\n");
    // Without no-deps packages the stamp is what it always was (no reinstall on upgrade).
    let mut parts: Vec<&[u8]> = vec![&requirements_text];
    if !no_deps_text.is_empty() {
        parts.push(no_deps_text.as_bytes());
    }
    parts.push(version.as_bytes());
    let stamp = Stamp::new(venv.join(".mdeploy-requirements.stamp"), &parts);
    if stamp.is_current() {
        eprintln!("    {version} venv at {} is up to date", venv.display());
        return Ok(python);
    }
    stamp.remove();
    let pip = || {
        let mut cmd = Command::new(&python);
        cmd.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ]);
        cmd
    };
    util::run(step, pip().arg("-r").arg(requirements))?;
    if !no_deps.is_empty() {
        util::run(step, pip().arg("--no-deps").args(no_deps))?;
    }
    stamp.write()?;
    Ok(python)
}

/// `python3 -m venv` (or `$MDEPLOY_PYTHON -m venv`), replacing a broken venv; returns the version.
fn create_venv(venv: &Path, python: &Path, step: &str) -> Result<String> {
    if venv.exists() {
        eprintln!("    {} is broken or stale: recreating it", venv.display());
        std::fs::remove_dir_all(venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    let base = std::env::var_os("MDEPLOY_PYTHON").unwrap_or_else(|| "python3".into());
    util::run(step, Command::new(&base).args(["-m", "venv"]).arg(venv))?;
    util::output(Command::new(python).arg("--version"))
        .with_context(|| format!("step '{step}' failed: {} does not run", python.display()))
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}
