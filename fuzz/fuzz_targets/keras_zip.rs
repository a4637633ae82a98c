#![no_main]
//! Bytes → keras_zip model files → read, verify, clean-up, every writer (mdeploy::fuzzing).

use libfuzzer_sys::fuzz_target;
use mdeploy::fuzzing::{Scratch, Target};
use std::sync::OnceLock;

static SCRATCH: OnceLock<Option<Scratch>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // One scratch folder per process, reused by every iteration.
    if let Some(s) = SCRATCH.get_or_init(|| Scratch::new("keras_zip").ok()) {
        let _ = s.run(Target::KerasZip, data);
    }
});
