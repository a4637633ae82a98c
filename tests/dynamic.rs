//! Ops whose shape-like operands are computed at run time (`Op::Dynamic`): built where an operand
//! is a graph input, written to ONNX as the same op over the same inputs, run by `eval` with the
//! operand bound to the value given, made static as soon as the operand is a constant, and
//! written to TFLite / TF.js as ops that read the operand from a tensor (or refused naming it).
//! Running those files is the conformance tier's job (`node:<name>:tflite`, `:tfjs`).

use crate::common::tempdir;
use mdeploy::ir::ops::{Dynamic, ReduceKind};
use mdeploy::ir::{fixed_shape, DType, Dim, Graph, Op, Tensor, TensorType};
use mdeploy::passes::{cleanup, PassContext};
use mdeploy::readers::{self, ReadOptions};
use mdeploy::writers::onnx::OnnxWriter;
use mdeploy::writers::tfjs::graph::GraphWriter;
use mdeploy::writers::tflite::TfliteWriter;
use mdeploy::writers::Writer;
use tract_tflite::tflite::{self, BuiltinOperator};

fn x_values() -> Tensor {
    let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
    Tensor::from_f32(vec![2, 3, 4], &v)
}

/// `y = reshape(x, shape)` with `shape` a graph input (or a constant).
fn reshape_graph(shape: Option<&[i64]>) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[2, 3, 4])));
    let s = match shape {
        Some(v) => g.add_const("shape", Tensor::from_i64(vec![v.len()], v)),
        None => g.add_input("shape", TensorType::new(DType::I64, fixed_shape(&[2]))),
    };
    let d = Dynamic::Reshape { allowzero: false };
    g.outputs = g
        .add_node("reshape", Op::Dynamic(d), vec![x, s], &["y".into()])
        .unwrap();
    g.verify().unwrap();
    g
}

#[test]
fn the_output_rank_is_known_and_its_dims_are_symbols() {
    let g = reshape_graph(None);
    let y = g.ty(g.outputs[0]);
    assert_eq!(y.rank(), 2);
    assert!(y.shape.iter().all(|d| matches!(d, Dim::Sym(_))), "{y}");
}

#[test]
fn evaluation_binds_the_operand_to_the_value_given() {
    let g = reshape_graph(None);
    for (shape, want) in [(vec![4, 6], vec![4, 6]), (vec![-1, 2], vec![12, 2])] {
        let s = Tensor::from_i64(vec![2], &shape);
        let out = mdeploy::eval::run(&g, &[x_values(), s]).unwrap();
        assert_eq!(out[0].shape, want);
        assert_eq!(out[0].to_f64s(), x_values().to_f64s());
    }
    // A value the op cannot take is refused naming the node.
    let bad = Tensor::from_i64(vec![2], &[5, 5]);
    let e = mdeploy::eval::run(&g, &[x_values(), bad])
        .unwrap_err()
        .to_string();
    assert!(e.contains("'reshape'") && e.contains("target shape"), "{e}");
}

#[test]
fn a_constant_operand_makes_the_op_static_and_the_sizes_known() {
    let mut g = reshape_graph(Some(&[6, -1]));
    cleanup(&mut g, &mut PassContext::default()).unwrap();
    assert_eq!(g.nodes.len(), 1);
    assert_eq!(g.nodes[0].op.name(), "Reshape");
    assert_eq!(g.ty(g.outputs[0]).shape, fixed_shape(&[6, 4]));
}

#[test]
fn the_onnx_writer_keeps_the_operand_an_input_and_reads_back_the_same() {
    let g = reshape_graph(None);
    let dir = tempdir();
    let out = dir.path().join("m.onnx");
    OnnxWriter::default().write(&g, &out).unwrap();
    let back = readers::read(&out, &ReadOptions::default()).unwrap();
    assert_eq!(back.inputs.len(), 2);
    assert_eq!(back.nodes.len(), 1);
    assert_eq!(
        back.nodes[0].op,
        Op::Dynamic(Dynamic::Reshape { allowzero: false })
    );
    let s = Tensor::from_i64(vec![2], &[3, 8]);
    let out = mdeploy::eval::run(&back, &[x_values(), s]).unwrap();
    assert_eq!(out[0].shape, vec![3, 8]);
}

