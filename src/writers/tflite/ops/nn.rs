//! Neural-network ops: CONV_2D-1 (OHWI weights, bias always given), DEPTHWISE_CONV_2D-1/2
//! (1HWO weights, depth multiplier), TRANSPOSE_CONV-1/3/4 (output_shape input; explicit pads
//! other than SAME become a VALID transpose conv and a STRIDED_SLICE), AVERAGE/MAX_POOL_2D-1,
//! MEAN/REDUCE_MAX for global pooling, FULLY_CONNECTED-1/5 (weights `[out, in]`; a MatMul with
//! `transpose_b` already holds them so, otherwise they are transposed once), BATCH_MATMUL-1,
//! SOFTMAX/LOG_SOFTMAX-1 (last axis; legalize moves other axes there), RESIZE_BILINEAR and
//! RESIZE_NEAREST_NEIGHBOR-1/3, DEPTH_TO_SPACE/SPACE_TO_DEPTH-1.
//!
//! Padding: TFLite has only SAME (extra at the end, TF's rule) and VALID; explicit pads equal
//! to SAME's for the input size are written as SAME, other pads were made Pad ops by legalize.

use super::super::plan::{Cx, Opts};
use crate::ir::ops::{
    Conv, CoordTransform, DepthToSpace, DepthToSpaceMode, GlobalPool, MatMul, NearestRounding,
    Padding, Pool, PoolKind, Resize, ResizeMode, Softmax, SpaceToDepth,
};
use crate::ir::{DType, Dim, Graph, KernelLayout, Layout, Node, Op, TensorType, ValueId};
use crate::passes::nhwc::{probe_conv, same_or_valid};
use std::collections::HashMap;
use tract_tflite::tflite::BuiltinOperator as B;

/// A MatMul that FULLY_CONNECTED can run: constant 2-D f32 weights, no transposed `a`.
/// Returns the weights and whether they must be transposed to `[out, in]`.
pub fn fc_weights(
    g: &Graph,
    producers: &HashMap<ValueId, usize>,
    n: &Node,
) -> Option<(ValueId, bool)> {
    let Op::MatMul(m) = &n.op else { return None };
    let (&a, &b) = (n.inputs.first()?, n.inputs.get(1)?);
    let w = g.ty(b);
    // Constant weights, or quantized ones already stored [out, in] (the quantization pass
    // lays them out so; a computed tensor cannot be transposed here).
    let weights = match g.constant(b) {
        Some(_) => true,
        None => m.transpose_b && dequantized_const(g, producers, b),
    };
    let ok = weights
        && !m.transpose_a
        && w.rank() == 2
        && w.dtype == DType::F32
        && g.ty(a).dtype == DType::F32
        && g.ty(a).rank() >= 2;
    ok.then_some((b, !m.transpose_b))
}

/// Whether `v` is a DequantizeLinear of a constant, or a Cast of a float16 constant: quantized
/// weights, which TFLite kernels take in place of float constants.
pub fn dequantized_const(g: &Graph, producers: &HashMap<ValueId, usize>, v: ValueId) -> bool {
    producers.get(&v).is_some_and(|&p| {
        let n = &g.nodes[p];
        match n.op {
            Op::DequantizeLinear(_) => g.constant(n.inputs[0]).is_some(),
            Op::Cast(_) => g
                .constant(n.inputs[0])
                .is_some_and(|t| t.dtype == DType::F16),
            _ => false,
        }
    })
}

