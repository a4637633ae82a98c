//! The layout pass: makes every spatial op use one data layout (NCHW for ONNX, NHWC for TFLite
//! and TF.js) and the kernel layout its writer wants. An op in the other layout is wrapped in
//! Transposes (into the target layout before it, back after it); constant kernels are
//! re-laid-out once (the one allowed copy). The transpose cleanup pass (`transpose.rs`) then
//! cancels the pairs this leaves between consecutive ops, so transposes remain only at the
//! graph's boundaries.

use crate::ir::ops::{Dynamic, Gather, Transpose};
use crate::ir::{DType, Graph, KernelLayout, Layout, Names, Node, Op, Tensor, TensorType, ValueId};

/// Kernel layouts a writer wants for each convolution family.
#[derive(Clone, Copy, Debug)]
pub struct KernelTargets {
    pub conv: KernelLayout,
    /// Ungrouped 2-D convolutions (rank-4 kernels), which TF stores as HWIO: the TF graph
    /// writers take them there in the one move instead of to OHWI and back.
    pub plain_2d: KernelLayout,
    pub conv_transpose: KernelLayout,
    /// Depthwise convolutions (one input channel per group), which TFLite stores apart.
    pub depthwise: KernelLayout,
}

/// ONNX: NCHW data, OIHW kernels (IOHW for ConvTranspose).
pub const ONNX_KERNELS: KernelTargets = KernelTargets {
    conv: KernelLayout::Oihw,
    plain_2d: KernelLayout::Oihw,
    conv_transpose: KernelLayout::Iohw,
    depthwise: KernelLayout::Oihw,
};

/// Permutation taking a rank-`rank` tensor from layout `from` to layout `to`.
pub fn layout_perm(from: Layout, to: Layout, rank: usize) -> Vec<usize> {
    match (from, to) {
        (Layout::Nhwc, Layout::Nchw) => std::iter::once(0)
            .chain(std::iter::once(rank - 1))
            .chain(1..rank - 1)
            .collect(),
        (Layout::Nchw, Layout::Nhwc) => std::iter::once(0)
            .chain(2..rank)
            .chain(std::iter::once(1))
            .collect(),
        _ => (0..rank).collect(),
    }
}

pub fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// Axis roles of a kernel layout, with `s` spatial axes: `O`, `I`, then spatial 0..s.
fn kernel_roles(k: KernelLayout, s: usize) -> Vec<usize> {
    // Roles: 0 = O, 1 = I, 2.. = spatial axes in order.
    let sp = (2..2 + s).collect::<Vec<_>>();
    match k {
        KernelLayout::Oihw => [vec![0, 1], sp].concat(),
        KernelLayout::Iohw => [vec![1, 0], sp].concat(),
        KernelLayout::Hwio => [sp, vec![1, 0]].concat(),
        KernelLayout::Ohwi => [vec![0], sp, vec![1]].concat(),
        KernelLayout::Hwoi => [sp, vec![0, 1]].concat(),
        KernelLayout::Ihwo => [vec![1], sp, vec![0]].concat(),
    }
}

/// Permutation taking a kernel from layout `from` to layout `to`. (For IOHW, role 0 is the
/// kernel's input-channel axis: ConvTranspose kernels are written `[in, out/group, …]`.)
pub fn kernel_perm(from: KernelLayout, to: KernelLayout, rank: usize) -> Vec<usize> {
    let (src, dst) = (kernel_roles(from, rank - 2), kernel_roles(to, rank - 2));
    dst.iter()
        .map(|r| src.iter().position(|x| x == r).unwrap_or(0))
        .collect()
}

fn permute_type(t: &TensorType, perm: &[usize]) -> TensorType {
    TensorType::new(t.dtype, perm.iter().map(|&p| t.shape[p].clone()).collect())
}

