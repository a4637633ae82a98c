//! Tests of the LSTM/GRU unrolling (`rnn.rs`): the unrolled graph against the op, run by tract.

use super::*;
use crate::ir::{fixed_shape, TensorType};

fn seeded(shape: Vec<usize>, seed: usize) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|k| (((k * 37 + seed * 11) % 23) as f32 / 23.0 - 0.5) * 0.8)
        .collect();
    Tensor::from_f32(shape, &v)
}

/// An LSTM/GRU with every optional input given as a graph input or constant, unrolled and
/// compared with tract's LSTM/GRU on all outputs. Batch 1 and no stand-alone `reverse`
/// direction: tract 0.23 fails on a batch-2 LSTM without initial state and disagrees with
/// onnxruntime on a lone reverse direction (its reverse half of a bidirectional run agrees;
/// a reverse LSTM/GRU unrolled here matched onnxruntime through LiteRT, batch 2; evaluation
/// now runs such a layer forward on reversed data, tested below). `clip` is
/// not compared here either: tract's clipped LSTM disagrees with onnxruntime, which the
/// unrolled form matched (with peepholes, through LiteRT).
fn check(lstm: bool, r: Rnn, with_initial: bool) {
    let h = 5;
    let dirs = r.direction.count() as usize;
    let mut g = layer(lstm, r, with_initial, Dim::Fixed(4));
    let inputs = crate::eval::random_inputs(&g, 9, 1);
    let want = crate::eval::run(&g, &inputs).unwrap();
    assert!(unroll_rnns(&mut g).unwrap());
    g.remove_dead();
    g.verify().unwrap();
    assert!(!g
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::Lstm(_) | Op::Gru(_))));
    // The recurrent weights exist once per direction (two pieces for GRU without
    // linear_before_reset), not once per step.
    let recurrent = g
        .values
        .iter()
        .filter(|v| v.constant.is_some() && v.ty.rank() == 2)
        .filter(|v| v.ty.shape[1] == Dim::Fixed(h as u64))
        .count();
    assert!(
        recurrent <= 2 * dirs,
        "{recurrent} recurrent weight constants"
    );
    let got = crate::eval::run(&g, &inputs).unwrap();
    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
        let c = crate::eval::compare("out", a, b);
        assert!(c.shape_matches && c.max_rel < 1e-5, "output {k}: {c:?}");
    }
}

/// The layer over `seq` steps at batch 1 (input 3, hidden 5), its bias (and, `with_initial`,
/// its initial states and LSTM peepholes) given, every output a graph output.
fn layer(lstm: bool, r: Rnn, with_initial: bool, seq: Dim) -> Graph {
    let (batch, input, h) = (1usize, 3usize, 5usize);
    let dirs = r.direction.count() as usize;
    let gates = if lstm { 4 } else { 3 };
    let mut g = Graph::new();
    let (b, i) = (Dim::Fixed(batch as u64), Dim::Fixed(input as u64));
    let xs = if r.batch_major {
        vec![b, seq, i]
    } else {
        vec![seq, b, i]
    };
    let x = g.add_input("x", TensorType::new(DType::F32, xs));
    let w = g.add_const("w", seeded(vec![dirs, gates * h, input], 1));
    let rr = g.add_const("r", seeded(vec![dirs, gates * h, h], 2));
    let mut ins = vec![x, w, rr];
    let mut optional = vec![RnnInput::Bias];
    ins.push(g.add_const("b", seeded(vec![dirs, 2 * gates * h], 3)));
    let state = if r.batch_major {
        vec![batch, dirs, h]
    } else {
        vec![dirs, batch, h]
    };
    if with_initial {
        optional.push(RnnInput::InitialH);
        ins.push(g.add_input("h0", TensorType::new(DType::F32, fixed_shape(&state))));
        if lstm {
            optional.push(RnnInput::InitialC);
            ins.push(g.add_input("c0", TensorType::new(DType::F32, fixed_shape(&state))));
            optional.push(RnnInput::Peepholes);
            ins.push(g.add_const("p", seeded(vec![dirs, 3 * h], 4)));
        }
    }
    let r = Rnn { optional, ..r };
    let op = if lstm { Op::Lstm(r) } else { Op::Gru(r) };
    g.outputs = g.add_node("rnn", op, ins, &[]).unwrap();
    g
}

/// A bidirectional layer over a run-time sequence length becomes two loops (a forward and a
/// reverse one) whose outputs, joined on the direction axis, are the layer's: compared with the
/// layer unrolled over the same 4 steps (checked against tract above; tract itself fails on a
/// batch-major bidirectional LSTM).
#[test]
fn bidirectional_layers_at_a_run_time_length_loop_both_ways() {
    for (lstm, batch_major) in [(true, false), (true, true), (false, false), (false, true)] {
        let r = rnn(RnnDirection::Bidirectional, !lstm, batch_major);
        let mut fixed = layer(lstm, r.clone(), true, Dim::Fixed(4));
        let inputs = crate::eval::random_inputs(&fixed, 9, 1);
        assert!(unroll_rnns(&mut fixed).unwrap());
        let want = crate::eval::run(&fixed, &inputs).unwrap();
        let mut g = layer(lstm, r, true, Dim::Sym("seq".into()));
        assert!(crate::passes::rnn_loop::loop_rnns(&mut g, &|_, _| false).unwrap());
        g.verify().unwrap();
        let loops = g
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Loop(_)))
            .count();
        assert_eq!(loops, 2, "lstm {lstm}, batch-major {batch_major}");
        let got = crate::eval::run(&g, &inputs).unwrap();
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            let c = crate::eval::compare("out", a, b);
            assert!(
                c.shape_matches && c.max_rel < 1e-5,
                "lstm {lstm}, batch-major {batch_major}, output {k}: {c:?}"
            );
        }
    }
}

