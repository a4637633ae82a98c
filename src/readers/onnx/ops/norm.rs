//! Normalizations the IR has no op for, written as the ops of their definitions:
//! GroupNormalization as an InstanceNorm over `[N, groups, rest]` (per-group scale and bias
//! up to opset 20, per-channel ones applied after it from opset 21), LRN as a sum of squares
//! over the channel window (a convolution with a ones kernel) and BatchNormalization in
//! training mode (batch statistics, and the running ones updated with `momentum`).

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::{BinaryOp, Conv, InstanceNorm, Padding, ReduceKind, UnaryOp};
use crate::ir::{Dim, KernelLayout, Layout, Op, Tensor, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "GroupNormalization" => group_norm,
        "LRN" => lrn,
        _ => return None,
    })
}

/// `[N, C, spatial…]` with C and the spatial sizes fixed (the decompositions reshape).
fn channels_and_area(ty: &crate::ir::TensorType, op: &str) -> NodeResult<(usize, usize)> {
    if ty.rank() < 2 || !ty.dtype.is_float() {
        return Err(NodeError::Invalid(format!(
            "{op} needs a float [N, C, …] input, got {ty}"
        )));
    }
    let fixed: Option<Vec<u64>> = ty.shape[1..].iter().map(|d| d.fixed()).collect();
    match fixed {
        Some(f) => Ok((f[0] as usize, f[1..].iter().product::<u64>() as usize)),
        None => unsupported(format!(
            "{op} with channel or spatial sizes known only at run time"
        )),
    }
}

fn group_norm(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, scale, bias) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    let ty = imp.g.ty(x).clone();
    let (c, area) = channels_and_area(&ty, "GroupNormalization")?;
    let groups = ctx.int("num_groups", 0);
    if groups <= 0 || c % groups as usize != 0 {
        return Err(NodeError::Invalid(format!(
            "num_groups {groups} does not divide {c} channels"
        )));
    }
    let g = groups as usize;
    let per_channel = imp.opset >= 21;
    let mut b = Build::new(imp, &ctx.name);
    let grouped = b.reshape(
        x,
        vec![
            ty.shape[0].clone(),
            Dim::Fixed(g as u64),
            Dim::Fixed((c / g * area) as u64),
        ],
    )?;
    let (s, o) = if per_channel {
        let ones = b.constant("ones", Tensor::from_f64s(ty.dtype, vec![g], &vec![1.0; g]));
        let zeros = b.constant("zeros", Tensor::from_f64s(ty.dtype, vec![g], &vec![0.0; g]));
        (ones, zeros)
    } else {
        (scale, bias)
    };
    let n = InstanceNorm {
        epsilon: ctx.float("epsilon", 1e-5),
        layout: Layout::Nchw,
    };
    let normed = b.op("norm", Op::InstanceNorm(n), vec![grouped, s, o])?;
    let y = b.reshape(normed, ty.shape.clone())?;
    if !per_channel {
        return Ok(vec![y]);
    }
    // Per-channel scale and bias broadcast as [C, 1, …].
    let mut cshape = vec![Dim::Fixed(c as u64)];
    cshape.extend(std::iter::repeat_n(Dim::Fixed(1), ty.rank() - 2));
    let s = b.reshape(scale, cshape.clone())?;
    let o = b.reshape(bias, cshape)?;
    let y = b.bin(BinaryOp::Mul, y, s)?;
    Ok(vec![b.bin(BinaryOp::Add, y, o)?])
}

