//! Two clean-ups for graphs whose batch norms arrive as arithmetic (a SavedModel's
//! `batchnorm/Rsqrt`, `mul`, `sub`, `add_1` after each convolution):
//! - `fold_constants`: nodes whose inputs are all constants become constants (the reader's
//!   folding rules: small arithmetic, any data movement);
//! - `fold_affine_into_conv`: a channels-last convolution with a constant kernel, followed by a
//!   `Mul` and/or an `Add` of a per-output-channel constant that nothing else reads, becomes one
//!   convolution with the kernel scaled once and the bias `b·s + t`.
//!
//! Together they turn ResNet50's 53 `Rsqrt`/`Mul`/`Sub` chains into nothing, and let the
//! activation after each convolution fuse with it.

use crate::ir::ops::BinaryOp;
use crate::ir::{DType, Dim, Graph, KernelLayout, Layout, Op, Tensor, ValueId};
use std::collections::{HashMap, HashSet};

/// Replaces every node whose inputs are all constants (and that the folding rules cover) by its
/// constant outputs. Returns whether anything changed.
pub fn fold_constants(g: &mut Graph) -> bool {
    let mut changed = false;
    let nodes = std::mem::take(&mut g.nodes);
    let mut kept = Vec::with_capacity(nodes.len());
    for n in nodes {
        let consts: Option<Vec<Tensor>> =
            n.inputs.iter().map(|&v| g.constant(v).cloned()).collect();
        let folded = consts.and_then(|c| {
            if c.is_empty() {
                return None;
            }
            // The reader's rules lack Rsqrt (batch norms' `1/sqrt(var + eps)`).
            if let (Op::Unary(crate::ir::ops::UnaryOp::Rsqrt), [t]) = (&n.op, &c[..]) {
                if t.dtype.is_float() {
                    let v: Vec<f64> = t.to_f64s().iter().map(|x| 1.0 / x.sqrt()).collect();
                    return Some(vec![Tensor::from_f64s(t.dtype, t.shape.clone(), &v)]);
                }
            }
            let refs: Vec<&Tensor> = c.iter().collect();
            let types: Vec<_> = n.outputs.iter().map(|&o| g.ty(o).clone()).collect();
            crate::readers::fold::fold(&n.op, &refs, &types)
        });
        match folded {
            Some(ts)
                if ts.len() == n.outputs.len()
                    && ts.iter().zip(&n.outputs).all(|(t, &o)| t.ty() == *g.ty(o)) =>
            {
                for (t, &o) in ts.into_iter().zip(&n.outputs) {
                    g.value_mut(o).constant = Some(t);
                }
                changed = true;
            }
            _ => kept.push(n),
        }
    }
    g.nodes = kept;
    changed
}

/// The per-channel values of a constant `[C]` or `[1, …, 1, C]` (a scalar repeats), as f64.
fn per_channel(g: &Graph, v: ValueId, c: usize) -> Option<Vec<f64>> {
    let t = g.constant(v)?;
    if t.dtype != DType::F32 {
        return None;
    }
    let vals = t.to_f64s();
    if vals.len() == 1 {
        return Some(vec![vals[0]; c]);
    }
    let ok = t.shape.last() == Some(&c) && t.shape.iter().rev().skip(1).all(|&d| d == 1);
    ok.then_some(vals)
}

