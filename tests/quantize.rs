//! Quantization (issue 7): the pass on the IR, the ONNX and TFLite forms it writes, the CLI.
//! The runtimes themselves run these outputs in the conformance tier (conformance/quantized.py).

use crate::common::repo;
use mdeploy::ir::{DType, Graph, Op};
use mdeploy::passes::quantize::{quantize_weights, Form, Mode, QuantizeOptions};
use mdeploy::readers::{self, ReadOptions};
use std::process::{Command, Output};
use tract_tflite::tflite::{self, BuiltinOperator};

fn mdeploy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .output()
        .expect("runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const CNN: &str = "fixtures/digits/cnn/model.keras";
const CALIB: &str = "fixtures/digits/cnn/calibration.npy";

fn path(p: &str) -> String {
    repo().join(p).display().to_string()
}

fn read(p: &str) -> Graph {
    let p = repo().join(p);
    let g = readers::detect(&p)
        .unwrap()
        .read(&p, &ReadOptions::default())
        .unwrap();
    g.verify().unwrap();
    g
}

fn opts(mode: Mode) -> QuantizeOptions {
    QuantizeOptions {
        mode,
        exclude: vec![],
        form: Form::Qdq,
        float_depthwise: false,
    }
}

/// Runs mdeploy, expecting success; returns the output file's bytes.
fn quantize(args: &[&str], out_name: &str) -> (Vec<u8>, String) {
    let dir = crate::common::tempdir();
    let out = dir.path().join(out_name);
    let mut all: Vec<&str> = args.to_vec();
    let o_str = out.display().to_string();
    all.extend(["-o", &o_str]);
    let o = mdeploy(&all);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    (std::fs::read(&out).unwrap(), stderr(&o))
}

#[test]
fn int8_weights_are_per_channel_with_one_scale_per_output_channel() {
    let mut g = read(CNN);
    mdeploy::writers::onnx::legalize(&mut g).unwrap();
    let floats_before = g.parameter_stats().1;
    let stats = quantize_weights(&mut g, &opts(Mode::Int8)).unwrap();
    g.verify().unwrap();
    assert!(stats.tensors >= 4 && stats.per_channel >= 4, "{stats:?}");
    let mut kernels = 0;
    for n in &g.nodes {
        let (Op::Conv(_) | Op::MatMul(_)) = &n.op else {
            continue;
        };
        let w = n.inputs[1];
        let dq = g
            .nodes
            .iter()
            .find(|d| d.outputs[0] == w)
            .expect("weights come from a node");
        let Op::DequantizeLinear(q) = &dq.op else {
            panic!("{}: weights from {}", n.name, dq.op.name())
        };
        let data = g.constant(dq.inputs[0]).expect("int8 constant");
        assert_eq!(data.dtype, DType::I8);
        let scales = g.constant(dq.inputs[1]).unwrap();
        // One scale per output channel: axis 0 of OIHW, axis 1 of a [in, out] dense kernel.
        let want = match n.op {
            Op::Conv(_) => data.shape[0],
            _ => data.shape[1],
        };
        assert_eq!(q.axis, if matches!(n.op, Op::Conv(_)) { 0 } else { 1 });
        assert_eq!(scales.len(), want, "{}", n.name);
        let quant = g.value(dq.inputs[0]).quant.as_ref().unwrap();
        assert_eq!(quant.scale.len(), want);
        kernels += 1;
    }
    assert_eq!(kernels, 4);
    // No float kernel is left behind: the weight bytes shrink about fourfold.
    let after = g.parameter_stats().1;
    assert!(after * 10 < floats_before * 3, "{after} vs {floats_before}");
}

#[test]
fn float16_weights_are_half_the_bytes_and_cast_back() {
    let mut g = read(CNN);
    mdeploy::writers::onnx::legalize(&mut g).unwrap();
    let before = g.parameter_stats().1;
    let stats = quantize_weights(&mut g, &opts(Mode::Float16)).unwrap();
    g.verify().unwrap();
    assert!(stats.tensors >= 4);
    let casts: Vec<_> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Cast(_)))
        .collect();
    assert_eq!(casts.len(), stats.tensors);
    for c in casts {
        assert_eq!(g.constant(c.inputs[0]).unwrap().dtype, DType::F16);
        assert_eq!(g.ty(c.outputs[0]).dtype, DType::F32);
    }
    let after = g.parameter_stats().1;
    assert!(after * 100 < before * 52, "{after} vs {before}");
    // The graph's I/O stays float32.
    for &v in g.inputs.iter().chain(&g.outputs) {
        assert_eq!(g.ty(v).dtype, DType::F32);
    }
}

