//! Data-movement ops TF and TFLite define alike (Tile, BroadcastTo, Pad/PadV2/MirrorPad, Shape),
//! once their operands are read from the container's own form.

use crate::ir::ops::{Cast, Expand, Pad, PadMode, ShapeOf, Tile};
use crate::ir::{DType, Op, ValueId};
use crate::readers::builder::{entries_to_shape, GraphBuilder, NodeError, NodeResult, ShapeEntry};

/// The known entries of a small integer operand (a shape, sizes), or why not.
pub fn entries(b: &GraphBuilder, v: ValueId, what: &str) -> NodeResult<Vec<ShapeEntry>> {
    b.entries_or_unknown(v)
        .ok_or_else(|| NodeError::Unsupported(format!("{what} computed at run time")))
}

/// Tile by constant `multiples` (none negative; all ones is the input itself).
pub fn tile(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    reps: Vec<i64>,
) -> NodeResult<Vec<ValueId>> {
    if reps.iter().any(|&r| r < 0) {
        return Err(NodeError::Invalid(format!("multiples {reps:?}")));
    }
    if reps.iter().all(|&r| r == 1) {
        return Ok(vec![x]);
    }
    let repeats = reps.into_iter().map(|r| r as usize).collect();
    b.emit(name, Op::Tile(Tile { repeats }), vec![x])
}

/// BroadcastTo a target shape whose entries are known (symbols included).
pub fn broadcast_to(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    target: ValueId,
) -> NodeResult<Vec<ValueId>> {
    let e = entries(b, target, "target shape")?;
    let shape = entries_to_shape(b, &e)?;
    let out = crate::ir::ops::broadcast(&b.g.ty(x).shape, &shape)?;
    if out == b.g.ty(x).shape {
        return Ok(vec![x]);
    }
    b.emit(name, Op::Expand(Expand { shape }), vec![x])
}

/// `paddings` (`[rank, 2]` flattened) as `(before, after)` per axis of `x`.
pub fn pad_pairs(b: &GraphBuilder, x: ValueId, p: &[i64]) -> NodeResult<Vec<(i64, i64)>> {
    let rank = b.g.ty(x).rank();
    if p.len() != 2 * rank {
        return Err(NodeError::Invalid(format!(
            "paddings {p:?} for rank {rank}"
        )));
    }
    Ok(p.chunks(2).map(|c| (c[0], c[1])).collect())
}

/// Pad by `pads` (no padding is the input itself).
pub fn pad(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    pads: Vec<(i64, i64)>,
    mode: PadMode,
    value: f64,
) -> NodeResult<Vec<ValueId>> {
    if pads.iter().all(|&(a, e)| a == 0 && e == 0) {
        return Ok(vec![x]);
    }
    b.emit(name, Op::Pad(Pad { mode, pads, value }), vec![x])
}

/// Shape of `x` as `to` (int32 by default in both containers).
pub fn shape_of(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    to: DType,
) -> NodeResult<Vec<ValueId>> {
    let rank = b.g.ty(x).rank();
    let s = b.emit1(
        &format!("{name}/i64"),
        Op::ShapeOf(ShapeOf {
            start: 0,
            end: rank,
        }),
        vec![x],
    )?;
    if to == DType::I64 {
        return Ok(vec![s]);
    }
    b.emit(name, Op::Cast(Cast { to }), vec![s])
}
