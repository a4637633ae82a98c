//! Image-geometry ops as the ops of their definitions. CenterCropPad: a slice centred on each
//! axis where the target is smaller, then a centred zero pad where it is larger (bounds from
//! the target shape, computed at run time when it is). AffineGrid: the normalized `[-1, 1]`
//! coordinates of every output pixel (`(2i+1)/S − 1`, or `2i/(S−1) − 1` with
//! `align_corners`) as `[x, y, (z,) 1]` rows, times `thetaᵀ`; the sizes may be known only at
//! run time.

use super::super::import::{Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::{norm_axis, BinaryOp, Dynamic, Gather, MatMul, PadMode, ShapeOf};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "CenterCropPad" => center_crop_pad,
        "AffineGrid" => affine_grid,
        _ => return None,
    })
}

fn ints(b: &mut Build, what: &str, v: &[i64]) -> ValueId {
    b.constant(what, Tensor::from_i64s(DType::I64, vec![v.len()], v))
}

fn center_crop_pad(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, target) = (ctx.input(0)?, ctx.input(1)?);
    let ty = imp.g.ty(x).clone();
    let axes: Vec<i64> = match ctx.ints("axes") {
        Some(a) => a
            .iter()
            .map(|&a| norm_axis(a, ty.rank()).map(|a| a as i64))
            .collect::<Result<_, _>>()?,
        None => (0..ty.rank() as i64).collect(),
    };
    let mut b = Build::new(imp, &ctx.name);
    let shape = Op::ShapeOf(ShapeOf {
        start: 0,
        end: ty.rank(),
    });
    let shape = b.op("shape", shape, vec![x])?;
    let axes_c = ints(&mut b, "axes", &axes);
    let sizes = b.op("sizes", Op::Gather(Gather { axis: 0 }), vec![shape, axes_c])?;
    let target = b.cast(target, DType::I64)?;
    let zero = b.scalar("zero", DType::I64, 0.0);
    let two = b.scalar("two", DType::I64, 2.0);
    // Crop: start at ⌊(in − target)/2⌋ where the input is larger, keep min(in, target).
    let excess = b.bin(BinaryOp::Sub, sizes, target)?;
    let excess = b.bin(BinaryOp::Max, excess, zero)?;
    let starts = b.bin(BinaryOp::Div, excess, two)?;
    let kept = b.bin(BinaryOp::Min, sizes, target)?;
    let ends = b.bin(BinaryOp::Add, starts, kept)?;
    let steps = ints(&mut b, "steps", &vec![1; axes.len()]);
    let cropped = b.op(
        "crop",
        Op::Dynamic(Dynamic::Slice),
        vec![x, starts, ends, axes_c, steps],
    )?;
    // Pad: ⌊(target − in)/2⌋ before, the rest after, where the target is larger.
    let missing = b.bin(BinaryOp::Sub, target, sizes)?;
    let missing = b.bin(BinaryOp::Max, missing, zero)?;
    let before = b.bin(BinaryOp::Div, missing, two)?;
    let after = b.bin(BinaryOp::Sub, missing, before)?;
    let pads = b.concat(vec![before, after], 0)?;
    let value = b.scalar("value", ty.dtype, 0.0);
    let mode = PadMode::Constant;
    let padded = b.op(
        "pad",
        Op::Dynamic(Dynamic::Pad { mode }),
        vec![cropped, pads, value, axes_c],
    )?;
    Ok(vec![padded])
}

