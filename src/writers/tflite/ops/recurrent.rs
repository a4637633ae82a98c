//! An LSTM over a sequence length known only at run time as UNIDIRECTIONAL_SEQUENCE_LSTM-1,
//! where the builtin computes exactly what ONNX does; the rest stays with `passes::rnn_loop`
//! (a WHILE loop) and `passes::rnn` (unrolled, for fixed lengths: that keeps static models'
//! bytes and was not measured slower).
//!
//! The builtin takes the gates as separate `[H, I]` / `[H, H]` tensors in i, f, c, o order
//! (ONNX packs i, o, f, c), one bias per gate (ONNX has two: summed), peepholes as
//! cell_to_{input,forget,output} (ONNX P is `[p_i, p_o, p_f]`), a cell clip natively, and its states as variable
//! tensors that LiteRT zero-fills, so the initial states must be zeros and Y_c (the final
//! cell state, not an output of the builtin) unused; Y_h is the last row of the sequence
//! (STRIDED_SLICE). LiteRT's Prepare checks the states' size against the input's batch, so
//! the batch must be fixed. The states are zeroed before each run (see [`zeroed_state`]).
//! A reverse layer runs on the time-reversed input (REVERSE_V2) and
//! its output is reversed back; bidirectional layers were split into two by `rnn_loop`.

use crate::ir::ops::{Rnn, RnnDirection, RnnInput};
use crate::ir::{DType, Dim, Graph, Node, Op, Tensor, TensorType, ValueId};
use crate::passes::rnn::optional;
use crate::writers::tflite::plan::{Cx, Opts, TRef};
use tract_tflite::tflite::BuiltinOperator as B;

/// Whether node `n` is an LSTM this module writes as the builtin.
pub fn fits(g: &Graph, n: &Node) -> bool {
    let Op::Lstm(r) = &n.op else {
        return false;
    };
    let x = g.ty(n.inputs[0]);
    if x.dtype != DType::F32 || x.rank() != 3 {
        return false;
    }
    let (seq, batch) = if r.batch_major {
        (&x.shape[1], &x.shape[0])
    } else {
        (&x.shape[0], &x.shape[1])
    };
    let h = r.hidden_size;
    let input = x.shape[2].fixed().unwrap_or(0) as usize;
    let weights_fit = |v: Option<ValueId>, shape: Vec<usize>| {
        v.is_none_or(|v| weight(g, v).is_some_and(|t| t.shape == shape))
    };
    let defaults = r.activations.is_empty() || r.activations == ["Sigmoid", "Tanh", "Tanh"];
    let y_c_unused = n.outputs.get(2).is_none_or(|&c| g.use_counts()[c.0] == 0);
    !seq.is_fixed()
        && batch.is_fixed()
        && input > 0
        && h > 0
        && matches!(r.direction, RnnDirection::Forward | RnnDirection::Reverse)
        && defaults
        && r.clip.is_none()
        && r.cell_clip.is_none_or(|c| c > 0.0)
        && !r.input_forget
        && !r.optional.contains(&RnnInput::SequenceLens)
        && weights_fit(Some(n.inputs[1]), vec![1, 4 * h, input])
        && weights_fit(Some(n.inputs[2]), vec![1, 4 * h, h])
        && weights_fit(optional(r, n, RnnInput::Bias), vec![1, 8 * h])
        && weights_fit(optional(r, n, RnnInput::Peepholes), vec![1, 3 * h])
        && [RnnInput::InitialH, RnnInput::InitialC]
            .iter()
            .all(|&s| optional(r, n, s).is_none_or(|v| zeros(g, v)))
        && y_c_unused
}

/// Whether every element of `v` is zero by construction: a constant of zeros, or zeros
/// broadcast, sliced or rearranged (exporters build zero initial states that way).
fn zeros(g: &Graph, v: ValueId) -> bool {
    if let Some(t) = g.constant(v) {
        return t.dtype.is_float() && t.to_f64s().iter().all(|&x| x == 0.0);
    }
    let Some(n) = g.nodes.iter().find(|n| n.outputs.contains(&v)) else {
        return false;
    };
    match &n.op {
        Op::ConstantOfShape(c) => c.value.to_f64s().iter().all(|&x| x == 0.0),
        Op::Expand(_) | Op::Slice(_) | Op::Reshape(_) | Op::Transpose(_) => {
            n.inputs.first().is_some_and(|&x| zeros(g, x))
        }
        _ => false,
    }
}

