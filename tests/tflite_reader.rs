//! The TFLite reader on files the TFLite writer made: every ONNX fixture written as .tflite is
//! read back and run by mdeploy's evaluator against the framework's outputs, or refused with
//! exit 4 naming what the reader lacks (none today: WHILE and IF included).

use crate::common::onnx_fixtures;
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
        f.assert_expected(&format!("{} via .tflite", f.name), &got);
        matched.push(f.name.clone());
    }
    assert!(
        matched.len() >= 36,
        "matched {matched:?}, refused {refused:?}"
    );
}

/// What `--verify` of a TFLite output now runs is the file read back: a writer that stored one
/// wrong weight (simulated by changing one float32 of a kernel in the written bytes) gives a
/// result the comparison rejects, where the file as written matches.
#[test]
fn a_wrong_weight_in_the_file_is_seen_by_the_read_back() {
    let f = onnx_fixtures()
        .into_iter()
        .find(|f| f.name == "mlp")
        .expect("fixtures/onnx/mlp");
    let mut g = readers::read(&f.model, &ReadOptions::default()).unwrap();
    // The largest weight: its bytes appear once in the file.
    let weight = g
        .values
        .iter()
        .filter_map(|v| v.constant.as_ref())
        .max_by_key(|t| t.data.len())
        .map(|t| t.data.to_vec())
        .unwrap();
    let w = TfliteWriter { nhwc_io: false };
    w.legalize(&mut g).unwrap();
    let mut bytes = w.to_bytes(&g).unwrap();
    let probe = &weight[..32];
    let at = bytes
        .windows(probe.len())
        .position(|win| win == probe)
        .expect("the kernel's bytes are in the file");
    let value = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    bytes[at..at + 4].copy_from_slice(&(value + 5.0).to_le_bytes());
    let dir = crate::common::tempdir();
    let path = dir.path().join("wrong.tflite");
    std::fs::write(&path, bytes).unwrap();
    let back = readers::read(&path, &ReadOptions::default()).unwrap();
    let got = mdeploy::eval::run(&back, &f.inputs()).unwrap();
    let c = mdeploy::eval::compare("out", &got[0], &f.expected()[0]);
    assert!(
        c.shape_matches && c.max_rel > 1e-3,
        "the changed weight went unseen: {c:?}"
    );
}

/// A TFLite fixture folder (model, LiteRT's inputs and outputs), and its `sizes/<label>/` sets.
fn tflite_fixture(name: &str, size: Option<&str>) -> crate::common::Fixture {
    let dir = crate::common::repo().join("fixtures/tflite").join(name);
    crate::common::Fixture {
        name: name.into(),
        model: dir.join("model.tflite"),
        dir: size.map_or(dir.clone(), |s| dir.join("sizes").join(s)),
    }
}

fn cell_clips(g: &mdeploy::ir::Graph) -> Vec<Option<f32>> {
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            mdeploy::ir::Op::Lstm(r) => Some(r.cell_clip),
            _ => None,
        })
        .collect()
}

