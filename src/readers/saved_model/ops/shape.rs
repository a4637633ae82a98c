//! Shape and data-movement TF ops: Reshape, Squeeze, ExpandDims, Transpose, ConcatV2, Pack,
//! Unpack, Split, SplitV, StridedSlice (all five masks), Slice, GatherV2, Tile, BroadcastTo,
//! BroadcastArgs, Pad/PadV2/MirrorPad (SYMMETRIC built from reversed slices), Fill, Range, Shape,
//! ReverseV2 (a slice with step -1 per axis) and the bilinear / nearest resizes. Shape arguments
//! are known at import time (constants, or shape arithmetic the builder tracks: the batch stays
//! a symbol), except the target of Reshape, the multiples of Tile, BroadcastTo's shape and the
//! resizes' sizes, which may be computed at run time (`tf_common::movement`).

use super::super::tensor::TfNode;
use super::{const_ints, Handler};
use crate::ir::ops::{norm_axis, Concat, Gather, PadMode, Slice, SliceAxis, Split, Transpose};
use crate::ir::{DType, Dim, Op, Shape, ValueId};
use crate::readers::builder::{reshape_to, unsupported, GraphBuilder, NodeError, NodeResult};
use crate::readers::tf_common::movement;
use crate::readers::tf_common::{self, StridedMasks};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Reshape" => reshape,
        "Squeeze" => squeeze,
        "ExpandDims" => expand_dims,
        "Transpose" => transpose,
        "ConcatV2" => concat,
        "Pack" => pack,
        "Unpack" => unpack,
        "Split" | "SplitV" => split,
        "StridedSlice" => strided_slice,
        "Slice" => slice,
        "GatherV2" => gather,
        "Tile" => tile,
        "BroadcastTo" => broadcast_to,
        "BroadcastArgs" => broadcast_args,
        "Pad" | "PadV2" | "MirrorPad" => pad,
        "Fill" => fill,
        "Range" => range,
        "Shape" => shape,
        "Size" => size,
        "Rank" => rank,
        "ResizeBilinear" | "ResizeNearestNeighbor" => resize,
        _ => return None,
    })
}

fn reshape(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    movement::reshape(b, &n.name, n.input(0)?, n.input(1)?)
}

fn squeeze(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let s = b.g.ty(x).shape.clone();
    let dims = n.ints("squeeze_dims");
    let axes: Vec<usize> = if dims.is_empty() {
        if s.iter().any(|d| !d.is_fixed()) {
            return unsupported("Squeeze of all size-1 axes with symbolic dimensions");
        }
        (0..s.len()).filter(|&i| s[i] == Dim::Fixed(1)).collect()
    } else {
        dims.iter()
            .map(|&a| norm_axis(a, s.len()))
            .collect::<Result<_, _>>()?
    };
    let shape: Shape = s
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, d)| d.clone())
        .collect();
    reshape_to(b, &n.name, x, shape)
}

fn expand_dims(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let mut s = b.g.ty(x).shape.clone();
    let axis = match const_ints(b, n, 1, "axis")?.as_slice() {
        [a] => norm_axis(*a, s.len() + 1)?,
        _ => return Err(NodeError::Invalid("axis must be a scalar".into())),
    };
    s.insert(axis, Dim::Fixed(1));
    reshape_to(b, &n.name, x, s)
}

fn transpose(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    let perm = const_ints(b, n, 1, "perm")?
        .into_iter()
        .map(|p| norm_axis(p, rank))
        .collect::<Result<Vec<_>, _>>()?;
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(vec![x]);
    }
    b.emit(&n.name, Op::Transpose(Transpose { perm }), vec![x])
}

fn concat(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let (axis_in, values) = n
        .inputs
        .split_last()
        .ok_or_else(|| NodeError::Invalid("ConcatV2 without inputs".into()))?;
    let rank = b.g.ty(values[0]).rank();
    let axis = match b.const_ints(*axis_in).as_deref() {
        Some([a]) => norm_axis(*a, rank)?,
        _ => return unsupported("concat axis computed at run time"),
    };
    if values.len() == 1 {
        return Ok(vec![values[0]]);
    }
    b.emit(&n.name, Op::Concat(Concat { axis }), values.to_vec())
}

