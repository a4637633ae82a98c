#![no_main]
//! Structure-aware: bytes → a random valid IR graph → every writer must refuse it by name or
//! write a file its own reader reads back into a graph computing the same outputs, the same
//! bytes each time (mdeploy::fuzzing::round_trip). A finding panics, which libFuzzer records.

use libfuzzer_sys::fuzz_target;
use mdeploy::fuzzing::round_trip;
use mdeploy::fuzzing::Scratch;
use std::sync::OnceLock;

static SCRATCH: OnceLock<Option<Scratch>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // One scratch folder per process, reused by every iteration.
    if let Some(s) = SCRATCH.get_or_init(|| Scratch::new("ir_graph").ok()) {
        if let Err(finding) = round_trip::check(data, &s.path().join("out")) {
            panic!("{finding}");
        }
    }
});