pub fn matmul(cx: &mut Cx, m: &MatMul) -> Result<(), String> {
    if let Some((w, transpose)) = fc_weights(cx.g, cx.producers, cx.node) {
        let weights = match cx.g.constant(w) {
            Some(t) if transpose => cx.konst("weights", t.transposed(&[1, 0])),
            _ => cx.read(w),
        };
        let keep = cx.ty(0)?.rank() > 2;
        let hybrid = cx.is_hybrid();
        let (x, y, act) = (cx.x(0)?, cx.out(0), cx.act());
        let bias = cx.fused.bias.map(|b| cx.read(b));
        cx.emit(
            B::FULLY_CONNECTED,
            Opts::FullyConnected {
                act,
                keep_num_dims: keep,
                asymmetric: hybrid,
            },
            vec![Some(x), Some(weights), bias],
            vec![y],
        );
        return Ok(());
    }
    if cx.ty(0)?.rank() < 2 || cx.ty(1)?.rank() < 2 {
        return Err("BATCH_MATMUL needs operands of rank 2 or more".into());
    }
    let (a, b, y) = (cx.x(0)?, cx.x(1)?, cx.out(0));
    cx.emit(
        B::BATCH_MATMUL,
        Opts::BatchMatMul {
            adj_x: m.transpose_a,
            adj_y: m.transpose_b,
        },
        vec![Some(a), Some(b)],
        vec![y],
    );
    Ok(())
}

/// SAME (true) or VALID (false) for this padding on an input with `spatial` sizes.
fn pair(v: &[usize]) -> [i32; 2] {
    [
        v.first().copied().unwrap_or(1) as i32,
        v.get(1).copied().unwrap_or(1) as i32,
    ]
}

fn check_2d(cx: &Cx, layout: Layout, what: &str) -> Result<(), String> {
    if cx.ty(0)?.rank() != 4 || layout != Layout::Nhwc {
        return Err(format!(
            "{what}: only 2-D NHWC is supported, got {} {layout}",
            cx.ty(0)?
        ));
    }
    Ok(())
}

pub fn conv(cx: &mut Cx, c: &Conv) -> Result<(), String> {
    if cx.ty(0)?.rank() == 5 && c.layout == Layout::Nhwc {
        return super::conv3d::conv(cx, c);
    }
    check_2d(cx, c.layout, "convolution")?;
    if !matches!(c.kernel_layout, KernelLayout::Ohwi | KernelLayout::Ihwo) {
        return Err(format!(
            "kernel layout {} (legalize gives OHWI, or IHWO for depthwise)",
            c.kernel_layout
        ));
    }
    let x_ty = cx.ty(0)?.clone();
    let k_ty = cx.ty(1)?.clone();
    let ks: Vec<usize> = k_ty.shape[1..3]
        .iter()
        .map(|d| d.fixed().unwrap_or(0) as usize)
        .collect();
    let same = same_or_valid(&c.padding, &x_ty.shape[1..3], &ks, &c.strides, &c.dilations)
        .ok_or("explicit padding other than SAME/VALID (legalize pads it first)")?;
    let out_c = c
        .kernel_dims(&k_ty.shape)?
        .0
        .fixed()
        .ok_or("output channels must be fixed")? as usize;
    let bias = match cx.node.inputs.get(2) {
        Some(&b) => cx.read(b),
        None => cx.zero_bias(out_c),
    };
    let (stride, dilation, act) = (pair(&c.strides), pair(&c.dilations), cx.act());
    let (x, y) = (cx.x(0)?, cx.out(0));
    if c.group == 1 && c.kernel_layout == KernelLayout::Ohwi {
        let k = cx.x(1)?;
        cx.emit(
            B::CONV_2D,
            Opts::Conv {
                same,
                stride,
                dilation,
                act,
            },
            vec![Some(x), Some(k), Some(bias)],
            vec![y],
        );
        return Ok(());
    }
    let in_c = x_ty.shape[3].fixed().unwrap_or(0) as usize;
    let one_input = match c.kernel_layout {
        KernelLayout::Ihwo => k_ty.shape[0] == Dim::Fixed(1),
        _ => k_ty.shape[3] == Dim::Fixed(1),
    };
    if c.group != in_c || !one_input {
        return Err(format!(
            "grouped convolution ({} groups of {in_c} channels) is split by legalize",
            c.group
        ));
    }
    // The layout pass gives depthwise kernels as IHWO = 1HWO already (one copy of the weights);
    // an OHWI kernel (a depthwise conv the pass did not recognise) is moved here. An IHWO
    // kernel may be computed (a DEQUANTIZE of float16 or int8 weights).
    let k = if c.kernel_layout == KernelLayout::Ihwo {
        cx.x(1)?
    } else {
        let Some(k) = cx.konst_in(1) else {
            return Err("depthwise kernel must be a constant".into());
        };
        let (o, h, w) = (k.shape[0], k.shape[1], k.shape[2]);
        let moved = k
            .reshaped(vec![o, h, w])
            .transposed(&[1, 2, 0])
            .reshaped(vec![1, h, w, o]);
        cx.konst("depthwise_kernel", moved)
    };
    cx.emit(
        B::DEPTHWISE_CONV_2D,
        Opts::Depthwise {
            same,
            stride,
            dilation,
            multiplier: (out_c / in_c.max(1)) as i32,
            act,
        },
        vec![Some(x), Some(k), Some(bias)],
        vec![y],
    );
    Ok(())
}

