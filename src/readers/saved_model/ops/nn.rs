//! Neural-network TF ops: Conv2D (NHWC, HWIO), DepthwiseConv2dNative (kernel `[kh, kw, in,
//! mult]` reshaped — no copy — to HWIO `[kh, kw, 1, in·mult]`, a conv with `group = in`),
//! Conv2DBackpropInput (HWOI filter, output size from `input_sizes`), MatMul, BatchMatMul,
//! BiasAdd, FusedBatchNorm (inference only), Softmax/LogSoftmax (last axis), MaxPool/AvgPool
//! (TF's AvgPool leaves padding out of the mean), Mean/Sum/Max/Min/Prod, ArgMax/ArgMin and
//! Einsum.

use super::super::tensor::TfNode;
use super::{const_ints, Handler};
use crate::ir::ops::{
    norm_axis, ArgReduce, BatchNorm, BinaryOp, Cast, Conv, Einsum, MatMul, Padding, Pool, PoolKind,
    Reduce, ReduceKind, Softmax,
};
use crate::ir::{DType, Dim, KernelLayout, Layout, Op, ValueId};
use crate::readers::builder::{reshape_to, unsupported, GraphBuilder, NodeError, NodeResult};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Conv2D" | "DepthwiseConv2dNative" => conv,
        "Conv2DBackpropInput" => conv_transpose,
        "MatMul" | "BatchMatMul" | "BatchMatMulV2" | "BatchMatMulV3" => matmul,
        "BiasAdd" | "BiasAddV1" => bias_add,
        "FusedBatchNorm" | "FusedBatchNormV2" | "FusedBatchNormV3" => batch_norm,
        "Softmax" | "LogSoftmax" => softmax,
        "MaxPool" | "AvgPool" => pool,
        "Mean" | "Sum" | "Max" | "Min" | "Prod" | "EuclideanNorm" | "All" | "Any" => reduce,
        "ArgMax" | "ArgMin" => arg_reduce,
        "Einsum" => einsum,
        _ => return None,
    })
}

/// The spatial part of an NHWC-ordered 4-element attribute (`strides`, `dilations`, `ksize`),
/// whose batch and channel entries must be 1.
fn spatial_attr(n: &TfNode, name: &str) -> NodeResult<Vec<usize>> {
    let v = n.ints(name);
    let v = if v.is_empty() { vec![1; 4] } else { v };
    if v.len() != 4 || v[0] != 1 || v[3] != 1 || v.iter().any(|&s| s < 1) {
        return unsupported(format!(
            "{name} {v:?} (only spatial values may differ from 1)"
        ));
    }
    Ok(vec![v[1] as usize, v[2] as usize])
}

fn padding(n: &TfNode) -> NodeResult<Padding> {
    match n.string("padding", "VALID").as_str() {
        "SAME" => Ok(Padding::SameUpper),
        "VALID" => Ok(Padding::Explicit(vec![(0, 0); 2])),
        "EXPLICIT" => {
            let p = n.ints("explicit_paddings");
            if p.len() != 8 || p[..2] != [0, 0] || p[6..] != [0, 0] || p.iter().any(|&v| v < 0) {
                return unsupported(format!("explicit_paddings {p:?}"));
            }
            Ok(Padding::Explicit(vec![
                (p[2] as usize, p[3] as usize),
                (p[4] as usize, p[5] as usize),
            ]))
        }
        other => unsupported(format!("padding {other}")),
    }
}

