//! Replays the fuzz targets' inputs on stable Rust: every minimized crash under
//! `fuzz/regressions/<target>/` and every entry of the minimized corpus `fuzz/minimized/<target>/`
//! (`cargo fuzz cmin` of a campaign's corpus)
//! runs through the harness the fuzz targets run (`mdeploy::fuzzing`: read, verify, clean-up,
//! every writer), so a past crash stays fixed in CI without nightly or cargo-fuzz.

use crate::common::repo;
use mdeploy::fuzzing::{Scratch, Target};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// The committed inputs of `target`, sorted.
fn inputs(target: Target) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for kind in ["regressions", "minimized"] {
        let dir = repo().join("fuzz").join(kind).join(target.name());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

/// Each input is read or refused with a message; none panics. (A target may have no committed
/// inputs yet: `fuzz_regressions_are_committed` checks that the replay replays something.)
fn replay(target: Target) {
    let files = inputs(target);
    let scratch = Scratch::new(&format!("replay-{}", target.name())).expect("temp folder");
    let mut panicked = Vec::new();
    for f in &files {
        let data = std::fs::read(f).expect("readable input");
        match catch_unwind(AssertUnwindSafe(|| scratch.run(target, &data))) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => assert!(
                !e.to_string().trim().is_empty(),
                "{}: refused without a message",
                f.display()
            ),
            Err(_) => panicked.push(f.display().to_string()),
        }
    }
    assert!(panicked.is_empty(), "panicked on: {panicked:#?}");
}

#[test]
fn fuzz_replay_onnx() {
    replay(Target::Onnx);
}

#[test]
fn fuzz_replay_saved_model() {
    replay(Target::SavedModel);
}

#[test]
fn fuzz_replay_keras_h5() {
    replay(Target::KerasH5);
}

#[test]
fn fuzz_replay_keras_zip() {
    replay(Target::KerasZip);
}

#[test]
fn fuzz_replay_tflite() {
    replay(Target::Tflite);
}

#[test]
fn fuzz_replay_tfjs() {
    replay(Target::Tfjs);
}

#[test]
fn fuzz_regressions_are_committed() {
    let n: usize = Target::ALL.into_iter().map(|t| inputs(t).len()).sum();
    assert!(
        n > 0,
        "fuzz/regressions/ and fuzz/minimized/ hold no inputs"
    );
}
