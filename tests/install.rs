//! What an installed binary ships besides conversion: `--version` with the git revision, shell
//! completions, man pages.

use crate::common::repo;
use std::process::{Command, Output};

fn mdeploy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .output()
        .expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `git args` in the repository, trimmed, when git runs there and succeeds.
fn git(args: &[&str]) -> Option<String> {
    let o = Command::new("git")
        .args(args)
        .current_dir(repo())
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn version_names_the_git_revision_of_a_checkout() {
    let o = mdeploy(&["--version"]);
    assert!(o.status.success());
    let version = env!("CARGO_PKG_VERSION");
    // build.rs asks git the same questions; without git (a crate tarball) the version is plain.
    let top = git(&["rev-parse", "--show-toplevel"]).map(std::path::PathBuf::from);
    let is_checkout =
        top.is_some_and(|t| std::fs::canonicalize(t).ok() == std::fs::canonicalize(repo()).ok());
    let expected = if is_checkout {
        let hash = git(&["rev-parse", "--short", "HEAD"]).expect("HEAD has a hash");
        let date = git(&["log", "-1", "--format=%cs", "HEAD"]).expect("HEAD has a date");
        format!("mdeploy {version} ({hash} {date})\n")
    } else {
        format!("mdeploy {version}\n")
    };
    assert_eq!(stdout(&o), expected);
}

#[test]
fn bash_accepts_the_bash_completion_script() {
    let o = mdeploy(&["completions", "bash"]);
    assert!(o.status.success());
    let dir = crate::common::tempdir();
    let script = dir.path().join("mdeploy.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let sourced = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1" && complete -p mdeploy"#)
        .arg("bash")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        sourced.status.success(),
        "{}",
        String::from_utf8_lossy(&sourced.stderr)
    );
    let registered = stdout(&sourced);
    assert!(registered.trim_end().ends_with(" mdeploy"), "{registered}");
    // The script completes the real subcommands, not the hidden man-page one.
    let text = stdout(&o);
    let top = text
        .lines()
        .find(|l| l.trim_start().starts_with("opts=\"-q -h -V"))
        .expect("top-level options");
    for sub in [
        "convert",
        "inspect",
        "optimize",
        "quantize",
        "completions",
        "help",
    ] {
        assert!(top.split(['"', ' ']).any(|w| w == sub), "{top} lacks {sub}");
    }
    assert!(!top.split(['"', ' ']).any(|w| w == "man"), "{top}");
    assert!(!text.contains("mdeploy__man") && !text.contains("mdeploy,man)"));
}

#[test]
fn every_shell_gets_a_script() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = mdeploy(&["completions", shell]);
        assert!(o.status.success(), "{shell}");
        assert!(stdout(&o).contains("mdeploy"), "{shell}: {}", stdout(&o));
    }
    let o = mdeploy(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn man_writes_a_page_per_subcommand() {
    let dir = crate::common::tempdir();
    let out = dir.path().join("man");
    let o = mdeploy(&["man", "--out-dir", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(out.join("mdeploy.1")).unwrap();
    assert!(page.contains(".TH mdeploy 1"), "{page}");
    for sub in ["convert", "inspect", "optimize", "quantize", "completions"] {
        assert!(page.contains(sub), "mdeploy.1 lacks {sub}");
        let sub_page = std::fs::read_to_string(out.join(format!("mdeploy-{sub}.1"))).unwrap();
        assert!(sub_page.contains(".SH OPTIONS"), "mdeploy-{sub}.1");
    }
    // `man` itself is an implementation detail of `cargo xtask man`: hidden from help and pages.
    assert!(!out.join("mdeploy-man.1").exists());
    let help = stdout(&mdeploy(&["--help"]));
    assert!(
        !help.lines().any(|l| l.trim_start().starts_with("man ")),
        "{help}"
    );
}