/// Folds per-channel `Mul`/`Add` constants that follow a channels-last convolution into its
/// kernel and bias. Returns whether anything changed.
pub fn fold_affine_into_conv(g: &mut Graph) -> Result<bool, String> {
    let uses = g.use_counts();
    let mut consumer: HashMap<ValueId, usize> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for &x in &n.inputs {
            consumer.insert(x, i);
        }
    }
    let outputs: HashSet<ValueId> = g.outputs.iter().copied().collect();
    let sole = |v: ValueId| {
        (uses[v.0] == 1 && !outputs.contains(&v))
            .then(|| consumer.get(&v).copied())
            .flatten()
    };
    let mut absorbed = HashSet::new();
    // conv index → (new kernel, new bias, final output)
    let mut rewrites: HashMap<usize, (Tensor, Tensor, ValueId)> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let Op::Conv(c) = &n.op else { continue };
        let x_ty = g.ty(n.inputs[0]);
        let out_ty = g.ty(n.outputs[0]);
        if c.layout != Layout::Nhwc || out_ty.dtype != DType::F32 || x_ty.rank() != 4 {
            continue;
        }
        let Some(oc) = out_ty.shape.last().and_then(Dim::fixed).map(|d| d as usize) else {
            continue;
        };
        let Some(k) = g.constant(n.inputs[1]) else {
            continue;
        };
        // Output channel axis of the kernel: OHWI → 0, IHWO (depthwise) / HWIO → last.
        let k_axis = match c.kernel_layout {
            KernelLayout::Ohwi => 0,
            KernelLayout::Ihwo | KernelLayout::Hwio => k.shape.len() - 1,
            _ => continue,
        };
        if k.dtype != DType::F32 || k.shape.get(k_axis) != Some(&oc) {
            continue;
        }
        let mut bias = match n.inputs.get(2) {
            Some(&b) => match per_channel(g, b, oc) {
                Some(v) => v,
                None => continue,
            },
            None => vec![0.0; oc],
        };
        let mut scale: Option<Vec<f64>> = None;
        let mut last = n.outputs[0];
        let mut taken = vec![];
        while let Some(j) = sole(last) {
            let m = &g.nodes[j];
            let kind = match m.op {
                Op::Binary(BinaryOp::Mul) => BinaryOp::Mul,
                Op::Binary(BinaryOp::Add) => BinaryOp::Add,
                _ => break,
            };
            if m.inputs[0] == m.inputs[1] || g.ty(m.outputs[0]).shape != out_ty.shape {
                break;
            }
            let other = if m.inputs[0] == last {
                m.inputs[1]
            } else {
                m.inputs[0]
            };
            let Some(v) = per_channel(g, other, oc) else {
                break;
            };
            if kind == BinaryOp::Mul {
                let s = scale.get_or_insert_with(|| vec![1.0; oc]);
                for ch in 0..oc {
                    s[ch] *= v[ch];
                    bias[ch] *= v[ch];
                }
            } else {
                for ch in 0..oc {
                    bias[ch] += v[ch];
                }
            }
            taken.push(j);
            last = m.outputs[0];
        }
        if taken.is_empty() {
            continue;
        }
        let kernel = match &scale {
            None => k.clone(),
            Some(s) => {
                // One pass over the f32 bytes; the f64 product of two f32 values rounds to the
                // same f32 as an f32 multiply.
                let inner: usize = k.shape[k_axis + 1..].iter().product::<usize>().max(1);
                let mut out = Vec::with_capacity(k.data.len());
                for (idx, c) in k.data.chunks_exact(4).enumerate() {
                    let w = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64;
                    out.extend_from_slice(&((w * s[(idx / inner) % oc]) as f32).to_le_bytes());
                }
                Tensor::new(DType::F32, k.shape.clone(), bytes::Bytes::from(out))?
            }
        };
        absorbed.extend(taken);
        rewrites.insert(
            i,
            (kernel, Tensor::from_f64s(DType::F32, vec![oc], &bias), last),
        );
    }
    if rewrites.is_empty() {
        return Ok(false);
    }
    let mut names = g.names();
    let nodes = std::mem::take(&mut g.nodes);
    let mut kept = Vec::with_capacity(nodes.len());
    for (i, mut n) in nodes.into_iter().enumerate() {
        if absorbed.contains(&i) {
            continue;
        }
        if let Some((kernel, bias, out)) = rewrites.remove(&i) {
            let kname = names.fresh(&format!("{}/kernel_folded", n.name));
            let bname = names.fresh(&format!("{}/bias_folded", n.name));
            let k = g.add_const(&kname, kernel);
            let b = g.add_const(&bname, bias);
            n.inputs = vec![n.inputs[0], k, b];
            n.outputs = vec![out];
        }
        kept.push(n);
    }
    g.nodes = kept;
    g.remove_dead();
    Ok(true)
}
