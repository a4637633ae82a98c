//! Neural-network builtins: CONV_2D (OHWI kernel), DEPTHWISE_CONV_2D (`[1, H, W, C·M]`, a
//! grouped conv with `group = C`), TRANSPOSE_CONV (output shape given; SAME/VALID made explicit
//! pads), FULLY_CONNECTED (weights `[out, in]` read transposed; without `keep_num_dims` the
//! input is flattened to 2-D first), AVERAGE/MAX/L2_POOL_2D (TF's average and L2 leave padding out),
//! SOFTMAX (`beta` scales the logits), LOG_SOFTMAX, L2_NORMALIZATION, BATCH_MATMUL,
//! the reductions, ARG_MAX/ARG_MIN and DEPTH_TO_SPACE/SPACE_TO_DEPTH.

use super::{fused, Handler, Node};
use crate::ir::ops::{
    check_window, norm_axis, ArgReduce, BinaryOp, Cast, Conv, LpNorm, MatMul, Padding, Pool,
    PoolKind, Reduce, ReduceKind, Softmax, UnaryOp,
};
use crate::ir::{DType, Dim, KernelLayout, Layout, Op, Tensor, ValueId};
use crate::readers::builder::{
    reshape_to, unsupported, GraphBuilder, NodeError, NodeResult, ShapeEntry,
};
use crate::readers::tf_common::norm_select::{self, Lrn};
use crate::readers::tf_common::{apply_fused, resolve_same, Fused};
use tract_tflite::tflite::{BuiltinOperator as B, Padding as TflPadding};

pub fn handler(code: B) -> Option<Handler> {
    Some(match code {
        B::CONV_2D | B::DEPTHWISE_CONV_2D => conv,
        B::TRANSPOSE_CONV => conv_transpose,
        B::FULLY_CONNECTED => fully_connected,
        B::AVERAGE_POOL_2D | B::MAX_POOL_2D | B::L2_POOL_2D => pool,
        B::SOFTMAX | B::LOG_SOFTMAX => softmax,
        B::L2_NORMALIZATION => l2_norm,
        B::BATCH_MATMUL => batch_matmul,
        B::MEAN | B::SUM | B::REDUCE_MAX | B::REDUCE_MIN | B::REDUCE_PROD => reduce,
        B::REDUCE_ANY | B::REDUCE_ALL => reduce_bool,
        B::ARG_MAX | B::ARG_MIN => arg_reduce,
        B::LOCAL_RESPONSE_NORMALIZATION => lrn,
        B::DEPTH_TO_SPACE | B::SPACE_TO_DEPTH => depth_space,
        _ => return None,
    })
}

pub(super) fn padding(p: TflPadding) -> NodeResult<Padding> {
    match p {
        TflPadding::SAME => Ok(Padding::SameUpper),
        TflPadding::VALID => Ok(Padding::Explicit(vec![(0, 0); 2])),
        other => unsupported(format!("padding {}", other.0)),
    }
}

/// Spatial `[h, w]` strides or dilations, each at least 1.
fn pair(h: i32, w: i32, what: &str) -> NodeResult<Vec<usize>> {
    match (usize::try_from(h), usize::try_from(w)) {
        (Ok(h), Ok(w)) if h >= 1 && w >= 1 => Ok(vec![h, w]),
        _ => Err(NodeError::Invalid(format!("{what} ({h}, {w})"))),
    }
}

