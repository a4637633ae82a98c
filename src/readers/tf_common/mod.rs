//! TF op semantics shared by the readers of TF's two containers (SavedModel graphs and TFLite
//! flatbuffers), which name the same ops with the same attributes: StridedSlice's five masks,
//! the bilinear / nearest resizes, SAME/VALID padding, the fused activations, and
//! SpaceToBatchND/BatchToSpaceND (`space_batch.rs`), Tile, BroadcastTo, Pad and Shape
//! (`movement.rs`), the indexing ops (`index.rs`), the real FFTs as DFT matrices (`fft.rs`) and
//! Atan2, Bucketize, ReverseSequence, SparseToDense in the IR's ops (`lowered.rs`).

pub mod arith;
pub mod fft;
pub mod index;
pub mod lowered;
pub mod movement;
pub mod norm_select;
pub mod space_batch;

use crate::ir::ops::{
    Activation, Cast, Concat, ConstantOfShape, Conv, CoordTransform, Dynamic, NearestRounding,
    Padding, Resize, ResizeMode, ShapeOf, Slice, SliceAxis, UnaryOp,
};
use crate::ir::{DType, Dim, KernelLayout, Layout, Op, ValueId};
use crate::readers::builder::{
    reshape_to, unsupported, GraphBuilder, NodeError, NodeResult, ShapeEntry,
};

/// StridedSlice's bit masks, one bit per entry of `begin`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StridedMasks {
    pub begin: i64,
    pub end: i64,
    pub ellipsis: i64,
    pub new_axis: i64,
    pub shrink: i64,
}

/// StridedSlice's `end` operand: its constant values, or shape arithmetic where each entry is a
/// constant or the input's own size on that axis (`tf.signal.frame` over a run-time batch ends
/// its slice at `[batch, frames·step]`). Such an entry, with a positive stride and no ellipsis or
/// new axis to move the axes, is "to the end": its `end_mask` bit is set.
pub fn strided_end(
    b: &GraphBuilder,
    x: ValueId,
    end: ValueId,
    strides: &[i64],
    masks: &mut StridedMasks,
) -> NodeResult<Vec<i64>> {
    if let Some(e) = b.const_ints(end) {
        return Ok(e);
    }
    let run_time = || unsupported("end computed at run time");
    let Some(entries) = b.shape_entries(end) else {
        return run_time();
    };
    if masks.ellipsis != 0 || masks.new_axis != 0 {
        return run_time();
    }
    let shape = b.g.ty(x).shape.clone();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        match e {
            ShapeEntry::Int(v) => out.push(*v),
            ShapeEntry::Sym(s)
                if i < 63
                    && strides.get(i).is_some_and(|&st| st > 0)
                    && shape.get(i) == Some(&Dim::Sym(s.clone())) =>
            {
                masks.end |= 1 << i;
                out.push(0);
            }
            _ => return run_time(),
        }
    }
    Ok(out)
}