#[test]
fn reductions_over_run_time_axes_keep_onnx_empty_axes_rules() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[2, 3, 4])));
    let axes = g.add_input("axes", TensorType::new(DType::I64, vec![Dim::Fixed(0)]));
    for (name, noop) in [("sum_all", false), ("noop", true)] {
        let d = Dynamic::Reduce {
            kind: ReduceKind::Sum,
            keep_dims: false,
            noop_with_empty_axes: noop,
        };
        let y = g
            .add_node(name, Op::Dynamic(d), vec![x, axes], &[format!("{name}:0")])
            .unwrap();
        g.outputs.extend(y);
    }
    g.verify().unwrap();
    let none = Tensor::from_i64(vec![0], &[]);
    let out = mdeploy::eval::run(&g, &[x_values(), none]).unwrap();
    assert_eq!(out[0].shape, Vec::<usize>::new());
    assert_eq!(out[0].to_f64s(), vec![(0..24).sum::<i32>() as f64]);
    assert_eq!(out[1].to_f64s(), x_values().to_f64s());
}

/// NonMaxSuppression with its output limit a graph input: neither channels-last writer has
/// ONNX's per-batch-and-class form.
fn nms_graph() -> Graph {
    let mut g = Graph::new();
    let boxes = g.add_input(
        "boxes",
        TensorType::new(DType::F32, fixed_shape(&[1, 6, 4])),
    );
    let scores = g.add_input(
        "scores",
        TensorType::new(DType::F32, fixed_shape(&[1, 1, 6])),
    );
    let limit = g.add_input("limit", TensorType::new(DType::I64, fixed_shape(&[1])));
    let iou = g.add_const("iou", Tensor::from_f32(vec![1], &[0.5]));
    let score = g.add_const("score", Tensor::from_f32(vec![1], &[0.0]));
    let d = Dynamic::NonMaxSuppression {
        center_point_box: false,
    };
    let inputs = vec![boxes, scores, limit, iou, score];
    g.outputs = g
        .add_node("nms", Op::Dynamic(d), inputs, &["selected".into()])
        .unwrap();
    g.verify().unwrap();
    g
}

#[test]
fn a_writer_without_the_dynamic_form_refuses_naming_the_operand() {
    let writers: [Box<dyn Writer>; 2] = [
        Box::new(TfliteWriter::default()),
        Box::new(GraphWriter::default()),
    ];
    for w in writers {
        let mut g = nms_graph();
        w.legalize(&mut g).unwrap();
        let refused = w.check(&g);
        assert_eq!(refused.len(), 1, "{}: {refused:?}", w.name());
        assert!(
            refused[0]
                .reason
                .contains("NonMaxSuppression limits computed at run time"),
            "{}: {refused:?}",
            w.name()
        );
        assert_eq!(refused[0].node, "nms");
    }
}

/// The builtin operators of a written TFLite file, in order, with each one's input tensors
/// (type, whether it holds data).
fn tflite_ops(g: &mut Graph) -> Vec<(BuiltinOperator, Vec<(tflite::TensorType, bool)>)> {
    let w = TfliteWriter::default();
    w.legalize(g).unwrap();
    let bytes = w.to_bytes(g).unwrap();
    let m = tflite::root_as_model(&bytes).unwrap();
    let codes = m.operator_codes().unwrap();
    let sub = m.subgraphs().unwrap().get(0);
    let tensors = sub.tensors().unwrap();
    let buffers = m.buffers().unwrap();
    let mut out = Vec::new();
    for op in sub.operators().unwrap() {
        let code = codes.get(op.opcode_index() as usize).builtin_code();
        let ins = op
            .inputs()
            .unwrap()
            .iter()
            .filter(|&i| i >= 0)
            .map(|i| {
                let t = tensors.get(i as usize);
                let data = buffers.get(t.buffer() as usize).data();
                (t.type_(), data.is_some_and(|d| !d.is_empty()))
            })
            .collect();
        out.push((code, ins));
    }
    out
}

#[test]
fn tflite_reshape_reads_its_target_from_the_input_as_int32() {
    let ops = tflite_ops(&mut reshape_graph(None));
    let codes: Vec<_> = ops.iter().map(|(c, _)| *c).collect();
    // int64 target → CAST; ONNX's 0 (copy the input's dim) → EQUAL + SELECT_V2.
    assert_eq!(
        codes,
        [
            BuiltinOperator::CAST,
            BuiltinOperator::EQUAL,
            BuiltinOperator::SELECT_V2,
            BuiltinOperator::RESHAPE
        ]
    );
    let (_, ins) = &ops[3];
    assert_eq!(ins[1], (tflite::TensorType::INT32, false), "computed shape");
}

