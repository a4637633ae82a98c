//! Small helpers shared by the tasks: where the repository is, running a step, stamp files.

use anyhow::{Context, Result};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An error that decides the exit code: `main` exits with `code` (1 for any other error).
#[derive(Debug)]
pub struct Exit {
    pub message: String,
    pub code: i32,
}

impl Exit {
    /// A step whose command ended with a non-zero status; we exit with the same status.
    pub fn step(step: &str, code: i32) -> Self {
        let message = format!("step '{step}' failed (exit code {code})");
        Exit { message, code }
    }

    /// Bad arguments: exit code 2.
    pub fn usage(message: String) -> Self {
        Exit { message, code: 2 }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// The workspace root (the parent of `xtask/`).
///
/// `cargo run` sets CARGO_MANIFEST_DIR for the program too; that run-time value wins over the
/// compiled-in one, because cargo hashes workspace members by relative path and so reuses an
/// xtask binary built in another checkout (a copied `target/`), whose compiled-in path points
/// at that other checkout.
pub fn repo_root() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent().expect("xtask/ has a parent").to_path_buf()
}

/// `.cache/conformance` under the repository (gitignored).
pub fn cache_dir(repo: &Path) -> PathBuf {
    repo.join(".cache").join("conformance")
}

/// The cargo that runs us (so `cargo +nightly xtask` stays on nightly).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Prints a visible step header on stderr.
pub fn header(step: &str) {
    eprintln!("\n==> {step}");
}

/// Runs `cmd` with inherited stdio; a spawn error or a non-zero exit is an error naming `step`.
pub fn run(step: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("    $ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("step '{step}' failed: could not start `{}`", show(cmd)))?;
    if status.success() {
        return Ok(());
    }
    Err(Exit::step(step, status.code().unwrap_or(1)).into())
}

/// Runs `cmd` and returns its trimmed stdout+stderr if it succeeds, `None` if it cannot run or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Some(text.trim().to_string())
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// A file recording what an install was made from; the install is redone when it differs.
pub struct Stamp {
    path: PathBuf,
    value: String,
}

impl Stamp {
    /// The stamp's value is a stable hash (FNV-1a 64) of `parts`.
    pub fn new(path: PathBuf, parts: &[&[u8]]) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for part in parts {
            for &byte in part.iter().chain(&[0xff]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        Stamp {
            path,
            value: format!("{hash:016x}\n"),
        }
    }

    pub fn is_current(&self) -> bool {
        std::fs::read_to_string(&self.path).is_ok_and(|v| v == self.value)
    }

    pub fn write(&self) -> Result<()> {
        std::fs::write(&self.path, &self.value)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads a file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::Stamp;

    #[test]
    fn stamp_is_stable_and_separates_parts() {
        let path = std::path::PathBuf::from("unused");
        let a = Stamp::new(path.clone(), &[b"numpy==2.4.6\n", b"Python 3.11.7"]).value;
        assert_eq!(
            a,
            Stamp::new(path.clone(), &[b"numpy==2.4.6\n", b"Python 3.11.7"]).value
        );
        assert_ne!(
            a,
            Stamp::new(path.clone(), &[b"numpy==2.4.6\nPython 3.11.7"]).value
        );
        assert_ne!(
            a,
            Stamp::new(path, &[b"numpy==2.4.5\n", b"Python 3.11.7"]).value
        );
    }
}
