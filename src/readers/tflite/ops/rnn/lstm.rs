//! BIDIRECTIONAL_SEQUENCE_LSTM and LSTM (one step), through the same per-direction reading as
//! UNIDIRECTIONAL_SEQUENCE_LSTM.

use super::super::Node;
use super::{
    lstm_direction, refuse_layer_norm, refuse_variants, to_layout, to_time_major, Slots, SINGLE,
};
use crate::ir::ops::{BinaryOp, Concat, MatMul, RnnDirection, Split, UnaryOp};
use crate::ir::{Dim, Op, Tensor, ValueId};
use crate::readers::builder::{reshape_to, unsupported, GraphBuilder, NodeError, NodeResult};
use tract_tflite::tflite::{ActivationFunctionType as Act, LSTMKernelType};

const FORWARD: Slots = Slots {
    offset: 0,
    states: [35, 36],
};
const BACKWARD: Slots = Slots {
    offset: 17,
    states: [37, 38],
};
/// The auxiliary input (39) and its forward (40–43) and backward (44–47) weights.
const AUXILIARY: std::ops::Range<usize> = 39..48;

/// BIDIRECTIONAL_SEQUENCE_LSTM: the forward direction over the sequence and the backward one
/// from its end, each with its own weights, states and size. `merge_outputs` joins both on the
/// last axis in one output; otherwise each direction has its own. `time_major` (the schema's
/// default is true) is the layout of the input and the outputs.
pub fn bidirectional(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_bidirectional_sequence_lstmoptions(),
        "BidirectionalSequenceLSTMOptions",
    )?;
    if AUXILIARY.clone().any(|i| n.opt(i).is_some()) {
        return unsupported("BIDIRECTIONAL_SEQUENCE_LSTM with an auxiliary input");
    }
    let act = o.fused_activation_function();
    refuse_variants(n, FORWARD, act)?;
    refuse_variants(n, BACKWARD, act)?;
    let name = &n.name;
    let tm = o.time_major();
    let xt = to_time_major(b, name, n.input(0)?, tm)?;
    let clip = o.cell_clip();
    let fw = lstm_direction(
        b,
        n,
        &format!("{name}/fw"),
        (xt, FORWARD),
        RnnDirection::Forward,
        clip,
    )?;
    let bw = lstm_direction(
        b,
        n,
        &format!("{name}/bw"),
        (xt, BACKWARD),
        RnnDirection::Reverse,
        clip,
    )?;
    if o.merge_outputs() {
        let cat = Op::Concat(Concat { axis: 2 });
        let y = b.emit1(&format!("{name}/merged"), cat, vec![fw, bw])?;
        return Ok(vec![to_layout(b, name, y, tm)?]);
    }
    let fw = to_layout(b, &format!("{name}/fw_out"), fw, tm)?;
    let bw = to_layout(b, &format!("{name}/bw_out"), bw, tm)?;
    Ok(vec![fw, bw])
}

/// One operand of the basic kernel: its value, or zeros `[batch, hidden]` for a variable
/// tensor (absent here), which holds zeros when the interpreter starts.
fn state_or_zeros(
    b: &mut GraphBuilder,
    n: &Node,
    i: usize,
    batch: &Dim,
    hidden: u64,
) -> NodeResult<ValueId> {
    if let Some(v) = n.opt(i) {
        return Ok(v);
    }
    let Some(rows) = batch.fixed() else {
        return unsupported("a basic-kernel LSTM with variable states over a run-time batch");
    };
    let dtype = b.g.ty(n.input(0)?).dtype;
    let zeros = Tensor::filled(
        dtype,
        vec![rows as usize, hidden as usize],
        &vec![0u8; dtype.size()],
    );
    Ok(b.add_const(&format!("{}/state{i}", n.name), zeros))
}

