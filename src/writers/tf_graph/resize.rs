//! Resize as TF.js's ResizeBilinear / ResizeNearestNeighbor (NHWC, 4-D; a fixed output size, or
//! sizes computed at run time), for the coordinate transforms and rounding modes those kernels
//! express.

use super::emit::{a_bool, a_type, Gx};
use crate::ir::ops::{CoordTransform, NearestRounding, Resize, ResizeMode};
use crate::ir::{Layout, Node, TensorType};

pub fn resize(gx: &mut Gx, n: &Node, r: &Resize) -> Result<(), String> {
    let g = gx.g;
    let x_ty = g.ty(n.inputs[0]).clone();
    let out_ty: TensorType = g.ty(n.outputs[0]).clone();
    if r.layout != Layout::Nhwc || x_ty.rank() != 4 {
        return Err("only NHWC 4-D resizing is written".into());
    }
    if x_ty.shape[0] != out_ty.shape[0] || x_ty.shape[3] != out_ty.shape[3] {
        return Err("resizing along the batch or channel axis".into());
    }
    let (h, w) = match (out_ty.shape[1].fixed(), out_ty.shape[2].fixed()) {
        (Some(h), Some(w)) => (h as i64, w as i64),
        _ => return Err("the output height and width must be fixed".into()),
    };
    let grows = |i: usize| out_ty.shape[i].fixed().unwrap_or(1) > 1;
    let (op, align, half) = kernel(r, Some(grows(1) && grows(2)))?;
    let size = gx.ints("size", &[h, w])?;
    emit_resize(gx, n, (op, align, half), size)
}

/// A resize to sizes computed at run time: the (NHWC) sizes' H and W entries as the size
/// input. The batch and channel entries are taken to keep their sizes. Scales are refused: the
/// output size `⌊in·scale⌋` need not give back the scale ONNX maps coordinates by.
pub fn resize_to(gx: &mut Gx, n: &Node, r: &Resize, by_sizes: bool) -> Result<(), String> {
    if r.layout != Layout::Nhwc || gx.g.ty(n.inputs[0]).rank() != 4 {
        return Err("resize sizes computed at run time of a tensor that is not 2-D NHWC".into());
    }
    if !by_sizes {
        return Err(
            "resize scales computed at run time: ResizeBilinear/ResizeNearestNeighbor take \
                    an output size, whose ratio to the input need not be the scale ONNX maps \
                    coordinates by"
                .into(),
        );
    }
    let kernel = kernel(r, None)?;
    let sizes = gx.r(n.inputs[1])?;
    let begin = gx.ints("hw_begin", &[1])?;
    let len = gx.ints("hw_size", &[2])?;
    let i32t = ("T", a_type(crate::ir::DType::I32));
    let hw = gx.node("hw", "Slice", vec![sizes, begin, len], vec![i32t]);
    emit_resize(gx, n, kernel, hw)
}

/// The TF.js op and its `align_corners`/`half_pixel_centers` computing `r`, if one does.
/// `every_side_over_1` is whether each output side is longer than 1 (unknown at run time):
/// PyTorch's half-pixel mapping only differs from the plain one for a side of 1.
fn kernel(
    r: &Resize,
    every_side_over_1: Option<bool>,
) -> Result<(&'static str, bool, bool), String> {
    Ok(match (r.mode, r.coord, r.nearest) {
        (ResizeMode::Linear, CoordTransform::HalfPixel, _) => ("ResizeBilinear", false, true),
        (ResizeMode::Linear, CoordTransform::PytorchHalfPixel, _)
            if every_side_over_1 == Some(true) =>
        {
            ("ResizeBilinear", false, true)
        }
        (ResizeMode::Linear, CoordTransform::AlignCorners, _) => ("ResizeBilinear", true, false),
        (ResizeMode::Linear, CoordTransform::Asymmetric, _) => ("ResizeBilinear", false, false),
        (ResizeMode::Nearest, CoordTransform::Asymmetric, NearestRounding::Floor) => {
            ("ResizeNearestNeighbor", false, false)
        }
        (ResizeMode::Nearest, CoordTransform::HalfPixel, NearestRounding::RoundPreferCeil) => {
            ("ResizeNearestNeighbor", false, true)
        }
        (ResizeMode::Nearest, CoordTransform::AlignCorners, NearestRounding::RoundPreferCeil) => {
            ("ResizeNearestNeighbor", true, false)
        }
        (mode, coord, nearest) => {
            return Err(format!(
            "{mode:?} resizing with {coord:?} coordinates ({nearest:?} rounding) has no TF.js form"
        ))
        }
    })
}

fn emit_resize(
    gx: &mut Gx,
    n: &Node,
    (op, align, half): (&str, bool, bool),
    size: String,
) -> Result<(), String> {
    let x_ty = gx.g.ty(n.inputs[0]).clone();
    let x = gx.r(n.inputs[0])?;
    let y = gx.node(
        "",
        op,
        vec![x, size],
        vec![
            ("T", a_type(x_ty.dtype)),
            ("align_corners", a_bool(align)),
            ("half_pixel_centers", a_bool(half)),
        ],
    );
    gx.bind(n.outputs[0], y);
    Ok(())
}
