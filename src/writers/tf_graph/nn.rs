//! Convolutions, matrix products and resizing as TF ops (pooling: `pool.rs`) (NHWC, after
//! `passes::nhwc::legalize`: OHWI kernels, IHWO depthwise kernels, groups split, padding SAME
//! or VALID). TF wants HWIO filters (`[H, W, C, multiplier]` depthwise, `[H, W, out, in]` for
//! Conv2DBackpropInput): constant kernels are rearranged once here, others get a Transpose.
//!
//! Fused forms (tfjs-converter `_FusedConv2D`, `FusedDepthwiseConv2dNative`, `_FusedMatMul`):
//! a bias and one following activation (Relu, Relu6, Elu, LeakyRelu, Sigmoid) join the
//! convolution or rank-2 MatMul when nothing else reads the intermediate values
//! (`fuse_plan`). The executors require exactly one extra argument (the bias) for BiasAdd.

use super::emit::{a_bool, a_float, a_int, a_ints, a_str, a_strs, a_type, Dialect, Gx};
use crate::ir::ops::Padding;
use crate::ir::ops::{Activation, BinaryOp, Conv, UnaryOp};
use crate::ir::{DType, Dim, Graph, KernelLayout, Layout, Node, Op, ValueId};
use crate::passes::nhwc::same_or_valid;
use std::collections::{HashMap, HashSet};

