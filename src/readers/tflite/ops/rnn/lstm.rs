//! BIDIRECTIONAL_SEQUENCE_LSTM and LSTM (one step), through the same per-direction reading as
//! UNIDIRECTIONAL_SEQUENCE_LSTM.

use super::super::Node;
use super::{
    lstm_direction, refuse_layer_norm, refuse_variants, to_layout, to_time_major, Slots, SINGLE,
};
use crate::ir::ops::{Concat, RnnDirection};
use crate::ir::{Dim, Op, ValueId};
use crate::readers::builder::{reshape_to, unsupported, GraphBuilder, NodeError, NodeResult};
use tract_tflite::tflite::LSTMKernelType;

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

/// LSTM: one step of the full kernel over `x [batch, in]`, with UNIDIRECTIONAL_SEQUENCE_LSTM's
/// operands; its output is the new hidden state `[batch, hidden]`. Its states are variable
/// tensors, zeros when the interpreter starts (one invocation of a fresh interpreter); the
/// step also writes them, which nothing in the IR reads back. The basic kernel (four inputs,
/// one concatenated weight matrix, states as ordinary inputs and outputs) is refused.
pub fn one_step(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(n.op.builtin_options_as_lstmoptions(), "LSTMOptions")?;
    if o.kernel_type() != LSTMKernelType::FULL {
        return unsupported(format!(
            "LSTM with kernel_type {} (only FULL)",
            o.kernel_type().variant_name().unwrap_or("unknown")
        ));
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
