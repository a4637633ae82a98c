//! Recurrent builtins: RNN (one step: `act(x·Wᵀ + h·Rᵀ + b)`), the sequence RNNs
//! (`sequence.rs`), SVDF (`svdf.rs`), LSTM's basic kernel (plain ops, `lstm.rs`), and
//! UNIDIRECTIONAL_SEQUENCE_LSTM, BIDIRECTIONAL_SEQUENCE_LSTM and LSTM's full kernel (one step;
//! `lstm.rs`) as the IR's (ONNX-form) LSTM: TFLite's per-gate weights
//! (`input_to_{input,forget,cell,output}`, `recurrent_to_…`, `…_gate_bias`) are joined in ONNX's
//! `iofc` order, peepholes in `iof`. The state inputs are variable tensors holding zeros when
//! the interpreter starts, read as the LSTM's default zero initial state. CIFG (no input gate),
//! projection and layer-normalized LSTMs are refused. A cell clip is the IR's `cell_clip`
//! unless it provably never binds.

mod lstm;
mod sequence;
mod svdf;

use super::{fused, Handler, Node};
use crate::ir::ops::{BinaryOp, Concat, MatMul, Rnn, RnnDirection, RnnInput, Transpose};
use crate::ir::{Dim, Op, Tensor, ValueId};
use crate::readers::builder::{reshape_to, unsupported, GraphBuilder, NodeError, NodeResult};
use crate::readers::tf_common::apply_fused;
use tract_tflite::tflite::{ActivationFunctionType as Act, BuiltinOperator as B};

pub fn handler(code: B) -> Option<Handler> {
    Some(match code {
        B::UNIDIRECTIONAL_SEQUENCE_LSTM => unidirectional_lstm,
        B::BIDIRECTIONAL_SEQUENCE_LSTM => lstm::bidirectional,
        B::LSTM => lstm::one_step,
        B::RNN => basic_rnn,
        B::UNIDIRECTIONAL_SEQUENCE_RNN => sequence::unidirectional,
        B::BIDIRECTIONAL_SEQUENCE_RNN => sequence::bidirectional,
        B::SVDF => svdf::svdf,
        _ => return None,
    })
}

/// Where one LSTM direction's operands sit among an operator's inputs. UNIDIRECTIONAL_SEQUENCE_LSTM
/// and LSTM have one direction at offset 0 with its states at 18 and 19;
/// BIDIRECTIONAL_SEQUENCE_LSTM its forward direction at 0 (states 35, 36) and its backward one
/// at 17 (states 37, 38). Relative to the offset: input weights 1–4, recurrent weights 5–8,
/// peepholes 9–11, biases 12–15, projection weights 16 and bias 17.
#[derive(Clone, Copy)]
struct Slots {
    offset: usize,
    states: [usize; 2],
}

const SINGLE: Slots = Slots {
    offset: 0,
    states: [18, 19],
};

/// Per gate in TFLite's `i, f, c, o` order.
const INPUT_WEIGHTS: [usize; 4] = [1, 2, 3, 4];
const RECURRENT_WEIGHTS: [usize; 4] = [5, 6, 7, 8];
const PEEPHOLES: [usize; 3] = [9, 10, 11];
const BIASES: [usize; 4] = [12, 13, 14, 15];
const PROJECTION: [usize; 2] = [16, 17];
/// ONNX's `i, o, f, c` order as positions in TFLite's `i, f, c, o`.
const IOFC: [usize; 4] = [0, 3, 1, 2];

/// `parts` (each `[h, …]` or `[h]`) joined along axis 0 in `order` and given a leading unit
/// axis (the direction).
fn joined(
    b: &mut GraphBuilder,
    name: &str,
    parts: &[ValueId],
    order: &[usize],
) -> NodeResult<ValueId> {
    let picked: Vec<ValueId> = order.iter().map(|&i| parts[i]).collect();
    let cat = b.emit1(
        &format!("{name}/cat"),
        Op::Concat(Concat { axis: 0 }),
        picked,
    )?;
    let mut shape = vec![Dim::Fixed(1)];
    shape.extend(b.g.ty(cat).shape.clone());
    Ok(reshape_to(b, name, cat, shape)?[0])
}

