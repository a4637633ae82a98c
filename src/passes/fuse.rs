//! Fusions that keep results: batch norm folded into the convolution or dense layer before it,
//! and the batch norms that cannot fold lowered to a multiply and an add.
//!
//! Folding: `y = (conv(x, w) + b - mean) * s + beta` with `s = gamma / sqrt(var + eps)` is
//! `conv(x, w * s) + ((b - mean) * s + beta)`, `s` applied along the kernel's output-channel axis.
//! It applies when the convolution (or MatMul, optionally followed by a bias Add) has constant
//! f32 weights, its output feeds only the batch norm, and the batch norm's channel axis is the
//! one the layer produces. New weight tensors are computed once (the one copy of those bytes).

use super::rewrite::Rewriter;
use crate::ir::ops::{BatchNorm, BinaryOp};
use crate::ir::{DType, Graph, KernelLayout, Layout, Node, Op, Tensor, ValueId};
use std::collections::HashMap;

/// Per-channel `(scale, shift)` of a batch norm with constant f32 parameters.
fn bn_affine(g: &Graph, n: &Node, eps: f32) -> Option<(Vec<f64>, Vec<f64>)> {
    let get = |i: usize| -> Option<Vec<f64>> {
        let t = g.constant(*n.inputs.get(i)?)?;
        (t.dtype == DType::F32).then(|| t.to_f64s())
    };
    let (gamma, beta, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
    let c = gamma.len();
    if beta.len() != c || mean.len() != c || var.len() != c {
        return None;
    }
    let s: Vec<f64> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + eps as f64).sqrt())
        .collect();
    let shift = (0..c).map(|i| beta[i] - mean[i] * s[i]).collect();
    Some((s, shift))
}

/// `t` with every element along `axis` multiplied by `s[index on axis]`.
pub(crate) fn scale_along(t: &Tensor, axis: usize, s: &[f64]) -> Option<Tensor> {
    if t.dtype != DType::F32 || t.shape.get(axis) != Some(&s.len()) {
        return None;
    }
    let inner: usize = t.shape[axis + 1..].iter().product::<usize>().max(1);
    let (src, _) = t.data.as_chunks::<4>();
    let mut out = vec![[0u8; 4]; src.len()];
    scale_runs(src, &mut out, inner, s);
    Tensor::new(DType::F32, t.shape.clone(), out.into_flattened().into()).ok()
}

/// `dst[j] = src[j] · s[channel of j]` over f32 words, channel runs of `inner` elements: one
/// pass from the f32 bytes to the scaled f32 bytes (computed in f64, rounded once). Blocks of
/// `s.len()` runs are walked with the scales beside them, so a channel-last kernel (HWIO,
/// `inner` 1) costs no index arithmetic per element.
fn scale_runs(src: &[[u8; 4]], dst: &mut [[u8; 4]], inner: usize, s: &[f64]) {
    let block = inner * s.len();
    if block == 0 {
        return;
    }
    for (sb, db) in src.chunks(block).zip(dst.chunks_mut(block)) {
        if inner == 1 {
            for ((x, y), &k) in sb.iter().zip(db.iter_mut()).zip(s) {
                *y = scaled(*x, k);
            }
            continue;
        }
        for ((sr, dr), &k) in sb.chunks(inner).zip(db.chunks_mut(inner)).zip(s) {
            for (x, y) in sr.iter().zip(dr) {
                *y = scaled(*x, k);
            }
        }
    }
}

/// One little-endian f32 times `k`, computed in f64 and rounded once.
fn scaled(x: [u8; 4], k: f64) -> [u8; 4] {
    ((f32::from_le_bytes(x) as f64 * k) as f32).to_le_bytes()
}

/// [`scale_along`] of a tensor given away: scaled in place when nothing else shares its bytes
/// (a kernel a relayout made), so the fold copies no weight; otherwise the scaled copy is the
/// one copy. `Err` gives it back unchanged when it cannot be scaled.
pub(crate) fn scale_along_owned(t: Tensor, axis: usize, s: &[f64]) -> Result<Tensor, Tensor> {
    if t.dtype != DType::F32 || t.shape.get(axis) != Some(&s.len()) {
        return Err(t);
    }
    let Tensor { dtype, shape, data } = t;
    let mut data = match data.try_into_mut() {
        Ok(d) => d,
        Err(shared) => {
            let t = Tensor {
                dtype,
                shape,
                data: shared,
            };
            let Some(scaled) = scale_along(&t, axis, s) else {
                return Err(t);
            };
            // A kernel still in its mapped source file (one no relayout had to move) is not
            // needed resident beside its scaled copy.
            crate::ir::mapped::release_pages(&t.data);
            return Ok(scaled);
        }
    };
    let inner: usize = shape[axis + 1..].iter().product::<usize>().max(1);
    let (words, _) = data.as_chunks_mut::<4>();
    let block = inner * s.len();
    if block > 0 {
        for b in words.chunks_mut(block) {
            for (run, &k) in b.chunks_mut(inner).zip(s) {
                for x in run {
                    *x = scaled(*x, k);
                }
            }
        }
    }
    Ok(Tensor {
        dtype,
        shape,
        data: data.freeze(),
    })
}