fn conv(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    n.require_nhwc()?;
    let (x, mut k) = (n.input(0)?, n.input(1)?);
    let ks = b.g.ty(k).shape.clone();
    if ks.len() != 4 || b.g.ty(x).rank() != 4 {
        return Err(NodeError::Invalid(
            "Conv2D needs 4-D input and filter".into(),
        ));
    }
    let group = if n.op() == "DepthwiseConv2dNative" {
        let (cin, mult) = (ks[2].clone(), ks[3].clone());
        let shape = vec![
            ks[0].clone(),
            ks[1].clone(),
            Dim::Fixed(1),
            Dim::product(&[cin.clone(), mult]),
        ];
        k = reshape_to(b, &format!("{}/kernel", n.name), k, shape)?[0];
        cin.fixed()
            .ok_or_else(|| NodeError::Unsupported("symbolic channel count".into()))?
            as usize
    } else {
        let ch = b.g.ty(x).shape[3].fixed();
        match (ch, ks[2].fixed()) {
            (Some(c), Some(i)) if i > 0 && c % i == 0 => (c / i) as usize,
            _ => 1,
        }
    };
    let mut c = Conv {
        layout: Layout::Nhwc,
        kernel_layout: KernelLayout::Hwio,
        strides: spatial_attr(n, "strides")?,
        dilations: spatial_attr(n, "dilations")?,
        padding: padding(n)?,
        group,
        output_padding: vec![],
    };
    let spatial_in = b.g.ty(x).shape[1..3].to_vec();
    let kernel: Vec<usize> = ks[..2]
        .iter()
        .map(|d| d.fixed().map(|v| v as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| NodeError::Unsupported("symbolic kernel size".into()))?;
    crate::ir::ops::check_window(&kernel, &c.strides, &c.dilations)?;
    if let Some(p) = c.explicit_pads(&spatial_in, &kernel) {
        c.padding = Padding::Explicit(p);
    }
    b.emit(&n.name, Op::Conv(c), vec![x, k])
}

/// Conv2DBackpropInput(input_sizes, filter [h, w, out, in], out_backprop): the transposed
/// convolution whose output has `input_sizes`; TF's SAME/VALID padding becomes explicit pads
/// (and output padding when the requested size is larger than the full result).
fn conv_transpose(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    n.require_nhwc()?;
    let (sizes, k, x) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let ks = b.g.ty(k).shape.clone();
    let xs = b.g.ty(x).shape.clone();
    if ks.len() != 4 || xs.len() != 4 {
        return Err(NodeError::Invalid("needs 4-D filter and input".into()));
    }
    let want = b
        .entries_or_unknown(sizes)
        .ok_or_else(|| NodeError::Unsupported("input_sizes computed at run time".into()))?;
    let strides = spatial_attr(n, "strides")?;
    let dilations = spatial_attr(n, "dilations")?;
    let pad_mode = padding(n)?;
    let mut pads = Vec::new();
    let mut output_padding = Vec::new();
    for i in 0..2 {
        let (Some(inp), Some(kk), Some(crate::readers::builder::ShapeEntry::Int(out))) =
            (xs[1 + i].fixed(), ks[i].fixed(), want.get(1 + i))
        else {
            return unsupported("transposed convolution with symbolic spatial sizes");
        };
        let (inp, kk, out) = (inp as i64, kk as i64, *out);
        let eff = (kk - 1) * dilations[i] as i64 + 1;
        let full = (inp - 1) * strides[i] as i64 + eff;
        let (before, after) = match &pad_mode {
            Padding::Explicit(p) => (p[i].0 as i64, p[i].1 as i64),
            _ => {
                // The forward convolution's SAME padding for an input of size `out`.
                let total = ((inp - 1) * strides[i] as i64 + eff - out).max(0);
                (total / 2, total - total / 2)
            }
        };
        let extra = out - (full - before - after);
        if extra < 0 || before < 0 || after < 0 {
            return Err(NodeError::Invalid(format!(
                "input_sizes {out} does not fit input {inp}, kernel {kk}, stride {}",
                strides[i]
            )));
        }
        pads.push((before as usize, after as usize));
        output_padding.push(extra as usize);
    }
    let c = Conv {
        layout: Layout::Nhwc,
        kernel_layout: KernelLayout::Hwoi,
        strides,
        dilations,
        padding: Padding::Explicit(pads),
        group: 1,
        output_padding,
    };
    b.emit(&n.name, Op::ConvTranspose(c), vec![x, k])
}

fn matmul(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let m = if n.op() == "MatMul" {
        MatMul {
            transpose_a: n.bool("transpose_a", false),
            transpose_b: n.bool("transpose_b", false),
        }
    } else {
        MatMul {
            transpose_a: n.bool("adj_x", false),
            transpose_b: n.bool("adj_y", false),
        }
    };
    b.emit(&n.name, Op::MatMul(m), vec![n.input(0)?, n.input(1)?])
}

fn bias_add(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let (x, bias) = (n.input(0)?, n.input(1)?);
    let bias = if n.string("data_format", "NHWC") == "NCHW" {
        let rank = b.g.ty(x).rank();
        let mut shape = b.g.ty(bias).shape.clone();
        shape.extend(std::iter::repeat_n(Dim::Fixed(1), rank.saturating_sub(2)));
        reshape_to(b, &format!("{}/bias", n.name), bias, shape)?[0]
    } else {
        bias
    };
    b.emit(&n.name, Op::Binary(BinaryOp::Add), vec![x, bias])
}

fn batch_norm(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    if n.bool("is_training", true) {
        return unsupported("is_training=true (batch statistics)");
    }
    n.require_nhwc()?;
    let ins = (0..5).map(|i| n.input(i)).collect::<NodeResult<Vec<_>>>()?;
    let bn = BatchNorm {
        epsilon: n.float("epsilon", 1e-4),
        layout: Layout::Nhwc,
    };
    // Outputs 1.. (batch statistics, reserve space) are training-only; nothing reads them.
    b.emit(&n.name, Op::BatchNorm(bn), ins)
}

fn softmax(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    if rank == 0 {
        return Err(NodeError::Invalid("softmax of a scalar".into()));
    }
    let s = Softmax {
        axis: rank - 1,
        log: n.op() == "LogSoftmax",
    };
    b.emit(&n.name, Op::Softmax(s), vec![x])
}

fn pool(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    n.require_nhwc()?;
    let x = n.input(0)?;
    if b.g.ty(x).rank() != 4 {
        return unsupported("pooling of other than 4-D input");
    }
    let kernel = spatial_attr(n, "ksize")?;
    let mut p = Pool {
        kind: if n.op() == "MaxPool" {
            PoolKind::Max
        } else {
            PoolKind::Avg
        },
        layout: Layout::Nhwc,
        strides: spatial_attr(n, "strides")?,
        dilations: vec![1, 1],
        padding: padding(n)?,
        ceil_mode: false,
        count_include_pad: false,
        kernel,
    };
    crate::ir::ops::check_window(&p.kernel, &p.strides, &p.dilations)?;
    p.padding = crate::readers::tf_common::resolve_same(
        p.padding,
        &b.g.ty(x).shape[1..3],
        &p.kernel,
        &p.strides,
        &p.dilations,
    );
    b.emit(&n.name, Op::Pool(p), vec![x])
}

/// The reductions; All / Any reduce booleans as int32 minimum / maximum.
fn reduce(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    let kind = match n.op() {
        "Mean" => ReduceKind::Mean,
        "Sum" => ReduceKind::Sum,
        "Max" | "Any" => ReduceKind::Max,
        "Min" | "All" => ReduceKind::Min,
        "EuclideanNorm" => ReduceKind::L2,
        _ => ReduceKind::Prod,
    };
    if matches!(n.op(), "All" | "Any") {
        let ints = Op::Cast(Cast { to: DType::I32 });
        let xi = b.emit1(&format!("{}/int", n.name), ints, vec![x])?;
        let r = reduce_axes(b, n, &format!("{}/reduce", n.name), xi, kind, rank)?;
        return b.emit(&n.name, Op::Cast(Cast { to: DType::Bool }), vec![r]);
    }
    reduce_axes(b, n, &n.name, x, kind, rank).map(|v| vec![v])
}

fn reduce_axes(
    b: &mut GraphBuilder,
    n: &TfNode,
    name: &str,
    x: ValueId,
    kind: ReduceKind,
    rank: usize,
) -> NodeResult<ValueId> {
    let mut axes = const_ints(b, n, 1, "reduction axes")?
        .into_iter()
        .map(|a| norm_axis(a, rank))
        .collect::<Result<Vec<_>, _>>()?;
    axes.sort_unstable();
    axes.dedup();
    if axes.is_empty() {
        return Ok(x);
    }
    let r = Reduce {
        kind,
        axes,
        keep_dims: n.bool("keep_dims", false),
    };
    b.emit1(name, Op::Reduce(r), vec![x])
}

fn arg_reduce(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let axis = match const_ints(b, n, 1, "axis")?.as_slice() {
        [a] => norm_axis(*a, b.g.ty(x).rank())?,
        _ => return Err(NodeError::Invalid("axis must be a scalar".into())),
    };
    let a = ArgReduce {
        max: n.op() == "ArgMax",
        axis,
        keep_dims: false,
        select_last: false,
    };
    let to = n.ir_dtype("output_type", DType::I64)?;
    let idx = b.emit1(&format!("{}/i64", n.name), Op::ArgReduce(a), vec![x])?;
    if to == DType::I64 {
        return Ok(vec![idx]);
    }
    b.emit(&n.name, Op::Cast(Cast { to }), vec![idx])
}

fn einsum(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let e = Einsum {
        equation: n.string("equation", ""),
    };
    b.emit(&n.name, Op::Einsum(e), n.inputs.clone())
}
