//! Neural-network ONNX ops: Conv, ConvTranspose (output_shape resolved to pads), Gemm (lowered
//! to MatMul with transpose flags, Mul and Add), MatMul, pooling,
//! normalizations, Softmax/LogSoftmax/Hardmax (the opset < 13 "coerce to 2-D" form is rewritten
//! as Reshape → op → Reshape), LpNormalization, MeanVarianceNormalization (lowered to
//! reductions and arithmetic as in its ONNX function body) and GridSample.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::{
    norm_axes, norm_axis, BatchNorm, BinaryOp, Conv, GlobalPool, GridPadding, GridSample, Hardmax,
    InstanceNorm, LayerNorm, LpNorm, MatMul, Padding, Pool, PoolKind, Reduce, ReduceKind, Reshape,
    ResizeMode, Softmax, UnaryOp,
};
use crate::ir::{Dim, KernelLayout, Layout, Op, Tensor, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Conv" | "ConvTranspose" => conv,
        "Gemm" => gemm,
        "MatMul" => matmul,
        "MaxPool" | "AveragePool" | "LpPool" => pool,
        "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => global_pool,
        "BatchNormalization" => batch_norm,
        "LayerNormalization" => layer_norm,
        "InstanceNormalization" => instance_norm,
        "Softmax" | "LogSoftmax" => softmax,
        "Hardmax" => hardmax,
        "LpNormalization" => lp_normalization,
        "MeanVarianceNormalization" => mean_variance_normalization,
        "GridSample" => grid_sample,
        _ => return None,
    })
}

