//! Clean-up and fusion rules that keep results exactly (up to float rounding of folded
//! constants): constant folding, identity removal, convolution bias fusion and pad fusion.
//! Batch-norm folding (fuse.rs), transpose sinking (transpose.rs) and dead-code removal join them
//! in [`super::cleanup_passes`].
//!
//! Every rule rewrites a value only when nothing else uses it (single use, not a graph output),
//! so no other reader of the value sees a different result. Rules collect their rewrites first
//! and apply them in one sweep over the nodes (a replacement map resolved once): linear in the
//! graph's size however many rewrites there are.

use crate::ir::ops::{BinaryOp, Conv, PadMode, Padding, Pool, PoolKind, SliceAxis};
use crate::ir::{Dim, Graph, Layout, Op, Tensor, ValueId};
use std::collections::HashMap;

/// Redirects every use of a key to its value (following chains), in one sweep.
fn apply_replacements(g: &mut Graph, map: &HashMap<ValueId, ValueId>) {
    if map.is_empty() {
        return;
    }
    let resolve = |mut v: ValueId| {
        while let Some(&n) = map.get(&v) {
            v = n;
        }
        v
    };
    for n in &mut g.nodes {
        for i in &mut n.inputs {
            *i = resolve(*i);
        }
    }
    for o in &mut g.outputs {
        *o = resolve(*o);
    }
}

fn retain_nodes(g: &mut Graph, dead: &[bool]) {
    let mut k = dead.iter();
    g.nodes.retain(|_| !*k.next().unwrap_or(&false));
}

/// Nodes whose inputs are all constants (and whose outputs are no graph outputs) become
/// constants, computed by the readers' folding rules (data movement on any size, arithmetic on
/// small tensors: weights are not recomputed here).
pub fn fold_constants(g: &mut Graph) -> bool {
    let mut dead = vec![false; g.nodes.len()];
    let mut folded: Vec<(ValueId, Tensor)> = Vec::new();
    let mut now_const = vec![false; g.values.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        if n.outputs.iter().any(|o| g.outputs.contains(o)) {
            continue;
        }
        let consts: Option<Vec<&Tensor>> = n.inputs.iter().map(|&v| g.constant(v)).collect();
        let types: Vec<_> = n.outputs.iter().map(|&o| g.ty(o).clone()).collect();
        let result = match consts {
            Some(c) if !c.is_empty() && !n.inputs.iter().any(|v| now_const[v.0]) => {
                crate::readers::fold::fold(&n.op, &c, &types)
            }
            _ => {
                let tys: Vec<_> = n.inputs.iter().map(|&v| g.ty(v)).collect();
                crate::readers::fold::fold_from_types(&n.op, &tys)
            }
        };
        let Some(ts) = result else { continue };
        if ts.len() != n.outputs.len() || ts.iter().zip(&types).any(|(t, ty)| t.ty() != *ty) {
            continue;
        }
        dead[i] = true;
        for (&o, t) in n.outputs.iter().zip(ts) {
            now_const[o.0] = true;
            folded.push((o, t));
        }
    }
    if folded.is_empty() {
        return false;
    }
    for (o, t) in folded {
        g.value_mut(o).constant = Some(t);
    }
    retain_nodes(g, &dead);
    true
}

fn is_scalar_like(t: &Tensor, v: f64) -> bool {
    t.dtype.is_float() && t.to_f64s().iter().all(|&x| x == v)
}

/// The input a node passes through unchanged, if it is an identity.
fn identity_input(g: &Graph, op: &Op, inputs: &[ValueId], out: ValueId) -> Option<ValueId> {
    let x = *inputs.first()?;
    if g.ty(x) != g.ty(out) {
        return None;
    }
    let konst = |i: usize| inputs.get(i).and_then(|&v| g.constant(v));
    let yes = match op {
        Op::Reshape(_) | Op::Expand(_) | Op::Cast(_) => true,
        Op::Transpose(t) => t.perm.iter().enumerate().all(|(k, &p)| k == p),
        Op::Tile(t) => t.repeats.iter().all(|&r| r == 1),
        Op::Pad(p) => p.pads.iter().all(|&(a, b)| a == 0 && b == 0),
        Op::Concat(_) => inputs.len() == 1,
        Op::Slice(s) => s.axes.iter().all(|a| whole_axis(a, &g.ty(x).shape)),
        Op::Activation(crate::ir::ops::Activation::Clip {
            min: None,
            max: None,
        }) => true,
        Op::Binary(BinaryOp::Add | BinaryOp::Sub) => {
            konst(1).is_some_and(|t| is_scalar_like(t, 0.0))
        }
        Op::Binary(BinaryOp::Mul | BinaryOp::Div) => {
            konst(1).is_some_and(|t| is_scalar_like(t, 1.0))
        }
        _ => false,
    };
    if yes {
        return Some(x);
    }
    // `0 + x` and `1 * x`.
    match (op, inputs.get(1)) {
        (Op::Binary(BinaryOp::Add), Some(&y)) if g.ty(y) == g.ty(out) => konst(0)
            .is_some_and(|t| is_scalar_like(t, 0.0))
            .then_some(y),
        (Op::Binary(BinaryOp::Mul), Some(&y)) if g.ty(y) == g.ty(out) => konst(0)
            .is_some_and(|t| is_scalar_like(t, 1.0))
            .then_some(y),
        _ => None,
    }
}

