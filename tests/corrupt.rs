//! Corrupted models never panic: every fixture, with deterministic byte mutations and
//! truncations, is either read (and then written) or refused with an error.

use crate::common::onnx_fixtures;
use mdeploy::readers::{self, ReadOptions};
use mdeploy::writers::onnx::OnnxWriter;

#[test]
fn mutated_and_truncated_models_give_errors_not_panics() {
    let dir = crate::common::tempdir();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Small models: their bytes are mostly graph structure, not weights.
    let mut fixtures = onnx_fixtures();
    fixtures.retain(|f| {
        std::fs::metadata(&f.model)
            .map(|m| m.len() < 64 * 1024)
            .unwrap_or(false)
    });
    assert!(fixtures.len() >= 8);
    let (mut read_ok, mut refused) = (0, 0);
    for round in 0..400 {
        let f = &fixtures[round % fixtures.len()];
        let mut bytes = std::fs::read(&f.model).unwrap();
        for _ in 0..1 + next() % 6 {
            let i = (next() % bytes.len() as u64) as usize;
            bytes[i] = next() as u8;
        }
        if round % 5 == 0 {
            bytes.truncate((next() % bytes.len() as u64) as usize);
        }
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, &bytes).unwrap();
        let outcome =
            std::panic::catch_unwind(|| match readers::read(&path, &ReadOptions::default()) {
                Ok(g) => {
                    let _ = OnnxWriter::default().to_bytes(&g);
                    true
                }
                Err(_) => false,
            });
        match outcome {
            Ok(true) => read_ok += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!("panicked on a mutation of {} (round {round})", f.name),
        }
    }
    // Both paths must be exercised for the test to mean anything.
    assert!(
        read_ok > 20 && refused > 20,
        "read {read_ok}, refused {refused}"
    );
}

/// The same for TFLite flatbuffers: offsets, lengths, indices and enum values all come from
/// the file, so a mutated one must be refused (or read) without a panic.
#[test]
fn mutated_and_truncated_tflite_models_give_errors_not_panics() {
    let dir = crate::common::tempdir();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tflite");
    let mut models: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path().join("model.tflite")))
        .filter(|p| p.is_file())
        .collect();
    models.sort();
    assert!(models.len() >= 4, "tflite fixtures: {models:?}");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut read_ok, mut refused) = (0, 0);
    for round in 0..300 {
        let model = &models[round % models.len()];
        let mut bytes = std::fs::read(model).unwrap();
        for _ in 0..1 + next() % 4 {
            // Bytes 0..8 are the root offset and the identifier; mutate past them so the file
            // is still taken for TFLite and the reader, not the probe, meets the damage.
            let i = 8 + (next() % (bytes.len() as u64 - 8)) as usize;
            bytes[i] = next() as u8;
        }
        if round % 5 == 0 {
            bytes.truncate(8 + (next() % (bytes.len() as u64 - 8)) as usize);
        }
        let path = dir.path().join("m.tflite");
        std::fs::write(&path, &bytes).unwrap();
        let outcome =
            std::panic::catch_unwind(|| match readers::read(&path, &ReadOptions::default()) {
                Ok(g) => {
                    let _ = OnnxWriter::default().to_bytes(&g);
                    true
                }
                Err(_) => false,
            });
        match outcome {
            Ok(true) => read_ok += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!(
                "panicked on a mutation of {} (round {round})",
                model.display()
            ),
        }
    }
    assert!(
        read_ok > 20 && refused > 20,
        "read {read_ok}, refused {refused}"
    );
}
