//! Legalization to the channels-last world of TFLite and TF (TF.js graph models), as IR
//! rewrites (so `eval` can check each): NHWC layout with OHWI kernels (IHWO depthwise), optional
//! NHWC I/O, batch norm folded (or lowered to MUL+ADD), explicit padding that SAME/VALID cannot
//! express made Pad ops, grouped convolutions split per group, 1-D windows lifted to 2-D,
//! softmax moved to the last axis (both formats' softmax works on the last axis only), CRD
//! depth-to-space spelled out, and ops neither format has lowered (lower.rs).
//!
//! The TF graph writers (TF.js graph model, SavedModel) take plain convolutions' kernels to
//! TF's HWIO at the end of their legalization (`layout::hwio_kernels`) and emit the
//! `[H, W, C, multiplier]` / HWOI kernels from the IHWO / OHWI ones when they write each
//! depthwise or transposed convolution.

use super::lower;
use crate::ir::ops::{
    Concat, Conv, DepthToSpaceMode, Pad, PadMode, Padding, PoolKind, Reduce, ReduceKind, Reshape,
    Softmax, Split, Transpose,
};
use crate::ir::{Dim, Graph, KernelLayout, Layout, Node, Op};
use crate::passes::layout::{inverse, KernelTargets};
use crate::passes::rewrite::Rewriter;
use crate::passes::{conv_fold, fuse, io_layout, layout, transpose};

/// The kernels the channels-last writers expect after [`legalize`].
pub const NHWC_KERNELS: KernelTargets = KernelTargets {
    conv: KernelLayout::Ohwi,
    plain_2d: KernelLayout::Ohwi,
    conv_transpose: KernelLayout::Ohwi,
    depthwise: KernelLayout::Ihwo,
};

/// The kernels the TF graph writers (TF.js graph model, SavedModel) expect: as
/// [`NHWC_KERNELS`], but an ungrouped 2-D convolution's kernel in TF's HWIO, so that a kernel
/// a TF model stored as HWIO is not moved at all and any other is moved once.
pub const TF_KERNELS: KernelTargets = KernelTargets {
    plain_2d: KernelLayout::Hwio,
    ..NHWC_KERNELS
};

/// Runs the whole legalization; `native_clip` says which Clips (by their bounds) the target
/// runs as one op, `native_trig` whether it has asin, sinh, … (see `lower`).
pub fn legalize(
    g: &mut Graph,
    nhwc_io: bool,
    native_clip: &dyn Fn(Option<f32>, Option<f32>) -> bool,
    native_trig: bool,
) -> Result<(), String> {
    prepare(g, nhwc_io, NHWC_KERNELS)?;
    finish(g, native_clip, native_trig)
}

/// The first half: layout, boundary transposes, batch norms and affine/pad folds into
/// convolutions, kernels moved to `kernels` ([`NHWC_KERNELS`] or [`TF_KERNELS`]). A writer
/// lowers its own extra ops between [`prepare`] and [`finish`].
pub fn prepare(g: &mut Graph, nhwc_io: bool, kernels: KernelTargets) -> Result<(), String> {
    g.remove_dead();
    super::resize_sizes::read_symbolic_sizes(g)?;
    super::gather_from_end::slice_gathers_from_end(g)?;
    layout::to_layout(g, Layout::Nhwc, kernels)?;
    super::resize_gather::gather_nearest_resizes(g)?;
    transpose::clean_transposes(g)?;
    if nhwc_io {
        io_layout::nhwc_io(g);
    }
    fuse::fold_batch_norms(g);
    fuse::lower_batch_norms(g)?;
    conv_fold::fold_affine_into_convs(g);
    conv_fold::fold_pads_into_convs(g);
    Ok(())
}

/// The second half: lowering, 1-D lifting, padding, groups, and the final clean-up.
pub fn finish(
    g: &mut Graph,
    native_clip: &dyn Fn(Option<f32>, Option<f32>) -> bool,
    native_trig: bool,
) -> Result<(), String> {
    lower::lower(g, native_clip, native_trig)?;
    super::spatial1d::lift_1d(g)?;
    explicit_padding(g)?;
    split_groups(g)?;
    crd_depth_to_space(g)?;
    transpose::clean_transposes(g)?;
    squeeze_global_pools(g);
    // Last: the cleanup would sink these transposes back through the softmax.
    softmax_last(g)?;
    g.remove_dead();
    g.verify().map_err(|e| format!("broke the graph: {e}"))
}

