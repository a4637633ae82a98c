//! Shape and data-movement TF ops: Reshape, Squeeze, ExpandDims, Transpose, ConcatV2, Pack,
//! Unpack, Split, SplitV, StridedSlice (all five masks), Slice, GatherV2, Tile, BroadcastTo,
//! Pad/PadV2/MirrorPad (SYMMETRIC built from reversed slices), Fill, Range, Shape, ReverseV2
//! (a slice with step -1 per axis) and the bilinear / nearest resizes. Shape arguments must be known at import time: constants, or shape
//! arithmetic the builder tracks (the batch stays a symbol).

use super::super::tensor::TfNode;
use super::{const_ints, Handler};
use crate::ir::ops::{
    norm_axis, Concat, ConstantOfShape, CoordTransform, Expand, Gather, NearestRounding, Pad,
    PadMode, Resize, ResizeMode, ShapeOf, Slice, SliceAxis, Split, Tile, Transpose,
};
use crate::ir::{DType, Dim, Layout, Op, Shape, ValueId};
use crate::readers::builder::{
    entries_to_shape, reshape_to, resolve_target, unsupported, GraphBuilder, NodeError, NodeResult,
};

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
        "Pad" | "PadV2" | "MirrorPad" => pad,
        "Fill" => fill,
        "Range" => range,
        "Shape" => shape,
        "ResizeBilinear" | "ResizeNearestNeighbor" => resize,
        "ReverseV2" => reverse,
        _ => return None,
    })
}

fn entries(
    b: &GraphBuilder,
    v: ValueId,
    what: &str,
) -> NodeResult<Vec<crate::readers::builder::ShapeEntry>> {
    b.entries_or_unknown(v)
        .ok_or_else(|| NodeError::Unsupported(format!("{what} computed at run time")))
}