/// Reads the attributes shared by Conv, ConvTranspose and the quantized convolutions.
pub fn conv_params(
    imp: &Importer,
    ctx: &NodeCtx,
    x: ValueId,
    w: ValueId,
    transposed: bool,
) -> NodeResult<Conv> {
    let xt = imp.g.ty(x);
    let wshape = &imp.g.ty(w).shape;
    if xt.rank() < 3 || wshape.len() != xt.rank() {
        return Err(NodeError::Invalid(format!(
            "input {xt} and kernel ranks do not fit a convolution"
        )));
    }
    let n = xt.rank() - 2;
    let kernel: Vec<usize> = match ctx.ints("kernel_shape") {
        Some(k) => k.iter().map(|&v| v as usize).collect(),
        None => wshape[2..]
            .iter()
            .map(|d| d.fixed().map(|v| v as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| NodeError::Unsupported("kernel size not known".into()))?,
    };
    let ones = vec![1i64; n];
    let to_usize =
        |v: Vec<i64>| -> Vec<usize> { v.into_iter().map(|x| x.max(0) as usize).collect() };
    let strides = to_usize(ctx.ints("strides").unwrap_or_else(|| ones.clone()));
    let dilations = to_usize(ctx.ints("dilations").unwrap_or_else(|| ones.clone()));
    if strides.len() != n || dilations.len() != n || kernel.len() != n {
        return Err(NodeError::Invalid(
            "strides/dilations/kernel_shape do not match the spatial rank".into(),
        ));
    }
    crate::ir::ops::check_window(&kernel, &strides, &dilations)?;
    let mut c = Conv {
        layout: Layout::Nchw,
        kernel_layout: if transposed {
            KernelLayout::Iohw
        } else {
            KernelLayout::Oihw
        },
        strides,
        dilations,
        padding: padding_attr(ctx, n)?,
        group: ctx.int("group", 1).max(1) as usize,
        output_padding: ctx
            .ints("output_padding")
            .map(to_usize)
            .unwrap_or_else(|| vec![0; n]),
    };
    let spatial: Vec<Dim> = xt.shape[2..].to_vec();
    if transposed {
        if let Some(out) = ctx.ints("output_shape") {
            c.padding = transpose_pads_for_output(&c, &spatial, &kernel, &out, ctx)?;
        } else if c.padding != Padding::Explicit(vec![(0, 0); n])
            && !matches!(c.padding, Padding::Explicit(_))
        {
            let out: Vec<i64> = spatial
                .iter()
                .zip(&c.strides)
                .map(|(d, &s)| d.fixed().map_or(-1, |v| v as i64 * s as i64))
                .collect();
            if out.iter().any(|&o| o < 0) {
                return unsupported("ConvTranspose with auto_pad on symbolic spatial sizes");
            }
            c.padding = transpose_pads_for_output(&c, &spatial, &kernel, &out, ctx)?;
        }
    } else if let Some(p) = c.explicit_pads(&spatial, &kernel) {
        c.padding = Padding::Explicit(p);
    }
    Ok(c)
}

fn padding_attr(ctx: &NodeCtx, n: usize) -> NodeResult<Padding> {
    Ok(match ctx.string("auto_pad", "NOTSET").as_str() {
        "SAME_UPPER" => Padding::SameUpper,
        "SAME_LOWER" => Padding::SameLower,
        "VALID" => Padding::Explicit(vec![(0, 0); n]),
        _ => {
            let p = ctx.ints("pads").unwrap_or_else(|| vec![0; 2 * n]);
            if p.len() != 2 * n || p.iter().any(|&v| v < 0) {
                return Err(NodeError::Invalid(format!(
                    "pads {p:?} for {n} spatial axes"
                )));
            }
            Padding::Explicit((0..n).map(|i| (p[i] as usize, p[i + n] as usize)).collect())
        }
    })
}

/// ConvTranspose: the explicit pads that give `out` (ONNX operator spec, output_shape rule).
fn transpose_pads_for_output(
    c: &Conv,
    spatial: &[Dim],
    kernel: &[usize],
    out: &[i64],
    ctx: &NodeCtx,
) -> NodeResult<Padding> {
    let out = if out.len() == spatial.len() + 2 {
        &out[2..]
    } else {
        out
    };
    if out.len() != spatial.len() {
        return Err(NodeError::Invalid(format!(
            "output_shape {out:?} for {} spatial axes",
            spatial.len()
        )));
    }
    let mut pads = Vec::new();
    for i in 0..spatial.len() {
        let Some(n) = spatial[i].fixed() else {
            return unsupported("ConvTranspose output_shape with symbolic spatial sizes");
        };
        let full = c.strides[i] as i64 * (n as i64 - 1)
            + c.output_padding[i] as i64
            + ((kernel[i] as i64 - 1) * c.dilations[i] as i64 + 1);
        let total = full - out[i];
        if total < 0 {
            return unsupported("ConvTranspose output_shape larger than the full output");
        }
        let (small, big) = ((total / 2) as usize, (total - total / 2) as usize);
        pads.push(if ctx.string("auto_pad", "NOTSET") == "SAME_LOWER" {
            (big, small)
        } else {
            (small, big)
        });
    }
    Ok(Padding::Explicit(pads))
}

fn conv(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    let transposed = ctx.node.op_type == "ConvTranspose";
    let c = conv_params(imp, ctx, x, w, transposed)?;
    let mut inputs = vec![x, w];
    inputs.extend(ctx.opt_input(2));
    imp.emit(
        &ctx.name,
        if transposed {
            Op::ConvTranspose(c)
        } else {
            Op::Conv(c)
        },
        inputs,
    )
}

fn gemm(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    if imp.g.ty(a).rank() != 2 || imp.g.ty(b).rank() != 2 {
        return Err(NodeError::Invalid("Gemm inputs must be 2-D".into()));
    }
    // Transposes stay flags on the MatMul: weights are not copied to reorder them.
    let m = MatMul {
        transpose_a: ctx.int("transA", 0) == 1,
        transpose_b: ctx.int("transB", 0) == 1,
    };
    let (alpha, beta) = (ctx.float("alpha", 1.0), ctx.float("beta", 1.0));
    let dt = imp.g.ty(a).dtype;
    let mut y = imp.emit1(&format!("{}/matmul", ctx.name), Op::MatMul(m), vec![a, b])?;
    if alpha != 1.0 {
        let k = imp.add_const(
            &format!("{}/alpha", ctx.name),
            Tensor::from_f64s(dt, vec![], &[alpha as f64]),
        );
        y = imp.emit1(
            &format!("{}/scale", ctx.name),
            Op::Binary(BinaryOp::Mul),
            vec![y, k],
        )?;
    }
    if let Some(mut c) = ctx.opt_input(2) {
        if beta != 1.0 {
            let k = imp.add_const(
                &format!("{}/beta", ctx.name),
                Tensor::from_f64s(dt, vec![], &[beta as f64]),
            );
            c = imp.emit1(
                &format!("{}/beta_c", ctx.name),
                Op::Binary(BinaryOp::Mul),
                vec![c, k],
            )?;
        }
        if beta != 0.0 {
            y = imp.emit1(
                &format!("{}/bias", ctx.name),
                Op::Binary(BinaryOp::Add),
                vec![y, c],
            )?;
        }
    }
    Ok(vec![y])
}

fn matmul(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    imp.emit(
        &ctx.name,
        Op::MatMul(MatMul::default()),
        vec![ctx.input(0)?, ctx.input(1)?],
    )
}

fn pool(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let with_indices = ctx.node.output.get(1).is_some_and(|o| !o.is_empty());
    let x = ctx.input(0)?;
    let xt = imp.g.ty(x).clone();
    if xt.rank() < 3 {
        return Err(NodeError::Invalid(format!(
            "pooling input {xt} has no spatial axes"
        )));
    }
    let n = xt.rank() - 2;
    // LpPool of another p than 2: (Σ|x|^p)^(1/p), the sum an average over the whole window.
    let lp = ctx.int("p", 2);
    let (kind, other_p) = match ctx.node.op_type.as_str() {
        "MaxPool" => (PoolKind::Max, None),
        "AveragePool" => (PoolKind::Avg, None),
        _ if lp == 2 => (PoolKind::L2, None),
        _ if lp >= 1 => (PoolKind::Avg, Some(lp as f64)),
        _ => return Err(NodeError::Invalid(format!("LpPool with p = {lp}"))),
    };
    let kernel: Vec<usize> = ctx
        .ints("kernel_shape")
        .ok_or_else(|| NodeError::Invalid("pooling without kernel_shape".into()))?
        .iter()
        .map(|&k| k.max(1) as usize)
        .collect();
    let get = |name: &str| -> Vec<usize> {
        ctx.ints(name).map_or(vec![1; n], |v| {
            v.iter().map(|&x| x.max(1) as usize).collect()
        })
    };
    let mut p = Pool {
        kind,
        layout: Layout::Nchw,
        kernel,
        strides: get("strides"),
        dilations: get("dilations"),
        padding: padding_attr(ctx, n)?,
        ceil_mode: ctx.int("ceil_mode", 0) == 1,
        count_include_pad: ctx.int("count_include_pad", 0) == 1 || other_p.is_some(),
    };
    if p.kernel.len() != n || p.strides.len() != n || p.dilations.len() != n {
        return Err(NodeError::Invalid(
            "kernel_shape/strides/dilations do not match the spatial rank".into(),
        ));
    }
    if !matches!(p.padding, Padding::Explicit(_)) {
        let c = Conv {
            layout: Layout::Nchw,
            kernel_layout: KernelLayout::Oihw,
            strides: p.strides.clone(),
            dilations: p.dilations.clone(),
            padding: p.padding.clone(),
            group: 1,
            output_padding: vec![],
        };
        if let Some(pads) = c.explicit_pads(&xt.shape[2..], &p.kernel) {
            p.padding = Padding::Explicit(pads);
        }
    }
    match other_p {
        Some(lp) => lp_pool(imp, ctx, x, p, lp),
        None if with_indices => super::pool_index::max_pool_with_indices(imp, ctx, x, p),
        None => imp.emit(&ctx.name, Op::Pool(p), vec![x]),
    }
}

/// `(window size · avg(|x|^p))^(1/p)`; zero padding adds nothing to the sum.
fn lp_pool(
    imp: &mut Importer,
    ctx: &NodeCtx,
    x: ValueId,
    avg: Pool,
    lp: f64,
) -> NodeResult<Vec<ValueId>> {
    let dt = imp.g.ty(x).dtype;
    let window = avg.kernel.iter().product::<usize>() as f64;
    let mut b = Build::new(imp, &ctx.name);
    let abs = b.un(UnaryOp::Abs, x)?;
    let p = b.scalar("p", dt, lp);
    let powered = b.bin(BinaryOp::Pow, abs, p)?;
    let mean = b.op("avg", Op::Pool(avg), vec![powered])?;
    let n = b.scalar("window", dt, window);
    let sum = b.bin(BinaryOp::Mul, mean, n)?;
    let inv = b.scalar("inv_p", dt, 1.0 / lp);
    Ok(vec![b.bin(BinaryOp::Pow, sum, inv)?])
}

fn global_pool(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let kind = match ctx.node.op_type.as_str() {
        "GlobalAveragePool" => PoolKind::Avg,
        "GlobalMaxPool" => PoolKind::Max,
        _ if ctx.int("p", 2) == 2 => PoolKind::L2,
        _ => return unsupported("GlobalLpPool with p != 2"),
    };
    imp.emit(
        &ctx.name,
        Op::GlobalPool(GlobalPool {
            kind,
            layout: Layout::Nchw,
        }),
        vec![ctx.input(0)?],
    )
}

fn extra_outputs_unsupported(ctx: &NodeCtx, what: &str) -> NodeResult<()> {
    if ctx.node.output.iter().skip(1).any(|o| !o.is_empty()) {
        return unsupported(format!("{what} outputs"));
    }
    Ok(())
}

fn batch_norm(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    if ctx.int("training_mode", 0) == 1 {
        return super::norm::batch_norm_training(imp, ctx);
    }
    extra_outputs_unsupported(ctx, "training statistics")?;
    let inputs = (0..5)
        .map(|i| ctx.input(i))
        .collect::<NodeResult<Vec<_>>>()?;
    let bn = BatchNorm {
        epsilon: ctx.float("epsilon", 1e-5),
        layout: Layout::Nchw,
    };
    imp.emit(&ctx.name, Op::BatchNorm(bn), inputs)
}

fn layer_norm(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    if ctx.node.output.iter().skip(1).any(|o| !o.is_empty()) {
        return super::loss::layer_norm_with_stats(imp, ctx);
    }
    let x = ctx.input(0)?;
    let axis = norm_axis(ctx.int("axis", -1), imp.g.ty(x).rank())?;
    let mut inputs = vec![x, ctx.input(1)?];
    inputs.extend(ctx.opt_input(2));
    imp.emit(
        &ctx.name,
        Op::LayerNorm(LayerNorm {
            axis,
            epsilon: ctx.float("epsilon", 1e-5),
        }),
        inputs,
    )
}

fn instance_norm(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let inputs = (0..3)
        .map(|i| ctx.input(i))
        .collect::<NodeResult<Vec<_>>>()?;
    let n = InstanceNorm {
        epsilon: ctx.float("epsilon", 1e-5),
        layout: Layout::Nchw,
    };
    imp.emit(&ctx.name, Op::InstanceNorm(n), inputs)
}

fn softmax(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let log = ctx.node.op_type == "LogSoftmax";
    along_axis(imp, ctx, "softmax", |axis| {
        Op::Softmax(Softmax { axis, log })
    })
}

fn hardmax(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    float_input(imp, ctx)?;
    along_axis(imp, ctx, "hardmax", |axis| Op::Hardmax(Hardmax { axis }))
}

/// Softmax, LogSoftmax and Hardmax: along one axis from opset 13; before, over the input
/// flattened to 2-D at `axis` (default 1), i.e. over all axes `axis..rank` at once.
fn along_axis(
    imp: &mut Importer,
    ctx: &NodeCtx,
    label: &str,
    op: impl Fn(usize) -> Op,
) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let xt = imp.g.ty(x).clone();
    let rank = xt.rank();
    let legacy = imp.opset < 13;
    let axis = norm_axis(ctx.int("axis", if legacy { 1 } else { -1 }), rank)?;
    if !legacy || axis == rank - 1 {
        return imp.emit(&ctx.name, op(axis), vec![x]);
    }
    // Opset < 13: the op over the flattened axes axis..rank.
    let inner = crate::ir::ops::dim_product(&xt.shape[axis..]).ok_or_else(|| {
        NodeError::Unsupported(format!(
            "opset < 13 {} over symbolic trailing axes",
            ctx.node.op_type
        ))
    })?;
    let outer = match crate::ir::ops::dim_product(&xt.shape[..axis]) {
        Some(o) => Dim::Fixed(o),
        None => Dim::product(&xt.shape[..axis]),
    };
    let flat = imp.emit1(
        &format!("{}/flatten", ctx.name),
        Op::Reshape(Reshape {
            shape: vec![outer, Dim::Fixed(inner)],
        }),
        vec![x],
    )?;
    let s = imp.emit1(&format!("{}/{label}", ctx.name), op(1), vec![flat])?;
    imp.emit(
        &ctx.name,
        Op::Reshape(Reshape {
            shape: xt.shape.clone(),
        }),
        vec![s],
    )
}