fn pack(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let first = n.input(0)?;
    let mut s = b.g.ty(first).shape.clone();
    let axis = norm_axis(n.int("axis", 0), s.len() + 1)?;
    s.insert(axis, Dim::Fixed(1));
    let mut parts = Vec::new();
    for (i, &v) in n.inputs.iter().enumerate() {
        let mut vs = b.g.ty(v).shape.clone();
        vs.insert(axis, Dim::Fixed(1));
        parts.push(reshape_to(b, &format!("{}/{i}", n.name), v, vs)?[0]);
    }
    if parts.len() == 1 {
        return Ok(parts);
    }
    b.emit(&n.name, Op::Concat(Concat { axis }), parts)
}

fn unpack(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let s = b.g.ty(x).shape.clone();
    let axis = norm_axis(n.int("axis", 0), s.len())?;
    let count = s[axis]
        .fixed()
        .ok_or_else(|| NodeError::Unsupported("Unpack along a symbolic axis".into()))?;
    crate::ir::limits::check_fanout(count, &format!("Unpack into {count} values"))?;
    let count = count as usize;
    let parts = b.emit(
        &format!("{}/split", n.name),
        Op::Split(Split {
            axis,
            sizes: vec![1; count],
        }),
        vec![x],
    )?;
    let mut out_shape = s.clone();
    out_shape.remove(axis);
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| Ok(reshape_to(b, &format!("{}:{i}", n.name), p, out_shape.clone())?[0]))
        .collect()
}

fn split(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    // Split(axis, value) with num_split; SplitV(value, size_splits, axis).
    let (x, axis_in) = if n.op() == "Split" {
        (n.input(1)?, n.input(0)?)
    } else {
        (n.input(0)?, n.input(2)?)
    };
    let s = b.g.ty(x).shape.clone();
    let axis = match b.const_ints(axis_in).as_deref() {
        Some([a]) => norm_axis(*a, s.len())?,
        _ => return unsupported("split axis computed at run time"),
    };
    // Along a symbolic axis only sizes all given work (the graph then holds for one size).
    let total = match (s[axis].fixed(), n.op() == "Split") {
        (Some(t), _) => t as i64,
        (None, false) => {
            let given = sized_splits(b, n)?;
            return b.emit(&n.name, Op::Split(Split { axis, sizes: given }), vec![x]);
        }
        (None, true) => return unsupported("Split in equal parts along a symbolic axis"),
    };
    let sizes: Vec<i64> = if n.op() == "Split" {
        let k = n.int("num_split", 1).max(1);
        if total % k != 0 {
            return Err(NodeError::Invalid(format!("{total} does not split in {k}")));
        }
        vec![total / k; k as usize]
    } else {
        let mut v = const_ints(b, n, 1, "size_splits")?;
        let known: i64 = v.iter().filter(|&&x| x >= 0).sum();
        for x in v.iter_mut().filter(|x| **x < 0) {
            *x = total - known;
        }
        v
    };
    if sizes.iter().any(|&v| v < 0) || sizes.iter().sum::<i64>() != total {
        return Err(NodeError::Invalid(format!(
            "split sizes {sizes:?} of {total}"
        )));
    }
    let sizes = sizes.into_iter().map(|v| v as usize).collect();
    b.emit(&n.name, Op::Split(Split { axis, sizes }), vec![x])
}