fn whole_axis(a: &SliceAxis, shape: &[Dim]) -> bool {
    let Some(Dim::Fixed(n)) = shape.get(a.axis) else {
        return false;
    };
    a.step == 1 && (a.start == 0 || a.start <= -(*n as i64)) && a.end >= *n as i64
}

/// Removes nodes that pass their input through unchanged (same type in and out): reshapes to
/// the same shape, identity transposes, casts to the same type, zero pads, whole slices,
/// single-input concats, unit tiles/expands, unbounded clips, `x + 0`, `x - 0`, `x * 1`, `x / 1`.
/// A node writing a graph output stays (the output keeps its name).
pub fn remove_identities(g: &mut Graph) -> bool {
    let mut dead = vec![false; g.nodes.len()];
    let mut map = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let [out] = n.outputs[..] else { continue };
        if g.outputs.contains(&out) {
            continue;
        }
        if let Some(x) = identity_input(g, &n.op, &n.inputs, out) {
            map.insert(out, x);
            dead[i] = true;
        }
    }
    if map.is_empty() {
        return false;
    }
    retain_nodes(g, &dead);
    apply_replacements(g, &map);
    true
}

/// Per-channel values of a constant that broadcasts against a `[.., C, ..]` value only along
/// its channel axis (or is a scalar).
fn channel_vector(t: &Tensor, rank: usize, axis: usize, channels: usize) -> Option<Vec<f64>> {
    if !t.dtype.is_float() || t.shape.len() > rank {
        return None;
    }
    let v = t.to_f64s();
    if v.len() == 1 {
        return Some(vec![v[0]; channels]);
    }
    let pad = rank - t.shape.len();
    let ok = t.shape.iter().enumerate().all(|(k, &d)| {
        if k + pad == axis {
            d == channels
        } else {
            d == 1
        }
    });
    ok.then_some(v)
}

/// `conv(x) + c` with a constant `c` along the output channels becomes the convolution's bias
/// (added to the bias it has). The convolution's output must feed only the Add.
pub fn fuse_conv_bias(g: &mut Graph) -> bool {
    let producers = g.producers();
    let uses = g.use_counts();
    let mut dead = vec![false; g.nodes.len()];
    let mut plans: Vec<(usize, usize, Tensor)> = Vec::new();
    for (ai, add) in g.nodes.iter().enumerate() {
        if add.op != Op::Binary(BinaryOp::Add) || add.inputs.len() != 2 {
            continue;
        }
        let out = add.outputs[0];
        for (y, c) in [
            (add.inputs[0], add.inputs[1]),
            (add.inputs[1], add.inputs[0]),
        ] {
            let (Some(&ci), Some(ct)) = (producers.get(&y), g.constant(c)) else {
                continue;
            };
            if uses[y.0] != 1 || g.outputs.contains(&y) || dead[ci] || g.ty(y) != g.ty(out) {
                continue;
            }
            let conv = &g.nodes[ci];
            let (Op::Conv(cv) | Op::ConvTranspose(cv)) = &conv.op else {
                continue;
            };
            let ty = g.ty(y);
            if ty.dtype != crate::ir::DType::F32 {
                continue;
            }
            let axis = cv.layout.channel_axis(ty.rank());
            let Some(Dim::Fixed(ch)) = ty.shape.get(axis).cloned() else {
                continue;
            };
            let Some(add_v) = channel_vector(ct, ty.rank(), axis, ch as usize) else {
                continue;
            };
            let old = match conv.inputs.get(2) {
                Some(&b) => match g.constant(b) {
                    Some(t) if t.dtype == crate::ir::DType::F32 && t.len() == ch as usize => {
                        t.to_f64s()
                    }
                    _ => continue,
                },
                None => vec![0.0; ch as usize],
            };
            let bias: Vec<f64> = old.iter().zip(&add_v).map(|(a, b)| a + b).collect();
            let bias = Tensor::from_f64s(crate::ir::DType::F32, vec![ch as usize], &bias);
            plans.push((ci, ai, bias));
            dead[ai] = true;
            dead[ci] = true; // not planned twice
            break;
        }
    }
    if plans.is_empty() {
        return false;
    }
    let mut names = g.names();
    for (ci, ai, bias) in plans {
        let name = names.fresh(&format!("{}/bias", g.nodes[ci].name));
        let b = g.add_const(&name, bias);
        let out = g.nodes[ai].outputs[0];
        let conv = &mut g.nodes[ci];
        conv.inputs.truncate(2);
        conv.inputs.push(b);
        conv.outputs[0] = out;
        dead[ci] = false;
    }
    retain_nodes(g, &dead);
    g.remove_dead();
    true
}