pub(crate) fn folded_bias(old: Option<&Tensor>, s: &[f64], shift: &[f64]) -> Option<Tensor> {
    let b = match old {
        Some(t) if t.dtype == DType::F32 && t.len() == s.len() => t.to_f64s(),
        Some(_) => return None,
        None => vec![0.0; s.len()],
    };
    let v: Vec<f64> = (0..s.len()).map(|i| b[i] * s[i] + shift[i]).collect();
    Some(Tensor::from_f64s(DType::F32, vec![s.len()], &v))
}

/// The output-channel axis of a convolution kernel in `layout` (of rank `rank`), for the
/// layouts whose output channels are one axis of a plain convolution.
pub(crate) fn out_channel_axis(layout: KernelLayout, rank: usize) -> Option<usize> {
    match layout {
        KernelLayout::Oihw | KernelLayout::Ohwi => Some(0),
        KernelLayout::Hwio | KernelLayout::Ihwo => Some(rank.saturating_sub(1)),
        KernelLayout::Iohw | KernelLayout::Hwoi => None,
    }
}

/// Folds batch norms into the convolutions and dense layers before them. Returns whether
/// anything changed.
pub fn fold_batch_norms(g: &mut Graph) -> bool {
    let producers = g.producers();
    let uses = g.use_counts();
    let is_output = |v: ValueId| g.outputs.contains(&v);
    // (bn node, layer node, [bias add node]) to fold, with new constants.
    let mut plans: Vec<(usize, usize, Option<usize>, Tensor, Tensor)> = Vec::new();
    for (bi, bn) in g.nodes.iter().enumerate() {
        let Op::BatchNorm(BatchNorm { epsilon, layout }) = bn.op else {
            continue;
        };
        let x = bn.inputs[0];
        let rank = g.ty(x).rank();
        if rank < 2 || uses[x.0] != 1 || is_output(x) {
            continue;
        }
        let Some((s, shift)) = bn_affine(g, bn, epsilon) else {
            continue;
        };
        let Some(&pi) = producers.get(&x) else {
            continue;
        };
        let planned = plan_fold(g, &producers, &uses, pi, layout, rank, (&s, &shift));
        if let Some((li, add, w, b)) = planned {
            plans.push((bi, li, add, w, b));
        }
    }
    if plans.is_empty() {
        return false;
    }
    let mut names = g.names();
    let mut dead = vec![false; g.nodes.len()];
    for (bi, li, add, w, b) in plans {
        let bn_out = g.nodes[bi].outputs[0];
        let wname = names.fresh(&format!("{}/folded_w", g.nodes[li].name));
        let bname = names.fresh(&format!("{}/folded_b", g.nodes[li].name));
        let w = g.add_const(&wname, w);
        let b = g.add_const(&bname, b);
        dead[bi] = true;
        match add {
            Some(ai) => {
                g.nodes[li].inputs[1] = w;
                g.nodes[ai].inputs[1] = b;
                g.nodes[ai].outputs[0] = bn_out;
            }
            None if matches!(g.nodes[li].op, Op::Conv(_)) => {
                g.nodes[li].inputs.truncate(2);
                g.nodes[li].inputs[1] = w;
                g.nodes[li].inputs.push(b);
                g.nodes[li].outputs[0] = bn_out;
            }
            None => {
                // MatMul without a bias: the folded bias needs an Add after it.
                let mm_out = g.nodes[li].outputs[0];
                g.nodes[li].inputs[1] = w;
                g.nodes[bi].op = Op::Binary(BinaryOp::Add);
                g.nodes[bi].inputs = vec![mm_out, b];
                dead[bi] = false;
            }
        }
    }
    let mut k = dead.iter();
    g.nodes.retain(|_| !*k.next().unwrap_or(&false));
    g.remove_dead();
    true
}

