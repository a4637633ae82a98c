//! Resize as TF.js's ResizeBilinear / ResizeNearestNeighbor (NHWC, 4-D, fixed output size),
//! for the coordinate transforms and rounding modes those kernels express.

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
    let (op, align, half) = match (r.mode, r.coord, r.nearest) {
        (ResizeMode::Linear, CoordTransform::HalfPixel, _) => ("ResizeBilinear", false, true),
        (ResizeMode::Linear, CoordTransform::PytorchHalfPixel, _) if grows(1) && grows(2) => {
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
    };
    let x = gx.r(n.inputs[0])?;
    let size = gx.ints("size", &[h, w])?;
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