fn reshape(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let target = entries(b, n.input(1)?, "target shape")?;
    let input = b.g.ty(x).shape.clone();
    let shape = resolve_target(b, &input, &target, true)?;
    reshape_to(b, &n.name, x, shape)
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
        .ok_or_else(|| NodeError::Unsupported("Unpack along a symbolic axis".into()))?
        as usize;
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
    let total = s[axis]
        .fixed()
        .ok_or_else(|| NodeError::Unsupported("Split along a symbolic axis".into()))?
        as i64;
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

/// StridedSlice: an ellipsis expands to the axes not named; `new_axis` inserts size-1 axes,
/// `shrink_axis` takes one element and drops the axis; `begin_mask`/`end_mask` mean "from the
/// start/to the end" in the step's direction.
fn strided_slice(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let s = b.g.ty(x).shape.clone();
    let begin = const_ints(b, n, 1, "begin")?;
    let end = const_ints(b, n, 2, "end")?;
    let strides = const_ints(b, n, 3, "strides")?;
    if begin.len() != end.len() || begin.len() != strides.len() {
        return Err(NodeError::Invalid(
            "begin/end/strides lengths differ".into(),
        ));
    }
    let bit = |m: i64, i: usize| i < 63 && (m >> i) & 1 == 1;
    let (bm, em, ell, new, shrink) = (
        n.int("begin_mask", 0),
        n.int("end_mask", 0),
        n.int("ellipsis_mask", 0),
        n.int("new_axis_mask", 0),
        n.int("shrink_axis_mask", 0),
    );
    if (0..begin.len()).filter(|&i| bit(ell, i)).count() > 1 {
        return Err(NodeError::Invalid("more than one ellipsis".into()));
    }
    let n_real = (0..begin.len())
        .filter(|&i| !bit(new, i) && !bit(ell, i))
        .count();
    let skip = s
        .len()
        .checked_sub(n_real)
        .ok_or_else(|| NodeError::Invalid("slice has more axes than the input".into()))?;
    // Pass 1: the slice on the input axes.
    let mut axes = Vec::new();
    let mut in_axis = 0usize;
    for i in 0..begin.len() {
        if bit(ell, i) {
            in_axis += skip;
            continue;
        }
        if bit(new, i) {
            continue;
        }
        let step = strides[i];
        if step == 0 {
            return Err(NodeError::Invalid("stride 0".into()));
        }
        let (mut start, mut stop) = (begin[i], end[i]);
        if bit(shrink, i) {
            if step < 0 {
                return unsupported("shrink_axis with a negative stride");
            }
            stop = if start == -1 { i64::MAX } else { start + 1 };
        } else {
            if bit(bm, i) {
                start = if step > 0 { 0 } else { i64::MAX };
            }
            if bit(em, i) {
                stop = if step > 0 { i64::MAX } else { i64::MIN };
            }
        }
        if !(step == 1 && start == 0 && stop == i64::MAX) {
            axes.push(SliceAxis {
                axis: in_axis,
                start,
                end: stop,
                step,
            });
        }
        in_axis += 1;
    }
    let sliced = if axes.is_empty() {
        x
    } else {
        b.emit1(
            &format!("{}/slice", n.name),
            Op::Slice(Slice { axes }),
            vec![x],
        )?
    };
    // Pass 2: the output shape: new axes inserted, shrunk axes dropped.
    let st = b.g.ty(sliced).shape.clone();
    let mut src = 0usize;
    let mut out = Vec::new();
    for i in 0..begin.len() {
        if bit(ell, i) {
            out.extend(st[src..src + skip].iter().cloned());
            src += skip;
        } else if bit(new, i) {
            out.push(Dim::Fixed(1));
        } else {
            if !bit(shrink, i) {
                out.push(st[src].clone());
            }
            src += 1;
        }
    }
    out.extend(st[src.min(st.len())..].iter().cloned());
    reshape_to(b, &n.name, sliced, out)
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
    let x = n.input(0)?;
    let reps = const_ints(b, n, 1, "multiples")?;
    if reps.iter().any(|&r| r < 0) {
        return Err(NodeError::Invalid(format!("multiples {reps:?}")));
    }
    if reps.iter().all(|&r| r == 1) {
        return Ok(vec![x]);
    }
    let repeats = reps.into_iter().map(|r| r as usize).collect();
    b.emit(&n.name, Op::Tile(Tile { repeats }), vec![x])
}

fn broadcast_to(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let e = entries(b, n.input(1)?, "target shape")?;
    let shape = entries_to_shape(b, &e)?;
    let out = crate::ir::ops::broadcast(&b.g.ty(x).shape, &shape)?;
    if out == b.g.ty(x).shape {
        return Ok(vec![x]);
    }
    b.emit(&n.name, Op::Expand(Expand { shape }), vec![x])
}

fn pad(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    let p = const_ints(b, n, 1, "paddings")?;
    if p.len() != 2 * rank {
        return Err(NodeError::Invalid(format!(
            "paddings {p:?} for rank {rank}"
        )));
    }
    let pads: Vec<(i64, i64)> = p.chunks(2).map(|c| (c[0], c[1])).collect();
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
            "SYMMETRIC" => return symmetric_pad(b, n, x, &pads),
            m => return unsupported(format!("MirrorPad mode {m}")),
        },
        _ => (PadMode::Constant, 0.0),
    };
    if pads.iter().all(|&(a, e)| a == 0 && e == 0) {
        return Ok(vec![x]);
    }
    b.emit(&n.name, Op::Pad(Pad { mode, pads, value }), vec![x])
}

/// SYMMETRIC mirror padding (the edge element repeated): per axis, the first `a` elements
/// reversed, the input, then the last `e` elements reversed, concatenated.
fn symmetric_pad(
    b: &mut GraphBuilder,
    n: &TfNode,
    mut x: ValueId,
    pads: &[(i64, i64)],
) -> NodeResult<Vec<ValueId>> {
    for (axis, &(before, after)) in pads.iter().enumerate() {
        if before < 0 || after < 0 {
            return Err(NodeError::Invalid("negative paddings".into()));
        }
        if before == 0 && after == 0 {
            continue;
        }
        let base = format!("{}/axis{axis}", n.name);
        let mut parts = Vec::new();
        let rev = |b: &mut GraphBuilder, tag: &str, start: i64, end: i64| {
            let s = SliceAxis {
                axis,
                start,
                end,
                step: -1,
            };
            b.emit1(
                &format!("{base}/{tag}"),
                Op::Slice(Slice { axes: vec![s] }),
                vec![x],
            )
        };
        if before > 0 {
            parts.push(rev(b, "before", before - 1, i64::MIN)?);
        }
        parts.push(x);
        if after > 0 {
            parts.push(rev(b, "after", -1, -1 - after)?);
        }
        x = b.emit1(&base, Op::Concat(Concat { axis }), parts)?;
    }
    Ok(vec![x])
}

