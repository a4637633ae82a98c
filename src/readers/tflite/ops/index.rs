//! Indexing builtins: GATHER_ND, EMBEDDING_LOOKUP (a gather on axis 0), CUMSUM, REVERSE_V2
//! (a slice with step -1 per axis), TOPK_V2 (last axis, largest, sorted; int32 indices) and
//! ONE_HOT (`[off, on]` joined into the values operand) and SCATTER_ND (updates added into
//! zeros of the given shape, duplicates summed as TF does).

use super::{Handler, Node};
use crate::ir::ops::Gather;
use crate::ir::{DType, Op, ValueId};
use crate::readers::builder::{GraphBuilder, NodeResult};
use crate::readers::tf_common::index;
use tract_tflite::tflite::BuiltinOperator as B;

pub fn handler(code: B) -> Option<Handler> {
    Some(match code {
        B::GATHER_ND => gather_nd,
        B::EMBEDDING_LOOKUP => embedding_lookup,
        B::CUMSUM => cumsum,
        B::REVERSE_V2 => reverse,
        B::TOPK_V2 => top_k,
        B::ONE_HOT => one_hot,
        B::SCATTER_ND => scatter_nd,
        _ => return None,
    })
}

fn gather_nd(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    index::gather_nd(b, &n.name, n.input(0)?, n.input(1)?)
}

/// EMBEDDING_LOOKUP(ids, table): rows of the table.
fn embedding_lookup(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let op = Op::Gather(Gather { axis: 0 });
    b.emit(&n.name, op, vec![n.input(1)?, n.input(0)?])
}

fn cumsum(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let (exclusive, reverse) =
        n.op.builtin_options_as_cumsum_options()
            .map_or((false, false), |o| (o.exclusive(), o.reverse()));
    let axis = n.ints(b, 1, "axis")?;
    index::cumsum(b, &n.name, n.input(0)?, &axis, exclusive, reverse)
}

fn reverse(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let axes = n.ints(b, 1, "reversed axes")?;
    index::reverse(b, &n.name, n.input(0)?, &axes)
}

fn top_k(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let k = n.ints(b, 1, "k")?;
    let to = n.out_dtypes.get(1).copied().flatten().unwrap_or(DType::I32);
    index::top_k(b, &n.name, n.input(0)?, &k, to)
}

/// ONE_HOT(indices, depth, on_value, off_value).
fn one_hot(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let depth = n.ints(b, 1, "depth")?;
    let axis =
        n.op.builtin_options_as_one_hot_options()
            .map_or(-1, |o| i64::from(o.axis()));
    let inputs = [n.input(0)?, n.input(2)?, n.input(3)?];
    index::one_hot(b, &n.name, inputs, &depth, axis)
}

/// SCATTER_ND(indices, updates, shape).
fn scatter_nd(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    index::scatter_nd(b, &n.name, n.input(0)?, n.input(1)?, n.input(2)?)
}