/// LSTM with the basic kernel: `x [batch, in]`, the previous activation `h [batch, hidden]`,
/// weights `[4·hidden, in + hidden]`, bias `[4·hidden]` and the previous state `c`; the gates
/// `[x, h]·Wᵀ + b` split in LiteRT's `i, g, f, o` order, `c' = σ(i)·tanh(g) + σ(f)·c`,
/// `h' = σ(o)·tanh(c')`. Outputs: `h'`, `c'`, the concatenation and the gates (LiteRT's
/// temporaries, outputs all the same). Its float kernel applies no cell or projection clip.
fn basic_step(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let name = &n.name;
    let (x, w, bias) = (n.input(0)?, n.input(2)?, n.input(3)?);
    let batch = match &b.g.ty(x).shape[..] {
        [batch, _] => batch.clone(),
        other => return Err(NodeError::Invalid(format!("input of rank {}", other.len()))),
    };
    let hidden = match b.g.ty(w).shape.first().and_then(Dim::fixed) {
        Some(rows) if rows % 4 == 0 && rows > 0 => rows / 4,
        _ => {
            return Err(NodeError::Invalid(
                "weights need a fixed 4·hidden rows".into(),
            ))
        }
    };
    let h = state_or_zeros(b, n, 1, &batch, hidden)?;
    let c = state_or_zeros(b, n, 4, &batch, hidden)?;
    let concat = Op::Concat(Concat { axis: 1 });
    let xh = b.emit1(&format!("{name}/concat"), concat, vec![x, h])?;
    let t = MatMul {
        transpose_a: false,
        transpose_b: true,
    };
    let pre = b.emit1(&format!("{name}/matmul"), Op::MatMul(t), vec![xh, w])?;
    let gates = b.emit1(&format!("{name}/gates"), add(), vec![pre, bias])?;
    let split = Op::Split(Split {
        axis: 1,
        sizes: vec![hidden as usize; 4],
    });
    let parts = b.emit(&format!("{name}/split"), split, vec![gates])?;
    let [i, g, f, o] = parts[..] else {
        return Err(NodeError::Invalid("gates split into other than 4".into()));
    };
    let mut unary = |tag: &str, u: UnaryOp, v: ValueId| {
        b.emit1(&format!("{name}/{tag}"), Op::Unary(u), vec![v])
    };
    let (i, g, f, o) = (
        unary("i", UnaryOp::Sigmoid, i)?,
        unary("g", UnaryOp::Tanh, g)?,
        unary("f", UnaryOp::Sigmoid, f)?,
        unary("o", UnaryOp::Sigmoid, o)?,
    );
    let mul = || Op::Binary(BinaryOp::Mul);
    let ig = b.emit1(&format!("{name}/ig"), mul(), vec![i, g])?;
    let fc = b.emit1(&format!("{name}/fc"), mul(), vec![f, c])?;
    let c_new = b.emit1(&format!("{name}/state"), add(), vec![ig, fc])?;
    let tc = b.emit1(
        &format!("{name}/tanh_state"),
        Op::Unary(UnaryOp::Tanh),
        vec![c_new],
    )?;
    let h_new = b.emit1(name, mul(), vec![o, tc])?;
    Ok(vec![h_new, c_new, xh, gates])
}

fn add() -> Op {
    Op::Binary(BinaryOp::Add)
}

/// LSTM: one step of the full kernel over `x [batch, in]`, with UNIDIRECTIONAL_SEQUENCE_LSTM's
/// operands; its output is the new hidden state `[batch, hidden]`. Its states are variable
/// tensors, zeros when the interpreter starts (one invocation of a fresh interpreter); the
/// step also writes them, which nothing in the IR reads back. The basic kernel is
/// `basic_step`.
pub fn one_step(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(n.op.builtin_options_as_lstmoptions(), "LSTMOptions")?;
    if o.kernel_type() == LSTMKernelType::BASIC {
        if o.fused_activation_function() != Act::TANH {
            return unsupported("basic-kernel LSTM with a cell activation other than TANH");
        }
        return basic_step(b, n);
    }
    if o.kernel_type() != LSTMKernelType::FULL {
        return unsupported(format!("LSTM with kernel_type {}", o.kernel_type().0));
    }
    refuse_variants(n, SINGLE, o.fused_activation_function())?;
    refuse_layer_norm(n)?;
    let name = &n.name;
    let x = n.input(0)?;
    let xs = b.g.ty(x).shape.clone();
    let [batch, features] = &xs[..] else {
        return Err(NodeError::Invalid(format!("input of rank {}", xs.len())));
    };
    let seq = vec![Dim::Fixed(1), batch.clone(), features.clone()];
    let xt = reshape_to(b, &format!("{name}/sequence"), x, seq)?[0];
    let y = lstm_direction(
        b,
        n,
        name,
        (xt, SINGLE),
        RnnDirection::Forward,
        o.cell_clip(),
    )?;
    let ys = b.g.ty(y).shape.clone();
    reshape_to(b, name, y, ys[1..].to_vec())
}
