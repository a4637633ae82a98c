//! TF op handlers, one file per family. `handler` dispatches on the op type; `is_known` lists
//! every op some handler takes (used to name unknown ops downstream of an unsupported one).
//! Data stays NHWC and kernels HWIO as TF keeps them; no transposes are inserted.

mod elementwise;
mod fused;
mod index;
mod lowered;
mod nn;
mod shape;
mod space_batch;

use super::tensor::TfNode;
use crate::ir::{Tensor, ValueId};
use crate::readers::builder::{GraphBuilder, NodeError, NodeResult};

pub type Handler = fn(&mut GraphBuilder, &TfNode) -> NodeResult<Vec<ValueId>>;

pub fn handler(op: &str) -> Option<Handler> {
    elementwise::handler(op)
        .or_else(|| nn::handler(op))
        .or_else(|| shape::handler(op))
        .or_else(|| space_batch::handler(op))
        .or_else(|| fused::handler(op))
        .or_else(|| index::handler(op))
        .or_else(|| lowered::handler(op))
}

pub fn is_known(op: &str) -> bool {
    handler(op).is_some()
}

/// The constant integer contents of input `i` (axes, paddings, multiples…).
fn const_ints(b: &GraphBuilder, n: &TfNode, i: usize, what: &str) -> NodeResult<Vec<i64>> {
    b.const_ints(n.input(i)?)
        .ok_or_else(|| NodeError::Unsupported(format!("{what} computed at run time")))
}

/// A scalar constant of `x`'s element type.
fn scalar_like(b: &mut GraphBuilder, x: ValueId, name: &str, v: f64) -> ValueId {
    let dtype = b.g.ty(x).dtype;
    b.add_const(name, Tensor::from_f64s(dtype, vec![], &[v]))
}