/// TFLite clips the cell state to `±cell_clip` after each update (the converter sets 10 for
/// Keras LSTMs; 0 means none). From a zero state `|c_t| < t` (`c_t = f·c_{t−1} + i·g` with
/// `f, i ∈ (0, 1)`, `g ∈ (−1, 1)`), so over at most `cell_clip` steps the clip never binds and
/// is left out: such layers stay plain LSTMs every writer has a native form for. Longer (or
/// run-time) sequences keep it.
fn cell_clip(clip: f32, steps: &Dim) -> NodeResult<Option<f32>> {
    if !clip.is_finite() || clip < 0.0 {
        return Err(NodeError::Invalid(format!("LSTM cell clip {clip}")));
    }
    if clip == 0.0 {
        return Ok(None);
    }
    Ok(match steps.fixed() {
        Some(t) if (t as f64) <= f64::from(clip) => None,
        _ => Some(clip),
    })
}

/// The forms of one LSTM direction the IR's LSTM cannot express. (A projection clip, the
/// options' `proj_clip`, acts only on a projection, refused here.)
fn refuse_variants(n: &Node, s: Slots, act: Act) -> NodeResult<()> {
    let at = |i: usize| n.opt(s.offset + i);
    if at(INPUT_WEIGHTS[0]).is_none() {
        return unsupported("CIFG LSTM (coupled input and forget gates)");
    }
    if PROJECTION.iter().any(|&i| at(i).is_some()) {
        return unsupported("LSTM with a projection layer");
    }
    if act != Act::TANH {
        return unsupported(format!(
            "LSTM with cell activation {} (only TANH)",
            act.variant_name().unwrap_or("unknown")
        ));
    }
    if s.states.iter().any(|&i| n.opt(i).is_some()) {
        return unsupported(
            "LSTM state inputs computed in the model (not zero-initialised variables)",
        );
    }
    Ok(())
}

/// Layer-normalization coefficients (inputs 20–23 of UNIDIRECTIONAL_SEQUENCE_LSTM and LSTM).
fn refuse_layer_norm(n: &Node) -> NodeResult<()> {
    if (20..24).any(|i| n.opt(i).is_some()) {
        return unsupported("layer-normalized LSTM");
    }
    Ok(())
}

/// W, R, B (and P) of the IR's LSTM from TFLite's per-gate operands, and which optional
/// inputs they fill.
fn lstm_parameters(
    b: &mut GraphBuilder,
    n: &Node,
    name: &str,
    s: Slots,
) -> NodeResult<(Vec<ValueId>, Vec<RnnInput>, usize)> {
    let gather = |slots: &[usize]| {
        slots
            .iter()
            .map(|&i| n.input(s.offset + i))
            .collect::<NodeResult<Vec<_>>>()
    };
    let (w, r, bias) = (
        gather(&INPUT_WEIGHTS)?,
        gather(&RECURRENT_WEIGHTS)?,
        gather(&BIASES)?,
    );
    let hidden =
        b.g.ty(r[0])
            .shape
            .first()
            .and_then(Dim::fixed)
            .ok_or_else(|| {
                NodeError::Invalid("recurrent weights need a fixed first dimension".into())
            })? as usize;
    let w = joined(b, &format!("{name}/W"), &w, &IOFC)?;
    let r = joined(b, &format!("{name}/R"), &r, &IOFC)?;
    // ONNX adds an input and a recurrent bias; TFLite has one.
    let dtype = b.g.ty(bias[0]).dtype;
    let zeros = b.add_const(
        &format!("{name}/Rb"),
        Tensor::filled(dtype, vec![4 * hidden], &vec![0u8; dtype.size()]),
    );
    let cat = Op::Concat(Concat { axis: 0 });
    let wb = b.emit1(
        &format!("{name}/Wb"),
        cat,
        IOFC.iter().map(|&i| bias[i]).collect(),
    )?;
    let bias = joined(b, &format!("{name}/B"), &[wb, zeros], &[0, 1])?;
    let mut ins = vec![w, r, bias];
    let mut optional = vec![RnnInput::Bias];
    let peep: Vec<Option<ValueId>> = PEEPHOLES.iter().map(|&i| n.opt(s.offset + i)).collect();
    if let [Some(pi), Some(pf), Some(po)] = peep[..] {
        ins.push(joined(b, &format!("{name}/P"), &[pi, pf, po], &[0, 2, 1])?);
        optional.push(RnnInput::Peepholes);
    } else if peep.iter().any(Option::is_some) {
        return Err(NodeError::Invalid("some peepholes given, not all".into()));
    }
    Ok((ins, optional, hidden))
}