/// A lone reverse layer evaluates (through `eval::prepare`, which runs it forward on reversed
/// data) as its unrolled form does, which matched onnxruntime through LiteRT.
#[test]
fn reverse_layers_evaluate_like_their_unrolled_form() {
    for (lstm, batch_major) in [(true, false), (true, true), (false, false), (false, true)] {
        let r = rnn(RnnDirection::Reverse, !lstm, batch_major);
        let g = layer(lstm, r, true, Dim::Fixed(4));
        let inputs = crate::eval::random_inputs(&g, 9, 1);
        let mut unrolled = g.clone();
        assert!(unroll_rnns(&mut unrolled).unwrap());
        let want = crate::eval::run(&unrolled, &inputs).unwrap();
        let got = crate::eval::run(&g, &inputs).unwrap();
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            let c = crate::eval::compare("out", a, b);
            assert!(
                c.shape_matches && c.max_rel < 1e-5,
                "lstm {lstm}, batch-major {batch_major}, output {k}: {c:?}"
            );
        }
    }
}

/// Weights that do not match hidden_size, or a short activation list, are refused by
/// name instead of being sliced out of range.
#[test]
fn mismatched_shapes_and_activations_are_refused() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[4, 1, 3])));
    let w = g.add_const("w", seeded(vec![1, 16, 3], 1));
    let ok_r = g.add_const("r", seeded(vec![1, 16, 4], 2));
    let bad_r = g.add_const("r_bad", seeded(vec![1, 16, 5], 2));
    let r = Rnn {
        hidden_size: 4,
        ..rnn(RnnDirection::Forward, false, false)
    };
    let node = |r_in: ValueId, r: Rnn| Node {
        name: "lstm".into(),
        op: Op::Lstm(r),
        inputs: vec![x, w, r_in],
        outputs: vec![],
    };
    let lstm = |n: &Node| match &n.op {
        Op::Lstm(r) => why_not(&g, n, r, true),
        _ => None,
    };
    assert_eq!(lstm(&node(ok_r, r.clone())), None);
    let why = lstm(&node(bad_r, r.clone())).unwrap_or_default();
    assert!(why.contains("R has shape [1, 16, 5]"), "{why}");
    let short = Rnn {
        activations: vec!["Sigmoid".into()],
        ..r
    };
    let why = lstm(&node(ok_r, short)).unwrap_or_default();
    assert!(why.contains("1 activations listed, expected 3"), "{why}");
}

fn rnn(direction: RnnDirection, lbr: bool, batch_major: bool) -> Rnn {
    Rnn {
        direction,
        hidden_size: 5,
        activations: vec![],
        clip: None,
        linear_before_reset: lbr,
        input_forget: false,
        cell_clip: None,
        batch_major,
        optional: vec![],
    }
}

#[test]
fn lstm_forms_match_onnx_semantics() {
    check(true, rnn(RnnDirection::Forward, false, false), false);
    check(true, rnn(RnnDirection::Bidirectional, false, false), true);
    check(true, rnn(RnnDirection::Forward, false, true), true);
}

#[test]
fn gru_forms_match_onnx_semantics() {
    for lbr in [false, true] {
        check(false, rnn(RnnDirection::Forward, lbr, false), false);
        check(false, rnn(RnnDirection::Bidirectional, lbr, false), true);
        check(false, rnn(RnnDirection::Forward, lbr, true), true);
    }
}

#[test]
fn batch_major_boundary_transposes_are_absorbed() {
    // Keras' form: batch-major data transposed into a time-major layer and back.
    let mut g = Graph::new();
    let ty = TensorType::new(DType::F32, fixed_shape(&[1, 4, 3]));
    let x = g.add_input("x", ty);
    let t = Op::Transpose(crate::ir::ops::Transpose {
        perm: vec![1, 0, 2],
    });
    let tm = g.add_node("to_time", t, vec![x], &["tm".into()]).unwrap();
    let w = g.add_const("w", seeded(vec![2, 20, 3], 1));
    let rr = g.add_const("r", seeded(vec![2, 20, 5], 2));
    let b = g.add_const("b", seeded(vec![2, 40], 3));
    let r = Rnn {
        optional: vec![RnnInput::Bias],
        ..rnn(RnnDirection::Bidirectional, false, false)
    };
    let outs = g.add_node("lstm", Op::Lstm(r), vec![tm[0], w, rr, b], &[]);
    let t = Op::Transpose(crate::ir::ops::Transpose {
        perm: vec![2, 0, 1, 3],
    });
    let y = g.add_node("to_batch", t, vec![outs.unwrap()[0]], &["y".into()]);
    g.outputs = y.unwrap();
    let inputs = crate::eval::random_inputs(&g, 2, 1);
    let want = crate::eval::run(&g, &inputs).unwrap();
    assert!(unroll_rnns(&mut g).unwrap());
    g.verify().unwrap();
    assert!(!g.nodes.iter().any(|n| matches!(n.op, Op::Transpose(_))));
    let got = crate::eval::run(&g, &inputs).unwrap();
    let c = crate::eval::compare("y", &got[0], &want[0]);
    assert!(c.shape_matches && c.max_rel < 1e-5, "{c:?}");
}