/// StridedSlice: an ellipsis expands to the axes not named; `new_axis` inserts size-1 axes,
/// `shrink_axis` takes one element and drops the axis; `begin_mask`/`end_mask` mean "from the
/// start/to the end" in the step's direction. `bes` is `[begin, end, strides]`.
pub fn strided_slice(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    bes: [&[i64]; 3],
    m: StridedMasks,
) -> NodeResult<Vec<ValueId>> {
    let [begin, end, strides] = bes;
    let s = b.g.ty(x).shape.clone();
    if begin.len() != end.len() || begin.len() != strides.len() {
        return Err(NodeError::Invalid(
            "begin/end/strides lengths differ".into(),
        ));
    }
    let bit = |m: i64, i: usize| i < 63 && (m >> i) & 1 == 1;
    if (0..begin.len()).filter(|&i| bit(m.ellipsis, i)).count() > 1 {
        return Err(NodeError::Invalid("more than one ellipsis".into()));
    }
    let n_real = (0..begin.len())
        .filter(|&i| !bit(m.new_axis, i) && !bit(m.ellipsis, i))
        .count();
    let skip = s
        .len()
        .checked_sub(n_real)
        .ok_or_else(|| NodeError::Invalid("slice has more axes than the input".into()))?;
    // Pass 1: the slice on the input axes.
    let mut axes = Vec::new();
    let mut in_axis = 0usize;
    for i in 0..begin.len() {
        if bit(m.ellipsis, i) {
            in_axis += skip;
            continue;
        }
        if bit(m.new_axis, i) {
            continue;
        }
        let step = strides[i];
        if step == 0 {
            return Err(NodeError::Invalid("stride 0".into()));
        }
        let (mut start, mut stop) = (begin[i], end[i]);
        if bit(m.shrink, i) {
            if step < 0 {
                return unsupported("shrink_axis with a negative stride");
            }
            stop = if start == -1 { i64::MAX } else { start + 1 };
        } else {
            if bit(m.begin, i) {
                start = if step > 0 { 0 } else { i64::MAX };
            }
            if bit(m.end, i) {
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
        b.emit1(&format!("{name}/slice"), Op::Slice(Slice { axes }), vec![x])?
    };
    // Pass 2: the output shape: new axes inserted, shrunk axes dropped.
    let st = b.g.ty(sliced).shape.clone();
    let mut src = 0usize;
    let mut out = Vec::new();
    for i in 0..begin.len() {
        if bit(m.ellipsis, i) {
            out.extend(st[src..src + skip].iter().cloned());
            src += skip;
        } else if bit(m.new_axis, i) {
            out.push(Dim::Fixed(1));
        } else {
            if !bit(m.shrink, i) {
                out.push(st[src].clone());
            }
            src += 1;
        }
    }
    out.extend(st[src.min(st.len())..].iter().cloned());
    reshape_to(b, name, sliced, out)
}

/// The attributes of ResizeBilinear / ResizeNearestNeighbor.
#[derive(Clone, Copy, Debug)]
pub struct ResizeAttrs {
    pub nearest: bool,
    pub align_corners: bool,
    pub half_pixel_centers: bool,
}

/// ResizeBilinear / ResizeNearestNeighbor (NHWC, `size` = new height and width). Sizes known at
/// import time (constants, or symbols: `2·h` from a symbolic input size) give the static resize;
/// sizes computed from values at run time the run-time one, whose sizes are `[n, h, w, c]`.
/// TF's half-pixel nearest (`floor((i + 0.5) · scale)`) is ONNX half_pixel with
/// round-prefer-ceil.
pub fn resize(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    size: ValueId,
    r: ResizeAttrs,
) -> NodeResult<Vec<ValueId>> {
    let s = b.g.ty(x).shape.clone();
    if s.len() != 4 {
        return Err(NodeError::Invalid("resize needs NHWC input".into()));
    }
    let (coord, rounding) = match (r.align_corners, r.half_pixel_centers) {
        (true, _) => (
            CoordTransform::AlignCorners,
            NearestRounding::RoundPreferCeil,
        ),
        (false, true) => (CoordTransform::HalfPixel, NearestRounding::RoundPreferCeil),
        (false, false) => (CoordTransform::Asymmetric, NearestRounding::Floor),
    };
    let mut op = Resize {
        mode: if r.nearest {
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
        sizes: None,
    };
    let entries = b.entries_or_unknown(size);
    let Some(entries) = entries.filter(|e| !e.contains(&ShapeEntry::Unknown)) else {
        return run_time_resize(b, name, x, size, op);
    };
    // A size computed from a symbolic input size (`2·h`) is known as a symbol.
    let dim = |e: &ShapeEntry| match e {
        ShapeEntry::Int(v) if *v >= 1 => Ok(Dim::Fixed(*v as u64)),
        ShapeEntry::Sym(s) => Ok(Dim::Sym(s.clone())),
        ShapeEntry::Int(v) => Err(NodeError::Invalid(format!("size {v}"))),
        ShapeEntry::Unknown => unsupported("resize size computed at run time"),
    };
    let [h, w] = entries.as_slice() else {
        return Err(NodeError::Invalid("size must hold 2 values".into()));
    };
    op.sizes = Some(vec![s[0].clone(), dim(h)?, dim(w)?, s[3].clone()]);
    b.emit(name, Op::Resize(op), vec![x])
}

/// A resize to a `size` (`[h, w]`) computed at run time: the IR's run-time resize takes one
/// size per axis, so the batch and channel sizes come from `x`'s own shape.
fn run_time_resize(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    size: ValueId,
    op: Resize,
) -> NodeResult<Vec<ValueId>> {
    if b.g.ty(size).shape != [Dim::Fixed(2)] {
        return Err(NodeError::Invalid("size must hold 2 values".into()));
    }
    let part = |b: &mut GraphBuilder, what: &str, start: usize| {
        let o = ShapeOf {
            start,
            end: start + 1,
        };
        b.emit1(&format!("{name}/{what}"), Op::ShapeOf(o), vec![x])
    };
    let n = part(b, "batch", 0)?;
    let c = part(b, "channels", 3)?;
    let hw = movement::to_i64(b, &format!("{name}/size"), size)?;
    let cat = Op::Concat(Concat { axis: 0 });
    let sizes = b.emit1(&format!("{name}/sizes"), cat, vec![n, hw, c])?;
    let d = Dynamic::Resize {
        resize: op,
        by_sizes: true,
    };
    b.emit(name, Op::Dynamic(d), vec![x, sizes])
}

/// TF's SAME padding made explicit when the spatial sizes are known (so that writers and
/// runtimes without SAME agree), kept as `SameUpper` otherwise.
pub fn resolve_same(
    padding: Padding,
    spatial_in: &[Dim],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
) -> Padding {
    if padding != Padding::SameUpper {
        return padding;
    }
    let conv = Conv {
        layout: Layout::Nhwc,
        kernel_layout: KernelLayout::Hwio,
        strides: strides.to_vec(),
        dilations: dilations.to_vec(),
        padding: Padding::SameUpper,
        group: 1,
        output_padding: vec![],
    };
    conv.explicit_pads(spatial_in, kernel)
        .map_or(Padding::SameUpper, Padding::Explicit)
}

/// A fused activation (TFLite's `fused_activation_function`) as the IR op applied after.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fused {
    None,
    Relu,
    /// RELU_N1_TO_1 and RELU6: a clip.
    Clip(f32, f32),
    Tanh,
}

/// Applies a fused activation to `x` (nothing for [`Fused::None`]).
pub fn apply_fused(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    f: Fused,
) -> NodeResult<Vec<ValueId>> {
    let op = match f {
        Fused::None => return Ok(vec![x]),
        Fused::Relu => Op::Unary(UnaryOp::Relu),
        Fused::Tanh => Op::Unary(UnaryOp::Tanh),
        Fused::Clip(lo, hi) => Op::Activation(Activation::Clip {
            min: Some(lo),
            max: Some(hi),
        }),
    };
    b.emit(name, op, vec![x])
}

/// SYMMETRIC mirror padding (the edge element repeated): per axis, the first `a` elements
/// reversed, the input, then the last `e` elements reversed, concatenated.
pub fn symmetric_pad(
    b: &mut GraphBuilder,
    name: &str,
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
        let base = format!("{name}/axis{axis}");
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

/// Fill(dims, value): `value` (a constant) repeated to the shape `dims` holds.
pub fn fill(
    b: &mut GraphBuilder,
    name: &str,
    dims: ValueId,
    v: ValueId,
) -> NodeResult<Vec<ValueId>> {
    let value =
        b.g.constant(v)
            .cloned()
            .ok_or_else(|| NodeError::Unsupported("fill value computed at run time".into()))?;
    let dims = if b.g.ty(dims).dtype == DType::I64 {
        dims
    } else {
        b.emit1(
            &format!("{name}/dims"),
            Op::Cast(Cast { to: DType::I64 }),
            vec![dims],
        )?
    };
    let value = value.reshaped(vec![1]);
    b.emit(
        name,
        Op::ConstantOfShape(ConstantOfShape { value }),
        vec![dims],
    )
}