/// What joins a convolution or MatMul node.
#[derive(Clone, Debug, Default)]
pub struct Fused {
    /// A bias from a following Add (1-D constant over the last axis).
    pub bias_add: Option<ValueId>,
    /// The activation's TF name and LeakyRelu alpha.
    pub act: Option<(&'static str, f32)>,
    /// The value the fused node produces.
    pub out: Option<ValueId>,
}

/// The TF `_Fused*` activation an activation node can join the op before it as.
fn fusable_act(op: &Op) -> Option<(&'static str, f32)> {
    match op {
        Op::Unary(u) => match u {
            UnaryOp::Relu => Some(("Relu", 0.2)),
            UnaryOp::Sigmoid => Some(("Sigmoid", 0.2)),
            UnaryOp::Abs
            | UnaryOp::Neg
            | UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Reciprocal
            | UnaryOp::Erf
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round
            | UnaryOp::Sign
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Tan
            | UnaryOp::Asin
            | UnaryOp::Acos
            | UnaryOp::Atan
            | UnaryOp::Sinh
            | UnaryOp::Cosh
            | UnaryOp::Asinh
            | UnaryOp::Acosh
            | UnaryOp::Atanh
            | UnaryOp::Tanh
            | UnaryOp::Softplus
            | UnaryOp::Softsign
            | UnaryOp::Not
            | UnaryOp::IsNaN
            | UnaryOp::Square
            | UnaryOp::BitwiseNot => None,
        },
        Op::Activation(a) => match *a {
            Activation::Clip {
                min: Some(lo),
                max: Some(hi),
            } if lo == 0.0 && hi == 6.0 => Some(("Relu6", 0.2)),
            Activation::Clip {
                min: Some(0.0),
                max: None,
            } => Some(("Relu", 0.2)),
            Activation::Elu { alpha: 1.0 } => Some(("Elu", 0.2)),
            Activation::LeakyRelu { alpha } => Some(("LeakyRelu", alpha)),
            Activation::Clip { .. } | Activation::Elu { .. } => None,
            Activation::Selu { .. }
            | Activation::Celu { .. }
            | Activation::HardSigmoid { .. }
            | Activation::HardSwish
            | Activation::Gelu { .. }
            | Activation::ThresholdedRelu { .. }
            | Activation::Mish
            | Activation::Shrink { .. } => None,
        },
        Op::Binary(_)
        | Op::Where
        | Op::Cast(_)
        | Op::MatMul(_)
        | Op::Einsum(_)
        | Op::Conv(_)
        | Op::ConvTranspose(_)
        | Op::Pool(_)
        | Op::GlobalPool(_)
        | Op::BatchNorm(_)
        | Op::LayerNorm(_)
        | Op::InstanceNorm(_)
        | Op::Softmax(_)
        | Op::Hardmax(_)
        | Op::LpNorm(_)
        | Op::Reshape(_)
        | Op::Transpose(_)
        | Op::Concat(_)
        | Op::Split(_)
        | Op::Slice(_)
        | Op::Pad(_)
        | Op::Tile(_)
        | Op::Expand(_)
        | Op::DepthToSpace(_)
        | Op::SpaceToDepth(_)
        | Op::Resize(_)
        | Op::GridSample(_)
        | Op::Gather(_)
        | Op::GatherElements(_)
        | Op::GatherNd(_)
        | Op::ScatterNd(_)
        | Op::ScatterElements(_)
        | Op::TopK(_)
        | Op::ArgReduce(_)
        | Op::CumSum(_)
        | Op::NonZero
        | Op::OneHot(_)
        | Op::Trilu(_)
        | Op::NonMaxSuppression(_)
        | Op::ShapeOf(_)
        | Op::ConstantOfShape(_)
        | Op::Range
        | Op::Reduce(_)
        | Op::Lstm(_)
        | Op::Gru(_)
        | Op::QuantizeLinear(_)
        | Op::DequantizeLinear(_)
        | Op::DynamicQuantizeLinear
        | Op::ConvInteger(_)
        | Op::MatMulInteger
        | Op::QLinearConv(_)
        | Op::QLinearMatMul
        | Op::Dynamic(_)
        | Op::If(_)
        | Op::Loop(_) => None,
    }
}

/// A 1-D constant of `n` elements (or `[1, .., 1, n]`): a bias over the last axis.
fn bias_of(g: &Graph, v: ValueId, n: Option<u64>) -> bool {
    let Some(t) = g.constant(v) else { return false };
    let Some(n) = n else { return false };
    t.dtype == DType::F32
        && t.len() as u64 == n
        && t.shape.last().copied() == Some(n as usize)
        && t.shape.iter().rev().skip(1).all(|&d| d == 1)
}

/// Which nodes fuse into which: node index → what joins it, and the nodes absorbed. Nothing
/// fuses for plain TF: `_FusedConv2D` and its kin are grappler's internal ops, which a
/// SavedModel's readers (the converters, TF Serving's graph import) need not know.
pub fn fuse_plan(g: &Graph, dialect: Dialect) -> (HashMap<usize, Fused>, HashSet<usize>) {
    if dialect == Dialect::Tf {
        return (HashMap::new(), HashSet::new());
    }
    let uses = g.use_counts();
    let mut consumer: HashMap<ValueId, usize> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for &x in &n.inputs {
            consumer.insert(x, i);
        }
    }
    let sole = |v: ValueId| -> Option<usize> {
        if uses[v.0] == 1 && !g.outputs.contains(&v) {
            consumer.get(&v).copied()
        } else {
            None
        }
    };
    let mut plan = HashMap::new();
    let mut absorbed = HashSet::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let Some(has_bias) = fusable_layer(g, n) else {
            continue;
        };
        let mut f = Fused::default();
        let mut last = n.outputs[0];
        let channels = g.ty(last).shape.last().and_then(Dim::fixed);
        if !has_bias {
            let Some(j) = sole(last) else { continue };
            let add = &g.nodes[j];
            if add.op != Op::Binary(BinaryOp::Add) {
                continue;
            }
            let other = if add.inputs[0] == last {
                add.inputs[1]
            } else {
                add.inputs[0]
            };
            if add.inputs[0] == add.inputs[1] || !bias_of(g, other, channels) {
                continue;
            }
            if g.ty(add.outputs[0]).shape != g.ty(last).shape {
                continue;
            }
            f.bias_add = Some(other);
            absorbed.insert(j);
            last = add.outputs[0];
        }
        if let Some(j) = sole(last) {
            if let Some(a) = fusable_act(&g.nodes[j].op) {
                f.act = Some(a);
                absorbed.insert(j);
                last = g.nodes[j].outputs[0];
            }
        }
        f.out = Some(last);
        plan.insert(i, f);
    }
    (plan, absorbed)
}

