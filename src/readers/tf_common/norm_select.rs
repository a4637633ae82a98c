//! TF's local response normalization and one-input Where, read alike from TFLite builtins
//! (LOCAL_RESPONSE_NORMALIZATION, WHERE) and TF graphs (LRN, Where).

use crate::ir::ops::Padding;
use crate::ir::ops::{BinaryOp, Conv, Transpose};
use crate::ir::{KernelLayout, Layout, Op, Tensor, ValueId};
use crate::readers::builder::{unsupported, GraphBuilder, NodeError, NodeResult};

/// LRN's parameters, as TF names them.
pub struct Lrn {
    pub depth_radius: i64,
    pub bias: f64,
    pub alpha: f64,
    pub beta: f64,
}

/// Local response normalization over the last axis of a 4-D input, as TF defines it:
/// `x / (bias + alpha · Σ x²)^beta`, the sum over the channels within `depth_radius` (alpha is
/// not divided by the window's size, unlike ONNX LRN). The windowed sum is a 1×1 convolution of
/// the squares with a banded `[C, C]` 0/1 kernel, which keeps every other axis as it is.
pub fn lrn(b: &mut GraphBuilder, name: &str, x: ValueId, p: &Lrn) -> NodeResult<Vec<ValueId>> {
    let ty = b.g.ty(x).clone();
    // The banded kernel holds C² values: a bound keeps a corrupt channel count from
    // allocating gigabytes (real LRN layers have at most a few hundred channels).
    let c = match (ty.rank(), ty.shape.last().and_then(|d| d.fixed())) {
        (4, Some(c)) if ty.dtype.is_float() && c <= 4096 => c as usize,
        _ => {
            return unsupported(format!(
                "local response normalization of {ty} (needs float NHWC with at most 4096 channels, a fixed count)"
            ))
        }
    };
    let radius = usize::try_from(p.depth_radius)
        .map_err(|_| NodeError::Invalid(format!("radius {}", p.depth_radius)))?;
    let dt = ty.dtype;
    let band: Vec<f64> = (0..c * c)
        .map(|i| f64::from(u8::from((i / c).abs_diff(i % c) <= radius)))
        .collect();
    let band = b.add_const(
        &format!("{name}/window"),
        Tensor::from_f64s(dt, vec![c, 1, 1, c], &band),
    );
    let sq = b.emit1(
        &format!("{name}/square"),
        Op::Binary(BinaryOp::Mul),
        vec![x, x],
    )?;
    let conv = Conv {
        layout: Layout::Nhwc,
        kernel_layout: KernelLayout::Ohwi,
        strides: vec![1, 1],
        dilations: vec![1, 1],
        padding: Padding::Explicit(vec![(0, 0); 2]),
        group: 1,
        output_padding: vec![],
    };
    let sums = b.emit1(
        &format!("{name}/window_sum"),
        Op::Conv(conv),
        vec![sq, band],
    )?;
    let mut v = sums;
    for (what, op, k) in [
        ("alpha", BinaryOp::Mul, p.alpha),
        ("bias", BinaryOp::Add, p.bias),
        ("beta", BinaryOp::Pow, p.beta),
    ] {
        let k = b.add_const(
            &format!("{name}/{what}"),
            Tensor::from_f64s(dt, vec![], &[k]),
        );
        v = b.emit1(&format!("{name}/{what}_op"), Op::Binary(op), vec![v, k])?;
    }
    b.emit(name, Op::Binary(BinaryOp::Div), vec![x, v])
}

/// Where(condition) alone: the coordinates of the true (non-zero) elements, int64 `[n, rank]`
/// in row-major order — the IR's NonZero (`[rank, n]`) transposed.
pub fn where_coords(b: &mut GraphBuilder, name: &str, x: ValueId) -> NodeResult<Vec<ValueId>> {
    if b.g.ty(x).rank() == 0 {
        return unsupported("Where of a scalar");
    }
    let nz = b.emit1(&format!("{name}/nonzero"), Op::NonZero, vec![x])?;
    let t = Transpose { perm: vec![1, 0] };
    b.emit(name, Op::Transpose(t), vec![nz])
}
