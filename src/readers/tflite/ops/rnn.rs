//! RNN (one step: `act(x·Wᵀ + h·Rᵀ + b)`) and UNIDIRECTIONAL_SEQUENCE_LSTM as the IR's (ONNX-form) LSTM: TFLite's per-gate weights
//! (`input_to_{input,forget,cell,output}`, `recurrent_to_…`, `…_gate_bias`) are joined in ONNX's
//! `iofc` order, peepholes in `iof`. The state inputs are variable tensors holding zeros when
//! the interpreter starts, read as the LSTM's default zero initial state. CIFG (no input gate),
//! projection and layer-normalized LSTMs are refused. A cell clip is the IR's `cell_clip`
//! unless it provably never binds.

mod sequence;

use super::{fused, Handler, Node};
use crate::ir::ops::{BinaryOp, Concat, MatMul, Rnn, RnnDirection, RnnInput, Transpose};
use crate::ir::{Dim, Op, Tensor, ValueId};
use crate::readers::builder::{reshape_to, unsupported, GraphBuilder, NodeError, NodeResult};
use crate::readers::tf_common::apply_fused;
use tract_tflite::tflite::{
    ActivationFunctionType as Act, BuiltinOperator as B, UnidirectionalSequenceLSTMOptions,
};

pub fn handler(code: B) -> Option<Handler> {
    Some(match code {
        B::UNIDIRECTIONAL_SEQUENCE_LSTM => lstm,
        B::RNN => basic_rnn,
        B::UNIDIRECTIONAL_SEQUENCE_RNN => sequence::unidirectional,
        B::BIDIRECTIONAL_SEQUENCE_RNN => sequence::bidirectional,
        _ => return None,
    })
}

/// Input slots of UNIDIRECTIONAL_SEQUENCE_LSTM, per gate in TFLite's `i, f, c, o` order.
const INPUT_WEIGHTS: [usize; 4] = [1, 2, 3, 4];
const RECURRENT_WEIGHTS: [usize; 4] = [5, 6, 7, 8];
const PEEPHOLES: [usize; 3] = [9, 10, 11];
const BIASES: [usize; 4] = [12, 13, 14, 15];
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

/// The forms of UNIDIRECTIONAL_SEQUENCE_LSTM the IR's LSTM cannot express.
fn refuse_variants(n: &Node, o: &UnidirectionalSequenceLSTMOptions) -> NodeResult<()> {
    if n.opt(1).is_none() {
        return unsupported("CIFG LSTM (coupled input and forget gates)");
    }
    if n.opt(16).is_some() || (20..24).any(|i| n.opt(i).is_some()) {
        return unsupported("LSTM with projection or layer normalization");
    }
    if o.proj_clip() != 0.0 {
        return unsupported(format!("LSTM with projection clip {}", o.proj_clip()));
    }
    if o.fused_activation_function() != Act::TANH {
        return unsupported("LSTM with a cell activation other than TANH");
    }
    if n.opt(18).is_some() || n.opt(19).is_some() {
        return unsupported(
            "LSTM state inputs computed in the model (not zero-initialised variables)",
        );
    }
    Ok(())
}

/// W, R, B (and P) of the IR's LSTM from TFLite's per-gate operands, and which optional
/// inputs they fill.
fn lstm_parameters(
    b: &mut GraphBuilder,
    n: &Node,
) -> NodeResult<(Vec<ValueId>, Vec<RnnInput>, usize)> {
    let gather = |slots: &[usize]| {
        slots
            .iter()
            .map(|&i| n.input(i))
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
    let name = &n.name;
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
    let peep: Vec<Option<ValueId>> = PEEPHOLES.iter().map(|&i| n.opt(i)).collect();
    if let [Some(pi), Some(pf), Some(po)] = peep[..] {
        ins.push(joined(b, &format!("{name}/P"), &[pi, pf, po], &[0, 2, 1])?);
        optional.push(RnnInput::Peepholes);
    } else if peep.iter().any(Option::is_some) {
        return Err(NodeError::Invalid("some peepholes given, not all".into()));
    }
    Ok((ins, optional, hidden))
}

fn lstm(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_unidirectional_sequence_lstmoptions(),
        "UnidirectionalSequenceLSTMOptions",
    )?;
    refuse_variants(n, &o)?;
    let x = n.input(0)?;
    let xs = b.g.ty(x).shape.clone();
    if xs.len() != 3 {
        return Err(NodeError::Invalid(format!("input of rank {}", xs.len())));
    }
    let cell_clip = cell_clip(o.cell_clip(), if o.time_major() { &xs[0] } else { &xs[1] })?;
    let name = &n.name;
    let swap = || {
        Op::Transpose(Transpose {
            perm: vec![1, 0, 2],
        })
    };
    let xt = if o.time_major() {
        x
    } else {
        b.emit1(&format!("{name}/time_major"), swap(), vec![x])?
    };
    let (params, optional, hidden) = lstm_parameters(b, n)?;
    let op = Rnn {
        direction: RnnDirection::Forward,
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
    // Y [T, 1, B, H] → [T, B, H] → TFLite's layout.
    let ys = b.g.ty(outs[0]).shape.clone();
    let seq = vec![ys[0].clone(), ys[2].clone(), ys[3].clone()];
    let y = reshape_to(b, &format!("{name}/y"), outs[0], seq)?[0];
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