/// TRANSPOSE_CONV, or CONV_3D_TRANSPOSE for a 5-D input (its filter `[D, H, W, out, in]` moved
/// from legalize's OHWI).
pub fn conv_transpose(cx: &mut Cx, c: &Conv) -> Result<(), String> {
    let rank = cx.ty(0)?.rank();
    if rank == 5 && c.layout == Layout::Nhwc {
        return conv_transpose_n(cx, c, 3);
    }
    check_2d(cx, c.layout, "transposed convolution")?;
    conv_transpose_n(cx, c, 2)
}

fn conv_transpose_n(cx: &mut Cx, c: &Conv, nsp: usize) -> Result<(), String> {
    if c.kernel_layout != KernelLayout::Ohwi || c.group != 1 {
        return Err("only ungrouped OHWI transposed convolutions are supported".into());
    }
    if c.dilations.iter().any(|&d| d != 1) {
        return Err("TRANSPOSE_CONV has no dilation".into());
    }
    let x = cx.input(0)?;
    let x_ty = cx.ty(0)?.clone();
    let k_ty = cx.ty(1)?.clone();
    let out_ty = cx.out_ty(0).clone();
    let mut full = out_ty.shape.clone();
    let mut crop = vec![0usize; nsp];
    let mut same = true;
    for i in 0..nsp {
        let (k, s) = (
            k_ty.shape[1 + i].fixed().unwrap_or(1) as usize,
            c.strides[i],
        );
        let begin = match &c.padding {
            Padding::Explicit(p) => p[i].0,
            Padding::SameUpper => (k.saturating_sub(s)) / 2,
            Padding::SameLower => k.saturating_sub(s).div_ceil(2),
        };
        let Some(n_in) = x_ty.shape[1 + i].fixed().map(|n| n as usize) else {
            // A run-time size: the SAME form only, whose output is stride × input (the
            // output_shape operand is then computed from the input's shape).
            let want = Dim::product(&[Dim::Fixed(s as u64), x_ty.shape[1 + i].clone()]);
            if out_ty.shape[1 + i] != want || begin != k.saturating_sub(s) / 2 {
                return Err(
                    "a transposed convolution at a run-time size is written only when \
                            its output is stride × input (TFLite SAME padding)"
                        .into(),
                );
            }
            crop[i] = begin;
            continue;
        };
        let out = out_ty.shape[1 + i].fixed().unwrap_or(0) as usize;
        if !(out == n_in * s && begin == k.saturating_sub(s) / 2) {
            same = false;
        }
        crop[i] = begin;
        let valid_full = (n_in - 1) * s + k;
        full[1 + i] = Dim::Fixed(valid_full.max(begin + out) as u64);
    }
    // As this node reads them: a folded DequantizeLinear output has no tensor of its own.
    let bias = cx.node.inputs.get(2).map(|&b| cx.read(b));
    let weights = if nsp == 3 {
        super::conv3d::moved_kernel(cx, &[1, 2, 3, 0, 4])?
    } else {
        cx.x(1)?
    };
    let act = cx.act();
    let (target, direct) = if same {
        (out_ty.shape.clone(), true)
    } else {
        let direct = crop.iter().all(|&c| c == 0) && full == out_ty.shape;
        (full.clone(), direct)
    };
    let shape = cx.dims_operand("output_shape", &target, &[x], false)?;
    let y = if direct {
        cx.out(0)
    } else {
        cx.temp("full", TensorType::new(out_ty.dtype, full.clone()))
    };
    let (code, opts) = if nsp == 3 {
        let opts = super::conv3d::options(same, &c.strides, &c.dilations, act);
        (B::CONV_3D_TRANSPOSE, opts)
    } else {
        let opts = Opts::TransposeConv {
            same,
            stride: pair(&c.strides),
            act,
        };
        (B::TRANSPOSE_CONV, opts)
    };
    cx.emit(
        code,
        opts,
        vec![Some(shape), Some(weights), Some(cx.read(x)), bias],
        vec![y],
    );
    if !direct {
        let mut begin = vec![0];
        begin.extend(crop.iter().map(|&c| c as i32));
        begin.push(0);
        let begin = cx.i32_vec("crop_begin", &begin);
        let sizes: Vec<i32> = out_ty
            .shape
            .iter()
            .map(|d| d.fixed().map_or(-1, |n| n as i32))
            .collect();
        let size = cx.i32_vec("crop_size", &sizes);
        let out = cx.out(0);
        cx.emit(
            B::SLICE,
            Opts::None,
            vec![Some(y), Some(begin), Some(size)],
            vec![out],
        );
    }
    Ok(())
}

