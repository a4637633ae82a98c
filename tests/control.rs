//! Control flow in the IR (`Op::If`, `Op::Loop`): bodies are graphs of their own whose last
//! inputs are the outer values they read; evaluation runs them itself (tract cannot); the ONNX
//! writer writes them as subgraphs reading those values by name, and the reader reads them back.

use crate::common::tempdir;
use mdeploy::ir::ops::{BinaryOp, Body, If, Loop};
use mdeploy::ir::{fixed_shape, DType, Graph, Op, Tensor, TensorType};
use mdeploy::readers::{self, ReadOptions};
use mdeploy::writers::onnx::OnnxWriter;
use mdeploy::writers::tflite::TfliteWriter;
use mdeploy::writers::Writer;

fn f32s(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F32, fixed_shape(shape))
}

/// A body `(inputs…) -> x op c` over its input `at`, with `c` a scalar constant.
fn arith(inputs: &[TensorType], at: usize, op: BinaryOp, c: f32, extra_out: bool) -> Graph {
    let mut b = Graph::new();
    let ids: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| b.add_input(&format!("in{i}"), t.clone()))
        .collect();
    let k = b.add_const("c", Tensor::from_f32(vec![], &[c]));
    let y = b
        .add_node("op", Op::Binary(op), vec![ids[at], k], &["y".into()])
        .unwrap();
    b.outputs = y.clone();
    if extra_out {
        b.outputs.push(y[0]);
    }
    b.verify().unwrap();
    b
}

/// `y = cond ? x * 2 : x - 1`, x read from outside by both branches.
fn if_graph() -> Graph {
    let mut g = Graph::new();
    let cond = g.add_input("cond", TensorType::new(DType::Bool, vec![]));
    let x = g.add_input("x", f32s(&[3]));
    let op = If {
        then_branch: Body::new(arith(&[f32s(&[3])], 0, BinaryOp::Mul, 2.0, false)),
        else_branch: Body::new(arith(&[f32s(&[3])], 0, BinaryOp::Sub, 1.0, false)),
    };
    g.outputs = g
        .add_node("if", Op::If(op), vec![cond, x], &["y".into()])
        .unwrap();
    g.verify().unwrap();
    g
}

/// `s ← s + x` four times from s = 0, collecting every s.
fn loop_graph() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32s(&[2]));
    let trip = g.add_const("trip", Tensor::scalar_i64(4));
    let cond = g.add_const("cond", Tensor::from_f64s(DType::Bool, vec![], &[1.0]));
    let s0 = g.add_const("s0", Tensor::from_f32(vec![2], &[0.0, 0.0]));
    let mut b = Graph::new();
    b.add_input("i", TensorType::new(DType::I64, vec![]));
    let c = b.add_input("c", TensorType::new(DType::Bool, vec![]));
    let s = b.add_input("s", f32s(&[2]));
    let bx = b.add_input("x", f32s(&[2]));
    let next = b
        .add_node(
            "add",
            Op::Binary(BinaryOp::Add),
            vec![s, bx],
            &["next".into()],
        )
        .unwrap()[0];
    b.outputs = vec![c, next, next];
    b.verify().unwrap();
    let op = Loop {
        body: Body::new(b),
        carried: 1,
    };
    g.outputs = g
        .add_node(
            "loop",
            Op::Loop(op),
            vec![trip, cond, s0, x],
            &["s".into(), "all".into()],
        )
        .unwrap();
    g.verify().unwrap();
    g
}

fn bool_t(v: bool) -> Tensor {
    Tensor::from_f64s(DType::Bool, vec![], &[v as u8 as f64])
}

#[test]
fn if_runs_the_branch_its_condition_picks() {
    let g = if_graph();
    let x = Tensor::from_f32(vec![3], &[1.0, 2.0, 3.0]);
    let then = mdeploy::eval::run(&g, &[bool_t(true), x.clone()]).unwrap();
    assert_eq!(then[0].to_f64s(), vec![2.0, 4.0, 6.0]);
    let other = mdeploy::eval::run(&g, &[bool_t(false), x]).unwrap();
    assert_eq!(other[0].to_f64s(), vec![0.0, 1.0, 2.0]);
}