/// The data layout of a spatial op, if it has one, and where its kernel input sits.
fn spatial(op: &Op) -> Option<(Layout, Option<usize>)> {
    Some(match op {
        Op::Conv(c) | Op::ConvTranspose(c) | Op::ConvInteger(c) => (c.layout, Some(1)),
        Op::QLinearConv(c) => (c.layout, Some(3)),
        Op::Pool(p) => (p.layout, None),
        Op::GlobalPool(p) => (p.layout, None),
        Op::BatchNorm(b) => (b.layout, None),
        Op::InstanceNorm(n) => (n.layout, None),
        Op::DepthToSpace(d) => (d.layout, None),
        Op::SpaceToDepth(s) => (s.layout, None),
        Op::Resize(r) => (r.layout, None),
        Op::GridSample(g) => (g.layout, None),
        // A resize to sizes computed at run time is spatial too; its operand follows the data.
        Op::Dynamic(d) => (resize_of(d)?.layout, None),
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Activation(_)
        | Op::Where
        | Op::Cast(_)
        | Op::MatMul(_)
        | Op::Einsum(_)
        | Op::LayerNorm(_)
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
        | Op::MatMulInteger
        | Op::QLinearMatMul
        | Op::If(_)
        | Op::Loop(_) => return None,
    })
}

/// The resize among the run-time-operand ops, the one of them with a data layout.
fn resize_of(d: &Dynamic) -> Option<&crate::ir::ops::Resize> {
    match d {
        Dynamic::Resize { resize, .. } => Some(resize),
        Dynamic::Reshape { .. }
        | Dynamic::Expand
        | Dynamic::Tile
        | Dynamic::Slice
        | Dynamic::Pad { .. }
        | Dynamic::Reduce { .. }
        | Dynamic::TopK { .. }
        | Dynamic::CumSum { .. }
        | Dynamic::Trilu { .. }
        | Dynamic::OneHot { .. }
        | Dynamic::Split { .. }
        | Dynamic::Squeeze
        | Dynamic::Unsqueeze
        | Dynamic::NonMaxSuppression { .. } => None,
    }
}

/// The op with its layout set to `to`; per-axis parameters are permuted with `perm`.
fn relayout(op: &Op, to: Layout, perm: &[usize]) -> Op {
    let mut op = op.clone();
    match &mut op {
        // Kernel layouts were set by `fix_kernel`, which moved the kernels themselves.
        Op::Conv(c) | Op::ConvInteger(c) | Op::QLinearConv(c) | Op::ConvTranspose(c) => {
            c.layout = to
        }
        Op::Pool(p) => p.layout = to,
        Op::GlobalPool(p) => p.layout = to,
        Op::BatchNorm(b) => b.layout = to,
        Op::InstanceNorm(n) => n.layout = to,
        Op::DepthToSpace(d) => d.layout = to,
        Op::SpaceToDepth(s) => s.layout = to,
        Op::Resize(r) => {
            r.layout = to;
            if r.scales.len() == perm.len() {
                r.scales = perm.iter().map(|&p| r.scales[p]).collect();
            }
            if let Some(s) = &mut r.sizes {
                *s = perm.iter().map(|&p| s[p].clone()).collect();
            }
        }
        Op::GridSample(g) => g.layout = to,
        // `spatial` lets only a resize through.
        Op::Dynamic(d) => {
            if let Dynamic::Resize { resize, .. } = d {
                resize.layout = to;
            }
        }
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Activation(_)
        | Op::Where
        | Op::Cast(_)
        | Op::MatMul(_)
        | Op::Einsum(_)
        | Op::LayerNorm(_)
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
        | Op::MatMulInteger
        | Op::QLinearMatMul
        | Op::If(_)
        | Op::Loop(_) => {}
    }
    op
}