pub fn pool(cx: &mut Cx, p: &Pool) -> Result<(), String> {
    check_2d(cx, p.layout, "pooling")?;
    if p.dilations.iter().any(|&d| d != 1) {
        return Err("TFLite pooling has no dilation".into());
    }
    let x_ty = cx.ty(0)?.clone();
    let same = same_or_valid(
        &p.padding,
        &x_ty.shape[1..3],
        &p.kernel,
        &p.strides,
        &[1, 1],
    )
    .ok_or("explicit padding other than SAME/VALID (legalize pads it first)")?;
    let code = match p.kind {
        PoolKind::Max => B::MAX_POOL_2D,
        PoolKind::Avg if same && p.count_include_pad && has_padding(p, &x_ty.shape) => {
            return Err("average pooling counting SAME padding cells".into())
        }
        PoolKind::Avg => B::AVERAGE_POOL_2D,
        PoolKind::L2 => return Err("L2 pooling is not mapped".into()),
    };
    if p.ceil_mode {
        let want = cx.out_ty(0).shape.clone();
        let floor_ty = crate::ir::ops::infer_pool(
            &Pool {
                ceil_mode: false,
                ..p.clone()
            },
            &crate::ir::ops::Inputs::of_types(std::slice::from_ref(&x_ty)),
        )?;
        if floor_ty[0].shape != want {
            return Err("ceil_mode adds a window (legalize pads it first)".into());
        }
    }
    let (x, y, act) = (cx.x(0)?, cx.out(0), cx.act());
    cx.emit(
        code,
        Opts::Pool {
            same,
            stride: pair(&p.strides),
            filter: pair(&p.kernel),
            act,
        },
        vec![Some(x)],
        vec![y],
    );
    Ok(())
}

fn has_padding(p: &Pool, shape: &[Dim]) -> bool {
    let c = probe_conv(Padding::SameUpper, &p.strides, &[1, 1]);
    c.explicit_pads(&shape[1..3], &p.kernel)
        .is_none_or(|pads| pads.iter().any(|&(b, e)| b + e > 0))
}

pub fn global_pool(cx: &mut Cx, p: &GlobalPool) -> Result<(), String> {
    check_2d(cx, p.layout, "global pooling")?;
    let code = match p.kind {
        PoolKind::Avg => B::MEAN,
        PoolKind::Max => B::REDUCE_MAX,
        PoolKind::L2 => return Err("global L2 pooling is not mapped".into()),
    };
    let axes = cx.i32_vec("axes", &[1, 2]);
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(
        code,
        Opts::Reducer { keep_dims: true },
        vec![Some(x), Some(axes)],
        vec![y],
    );
    Ok(())
}

