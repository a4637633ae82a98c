//! The TFLite writer on every ONNX fixture: the file reads back with tract-tflite's flatbuffer
//! types and has the promised structure (TFL3, schema 3, buffer 0 empty, builtin ops only,
//! deduplicated opcodes, the source's I/O names in `serving_default`, boundary-only TRANSPOSEs
//! for CNNs), equal input gives equal bytes, and unsupported models are refused listing every
//! node (exit 4, nothing written). Running the files in LiteRT is the conformance tier's job.

use crate::common::{onnx_fixtures, repo};
use mdeploy::readers::{self, ReadOptions};
use mdeploy::writers::tflite::{TfliteWriter, SIGNATURE_KEY};
use mdeploy::writers::Writer;
use std::process::Command;
use tract_tflite::prelude::Framework;
use tract_tflite::tflite::{self, BuiltinOperator};

/// Fixtures the writer refuses today (conformance/known-failures.txt says why).
const REFUSED: &[&str] = &["lstm_gru", "qlinear", "where_compare"];
/// CNNs: at most one TRANSPOSE in and one out.
const CNNS: &[&str] = &[
    "cnn_bn",
    "cnn_bn_unfolded",
    "residual",
    "depthwise_grouped",
    "dynamic_batch",
    "dynamo_cnn",
    "external_data",
    "tf2onnx_mobilenetv2",
];

fn write(model: &std::path::Path, nhwc_io: bool) -> Result<Vec<u8>, mdeploy::error::Error> {
    let mut g = readers::read(model, &ReadOptions::default())?;
    let w = TfliteWriter { nhwc_io };
    w.legalize(&mut g)?;
    w.to_bytes(&g)
}

#[test]
fn every_fixture_writes_a_well_formed_deterministic_file() {
    for f in onnx_fixtures() {
        let bytes = match write(&f.model, false) {
            Ok(b) => b,
            Err(e) if REFUSED.contains(&f.name.as_str()) => {
                assert_eq!(e.exit_code(), 4, "{}: {e}", f.name);
                continue;
            }
            Err(e) => panic!("{}: {e}", f.name),
        };
        assert!(
            !REFUSED.contains(&f.name.as_str()),
            "{} now converts",
            f.name
        );
        assert_eq!(&bytes[4..8], b"TFL3", "{}", f.name);
        let again = write(&f.model, false).unwrap();
        assert!(bytes == again, "{}: two writes differ", f.name);

        let m = tflite::root_as_model(&bytes).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(m.version(), 3);
        let buffers = m.buffers().unwrap();
        assert!(buffers.get(0).data().is_none_or(|d| d.is_empty()));
        let codes = m.operator_codes().unwrap();
        let mut seen = Vec::new();
        for c in codes.iter() {
            assert!(c.custom_code().is_none(), "{}: custom op", f.name);
            assert!(c.builtin_code() != BuiltinOperator::CUSTOM, "{}", f.name);
            assert!(
                !seen.contains(&(c.builtin_code(), c.version())),
                "{}",
                f.name
            );
            seen.push((c.builtin_code(), c.version()));
        }
        let meta = m.metadata().unwrap();
        assert!(meta.iter().any(|x| x.name() == Some("min_runtime_version")));

        let source = readers::read(&f.model, &ReadOptions::default()).unwrap();
        let sig = m.signature_defs().unwrap().get(0);
        assert_eq!(sig.signature_key(), Some(SIGNATURE_KEY));
        let names = |l: Option<flatbuffers::Vector<_>>| -> Vec<String> {
            l.unwrap()
                .iter()
                .map(|t: tflite::TensorMap| t.name().unwrap_or_default().to_string())
                .collect()
        };
        let want = |ids: &[mdeploy::ir::ValueId]| -> Vec<String> {
            ids.iter().map(|&v| source.value(v).name.clone()).collect()
        };
        assert_eq!(names(sig.inputs()), want(&source.inputs), "{}", f.name);
        assert_eq!(names(sig.outputs()), want(&source.outputs), "{}", f.name);

        let sg = m.subgraphs().unwrap().get(0);
        let transposes = sg
            .operators()
            .unwrap()
            .iter()
            .filter(|o| {
                codes.get(o.opcode_index() as usize).builtin_code() == BuiltinOperator::TRANSPOSE
            })
            .count();
        if CNNS.contains(&f.name.as_str()) {
            assert!(transposes <= 2, "{}: {transposes} TRANSPOSE ops", f.name);
        }
        // tract-tflite reads the file back.
        tract_tflite::tflite()
            .proto_model_for_read(&mut &bytes[..])
            .unwrap_or_else(|e| panic!("{}: tract-tflite: {e}", f.name));
    }
}

#[test]
fn dynamic_batch_is_minus_one_in_the_shape_signature() {
    let bytes = write(
        &repo().join("fixtures/onnx/dynamic_batch/model.onnx"),
        false,
    )
    .unwrap();
    let m = tflite::root_as_model(&bytes).unwrap();
    let sg = m.subgraphs().unwrap().get(0);
    let input = sg
        .tensors()
        .unwrap()
        .get(sg.inputs().unwrap().get(0) as usize);
    assert_eq!(
        input.shape().unwrap().iter().collect::<Vec<_>>(),
        [1, 3, 16, 16]
    );
    assert_eq!(
        input.shape_signature().unwrap().iter().collect::<Vec<_>>(),
        [-1, 3, 16, 16]
    );
}

#[test]
fn nhwc_io_drops_the_boundary_transposes() {
    let bytes = write(&repo().join("fixtures/onnx/residual/model.onnx"), true).unwrap();
    let m = tflite::root_as_model(&bytes).unwrap();
    let codes = m.operator_codes().unwrap();
    assert!(codes
        .iter()
        .all(|c| c.builtin_code() != BuiltinOperator::TRANSPOSE));
    let sg = m.subgraphs().unwrap().get(0);
    let input = sg
        .tensors()
        .unwrap()
        .get(sg.inputs().unwrap().get(0) as usize);
    assert_eq!(input.name(), Some("input"));
    assert_eq!(input.shape().unwrap().get(3), 8);
}

#[test]
fn unsupported_models_are_refused_listing_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.tflite");
    let o = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(["convert"])
        .arg(repo().join("fixtures/onnx/qlinear/model.onnx"))
        .args(["--to", "tflite", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("6 unsupported op(s)"), "{err}");
    for op in [
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
    ] {
        assert!(err.contains(op), "{op} not listed: {err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