#[test]
fn loop_carries_values_and_stacks_what_it_collects() {
    let g = loop_graph();
    assert_eq!(g.ty(g.outputs[0]).shape, fixed_shape(&[2]));
    let x = Tensor::from_f32(vec![2], &[1.0, -0.5]);
    let out = mdeploy::eval::run(&g, &[x]).unwrap();
    assert_eq!(out[0].to_f64s(), vec![4.0, -2.0]);
    assert_eq!(out[1].shape, vec![4, 2]);
    let rows: Vec<f64> = (1..=4).flat_map(|k| [k as f64, -0.5 * k as f64]).collect();
    assert_eq!(out[1].to_f64s(), rows);
}

#[test]
fn control_flow_survives_the_onnx_writer_and_reader() {
    for (g, inputs) in [
        (
            if_graph(),
            vec![bool_t(false), Tensor::from_f32(vec![3], &[5.0, 6.0, 7.0])],
        ),
        (loop_graph(), vec![Tensor::from_f32(vec![2], &[3.0, 1.0])]),
    ] {
        let dir = tempdir();
        let path = dir.path().join("m.onnx");
        OnnxWriter::default().write(&g, &path).unwrap();
        let back = readers::read(&path, &ReadOptions::default()).unwrap();
        let ops: Vec<String> = back.nodes.iter().map(|n| n.op.name()).collect();
        assert!(ops.iter().any(|o| o == "If" || o == "Loop"), "{ops:?}");
        let want = mdeploy::eval::run(&g, &inputs).unwrap();
        let got = mdeploy::eval::run(&back, &inputs).unwrap();
        assert_eq!(want, got);
    }
}

#[test]
fn a_body_that_does_not_fit_its_node_is_caught_by_verify() {
    let mut g = if_graph();
    let n = &mut g.nodes[0];
    n.op = Op::If(If {
        then_branch: Body::new(arith(&[f32s(&[4])], 0, BinaryOp::Mul, 2.0, false)),
        else_branch: Body::new(arith(&[f32s(&[3])], 0, BinaryOp::Sub, 1.0, false)),
    });
    let e = g.verify().unwrap_err();
    assert!(e.contains("'if'") && e.contains("then_branch"), "{e}");
}

/// `s ← s + c` over a state of run-time batch, collecting `s * 2` every step: the body types
/// its state with a symbol of its own, so only the state keeping its shape from one iteration
/// to the next tells that the collected rows are `[batch, 2]`. With `grow`, the state gets a
/// row longer every step instead and the rows' shape is known only inside the body.
fn batch_loop(grow: bool) -> Graph {
    use mdeploy::ir::ops::Concat;
    use mdeploy::ir::Dim;
    let mut g = Graph::new();
    let batch = Dim::Sym("batch".into());
    let x = g.add_input("x", TensorType::new(DType::F32, vec![batch, Dim::Fixed(2)]));
    let trip = g.add_input("trip", TensorType::new(DType::I64, vec![]));
    let cond = g.add_const("cond", bool_t(true));
    let mut b = Graph::new();
    b.continue_symbols(&g);
    b.add_input("i", TensorType::new(DType::I64, vec![]));
    let c = b.add_input("c", TensorType::new(DType::Bool, vec![]));
    let own = b.fresh_symbol();
    let s = b.add_input("s", TensorType::new(DType::F32, vec![own, Dim::Fixed(2)]));
    let one = b.add_const("one", Tensor::from_f32(vec![1, 2], &[1.0, -1.0]));
    let next = match grow {
        true => Op::Concat(Concat { axis: 0 }),
        false => Op::Binary(BinaryOp::Add),
    };
    let next = b.add_node("next", next, vec![s, one], &[]).unwrap()[0];
    let two = b.add_const("two", Tensor::from_f32(vec![], &[2.0]));
    let row = b
        .add_node("row", Op::Binary(BinaryOp::Mul), vec![next, two], &[])
        .unwrap()[0];
    b.outputs = vec![c, next, row];
    b.verify().unwrap();
    let op = Loop {
        body: Body::new(b),
        carried: 1,
    };
    g.outputs = g
        .add_node(
            "loop",
            Op::Loop(op),
            vec![trip, cond, x],
            &["s".into(), "all".into()],
        )
        .unwrap();
    g.verify().unwrap();
    g
}

