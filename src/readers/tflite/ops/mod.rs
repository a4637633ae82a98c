//! TFLite builtin handlers, one file per family. `handler` dispatches on the builtin code.
//! Options tables are read through the generated schema; an operator without the options its
//! builtin needs is malformed.

mod conv3d;
mod detect;
mod elementwise;
mod index;
mod misc;
mod nn;
mod rnn;
mod segment;
mod shape;

use crate::ir::ValueId;
use crate::readers::builder::{GraphBuilder, NodeError, NodeResult};
use crate::readers::tf_common::Fused;
use tract_tflite::tflite::{self as tfl, ActivationFunctionType as Act, BuiltinOperator as B};

pub type Handler = fn(&mut GraphBuilder, &Node) -> NodeResult<Vec<ValueId>>;

/// One operator being imported.
pub struct Node<'a> {
    /// The name of its first output tensor (TFLite operators have no names of their own).
    pub name: String,
    pub code: B,
    pub op: tfl::Operator<'a>,
    /// Its inputs' real values; `None` for an optional input left out (index -1).
    pub inputs: Vec<Option<ValueId>>,
    /// The element types of its output tensors (`None`: a type the IR lacks).
    pub out_dtypes: Vec<Option<crate::ir::DType>>,
}

impl Node<'_> {
    pub fn input(&self, i: usize) -> NodeResult<ValueId> {
        self.opt(i)
            .ok_or_else(|| NodeError::Invalid(format!("input {i} is missing")))
    }

    pub fn opt(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }

    /// The constant integer contents of input `i` (axes, shapes, paddings…).
    pub fn ints(&self, b: &GraphBuilder, i: usize, what: &str) -> NodeResult<Vec<i64>> {
        b.const_ints(self.input(i)?)
            .ok_or_else(|| NodeError::Unsupported(format!("{what} computed at run time")))
    }

    /// The builtin's options table, or an error naming the missing one.
    pub fn options<T>(&self, o: Option<T>, what: &str) -> NodeResult<T> {
        o.ok_or_else(|| NodeError::Invalid(format!("operator has no {what}")))
    }
}

/// A fused activation as the IR op applied after.
pub fn fused(a: Act) -> NodeResult<Fused> {
    Ok(match a {
        Act::NONE => Fused::None,
        Act::RELU => Fused::Relu,
        Act::RELU_N1_TO_1 => Fused::Clip(-1.0, 1.0),
        Act::RELU6 => Fused::Clip(0.0, 6.0),
        Act::TANH => Fused::Tanh,
        other => {
            return Err(NodeError::Unsupported(format!(
                "fused activation {}",
                other.variant_name().unwrap_or("unknown")
            )))
        }
    })
}

pub fn handler(code: B) -> Option<Handler> {
    elementwise::handler(code)
        .or_else(|| nn::handler(code))
        .or_else(|| shape::handler(code))
        .or_else(|| index::handler(code))
        .or_else(|| rnn::handler(code))
        .or_else(|| conv3d::handler(code))
        .or_else(|| detect::handler(code))
        .or_else(|| segment::handler(code))
        .or_else(|| misc::handler(code))
}
