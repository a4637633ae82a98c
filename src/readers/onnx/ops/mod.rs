//! ONNX op handlers, one file per family. `import` dispatches on the op type; `is_known` lists
//! every op type some handler takes (used to report unknown ops downstream of an unsupported
//! one).

mod attention;
mod build;
mod contrib;
mod contrib_attention;
mod contrib_quant;
mod control;
mod elementwise;
mod image;
mod index;
mod linalg;
mod loss;
mod nn;
mod norm;
mod pool_index;
mod quant;
mod resize;
mod rnn;
mod scan;
mod scatter;
mod shape;
mod signal;
mod text;

use super::import::{unsupported, Importer, NodeCtx, NodeResult};
use crate::ir::ops::Dynamic;
use crate::ir::{Op, ValueId};

type Handler = fn(&mut Importer, &NodeCtx) -> NodeResult<Vec<ValueId>>;

fn handler(op_type: &str) -> Option<Handler> {
    elementwise::handler(op_type)
        .or_else(|| nn::handler(op_type))
        .or_else(|| shape::handler(op_type))
        .or_else(|| index::handler(op_type))
        .or_else(|| quant::handler(op_type))
        .or_else(|| rnn::handler(op_type))
        .or_else(|| loss::handler(op_type))
        .or_else(|| control::handler(op_type))
        .or_else(|| attention::handler(op_type))
        .or_else(|| signal::handler(op_type))
        .or_else(|| norm::handler(op_type))
        .or_else(|| image::handler(op_type))
        .or_else(|| resize::handler(op_type))
        .or_else(|| scatter::handler(op_type))
        .or_else(|| text::handler(op_type))
        .or_else(|| linalg::handler(op_type))
        .or_else(|| contrib::handler(op_type))
        .or_else(|| contrib_quant::handler(op_type))
        .or_else(|| contrib_attention::handler(op_type))
}

/// The operator sets read: the default one, the classic-ML one (`ai.onnx.ml`) and
/// onnxruntime's contrib ops (`com.microsoft`), whose ops the handlers know as
/// `<domain>:<op>`; an op of these domains without a handler is refused by name.
pub fn domain_known(domain: &str) -> bool {
    matches!(domain, "" | "ai.onnx" | "ai.onnx.ml" | "com.microsoft")
}

fn qualified(domain: &str, op_type: &str) -> String {
    match domain {
        "" | "ai.onnx" => op_type.to_string(),
        d => format!("{d}:{op_type}"),
    }
}

pub fn is_known(domain: &str, op_type: &str) -> bool {
    handler(&qualified(domain, op_type)).is_some()
}

pub fn import(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    match handler(&qualified(&ctx.node.domain, &ctx.node.op_type)) {
        Some(h) => h(imp, ctx),
        None => unsupported("no converter for this op"),
    }
}

/// Emits an op whose operands are computed at run time (all of them inputs, in ONNX's forms).
fn dynamic(
    imp: &mut Importer,
    ctx: &NodeCtx,
    d: Dynamic,
    inputs: Vec<ValueId>,
) -> NodeResult<Vec<ValueId>> {
    if let Err(e) = imp.g.infer(&Op::Dynamic(d.clone()), &inputs) {
        return unsupported(format!("{} computed at run time: {e}", d.operand()));
    }
    imp.emit(&ctx.name, Op::Dynamic(d), inputs)
}
