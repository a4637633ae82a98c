//! Nearest and linear resizes the channels-last writers' kernels do not compute, as GATHERs of
//! computed source positions along H and W: every coordinate transform but the crop one, every
//! rounding, and scales known only at run time (where RESIZE_*, taking an output size, would map
//! coordinates by `in/out` instead of the given scale). Per axis: `o = Range(out)`,
//! `x = transform(o)` as ONNX defines it; nearest gathers `round(x)` clamped into `[0, in − 1]`,
//! linear gathers `⌊x⌋` and `⌊x⌋ + 1` (clamped, as ONNX's edge padding does) and mixes them by
//! `x − ⌊x⌋`. The kernels' own cases (the same in LiteRT and TF.js) are left to them; cubic
//! resizing is not lowered.

use super::rewrite::Rewriter;
use crate::ir::ops::{
    BinaryOp, Cast, CoordTransform, Dynamic, Gather, NearestRounding, Reshape, Resize, ResizeMode,
    ShapeOf, Slice, SliceAxis, UnaryOp,
};
use crate::ir::{DType, Dim, Graph, Layout, Node, Op, Tensor, ValueId};

/// Lowers every such resize of a 4-D NHWC tensor. Returns whether anything changed.
pub fn gather_nearest_resizes(g: &mut Graph) -> Result<bool, String> {
    if !g.nodes.iter().any(|n| wanted(g, n)) {
        return Ok(false);
    }
    let (mut rw, old) = Rewriter::begin(g);
    for n in old {
        if wanted(rw.g, &n) {
            lower(&mut rw, &n)?;
        } else {
            rw.keep(n);
        }
    }
    rw.finish();
    Ok(true)
}

/// The cases RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR (ResizeNearestNeighbor / ResizeBilinear
/// in TF.js) compute. PyTorch's half-pixel mapping is the plain one when every output side is
/// longer than 1 (`over_1`, unknown for run-time sizes).
fn kernel_computes(r: &Resize, over_1: Option<bool>) -> bool {
    match r.mode {
        ResizeMode::Nearest => matches!(
            (r.coord, r.nearest),
            (CoordTransform::Asymmetric, NearestRounding::Floor)
                | (CoordTransform::HalfPixel, NearestRounding::RoundPreferCeil)
                | (
                    CoordTransform::AlignCorners,
                    NearestRounding::RoundPreferCeil
                )
        ),
        ResizeMode::Linear => match r.coord {
            CoordTransform::HalfPixel
            | CoordTransform::AlignCorners
            | CoordTransform::Asymmetric => true,
            CoordTransform::PytorchHalfPixel => over_1 == Some(true),
            CoordTransform::HalfPixelSymmetric | CoordTransform::TfCropAndResize => false,
        },
        ResizeMode::Cubic => false,
    }
}

fn lowerable(g: &Graph, n: &Node, r: &Resize) -> bool {
    let x = g.ty(n.inputs[0]);
    let mode_ok = match r.mode {
        ResizeMode::Nearest => true,
        ResizeMode::Linear => x.dtype.is_float(),
        ResizeMode::Cubic => false,
    };
    mode_ok
        && r.layout == Layout::Nhwc
        && x.rank() == 4
        && r.coord != CoordTransform::TfCropAndResize
}

fn wanted(g: &Graph, n: &Node) -> bool {
    match &n.op {
        Op::Resize(r) => {
            let out = &g.ty(n.outputs[0]).shape;
            let over_1 = out[1..3]
                .iter()
                .map(|d| d.fixed().map(|v| v > 1))
                .collect::<Option<Vec<_>>>();
            let over_1 = over_1.map(|v| v.iter().all(|&b| b));
            lowerable(g, n, r) && !kernel_computes(r, over_1)
        }
        Op::Dynamic(Dynamic::Resize { resize, by_sizes }) => {
            lowerable(g, n, resize) && (!by_sizes || !kernel_computes(resize, None))
        }
        // Nothing else is a resize.
        _ => false,
    }
}

/// Where one axis's output size and scale come from.
enum Size {
    /// Fixed sizes (the scale is `out / in`), or given scales with the output type's sizes.
    Static(Resize),
    /// A run-time operand with one entry per axis: sizes, or scales.
    Operand { v: ValueId, by_sizes: bool },
}