/// One LSTM direction over `xt [time, batch, in]` from a zero state: its outputs
/// `[time, batch, hidden]` (the reverse direction runs from the last step and writes each
/// step's output at its own time index, as TFLite's backward direction does).
fn lstm_direction(
    b: &mut GraphBuilder,
    n: &Node,
    name: &str,
    (xt, s): (ValueId, Slots),
    direction: RnnDirection,
    clip: f32,
) -> NodeResult<ValueId> {
    let steps = b.g.ty(xt).shape.first().cloned().unwrap_or(Dim::Fixed(0));
    let cell_clip = cell_clip(clip, &steps)?;
    let (params, optional, hidden) = lstm_parameters(b, n, name, s)?;
    let op = Rnn {
        direction,
        hidden_size: hidden,
        activations: vec![],
        clip: None,
        cell_clip,
        linear_before_reset: false,
        input_forget: false,
        batch_major: false,
        optional,
    };
    let outs = b.emit(
        &format!("{name}/lstm"),
        Op::Lstm(op),
        [vec![xt], params].concat(),
    )?;
    // Y [T, 1, B, H] → [T, B, H].
    let ys = b.g.ty(outs[0]).shape.clone();
    let seq = vec![ys[0].clone(), ys[2].clone(), ys[3].clone()];
    Ok(reshape_to(b, &format!("{name}/y"), outs[0], seq)?[0])
}

fn swap() -> Op {
    Op::Transpose(Transpose {
        perm: vec![1, 0, 2],
    })
}

/// A rank-3 sequence input as `[time, batch, in]`.
fn to_time_major(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    is_time_major: bool,
) -> NodeResult<ValueId> {
    let rank = b.g.ty(x).rank();
    if rank != 3 {
        return Err(NodeError::Invalid(format!("input of rank {rank}")));
    }
    if is_time_major {
        return Ok(x);
    }
    b.emit1(&format!("{name}/time_major"), swap(), vec![x])
}

/// A `[time, batch, …]` result in the operator's layout.
fn to_layout(
    b: &mut GraphBuilder,
    name: &str,
    y: ValueId,
    is_time_major: bool,
) -> NodeResult<ValueId> {
    if is_time_major {
        return Ok(y);
    }
    b.emit1(name, swap(), vec![y])
}

fn unidirectional_lstm(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_unidirectional_sequence_lstmoptions(),
        "UnidirectionalSequenceLSTMOptions",
    )?;
    refuse_variants(n, SINGLE, o.fused_activation_function())?;
    refuse_layer_norm(n)?;
    let name = &n.name;
    let xt = to_time_major(b, name, n.input(0)?, o.time_major())?;
    let y = lstm_direction(
        b,
        n,
        name,
        (xt, SINGLE),
        RnnDirection::Forward,
        o.cell_clip(),
    )?;
    if o.time_major() {
        return Ok(vec![y]);
    }
    b.emit(name, swap(), vec![y])
}

/// RNN(x [batch, in], W [units, in], R [units, units], b [units], h): one step of a basic RNN.
/// Its state `h` is a variable tensor, zeros when the interpreter starts (absent here); the
/// step also writes its result into that variable, which nothing in the IR reads back (a
/// later reader of the variable sees zeros — the reset idiom mdeploy's own writer uses).
fn basic_rnn(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let act =
        n.op.builtin_options_as_rnnoptions()
            .map_or(Ok(crate::readers::tf_common::Fused::None), |o| {
                fused(o.fused_activation_function())
            })?;
    let name = &n.name;
    let t = MatMul {
        transpose_a: false,
        transpose_b: true,
    };
    let (x, w, bias) = (n.input(0)?, n.input(1)?, n.input(3)?);
    let mut y = b.emit1(&format!("{name}/input"), Op::MatMul(t), vec![x, w])?;
    if let Some(h) = n.opt(4) {
        let hr = b.emit1(
            &format!("{name}/state"),
            Op::MatMul(t),
            vec![h, n.input(2)?],
        )?;
        y = b.emit1(
            &format!("{name}/sum"),
            Op::Binary(BinaryOp::Add),
            vec![y, hr],
        )?;
    }
    let y = b.emit1(
        &format!("{name}/bias"),
        Op::Binary(BinaryOp::Add),
        vec![y, bias],
    )?;
    apply_fused(b, name, y, act)
}