fn float_input(imp: &Importer, ctx: &NodeCtx) -> NodeResult<()> {
    let dt = imp.g.ty(ctx.input(0)?).dtype;
    if !dt.is_float() {
        return unsupported(format!("{} on {dt} tensors", ctx.node.op_type));
    }
    Ok(())
}

fn lp_normalization(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    float_input(imp, ctx)?;
    let x = ctx.input(0)?;
    let axis = norm_axis(ctx.int("axis", -1), imp.g.ty(x).rank())?;
    let p = match ctx.int("p", 2) {
        1 => 1,
        2 => 2,
        p => return unsupported(format!("LpNormalization p = {p}")),
    };
    imp.emit(&ctx.name, Op::LpNorm(LpNorm { axis, p }), vec![x])
}

/// `(x - E[x]) / (sqrt(E[x²] - E[x]²) + 1e-9)` over `axes` (default 0, 2, 3), the ONNX function
/// body of MeanVarianceNormalization-13.
fn mean_variance_normalization(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    float_input(imp, ctx)?;
    let x = ctx.input(0)?;
    let xt = imp.g.ty(x).clone();
    let mut axes = match ctx.ints("axes") {
        Some(a) if !a.is_empty() => norm_axes(&a, xt.rank())?,
        Some(_) => (0..xt.rank()).collect(),
        None => norm_axes(&[0, 2, 3], xt.rank())?,
    };
    axes.sort_unstable();
    if axes.is_empty() {
        return unsupported("MeanVarianceNormalization of a scalar");
    }
    let n = &ctx.name;
    let mean_of = |imp: &mut Importer, v: ValueId, what: &str| {
        let r = Reduce {
            kind: ReduceKind::Mean,
            axes: axes.clone(),
            keep_dims: true,
        };
        imp.emit1(&format!("{n}/{what}"), Op::Reduce(r), vec![v])
    };
    let bin = |imp: &mut Importer, op: BinaryOp, a: ValueId, b: ValueId, what: &str| {
        imp.emit1(&format!("{n}/{what}"), Op::Binary(op), vec![a, b])
    };
    let mean = mean_of(imp, x, "mean")?;
    let mean_sq = bin(imp, BinaryOp::Mul, mean, mean, "mean_squared")?;
    let x_sq = bin(imp, BinaryOp::Mul, x, x, "x_squared")?;
    let mean_x_sq = mean_of(imp, x_sq, "mean_of_squares")?;
    let var = bin(imp, BinaryOp::Sub, mean_x_sq, mean_sq, "variance")?;
    let std = imp.emit1(&format!("{n}/std"), Op::Unary(UnaryOp::Sqrt), vec![var])?;
    let eps = imp.add_const(
        &format!("{n}/epsilon"),
        Tensor::from_f64s(xt.dtype, vec![], &[1e-9]),
    );
    let std_eps = bin(imp, BinaryOp::Add, std, eps, "std_eps")?;
    let centered = bin(imp, BinaryOp::Sub, x, mean, "centered")?;
    imp.emit(n, Op::Binary(BinaryOp::Div), vec![centered, std_eps])
}