fn lower(rw: &mut Rewriter, n: &Node) -> Result<(), String> {
    let (r, size) = match &n.op {
        Op::Resize(r) => (r.clone(), Size::Static(r.clone())),
        Op::Dynamic(Dynamic::Resize { resize, by_sizes }) => (
            resize.clone(),
            Size::Operand {
                v: n.inputs[1],
                by_sizes: *by_sizes,
            },
        ),
        op => return Err(format!("{} is not a resize", op.name())),
    };
    let mut y = n.inputs[0];
    for axis in [1, 2] {
        let base = format!("{}/axis{axis}", n.name);
        let (x, input) = source_positions(rw, n, &r, &size, axis)?;
        y = match r.mode {
            ResizeMode::Nearest => {
                let idx = nearest(rw, &base, &r, x, input)?;
                rw.op(&base, Op::Gather(Gather { axis }), vec![y, idx])?
            }
            ResizeMode::Linear | ResizeMode::Cubic => linear(rw, &base, y, axis, x, input)?,
        };
    }
    rw.retarget_last(y, n.outputs[0]);
    Ok(())
}

/// `round(x)` in `r`'s rounding, clamped into the input, as gather indices.
fn nearest(
    rw: &mut Rewriter,
    base: &str,
    r: &Resize,
    x: ValueId,
    input: ValueId,
) -> Result<ValueId, String> {
    let half = rw.f32(base, 0.5);
    let rounded = match r.nearest {
        NearestRounding::RoundPreferFloor => {
            let t = rw.op(base, Op::Binary(BinaryOp::Sub), vec![x, half])?;
            rw.op(base, Op::Unary(UnaryOp::Ceil), vec![t])?
        }
        NearestRounding::RoundPreferCeil => {
            let t = rw.op(base, Op::Binary(BinaryOp::Add), vec![x, half])?;
            rw.op(base, Op::Unary(UnaryOp::Floor), vec![t])?
        }
        NearestRounding::Floor => rw.op(base, Op::Unary(UnaryOp::Floor), vec![x])?,
        NearestRounding::Ceil => rw.op(base, Op::Unary(UnaryOp::Ceil), vec![x])?,
    };
    clamped_index(rw, base, rounded, input)
}

/// Position `p` clamped into `[0, in − 1]`, as i64 gather indices.
fn clamped_index(
    rw: &mut Rewriter,
    base: &str,
    p: ValueId,
    input: ValueId,
) -> Result<ValueId, String> {
    let (zero, one) = (rw.f32(base, 0.0), rw.f32(base, 1.0));
    let last = rw.op(base, Op::Binary(BinaryOp::Sub), vec![input, one])?;
    let c = rw.op(base, Op::Binary(BinaryOp::Max), vec![p, zero])?;
    let c = rw.op(base, Op::Binary(BinaryOp::Min), vec![c, last])?;
    rw.op(base, Op::Cast(Cast { to: DType::I64 }), vec![c])
}

/// `y` resampled along `axis` at positions `x`: the two neighbours mixed by the fraction.
fn linear(
    rw: &mut Rewriter,
    base: &str,
    y: ValueId,
    axis: usize,
    x: ValueId,
    input: ValueId,
) -> Result<ValueId, String> {
    let lo = rw.op(base, Op::Unary(UnaryOp::Floor), vec![x])?;
    let frac = rw.op(base, Op::Binary(BinaryOp::Sub), vec![x, lo])?;
    let one = rw.f32(base, 1.0);
    let hi = rw.op(base, Op::Binary(BinaryOp::Add), vec![lo, one])?;
    let (i0, i1) = (
        clamped_index(rw, base, lo, input)?,
        clamped_index(rw, base, hi, input)?,
    );
    let a = rw.op(base, Op::Gather(Gather { axis }), vec![y, i0])?;
    let b = rw.op(base, Op::Gather(Gather { axis }), vec![y, i1])?;
    // The fraction per output position, broadcast along the other axes.
    let mut shape = vec![Dim::Fixed(1); 4];
    shape[axis] = rw.g.ty(frac).shape[0].clone();
    let frac = rw.op(base, Op::Reshape(Reshape { shape }), vec![frac])?;
    let step = rw.op(base, Op::Binary(BinaryOp::Sub), vec![b, a])?;
    let step = rw.op(base, Op::Binary(BinaryOp::Mul), vec![step, frac])?;
    rw.op(base, Op::Binary(BinaryOp::Add), vec![a, step])
}