/// Whether node `n` is a layer TF fuses a bias and an activation into (`_FusedConv2D`,
/// `_FusedMatMul`), and if so whether it has its own bias input.
fn fusable_layer(g: &Graph, n: &Node) -> Option<bool> {
    Some(match &n.op {
        Op::Conv(c) if conv_kind(g, n, c).is_some() => n.inputs.len() == 3,
        Op::MatMul(_)
            if n.inputs.len() == 2
                && g.ty(n.inputs[0]).rank() == 2
                && g.ty(n.inputs[1]).rank() == 2
                && g.ty(n.outputs[0]).dtype == DType::F32 =>
        {
            false
        }
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Activation(_)
        | Op::Where
        | Op::Cast(_)
        | Op::MatMul(_)
        | Op::Einsum(_)
        | Op::Conv(_)
        | Op::ConvTranspose(_)
        | Op::Pool(_)
        | Op::GlobalPool(_)
        | Op::BatchNorm(_)
        | Op::LayerNorm(_)
        | Op::InstanceNorm(_)
        | Op::Softmax(_)
        | Op::Hardmax(_)
        | Op::LpNorm(_)
        | Op::Reshape(_)
        | Op::Transpose(_)
        | Op::Concat(_)
        | Op::Split(_)
        | Op::Slice(_)
        | Op::Pad(_)
        | Op::Tile(_)
        | Op::Expand(_)
        | Op::DepthToSpace(_)
        | Op::SpaceToDepth(_)
        | Op::Resize(_)
        | Op::GridSample(_)
        | Op::Gather(_)
        | Op::GatherElements(_)
        | Op::GatherNd(_)
        | Op::ScatterNd(_)
        | Op::ScatterElements(_)
        | Op::TopK(_)
        | Op::ArgReduce(_)
        | Op::CumSum(_)
        | Op::NonZero
        | Op::OneHot(_)
        | Op::Trilu(_)
        | Op::NonMaxSuppression(_)
        | Op::ShapeOf(_)
        | Op::ConstantOfShape(_)
        | Op::Range
        | Op::Reduce(_)
        | Op::Lstm(_)
        | Op::Gru(_)
        | Op::QuantizeLinear(_)
        | Op::DequantizeLinear(_)
        | Op::DynamicQuantizeLinear
        | Op::ConvInteger(_)
        | Op::MatMulInteger
        | Op::QLinearConv(_)
        | Op::QLinearMatMul
        | Op::Dynamic(_)
        | Op::If(_)
        | Op::Loop(_) => return None,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ConvKind {
    Plain,
    Depthwise,
}

fn conv_kind(g: &Graph, n: &Node, c: &Conv) -> Option<ConvKind> {
    let x = g.ty(n.inputs[0]);
    if c.layout != Layout::Nhwc || x.rank() != 4 {
        return None;
    }
    let in_c = x.shape[3].fixed()? as usize;
    match c.kernel_layout {
        KernelLayout::Ohwi | KernelLayout::Hwio if c.group == 1 => Some(ConvKind::Plain),
        KernelLayout::Ihwo if c.group == in_c && in_c > 0 => Some(ConvKind::Depthwise),
        _ => None,
    }
}

pub(super) fn nhwc4(v: &[usize]) -> Vec<i64> {
    vec![1, v[0] as i64, v[1] as i64, 1]
}

pub(super) fn pad_name(same: bool) -> &'static str {
    if same {
        "SAME"
    } else {
        "VALID"
    }
}

/// The kernel's spatial sizes (height and width of a 2-D convolution's kernel).
fn spatial_kernel(g: &Graph, k: ValueId, layout: KernelLayout) -> Result<Vec<usize>, String> {
    let s = &g.ty(k).shape;
    s[layout.spatial_axes(s.len())]
        .iter()
        .map(|d| {
            d.fixed()
                .map(|n| n as usize)
                .ok_or("kernel sizes must be fixed".to_string())
        })
        .collect()
}

/// The kernel in TF's layout: an HWIO constant as it is (`layout::hwio_kernels` moved it), an
/// OHWI/IHWO constant rearranged once, else a Transpose/Reshape node.
fn tf_filter(
    gx: &mut Gx,
    k: ValueId,
    layout: KernelLayout,
    kind: ConvKind,
    (out_c, in_c): (usize, usize),
) -> Result<String, String> {
    let g = gx.g;
    let kt = g.ty(k).clone();
    let dims: Vec<usize> = crate::ir::shape_fixed(&kt.shape).ok_or("kernel shape must be fixed")?;
    match (kind, g.constant(k)) {
        (ConvKind::Plain, Some(t)) if layout == KernelLayout::Hwio => {
            gx.konst(&format!("{}/filter", gx.base), t.clone())
        }
        // Computed from an HWIO constant (a quantized kernel's dequantization): already TF's.
        (ConvKind::Plain, None) if layout == KernelLayout::Hwio => gx.r(k),
        (ConvKind::Plain, Some(t)) => {
            let moved = gx.transposed(t, &[1, 2, 3, 0]);
            gx.konst(&format!("{}/filter", gx.base), moved)
        }
        (ConvKind::Depthwise, Some(t)) => {
            let m = out_c / in_c;
            gx.konst(
                &format!("{}/filter", gx.base),
                t.reshaped(vec![dims[1], dims[2], in_c, m]),
            )
        }
        (ConvKind::Plain, None) => {
            let x = gx.r(k)?;
            let perm = gx.ints("perm", &[1, 2, 3, 0])?;
            Ok(gx.node(
                "filter",
                "Transpose",
                vec![x, perm],
                vec![("T", a_type(kt.dtype))],
            ))
        }
        (ConvKind::Depthwise, None) => {
            let x = gx.r(k)?;
            let shape = gx.ints(
                "filter_shape",
                &[
                    dims[1] as i64,
                    dims[2] as i64,
                    in_c as i64,
                    (out_c / in_c) as i64,
                ],
            )?;
            Ok(gx.node(
                "filter",
                "Reshape",
                vec![x, shape],
                vec![("T", a_type(kt.dtype))],
            ))
        }
    }
}

/// Appends the fused activation (or the BiasAdd and activation) of a node emitted unfused.
pub(super) fn finish(
    gx: &mut Gx,
    mut y: String,
    bias: Option<String>,
    act: Option<(&'static str, f32)>,
    dtype: DType,
) -> String {
    if let Some(b) = bias {
        y = gx.node(
            "bias",
            "BiasAdd",
            vec![y, b],
            vec![("T", a_type(dtype)), ("data_format", a_str("NHWC"))],
        );
    }
    if let Some((name, alpha)) = act {
        let mut attrs = vec![("T", a_type(dtype))];
        if name == "LeakyRelu" {
            attrs.push(("alpha", a_float(alpha)));
        }
        y = gx.node("act", name, vec![y], attrs);
    }
    y
}

pub fn conv(gx: &mut Gx, n: &Node, c: &Conv, fused: Option<&Fused>) -> Result<(), String> {
    let g = gx.g;
    if g.ty(n.inputs[0]).rank() == 5 && c.layout == Layout::Nhwc {
        return super::conv3d::conv(gx, n, c);
    }
    let kind = conv_kind(g, n, c).ok_or_else(|| {
        if c.group > 1 {
            "grouped convolution that is not depthwise (legalization splits these)".to_string()
        } else {
            format!("only NHWC 2-D convolutions with OHWI/IHWO kernels are written (got {:?} data, {} kernel)", c.layout, c.kernel_layout)
        }
    })?;
    if c.strides.iter().any(|&s| s > 1) && c.dilations.iter().any(|&d| d > 1) {
        return Err("TF.js convolutions take strides > 1 or dilations > 1, not both".into());
    }
    let x_ty = g.ty(n.inputs[0]).clone();
    let ks = spatial_kernel(g, n.inputs[1], c.kernel_layout)?;
    let same = same_or_valid(&c.padding, &x_ty.shape[1..3], &ks, &c.strides, &c.dilations)
        .ok_or("padding other than SAME or VALID (legalization pads explicitly first)")?;
    let out_ty = g.ty(n.outputs[0]).clone();
    let in_c = x_ty.shape[3].fixed().unwrap_or(1) as usize;
    let out_c = out_ty.shape[3]
        .fixed()
        .ok_or("output channels must be fixed")? as usize;
    let x = gx.r(n.inputs[0])?;
    let filter = tf_filter(gx, n.inputs[1], c.kernel_layout, kind, (out_c, in_c))?;
    let bias = match (n.inputs.get(2), fused.and_then(|f| f.bias_add)) {
        (Some(&b), _) | (None, Some(b)) => Some(gx.r(b)?),
        (None, None) => None,
    };
    let act = fused.and_then(|f| f.act);
    let mut attrs = vec![
        ("T", a_type(out_ty.dtype)),
        ("strides", a_ints(&nhwc4(&c.strides))),
        ("padding", a_str(pad_name(same))),
        ("data_format", a_str("NHWC")),
        ("dilations", a_ints(&nhwc4(&c.dilations))),
        ("explicit_paddings", a_ints(&[])),
    ];
    let plain = if kind == ConvKind::Plain {
        "Conv2D"
    } else {
        "DepthwiseConv2dNative"
    };
    let y = match bias {
        Some(b) if fused.is_some() && out_ty.dtype == DType::F32 => {
            let op = if kind == ConvKind::Plain {
                "_FusedConv2D"
            } else {
                "FusedDepthwiseConv2dNative"
            };
            let ops: Vec<&str> = match act {
                Some((a, _)) => vec!["BiasAdd", a],
                None => vec!["BiasAdd"],
            };
            attrs.push(("num_args", a_int(1)));
            attrs.push(("fused_ops", a_strs(&ops)));
            attrs.push(("epsilon", a_float(0.0)));
            attrs.push(("leakyrelu_alpha", a_float(act.map_or(0.2, |a| a.1))));
            if kind == ConvKind::Plain {
                attrs.push(("use_cudnn_on_gpu", a_bool(true)));
            }
            gx.node("", op, vec![x, filter, b], attrs)
        }
        b => {
            let y = gx.node("conv", plain, vec![x, filter], attrs);
            finish(gx, y, b, act, out_ty.dtype)
        }
    };
    let out = fused.and_then(|f| f.out).unwrap_or(n.outputs[0]);
    gx.bind(out, y);
    Ok(())
}

pub fn conv_transpose(gx: &mut Gx, n: &Node, c: &Conv) -> Result<(), String> {
    let g = gx.g;
    let x_ty = g.ty(n.inputs[0]).clone();
    if c.layout != Layout::Nhwc
        || !(x_ty.rank() == 4 || x_ty.rank() == 5)
        || c.kernel_layout != KernelLayout::Ohwi
        || c.group != 1
    {
        return Err(
            "only ungrouped NHWC 2-D and 3-D transposed convolutions with OHWI kernels are written"
                .into(),
        );
    }
    let nsp = x_ty.rank() - 2;
    if nsp == 3 && gx.dialect == Dialect::Tfjs {
        return Err(
            "TF.js has no 3-D transposed convolution (Conv3DBackpropInputV2) in graph models"
                .into(),
        );
    }
    if c.dilations.iter().any(|&d| d != 1) {
        return Err("TF.js Conv2DBackpropInput has no dilation".into());
    }
    let k_ty = g.ty(n.inputs[1]).clone();
    let out_ty = g.ty(n.outputs[0]).clone();
    let mut full = out_ty.shape.clone();
    let mut crop = vec![0usize; nsp];
    let mut same = true;
    for i in 0..nsp {
        let k = k_ty.shape[1 + i].fixed().unwrap_or(1) as usize;
        let s = c.strides[i];
        let begin = match &c.padding {
            Padding::Explicit(p) => p[i].0,
            Padding::SameUpper => k.saturating_sub(s) / 2,
            Padding::SameLower => k.saturating_sub(s).div_ceil(2),
        };
        let Some(n_in) = x_ty.shape[1 + i].fixed().map(|n| n as usize) else {
            // A run-time size: the SAME form only, whose output is stride × input (its
            // input_sizes operand is computed from the input's shape).
            let want = Dim::product(&[Dim::Fixed(s as u64), x_ty.shape[1 + i].clone()]);
            if out_ty.shape[1 + i] != want || begin != k.saturating_sub(s) / 2 {
                return Err(
                    "a transposed convolution at a run-time size is written only when \
                            its output is stride × input (SAME padding)"
                        .into(),
                );
            }
            crop[i] = begin;
            continue;
        };
        let out = out_ty.shape[1 + i]
            .fixed()
            .ok_or("spatial sizes must be fixed")? as usize;
        if !(out == n_in * s && begin == k.saturating_sub(s) / 2) {
            same = false;
        }
        crop[i] = begin;
        full[1 + i] = Dim::Fixed(((n_in.saturating_sub(1) * s + k).max(begin + out)) as u64);
    }
    let target = if same {
        out_ty.shape.clone()
    } else {
        full.clone()
    };
    let direct = same || (crop.iter().all(|&c| c == 0) && full == out_ty.shape);
    let x = gx.r(n.inputs[0])?;
    // TF's filter is `[spatial..., out, in]`.
    let perm: &[usize] = if nsp == 3 {
        &[1, 2, 3, 0, 4]
    } else {
        &[1, 2, 0, 3]
    };
    let filter = match g.constant(n.inputs[1]) {
        Some(t) => {
            let moved = gx.transposed(t, perm);
            gx.konst(&format!("{}/filter", gx.base), moved)?
        }
        None => {
            let k = gx.r(n.inputs[1])?;
            let p: Vec<i64> = perm.iter().map(|&p| p as i64).collect();
            let perm = gx.ints("perm", &p)?;
            gx.node("filter", "Transpose", vec![k, perm], vec![])
        }
    };
    let sizes = gx.dims("output_shape", &target, &[n.inputs[0]], false)?;
    let tag = if direct { "" } else { "full" };
    let mut y = if nsp == 3 {
        let ones = a_ints(&[1; 5]);
        let strides = a_ints(&super::conv3d::ndhwc(&c.strides));
        let attrs = vec![
            ("T", a_type(out_ty.dtype)),
            ("strides", strides),
            ("padding", a_str(pad_name(same))),
            ("data_format", a_str("NDHWC")),
            ("dilations", ones),
            ("Tshape", a_type(DType::I32)),
        ];
        gx.node(tag, "Conv3DBackpropInputV2", vec![sizes, filter, x], attrs)
    } else {
        gx.node(
            tag,
            "Conv2DBackpropInput",
            vec![sizes, filter, x],
            vec![
                ("T", a_type(out_ty.dtype)),
                ("strides", a_ints(&nhwc4(&c.strides))),
                ("padding", a_str(pad_name(same))),
                ("data_format", a_str("NHWC")),
                ("dilations", a_ints(&[1, 1, 1, 1])),
                ("explicit_paddings", a_ints(&[])),
            ],
        )
    };
    if !direct {
        let mut begin = vec![0];
        begin.extend(crop.iter().map(|&c| c as i64));
        begin.push(0);
        let begin = gx.ints("crop_begin", &begin)?;
        let size: Vec<i64> = out_ty
            .shape
            .iter()
            .map(|d| d.fixed().map_or(-1, |n| n as i64))
            .collect();
        let size = gx.ints("crop_size", &size)?;
        y = gx.node(
            "crop",
            "Slice",
            vec![y, begin, size],
            vec![("T", a_type(out_ty.dtype))],
        );
    }
    if let Some(&b) = n.inputs.get(2) {
        let b = gx.r(b)?;
        y = finish(gx, y, Some(b), None, out_ty.dtype);
    }
    gx.bind(n.outputs[0], y);
    Ok(())
}

pub fn matmul(
    gx: &mut Gx,
    n: &Node,
    ta: bool,
    tb: bool,
    fused: Option<&Fused>,
) -> Result<(), String> {
    let g = gx.g;
    let (ra, rb) = (g.ty(n.inputs[0]).rank(), g.ty(n.inputs[1]).rank());
    let dtype = g.ty(n.outputs[0]).dtype;
    let mut a = gx.r(n.inputs[0])?;
    let mut b = gx.r(n.inputs[1])?;
    if ra < 2 || rb < 2 {
        // numpy's vector cases: a [K] is [1, K], b [K] is [K, 1], and the unit axis goes away.
        if ra == 0 || rb == 0 || (ra == 1 && ta) || (rb == 1 && tb) {
            return Err("MatMul of a scalar or a transposed vector".into());
        }
        let t = ("T", a_type(dtype));
        if ra == 1 {
            let axis = gx.int("axis0", 0)?;
            a = gx.node("a_row", "ExpandDims", vec![a, axis], vec![t.clone()]);
        }
        if rb == 1 {
            let axis = gx.int("axis_last", -1)?;
            b = gx.node("b_col", "ExpandDims", vec![b, axis], vec![t.clone()]);
        }
        let op = if ra.max(2) == 2 && rb.max(2) == 2 {
            "MatMul"
        } else {
            "BatchMatMulV2"
        };
        let attrs = if op == "MatMul" {
            vec![
                t.clone(),
                ("transpose_a", a_bool(ta)),
                ("transpose_b", a_bool(tb)),
            ]
        } else {
            vec![t.clone(), ("adj_x", a_bool(ta)), ("adj_y", a_bool(tb))]
        };
        let y = gx.node("product", op, vec![a, b], attrs);
        let out_shape = g.ty(n.outputs[0]).shape.clone();
        let shape = gx.dims("shape", &out_shape, &[n.inputs[0], n.inputs[1]], true)?;
        let y = gx.node("", "Reshape", vec![y, shape], vec![t]);
        gx.bind(n.outputs[0], y);
        return Ok(());
    }
    let y = if ra == 2 && rb == 2 {
        let base = vec![
            ("T", a_type(dtype)),
            ("transpose_a", a_bool(ta)),
            ("transpose_b", a_bool(tb)),
        ];
        match fused.and_then(|f| f.bias_add.map(|b| (b, f.act))) {
            Some((bias, act)) => {
                let bias_t = g.constant(bias).ok_or("bias must be constant")?;
                let c = bias_t.reshaped(vec![bias_t.len()]);
                let bias = gx.konst(&g.value(bias).name, c)?;
                let ops: Vec<&str> = match act {
                    Some((a, _)) => vec!["BiasAdd", a],
                    None => vec!["BiasAdd"],
                };
                let mut attrs = base;
                attrs.push(("num_args", a_int(1)));
                attrs.push(("fused_ops", a_strs(&ops)));
                attrs.push(("epsilon", a_float(0.0)));
                attrs.push(("leakyrelu_alpha", a_float(act.map_or(0.2, |a| a.1))));
                gx.node("", "_FusedMatMul", vec![a, b, bias], attrs)
            }
            None => {
                let y = gx.node("", "MatMul", vec![a, b], base);
                finish(gx, y, None, fused.and_then(|f| f.act), dtype)
            }
        }
    } else {
        gx.node(
            "",
            "BatchMatMulV2",
            vec![a, b],
            vec![
                ("T", a_type(dtype)),
                ("adj_x", a_bool(ta)),
                ("adj_y", a_bool(tb)),
            ],
        )
    };
    let out = fused.and_then(|f| f.out).unwrap_or(n.outputs[0]);
    gx.bind(out, y);
    Ok(())
}
