//! The TFLite reader on files the TFLite writer made: every ONNX fixture written as .tflite is
//! read back and run by mdeploy's evaluator against the framework's outputs, or refused with
//! exit 4 naming what the reader lacks (none today: WHILE and IF included).

use crate::common::{assert_matches, onnx_fixtures};
use mdeploy::readers::{self, ReadOptions};
use mdeploy::writers::tflite::TfliteWriter;
use mdeploy::writers::Writer;

#[test]
fn onnx_fixtures_written_as_tflite_read_back_and_match() {
    let dir = crate::common::tempdir();
    let (mut matched, mut refused) = (Vec::new(), Vec::new());
    for f in onnx_fixtures() {
        let Ok(mut g) = readers::read(&f.model, &ReadOptions::default()) else {
            continue;
        };
        let w = TfliteWriter { nhwc_io: false };
        let Ok(bytes) = w.legalize(&mut g).and_then(|()| w.to_bytes(&g)) else {
            continue;
        };
        let path = dir.path().join(format!("{}.tflite", f.name));
        std::fs::write(&path, bytes).unwrap();
        let back = match readers::read(&path, &ReadOptions::default()) {
            Ok(b) => b,
            Err(e) => {
                assert_eq!(e.exit_code(), 4, "{}: {e}", f.name);
                refused.push(f.name.clone());
                continue;
            }
        };
        let got =
            mdeploy::eval::run(&back, &f.inputs()).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_matches(&format!("{} via .tflite", f.name), &got, &f.expected());
        matched.push(f.name.clone());
    }
    assert!(
        matched.len() >= 36,
        "matched {matched:?}, refused {refused:?}"
    );
}