fn affine_grid(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (theta, size) = (ctx.input(0)?, ctx.input(1)?);
    let tt = imp.g.ty(theta).clone();
    let spatial = match tt.shape.get(1).and_then(|d| d.fixed()) {
        Some(2) => 2,
        Some(3) => 3,
        _ => {
            return Err(NodeError::Invalid(format!(
                "AffineGrid theta must be [N, 2, 3] or [N, 3, 4], got {tt}"
            )))
        }
    };
    if !tt.dtype.is_float() || tt.rank() != 3 {
        return Err(NodeError::Invalid(format!("AffineGrid theta {tt}")));
    }
    let dt = tt.dtype;
    let align = ctx.int("align_corners", 0) == 1;
    let mut b = Build::new(imp, &ctx.name);
    let size = b.cast(size, DType::I64)?;
    // Coordinates along each spatial axis, innermost (x) first; each shaped to broadcast.
    let mut coords = vec![];
    for k in 0..spatial {
        let axis = 1 + spatial - k; // size index: W for x, H for y, D for z
        let idx = b.constant(
            "axis",
            Tensor::from_i64s(DType::I64, vec![], &[axis as i64]),
        );
        let n = b.op("size", Op::Gather(Gather { axis: 0 }), vec![size, idx])?;
        let c = linspace(&mut b, n, dt, align)?;
        let len = b.shape(c)[0].clone();
        // [.., len at position spatial-1-k, .., 1]
        let mut s = vec![Dim::Fixed(1); spatial + 1];
        s[spatial - 1 - k] = len;
        coords.push(b.reshape(c, s)?);
    }
    // Broadcast each to the full grid by adding zeros of the others, then the ones column.
    let zero = b.scalar("zero", dt, 0.0);
    let mut zeros = b.bin(BinaryOp::Mul, coords[0], zero)?;
    for &c in &coords[1..] {
        let z = b.bin(BinaryOp::Mul, c, zero)?;
        zeros = b.bin(BinaryOp::Add, zeros, z)?;
    }
    let mut columns = vec![];
    for &c in &coords {
        columns.push(b.bin(BinaryOp::Add, c, zeros)?);
    }
    let one = b.scalar("one", dt, 1.0);
    columns.push(b.bin(BinaryOp::Add, zeros, one)?);
    let base = b.concat(columns, spatial)?;
    // [1, spatial…, k+1] · [N, 1…, k+1, k] → [N, spatial…, k]
    let mut bs = vec![Dim::Fixed(1)];
    bs.extend(b.shape(base));
    let base = b.reshape(base, bs)?;
    let t = b.transpose(theta, vec![0, 2, 1])?;
    let mut ts = vec![tt.shape[0].clone()];
    ts.extend(std::iter::repeat_n(Dim::Fixed(1), spatial - 1));
    ts.extend([Dim::Fixed(spatial as u64 + 1), Dim::Fixed(spatial as u64)]);
    let t = b.reshape(t, ts)?;
    Ok(vec![b.op(
        "grid",
        Op::MatMul(MatMul::default()),
        vec![base, t],
    )?])
}

/// `n` points spanning [-1, 1]: pixel centres, or the corners with `align_corners` (a single
/// point is −1 then, as `linspace` gives).
fn linspace(b: &mut Build, n: ValueId, dt: DType, align: bool) -> NodeResult<ValueId> {
    let (zero, one) = (
        b.scalar("zero", DType::I64, 0.0),
        b.scalar("one", DType::I64, 1.0),
    );
    let i = b.op("range", Op::Range, vec![zero, n, one])?;
    let i = b.cast(i, dt)?;
    let two = b.scalar("two", dt, 2.0);
    let twice = b.bin(BinaryOp::Mul, i, two)?;
    let (num, den) = if align {
        let nm1 = b.bin(BinaryOp::Sub, n, one)?;
        let nm1 = b.bin(BinaryOp::Max, nm1, one)?;
        (twice, b.cast(nm1, dt)?)
    } else {
        let onef = b.scalar("one_f", dt, 1.0);
        (b.bin(BinaryOp::Add, twice, onef)?, b.cast(n, dt)?)
    };
    let q = b.bin(BinaryOp::Div, num, den)?;
    let onef = b.scalar("one_f", dt, 1.0);
    b.bin(BinaryOp::Sub, q, onef)
}
