//! ONNX LSTM and GRU (kept whole, ONNX gate layout).

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::Handler;
use crate::ir::ops::{Rnn, RnnDirection, RnnInput};
use crate::ir::{Op, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "LSTM" | "GRU" => rnn,
        _ => return None,
    })
}

fn rnn(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let lstm = ctx.node.op_type == "LSTM";
    let direction = match ctx.string("direction", "forward").as_str() {
        "forward" => RnnDirection::Forward,
        "reverse" => RnnDirection::Reverse,
        "bidirectional" => RnnDirection::Bidirectional,
        d => return Err(NodeError::Invalid(format!("direction '{d}'"))),
    };
    let hidden = ctx.int("hidden_size", 0);
    if hidden <= 0 {
        return Err(NodeError::Invalid("hidden_size must be positive".into()));
    }
    let slots = RnnInput::slots(lstm);
    let mut inputs = vec![ctx.input(0)?, ctx.input(1)?, ctx.input(2)?];
    let mut optional = Vec::new();
    for (k, slot) in slots.iter().enumerate() {
        if let Some(v) = ctx.opt_input(3 + k) {
            inputs.push(v);
            optional.push(*slot);
        }
    }
    let activations: Vec<String> = ctx
        .attr("activations")
        .map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    if ctx.attr("activation_alpha").is_some() || ctx.attr("activation_beta").is_some() {
        return unsupported("RNN activation_alpha/beta");
    }
    let r = Rnn {
        direction,
        hidden_size: hidden as usize,
        activations,
        clip: ctx.attr("clip").map(|a| a.f),
        linear_before_reset: ctx.int("linear_before_reset", 0) == 1,
        input_forget: ctx.int("input_forget", 0) == 1,
        batch_major: ctx.int("layout", 0) == 1,
        optional,
    };
    imp.emit(
        &ctx.name,
        if lstm { Op::Lstm(r) } else { Op::Gru(r) },
        inputs,
    )
}
