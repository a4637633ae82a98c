//! Data-movement ops TF and TFLite define alike (Reshape, Tile, BroadcastTo, BroadcastArgs,
//! Pad/PadV2/MirrorPad, Shape), once their operands are read from the container's own form.
//! A shape-like operand known at import time (constants, or shape arithmetic the builder tracks)
//! gives the static op; one computed from values at run time gives the IR's run-time-operand op
//! (`Op::Dynamic`), as the ONNX reader does.

use crate::ir::ops::{BinaryOp, Cast, Concat, Dynamic, Expand, Pad, PadMode, ShapeOf, Tile};
use crate::ir::{DType, Op, Tensor, ValueId};
use crate::readers::builder::{
    entries_to_shape, reshape_to, resolve_target, unsupported, GraphBuilder, NodeError, NodeResult,
    ShapeEntry,
};

/// `v` (an integer operand) as int64, the operand type of the IR's ONNX-form ops.
pub fn to_i64(b: &mut GraphBuilder, name: &str, v: ValueId) -> NodeResult<ValueId> {
    if b.g.ty(v).dtype == DType::I64 {
        return Ok(v);
    }
    b.emit1(name, Op::Cast(Cast { to: DType::I64 }), vec![v])
}

/// Emits `d` on its operands (cast to int64 from the second input on), or says why the
/// operands do not fit it.
fn dynamic(
    b: &mut GraphBuilder,
    name: &str,
    d: Dynamic,
    mut inputs: Vec<ValueId>,
) -> NodeResult<Vec<ValueId>> {
    for (i, v) in inputs.iter_mut().enumerate().skip(1) {
        *v = to_i64(b, &format!("{name}/operand{i}"), *v)?;
    }
    if let Err(e) = b.g.infer(&Op::Dynamic(d.clone()), &inputs) {
        return unsupported(format!("{} computed at run time: {e}", d.operand()));
    }
    b.emit(name, Op::Dynamic(d), inputs)
}

/// Whether a target shape's entries say too little for a static reshape: more than one entry
/// computed at run time, or one beside a -1.
fn needs_run_time(e: &[ShapeEntry]) -> bool {
    let unknowns = e.iter().filter(|v| **v == ShapeEntry::Unknown).count();
    unknowns > 1 || (unknowns == 1 && e.contains(&ShapeEntry::Int(-1)))
}

/// Reshape to `target` (TF's: -1 infers, 0 is a zero-sized axis).
pub fn reshape(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    target: ValueId,
) -> NodeResult<Vec<ValueId>> {
    match b.entries_or_unknown(target) {
        Some(e) if !needs_run_time(&e) => {
            let input = b.g.ty(x).shape.clone();
            let shape = resolve_target(b, &input, &e, true)?;
            reshape_to(b, name, x, shape)
        }
        _ => {
            let d = Dynamic::Reshape { allowzero: true };
            dynamic(b, name, d, vec![x, target])
        }
    }
}

/// Tile by `multiples`: constant ones (none negative; all ones is the input itself), or
/// computed at run time.
pub fn tile(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    multiples: ValueId,
) -> NodeResult<Vec<ValueId>> {
    let Some(reps) = b.const_ints(multiples) else {
        return dynamic(b, name, Dynamic::Tile, vec![x, multiples]);
    };
    if reps.iter().any(|&r| r < 0) {
        return Err(NodeError::Invalid(format!("multiples {reps:?}")));
    }
    if reps.iter().all(|&r| r == 1) {
        return Ok(vec![x]);
    }
    let repeats = reps.into_iter().map(|r| r as usize).collect();
    b.emit(name, Op::Tile(Tile { repeats }), vec![x])
}

/// BroadcastTo a target shape: known entries (symbols included) give the static Expand, a
/// shape computed at run time the run-time one (ONNX's Expand broadcasts both ways, which
/// agrees with BroadcastTo wherever BroadcastTo is defined).
pub fn broadcast_to(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    target: ValueId,
) -> NodeResult<Vec<ValueId>> {
    let e = match b.entries_or_unknown(target) {
        Some(e) if !e.contains(&ShapeEntry::Unknown) => e,
        _ => return dynamic(b, name, Dynamic::Expand, vec![x, target]),
    };
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

/// BroadcastArgs(s0, s1): the shape two shapes broadcast to. Both are padded with leading 1s
/// to one length; then each pair is equal or holds a 1, so the elementwise maximum is the
/// answer (the builder tracks it through symbols, e.g. `max(batch, 1) = batch`). A zero-sized
/// axis against a 1 would broadcast to 0, not 1: neither framework's kernel is asked for that
/// in the graphs their converters write (a size-0 batch), so the maximum stands.
pub fn broadcast_args(
    b: &mut GraphBuilder,
    name: &str,
    s0: ValueId,
    s1: ValueId,
) -> NodeResult<Vec<ValueId>> {
    let len = |b: &GraphBuilder, v: ValueId| -> NodeResult<usize> {
        match b.g.ty(v).shape.as_slice() {
            [d] => d
                .fixed()
                .map(|n| n as usize)
                .ok_or_else(|| NodeError::Unsupported("a shape of run-time rank".into())),
            _ => Err(NodeError::Invalid("shapes must be 1-D".into())),
        }
    };
    let (l0, l1) = (len(b, s0)?, len(b, s1)?);
    let rank = l0.max(l1);
    let mut padded = Vec::new();
    for (k, (v, l)) in [(s0, l0), (s1, l1)].into_iter().enumerate() {
        if l == rank {
            padded.push(v);
            continue;
        }
        let dtype = b.g.ty(v).dtype;
        let ones = b.add_const(
            &format!("{name}/ones{k}"),
            Tensor::from_i64s(dtype, vec![rank - l], &vec![1; rank - l]),
        );
        let c = Op::Concat(Concat { axis: 0 });
        padded.push(b.emit1(&format!("{name}/padded{k}"), c, vec![ones, v])?);
    }
    b.emit(name, Op::Binary(BinaryOp::Max), padded)
}