/// GridSample-16 (2-D; bilinear/nearest/bicubic) and -20 (N-D; linear/nearest/cubic).
fn grid_sample(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, grid) = (ctx.input(0)?, ctx.input(1)?);
    let v20 = imp.opset >= 20;
    let rank = imp.g.ty(x).rank();
    if !v20 && rank != 4 {
        return unsupported(format!("GridSample on a {rank}-D input before opset 20"));
    }
    let default_mode = if v20 { "linear" } else { "bilinear" };
    let mode = match (ctx.string("mode", default_mode).as_str(), v20) {
        ("nearest", _) => ResizeMode::Nearest,
        ("linear", true) | ("bilinear", false) => ResizeMode::Linear,
        ("cubic", true) | ("bicubic", false) => ResizeMode::Cubic,
        (m, _) => return unsupported(format!("GridSample mode '{m}' at opset {}", imp.opset)),
    };
    let padding = match ctx.string("padding_mode", "zeros").as_str() {
        "zeros" => GridPadding::Zeros,
        "border" => GridPadding::Border,
        "reflection" => GridPadding::Reflection,
        p => return unsupported(format!("GridSample padding_mode '{p}'")),
    };
    let gs = GridSample {
        mode,
        padding,
        align_corners: ctx.int("align_corners", 0) == 1,
        layout: Layout::Nchw,
    };
    imp.emit(&ctx.name, Op::GridSample(gs), vec![x, grid])
}