/// Whether an explicit padding is SAME (`Some(true)`) or VALID (`Some(false)`) for this window,
/// `None` when it is neither.
pub fn same_or_valid(
    padding: &Padding,
    spatial: &[Dim],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
) -> Option<bool> {
    match padding {
        Padding::SameUpper => Some(true),
        Padding::SameLower => {
            let c = probe_conv(Padding::SameLower, strides, dilations);
            let pads = c.explicit_pads(spatial, kernel)?;
            pads.iter().all(|&(b, e)| b == e).then_some(true)
        }
        Padding::Explicit(p) if p.iter().all(|&(b, e)| b == 0 && e == 0) => Some(false),
        Padding::Explicit(p) => {
            let c = probe_conv(Padding::SameUpper, strides, dilations);
            (c.explicit_pads(spatial, kernel)? == *p).then_some(true)
        }
    }
}

/// A convolution with only a padding, strides and dilations, to ask for its explicit pads.
pub fn probe_conv(padding: Padding, strides: &[usize], dilations: &[usize]) -> Conv {
    Conv {
        layout: Layout::Nhwc,
        kernel_layout: KernelLayout::Ohwi,
        strides: strides.to_vec(),
        dilations: dilations.to_vec(),
        padding,
        group: 1,
        output_padding: vec![],
    }
}

/// Convolutions and pools whose explicit padding is neither SAME nor VALID get a Pad op before
/// them (zeros; -inf for max pooling) and VALID padding.
fn explicit_padding(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for mut n in old {
        let Some((pads, kernel, strides, dilations, fill)) = window(rw.g, &n) else {
            rw.keep(n);
            continue;
        };
        let x = n.inputs[0];
        let shape = rw.g.ty(x).shape.clone();
        let rank = shape.len();
        if rank != 4 {
            rw.keep(n);
            continue;
        }
        let mut explicit = match &pads {
            Padding::Explicit(p) => p.clone(),
            _ => {
                rw.keep(n);
                continue;
            }
        };
        // ceil_mode: an extra window at the end is extra end padding.
        if let Op::Pool(p) = &n.op {
            if p.ceil_mode {
                let out = rw.g.ty(n.outputs[0]).shape.clone();
                for i in 0..2 {
                    if let (Some(inp), Some(o)) = (shape[1 + i].fixed(), out[1 + i].fixed()) {
                        let need = (o as usize - 1) * strides[i] + kernel[i];
                        let have = inp as usize + explicit[i].0 + explicit[i].1;
                        explicit[i].1 += need.saturating_sub(have);
                    }
                }
            }
        }
        let as_is = same_or_valid(
            &Padding::Explicit(explicit.clone()),
            &shape[1..3],
            &kernel,
            &strides,
            &dilations,
        );
        let ceil = matches!(&n.op, Op::Pool(p) if p.ceil_mode);
        if as_is.is_some() && !ceil {
            rw.keep(n);
            continue;
        }
        let mut all = vec![(0i64, 0i64); rank];
        for i in 0..2 {
            all[1 + i] = (explicit[i].0 as i64, explicit[i].1 as i64);
        }
        let padded = rw.op(
            &format!("{}/pad", n.name),
            Op::Pad(Pad {
                mode: PadMode::Constant,
                pads: all,
                value: fill,
            }),
            vec![x],
        )?;
        n.inputs[0] = padded;
        let zero = Padding::Explicit(vec![(0, 0); 2]);
        match &mut n.op {
            Op::Conv(c) => c.padding = zero,
            Op::Pool(p) => {
                p.padding = zero;
                p.ceil_mode = false;
            }
            _ => {}
        }
        rw.keep(n);
        changed = true;
    }
    rw.finish();
    Ok(changed)
}

/// Padding, kernel size, strides, dilations, and the value an explicit Pad fills with.
type Window = (Padding, Vec<usize>, Vec<usize>, Vec<usize>, f64);