fn fill(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let (dims, v) = (n.input(0)?, n.input(1)?);
    let value =
        b.g.constant(v)
            .cloned()
            .ok_or_else(|| NodeError::Unsupported("fill value computed at run time".into()))?;
    let dims = if b.g.ty(dims).dtype == DType::I64 {
        dims
    } else {
        b.emit1(
            &format!("{}/dims", n.name),
            Op::Cast(crate::ir::ops::Cast { to: DType::I64 }),
            vec![dims],
        )?
    };
    let value = value.reshaped(vec![1]);
    b.emit(
        &n.name,
        Op::ConstantOfShape(ConstantOfShape { value }),
        vec![dims],
    )
}

fn range(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    b.emit(
        &n.name,
        Op::Range,
        vec![n.input(0)?, n.input(1)?, n.input(2)?],
    )
}

fn shape(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    let to = n.ir_dtype("out_type", DType::I32)?;
    let s = b.emit1(
        &format!("{}/i64", n.name),
        Op::ShapeOf(ShapeOf {
            start: 0,
            end: rank,
        }),
        vec![x],
    )?;
    if to == DType::I64 {
        return Ok(vec![s]);
    }
    b.emit(&n.name, Op::Cast(crate::ir::ops::Cast { to }), vec![s])
}

/// ResizeBilinear / ResizeNearestNeighbor (NHWC, `size` = new height and width). TF's
/// half-pixel nearest (`floor((i + 0.5) · scale)`) is ONNX half_pixel with round-prefer-ceil.
fn resize(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let s = b.g.ty(x).shape.clone();
    if s.len() != 4 {
        return Err(NodeError::Invalid("resize needs NHWC input".into()));
    }
    let size = const_ints(b, n, 1, "size")?;
    let [h, w] = size[..] else {
        return Err(NodeError::Invalid("size must hold 2 values".into()));
    };
    if h < 1 || w < 1 {
        return Err(NodeError::Invalid(format!("size {size:?}")));
    }
    let (align, half) = (
        n.bool("align_corners", false),
        n.bool("half_pixel_centers", false),
    );
    let nearest = n.op() == "ResizeNearestNeighbor";
    let (coord, rounding) = match (align, half) {
        (true, _) => (
            CoordTransform::AlignCorners,
            NearestRounding::RoundPreferCeil,
        ),
        (false, true) => (CoordTransform::HalfPixel, NearestRounding::RoundPreferCeil),
        (false, false) => (CoordTransform::Asymmetric, NearestRounding::Floor),
    };
    let r = Resize {
        mode: if nearest {
            ResizeMode::Nearest
        } else {
            ResizeMode::Linear
        },
        coord,
        nearest: rounding,
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        layout: Layout::Nhwc,
        scales: vec![],
        sizes: Some(vec![
            s[0].clone(),
            Dim::Fixed(h as u64),
            Dim::Fixed(w as u64),
            s[3].clone(),
        ]),
    };
    b.emit(&n.name, Op::Resize(r), vec![x])
}

/// ReverseV2(x, axes): every listed axis read backwards, a slice with step -1 (how Keras runs a
/// backward recurrent layer over a time axis of any length).
fn reverse(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    let axes = const_ints(b, n, 1, "reversed axes")?;
    let axes: Vec<SliceAxis> = axes
        .iter()
        .map(|&a| {
            Ok(SliceAxis {
                axis: norm_axis(a, rank)?,
                start: -1,
                end: i64::MIN,
                step: -1,
            })
        })
        .collect::<Result<_, String>>()?;
    if axes.is_empty() {
        return Ok(vec![x]);
    }
    b.emit(&n.name, Op::Slice(Slice { axes }), vec![x])
}