/// What folding a batch norm (`layout`, per-channel `(scale, shift)`) into the layer node
/// `pi` before it takes: the layer, its bias Add if any, and their new weights and bias.
fn plan_fold(
    g: &Graph,
    producers: &HashMap<ValueId, usize>,
    uses: &[usize],
    pi: usize,
    layout: Layout,
    rank: usize,
    (s, shift): (&[f64], &[f64]),
) -> Option<(usize, Option<usize>, Tensor, Tensor)> {
    let is_output = |v: ValueId| g.outputs.contains(&v);
    let p = &g.nodes[pi];
    match &p.op {
        Op::Conv(c) if c.layout == layout && p.inputs.len() >= 2 => {
            let k = g.constant(p.inputs[1])?;
            let o_axis = out_channel_axis(c.kernel_layout, k.shape.len())?;
            let bias = p.inputs.get(2).and_then(|&b| g.constant(b));
            if p.inputs.len() > 2 && bias.is_none() {
                return None;
            }
            scale_along(k, o_axis, s)
                .zip(folded_bias(bias, s, shift))
                .map(|(w, b)| (pi, None, w, b))
        }
        // Dense: BN over the last axis of a MatMul (+ bias Add) with constant 2-D weights.
        Op::MatMul(_) | Op::Binary(_) if layout.channel_axis(rank) == rank - 1 => {
            let (mi, add) = match &p.op {
                Op::Binary(BinaryOp::Add) => {
                    let (&a, &b) = p.inputs.first().zip(p.inputs.get(1))?;
                    match (producers.get(&a), g.constant(b)) {
                        (Some(&mi), Some(_)) if uses[a.0] == 1 && !is_output(a) => (mi, Some(pi)),
                        _ => return None,
                    }
                }
                _ => (pi, None),
            };
            let Op::MatMul(m2) = &g.nodes[mi].op else {
                return None;
            };
            let w = g.constant(g.nodes[mi].inputs[1])?;
            if m2.transpose_a || w.shape.len() != 2 {
                return None;
            }
            let out_axis = if m2.transpose_b { 0 } else { 1 };
            let bias = add.and_then(|ai| g.constant(g.nodes[ai].inputs[1]));
            scale_along(w, out_axis, s)
                .zip(folded_bias(bias, s, shift))
                .map(|(w, b)| (mi, add, w, b))
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
        | Op::Loop(_) => None,
    }
}

/// Rewrites every batch norm as `x * scale + shift` (constants shaped to broadcast along the
/// channel axis of its layout). Batch norms with non-constant parameters are left alone.
pub fn lower_batch_norms(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        let Op::BatchNorm(BatchNorm { epsilon, layout }) = n.op else {
            rw.keep(n);
            continue;
        };
        let Some((s, shift)) = bn_affine(rw.g, &n, epsilon) else {
            rw.keep(n);
            continue;
        };
        let rank = rw.g.ty(n.inputs[0]).rank();
        let mut shape = vec![1usize; rank.saturating_sub(layout.channel_axis(rank))];
        if let Some(first) = shape.first_mut() {
            *first = s.len();
        }
        let sc = rw.konst(
            &format!("{}/scale", n.name),
            Tensor::from_f64s(DType::F32, shape.clone(), &s),
        );
        let sh = rw.konst(
            &format!("{}/shift", n.name),
            Tensor::from_f64s(DType::F32, shape, &shift),
        );
        let m = rw.op(
            &format!("{}/mul", n.name),
            Op::Binary(BinaryOp::Mul),
            vec![n.inputs[0], sc],
        )?;
        rw.op_into(
            &n.name,
            Op::Binary(BinaryOp::Add),
            vec![m, sh],
            n.outputs[0],
        );
        changed = true;
    }
    rw.finish();
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scaling in place (bytes owned) and by copy (bytes shared) give the same tensor, and
    /// the shared bytes are left alone.
    #[test]
    fn scaling_in_place_matches_the_copy() {
        let v: Vec<f64> = (0..2 * 3 * 5).map(|i| i as f64 * 0.37 - 4.0).collect();
        let t = Tensor::from_f64s(DType::F32, vec![2, 3, 5], &v);
        let s = [0.5, -3.25, 1e-3];
        let want = scale_along(&t, 1, &s).unwrap();
        let shared = t.clone();
        let copied = scale_along_owned(t.clone(), 1, &s).unwrap();
        assert_eq!(copied, want);
        assert_eq!(shared, t);
        drop(shared);
        let owned = Tensor::from_f64s(DType::F32, vec![2, 3, 5], &v);
        let at = owned.data.as_ptr();
        let scaled = scale_along_owned(owned, 1, &s).unwrap();
        assert_eq!(scaled, want);
        assert_eq!(scaled.data.as_ptr(), at, "scaled in place");
        let wrong = Tensor::from_f64s(DType::F32, vec![2, 3, 5], &v);
        assert_eq!(scale_along_owned(wrong.clone(), 0, &s), Err(wrong));
    }
}