/// A weight's float32 value: a constant, or one stored quantized (`--float16`, `--int8`
/// weights are Cast/DequantizeLinear of constants once the layer was chosen). The builtin
/// takes float32 gate tensors cut from it, so such weights are written as float32 here.
fn weight(g: &Graph, v: ValueId) -> Option<Tensor> {
    if let Some(t) = g.constant(v) {
        return Some(t.clone());
    }
    let n = g.nodes.iter().find(|n| n.outputs.contains(&v))?;
    crate::ir::quant::stored_f32(g, n)
}

/// ONNX gate blocks (i, o, f, c) in the builtin's order (i, f, c, o).
const GATES: [usize; 4] = [0, 2, 3, 1];

/// Rows `[k*h, (k+1)*h)` of the `[1, rows, cols]` constant input `i`.
fn block(cx: &Cx, i: usize, k: usize, h: usize) -> Result<(Vec<f32>, usize), String> {
    let t = cx
        .node
        .inputs
        .get(i)
        .and_then(|&v| weight(cx.g, v))
        .ok_or_else(|| format!("input {i} is not a constant"))?;
    let cols = t.shape.get(2).copied().unwrap_or(1);
    let all = t.to_f64s();
    let rows = all
        .get(k * h * cols..(k + 1) * h * cols)
        .ok_or_else(|| format!("input {i} has no gate block {k}"))?;
    Ok((rows.iter().map(|&x| x as f32).collect(), cols))
}

/// The 24 inputs after X: gate weights, peepholes, biases, (no projection), states.
fn parameters(cx: &mut Cx, r: &Rnn, batch: usize) -> Result<Vec<Option<TRef>>, String> {
    let h = r.hidden_size;
    let names = ["input", "forget", "cell", "output"];
    let mut ins = Vec::with_capacity(23);
    for (w, what) in [(1, "input_to"), (2, "recurrent_to")] {
        for (&k, name) in GATES.iter().zip(names) {
            let (rows, cols) = block(cx, w, k, h)?;
            ins.push(Some(cx.f32s(
                &format!("{what}_{name}"),
                vec![h, cols],
                &rows,
            )));
        }
    }
    let slot = |which| r.optional.iter().position(|&o| o == which).map(|k| 3 + k);
    match slot(RnnInput::Peepholes) {
        // P is [p_i, p_o, p_f]; the builtin takes input, forget, output.
        Some(p) => {
            for (k, name) in [(0, "input"), (2, "forget"), (1, "output")] {
                let (v, _) = block(cx, p, k, h)?;
                ins.push(Some(cx.f32s(&format!("cell_to_{name}"), vec![h], &v)));
            }
        }
        None => ins.extend([None, None, None]),
    }
    for (&k, name) in GATES.iter().zip(names) {
        let mut sum = vec![0f32; h];
        if let Some(b) = slot(RnnInput::Bias) {
            let (wb, _) = block(cx, b, k, h)?;
            let (rb, _) = block(cx, b, 4 + k, h)?;
            for (s, (a, b)) in sum.iter_mut().zip(wb.iter().zip(&rb)) {
                *s = a + b;
            }
        }
        ins.push(Some(cx.f32s(&format!("{name}_gate_bias"), vec![h], &sum)));
    }
    ins.extend([None, None]);
    for name in ["output_state", "cell_state"] {
        let state = zeroed_state(cx, name, batch, h)?;
        ins.push(Some(state));
    }
    ins.extend([None, None, None, None]);
    Ok(ins)
}

