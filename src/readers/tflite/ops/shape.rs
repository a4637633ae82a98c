//! Shape and data-movement builtins: RESHAPE (target from the shape input or the options),
//! SQUEEZE, EXPAND_DIMS, TRANSPOSE, CONCATENATION, PACK, UNPACK, SPLIT, SPLIT_V, SLICE,
//! STRIDED_SLICE (all five masks), GATHER, TILE, BROADCAST_TO, PAD/PADV2/MIRROR_PAD, SHAPE, FILL,
//! RANGE, BROADCAST_ARGS and
//! RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR, SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND (the pair
//! around a dilated convolution folds into one). Shape arguments must be known at import time:
//! constants, or shape arithmetic the builder tracks (a symbolic batch stays a symbol).

use super::{fused, Handler, Node};
use crate::ir::ops::{norm_axis, Concat, Gather, PadMode, Slice, SliceAxis, Split, Transpose};
use crate::ir::{DType, Dim, Op, Shape, Tensor, ValueId};
use crate::readers::builder::{
    reshape_to, resolve_target, unsupported, GraphBuilder, NodeError, NodeResult, ShapeEntry,
};
use crate::readers::tf_common::movement;
use crate::readers::tf_common::{self, apply_fused, space_batch, ResizeAttrs, StridedMasks};
use tract_tflite::tflite::{BuiltinOperator as B, MirrorPadMode};

pub fn handler(code: B) -> Option<Handler> {
    Some(match code {
        B::RESHAPE => reshape,
        B::SQUEEZE => squeeze,
        B::EXPAND_DIMS => expand_dims,
        B::TRANSPOSE => transpose,
        B::CONCATENATION => concat,
        B::PACK => pack,
        B::UNPACK => unpack,
        B::SPLIT | B::SPLIT_V => split,
        B::SLICE => slice,
        B::STRIDED_SLICE => strided_slice,
        B::GATHER => gather,
        B::TILE => tile,
        B::BROADCAST_TO => broadcast_to,
        B::PAD | B::PADV2 | B::MIRROR_PAD => pad,
        B::SHAPE => shape,
        B::RESIZE_BILINEAR | B::RESIZE_NEAREST_NEIGHBOR => resize,
        B::SPACE_TO_BATCH_ND | B::BATCH_TO_SPACE_ND => space_batch,
        B::FILL => fill,
        B::BROADCAST_ARGS => broadcast_args,
        B::RANGE => range,
        B::ZEROS_LIKE => zeros_like,
        B::RANK => rank,
        _ => return None,
    })
}

fn reshape(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    // The target is input 1 when present; old converters wrote it in the options only.
    if let Some(s) = n.opt(1) {
        return movement::reshape(b, &n.name, x, s);
    }
    let target: Vec<ShapeEntry> = n
        .options(n.op.builtin_options_as_reshape_options(), "ReshapeOptions")?
        .new_shape()
        .map(|s| s.iter().map(|d| ShapeEntry::Int(i64::from(d))).collect())
        .unwrap_or_default();
    let input = b.g.ty(x).shape.clone();
    let shape = resolve_target(b, &input, &target, true)?;
    reshape_to(b, &n.name, x, shape)
}