#[test]
fn tflite_tile_and_expand_take_their_operand_as_a_tensor() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[3, 1])));
    let reps = g.add_input("repeats", TensorType::new(DType::I64, fixed_shape(&[2])));
    let target = g.add_input("target", TensorType::new(DType::I64, fixed_shape(&[3])));
    let t = g
        .add_node(
            "tile",
            Op::Dynamic(Dynamic::Tile),
            vec![x, reps],
            &["t".into()],
        )
        .unwrap();
    let e = g
        .add_node(
            "expand",
            Op::Dynamic(Dynamic::Expand),
            vec![x, target],
            &["e".into()],
        )
        .unwrap();
    g.outputs = vec![t[0], e[0]];
    g.verify().unwrap();
    let ops = tflite_ops(&mut g);
    let find = |c: BuiltinOperator| ops.iter().find(|(o, _)| *o == c).unwrap().1.clone();
    assert_eq!(
        find(BuiltinOperator::TILE)[1],
        (tflite::TensorType::INT32, false)
    );
    // ONNX Expand broadcasts both ways: the shape is BROADCAST_ARGS of the input's dims
    // (a constant here) and the target.
    let args = find(BuiltinOperator::BROADCAST_ARGS);
    assert_eq!(args[0], (tflite::TensorType::INT32, true));
    assert_eq!(args[1], (tflite::TensorType::INT32, false));
    assert!(!find(BuiltinOperator::BROADCAST_TO)[1].1, "computed shape");
}

#[test]
fn tfjs_reads_operands_from_the_inputs_with_ops_the_converter_runs() {
    let mut g = reshape_graph(None);
    let w = GraphWriter::default();
    w.legalize(&mut g).unwrap();
    let dir = tempdir();
    let out = dir.path().join("m_tfjs");
    w.write(&g, &out).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    let nodes = m["modelTopology"]["node"].as_array().unwrap();
    for n in nodes {
        let op = n["op"].as_str().unwrap();
        assert!(crate::tfjs::TFJS_OPS.contains(&op), "{op}");
    }
    let reshape = nodes.iter().find(|n| n["op"] == "Reshape").unwrap();
    let shape = reshape["input"][1].as_str().unwrap();
    let from = nodes.iter().find(|n| n["name"] == shape).unwrap();
    assert_eq!(from["op"], "SelectV2", "ONNX's 0 copies the input's dim");
    assert_eq!(from["input"][2], "shape", "the graph input itself");
}

#[test]
fn reductions_with_run_time_axes_are_lowered_like_static_ones_and_evaluate_the_same() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[2, 3, 4])));
    let axes = g.add_input("axes", TensorType::new(DType::I64, fixed_shape(&[1])));
    let d = Dynamic::Reduce {
        kind: ReduceKind::LogSumExp,
        keep_dims: false,
        noop_with_empty_axes: false,
    };
    g.outputs = g
        .add_node("lse", Op::Dynamic(d), vec![x, axes], &["y".into()])
        .unwrap();
    g.verify().unwrap();
    let mut lowered = g.clone();
    TfliteWriter::default().legalize(&mut lowered).unwrap();
    assert!(TfliteWriter::default().check(&lowered).is_empty());
    assert!(!lowered.nodes.iter().any(|n| matches!(
        n.op,
        Op::Dynamic(Dynamic::Reduce {
            kind: ReduceKind::LogSumExp,
            ..
        })
    )));
    for a in [-1, 0, 1] {
        let inputs = [x_values(), Tensor::from_i64(vec![1], &[a])];
        let want = mdeploy::eval::run(&g, &inputs).unwrap();
        let got = mdeploy::eval::run(&lowered, &inputs).unwrap();
        assert_eq!(got[0].shape, want[0].shape);
        for (a, b) in got[0].to_f64s().iter().zip(want[0].to_f64s()) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

/// The probe of issue 16: `ConstantOfShape([2^40, 2^20]) + x` once "verified" with max_abs 0
/// because tract computed a `[0, 2^20]` tensor for both sides and the comparison looked at no
/// element. Evaluation now refuses it before running, naming the value too large to hold (and
/// checks every value it does compute against the shape the graph declares).
#[test]
fn an_output_evaluated_smaller_than_declared_fails_instead_of_comparing_nothing() {
    use mdeploy::ir::ops::ConstantOfShape;
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[1])));
    let s = g.add_const("s", Tensor::from_i64(vec![2], &[1 << 40, 1 << 20]));
    let c = ConstantOfShape {
        value: Tensor::from_f32(vec![], &[0.0]),
    };
    let big = g
        .add_node("fill", Op::ConstantOfShape(c), vec![s], &["c".into()])
        .unwrap();
    g.outputs = g
        .add_node(
            "add",
            Op::Binary(mdeploy::ir::ops::BinaryOp::Add),
            vec![big[0], x],
            &["y".into()],
        )
        .unwrap();
    let e = mdeploy::eval::run(&g, &[Tensor::from_f32(vec![1], &[1.0])])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("evaluation refused: 'c'") && e.contains("elements"),
        "{e}"
    );
}