/// SplitV's size_splits when every one is given (none is -1).
fn sized_splits(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<usize>> {
    let v = const_ints(b, n, 1, "size_splits")?;
    v.iter()
        .map(|&x| usize::try_from(x).ok())
        .collect::<Option<_>>()
        .ok_or_else(|| NodeError::Unsupported(format!("SplitV sizes {v:?} along a symbolic axis")))
}

fn strided_slice(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let mut masks = StridedMasks {
        begin: n.int("begin_mask", 0),
        end: n.int("end_mask", 0),
        ellipsis: n.int("ellipsis_mask", 0),
        new_axis: n.int("new_axis_mask", 0),
        shrink: n.int("shrink_axis_mask", 0),
    };
    let (begin, strides) = (
        const_ints(b, n, 1, "begin")?,
        const_ints(b, n, 3, "strides")?,
    );
    let end = tf_common::strided_end(b, n.input(0)?, n.input(2)?, &strides, &mut masks)?;
    tf_common::strided_slice(b, &n.name, n.input(0)?, [&begin, &end, &strides], masks)
}

fn slice(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let begin = const_ints(b, n, 1, "begin")?;
    let size = const_ints(b, n, 2, "size")?;
    if begin.len() != size.len() || begin.len() != b.g.ty(x).rank() {
        return Err(NodeError::Invalid(
            "begin/size do not match the rank".into(),
        ));
    }
    let axes: Vec<SliceAxis> = (0..begin.len())
        .filter(|&i| !(begin[i] == 0 && size[i] == -1))
        .map(|i| SliceAxis {
            axis: i,
            start: begin[i],
            end: if size[i] < 0 {
                i64::MAX
            } else {
                begin[i] + size[i]
            },
            step: 1,
        })
        .collect();
    if axes.is_empty() {
        return Ok(vec![x]);
    }
    b.emit(&n.name, Op::Slice(Slice { axes }), vec![x])
}

fn gather(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let (x, idx) = (n.input(0)?, n.input(1)?);
    if n.int("batch_dims", 0) != 0 {
        return unsupported("batch_dims != 0");
    }
    let axis = match const_ints(b, n, 2, "axis")?.as_slice() {
        [a] => norm_axis(*a, b.g.ty(x).rank())?,
        _ => return Err(NodeError::Invalid("axis must be a scalar".into())),
    };
    b.emit(&n.name, Op::Gather(Gather { axis }), vec![x, idx])
}

fn tile(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    movement::tile(b, &n.name, n.input(0)?, n.input(1)?)
}

fn broadcast_to(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    movement::broadcast_to(b, &n.name, n.input(0)?, n.input(1)?)
}

fn broadcast_args(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    movement::broadcast_args(b, &n.name, n.input(0)?, n.input(1)?)
}

fn pad(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let p = const_ints(b, n, 1, "paddings")?;
    let pads = movement::pad_pairs(b, x, &p)?;
    let (mode, value) = match n.op() {
        "PadV2" => {
            let v = b
                .const_floats(n.input(2)?)
                .and_then(|v| v.first().copied())
                .ok_or_else(|| NodeError::Unsupported("pad value computed at run time".into()))?;
            (PadMode::Constant, v)
        }
        "MirrorPad" => match n.string("mode", "REFLECT").as_str() {
            "REFLECT" => (PadMode::Reflect, 0.0),
            "SYMMETRIC" => return tf_common::symmetric_pad(b, &n.name, x, &pads),
            m => return unsupported(format!("MirrorPad mode {m}")),
        },
        _ => (PadMode::Constant, 0.0),
    };
    movement::pad(b, &n.name, x, pads, mode, value)
}

fn fill(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    tf_common::fill(b, &n.name, n.input(0)?, n.input(1)?)
}

fn range(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    b.emit(
        &n.name,
        Op::Range,
        vec![n.input(0)?, n.input(1)?, n.input(2)?],
    )
}

fn shape(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let to = n.ir_dtype("out_type", DType::I32)?;
    movement::shape_of(b, &n.name, n.input(0)?, to)
}

/// Size: the product of the dims (tracked like any shape arithmetic), as `out_type`.
fn size(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let to = n.ir_dtype("out_type", DType::I32)?;
    let x = n.input(0)?;
    let s = movement::shape_of(b, &format!("{}/shape", n.name), x, DType::I64)?[0];
    let r = crate::ir::ops::Reduce {
        kind: crate::ir::ops::ReduceKind::Prod,
        axes: vec![0],
        keep_dims: false,
    };
    let p = b.emit1(&format!("{}/i64", n.name), Op::Reduce(r), vec![s])?;
    if to == DType::I64 {
        return Ok(vec![p]);
    }
    b.emit(&n.name, Op::Cast(crate::ir::ops::Cast { to }), vec![p])
}

/// Rank: known when converting (the IR's ranks always are), an int32 scalar.
fn rank(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let r = b.g.ty(n.input(0)?).rank() as i64;
    let t = crate::ir::Tensor::from_i64s(DType::I32, vec![], &[r]);
    Ok(vec![b.add_const(&n.name, t)])
}

fn resize(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let r = tf_common::ResizeAttrs {
        nearest: n.op() == "ResizeNearestNeighbor",
        align_corners: n.bool("align_corners", false),
        half_pixel_centers: n.bool("half_pixel_centers", false),
    };
    tf_common::resize(b, &n.name, n.input(0)?, n.input(1)?, r)
}