/// Rewrites every spatial op into layout `to`. Returns whether anything changed.
pub fn to_layout(g: &mut Graph, to: Layout, kernels: KernelTargets) -> Result<bool, String> {
    let mut names = g.names();
    let mut moved = moved_kernels(g, kernels);
    let old = std::mem::take(&mut g.nodes);
    let mut changed = false;
    for mut node in old {
        let Some((from, kernel_at)) = spatial(&node.op) else {
            // Convolutions already in the target layout may still need their kernels moved.
            g.nodes.push(node);
            continue;
        };
        if let Some(k) = kernel_at {
            changed |= fix_kernel(g, &mut names, &mut node, k, kernels, &mut moved)?;
        }
        if from == to {
            g.nodes.push(node);
            continue;
        }
        changed = true;
        let x = node.inputs[0];
        let rank = g.ty(x).rank();
        let p_in = layout_perm(from, to, rank);
        let p_out = inverse(&p_in);
        let tx = insert_transpose(g, &mut names, &node.name, x, &p_in, "in");
        let out = node.outputs[0];
        let out_t = g.add_value(
            &names.fresh(&format!("{}/{to}", g.value(out).name)),
            permute_type(g.ty(out), &p_in),
        );
        let mut inputs = node.inputs.clone();
        inputs[0] = tx;
        if matches!(node.op, Op::Dynamic(Dynamic::Resize { .. })) {
            // One size or scale per axis, in the data's order: permute it with the data.
            inputs[1] = permute_entries(g, &mut names, &node.name, inputs[1], &p_in);
        }
        g.nodes.push(Node {
            name: node.name.clone(),
            op: relayout(&node.op, to, &p_in),
            inputs,
            outputs: vec![out_t],
        });
        g.nodes.push(Node {
            name: names.fresh(&format!("{}/out", node.name)),
            op: Op::Transpose(Transpose { perm: p_out }),
            inputs: vec![out_t],
            outputs: vec![out],
        });
    }
    Ok(changed)
}

/// Appends a Gather of the 1-D `v`'s entries in the order `perm` and returns its output.
fn permute_entries(
    g: &mut Graph,
    names: &mut Names,
    base: &str,
    v: ValueId,
    perm: &[usize],
) -> ValueId {
    let idx: Vec<i64> = perm.iter().map(|&p| p as i64).collect();
    let idx = g.add_const(
        &names.fresh(&format!("{base}/perm")),
        Tensor::from_i64s(DType::I64, vec![idx.len()], &idx),
    );
    let out = g.add_value(&names.fresh(&format!("{base}/operand")), g.ty(v).clone());
    g.nodes.push(Node {
        name: names.fresh(&format!("{base}/operand")),
        op: Op::Gather(Gather { axis: 0 }),
        inputs: vec![v, idx],
        outputs: vec![out],
    });
    out
}

/// Appends a Transpose of `x` by `perm` and returns its output.
fn insert_transpose(
    g: &mut Graph,
    names: &mut Names,
    base: &str,
    x: ValueId,
    perm: &[usize],
    tag: &str,
) -> ValueId {
    let ty = permute_type(g.ty(x), perm);
    let v = g.add_value(&names.fresh(&format!("{base}/{tag}")), ty);
    g.nodes.push(Node {
        name: names.fresh(&format!("{base}/{tag}")),
        op: Op::Transpose(Transpose {
            perm: perm.to_vec(),
        }),
        inputs: vec![x],
        outputs: vec![v],
    });
    v
}