/// A `[batch, h]` variable tensor set to zeros before every run. LiteRT zero-fills variable
/// tensors only when it allocates them and the builtin leaves its final state in them, so a
/// second invocation would start where the first ended (TensorFlow's own converter output
/// has that quirk; callers must `reset_all_variables`). An RNN builtin over the same tensor
/// with zero weights writes `act(0·x + 0·state + 0) = 0` into it first, keeping every run
/// stateless as the ONNX layer is, for one `[h, h]` product per state.
fn zeroed_state(cx: &mut Cx, name: &str, batch: usize, h: usize) -> Result<TRef, String> {
    let dims = |a: usize, b: usize| vec![Dim::Fixed(a as u64), Dim::Fixed(b as u64)];
    let state = cx.variable(name, TensorType::new(DType::F32, dims(batch, h)));
    let x = cx.f32s(
        &format!("{name}/reset_x"),
        vec![batch, 1],
        &vec![0.0; batch],
    );
    let w = cx.f32s(&format!("{name}/reset_w"), vec![h, 1], &vec![0.0; h]);
    let r = cx.f32s(&format!("{name}/reset_r"), vec![h, h], &vec![0.0; h * h]);
    let b = cx.f32s(&format!("{name}/reset_b"), vec![h], &vec![0.0; h]);
    let out = cx.temp(
        &format!("{name}/reset"),
        TensorType::new(DType::F32, dims(batch, h)),
    );
    let ins = vec![Some(x), Some(w), Some(r), Some(b), Some(state)];
    cx.emit(B::RNN, Opts::Rnn, ins, vec![out]);
    Ok(state)
}

/// The node as REVERSE_V2? → UNIDIRECTIONAL_SEQUENCE_LSTM → REVERSE_V2? → RESHAPE to Y, and
/// STRIDED_SLICE of the last step to Y_h.
pub fn sequence_lstm(cx: &mut Cx, r: &Rnn) -> Result<(), String> {
    let xt = cx.ty(0)?.clone();
    let time = usize::from(r.batch_major);
    let batch_axis = 1 - time;
    let batch = xt.shape[batch_axis]
        .fixed()
        .ok_or("the batch must be fixed")? as usize;
    let reverse = r.direction == RnnDirection::Reverse;
    let axis = cx.i32_vec("time_axis", &[time as i32]);
    let mut x = cx.x(0)?;
    if reverse {
        let xr = cx.temp("x_reversed", xt.clone());
        cx.emit(
            B::REVERSE_V2,
            Opts::None,
            vec![Some(x), Some(axis)],
            vec![xr],
        );
        x = xr;
    }
    let mut ins = vec![Some(x)];
    ins.extend(parameters(cx, r, batch)?);
    let mut seq_shape = xt.shape.clone();
    seq_shape[2] = Dim::Fixed(r.hidden_size as u64);
    let seq_ty = TensorType::new(DType::F32, seq_shape);
    let raw = cx.temp("sequence", seq_ty.clone());
    let opts = Opts::SequenceLstm {
        time_major: !r.batch_major,
        cell_clip: r.cell_clip.unwrap_or(0.0),
    };
    cx.emit(B::UNIDIRECTIONAL_SEQUENCE_LSTM, opts, ins, vec![raw]);
    let used = cx.g.use_counts();
    let is_used = |k: usize| cx.node.outputs.get(k).is_some_and(|v| used[v.0] > 0);
    if is_used(0) {
        let mut y = raw;
        if reverse {
            y = cx.temp("sequence_in_order", seq_ty);
            cx.emit(
                B::REVERSE_V2,
                Opts::None,
                vec![Some(raw), Some(axis)],
                vec![y],
            );
        }
        // Y has a direction axis of 1 after the time axis.
        let mut shape = vec![batch as i32, batch as i32, hidden(r)?];
        shape[time] = -1;
        shape.insert(time + 1, 1);
        let shape = cx.i32_vec("y_shape", &shape);
        let out = cx.out(0);
        cx.emit(
            B::RESHAPE,
            Opts::Reshape(None),
            vec![Some(y), Some(shape)],
            vec![out],
        );
    }
    if is_used(1) {
        // The state after the last step the builtin ran (for a reverse layer, the row for
        // time 0): [1, B, H] time-major, [B, 1, H] batch-major, as Y_h is.
        let mut begin = [0i32; 3];
        begin[time] = -1;
        let begin = cx.i32_vec("last_begin", &begin);
        let end = cx.i32_vec("last_end", &[0, 0, 0]);
        let strides = cx.i32_vec("last_strides", &[1, 1, 1]);
        let opts = Opts::StridedSlice {
            begin_mask: 0b111 & !(1 << time),
            end_mask: 0b111,
        };
        let out = cx.out(1);
        let ins = vec![Some(raw), Some(begin), Some(end), Some(strides)];
        cx.emit(B::STRIDED_SLICE, opts, ins, vec![out]);
    }
    if is_used(2) {
        return Err("the final cell state is not an output of UNIDIRECTIONAL_SEQUENCE_LSTM".into());
    }
    Ok(())
}

