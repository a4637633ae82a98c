//! Indexing builtins: GATHER_ND, EMBEDDING_LOOKUP (a gather on axis 0), CUMSUM, REVERSE_V2
//! (a slice with step -1 per axis), TOPK_V2 (last axis, largest, sorted; int32 indices) and
//! ONE_HOT (`[off, on]` joined into the values operand) and SCATTER_ND (updates added into
//! zeros of the given shape, duplicates summed as TF does).

use super::{Handler, Node};
use crate::ir::ops::{
    norm_axis, Cast, Concat, ConstantOfShape, CumSum, Gather, GatherNd, OneHot, Scatter,
    ScatterReduction, Slice, SliceAxis, TopK,
};
use crate::ir::{DType, Op, Tensor, ValueId};
use crate::readers::builder::{reshape_to, GraphBuilder, NodeError, NodeResult};
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
    let op = Op::GatherNd(GatherNd { batch_dims: 0 });
    b.emit(&n.name, op, vec![n.input(0)?, n.input(1)?])
}

/// EMBEDDING_LOOKUP(ids, table): rows of the table.
fn embedding_lookup(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let op = Op::Gather(Gather { axis: 0 });
    b.emit(&n.name, op, vec![n.input(1)?, n.input(0)?])
}

fn single_axis(b: &GraphBuilder, n: &Node, i: usize, rank: usize) -> NodeResult<usize> {
    match n.ints(b, i, "axis")?.as_slice() {
        [a] => Ok(norm_axis(*a, rank)?),
        _ => Err(NodeError::Invalid("axis must hold one value".into())),
    }
}

fn cumsum(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let axis = single_axis(b, n, 1, b.g.ty(x).rank())?;
    let (exclusive, reverse) =
        n.op.builtin_options_as_cumsum_options()
            .map_or((false, false), |o| (o.exclusive(), o.reverse()));
    let c = CumSum {
        axis,
        exclusive,
        reverse,
    };
    b.emit(&n.name, Op::CumSum(c), vec![x])
}

fn reverse(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    let axes = n
        .ints(b, 1, "reversed axes")?
        .iter()
        .map(|&a| {
            Ok(SliceAxis {
                axis: norm_axis(a, rank)?,
                start: -1,
                end: i64::MIN,
                step: -1,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if axes.is_empty() {
        return Ok(vec![x]);
    }
    b.emit(&n.name, Op::Slice(Slice { axes }), vec![x])
}

fn top_k(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    let k = match n.ints(b, 1, "k")?.as_slice() {
        [k] if *k >= 0 => *k as usize,
        other => return Err(NodeError::Invalid(format!("k {other:?}"))),
    };
    let axis = rank
        .checked_sub(1)
        .ok_or_else(|| NodeError::Invalid("TOPK_V2 of a scalar".into()))?;
    let t = TopK {
        axis,
        k,
        largest: true,
        sorted: true,
    };
    let outs = b.emit(&format!("{}/topk", n.name), Op::TopK(t), vec![x])?;
    let [values, idx] = outs[..] else {
        return Err(NodeError::Invalid(
            "TopK gave other than two outputs".into(),
        ));
    };
    let to = n.out_dtypes.get(1).copied().flatten().unwrap_or(DType::I32);
    let idx = if to == DType::I64 {
        idx
    } else {
        b.emit1(
            &format!("{}/indices", n.name),
            Op::Cast(Cast { to }),
            vec![idx],
        )?
    };
    Ok(vec![values, idx])
}

/// ONE_HOT(indices, depth, on_value, off_value).
fn one_hot(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let depth = match n.ints(b, 1, "depth")?.as_slice() {
        [d] if *d >= 0 => *d as usize,
        other => return Err(NodeError::Invalid(format!("depth {other:?}"))),
    };
    let axis =
        n.op.builtin_options_as_one_hot_options()
            .map_or(-1, |o| i64::from(o.axis()));
    let mut pair = Vec::new();
    for (i, tag) in [(3, "off"), (2, "on")] {
        let v = n.input(i)?;
        pair.push(
            reshape_to(
                b,
                &format!("{}/{tag}", n.name),
                v,
                vec![crate::ir::Dim::Fixed(1)],
            )?[0],
        );
    }
    let values = b.emit1(
        &format!("{}/values", n.name),
        Op::Concat(Concat { axis: 0 }),
        pair,
    )?;
    let o = OneHot { axis, depth };
    b.emit(&n.name, Op::OneHot(o), vec![n.input(0)?, values])
}

/// SCATTER_ND(indices, updates, shape).
fn scatter_nd(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let (idx, updates, shape) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let dtype = b.g.ty(updates).dtype;
    let shape = if b.g.ty(shape).dtype == DType::I64 {
        shape
    } else {
        let c = Op::Cast(Cast { to: DType::I64 });
        b.emit1(&format!("{}/shape", n.name), c, vec![shape])?
    };
    let zero = Tensor::filled(dtype, vec![1], &vec![0u8; dtype.size()]);
    let zeros = b.emit1(
        &format!("{}/zeros", n.name),
        Op::ConstantOfShape(ConstantOfShape { value: zero }),
        vec![shape],
    )?;
    let idx = if b.g.ty(idx).dtype == DType::I64 {
        idx
    } else {
        let c = Op::Cast(Cast { to: DType::I64 });
        b.emit1(&format!("{}/indices", n.name), c, vec![idx])?
    };
    let s = Scatter {
        reduction: ScatterReduction::Add,
    };
    b.emit(&n.name, Op::ScatterNd(s), vec![zeros, idx, updates])
}