pub(super) fn fixed_sizes(dims: &[Dim], what: &str) -> NodeResult<Vec<usize>> {
    dims.iter()
        .map(|d| d.fixed().map(|v| v as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| NodeError::Unsupported(format!("symbolic {what}")))
}

fn conv(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let (x, k) = (n.input(0)?, n.input(1)?);
    let (xs, ks) = (b.g.ty(x).shape.clone(), b.g.ty(k).shape.clone());
    if ks.len() != 4 || xs.len() != 4 {
        return Err(NodeError::Invalid("needs 4-D input and filter".into()));
    }
    let (kernel_layout, group, pad, strides, dilations, act) = if n.code == B::CONV_2D {
        let o = n.options(n.op.builtin_options_as_conv_2_doptions(), "Conv2DOptions")?;
        let group = match (xs[3].fixed(), ks[3].fixed()) {
            (Some(c), Some(i)) if i > 0 && c % i == 0 => (c / i) as usize,
            _ => 1,
        };
        let s = pair(o.stride_h(), o.stride_w(), "strides")?;
        let d = pair(o.dilation_h_factor(), o.dilation_w_factor(), "dilations")?;
        (
            KernelLayout::Ohwi,
            group,
            o.padding(),
            s,
            d,
            o.fused_activation_function(),
        )
    } else {
        let o = n.options(
            n.op.builtin_options_as_depthwise_conv_2_doptions(),
            "DepthwiseConv2DOptions",
        )?;
        let group = xs[3]
            .fixed()
            .ok_or_else(|| NodeError::Unsupported("symbolic channel count".into()))?
            as usize;
        let s = pair(o.stride_h(), o.stride_w(), "strides")?;
        let d = pair(o.dilation_h_factor(), o.dilation_w_factor(), "dilations")?;
        (
            KernelLayout::Ihwo,
            group,
            o.padding(),
            s,
            d,
            o.fused_activation_function(),
        )
    };
    let kernel = fixed_sizes(&ks[1..3], "kernel size")?;
    check_window(&kernel, &strides, &dilations)?;
    let padding = resolve_same(padding(pad)?, &xs[1..3], &kernel, &strides, &dilations);
    let c = Conv {
        layout: Layout::Nhwc,
        kernel_layout,
        strides,
        dilations,
        padding,
        group,
        output_padding: vec![],
    };
    let mut inputs = vec![x, k];
    inputs.extend(n.opt(2));
    let act = fused(act)?;
    let y = b.emit1(&format!("{}/conv", n.name), Op::Conv(c), inputs)?;
    apply_fused(b, &n.name, y, act)
}

/// TRANSPOSE_CONV(output_shape, weights [out, h, w, in], input, bias?): the transposed
/// convolution whose output has `output_shape`; SAME is the forward convolution's SAME padding
/// for an input of that size, the rest of the size is output padding.
fn conv_transpose(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_transpose_conv_options(),
        "TransposeConvOptions",
    )?;
    // With a run-time batch the output shape is computed (SHAPE, STRIDED_SLICE, PACK); only
    // its spatial entries matter here.
    let want = b.entries_or_unknown(n.input(0)?).unwrap_or_default();
    let (k, x) = (n.input(1)?, n.input(2)?);
    let (ks, xs) = (b.g.ty(k).shape.clone(), b.g.ty(x).shape.clone());
    if ks.len() != 4 || xs.len() != 4 || want.len() != 4 {
        return Err(NodeError::Invalid(
            "needs 4-D output shape, filter and input".into(),
        ));
    }
    let strides = pair(o.stride_h(), o.stride_w(), "strides")?;
    let kernel = fixed_sizes(&ks[1..3], "kernel size")?;
    let same = padding(o.padding())? == Padding::SameUpper;
    let (mut pads, mut output_padding) = (Vec::new(), Vec::new());
    for i in 0..2 {
        let (before, after, extra) =
            transpose_pads(&xs[1 + i], kernel[i], strides[i], &want[1 + i], same)?;
        pads.push((before, after));
        output_padding.push(extra);
    }
    let c = Conv {
        layout: Layout::Nhwc,
        kernel_layout: KernelLayout::Ohwi,
        strides,
        dilations: vec![1, 1],
        padding: Padding::Explicit(pads),
        group: 1,
        output_padding,
    };
    let act = fused(o.fused_activation_function())?;
    transposed_with_bias(b, n, c, x, k, act)
}