fn hidden(r: &Rnn) -> Result<i32, String> {
    super::i32_of(r.hidden_size as i64, "hidden size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_order_maps_onnx_iofc_to_tflite_ifco() {
        let onnx = ["i", "o", "f", "c"];
        let tflite: Vec<_> = GATES.iter().map(|&k| onnx[k]).collect();
        assert_eq!(tflite, ["i", "f", "c", "o"]);
    }

    /// A forward LSTM (hidden 3, input 2, Y and Y_h used) over `seq` steps at `batch`.
    fn lstm(batch: Dim, seq: Dim, direction: RnnDirection) -> Graph {
        let (h, i) = (3usize, 2usize);
        let mut g = Graph::new();
        let x = g.add_input(
            "x",
            TensorType::new(DType::F32, vec![seq, batch, Dim::Fixed(2)]),
        );
        let seeded = |n: usize, k: usize| -> Vec<f32> {
            (0..n)
                .map(|j| ((j * 7 + k) % 11) as f32 / 11.0 - 0.5)
                .collect()
        };
        let w = g.add_const(
            "w",
            Tensor::from_f32(vec![1, 4 * h, i], &seeded(4 * h * i, 1)),
        );
        let r = g.add_const(
            "r",
            Tensor::from_f32(vec![1, 4 * h, h], &seeded(4 * h * h, 2)),
        );
        let b = g.add_const("b", Tensor::from_f32(vec![1, 8 * h], &seeded(8 * h, 3)));
        let rnn = Rnn {
            direction,
            hidden_size: h,
            activations: vec![],
            clip: None,
            linear_before_reset: false,
            input_forget: false,
            cell_clip: None,
            batch_major: false,
            optional: vec![RnnInput::Bias],
        };
        let outs = g.add_node("lstm", Op::Lstm(rnn), vec![x, w, r, b], &[]);
        g.outputs = outs.map(|o| o[..2].to_vec()).unwrap_or_default();
        g
    }

    fn codes(g: &mut Graph) -> Vec<B> {
        super::super::super::legalize::legalize(g, false).unwrap();
        let plan = crate::writers::tflite::plan::build(g).unwrap();
        plan.ops.iter().map(|op| op.code).collect()
    }

    #[test]
    fn run_time_length_at_a_fixed_batch_is_the_sequence_builtin() {
        for direction in [RnnDirection::Forward, RnnDirection::Reverse] {
            let mut g = lstm(Dim::Fixed(2), Dim::Sym("seq".into()), direction);
            let ops = codes(&mut g);
            let count = |c: B| ops.iter().filter(|&&o| o == c).count();
            assert_eq!(count(B::UNIDIRECTIONAL_SEQUENCE_LSTM), 1, "{ops:?}");
            // Both states are zeroed before the layer runs.
            assert_eq!(count(B::RNN), 2, "{ops:?}");
            let reversals = if direction == RnnDirection::Reverse {
                2
            } else {
                0
            };
            assert_eq!(count(B::REVERSE_V2), reversals, "{ops:?}");
            assert!(!ops.contains(&B::WHILE));
        }
    }

    #[test]
    fn run_time_batch_or_fixed_length_keep_the_loop_or_unrolling() {
        let mut g = lstm(
            Dim::Sym("b".into()),
            Dim::Sym("seq".into()),
            RnnDirection::Forward,
        );
        let ops = codes(&mut g);
        assert!(ops.contains(&B::WHILE) && !ops.contains(&B::UNIDIRECTIONAL_SEQUENCE_LSTM));
        let mut g = lstm(Dim::Fixed(2), Dim::Fixed(5), RnnDirection::Forward);
        let ops = codes(&mut g);
        assert!(!ops.contains(&B::WHILE) && !ops.contains(&B::UNIDIRECTIONAL_SEQUENCE_LSTM));
    }

    #[test]
    fn zero_states_are_recognized_through_expand() {
        let mut g = Graph::new();
        let z = g.add_const("z", Tensor::scalar_f32(0.0));
        let e = Op::Expand(crate::ir::ops::Expand {
            shape: vec![Dim::Fixed(1), Dim::Fixed(2), Dim::Fixed(3)],
        });
        let out = g.add_node("e", e, vec![z], &[]).map(|o| o[0]);
        assert!(out.is_ok_and(|v| zeros(&g, v)));
        let one = g.add_const("one", Tensor::scalar_f32(1.0));
        assert!(!zeros(&g, one));
    }
}
