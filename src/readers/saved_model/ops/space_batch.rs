//! SpaceToBatchND and BatchToSpaceND: their operands read here, the ops built by
//! `tf_common::space_batch` (shared with the TFLite reader).

use super::super::tensor::TfNode;
use super::{const_ints, Handler};
use crate::ir::ValueId;
use crate::readers::builder::{GraphBuilder, NodeError, NodeResult};
use crate::readers::tf_common::space_batch::{self, Pairs};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "SpaceToBatchND" => space_to_batch,
        "BatchToSpaceND" => batch_to_space,
        _ => return None,
    })
}

fn operands(b: &GraphBuilder, n: &TfNode, what: &str) -> NodeResult<(Vec<usize>, Pairs)> {
    let block = const_ints(b, n, 1, "block_shape")?;
    let pairs = const_ints(b, n, 2, what)?;
    if block.is_empty() || pairs.len() != 2 * block.len() || block.iter().any(|&v| v < 1) {
        return Err(NodeError::Invalid(format!(
            "block_shape {block:?} and {what} {pairs:?}"
        )));
    }
    if pairs.iter().any(|&v| v < 0) {
        return Err(NodeError::Invalid(format!("negative {what} {pairs:?}")));
    }
    let block = block.iter().map(|&v| v as usize).collect();
    Ok((block, pairs.chunks(2).map(|p| (p[0], p[1])).collect()))
}

fn space_to_batch(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let (block, pads) = operands(b, n, "paddings")?;
    space_batch::space_to_batch(b, &n.name, n.input(0)?, block, pads)
}

fn batch_to_space(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let (block, crops) = operands(b, n, "crops")?;
    space_batch::batch_to_space(b, &n.name, n.input(0)?, block, crops)
}