#[test]
fn exclude_keeps_matching_nodes_float() {
    let mut g = read(CNN);
    mdeploy::writers::onnx::legalize(&mut g).unwrap();
    let mut o = opts(Mode::Int8);
    o.exclude = vec!["conv1*".into()];
    let stats = quantize_weights(&mut g, &o).unwrap();
    assert!(!stats.excluded_nodes.is_empty());
    let conv1 = g
        .nodes
        .iter()
        .find(|n| n.name.starts_with("conv1") && matches!(n.op, Op::Conv(_)))
        .expect("conv1");
    let k = g
        .constant(conv1.inputs[1])
        .expect("conv1's kernel stays a constant");
    assert_eq!(k.dtype, DType::F32);
    let conv2 = g
        .nodes
        .iter()
        .find(|n| n.name.starts_with("conv2") && matches!(n.op, Op::Conv(_)))
        .expect("conv2");
    assert!(g.constant(conv2.inputs[1]).is_none(), "conv2 is quantized");
}

#[test]
fn onnx_output_is_qdq_never_integer_ops_and_deterministic() {
    for args in [
        vec!["quantize", CNN, "--int8", "--to", "onnx"],
        vec![
            "quantize",
            CNN,
            "--int8",
            "--calibration",
            CALIB,
            "--to",
            "onnx",
        ],
    ] {
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if a.starts_with("fixtures/") {
                    path(a)
                } else {
                    a.to_string()
                }
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (a, _) = quantize(&args, "q.onnx");
        let (b, _) = quantize(&args, "q.onnx");
        assert_eq!(a, b, "same input and flags give the same bytes");
        let text = String::from_utf8_lossy(&a);
        for forbidden in [
            "ConvInteger",
            "MatMulInteger",
            "QLinearConv",
            "QLinearMatMul",
        ] {
            assert!(!text.contains(forbidden), "{forbidden} in {args:?}");
        }
        assert!(text.contains("DequantizeLinear"));
        // Evaluates (tract) and keeps the source's I/O.
        let dir = crate::common::tempdir();
        let p = dir.path().join("q.onnx");
        std::fs::write(&p, &a).unwrap();
        let input = mdeploy::npy::read(&repo().join("fixtures/digits/cnn/input.npy")).unwrap();
        let out = mdeploy::eval::run_onnx_file(&p, &[input]).unwrap();
        let want = mdeploy::npy::read(&repo().join("fixtures/digits/cnn/expected.npy")).unwrap();
        let c = mdeploy::eval::compare("probs", &out[0], &want);
        assert!(c.cosine > 0.999 && c.max_abs < 0.05, "{args:?}: {c:?}");
    }
}

fn tflite_of(args: &[&str]) -> Vec<u8> {
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            if a.starts_with("fixtures/") {
                path(a)
            } else {
                a.to_string()
            }
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    quantize(&args, "q.tflite").0
}

fn ops_of(m: &tflite::Model) -> Vec<BuiltinOperator> {
    let codes = m.operator_codes().unwrap();
    let sg = m.subgraphs().unwrap().get(0);
    sg.operators()
        .unwrap()
        .iter()
        .map(|o| codes.get(o.opcode_index() as usize).builtin_code())
        .collect()
}

/// An int8 kernel's int32 bias carries, per output channel, input scale × weight scale and
/// zero point 0: what LiteRT's kernels and XNNPACK require of it.
fn assert_bias_scales(x: &tflite::Tensor, w: &tflite::Tensor, b: &tflite::Tensor) {
    let scales = |t: &tflite::Tensor| -> Vec<f32> {
        t.quantization()
            .and_then(|q| q.scale())
            .map(|s| s.iter().collect())
            .unwrap_or_default()
    };
    let (sx, sw, sb) = (scales(x), scales(w), scales(b));
    assert_eq!(sb.len(), sw.len(), "bias '{:?}' scales", b.name());
    for (c, (&w, &b)) in sw.iter().zip(&sb).enumerate() {
        assert!(
            (sx[0] * w - b).abs() <= 1e-6 * b.abs(),
            "channel {c}: {} × {w} ≠ {b}",
            sx[0]
        );
    }
}