/// The input position (f32) each output position along `axis` maps to, and the input's size
/// along it (f32 `[1]`).
fn source_positions(
    rw: &mut Rewriter,
    n: &Node,
    r: &Resize,
    size: &Size,
    axis: usize,
) -> Result<(ValueId, ValueId), String> {
    let base = format!("{}/axis{axis}", n.name);
    let f = |rw: &mut Rewriter, v: f32| rw.f32(&base, v);
    let input = dim_of(rw, &base, n.inputs[0], axis)?; // f32 [1]
    let (out, scale) = out_and_scale(rw, &base, n, size, axis, input)?; // i64 [1], f32 [1]
    let out_s = rw.op(&base, Op::Reshape(Reshape { shape: vec![] }), vec![out])?;
    let (zero, one) = (int(rw, &base, 0), int(rw, &base, 1));
    let o = rw.op(&base, Op::Range, vec![zero, out_s, one])?;
    let o = rw.op(&base, Op::Cast(Cast { to: DType::F32 }), vec![o])?;
    let bin = |rw: &mut Rewriter, op: BinaryOp, a: ValueId, b: ValueId| {
        rw.op(&base, Op::Binary(op), vec![a, b])
    };
    let half = f(rw, 0.5);
    let centred = |rw: &mut Rewriter| -> Result<ValueId, String> {
        let c = bin(rw, BinaryOp::Add, o, half)?;
        let c = bin(rw, BinaryOp::Div, c, scale)?;
        bin(rw, BinaryOp::Sub, c, half)
    };
    // ONNX's transforms; the two with a `size > 1` condition map a single output to 0.
    let x = match r.coord {
        CoordTransform::HalfPixel => centred(rw)?,
        CoordTransform::Asymmetric => bin(rw, BinaryOp::Div, o, scale)?,
        CoordTransform::PytorchHalfPixel => {
            let c = centred(rw)?;
            single_to_zero(rw, &base, out, c)?
        }
        CoordTransform::AlignCorners => {
            let onef = f(rw, 1.0);
            let last_in = bin(rw, BinaryOp::Sub, input, onef)?;
            let out_f = bin(rw, BinaryOp::Mul, input, scale)?;
            let last_out = bin(rw, BinaryOp::Sub, out_f, onef)?;
            let c = bin(rw, BinaryOp::Mul, o, last_in)?;
            let c = bin(rw, BinaryOp::Div, c, last_out)?;
            single_to_zero(rw, &base, out, c)?
        }
        CoordTransform::HalfPixelSymmetric => {
            // Centred on the input: offset by `in/2 · (1 − out / (in·scale))`.
            let c = centred(rw)?;
            let exact = bin(rw, BinaryOp::Mul, input, scale)?;
            let out_f = rw.op(&base, Op::Cast(Cast { to: DType::F32 }), vec![out])?;
            let adjust = bin(rw, BinaryOp::Div, out_f, exact)?;
            let onef = f(rw, 1.0);
            let shrink = bin(rw, BinaryOp::Sub, onef, adjust)?;
            let centre = bin(rw, BinaryOp::Mul, input, half)?;
            let offset = bin(rw, BinaryOp::Mul, centre, shrink)?;
            bin(rw, BinaryOp::Add, c, offset)?
        }
        CoordTransform::TfCropAndResize => {
            return Err("tf_crop_and_resize coordinates are not lowered".into())
        }
    };
    Ok((x, input))
}

fn int(rw: &mut Rewriter, base: &str, v: i64) -> ValueId {
    rw.konst(base, Tensor::from_i64s(DType::I64, vec![], &[v]))
}

/// The size of `axis` of `v` as f32 `[1]`: a constant when fixed.
fn dim_of(rw: &mut Rewriter, base: &str, v: ValueId, axis: usize) -> Result<ValueId, String> {
    if let Dim::Fixed(n) = rw.g.ty(v).shape[axis] {
        return Ok(rw.konst(base, Tensor::from_f64s(DType::F32, vec![1], &[n as f64])));
    }
    let s = rw.op(
        base,
        Op::ShapeOf(ShapeOf {
            start: axis,
            end: axis + 1,
        }),
        vec![v],
    )?;
    rw.op(base, Op::Cast(Cast { to: DType::F32 }), vec![s])
}

/// One entry (`[1]`) of a per-axis operand.
fn entry(rw: &mut Rewriter, base: &str, v: ValueId, axis: usize) -> Result<ValueId, String> {
    let s = Slice {
        axes: vec![SliceAxis {
            axis: 0,
            start: axis as i64,
            end: axis as i64 + 1,
            step: 1,
        }],
    };
    rw.op(base, Op::Slice(s), vec![v])
}