/// TF's filter layout for the TF graph writers, as the last step of their legalization: the
/// constant OHWI kernel of every plain (ungrouped) NHWC 2-D convolution becomes HWIO
/// (`Conv2D`'s filter), so the writer stores it as it is. A kernel only its convolution uses is
/// taken out of the graph and moved on all cores, each OHWI copy dropped as its HWIO one is
/// made: the weights are held once, not once per layout. Returns whether anything changed.
pub fn hwio_kernels(g: &mut Graph) -> bool {
    let uses = g.use_counts();
    let mut picked: Vec<(usize, ValueId)> = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let Op::Conv(c) = &n.op else { continue };
        let Some(&k) = n.inputs.get(1) else { continue };
        let plain = c.layout == Layout::Nhwc
            && c.kernel_layout == KernelLayout::Ohwi
            && c.group == 1
            && g.ty(n.inputs[0]).rank() == 4
            && g.constant(k).is_some_and(|t| t.shape.len() == 4);
        if plain && uses[k.0] == 1 && !g.outputs.contains(&k) {
            picked.push((i, k));
        }
    }
    let perm = kernel_perm(KernelLayout::Ohwi, KernelLayout::Hwio, 4);
    let kernels: Vec<std::sync::Mutex<Option<Tensor>>> = picked
        .iter()
        .map(|&(_, k)| std::sync::Mutex::new(g.values[k.0].constant.take()))
        .collect();
    let size = |k: &std::sync::Mutex<Option<Tensor>>| {
        k.lock()
            .ok()
            .and_then(|t| t.as_ref().map(|t| t.data.len()))
            .unwrap_or(0)
    };
    let moved = crate::parallel::map(&kernels, size, |k| {
        let t = k.lock().ok()?.take()?;
        Some(t.transposed(&perm))
    });
    let mut names = g.names();
    let changed = !picked.is_empty();
    for ((i, k), t) in picked.into_iter().zip(moved) {
        // A kernel is always given back moved (the mutex is only poisoned by a panic, which
        // the scope re-raises).
        let Some(t) = t else { continue };
        let name = names.fresh(&format!("{}_{}", g.value(k).name, KernelLayout::Hwio));
        let id = g.add_const(&name, t);
        g.nodes[i].inputs[1] = id;
        if let Op::Conv(c) = &mut g.nodes[i].op {
            c.kernel_layout = KernelLayout::Hwio;
        }
    }
    if changed {
        g.remove_dead();
    }
    changed
}

/// Constant kernels moved to their new layout (by kernel and permutation), made up front on
/// all cores (`parallel::map`, largest first): relayout is the one copy of the weights a
/// writer's legalization makes, and the tensors are independent.
type Moved = std::collections::HashMap<(ValueId, Vec<usize>), Tensor>;