/// Batch norms exported as per-channel Mul/Add (Keras 3's `model.export`) fold into the
/// convolutions before weights are quantized: the int8 ONNX model has no float Mul/Add left
/// between its convolutions, and every int8 TFLite convolution's bias is scaled, also where the
/// source convolution had none.
#[test]
fn arithmetic_batch_norms_fold_before_quantizing() {
    let model = "fixtures/saved_model/keras_cnn_export/model";
    let calib = "fixtures/saved_model/keras_cnn_export/input.npy";
    let source = read(model);
    let count = |g: &Graph, name: &str| g.nodes.iter().filter(|n| n.op.name() == name).count();
    assert!(
        count(&source, "Mul") > 0,
        "the fixture's batch norms are arithmetic"
    );
    let (onnx, _) = quantize(
        &[
            "quantize",
            &path(model),
            "--int8",
            "--calibration",
            &path(calib),
            "--to",
            "onnx",
        ],
        "q.onnx",
    );
    let dir = crate::common::tempdir();
    let file = dir.path().join("q.onnx");
    std::fs::write(&file, &onnx).unwrap();
    let q = readers::read(&file, &ReadOptions::default()).unwrap();
    assert_eq!(
        (count(&q, "Mul"), count(&q, "Add")),
        (0, 0),
        "float affine ops remain"
    );
    let bytes = tflite_of(&[
        "quantize",
        model,
        "--int8",
        "--calibration",
        calib,
        "--to",
        "tflite",
    ]);
    let m = tflite::root_as_model(&bytes).unwrap();
    let sg = m.subgraphs().unwrap().get(0);
    let tensors = sg.tensors().unwrap();
    let ops = ops_of(&m);
    let mut convs = 0;
    for (k, op) in sg.operators().unwrap().iter().enumerate() {
        if matches!(
            ops[k],
            BuiltinOperator::CONV_2D | BuiltinOperator::DEPTHWISE_CONV_2D
        ) {
            let ins = op.inputs().unwrap();
            let t = |i: usize| tensors.get(ins.get(i) as usize);
            assert_bias_scales(&t(0), &t(1), &t(2));
            convs += 1;
        }
    }
    assert!(convs > 0, "{ops:?}");
}

#[test]
fn tflite_full_integer_has_int8_activations_and_int32_biases() {
    for io in ["float", "int8"] {
        let bytes = tflite_of(&[
            "quantize",
            CNN,
            "--int8",
            "--calibration",
            CALIB,
            "--io",
            io,
            "--to",
            "tflite",
        ]);
        let again = tflite_of(&[
            "quantize",
            CNN,
            "--int8",
            "--calibration",
            CALIB,
            "--io",
            io,
            "--to",
            "tflite",
        ]);
        assert_eq!(bytes, again, "same input and flags give the same bytes");
        let m = tflite::root_as_model(&bytes).unwrap();
        let sg = m.subgraphs().unwrap().get(0);
        let tensors = sg.tensors().unwrap();
        let ops = ops_of(&m);
        let sgo = sg.operators().unwrap();
        let mut int8_convs = 0;
        for (k, op) in sgo.iter().enumerate() {
            let ins = op.inputs().unwrap();
            let t = |i: usize| tensors.get(ins.get(i) as usize);
            match ops[k] {
                BuiltinOperator::CONV_2D | BuiltinOperator::FULLY_CONNECTED => {
                    assert_eq!(t(0).type_(), tflite::TensorType::INT8, "activation in");
                    assert_eq!(t(1).type_(), tflite::TensorType::INT8, "weights");
                    assert_eq!(t(2).type_(), tflite::TensorType::INT32, "bias");
                    let out = tensors.get(op.outputs().unwrap().get(0) as usize);
                    assert_eq!(out.type_(), tflite::TensorType::INT8);
                    let q = out.quantization().unwrap();
                    assert_eq!(q.scale().unwrap().len(), 1);
                    // Per-channel weight scales, one per output channel (axis 0 of OHWI / [out, in]).
                    let wq = t(1).quantization().unwrap();
                    let out_c = t(1).shape().unwrap().get(0) as usize;
                    assert_eq!(wq.scale().unwrap().len(), out_c);
                    assert_eq!(wq.quantized_dimension(), 0);
                    assert_bias_scales(&t(0), &t(1), &t(2));
                    int8_convs += 1;
                }
                _ => {}
            }
        }
        assert_eq!(int8_convs, 4, "{ops:?}");
        let input = tensors.get(sg.inputs().unwrap().get(0) as usize);
        let want = if io == "int8" {
            tflite::TensorType::INT8
        } else {
            tflite::TensorType::FLOAT32
        };
        assert_eq!(input.type_(), want, "--io {io}");
        if io == "float" {
            assert!(ops.contains(&BuiltinOperator::QUANTIZE));
        } else {
            assert!(input.quantization().and_then(|q| q.scale()).is_some());
        }
    }
}