#[test]
fn carrying_collected_values_gives_the_loop_results_for_any_trip_count() {
    use mdeploy::passes::loop_scan::carry_collected;
    let original = batch_loop(false);
    let mut g = original.clone();
    assert!(carry_collected(&mut g).unwrap());
    g.verify().unwrap();
    let Op::Loop(l) = &g.nodes.iter().find(|n| n.name == "loop").unwrap().op else {
        unreachable!("the loop stays a Loop")
    };
    assert_eq!((l.collected(), l.carried), (0, 2));
    let x = Tensor::from_f32(vec![3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    for trip in [4, 1, 0] {
        let inputs = [x.clone(), Tensor::scalar_i64(trip)];
        let want = mdeploy::eval::run(&original, &inputs).unwrap();
        let got = mdeploy::eval::run(&g, &inputs).unwrap();
        assert_eq!(got[1].shape, vec![trip as usize, 3, 2]);
        // With no rows the evaluator stacks the original's `[?, 2]` rows as `[0, 0, 2]`; the
        // rewritten loop knows they are `[batch, 2]`.
        let compared = if trip == 0 { 1 } else { 2 };
        assert_eq!(want[..compared], got[..compared], "trip count {trip}");
    }
}

#[test]
fn tflite_refuses_a_loop_whose_collected_shape_is_known_only_inside_by_name() {
    let mut g = batch_loop(true);
    let w = TfliteWriter::default();
    w.legalize(&mut g).unwrap();
    let refused = w.check(&g);
    assert!(
        refused.iter().any(|u| u.node == "loop"
            && u.reason.contains("collecting values per iteration")
            && u.reason.contains("is not known before the loop")),
        "{refused:?}"
    );
}

#[test]
fn tflite_writes_a_loop_that_collects_values_as_while_with_an_accumulator() {
    use tract_tflite::tflite::root_as_model;
    let mut g = loop_graph();
    let w = TfliteWriter::default();
    w.legalize(&mut g).unwrap();
    assert!(w.check(&g).is_empty(), "{:?}", w.check(&g));
    let bytes = w.to_bytes(&g).unwrap();
    let m = root_as_model(&bytes).unwrap();
    // main, the condition and the body: the counter, limit, condition, state and accumulator
    // are the body's inputs, besides the captured x.
    let subgraphs = m.subgraphs().unwrap();
    assert_eq!(subgraphs.len(), 3);
    assert_eq!(subgraphs.get(2).inputs().unwrap().len(), 6);
}

#[test]
fn tflite_writes_a_loop_as_while_with_condition_and_body_subgraphs() {
    use tract_tflite::tflite::{root_as_model, BuiltinOperator};
    let mut g = loop_graph();
    // Keep the carried value only: TFLite's WHILE has no per-iteration outputs.
    let Op::Loop(l) = &mut g.nodes[0].op else {
        unreachable!("loop_graph makes a Loop")
    };
    let body = std::sync::Arc::make_mut(&mut l.body.0);
    body.outputs.pop();
    g.nodes[0].outputs.pop();
    g.outputs.pop();
    g.verify().unwrap();
    let w = TfliteWriter::default();
    w.legalize(&mut g).unwrap();
    let bytes = w.to_bytes(&g).unwrap();
    let m = root_as_model(&bytes).unwrap();
    assert_eq!(m.subgraphs().unwrap().len(), 3);
    let codes = m.operator_codes().unwrap();
    let main = m.subgraphs().unwrap().get(0);
    let ops: Vec<BuiltinOperator> = main
        .operators()
        .unwrap()
        .iter()
        .map(|o| codes.get(o.opcode_index() as usize).builtin_code())
        .collect();
    assert!(ops.contains(&BuiltinOperator::WHILE), "{ops:?}");
}

/// An ONNX Scan-8 (batch axis first; a forward and a backward scanned input) summing into a
/// state and collecting `state * b`, with the semantics computed here as the reference.
mod scan8 {
    use super::*;
    use mdeploy::writers::tflite::TfliteWriter;
    use prost::Message;
    use tract_onnx::pb::{
        tensor_shape_proto::{dimension, Dimension},
        type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
        TensorShapeProto, TypeProto, ValueInfoProto,
    };

    const B: usize = 2;
    const T: usize = 3;

    fn info(name: &str, dims: &[i64]) -> ValueInfoProto {
        let dim = dims
            .iter()
            .map(|&d| Dimension {
                value: Some(dimension::Value::DimValue(d)),
                ..Default::default()
            })
            .collect();
        let tensor = type_proto::Tensor {
            elem_type: 1,
            shape: Some(TensorShapeProto { dim }),
        };
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(tensor)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn model() -> ModelProto {
        let body = GraphProto {
            name: "body".into(),
            node: vec![
                node("Add", &["s_in", "a_t"], &["s_out"]),
                node("Mul", &["s_out", "b_t"], &["y_t"]),
            ],
            input: vec![info("s_in", &[2]), info("a_t", &[2]), info("b_t", &[2])],
            output: vec![info("s_out", &[2]), info("y_t", &[2])],
            ..Default::default()
        };
        let mut scan = node("Scan", &["", "s0", "a", "b"], &["s", "ys"]);
        scan.attribute = vec![
            AttributeProto {
                name: "body".into(),
                r#type: 5,
                g: Some(body),
                ..Default::default()
            },
            AttributeProto {
                name: "num_scan_inputs".into(),
                r#type: 2,
                i: 2,
                ..Default::default()
            },
            AttributeProto {
                name: "directions".into(),
                r#type: 7,
                ints: vec![0, 1],
                ..Default::default()
            },
        ];
        let (b, t) = (B as i64, T as i64);
        let graph = GraphProto {
            name: "g".into(),
            node: vec![scan],
            input: vec![
                info("s0", &[b, 2]),
                info("a", &[b, t, 2]),
                info("b", &[b, t, 2]),
            ],
            output: vec![info("s", &[b, 2]), info("ys", &[b, t, 2])],
            ..Default::default()
        };
        ModelProto {
            ir_version: 3,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 8,
            }],
            graph: Some(graph),
            ..Default::default()
        }
    }

    /// Scan-8's outputs for these inputs: per batch item, `a` read forward and `b` backward.
    fn reference(s0: &[f32], a: &[f32], b: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let (mut finals, mut ys) = (Vec::new(), Vec::new());
        for item in 0..B {
            let mut s = [s0[item * 2], s0[item * 2 + 1]];
            for t in 0..T {
                let (at, bt) = ((item * T + t) * 2, (item * T + T - 1 - t) * 2);
                for k in 0..2 {
                    s[k] += a[at + k];
                    ys.push((s[k] * b[bt + k]) as f64);
                }
            }
            finals.extend(s.iter().map(|&v| v as f64));
        }
        (finals, ys)
    }

    #[test]
    fn reads_as_a_loop_over_the_batch_and_writes_nested_whiles_for_tflite() {
        let dir = tempdir();
        let path = dir.path().join("scan8.onnx");
        std::fs::write(&path, model().encode_to_vec()).unwrap();
        let g = readers::read(&path, &ReadOptions::default()).unwrap();
        let vals = |n: usize, k: f32| {
            (0..n)
                .map(|i| (i as f32 * 0.37 + k).sin())
                .collect::<Vec<_>>()
        };
        let (s0, a, b) = (vals(B * 2, 0.1), vals(B * T * 2, 0.2), vals(B * T * 2, 0.3));
        let inputs = [
            Tensor::from_f32(vec![B, 2], &s0),
            Tensor::from_f32(vec![B, T, 2], &a),
            Tensor::from_f32(vec![B, T, 2], &b),
        ];
        let (finals, ys) = reference(&s0, &a, &b);
        let check = |g: &Graph, what: &str| {
            let out = mdeploy::eval::run(g, &inputs).unwrap();
            assert_eq!(out[1].shape, vec![B, T, 2], "{what}");
            let close = |x: &[f64], y: &[f64]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-6);
            assert!(close(&out[0].to_f64s(), &finals), "{what}: final states");
            assert!(close(&out[1].to_f64s(), &ys), "{what}: collected");
        };
        check(&g, "as read");
        let mut legal = g.clone();
        let w = TfliteWriter::default();
        w.legalize(&mut legal).unwrap();
        check(&legal, "legalized for TFLite");
        let bytes = w.to_bytes(&legal).unwrap();
        let m = tract_tflite::tflite::root_as_model(&bytes).unwrap();
        // main; the inner loop's condition and body; the batch loop's condition and body.
        let subgraphs = m.subgraphs().unwrap();
        assert_eq!(subgraphs.len(), 5);
        // Each WHILE (one in main, one in the batch loop's body) runs subgraphs of its own.
        let mut run = Vec::new();
        for sg in subgraphs.iter() {
            for op in sg.operators().unwrap().iter() {
                if let Some(w) = op.builtin_options_as_while_options() {
                    run.extend([w.cond_subgraph_index(), w.body_subgraph_index()]);
                }
            }
        }
        run.sort();
        assert_eq!(run, vec![1, 2, 3, 4]);
    }
}