/// UNIDIRECTIONAL_SEQUENCE_LSTM's cell clip, which binds in these fixtures (their script checks
/// that LiteRT's outputs change without it), is read and evaluated as LiteRT computes it, over a
/// fixed and a run-time sequence length; where it provably cannot bind (10 steps, clip 10) the
/// layer stays a plain LSTM.
#[test]
fn a_binding_lstm_cell_clip_evaluates_as_litert_computes_it() {
    for (name, size) in [
        ("float_lstm_clip", None),
        ("float_lstm_clip", Some("steps80")),
        ("float_lstm_clip_fixed", None),
    ] {
        let f = tflite_fixture(name, size);
        let g = readers::read(&f.model, &ReadOptions::default()).unwrap();
        assert_eq!(cell_clips(&g), [Some(10.0)], "{name}");
        let got = mdeploy::eval::run(&g, &f.inputs()).unwrap_or_else(|e| panic!("{name}: {e}"));
        f.assert_expected(&format!("{name} {size:?}"), &got);
        // What `mdeploy serve` runs: the clipped layer over a run-time length is a loop, which
        // a planned model could not take (the server refused to load this file).
        let engine = mdeploy::eval::Engine::new(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
        let served = engine.run(&f.inputs()).unwrap();
        f.assert_expected(&format!("{name} {size:?} served"), &served);
    }
    let plain = tflite_fixture("float_lstm", None);
    let g = readers::read(&plain.model, &ReadOptions::default()).unwrap();
    assert_eq!(cell_clips(&g), [None, None]);
}

/// UNIDIRECTIONAL_SEQUENCE_RNN and BIDIRECTIONAL_SEQUENCE_RNN (batch-major merged, time-major
/// separate outputs), files the converter no longer writes, built with TensorFlow's schema API:
/// evaluated as LiteRT computes them.
#[test]
fn sequence_rnns_evaluate_as_litert_computes_them() {
    for name in [
        "float_sequence_rnn",
        "float_bidirectional_rnn",
        "float_bidirectional_rnn_time_major",
    ] {
        let f = tflite_fixture(name, None);
        let g = readers::read(&f.model, &ReadOptions::default()).unwrap();
        let got = mdeploy::eval::run(&g, &f.inputs()).unwrap_or_else(|e| panic!("{name}: {e}"));
        f.assert_expected(name, &got);
    }
}

/// Converter output with the builtins detection, volumetric and older vision models use, read
/// and run by mdeploy's evaluator against LiteRT's outputs: LOCAL_RESPONSE_NORMALIZATION (TF's
/// alpha, not divided by the window as ONNX's is), REDUCE_ANY/ALL, CONV_3D and
/// CONV_3D_TRANSPOSE, WHERE (`[n, rank]` coordinates) and NON_MAX_SUPPRESSION_V4/V5 (indices
/// and scores padded with zeros to max_output_size, valid counts), the segment reductions
/// (empty segments hold the identity), MATRIX_DIAG / MATRIX_SET_DIAG, and sparse (CSR,
/// 1x4-blocked) constants behind DENSIFY and FULLY_CONNECTED, RFFT2D taken apart by
/// COMPLEX_ABS / REAL / IMAG (cropped and zero-padded FFT lengths), ATAN2 (every quadrant and
/// the origin), BUCKETIZE, REVERSE_SEQUENCE, SPARSE_TO_DENSE, L2_POOL_2D and
/// DYNAMIC_UPDATE_SLICE (start clamped), FAKE_QUANT (TF's nudged range) and a read-only
/// resource variable (its CALL_ONCE init value).
#[test]
fn converter_builtins_read_and_match_litert() {
    for name in [
        "float_vision_ops",
        "float_conv3d",
        "float_nms",
        "float_matrix_ops",
        "float_sparse",
        "float_fft",
        "float_tf_ops",
        "float_l2_pool",
        "float_update_slice",
        "float_fake_quant",
        "float_variables",
    ] {
        for size in [None, Some("batch3")] {
            let f = tflite_fixture(name, size);
            if !f.dir.exists() {
                continue;
            }
            let g = readers::read(&f.model, &ReadOptions::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let got = mdeploy::eval::run(&g, &f.inputs()).unwrap_or_else(|e| panic!("{name}: {e}"));
            f.assert_expected(&format!("{name} {size:?}"), &got);
        }
    }
}

/// An int8 SOFTMAX between int8 BATCH_MATMULs (full-integer attention) evaluates as TFLite
/// computes it: tract 0.23 runs DequantizeLinear → Softmax → QuantizeLinear as its own integer
/// softmax, which leaves out the output zero point (every probability came out 0.996), so the
/// evaluator spells that QuantizeLinear out in float arithmetic.
#[test]
fn an_int8_attention_softmax_evaluates_as_tflite_computes_it() {
    let f = tflite_fixture("int8_attention", None);
    let g = readers::read(&f.model, &ReadOptions::default()).unwrap();
    let got = mdeploy::eval::run(&g, &f.inputs()).unwrap();
    f.assert_expected("int8_attention", &got);
}

/// A signature that assigns a resource variable keeps state across invocations: its
/// ASSIGN_VARIABLE, and the reads in that graph, are refused by name (the other signature of the
/// same file, which only reads it, is read above).
#[test]
fn a_graph_assigning_a_resource_variable_is_refused_by_name() {
    let f = tflite_fixture("float_variables", None);
    let opts = ReadOptions {
        signature: Some("bump".into()),
        ..ReadOptions::default()
    };
    let e = readers::read(&f.model, &opts).unwrap_err().to_string();
    assert!(e.contains("unsupported op ASSIGN_VARIABLE"), "{e}");
    assert!(e.contains("unsupported op READ_VARIABLE"), "{e}");
}

/// TF math TFLite has no builtin for (TruncateMod/Mod on floats and ints, asin … atanh,
/// MatrixBandPart), written through the lowering `passes::lower` makes for TFLite, read back and
/// run against TensorFlow's own outputs; at a second batch size too.
#[test]
fn tf_math_without_builtins_is_lowered_exactly_enough_for_tflite() {
    let dir = crate::common::repo().join("fixtures/saved_model/module_more_ops");
    let out = crate::common::tempdir();
    let mut g = readers::read(&dir.join("model"), &ReadOptions::default()).unwrap();
    let w = TfliteWriter { nhwc_io: false };
    w.legalize(&mut g).unwrap();
    let ops: Vec<String> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert!(!ops.iter().any(|o| o == "Trilu" || o == "Asin"), "{ops:?}");
    let path = out.path().join("more_ops.tflite");
    std::fs::write(&path, w.to_bytes(&g).unwrap()).unwrap();
    let back = readers::read(&path, &ReadOptions::default()).unwrap();
    for set in [None, Some("other")] {
        let f = crate::common::Fixture {
            name: "module_more_ops".into(),
            model: path.clone(),
            dir: set.map_or(dir.clone(), |s| dir.join("sizes").join(s)),
        };
        let got = mdeploy::eval::run(&back, &f.inputs()).unwrap();
        f.assert_expected(&format!("module_more_ops {set:?} via .tflite"), &got);
    }
}

/// The recurrent builtins published models carry that the converter no longer writes, built
/// with TensorFlow's schema API: BIDIRECTIONAL_SEQUENCE_LSTM (batch-major, merged, a cell clip
/// that binds, forward peepholes; time-major, separate outputs, backward peepholes), LSTM (one
/// step: the full kernel with a cell clip that binds within the step; the basic kernel with its
/// states as model inputs and outputs) and SVDF (rank 2 with RELU and a
/// bias, rank 1 without): evaluated as LiteRT computes them on a fresh interpreter (zero
/// variable-tensor states).
#[test]
fn recurrent_builtins_evaluate_as_litert_computes_them() {
    let clip = |c: f32, n: usize| vec![Some(c); n];
    for (name, clips) in [
        ("float_bidirectional_lstm", clip(0.5, 2)),
        ("float_bidirectional_lstm_time_major", vec![None, None]),
        ("float_lstm_step", clip(0.3, 1)),
        ("float_lstm_basic", vec![]),
        ("float_svdf", vec![]),
    ] {
        let f = tflite_fixture(name, None);
        let g = readers::read(&f.model, &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cell_clips(&g), clips, "{name}");
        let got = mdeploy::eval::run(&g, &f.inputs()).unwrap_or_else(|e| panic!("{name}: {e}"));
        f.assert_expected(name, &got);
    }
}