/// The output size (i64 `[1]`) and the scale (f32 `[1]`) along `axis`: ONNX maps coordinates
/// by the given scale, or by `out / in` when sizes are given.
fn out_and_scale(
    rw: &mut Rewriter,
    base: &str,
    n: &Node,
    size: &Size,
    axis: usize,
    input: ValueId,
) -> Result<(ValueId, ValueId), String> {
    let to_f32 = |rw: &mut Rewriter, v| rw.op(base, Op::Cast(Cast { to: DType::F32 }), vec![v]);
    let to_i64 = |rw: &mut Rewriter, v| rw.op(base, Op::Cast(Cast { to: DType::I64 }), vec![v]);
    let div = |rw: &mut Rewriter, a, b| rw.op(base, Op::Binary(BinaryOp::Div), vec![a, b]);
    match size {
        Size::Static(r) if !r.scales.is_empty() => {
            let s = rw.konst(
                base,
                Tensor::from_f64s(DType::F32, vec![1], &[r.scales[axis] as f64]),
            );
            let out = match rw.g.ty(n.outputs[0]).shape[axis] {
                Dim::Fixed(o) => {
                    rw.konst(base, Tensor::from_i64s(DType::I64, vec![1], &[o as i64]))
                }
                Dim::Sym(_) => {
                    let p = rw.op(base, Op::Binary(BinaryOp::Mul), vec![input, s])?;
                    let p = rw.op(base, Op::Unary(UnaryOp::Floor), vec![p])?;
                    to_i64(rw, p)?
                }
            };
            Ok((out, s))
        }
        Size::Static(_) => {
            let Dim::Fixed(o) = rw.g.ty(n.outputs[0]).shape[axis] else {
                return Err("a resize to sizes known only at run time reached the lowering".into());
            };
            let out = rw.konst(base, Tensor::from_i64s(DType::I64, vec![1], &[o as i64]));
            let out_f = to_f32(rw, out)?;
            Ok((out, div(rw, out_f, input)?))
        }
        Size::Operand { v, by_sizes: true } => {
            let out = entry(rw, base, *v, axis)?;
            let out = to_i64(rw, out)?;
            let out_f = to_f32(rw, out)?;
            Ok((out, div(rw, out_f, input)?))
        }
        Size::Operand { v, by_sizes: false } => {
            let s = entry(rw, base, *v, axis)?;
            let s = to_f32(rw, s)?;
            let p = rw.op(base, Op::Binary(BinaryOp::Mul), vec![input, s])?;
            let p = rw.op(base, Op::Unary(UnaryOp::Floor), vec![p])?;
            Ok((to_i64(rw, p)?, s))
        }
    }
}

/// `c` where the output has more than one position, else 0.
fn single_to_zero(
    rw: &mut Rewriter,
    base: &str,
    out: ValueId,
    c: ValueId,
) -> Result<ValueId, String> {
    let one = rw.konst(base, Tensor::from_i64s(DType::I64, vec![1], &[1]));
    let many = rw.op(base, Op::Binary(BinaryOp::Greater), vec![out, one])?;
    let zero = rw.f32(base, 0.0);
    rw.op(base, Op::Where, vec![many, c, zero])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NHWC resize of `[1, 5, 7, 2]` by scales, lowered, against the op itself (tract).
    fn check(mode: ResizeMode, coord: CoordTransform, nearest: NearestRounding, scales: [f32; 2]) {
        let mut g = Graph::new();
        let ty = crate::ir::TensorType::new(DType::F32, crate::ir::fixed_shape(&[1, 5, 7, 2]));
        let x = g.add_input("x", ty);
        let r = Resize {
            mode,
            coord,
            nearest,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            layout: Layout::Nhwc,
            scales: vec![1.0, scales[0], scales[1], 1.0],
            sizes: None,
        };
        let y = g
            .add_node("resize", Op::Resize(r), vec![x], &["y".into()])
            .unwrap();
        g.outputs = y;
        let inputs = crate::eval::random_inputs(&g, 3, 1);
        let want = crate::eval::run(&g, &inputs)
            .unwrap_or_else(|e| panic!("{mode:?} {coord:?} {nearest:?} {scales:?}: {e}"));
        assert!(
            gather_nearest_resizes(&mut g).unwrap(),
            "{mode:?} {coord:?} not lowered"
        );
        g.verify().unwrap();
        assert!(!g.nodes.iter().any(|n| matches!(n.op, Op::Resize(_))));
        let got = crate::eval::run(&g, &inputs).unwrap();
        let c = crate::eval::compare("y", &got[0], &want[0]);
        assert!(
            c.shape_matches && c.max_abs < 1e-5,
            "{mode:?} {coord:?} {nearest:?}: {c:?}"
        );
    }

    #[test]
    fn lowered_resizes_match_the_op() {
        use CoordTransform::*;
        use NearestRounding::*;
        check(ResizeMode::Nearest, HalfPixel, RoundPreferFloor, [1.6, 0.6]);
        check(ResizeMode::Nearest, AlignCorners, Floor, [2.0, 1.5]);
        check(ResizeMode::Nearest, PytorchHalfPixel, Ceil, [0.3, 1.3]);
        check(ResizeMode::Nearest, Asymmetric, RoundPreferCeil, [1.6, 2.0]);
        // PyTorch's half-pixel linear resize to a single column is not the kernel's.
        check(ResizeMode::Linear, PytorchHalfPixel, Floor, [1.6, 0.15]);
    }
}