/// The transposed convolution `c` of `x` by `k`, then the optional bias (input 3, after the
/// convolution in TRANSPOSE_CONV and CONV_3D_TRANSPOSE alike) and the fused activation.
pub(super) fn transposed_with_bias(
    b: &mut GraphBuilder,
    n: &Node,
    c: Conv,
    x: ValueId,
    k: ValueId,
    act: Fused,
) -> NodeResult<Vec<ValueId>> {
    let mut y = b.emit1(
        &format!("{}/conv", n.name),
        Op::ConvTranspose(c),
        vec![x, k],
    )?;
    if let Some(bias) = n.opt(3) {
        y = b.emit1(
            &format!("{}/bias", n.name),
            Op::Binary(BinaryOp::Add),
            vec![y, bias],
        )?;
    }
    apply_fused(b, &n.name, y, act)
}

/// `(pad before, pad after, output padding)` of one spatial axis of TRANSPOSE_CONV: the input
/// size `inp`, kernel `k`, stride `s` and the requested output size `out`. SAME is the forward
/// convolution's padding for an input of size `out`; with run-time sizes only SAME's usual
/// `out = inp · s` is known, where that padding is `k − s` whatever the size.
pub(super) fn transpose_pads(
    inp: &Dim,
    k: usize,
    s: usize,
    out: &ShapeEntry,
    same: bool,
) -> NodeResult<(usize, usize, usize)> {
    let (k, s) = (k as i64, s as i64);
    let split = |total: i64| (total / 2, total - total / 2);
    let (before, after, extra) = match (inp.fixed(), out) {
        (Some(inp), ShapeEntry::Int(out)) => {
            let (inp, out) = (inp as i64, *out);
            let full = (inp - 1) * s + k;
            let (before, after) = if same {
                split((full - out).max(0))
            } else {
                (0, 0)
            };
            (before, after, out - (full - before - after))
        }
        (_, ShapeEntry::Sym(_) | ShapeEntry::Int(_))
            if same && entry_is(out, &Dim::product(&[inp.clone(), Dim::Fixed(s as u64)])) =>
        {
            let (before, after) = split((k - s).max(0));
            (before, after, (s - k).max(0))
        }
        _ => return unsupported("output_shape's spatial sizes computed at run time"),
    };
    if extra < 0 || before < 0 {
        return Err(NodeError::Invalid(format!(
            "output size {out:?} does not fit input {inp}, kernel {k}, stride {s}"
        )));
    }
    Ok((before as usize, after as usize, extra as usize))
}

fn entry_is(e: &ShapeEntry, d: &Dim) -> bool {
    match (e, d) {
        (ShapeEntry::Int(v), Dim::Fixed(f)) => *v >= 0 && *v as u64 == *f,
        (ShapeEntry::Sym(a), Dim::Sym(b)) => a == b,
        _ => false,
    }
}

fn fully_connected(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_fully_connected_options(),
        "FullyConnectedOptions",
    )?;
    if o.weights_format().0 != 0 {
        return unsupported("shuffled FULLY_CONNECTED weights");
    }
    let (mut x, w) = (n.input(0)?, n.input(1)?);
    let ws = b.g.ty(w).shape.clone();
    let xs = b.g.ty(x).shape.clone();
    if ws.len() != 2 || xs.is_empty() {
        return Err(NodeError::Invalid("weights must be 2-D".into()));
    }
    let depth = ws[1].clone();
    // With keep_num_dims the kernel requires the last axis to be `in`: a symbolic one is.
    let last_fits = xs.last() == Some(&depth)
        || (o.keep_num_dims() && xs.last().is_some_and(|d| !d.is_fixed()));
    if !last_fits || (!o.keep_num_dims() && xs.len() != 2) {
        // TFLite flattens the input to [-1, in] (keep_num_dims keeps the leading axes).
        let rows = Dim::product(&xs).divide(&depth).ok_or_else(|| {
            NodeError::Invalid(format!("input does not split into rows of {depth}"))
        })?;
        x = reshape_to(b, &format!("{}/flatten", n.name), x, vec![rows, depth])?[0];
    }
    let m = MatMul {
        transpose_a: false,
        transpose_b: true,
    };
    let act = fused(o.fused_activation_function())?;
    let mut y = b.emit1(&format!("{}/matmul", n.name), Op::MatMul(m), vec![x, w])?;
    if let Some(bias) = n.opt(2) {
        y = b.emit1(
            &format!("{}/bias", n.name),
            Op::Binary(BinaryOp::Add),
            vec![y, bias],
        )?;
    }
    apply_fused(b, &n.name, y, act)
}