#[test]
fn tflite_dynamic_range_is_hybrid_and_float16_uses_dequantize() {
    let int8 = tflite_of(&["quantize", CNN, "--int8", "--to", "tflite"]);
    let f16 = tflite_of(&["quantize", CNN, "--float16", "--to", "tflite"]);
    let float = {
        let dir = crate::common::tempdir();
        let out = dir.path().join("f.tflite");
        let o = mdeploy(&[
            "convert",
            &path(CNN),
            "--to",
            "tflite",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        std::fs::read(out).unwrap()
    };
    assert!(
        int8.len() * 10 <= float.len() * 3,
        "{} vs {}",
        int8.len(),
        float.len()
    );
    assert!(
        f16.len() * 100 <= float.len() * 55,
        "{} vs {}",
        f16.len(),
        float.len()
    );
    // int8: hybrid CONV_2D / FULLY_CONNECTED (float activations, int8 per-channel kernels).
    let m = tflite::root_as_model(&int8).unwrap();
    let ops = ops_of(&m);
    assert!(!ops.contains(&BuiltinOperator::DEQUANTIZE), "{ops:?}");
    let sg = m.subgraphs().unwrap().get(0);
    let tensors = sg.tensors().unwrap();
    let mut hybrid = 0;
    for (k, op) in sg.operators().unwrap().iter().enumerate() {
        if !matches!(
            ops[k],
            BuiltinOperator::CONV_2D | BuiltinOperator::FULLY_CONNECTED
        ) {
            continue;
        }
        let ins = op.inputs().unwrap();
        let (x, w) = (
            tensors.get(ins.get(0) as usize),
            tensors.get(ins.get(1) as usize),
        );
        assert_eq!(x.type_(), tflite::TensorType::FLOAT32);
        assert_eq!(w.type_(), tflite::TensorType::INT8);
        let out_c = w.shape().unwrap().get(0) as usize;
        assert_eq!(w.quantization().unwrap().scale().unwrap().len(), out_c);
        if ops[k] == BuiltinOperator::FULLY_CONNECTED {
            let o = op.builtin_options_as_fully_connected_options().unwrap();
            assert!(o.asymmetric_quantize_inputs());
        }
        hybrid += 1;
    }
    assert_eq!(hybrid, 4, "{ops:?}");
    // float16: FLOAT16 constants through DEQUANTIZE, never CAST.
    let m = tflite::root_as_model(&f16).unwrap();
    let ops = ops_of(&m);
    assert!(ops.contains(&BuiltinOperator::DEQUANTIZE), "{ops:?}");
    assert!(!ops.contains(&BuiltinOperator::CAST), "{ops:?}");
    for bytes in [&int8, &f16] {
        let m = tflite::root_as_model(bytes).unwrap();
        let sg = m.subgraphs().unwrap().get(0);
        let tensors = sg.tensors().unwrap();
        for io in sg.inputs().unwrap().iter() {
            assert_eq!(
                tensors.get(io as usize).type_(),
                tflite::TensorType::FLOAT32
            );
        }
    }
}

#[test]
fn tolerance_past_the_error_exits_3_and_still_writes() {
    let dir = crate::common::tempdir();
    let out = dir.path().join("q.onnx");
    let report = dir.path().join("r.json");
    let o = mdeploy(&[
        "quantize",
        &path(CNN),
        "--int8",
        "--to",
        "onnx",
        "--tolerance",
        "1e-9",
        "--report",
        report.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(out.exists(), "the output is written");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let rel = r["accuracy"]["outputs"][0]["max_rel"].as_f64().unwrap();
    assert!(rel > 0.0);
    assert_eq!(r["quantization"]["mode"], "int8");
    // The bound is the measured error itself: just above it passes, just below it fails.
    for (tolerance, code) in [(rel * 1.01, 0), (rel * 0.99, 3)] {
        let t = format!("{tolerance:e}");
        let o = mdeploy(&[
            "quantize",
            &path(CNN),
            "--int8",
            "--to",
            "onnx",
            "--tolerance",
            &t,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(code),
            "--tolerance {t}: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("cosine"), "{}", stderr(&o));
    }
}

#[test]
fn usage_errors() {
    // Neither --int8 nor --float16; both; --io without calibration; calibration for the wrong model.
    for (args, code) in [
        (vec!["quantize", CNN], 2),
        (vec!["quantize", CNN, "--int8", "--float16"], 2),
        (vec!["quantize", CNN, "--int8", "--io", "int8"], 2),
        (
            vec![
                "quantize",
                CNN,
                "--int8",
                "--calibration",
                "fixtures/digits/cnn/y_test.npy",
            ],
            2,
        ),
    ] {
        let dir = crate::common::tempdir();
        let out = dir.path().join("q.onnx");
        let mut all: Vec<String> = args
            .iter()
            .map(|a| {
                if a.starts_with("fixtures/") {
                    path(a)
                } else {
                    a.to_string()
                }
            })
            .collect();
        all.extend(["-o".into(), out.display().to_string()]);
        let o = mdeploy(&all.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(!out.exists(), "{args:?}: nothing written");
    }
}

#[test]
fn tflite_int8_concatenation_inputs_share_the_output_parameters() {
    // Inception: branches with their own calibrated ranges meet in a CONCATENATION, whose int8
    // kernel copies bytes; inputs with other parameters must be requantized first.
    let model = "fixtures/keras/inception_block/model.keras";
    let calib = "fixtures/keras/inception_block/input.npy";
    let bytes = tflite_of(&[
        "quantize",
        model,
        "--int8",
        "--calibration",
        calib,
        "--to",
        "tflite",
    ]);
    let m = tflite::root_as_model(&bytes).unwrap();
    let sg = m.subgraphs().unwrap().get(0);
    let tensors = sg.tensors().unwrap();
    let ops = ops_of(&m);
    let params = |i: i32| {
        let t = tensors.get(i as usize);
        let q = t.quantization().and_then(|q| q.scale().zip(q.zero_point()));
        (t.type_(), q.map(|(s, z)| (s.get(0), z.get(0))))
    };
    let mut checked = 0;
    for (k, op) in sg.operators().unwrap().iter().enumerate() {
        if ops[k] != BuiltinOperator::CONCATENATION {
            continue;
        }
        let out = params(op.outputs().unwrap().get(0));
        if out.0 != tflite::TensorType::INT8 {
            continue;
        }
        for i in op.inputs().unwrap().iter() {
            assert_eq!(params(i), out, "CONCATENATION input {i}");
        }
        checked += 1;
    }
    assert!(checked >= 1, "no int8 CONCATENATION: {ops:?}");
    assert!(ops.contains(&BuiltinOperator::QUANTIZE));
}

#[test]
fn exclude_keeps_a_node_float_in_a_full_integer_tflite_model() {
    let bytes = tflite_of(&[
        "quantize",
        CNN,
        "--int8",
        "--calibration",
        CALIB,
        "--exclude",
        "conv2*",
        "--to",
        "tflite",
    ]);
    let m = tflite::root_as_model(&bytes).unwrap();
    let sg = m.subgraphs().unwrap().get(0);
    let tensors = sg.tensors().unwrap();
    let ops = ops_of(&m);
    let mut kinds = Vec::new();
    for (k, op) in sg.operators().unwrap().iter().enumerate() {
        if ops[k] != BuiltinOperator::CONV_2D {
            continue;
        }
        let ins = op.inputs().unwrap();
        let (x, w) = (
            tensors.get(ins.get(0) as usize),
            tensors.get(ins.get(1) as usize),
        );
        kinds.push((x.type_(), w.type_()));
    }
    // conv1 int8; conv2 float throughout (float input, float kernel).
    assert_eq!(
        kinds,
        vec![
            (tflite::TensorType::INT8, tflite::TensorType::INT8),
            (tflite::TensorType::FLOAT32, tflite::TensorType::FLOAT32),
        ]
    );
}

#[test]
fn default_output_sits_beside_the_input_named_by_the_mode() {
    let dir = crate::common::tempdir();
    let model = dir.path().join("net.onnx");
    std::fs::copy(repo().join("fixtures/onnx/mlp/model.onnx"), &model).unwrap();
    for (flag, name) in [
        ("--float16", "net_float16.onnx"),
        ("--int8", "net_int8.onnx"),
    ] {
        let o = mdeploy(&["quantize", model.to_str().unwrap(), flag, "--no-accuracy"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(dir.path().join(name).is_file(), "{name}: {}", stderr(&o));
    }
}

/// Full integer: an int8 op's output that only float ops read (the digits CNN's last dense
/// layer, read by the float Softmax) gets no Quantize/Dequantize round trip in the QDQ form,
/// while TFLite (whose int8 builtins write int8) keeps it.
#[test]
fn qdq_form_has_no_round_trip_before_float_ops() {
    use mdeploy::passes::quantize::activations::{plan, quantize_activations};
    for data_movement in [false, true] {
        let mut g = read(CNN);
        mdeploy::writers::onnx::legalize(&mut g).unwrap();
        let mut o = opts(Mode::Int8);
        o.form = if data_movement {
            Form::Tflite
        } else {
            Form::Qdq
        };
        quantize_weights(&mut g, &o).unwrap();
        let samples = mdeploy::accuracy::load_samples(&g, &repo().join(CALIB)).unwrap();
        let batches = mdeploy::accuracy::batches_of(&g, samples).unwrap();
        let plan = plan(&g, &o);
        let measured = mdeploy::eval::measure_ranges(&g, plan.values(), &batches).unwrap();
        quantize_activations(&mut g, plan, &measured).unwrap();
        g.verify().unwrap();
        let softmax = g
            .nodes
            .iter()
            .find(|n| matches!(n.op, Op::Softmax(_)))
            .expect("softmax");
        let producer = g
            .nodes
            .iter()
            .find(|n| n.outputs.contains(&softmax.inputs[0]))
            .unwrap();
        assert_eq!(
            matches!(producer.op, Op::DequantizeLinear(_)),
            data_movement,
            "softmax reads {} (int8 data movement: {data_movement})",
            producer.op.name()
        );
    }
}

/// The element type of input `k` of each operator `code` in subgraph 0.
fn input_types(m: &tflite::Model, code: BuiltinOperator, k: usize) -> Vec<tflite::TensorType> {
    let codes = m.operator_codes().unwrap();
    let sg = m.subgraphs().unwrap().get(0);
    let tensors = sg.tensors().unwrap();
    sg.operators()
        .unwrap()
        .iter()
        .filter(|o| codes.get(o.opcode_index() as usize).builtin_code() == code)
        .map(|o| tensors.get(o.inputs().unwrap().get(k) as usize).type_())
        .collect()
}

/// Dynamic range keeps depthwise kernels float (XNNPACK runs a hybrid depthwise convolution
/// outside the delegate; measured slower) while other convolutions get int8 kernels; full
/// integer quantizes them all.
#[test]
fn tflite_dynamic_range_keeps_depthwise_kernels_float() {
    let model = "fixtures/keras/depthwise_separable/model.keras";
    let dynamic = tflite_of(&["quantize", model, "--int8", "--to", "tflite"]);
    let m = tflite::root_as_model(&dynamic).unwrap();
    let depthwise = input_types(&m, BuiltinOperator::DEPTHWISE_CONV_2D, 1);
    assert!(!depthwise.is_empty());
    assert!(
        depthwise.iter().all(|&t| t == tflite::TensorType::FLOAT32),
        "{depthwise:?}"
    );
    let conv = input_types(&m, BuiltinOperator::CONV_2D, 1);
    assert!(
        !conv.is_empty() && conv.iter().all(|&t| t == tflite::TensorType::INT8),
        "{conv:?}"
    );
    let calib = "fixtures/keras/depthwise_separable/input.npy";
    let full = tflite_of(&[
        "quantize",
        model,
        "--int8",
        "--calibration",
        calib,
        "--to",
        "tflite",
    ]);
    let m = tflite::root_as_model(&full).unwrap();
    let depthwise = input_types(&m, BuiltinOperator::DEPTHWISE_CONV_2D, 1);
    assert!(
        depthwise.iter().all(|&t| t == tflite::TensorType::INT8),
        "{depthwise:?}"
    );
}

/// Full-integer ONNX in the form onnxruntime runs as integer kernels: uint8 activations with
/// int8 weights, and every DequantizeLinear feeding one node (a QDQ unit is fused only when its
/// DQs feed nothing else), also where a residual branch reads an activation that the next
/// layer reads too.
#[test]
fn qdq_form_is_uint8_activations_with_one_dequantize_per_consumer() {
    let model = path("fixtures/onnx/residual/model.onnx");
    let calib = path("fixtures/onnx/residual/input.npy");
    let args = [
        "quantize",
        &model,
        "--int8",
        "--calibration",
        &calib,
        "--to",
        "onnx",
    ];
    let (bytes, _) = quantize(&args, "q.onnx");
    let dir = crate::common::tempdir();
    let p = dir.path().join("q.onnx");
    std::fs::write(&p, &bytes).unwrap();
    let g = readers::detect(&p)
        .unwrap()
        .read(&p, &ReadOptions::default())
        .unwrap();
    let uses = g.use_counts();
    let dqs: Vec<&mdeploy::ir::Node> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::DequantizeLinear(_)))
        .collect();
    let activation_dqs: Vec<_> = dqs
        .iter()
        .filter(|n| g.constant(n.inputs[0]).is_none())
        .collect();
    assert!(
        activation_dqs.len() >= 3,
        "{} activation DQs",
        activation_dqs.len()
    );
    for n in &activation_dqs {
        assert_eq!(g.ty(n.inputs[0]).dtype, DType::U8, "{} reads int8", n.name);
    }
    for n in dqs.iter().filter(|n| g.constant(n.inputs[0]).is_some()) {
        let t = g.constant(n.inputs[0]).unwrap().dtype;
        assert!(
            matches!(t, DType::I8 | DType::I32),
            "{}: weights {t:?}",
            n.name
        );
    }
    for n in dqs {
        assert_eq!(uses[n.outputs[0].0], 1, "{} feeds several nodes", n.name);
    }
    // A DQ read twice before the pass: some pair of DQs shares its int8 input.
    let mut inputs: Vec<_> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::DequantizeLinear(_)))
        .map(|n| n.inputs[0])
        .collect();
    let all = inputs.len();
    inputs.sort();
    inputs.dedup();
    assert!(inputs.len() < all, "no activation is read by two DQs");
}

/// Dynamic-range ONNX: convolution kernels are int8 constants decoded by Cast and Mul (which
/// onnxruntime folds when the session starts, so the convolution runs at float speed), never a
/// DequantizeLinear (which it would run on every call); the file is still ~4× smaller.
#[test]
fn onnx_dynamic_range_decodes_conv_kernels_with_cast_and_mul() {
    let model = path("fixtures/onnx/cnn_bn/model.onnx");
    let (bytes, _) = quantize(&["quantize", &model, "--int8", "--to", "onnx"], "q.onnx");
    let float = std::fs::metadata(repo().join("fixtures/onnx/cnn_bn/model.onnx"))
        .unwrap()
        .len();
    assert!(
        (bytes.len() as u64) < float / 2,
        "{} vs {float}",
        bytes.len()
    );
    use prost::Message;
    let proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = proto.graph.unwrap();
    let producer = |v: &str| graph.node.iter().find(|n| n.output.iter().any(|o| o == v));
    let int8 = |v: &str| {
        graph
            .initializer
            .iter()
            .any(|t| t.name == v && t.data_type == 3)
    };
    let convs: Vec<_> = graph.node.iter().filter(|n| n.op_type == "Conv").collect();
    assert!(!convs.is_empty());
    for c in convs {
        let mul = producer(&c.input[1]).expect("kernel from a node");
        assert_eq!(
            mul.op_type, "Mul",
            "{}: kernel from {}",
            c.name, mul.op_type
        );
        let cast = mul
            .input
            .iter()
            .find_map(|i| producer(i).filter(|p| p.op_type == "Cast"))
            .expect("Mul of a Cast");
        assert!(
            int8(&cast.input[0]),
            "{}: Cast of an int8 initializer",
            c.name
        );
    }
}