/// `x / (bias + alpha/size · Σ x²)^beta`, the sum over the `size` channels around each one.
fn lrn(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let ty = imp.g.ty(x).clone();
    let (c, area) = channels_and_area(&ty, "LRN")?;
    let size = ctx.int("size", 0);
    if size <= 0 {
        return Err(NodeError::Invalid(format!(
            "LRN size must be positive, got {size}"
        )));
    }
    let size = size as usize;
    let (alpha, beta, bias) = (
        ctx.float("alpha", 1e-4) as f64,
        ctx.float("beta", 0.75) as f64,
        ctx.float("bias", 1.0) as f64,
    );
    let dt = ty.dtype;
    let mut b = Build::new(imp, &ctx.name);
    let sq = b.bin(BinaryOp::Mul, x, x)?;
    let n = ty.shape[0].clone();
    let planes = b.reshape(
        sq,
        vec![
            n,
            Dim::Fixed(1),
            Dim::Fixed(c as u64),
            Dim::Fixed(area as u64),
        ],
    )?;
    let ones = b.constant(
        "window",
        Tensor::from_f64s(dt, vec![1, 1, size, 1], &vec![1.0; size]),
    );
    let conv = Conv {
        layout: Layout::Nchw,
        kernel_layout: KernelLayout::Oihw,
        strides: vec![1, 1],
        dilations: vec![1, 1],
        padding: Padding::Explicit(vec![((size - 1) / 2, size / 2), (0, 0)]),
        group: 1,
        output_padding: vec![],
    };
    let sums = b.op("window_sum", Op::Conv(conv), vec![planes, ones])?;
    let sums = b.reshape(sums, ty.shape.clone())?;
    let k = b.scalar("alpha_over_size", dt, alpha / size as f64);
    let scaled = b.bin(BinaryOp::Mul, sums, k)?;
    let bias = b.scalar("bias", dt, bias);
    let base = b.bin(BinaryOp::Add, scaled, bias)?;
    let beta = b.scalar("beta", dt, beta);
    let denom = b.bin(BinaryOp::Pow, base, beta)?;
    Ok(vec![b.bin(BinaryOp::Div, x, denom)?])
}

/// BatchNormalization-14+ with `training_mode` 1: normalized by the batch's mean and
/// (population) variance; the outputs after `Y` are the running statistics
/// `running · momentum + batch · (1 − momentum)`.
pub fn batch_norm_training(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    if imp.opset < 14 {
        return unsupported("BatchNormalization in training mode before opset 14");
    }
    let x = ctx.input(0)?;
    let (scale, bias, mean, var) = (ctx.input(1)?, ctx.input(2)?, ctx.input(3)?, ctx.input(4)?);
    let ty = imp.g.ty(x).clone();
    if ty.rank() < 2 || !ty.dtype.is_float() {
        return Err(NodeError::Invalid(format!(
            "BatchNormalization needs a float [N, C, …] input, got {ty}"
        )));
    }
    let dt = ty.dtype;
    let axes: Vec<usize> = (0..ty.rank()).filter(|&a| a != 1).collect();
    let momentum = ctx.float("momentum", 0.9) as f64;
    let eps = ctx.float("epsilon", 1e-5) as f64;
    let mut cshape = vec![ty.shape[1].clone()];
    cshape.extend(std::iter::repeat_n(Dim::Fixed(1), ty.rank() - 2));
    let mut b = Build::new(imp, &ctx.name);
    let batch_mean = b.reduce(ReduceKind::Mean, x, axes.clone(), true)?;
    let d = b.bin(BinaryOp::Sub, x, batch_mean)?;
    let d2 = b.bin(BinaryOp::Mul, d, d)?;
    let batch_var = b.reduce(ReduceKind::Mean, d2, axes.clone(), true)?;
    let eps = b.scalar("epsilon", dt, eps);
    let var_eps = b.bin(BinaryOp::Add, batch_var, eps)?;
    let std = b.un(UnaryOp::Sqrt, var_eps)?;
    let normed = b.bin(BinaryOp::Div, d, std)?;
    let s = b.reshape(scale, cshape.clone())?;
    let o = b.reshape(bias, cshape)?;
    let y = b.bin(BinaryOp::Mul, normed, s)?;
    let y = b.bin(BinaryOp::Add, y, o)?;
    let keep = b.scalar("momentum", dt, momentum);
    let take = b.scalar("one_minus_momentum", dt, 1.0 - momentum);
    let mut outs = vec![y];
    for (running, batch) in [(mean, batch_mean), (var, batch_var)] {
        let batch = b.reshape(batch, b.shape(running))?;
        let old = b.bin(BinaryOp::Mul, running, keep)?;
        let new = b.bin(BinaryOp::Mul, batch, take)?;
        outs.push(b.bin(BinaryOp::Add, old, new)?);
    }
    Ok(outs)
}