fn pool(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(n.op.builtin_options_as_pool_2_doptions(), "Pool2DOptions")?;
    let x = n.input(0)?;
    if b.g.ty(x).rank() != 4 {
        return Err(NodeError::Invalid("pooling needs 4-D input".into()));
    }
    let kernel = pair(o.filter_height(), o.filter_width(), "filter size")?;
    let strides = pair(o.stride_h(), o.stride_w(), "strides")?;
    check_window(&kernel, &strides, &[1, 1])?;
    let padding = resolve_same(
        padding(o.padding())?,
        &b.g.ty(x).shape[1..3],
        &kernel,
        &strides,
        &[1, 1],
    );
    // L2_POOL_2D is LiteRT's sqrt of the mean of the squares over the in-bounds cells.
    let l2 = n.code == B::L2_POOL_2D;
    let x = if l2 {
        let sq = Op::Binary(BinaryOp::Mul);
        b.emit1(&format!("{}/square", n.name), sq, vec![x, x])?
    } else {
        x
    };
    let p = Pool {
        kind: if n.code == B::MAX_POOL_2D {
            PoolKind::Max
        } else {
            PoolKind::Avg
        },
        layout: Layout::Nhwc,
        kernel,
        strides,
        dilations: vec![1, 1],
        padding,
        ceil_mode: false,
        count_include_pad: false,
    };
    let act = fused(o.fused_activation_function())?;
    let mut y = b.emit1(&format!("{}/pool", n.name), Op::Pool(p), vec![x])?;
    if l2 {
        y = b.emit1(
            &format!("{}/sqrt", n.name),
            Op::Unary(UnaryOp::Sqrt),
            vec![y],
        )?;
    }
    apply_fused(b, &n.name, y, act)
}

fn softmax(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let mut x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    if rank == 0 {
        return Err(NodeError::Invalid("softmax of a scalar".into()));
    }
    let beta =
        n.op.builtin_options_as_softmax_options()
            .map_or(1.0, |o| o.beta());
    if beta != 1.0 {
        let dt = b.g.ty(x).dtype;
        let c = b.add_const(
            &format!("{}/beta", n.name),
            Tensor::from_f64s(dt, vec![], &[f64::from(beta)]),
        );
        x = b.emit1(
            &format!("{}/scaled", n.name),
            Op::Binary(BinaryOp::Mul),
            vec![x, c],
        )?;
    }
    let s = Softmax {
        axis: rank - 1,
        log: n.code == B::LOG_SOFTMAX,
    };
    b.emit(&n.name, Op::Softmax(s), vec![x])
}

fn l2_norm(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    if rank == 0 {
        return Err(NodeError::Invalid("L2 normalization of a scalar".into()));
    }
    let act =
        n.op.builtin_options_as_l2_norm_options()
            .map_or(Ok(crate::readers::tf_common::Fused::None), |o| {
                fused(o.fused_activation_function())
            })?;
    let op = Op::LpNorm(LpNorm {
        axis: rank - 1,
        p: 2,
    });
    let y = b.emit1(&format!("{}/l2norm", n.name), op, vec![x])?;
    apply_fused(b, &n.name, y, act)
}

fn batch_matmul(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let (adj_x, adj_y) =
        n.op.builtin_options_as_batch_mat_mul_options()
            .map_or((false, false), |o| (o.adj_x(), o.adj_y()));
    let m = MatMul {
        transpose_a: adj_x,
        transpose_b: adj_y,
    };
    b.emit(&n.name, Op::MatMul(m), vec![n.input(0)?, n.input(1)?])
}