/// The window of a convolution or pool that [`explicit_padding`] can pad (NHWC).
fn window(g: &Graph, n: &Node) -> Option<Window> {
    Some(match &n.op {
        Op::Conv(c) | Op::ConvTranspose(c) if c.layout != Layout::Nhwc => return None,
        Op::Conv(c) => {
            let k = &g.ty(*n.inputs.get(1)?).shape;
            if k.len() < 3 {
                return None;
            }
            // A size known only at run time counts as 1.
            let ks = k[c.kernel_layout.spatial_axes(k.len())]
                .iter()
                .map(|d| d.fixed().unwrap_or(1) as usize)
                .collect();
            (
                c.padding.clone(),
                ks,
                c.strides.clone(),
                c.dilations.clone(),
                0.0,
            )
        }
        Op::Pool(p) if p.layout == Layout::Nhwc && p.kind != PoolKind::L2 => {
            let fill = match p.kind {
                PoolKind::Max => f32::MIN as f64,
                PoolKind::Avg | PoolKind::L2 if p.count_include_pad => 0.0,
                PoolKind::Avg | PoolKind::L2 => return None,
            };
            (
                p.padding.clone(),
                p.kernel.clone(),
                p.strides.clone(),
                p.dilations.clone(),
                fill,
            )
        }
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Activation(_)
        | Op::Where
        | Op::Cast(_)
        | Op::MatMul(_)
        | Op::Einsum(_)
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

/// Grouped convolutions that are not depthwise: SPLIT the input per group, one CONV_2D per
/// group (kernel and bias sliced once), CONCATENATION of the results.
fn split_groups(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        let Op::Conv(c) = &n.op else {
            rw.keep(n);
            continue;
        };
        let x_ty = rw.g.ty(n.inputs[0]).clone();
        let k = rw.g.constant(n.inputs[1]).cloned();
        // A symbolic channel count is the kernel's (OHWI: input channels per group last).
        let from_kernel = k
            .as_ref()
            .filter(|k| c.kernel_layout == KernelLayout::Ohwi && k.shape.len() == 4)
            .map(|k| k.shape[3] * c.group);
        let Some(in_c) = x_ty
            .shape
            .last()
            .and_then(Dim::fixed)
            .map(|d| d as usize)
            .or(from_kernel)
        else {
            rw.keep(n);
            continue;
        };
        let depthwise = c.group == in_c;
        if c.group <= 1 || depthwise || c.layout != Layout::Nhwc || x_ty.rank() != 4 {
            rw.keep(n);
            continue;
        }
        let Some(k) = k.filter(|_| c.kernel_layout == KernelLayout::Ohwi) else {
            rw.keep(n);
            continue;
        };
        let groups = c.group;
        let per_in = in_c / groups;
        let out_c = k.shape[0];
        let per_out = out_c / groups;
        let bias = n.inputs.get(2).and_then(|&b| rw.g.constant(b)).cloned();
        let parts = rw.op_multi(
            &format!("{}/split", n.name),
            Op::Split(Split {
                axis: 3,
                sizes: vec![per_in; groups],
            }),
            vec![n.inputs[0]],
        )?;
        let es = k.dtype.size();
        let per_k = k.data.len() / groups;
        let mut outs = Vec::with_capacity(groups);
        for (gi, &part) in parts.iter().enumerate() {
            let mut shape = k.shape.clone();
            shape[0] = per_out;
            let kg =
                crate::ir::Tensor::new(k.dtype, shape, k.data.slice(gi * per_k..(gi + 1) * per_k))?;
            let kv = rw.konst(&format!("{}/kernel_{gi}", n.name), kg);
            let mut ins = vec![part, kv];
            if let Some(b) = &bias {
                let bg = crate::ir::Tensor::new(
                    b.dtype,
                    vec![per_out],
                    b.data.slice(gi * per_out * es..(gi + 1) * per_out * es),
                )?;
                ins.push(rw.konst(&format!("{}/bias_{gi}", n.name), bg));
            }
            let conv = Conv {
                group: 1,
                ..c.clone()
            };
            outs.push(rw.op(&format!("{}/g{gi}", n.name), Op::Conv(conv), ins)?);
        }
        rw.op_into(&n.name, Op::Concat(Concat { axis: 3 }), outs, n.outputs[0]);
        changed = true;
    }
    rw.finish();
    Ok(changed)
}

/// Softmax over an inner axis: transpose that axis last, softmax, transpose back.
fn softmax_last(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        let Op::Softmax(s) = &n.op else {
            rw.keep(n);
            continue;
        };
        let rank = rw.g.ty(n.inputs[0]).rank();
        if s.axis + 1 == rank {
            rw.keep(n);
            continue;
        }
        let mut perm: Vec<usize> = (0..rank).filter(|&a| a != s.axis).collect();
        perm.push(s.axis);
        let t = rw.op(
            &format!("{}/to_last", n.name),
            Op::Transpose(Transpose { perm: perm.clone() }),
            vec![n.inputs[0]],
        )?;
        let y = rw.op(
            &format!("{}/last", n.name),
            Op::Softmax(Softmax {
                axis: rank - 1,
                log: s.log,
            }),
            vec![t],
        )?;
        rw.op_into(
            &n.name,
            Op::Transpose(Transpose {
                perm: inverse(&perm),
            }),
            vec![y],
            n.outputs[0],
        );
        changed = true;
    }
    rw.finish();
    Ok(changed)
}

/// Column-row-depth depth-to-space (PyTorch's pixel shuffle) in NHWC: RESHAPE to
/// `[N, H, W, C', b, b]`, TRANSPOSE to `[N, H, b, W, b, C']`, RESHAPE to `[N, H·b, W·b, C']`.
fn crd_depth_to_space(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        let Op::DepthToSpace(d) = &n.op else {
            rw.keep(n);
            continue;
        };
        if d.mode != DepthToSpaceMode::Crd || d.layout != Layout::Nhwc {
            rw.keep(n);
            continue;
        }
        let s = rw.g.ty(n.inputs[0]).shape.clone();
        let b = d.block as u64;
        let Some(c) = s.get(3).and_then(Dim::fixed) else {
            rw.keep(n);
            continue;
        };
        let inner = vec![
            s[0].clone(),
            s[1].clone(),
            s[2].clone(),
            Dim::Fixed(c / (b * b)),
            Dim::Fixed(b),
            Dim::Fixed(b),
        ];
        let r = rw.op(
            &format!("{}/split_depth", n.name),
            Op::Reshape(Reshape { shape: inner }),
            vec![n.inputs[0]],
        )?;
        let t = rw.op(
            &format!("{}/interleave", n.name),
            Op::Transpose(Transpose {
                perm: vec![0, 1, 4, 2, 5, 3],
            }),
            vec![r],
        )?;
        let out = rw.g.ty(n.outputs[0]).shape.clone();
        rw.op_into(
            &n.name,
            Op::Reshape(Reshape { shape: out }),
            vec![t],
            n.outputs[0],
        );
        changed = true;
    }
    rw.finish();
    Ok(changed)
}