#[test]
fn a_comparison_counts_the_elements_it_compared() {
    let a = x_values();
    let c = mdeploy::eval::compare("x", &a, &a);
    assert_eq!(c.elements, 24);
    let other = Tensor::from_f32(
        vec![24],
        &a.to_f64s().iter().map(|&v| v as f32).collect::<Vec<_>>(),
    );
    let c = mdeploy::eval::compare("x", &other, &a);
    assert!(!c.shape_matches && c.elements == 0);
}

#[test]
fn verify_checks_a_model_with_run_time_sizes_at_two_sizes_and_says_which() {
    let dir = tempdir();
    let out = dir.path().join("m.onnx");
    let model = crate::common::repo().join("fixtures/onnx/dynamic_batch/model.onnx");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .arg("convert")
        .arg(&model)
        .args(["--to", "onnx", "--verify", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    for size in ["[batch=2]", "[batch=3]"] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("verify ") && l.contains(size) && l.ends_with("ok")),
            "{size}: {err}"
        );
    }
}

/// `y[:, -1]` over a sequence of any length (the last step of an RNN, as PyTorch exports it):
/// TFLite and TF do not count a gather index from the end, so the writers take it as a slice.
/// Each written file is read back and evaluated at two lengths against the source.
#[test]
fn the_last_step_of_a_run_time_length_is_gathered_by_every_writer() {
    let source = || {
        let mut g = Graph::new();
        let shape = vec![
            Dim::Sym("batch".into()),
            Dim::Sym("seq".into()),
            Dim::Fixed(4),
        ];
        let x = g.add_input("x", TensorType::new(DType::F32, shape));
        let last = g.add_const("last", Tensor::from_i64s(DType::I64, vec![], &[-1]));
        let gather = Op::Gather(mdeploy::ir::ops::Gather { axis: 1 });
        g.outputs = g
            .add_node("last_step", gather, vec![x, last], &["y".into()])
            .unwrap();
        g
    };
    let dir = tempdir();
    let writers: Vec<(Box<dyn Writer>, &str)> = vec![
        (Box::new(TfliteWriter::default()), "m.tflite"),
        (Box::new(GraphWriter::default()), "m_tfjs"),
    ];
    for (w, file) in writers {
        let mut g = source();
        w.legalize(&mut g).unwrap();
        assert!(w.check(&g).is_empty(), "{}: {:?}", w.name(), w.check(&g));
        let out = dir.path().join(file);
        w.write(&g, &out).unwrap();
        let back = readers::read(&out, &ReadOptions::default()).unwrap();
        for seq in [3usize, 7] {
            let v: Vec<f32> = (0..2 * seq * 4).map(|i| i as f32).collect();
            let x = Tensor::from_f32(vec![2, seq, 4], &v);
            let want = mdeploy::eval::run(&source(), std::slice::from_ref(&x)).unwrap();
            let got = mdeploy::eval::run(&back, &[x]).unwrap();
            assert_eq!(got[0].shape, vec![2, 4], "{}", w.name());
            assert_eq!(
                got[0].to_f64s(),
                want[0].to_f64s(),
                "{} at length {seq}",
                w.name()
            );
            let last_of_first = ((seq - 1) * 4) as f64;
            assert_eq!(got[0].to_f64s()[0], last_of_first, "{}", w.name());
        }
    }
}