pub fn softmax(cx: &mut Cx, s: &Softmax) -> Result<(), String> {
    if s.axis + 1 != cx.ty(0)?.rank() {
        return Err("softmax over an inner axis (legalize transposes it last)".into());
    }
    if s.log {
        cx.unary(B::LOG_SOFTMAX)
    } else {
        let (x, y) = (cx.x(0)?, cx.out(0));
        cx.emit(B::SOFTMAX, Opts::Softmax, vec![Some(x)], vec![y]);
        Ok(())
    }
}

pub fn resize(cx: &mut Cx, r: &Resize) -> Result<(), String> {
    check_2d(cx, r.layout, "resize")?;
    let x_ty = cx.ty(0)?.clone();
    let out = cx.out_ty(0).clone();
    if out.shape[0] != x_ty.shape[0] || out.shape[3] != x_ty.shape[3] {
        return Err("resize changes the batch or channel axis".into());
    }
    let size: Vec<i32> = out.shape[1..3]
        .iter()
        .map(|d| d.fixed().map(|n| n as i32))
        .collect::<Option<_>>()
        .ok_or("output size must be fixed")?;
    let (code, opts) = resize_builtin(r, Some(size.iter().all(|&n| n > 1)))?;
    let size = cx.i32_vec("size", &size);
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(code, opts, vec![Some(x), Some(size)], vec![y]);
    Ok(())
}

/// The RESIZE_* builtin and options computing `r` (NHWC, 2-D), if one does. `every_side_over_1`
/// is whether each output side is longer than 1 (unknown for a size computed at run time):
/// PyTorch's half-pixel mapping only differs from the plain one for a side of 1.
pub fn resize_builtin(r: &Resize, every_side_over_1: Option<bool>) -> Result<(B, Opts), String> {
    let (code, align_corners, half_pixel) = match (r.mode, r.coord, r.nearest) {
        (ResizeMode::Linear, CoordTransform::HalfPixel, _) => (B::RESIZE_BILINEAR, false, true),
        (ResizeMode::Linear, CoordTransform::PytorchHalfPixel, _)
            if every_side_over_1 == Some(true) =>
        {
            (B::RESIZE_BILINEAR, false, true)
        }
        (ResizeMode::Linear, CoordTransform::AlignCorners, _) => (B::RESIZE_BILINEAR, true, false),
        (ResizeMode::Linear, CoordTransform::Asymmetric, _) => (B::RESIZE_BILINEAR, false, false),
        (ResizeMode::Nearest, CoordTransform::Asymmetric, NearestRounding::Floor) => {
            (B::RESIZE_NEAREST_NEIGHBOR, false, false)
        }
        (ResizeMode::Nearest, CoordTransform::HalfPixel, NearestRounding::RoundPreferCeil) => {
            (B::RESIZE_NEAREST_NEIGHBOR, false, true)
        }
        (ResizeMode::Nearest, CoordTransform::AlignCorners, NearestRounding::RoundPreferCeil) => {
            (B::RESIZE_NEAREST_NEIGHBOR, true, false)
        }
        (m, c, n) => {
            return Err(format!(
                "resize {m:?} with {c:?} coordinates ({n:?} rounding) has no TFLite equivalent"
            ))
        }
    };
    let opts = Opts::Resize {
        align_corners,
        half_pixel,
    };
    Ok((code, opts))
}

pub fn depth_to_space(cx: &mut Cx, d: &DepthToSpace) -> Result<(), String> {
    check_2d(cx, d.layout, "depth to space")?;
    if d.mode != DepthToSpaceMode::Dcr {
        return Err("CRD depth-to-space (legalize rewrites it)".into());
    }
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(
        B::DEPTH_TO_SPACE,
        Opts::Block(d.block as i32),
        vec![Some(x)],
        vec![y],
    );
    Ok(())
}

pub fn space_to_depth(cx: &mut Cx, s: &SpaceToDepth) -> Result<(), String> {
    check_2d(cx, s.layout, "space to depth")?;
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(
        B::SPACE_TO_DEPTH,
        Opts::Block(s.block as i32),
        vec![Some(x)],
        vec![y],
    );
    Ok(())
}