#[test]
fn dynamic_sequence_length_is_refused_with_the_reason() {
    let mut g = Graph::new();
    let xs = vec![Dim::Sym("seq".into()), Dim::Fixed(2), Dim::Fixed(3)];
    let x = g.add_input("x", TensorType::new(DType::F32, xs));
    let w = g.add_const("w", seeded(vec![1, 15, 3], 1));
    let rr = g.add_const("r", seeded(vec![1, 15, 5], 2));
    let r = rnn(RnnDirection::Forward, true, false);
    g.outputs = g
        .add_node("gru", Op::Gru(r.clone()), vec![x, w, rr], &[])
        .unwrap();
    assert!(!unroll_rnns(&mut g).unwrap());
    let why = why_not(&g, &g.nodes[0], &r, false).unwrap();
    assert!(why.contains("sequence length 'seq'"), "{why}");
}

/// Y_c's largest magnitude.
fn max_abs(t: &Tensor) -> f64 {
    t.to_f64s().iter().fold(0.0, |m, &x| m.max(x.abs()))
}

/// TFLite's cell clip bounds the cell state after every update, in the unrolled form and in
/// the loop over a run-time length, and evaluation (which lowers such layers before tract)
/// agrees with both; an LSTM without one in the same graph stays whole.
#[test]
fn a_cell_clip_bounds_the_state_unrolled_looped_and_evaluated() {
    let clip = 0.05f32;
    let clipped = Rnn {
        cell_clip: Some(clip),
        ..rnn(RnnDirection::Forward, false, false)
    };
    let free = layer(
        true,
        rnn(RnnDirection::Forward, false, false),
        true,
        Dim::Fixed(6),
    );
    let inputs = crate::eval::random_inputs(&free, 9, 1);
    let unclipped = crate::eval::run(&free, &inputs).unwrap();
    assert!(
        max_abs(&unclipped[2]) > 2.0 * f64::from(clip),
        "the clip would not bind"
    );

    let g = layer(true, clipped.clone(), true, Dim::Fixed(6));
    let mut unrolled = g.clone();
    assert!(lower_cell_clips(&mut unrolled).unwrap());
    assert!(!any_cell_clip(&unrolled));
    let want = crate::eval::run(&unrolled, &inputs).unwrap();
    assert!((max_abs(&want[2]) - f64::from(clip)).abs() < 1e-7);
    let evaluated = crate::eval::run(&g, &inputs).unwrap();
    let mut looped = layer(true, clipped, true, Dim::Sym("seq".into()));
    assert!(lower_cell_clips(&mut looped).unwrap());
    assert!(looped.nodes.iter().any(|n| matches!(n.op, Op::Loop(_))));
    assert!(!any_cell_clip(&looped));
    let got = crate::eval::run(&looped, &inputs).unwrap();
    for (what, outs) in [("evaluated", &evaluated), ("looped", &got)] {
        for (k, (a, b)) in outs.iter().zip(&want).enumerate() {
            let c = crate::eval::compare("out", a, b);
            assert!(c.shape_matches && c.max_rel < 1e-5, "{what} {k}: {c:?}");
        }
    }

    let mut plain = free.clone();
    assert!(!lower_cell_clips(&mut plain).unwrap());
    let ops = |g: &Graph| g.nodes.iter().map(|n| n.op.clone()).collect::<Vec<_>>();
    assert_eq!(ops(&plain), ops(&free));
}

/// A cell-clipped LSTM that can be neither unrolled nor looped (weights computed at run time)
/// is refused by the ONNX writer by name, not written without its clip.
#[test]
fn an_unlowerable_cell_clip_is_refused_by_the_onnx_writer() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[4, 1, 3])));
    let w = g.add_input("w", TensorType::new(DType::F32, fixed_shape(&[1, 20, 3])));
    let rr = g.add_const("r", seeded(vec![1, 20, 5], 2));
    let r = Rnn {
        cell_clip: Some(3.0),
        ..rnn(RnnDirection::Forward, false, false)
    };
    g.outputs = g
        .add_node("lstm", Op::Lstm(r), vec![x, w, rr], &[])
        .unwrap();
    crate::writers::onnx::legalize(&mut g).unwrap();
    let err = crate::writers::onnx::OnnxWriter::default()
        .to_proto(&g)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("cell clip 3"), "{err}");
}