/// The spatial padding a Pad adds for a consumer in `layout`, when it pads nothing else and
/// never crops.
fn spatial_pads(pads: &[(i64, i64)], layout: Layout) -> Option<Vec<(usize, usize)>> {
    let rank = pads.len();
    if rank < 3 || pads.iter().any(|&(a, b)| a < 0 || b < 0) {
        return None;
    }
    let spatial = layout.spatial_axes(rank);
    if (0..rank).any(|k| !spatial.contains(&k) && pads[k] != (0, 0)) {
        return None;
    }
    Some(
        spatial
            .map(|k| (pads[k].0 as usize, pads[k].1 as usize))
            .collect(),
    )
}

fn add_pads(a: &[(usize, usize)], b: &[(usize, usize)]) -> Padding {
    Padding::Explicit(
        a.iter()
            .zip(b)
            .map(|(x, y)| (x.0 + y.0, x.1 + y.1))
            .collect(),
    )
}

/// The consumer with the Pad folded into its padding, when that computes the same.
fn padded_consumer(
    g: &Graph,
    op: &Op,
    pad_value: f64,
    x: ValueId,
    k: Option<ValueId>,
    pads: &[(i64, i64)],
) -> Option<Op> {
    match op {
        Op::Conv(c) if pad_value == 0.0 => {
            let extra = spatial_pads(pads, c.layout)?;
            let kt = g.ty(k?);
            let (_, _, ks) = c.kernel_dims(&kt.shape).ok()?;
            let xt = g.ty(x);
            let spatial: Vec<Dim> = xt.shape[c.layout.spatial_axes(xt.rank())].to_vec();
            // SAME padding depends on the input size: resolve it for the padded input.
            let own = c.explicit_pads(&spatial, &ks)?;
            Some(Op::Conv(Conv {
                padding: add_pads(&own, &extra),
                ..c.clone()
            }))
        }
        Op::Pool(p) if !p.ceil_mode => {
            let Padding::Explicit(own) = &p.padding else {
                return None;
            };
            let extra = spatial_pads(pads, p.layout)?;
            let ok = match p.kind {
                // Max pooling pads with -inf: a Pad with the lowest float does the same.
                PoolKind::Max => pad_value <= f32::MIN as f64,
                // Zeros counted in the divisor, as the Pad's zeros were.
                PoolKind::Avg => {
                    pad_value == 0.0
                        && (p.count_include_pad || own.iter().all(|&(a, b)| a == 0 && b == 0))
                }
                PoolKind::L2 => false,
            };
            ok.then(|| {
                Op::Pool(Pool {
                    padding: add_pads(own, &extra),
                    count_include_pad: p.count_include_pad || p.kind == PoolKind::Avg,
                    ..p.clone()
                })
            })
        }
        _ => None,
    }
}

/// A constant-mode Pad of spatial axes feeding only a convolution (zeros) or a pool (-inf for
/// max, zeros for average counting pads) becomes the consumer's own padding.
pub fn fuse_pads(g: &mut Graph) -> bool {
    let producers = g.producers();
    let uses = g.use_counts();
    let mut dead = vec![false; g.nodes.len()];
    let mut changes: Vec<(usize, Op, ValueId)> = Vec::new();
    for (ci, n) in g.nodes.iter().enumerate() {
        let Some(&x) = n.inputs.first() else { continue };
        let Some(&pi) = producers.get(&x) else {
            continue;
        };
        let Op::Pad(p) = &g.nodes[pi].op else {
            continue;
        };
        if p.mode != PadMode::Constant
            || uses[x.0] != 1
            || g.outputs.contains(&x)
            || dead[pi]
            || g.nodes[pi].inputs.len() != 1
        {
            continue;
        }
        let src = g.nodes[pi].inputs[0];
        if let Some(op) = padded_consumer(g, &n.op, p.value, x, n.inputs.get(1).copied(), &p.pads) {
            dead[pi] = true;
            changes.push((ci, op, src));
        }
    }
    if changes.is_empty() {
        return false;
    }
    for (ci, op, src) in changes {
        g.nodes[ci].op = op;
        g.nodes[ci].inputs[0] = src;
    }
    retain_nodes(g, &dead);
    g.remove_dead();
    true
}
