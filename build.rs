//! Sets MDEPLOY_VERSION for `mdeploy --version`: the package version, plus the git revision and
//! its commit date when the source is a git checkout (a clone, `cargo install --git`), e.g.
//! `0.1.0 (1bd5b42 2026-12-04)`; the plain version otherwise (a crate tarball, no git).
//!
//! Never fails the build: without git, or outside a repository, the version is just plainer.
//! Reruns only when HEAD moves: cargo reruns a script that names no file on every change to
//! the package, and one naming a missing file on every build, so only existing files are named.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let version = env!("CARGO_PKG_VERSION");
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let full = match revision(&manifest_dir) {
        Some((hash, date)) => format!("{version} ({hash} {date})"),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=MDEPLOY_VERSION={full}");
}

/// The short hash and commit date of HEAD, when `dir` is the top of a git work tree. A crate
/// unpacked inside some other repository (a home directory under git) is not that repository's
/// revision, hence the top-level check.
fn revision(dir: &Path) -> Option<(String, String)> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    watch_head(dir);
    let hash = git(dir, &["rev-parse", "--short", "HEAD"])?;
    let date = git(dir, &["log", "-1", "--format=%cs", "HEAD"])?;
    Some((hash, date))
}

/// Names the files that change when HEAD moves: HEAD itself (a checkout, a detached HEAD), the
/// branch's loose ref (a commit), packed-refs. In a linked worktree HEAD lives in the worktree's
/// git dir and the refs in the common one. A branch that exists only in packed-refs gets its
/// loose ref created by the next commit, so its folder is watched instead.
fn watch_head(dir: &Path) {
    let abs = ["rev-parse", "--path-format=absolute"];
    let Some(git_dir) = git(dir, &[&abs[..], &["--git-dir"]].concat()) else {
        return;
    };
    let common = git(dir, &[&abs[..], &["--git-common-dir"]].concat()).unwrap_or(git_dir.clone());
    let (git_dir, common) = (PathBuf::from(git_dir), PathBuf::from(common));
    let mut watched = vec![git_dir.join("HEAD"), common.join("packed-refs")];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        let loose = common.join(branch);
        match loose.parent() {
            Some(folder) if !loose.exists() => watched.push(folder.to_path_buf()),
            _ => watched.push(loose),
        }
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Runs git in `dir`; its trimmed stdout if it ran and succeeded with some output.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
