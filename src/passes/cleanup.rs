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

pub(crate) fn retain_nodes(g: &mut Graph, dead: &[bool]) {
    let mut k = dead.iter();
    g.nodes.retain(|_| !*k.next().unwrap_or(&false));
}

/// Nodes whose inputs are all constants (and whose outputs are no graph outputs) become
/// constants, computed by the folding rules readers use (`ir::fold`: data movement on any size,
/// arithmetic on small tensors: weights are not recomputed here).
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
                crate::ir::fold::fold(&n.op, &c, &types)
            }
            _ => {
                let tys: Vec<_> = n.inputs.iter().map(|&v| g.ty(v)).collect();
                crate::ir::fold::fold_from_types(&n.op, &tys)
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

/// Ops whose operands were computed at run time become their static forms once those
/// operands are constants (an upstream fold, or a reader that could not see through them);
/// the sizes after them are then re-inferred.
pub fn static_operands(g: &mut Graph) -> Result<bool, String> {
    let mut changed = false;
    for i in 0..g.nodes.len() {
        let Op::Dynamic(d) = &g.nodes[i].op else {
            continue;
        };
        let inputs = &g.nodes[i].inputs;
        let ins = crate::ir::ops::Inputs {
            types: inputs.iter().map(|&v| g.ty(v)).collect(),
            consts: inputs.iter().map(|&v| g.constant(v)).collect(),
        };
        let Some((op, keep)) = d.to_static(&ins) else {
            continue;
        };
        let kept: Vec<ValueId> = keep
            .iter()
            .filter_map(|&k| inputs.get(k).copied())
            .collect();
        if g.infer(&op, &kept).is_err() {
            continue;
        }
        g.nodes[i].op = op;
        g.nodes[i].inputs = kept;
        changed = true;
    }
    if changed {
        g.refine_types()?;
    }
    Ok(changed)
}

fn is_scalar_like(t: &Tensor, v: f64) -> bool {
    t.dtype.is_float() && t.len() <= 1 << 16 && t.to_f64s().iter().all(|&x| x == v)
}

/// The input a node passes through unchanged, if it is an identity.
fn identity_input(g: &Graph, op: &Op, inputs: &[ValueId], out: ValueId) -> Option<ValueId> {
    let x = *inputs.first()?;
    let konst = |i: usize| inputs.get(i).and_then(|&v| g.constant(v));
    let yes = g.ty(x) == g.ty(out)
        && match op {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::{Pad, Reshape};
    use crate::ir::{fixed_shape, DType, KernelLayout, TensorType};

    fn f32s(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 37 + seed * 11) % 23) as f32 - 11.0) / 7.0)
            .collect()
    }

    fn conv(padding: Padding) -> Op {
        Op::Conv(Conv {
            layout: Layout::Nchw,
            kernel_layout: KernelLayout::Oihw,
            strides: vec![1, 1],
            dilations: vec![1, 1],
            padding,
            group: 1,
            output_padding: vec![],
        })
    }

    /// x → Pad(1 on H and W) → Conv(3x3, own pads 1) → + per-channel constant → output.
    fn pad_conv_add(extra_use: bool) -> Graph {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[1, 2, 5, 5])));
        let pad = Op::Pad(Pad {
            mode: PadMode::Constant,
            pads: vec![(0, 0), (0, 0), (1, 0), (2, 1)],
            value: 0.0,
        });
        let p = g.add_node("pad", pad, vec![x], &[]).unwrap()[0];
        let w = g.add_const("w", Tensor::from_f32(vec![3, 2, 3, 3], &f32s(54, 1)));
        let y = g
            .add_node(
                "conv",
                conv(Padding::Explicit(vec![(1, 1), (0, 1)])),
                vec![p, w],
                &[],
            )
            .unwrap()[0];
        let c = g.add_const("c", Tensor::from_f32(vec![1, 3, 1, 1], &[0.5, -1.0, 2.0]));
        let z = g
            .add_node("add", Op::Binary(BinaryOp::Add), vec![y, c], &["z".into()])
            .unwrap()[0];
        g.outputs.push(z);
        if extra_use {
            g.outputs.push(p);
        }
        g
    }

    fn same_results(a: &Graph, b: &Graph) {
        let inputs = crate::eval::random_inputs(a, 3, 1);
        let (ra, rb) = (
            crate::eval::run(a, &inputs).unwrap(),
            crate::eval::run(b, &inputs).unwrap(),
        );
        for (x, y) in ra.iter().zip(&rb) {
            let c = crate::eval::compare("out", x, y);
            assert!(c.shape_matches && c.max_rel < 1e-6, "{c:?}");
        }
    }

    #[test]
    fn pad_and_bias_fuse_into_the_convolution() {
        let src = pad_conv_add(false);
        let mut g = src.clone();
        assert!(fuse_pads(&mut g));
        assert!(fuse_conv_bias(&mut g));
        g.verify().unwrap();
        assert_eq!(g.nodes.len(), 1);
        let Op::Conv(c) = &g.nodes[0].op else {
            panic!("{:?}", g.nodes[0].op)
        };
        assert_eq!(c.padding, Padding::Explicit(vec![(2, 1), (2, 2)]));
        assert_eq!(g.nodes[0].inputs.len(), 3);
        assert_eq!(g.value(g.outputs[0]).name, "z");
        same_results(&src, &g);
    }

    #[test]
    fn pads_fuse_into_pools_only_when_the_fill_matches() {
        let build = |kind: PoolKind, value: f64, own: Vec<(usize, usize)>| {
            let mut g = Graph::new();
            let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[1, 2, 6, 6])));
            let pad = Op::Pad(Pad {
                mode: PadMode::Constant,
                pads: vec![(0, 0), (0, 0), (1, 1), (0, 2)],
                value,
            });
            let p = g.add_node("pad", pad, vec![x], &[]).unwrap()[0];
            let pool = Op::Pool(Pool {
                kind,
                layout: Layout::Nchw,
                kernel: vec![3, 3],
                strides: vec![2, 2],
                dilations: vec![1, 1],
                padding: Padding::Explicit(own),
                ceil_mode: false,
                count_include_pad: false,
            });
            let y = g.add_node("pool", pool, vec![p], &["y".into()]).unwrap()[0];
            g.outputs.push(y);
            g
        };
        for (kind, value, fuses) in [
            (PoolKind::Max, f32::MIN as f64, true),
            (PoolKind::Max, 0.0, false),
            (PoolKind::Avg, 0.0, false), // the pool's own pads are not counted: differs
            (PoolKind::Avg, 1.0, false),
        ] {
            let src = build(kind, value, vec![(0, 0), (1, 0)]);
            let mut g = src.clone();
            assert_eq!(fuse_pads(&mut g), fuses, "{kind:?} {value}");
            g.verify().unwrap();
            same_results(&src, &g);
        }
        // Average pooling without pads of its own counts the Pad's zeros once fused.
        let src = build(PoolKind::Avg, 0.0, vec![(0, 0), (0, 0)]);
        let mut g = src.clone();
        assert!(fuse_pads(&mut g));
        same_results(&src, &g);
    }

    #[test]
    fn values_with_other_users_are_not_rewritten() {
        let src = pad_conv_add(true);
        let mut g = src.clone();
        assert!(
            !fuse_pads(&mut g),
            "the padded value is also a graph output"
        );
        assert!(fuse_conv_bias(&mut g));
        same_results(&src, &g);
        // A conv output read twice keeps its Add.
        let mut h = pad_conv_add(false);
        let y = h.nodes[1].outputs[0];
        h.outputs.push(y);
        assert!(!fuse_conv_bias(&mut h));
    }

    #[test]
    fn identities_go_and_chains_resolve() {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[2, 3])));
        let zero = g.add_const("zero", Tensor::scalar_f32(0.0));
        let one = g.add_const("one", Tensor::from_f32(vec![1, 3], &[1.0; 3]));
        let a = g
            .add_node("add0", Op::Binary(BinaryOp::Add), vec![x, zero], &[])
            .unwrap()[0];
        let r = g
            .add_node(
                "reshape",
                Op::Reshape(Reshape {
                    shape: fixed_shape(&[2, 3]),
                }),
                vec![a],
                &[],
            )
            .unwrap()[0];
        let m = g
            .add_node("mul1", Op::Binary(BinaryOp::Mul), vec![one, r], &[])
            .unwrap()[0];
        let t = g
            .add_node(
                "tanh",
                Op::Unary(crate::ir::ops::UnaryOp::Tanh),
                vec![m],
                &[],
            )
            .unwrap()[0];
        g.outputs.push(t);
        let src = g.clone();
        assert!(remove_identities(&mut g));
        g.remove_dead();
        g.verify().unwrap();
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.nodes[0].inputs[0], g.inputs[0]);
        same_results(&src, &g);
        // `x * 2` is no identity.
        let mut h = src.clone();
        let two = h.add_const("two", Tensor::scalar_f32(2.0));
        h.nodes[2].inputs[0] = two;
        let before = h.nodes.len();
        remove_identities(&mut h);
        assert_eq!(h.nodes.len(), before - 2);
    }

    #[test]
    fn constant_subgraphs_fold() {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[2, 3])));
        let a = g.add_const("a", Tensor::from_f32(vec![3], &[1.0, 2.0, 3.0]));
        let b = g.add_const("b", Tensor::from_f32(vec![3], &[4.0, 5.0, 6.0]));
        let s = g
            .add_node("sum", Op::Binary(BinaryOp::Mul), vec![a, b], &[])
            .unwrap()[0];
        let y = g
            .add_node("add", Op::Binary(BinaryOp::Add), vec![x, s], &[])
            .unwrap()[0];
        g.outputs.push(y);
        let src = g.clone();
        assert!(fold_constants(&mut g));
        g.verify().unwrap();
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.constant(s).unwrap().to_f64s(), vec![4.0, 10.0, 18.0]);
        same_results(&src, &g);
        assert!(!fold_constants(&mut g));
    }
}