fn squeeze(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let s = b.g.ty(x).shape.clone();
    let dims: Vec<i64> =
        n.op.builtin_options_as_squeeze_options()
            .and_then(|o| o.squeeze_dims())
            .map(|d| d.iter().map(i64::from).collect())
            .unwrap_or_default();
    let axes: Vec<usize> = if dims.is_empty() {
        if s.iter().any(|d| !d.is_fixed()) {
            return unsupported("SQUEEZE of all size-1 axes with symbolic dimensions");
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

fn expand_dims(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let mut s = b.g.ty(x).shape.clone();
    let axis = match n.ints(b, 1, "axis")?.as_slice() {
        [a] => norm_axis(*a, s.len() + 1)?,
        _ => return Err(NodeError::Invalid("axis must hold one value".into())),
    };
    s.insert(axis, Dim::Fixed(1));
    reshape_to(b, &n.name, x, s)
}

fn transpose(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    let perm = n
        .ints(b, 1, "perm")?
        .into_iter()
        .map(|p| norm_axis(p, rank))
        .collect::<Result<Vec<_>, _>>()?;
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(vec![x]);
    }
    b.emit(&n.name, Op::Transpose(Transpose { perm }), vec![x])
}

fn concat(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_concatenation_options(),
        "ConcatenationOptions",
    )?;
    let values: Vec<ValueId> = (0..n.inputs.len())
        .map(|i| n.input(i))
        .collect::<NodeResult<_>>()?;
    let first = *values
        .first()
        .ok_or_else(|| NodeError::Invalid("CONCATENATION without inputs".into()))?;
    let axis = norm_axis(i64::from(o.axis()), b.g.ty(first).rank())?;
    let act = fused(o.fused_activation_function())?;
    let y = if values.len() == 1 {
        first
    } else {
        b.emit1(
            &format!("{}/concat", n.name),
            Op::Concat(Concat { axis }),
            values,
        )?
    };
    apply_fused(b, &n.name, y, act)
}

fn pack(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(n.op.builtin_options_as_pack_options(), "PackOptions")?;
    let first = n.input(0)?;
    let rank = b.g.ty(first).rank();
    let axis = norm_axis(i64::from(o.axis()), rank + 1)?;
    let mut parts = Vec::new();
    for i in 0..n.inputs.len() {
        let v = n.input(i)?;
        let mut vs = b.g.ty(v).shape.clone();
        if vs.len() != rank {
            return Err(NodeError::Invalid(
                "PACK of values of different ranks".into(),
            ));
        }
        vs.insert(axis, Dim::Fixed(1));
        parts.push(reshape_to(b, &format!("{}/{i}", n.name), v, vs)?[0]);
    }
    if parts.len() == 1 {
        return Ok(parts);
    }
    b.emit(&n.name, Op::Concat(Concat { axis }), parts)
}

fn unpack(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(n.op.builtin_options_as_unpack_options(), "UnpackOptions")?;
    let x = n.input(0)?;
    let s = b.g.ty(x).shape.clone();
    let axis = norm_axis(i64::from(o.axis()), s.len())?;
    let count = s[axis]
        .fixed()
        .ok_or_else(|| NodeError::Unsupported("UNPACK along a symbolic axis".into()))?;
    crate::ir::limits::check_fanout(count, &format!("UNPACK into {count} values"))?;
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

fn split(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    // SPLIT(axis, value) with num_splits; SPLIT_V(value, size_splits, axis).
    let (x, axis_at) = if n.code == B::SPLIT {
        (n.input(1)?, 0)
    } else {
        (n.input(0)?, 2)
    };
    let s = b.g.ty(x).shape.clone();
    let axis = match n.ints(b, axis_at, "split axis")?.as_slice() {
        [a] => norm_axis(*a, s.len())?,
        _ => return Err(NodeError::Invalid("axis must hold one value".into())),
    };
    // Along a symbolic axis only sizes all given work (the graph then holds for one size).
    let total = match (s[axis].fixed(), n.code == B::SPLIT) {
        (Some(t), _) => t as i64,
        (None, false) => {
            let given = sized_splits(b, n)?;
            return b.emit(&n.name, Op::Split(Split { axis, sizes: given }), vec![x]);
        }
        (None, true) => return unsupported("SPLIT in equal parts along a symbolic axis"),
    };
    let sizes: Vec<i64> = if n.code == B::SPLIT {
        let k = n
            .options(n.op.builtin_options_as_split_options(), "SplitOptions")?
            .num_splits();
        let k = i64::from(k.max(1));
        if total % k != 0 {
            return Err(NodeError::Invalid(format!("{total} does not split in {k}")));
        }
        vec![total / k; k as usize]
    } else {
        let mut v = n.ints(b, 1, "size_splits")?;
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

/// SPLIT_V's size_splits when every one is given (none is -1).
fn sized_splits(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<usize>> {
    let v = n.ints(b, 1, "size_splits")?;
    v.iter()
        .map(|&x| usize::try_from(x).ok())
        .collect::<Option<_>>()
        .ok_or_else(|| NodeError::Unsupported(format!("SPLIT_V sizes {v:?} along a symbolic axis")))
}

fn slice(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let begin = n.ints(b, 1, "begin")?;
    let size = n.ints(b, 2, "size")?;
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
                begin[i].saturating_add(size[i])
            },
            step: 1,
        })
        .collect();
    if axes.is_empty() {
        return Ok(vec![x]);
    }
    b.emit(&n.name, Op::Slice(Slice { axes }), vec![x])
}

fn strided_slice(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_strided_slice_options(),
        "StridedSliceOptions",
    )?;
    let mut masks = StridedMasks {
        begin: i64::from(o.begin_mask()),
        end: i64::from(o.end_mask()),
        ellipsis: i64::from(o.ellipsis_mask()),
        new_axis: i64::from(o.new_axis_mask()),
        shrink: i64::from(o.shrink_axis_mask()),
    };
    let (begin, strides) = (n.ints(b, 1, "begin")?, n.ints(b, 3, "strides")?);
    let end = tf_common::strided_end(b, n.input(0)?, n.input(2)?, &strides, &mut masks)?;
    tf_common::strided_slice(b, &n.name, n.input(0)?, [&begin, &end, &strides], masks)
}

fn gather(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(n.op.builtin_options_as_gather_options(), "GatherOptions")?;
    if o.batch_dims() != 0 {
        return unsupported("batch_dims != 0");
    }
    let (x, idx) = (n.input(0)?, n.input(1)?);
    let axis = norm_axis(i64::from(o.axis()), b.g.ty(x).rank())?;
    b.emit(&n.name, Op::Gather(Gather { axis }), vec![x, idx])
}

fn tile(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    movement::tile(b, &n.name, n.input(0)?, n.input(1)?)
}

fn broadcast_to(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    movement::broadcast_to(b, &n.name, n.input(0)?, n.input(1)?)
}

fn pad(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let p = n.ints(b, 1, "paddings")?;
    let pads = movement::pad_pairs(b, x, &p)?;
    let (mode, value) = match n.code {
        B::PADV2 => {
            let v = match n.opt(2) {
                Some(c) => b
                    .const_floats(c)
                    .and_then(|v| v.first().copied())
                    .ok_or_else(|| {
                        NodeError::Unsupported("pad value computed at run time".into())
                    })?,
                None => 0.0,
            };
            (PadMode::Constant, v)
        }
        B::MIRROR_PAD => {
            let o = n.options(
                n.op.builtin_options_as_mirror_pad_options(),
                "MirrorPadOptions",
            )?;
            match o.mode() {
                MirrorPadMode::REFLECT => (PadMode::Reflect, 0.0),
                MirrorPadMode::SYMMETRIC => return tf_common::symmetric_pad(b, &n.name, x, &pads),
                m => return unsupported(format!("MIRROR_PAD mode {}", m.0)),
            }
        }
        _ => (PadMode::Constant, 0.0),
    };
    movement::pad(b, &n.name, x, pads, mode, value)
}

fn shape(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let to = n
        .out_dtypes
        .first()
        .copied()
        .flatten()
        .unwrap_or(DType::I32);
    movement::shape_of(b, &n.name, n.input(0)?, to)
}

fn resize(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let r = if n.code == B::RESIZE_BILINEAR {
        let o = n.options(
            n.op.builtin_options_as_resize_bilinear_options(),
            "ResizeBilinearOptions",
        )?;
        ResizeAttrs {
            nearest: false,
            align_corners: o.align_corners(),
            half_pixel_centers: o.half_pixel_centers(),
        }
    } else {
        let o = n.options(
            n.op.builtin_options_as_resize_nearest_neighbor_options(),
            "ResizeNearestNeighborOptions",
        )?;
        ResizeAttrs {
            nearest: true,
            align_corners: o.align_corners(),
            half_pixel_centers: o.half_pixel_centers(),
        }
    };
    tf_common::resize(b, &n.name, n.input(0)?, n.input(1)?, r)
}

fn space_batch(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let block = n.ints(b, 1, "block_shape")?;
    let pairs = n.ints(b, 2, "paddings")?;
    if block.is_empty() || pairs.len() != 2 * block.len() || block.iter().any(|&v| v < 1) {
        return Err(NodeError::Invalid(format!(
            "block_shape {block:?} and paddings {pairs:?}"
        )));
    }
    if pairs.iter().any(|&v| v < 0) {
        return Err(NodeError::Invalid(format!("negative paddings {pairs:?}")));
    }
    let block = block.iter().map(|&v| v as usize).collect();
    let pairs = pairs.chunks(2).map(|p| (p[0], p[1])).collect();
    let x = n.input(0)?;
    if n.code == B::SPACE_TO_BATCH_ND {
        space_batch::space_to_batch(b, &n.name, x, block, pairs)
    } else {
        space_batch::batch_to_space(b, &n.name, x, block, pairs)
    }
}

fn fill(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    tf_common::fill(b, &n.name, n.input(0)?, n.input(1)?)
}

/// ZEROS_LIKE: zeros of the input's shape and type (a constant when the shape is fixed).
fn zeros_like(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let dt = b.g.ty(x).dtype;
    let dims = movement::shape_of(b, &format!("{}/shape", n.name), x, DType::I64)?[0];
    let value = Tensor::from_f64s(dt, vec![1], &[0.0]);
    b.emit(
        &n.name,
        Op::ConstantOfShape(crate::ir::ops::ConstantOfShape { value }),
        vec![dims],
    )
}

/// RANK: the input's rank, an int32 scalar (the rank is always known here).
fn rank(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let r = b.g.ty(n.input(0)?).rank() as i64;
    Ok(vec![b.add_const(
        &n.name,
        Tensor::from_i64s(DType::I32, vec![], &[r]),
    )])
}

fn range(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let ins = vec![n.input(0)?, n.input(1)?, n.input(2)?];
    b.emit(&n.name, Op::Range, ins)
}

fn broadcast_args(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    movement::broadcast_args(b, &n.name, n.input(0)?, n.input(1)?)
}