/// A global average/max pool whose only use is a reshape dropping its `1×1` spatial axes (Keras
/// `GlobalAveragePooling2D`, `Flatten` after a pool) becomes one MEAN / REDUCE_MAX without
/// kept dims, writing the reshape's output: TFLiteConverter's form, one operator less.
fn squeeze_global_pools(g: &mut Graph) -> bool {
    let uses = g.use_counts();
    let producers = g.producers();
    let mut plans = Vec::new();
    for (ri, r) in g.nodes.iter().enumerate() {
        let Op::Reshape(_) = &r.op else { continue };
        let x = r.inputs[0];
        let Some(&pi) = producers.get(&x) else {
            continue;
        };
        let Op::GlobalPool(p) = g.nodes[pi].op else {
            continue;
        };
        let kind = match p.kind {
            PoolKind::Avg => ReduceKind::Mean,
            PoolKind::Max => ReduceKind::Max,
            PoolKind::L2 => continue,
        };
        let rank = g.ty(x).rank();
        let axes: Vec<usize> = p.layout.spatial_axes(rank).collect();
        let squeezed: Vec<Dim> = (0..rank)
            .filter(|a| !axes.contains(a))
            .map(|a| g.ty(x).shape[a].clone())
            .collect();
        if uses[x.0] == 1 && !g.outputs.contains(&x) && g.ty(r.outputs[0]).shape == squeezed {
            plans.push((pi, ri, kind, axes));
        }
    }
    if plans.is_empty() {
        return false;
    }
    let mut dead = vec![false; g.nodes.len()];
    for (pi, ri, kind, axes) in plans {
        g.nodes[pi].op = Op::Reduce(Reduce {
            kind,
            axes,
            keep_dims: false,
        });
        g.nodes[pi].outputs[0] = g.nodes[ri].outputs[0];
        dead[ri] = true;
    }
    let mut k = dead.iter();
    g.nodes.retain(|_| !*k.next().unwrap_or(&false));
    g.remove_dead();
    true
}