fn reduce(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let kind = match n.code {
        B::MEAN => ReduceKind::Mean,
        B::SUM => ReduceKind::Sum,
        B::REDUCE_MAX => ReduceKind::Max,
        B::REDUCE_MIN => ReduceKind::Min,
        _ => ReduceKind::Prod,
    };
    reduce_kind(b, n, kind)
}

/// A reduction over the constant axes of input 1 (ReducerOptions' keep_dims).
fn reduce_kind(b: &mut GraphBuilder, n: &Node, kind: ReduceKind) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    let mut axes = n
        .ints(b, 1, "reduction axes")?
        .into_iter()
        .map(|a| norm_axis(a, rank))
        .collect::<Result<Vec<_>, _>>()?;
    axes.sort_unstable();
    axes.dedup();
    if axes.is_empty() {
        return Ok(vec![x]);
    }
    let keep_dims =
        n.op.builtin_options_as_reducer_options()
            .is_some_and(|o| o.keep_dims());
    b.emit(
        &n.name,
        Op::Reduce(Reduce {
            kind,
            axes,
            keep_dims,
        }),
        vec![x],
    )
}

/// REDUCE_ANY / REDUCE_ALL of booleans: the maximum / minimum of the values as 0/1 integers.
fn reduce_bool(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let name = &n.name;
    let ints = b.emit1(
        &format!("{name}/as_int"),
        Op::Cast(Cast { to: DType::I32 }),
        vec![x],
    )?;
    let kind = if n.code == B::REDUCE_ANY {
        ReduceKind::Max
    } else {
        ReduceKind::Min
    };
    let inner = Node {
        name: format!("{name}/reduce"),
        code: B::REDUCE_MAX,
        op: n.op,
        inputs: vec![Some(ints), n.opt(1)],
        out_dtypes: vec![Some(DType::I32)],
    };
    let r = reduce_kind(b, &inner, kind)?[0];
    b.emit(name, Op::Cast(Cast { to: DType::Bool }), vec![r])
}

/// LOCAL_RESPONSE_NORMALIZATION: TF's LRN (`tf_common::norm_select`).
fn lrn(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_local_response_normalization_options(),
        "LocalResponseNormalizationOptions",
    )?;
    let p = Lrn {
        depth_radius: i64::from(o.radius()),
        bias: f64::from(o.bias()),
        alpha: f64::from(o.alpha()),
        beta: f64::from(o.beta()),
    };
    norm_select::lrn(b, &n.name, n.input(0)?, &p)
}

fn arg_reduce(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let axis = match n.ints(b, 1, "axis")?.as_slice() {
        [a] => norm_axis(*a, b.g.ty(x).rank())?,
        _ => return Err(NodeError::Invalid("axis must hold one value".into())),
    };
    let out = if n.code == B::ARG_MAX {
        n.op.builtin_options_as_arg_max_options()
            .map(|o| o.output_type())
    } else {
        n.op.builtin_options_as_arg_min_options()
            .map(|o| o.output_type())
    };
    let to = match out {
        Some(t) => super::super::tensor::dtype(t)?,
        None => DType::I64,
    };
    let a = ArgReduce {
        max: n.code == B::ARG_MAX,
        axis,
        keep_dims: false,
        select_last: false,
    };
    let idx = b.emit1(&format!("{}/i64", n.name), Op::ArgReduce(a), vec![x])?;
    if to == DType::I64 {
        return Ok(vec![idx]);
    }
    b.emit(&n.name, Op::Cast(Cast { to }), vec![idx])
}

fn depth_space(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let to_space = n.code == B::DEPTH_TO_SPACE;
    let block = if to_space {
        n.options(
            n.op.builtin_options_as_depth_to_space_options(),
            "DepthToSpaceOptions",
        )?
        .block_size()
    } else {
        n.options(
            n.op.builtin_options_as_space_to_depth_options(),
            "SpaceToDepthOptions",
        )?
        .block_size()
    };
    crate::readers::tf_common::index::depth_space(b, &n.name, n.input(0)?, block.into(), to_space)
}
