//! Indexing ops TF and TFLite define alike, once their operands and attributes are read from
//! the container's own form: ReverseV2 (a slice with step -1 per axis), Cumsum, TopKV2 (last
//! axis, largest, sorted), OneHot (`[off, on]` joined into the values operand), ScatterNd
//! (updates added into zeros of the given shape, duplicates summed as TF does),
//! TensorScatterUpdate (updates written over a tensor), GatherNd, DepthToSpace/SpaceToDepth
//! (NHWC, DCR order).

use super::movement::to_i64;
use crate::ir::ops::{
    norm_axis, Cast, Concat, ConstantOfShape, CumSum, DepthToSpace, DepthToSpaceMode, GatherNd,
    OneHot, Scatter, ScatterReduction, Slice, SliceAxis, SpaceToDepth, TopK,
};
use crate::ir::{DType, Layout, Op, Tensor, ValueId};
use crate::readers::builder::{reshape_to, GraphBuilder, NodeError, NodeResult};

/// `x` reversed along `axes` (none: `x` itself).
pub fn reverse(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    axes: &[i64],
) -> NodeResult<Vec<ValueId>> {
    let rank = b.g.ty(x).rank();
    let axes = axes
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
    b.emit(name, Op::Slice(Slice { axes }), vec![x])
}

/// The one axis an `axis` operand holds.
pub fn single_axis(axis: &[i64], rank: usize) -> NodeResult<usize> {
    match axis {
        [a] => Ok(norm_axis(*a, rank)?),
        _ => Err(NodeError::Invalid("axis must hold one value".into())),
    }
}

pub fn cumsum(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    axis: &[i64],
    exclusive: bool,
    reverse: bool,
) -> NodeResult<Vec<ValueId>> {
    let axis = single_axis(axis, b.g.ty(x).rank())?;
    let c = CumSum {
        axis,
        exclusive,
        reverse,
    };
    b.emit(name, Op::CumSum(c), vec![x])
}

/// TopKV2: the `k` largest along the last axis, sorted, with indices of type `index_type`.
pub fn top_k(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    k: &[i64],
    index_type: DType,
) -> NodeResult<Vec<ValueId>> {
    let k = match k {
        [k] if *k >= 0 => *k as usize,
        other => return Err(NodeError::Invalid(format!("k {other:?}"))),
    };
    let axis =
        b.g.ty(x)
            .rank()
            .checked_sub(1)
            .ok_or_else(|| NodeError::Invalid("TopK of a scalar".into()))?;
    let t = TopK {
        axis,
        k,
        largest: true,
        sorted: true,
    };
    let outs = b.emit(&format!("{name}/topk"), Op::TopK(t), vec![x])?;
    let [values, idx] = outs[..] else {
        return Err(NodeError::Invalid(
            "TopK gave other than two outputs".into(),
        ));
    };
    let idx = if index_type == DType::I64 {
        idx
    } else {
        let c = Op::Cast(Cast { to: index_type });
        b.emit1(&format!("{name}/indices"), c, vec![idx])?
    };
    Ok(vec![values, idx])
}

/// OneHot(indices, depth, on_value, off_value) along `axis` (-1: a new last axis).
pub fn one_hot(
    b: &mut GraphBuilder,
    name: &str,
    inputs: [ValueId; 3],
    depth: &[i64],
    axis: i64,
) -> NodeResult<Vec<ValueId>> {
    let [indices, on, off] = inputs;
    let depth = match depth {
        [d] if *d >= 0 => *d as usize,
        other => return Err(NodeError::Invalid(format!("depth {other:?}"))),
    };
    let mut pair = Vec::new();
    for (v, tag) in [(off, "off"), (on, "on")] {
        let one = vec![crate::ir::Dim::Fixed(1)];
        pair.push(reshape_to(b, &format!("{name}/{tag}"), v, one)?[0]);
    }
    let values = b.emit1(
        &format!("{name}/values"),
        Op::Concat(Concat { axis: 0 }),
        pair,
    )?;
    // int64 indices: onnxruntime's OneHot has no kernel for int32 indices with int64 depth.
    let indices = to_i64(b, &format!("{name}/indices"), indices)?;
    let o = OneHot { axis, depth };
    b.emit(name, Op::OneHot(o), vec![indices, values])
}

/// ScatterNd(indices, updates, shape): updates summed into zeros of `shape`.
pub fn scatter_nd(
    b: &mut GraphBuilder,
    name: &str,
    indices: ValueId,
    updates: ValueId,
    shape: ValueId,
) -> NodeResult<Vec<ValueId>> {
    let dtype = b.g.ty(updates).dtype;
    let shape = to_i64(b, &format!("{name}/shape"), shape)?;
    let zero = Tensor::filled(dtype, vec![1], &vec![0u8; dtype.size()]);
    let zeros = b.emit1(
        &format!("{name}/zeros"),
        Op::ConstantOfShape(ConstantOfShape { value: zero }),
        vec![shape],
    )?;
    let indices = to_i64(b, &format!("{name}/indices"), indices)?;
    let s = Scatter {
        reduction: ScatterReduction::Add,
    };
    b.emit(name, Op::ScatterNd(s), vec![zeros, indices, updates])
}

/// TensorScatterUpdate(tensor, indices, updates): `tensor` with the indexed slices replaced.
pub fn tensor_scatter_update(
    b: &mut GraphBuilder,
    name: &str,
    tensor: ValueId,
    indices: ValueId,
    updates: ValueId,
) -> NodeResult<Vec<ValueId>> {
    let indices = to_i64(b, &format!("{name}/indices"), indices)?;
    let s = Scatter {
        reduction: ScatterReduction::None,
    };
    b.emit(name, Op::ScatterNd(s), vec![tensor, indices, updates])
}

pub fn gather_nd(
    b: &mut GraphBuilder,
    name: &str,
    params: ValueId,
    indices: ValueId,
) -> NodeResult<Vec<ValueId>> {
    // The IR's indices are int64, as ONNX's; TF's are int32 or int64.
    let indices = to_i64(b, &format!("{name}/indices"), indices)?;
    let op = Op::GatherNd(GatherNd { batch_dims: 0 });
    b.emit(name, op, vec![params, indices])
}

/// DepthToSpace (`to_space`) or SpaceToDepth of an NHWC tensor.
pub fn depth_space(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    block: i64,
    to_space: bool,
) -> NodeResult<Vec<ValueId>> {
    let block = usize::try_from(block)
        .ok()
        .filter(|&v| v >= 1)
        .ok_or_else(|| NodeError::Invalid(format!("block size {block}")))?;
    let op = if to_space {
        Op::DepthToSpace(DepthToSpace {
            block,
            mode: DepthToSpaceMode::Dcr,
            layout: Layout::Nhwc,
        })
    } else {
        Op::SpaceToDepth(SpaceToDepth {
            block,
            layout: Layout::Nhwc,
        })
    };
    b.emit(name, op, vec![x])
}
