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

/// Fixtures the writer refuses today (conformance/known-failures.txt says why): none.
const REFUSED: &[&str] = &[];
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
            Err(e)
                if REFUSED.contains(&f.name.as_str())
                    || crate::common::known_failure(&format!("onnx/{}:tflite", f.name)) =>
            {
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

/// A graph of ops the writer cannot express, written as ONNX for the CLI to read.
fn unsupported_onnx(path: &std::path::Path) {
    use mdeploy::ir::ops::{Einsum, Rnn, RnnDirection, ScatterElements, ScatterReduction};
    use mdeploy::ir::{DType, Dim, Graph, Op, Tensor, TensorType};
    let mut g = Graph::new();
    let seq = vec![Dim::Sym("seq".into()), Dim::Fixed(1), Dim::Fixed(3)];
    let x = g.add_input("x", TensorType::new(DType::F32, seq));
    // A GRU over a run-time length whose weights are an input: with constant ones (in any
    // direction) it would become a loop.
    let w = g.add_input(
        "w",
        TensorType::new(
            DType::F32,
            vec![Dim::Fixed(2), Dim::Fixed(6), Dim::Fixed(3)],
        ),
    );
    let r = g.add_const("r", Tensor::from_f32(vec![2, 6, 2], &[0.1; 24]));
    let gru = Rnn {
        direction: RnnDirection::Bidirectional,
        hidden_size: 2,
        activations: vec![],
        clip: None,
        linear_before_reset: true,
        input_forget: false,
        cell_clip: None,
        batch_major: false,
        optional: vec![],
    };
    let y = g.add_node("gru", Op::Gru(gru), vec![x, w, r], &[]).unwrap();
    let m = g.add_input(
        "m",
        TensorType::new(DType::F32, vec![Dim::Fixed(3), Dim::Fixed(3)]),
    );
    let diag = Op::Einsum(Einsum {
        equation: "ii->i".into(),
    });
    let d = g
        .add_node("diagonal", diag, vec![m], &["d".into()])
        .unwrap();
    let idx = g.add_const("idx", Tensor::from_i64(vec![1, 3], &[0, 1, 2]));
    let upd = g.add_const("upd", Tensor::from_f32(vec![1, 3], &[2.0; 3]));
    let mul = Op::ScatterElements(ScatterElements {
        axis: 0,
        reduction: ScatterReduction::Mul,
    });
    let s = g.add_node("scatter_mul", mul, vec![m, idx, upd], &["s".into()]);
    g.outputs = vec![y[0], d[0], s.unwrap()[0]];
    let bytes = mdeploy::writers::onnx::OnnxWriter::default()
        .to_bytes(&g)
        .unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn unsupported_models_are_refused_listing_every_node() {
    let dir = crate::common::tempdir();
    let model = dir.path().join("model.onnx");
    unsupported_onnx(&model);
    let out = dir.path().join("out.tflite");
    let o = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(["convert"])
        .arg(&model)
        .args(["--to", "tflite", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("3 unsupported op(s)"), "{err}");
    for needle in [
        "Gru at node 'gru",
        "sequence length 'seq' is known only at run time",
        "Einsum at node 'diagonal",
        "repeats index 'i' within one operand",
        "ScatterElements at node 'scatter_mul",
        "reduction Mul",
    ] {
        assert!(err.contains(needle), "{needle} not listed: {err}");
    }
    assert!(!out.exists(), "nothing is written");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// The builtin operators of a written file, in order.
fn op_list(bytes: &[u8]) -> Vec<BuiltinOperator> {
    let m = tflite::root_as_model(bytes).unwrap();
    let codes = m.operator_codes().unwrap();
    let sg = m.subgraphs().unwrap().get(0);
    sg.operators()
        .unwrap()
        .iter()
        .map(|o| codes.get(o.opcode_index() as usize).builtin_code())
        .collect()
}

#[test]
fn einsums_become_matmuls_and_projections() {
    use mdeploy::ir::ops::Einsum;
    use mdeploy::ir::{DType, Dim, Graph, Op, Tensor, TensorType};
    let mut g = Graph::new();
    let b = Dim::Sym("batch".into());
    let ty = |s: &[Dim]| TensorType::new(DType::F32, s.to_vec());
    let q = g.add_input(
        "q",
        ty(&[b.clone(), Dim::Fixed(6), Dim::Fixed(2), Dim::Fixed(4)]),
    );
    let k = g.add_input(
        "k",
        ty(&[b.clone(), Dim::Fixed(5), Dim::Fixed(2), Dim::Fixed(4)]),
    );
    let w = g.add_const("w", Tensor::from_f32(vec![2, 4, 3], &[0.5; 24]));
    let e = |eq: &str| {
        Op::Einsum(Einsum {
            equation: eq.into(),
        })
    };
    // Attention scores (BATCH_MATMUL) and an EinsumDense projection (FULLY_CONNECTED).
    let s = g
        .add_node("scores", e("BTNH,BSNH->BNTS"), vec![q, k], &[])
        .unwrap();
    let p = g
        .add_node("proj", e("abcd,cde->abe"), vec![q, w], &[])
        .unwrap();
    g.outputs = vec![s[0], p[0]];
    let w = TfliteWriter::default();
    w.legalize(&mut g).unwrap();
    let ops = op_list(&w.to_bytes(&g).unwrap());
    let count = |b: BuiltinOperator| ops.iter().filter(|&&o| o == b).count();
    assert_eq!(count(BuiltinOperator::BATCH_MATMUL), 1, "{ops:?}");
    assert_eq!(count(BuiltinOperator::FULLY_CONNECTED), 1, "{ops:?}");
    assert!(ops.iter().all(|&o| o != BuiltinOperator::CUSTOM), "{ops:?}");
}

#[test]
fn recurrent_and_integer_fixtures_use_only_float_builtins() {
    for name in ["lstm_gru", "qlinear", "where_compare"] {
        let bytes = write(
            &repo().join(format!("fixtures/onnx/{name}/model.onnx")),
            false,
        )
        .unwrap();
        let ops = op_list(&bytes);
        assert!(!ops.is_empty());
        for o in &ops {
            let banned = [
                BuiltinOperator::CUSTOM,
                BuiltinOperator::WHILE,
                BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_LSTM,
            ];
            assert!(!banned.contains(o), "{name}: {o:?}");
        }
        if name == "lstm_gru" {
            // Unrolled: 7 steps of a bidirectional LSTM and a GRU; per direction one
            // FULLY_CONNECTED projects every step's input, and one per recurrent product after
            // the first step (the initial states are zeros).
            let fc = ops
                .iter()
                .filter(|&&o| o == BuiltinOperator::FULLY_CONNECTED)
                .count();
            assert_eq!(fc, 3 + 3 * 6, "{ops:?}");
        }
    }
}

/// `--verify` reads the written file back with mdeploy's own TFLite reader and runs that, also
/// where tract-tflite (which used to re-read it, and still does when the reader cannot) fails:
/// omitted optional inputs, depthwise multipliers, ELU. Never a panic or a dump of tract's
/// operator structs, and the conversion succeeds.
#[test]
fn verify_reads_the_written_tflite_file_back() {
    let cases = [
        ("fixtures/onnx/mlp/model.onnx", None),
        (
            "fixtures/keras/dense_mlp/model.h5",
            Some(
                "does not support omitted optional inputs (FULLY_CONNECTED's input 3 is tensor -1",
            ),
        ),
        (
            "fixtures/onnx/depthwise_grouped/model.onnx",
            Some("does not support DEPTHWISE_CONV_2D with a channel multiplier (here 2)"),
        ),
        (
            "fixtures/onnx/activations/model.onnx",
            Some("does not support the operator ELU;"),
        ),
    ];
    let dir = crate::common::tempdir();
    let out = dir.path().join("out.tflite");
    for (model, reason) in cases {
        let o = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
            .args(["convert"])
            .arg(repo().join(model))
            .args(["--to", "tflite", "--verify", "-o"])
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{model}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Operator {"),
            "{model}: {err}"
        );
        // The file is read back by mdeploy's own TFLite reader, which reads what tract-tflite
        // (`reason`) cannot: no "not checked" line any more.
        let _ = reason;
        assert!(
            err.contains("the written file is read back by mdeploy's TFLite reader and run"),
            "{model}: {err}"
        );
        assert!(!err.contains("tract-tflite"), "{model}: {err}");
        assert!(err.contains(" ok"), "{model}: {err}");
    }
}

#[test]
fn a_file_that_is_no_flatbuffer_is_not_checked_rather_than_a_crash() {
    use mdeploy::eval::{decode_tflite_file, Decoded};
    let dir = crate::common::tempdir();
    let path = dir.path().join("junk.tflite");
    std::fs::write(&path, b"TFL3 but not a flatbuffer at all").unwrap();
    match decode_tflite_file(&path).unwrap() {
        Decoded::NotChecked(why) => assert!(why.starts_with("rejects the flatbuffer"), "{why}"),
        Decoded::Ok => panic!("junk decoded"),
    }
    assert!(decode_tflite_file(&dir.path().join("missing.tflite")).is_err());
}