fn moved_kernels(g: &Graph, kernels: KernelTargets) -> Moved {
    let mut jobs: Vec<(ValueId, Vec<usize>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for node in &g.nodes {
        let Some((_, Some(at))) = spatial(&node.op) else {
            continue;
        };
        let (Some((from, want)), Some(&k)) = (kernel_move(g, node, kernels), node.inputs.get(at))
        else {
            continue;
        };
        if g.constant(k).is_some() {
            let job = (k, kernel_perm(from, want, g.ty(k).rank()));
            if seen.insert(job.clone()) {
                jobs.push(job);
            }
        }
    }
    let size = |(k, _): &(ValueId, Vec<usize>)| g.constant(*k).map_or(0, |t| t.data.len());
    let tensors = crate::parallel::map(&jobs, size, |(k, perm)| {
        let t = g.constant(*k)?;
        let moved = t.transposed(perm);
        // The source's pages of a mapped kernel are not needed resident any more (read again
        // from the page cache if anything still uses them).
        crate::ir::mapped::release_pages(&t.data);
        Some(moved)
    });
    jobs.into_iter()
        .zip(tensors)
        .filter_map(|(job, t)| Some((job, t?)))
        .collect()
}

/// The kernel layout a convolution has and the one the writer wants, when they differ.
fn kernel_move(
    g: &Graph,
    node: &Node,
    kernels: KernelTargets,
) -> Option<(KernelLayout, KernelLayout)> {
    let x_ty = g.ty(node.inputs[0]);
    let (c, want) = match &node.op {
        Op::Conv(c) | Op::ConvInteger(c) | Op::QLinearConv(c) => {
            let in_c = x_ty
                .shape
                .get(c.layout.channel_axis(x_ty.rank()))
                .and_then(|d| d.fixed());
            let depthwise = c.group > 1 && in_c == Some(c.group as u64);
            let plain_2d = c.group == 1 && node.inputs.get(1).is_some_and(|&k| g.ty(k).rank() == 4);
            (
                c,
                if depthwise {
                    kernels.depthwise
                } else if plain_2d {
                    kernels.plain_2d
                } else {
                    kernels.conv
                },
            )
        }
        Op::ConvTranspose(c) => (c, kernels.conv_transpose),
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Activation(_)
        | Op::Where
        | Op::Cast(_)
        | Op::MatMul(_)
        | Op::Einsum(_)
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
        | Op::MatMulInteger
        | Op::QLinearMatMul
        | Op::Dynamic(_)
        | Op::If(_)
        | Op::Loop(_) => return None,
    };
    (c.kernel_layout != want).then_some((c.kernel_layout, want))
}

/// Moves a convolution's kernel into the writer's kernel layout: a constant is transposed once
/// (by `moved_kernels`), anything else gets a Transpose node.
fn fix_kernel(
    g: &mut Graph,
    names: &mut Names,
    node: &mut Node,
    at: usize,
    kernels: KernelTargets,
    moved: &mut Moved,
) -> Result<bool, String> {
    let Some((from, want)) = kernel_move(g, node, kernels) else {
        return Ok(false);
    };
    let k = *node.inputs.get(at).ok_or("convolution without a kernel")?;
    let perm = kernel_perm(from, want, g.ty(k).rank());
    if let Op::Conv(c) | Op::ConvInteger(c) | Op::QLinearConv(c) | Op::ConvTranspose(c) =
        &mut node.op
    {
        c.kernel_layout = want;
    }
    node.inputs[at] = match g.constant(k) {
        Some(t) => {
            let moved = match moved.get(&(k, perm.clone())) {
                Some(m) => m.clone(),
                None => t.transposed(&perm),
            };
            let name = names.fresh(&format!("{}_{want}", g.value(k).name));
            g.add_const(&name, moved)
        }
        None => insert_transpose(g, names, &node.name, k, &perm, "kernel"),
    };
    Ok(true)
}

/// A mean or max over every spatial axis of a channels-first float tensor, axes kept, becomes a
/// global pool in that layout. onnxruntime quantizes a global average pool (QDQ around it runs
/// as QLinearGlobalAveragePool, in its NHWC layout with the convolutions) but not a ReduceMean:
/// squeeze-excite's means stayed float between int8 convolutions, each behind a transpose.
pub fn reductions_to_global_pools(g: &mut Graph) -> usize {
    use crate::ir::ops::{GlobalPool, PoolKind, ReduceKind};
    let mut count = 0;
    for i in 0..g.nodes.len() {
        let Op::Reduce(r) = &g.nodes[i].op else {
            continue;
        };
        let kind = match r.kind {
            ReduceKind::Mean => PoolKind::Avg,
            ReduceKind::Max => PoolKind::Max,
            ReduceKind::Sum
            | ReduceKind::Min
            | ReduceKind::Prod
            | ReduceKind::L1
            | ReduceKind::L2
            | ReduceKind::LogSum
            | ReduceKind::LogSumExp
            | ReduceKind::SumSquare => continue,
        };
        let x = g.ty(g.nodes[i].inputs[0]);
        let rank = x.rank();
        let spatial: Vec<usize> = (2..rank).collect();
        if !r.keep_dims || rank < 3 || r.axes != spatial || x.dtype != DType::F32 {
            continue;
        }
        g.nodes[i].op = Op::GlobalPool(GlobalPool {
            kind,
            layout: Layout::Nchw,
        });
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_round_trip() {
        assert_eq!(layout_perm(Layout::Nhwc, Layout::Nchw, 4), vec![0, 3, 1, 2]);
        assert_eq!(layout_perm(Layout::Nchw, Layout::Nhwc, 4), vec![0, 2, 3, 1]);
        assert_eq!(inverse(&[0, 3, 1, 2]), vec![0, 2, 3, 1]);
        assert_eq!(
            kernel_perm(KernelLayout::Hwio, KernelLayout::Oihw, 4),
            vec![3, 2, 0, 1]
        );
        assert_eq!(
            kernel_perm(KernelLayout::Oihw, KernelLayout::Ohwi, 4),
            vec![0, 2, 3, 1]
        );
        assert_eq!(
            kernel_perm(KernelLayout::Oihw, KernelLayout::Oihw, 3),
            vec![0, 1, 2]
        );
        // TF's transposed-convolution filter [h, w, out, in] to ONNX ConvTranspose's [in, out, h, w].
        assert_eq!(
            kernel_perm(KernelLayout::Hwoi, KernelLayout::Iohw, 4),
            vec![3, 2, 0, 1]
        );
    }
}
