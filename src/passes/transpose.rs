//! Transpose cleanup: sinks transposes through ops that commute with them (elementwise ops,
//! binary ops with transposed or constant operands, concat, softmax, keep-dims reductions, pad,
//! slice) until they meet their inverse and cancel, and lets the size of one axis be read
//! before a transpose rather than after it; turns transposes that only move size-1 axes
//! into reshapes and merges consecutive reshapes. One sweep in topological order carries a
//! transpose as far down as it goes, so the pass is linear in the graph's size.

use super::layout::inverse;
use crate::ir::ops::{Concat, Reduce, Reshape, ShapeOf, Slice, Softmax, Transpose};
use crate::ir::{Dim, Graph, Names, Op, TensorType, ValueId};
use std::collections::HashMap;

struct State {
    producer: HashMap<ValueId, usize>,
    uses: Vec<usize>,
    /// Values replaced by others (identity transposes removed), resolved when read.
    replaced: HashMap<ValueId, ValueId>,
    names: Names,
    is_output: Vec<bool>,
    /// Existing transposes by (input, perm), so a needed one is shared rather than repeated.
    transposes: HashMap<(ValueId, Vec<usize>), ValueId>,
    /// The nodes reading each value when the sweep began (current inputs are checked on use).
    consumers: HashMap<ValueId, Vec<usize>>,
}

impl State {
    fn resolve(&self, mut v: ValueId) -> ValueId {
        while let Some(&r) = self.replaced.get(&v) {
            v = r;
        }
        v
    }
}

/// The transpose feeding `v`, if `v` is a transpose's output used only once and not a graph output.
fn sole_transpose(g: &Graph, st: &State, v: ValueId) -> Option<(usize, Vec<usize>)> {
    let &t = st.producer.get(&v)?;
    match &g.nodes[t].op {
        Op::Transpose(tr) if st.uses[v.0] == 1 && !st.is_output[v.0] => Some((t, tr.perm.clone())),
        _ => None,
    }
}

fn permuted(t: &TensorType, perm: &[usize]) -> TensorType {
    TensorType::new(t.dtype, perm.iter().map(|&p| t.shape[p].clone()).collect())
}

/// Runs the cleanup; returns whether anything changed.
pub fn clean_transposes(g: &mut Graph) -> Result<bool, String> {
    let mut st = State {
        producer: g.producers(),
        uses: g.use_counts(),
        replaced: HashMap::new(),
        names: g.names(),
        is_output: {
            let mut o = vec![false; g.values.len()];
            for &v in &g.outputs {
                o[v.0] = true;
            }
            o
        },
        transposes: g
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Transpose(t) => Some(((n.inputs[0], t.perm.clone()), n.outputs[0])),
                _ => None,
            })
            .collect(),
        consumers: HashMap::new(),
    };
    for (i, n) in g.nodes.iter().enumerate() {
        for &v in &n.inputs {
            st.consumers.entry(v).or_default().push(i);
        }
    }
    let mut changed = false;
    for i in 0..g.nodes.len() {
        let resolved: Vec<ValueId> = g.nodes[i].inputs.iter().map(|&v| st.resolve(v)).collect();
        g.nodes[i].inputs = resolved;
        changed |= rewrite(g, &mut st, i)?;
    }
    let outs: Vec<ValueId> = g.outputs.iter().map(|&v| st.resolve(v)).collect();
    g.outputs = outs;
    if changed {
        g.sort()?;
        g.remove_dead();
    }
    Ok(reshape_sweep(g) || changed)
}

/// After the sweep: transposes that only move size-1 axes become reshapes, a reshape of a
/// single-use reshape reads the first one's input, and a reshape to its input's own shape is
/// dropped. (A squeeze-excite block's 1×1 convolutions, made NCHW between NHWC elementwise ops,
/// leave `[N,1,1,C] ↔ [N,C,1,1]` pairs that would otherwise stay as reshapes around every op.)
fn reshape_sweep(g: &mut Graph) -> bool {
    let mut changed = false;
    for i in 0..g.nodes.len() {
        if matches!(g.nodes[i].op, Op::Transpose(_)) {
            changed |= transpose_to_reshape(g, i);
        }
    }
    let producer = g.producers();
    let mut uses = g.use_counts();
    let mut is_output = vec![false; g.values.len()];
    for &v in &g.outputs {
        is_output[v.0] = true;
    }
    let mut replaced: HashMap<ValueId, ValueId> = HashMap::new();
    for i in 0..g.nodes.len() {
        for k in 0..g.nodes[i].inputs.len() {
            if let Some(&r) = replaced.get(&g.nodes[i].inputs[k]) {
                g.nodes[i].inputs[k] = r;
            }
        }
        if !matches!(g.nodes[i].op, Op::Reshape(_)) {
            continue;
        }
        let x = g.nodes[i].inputs[0];
        let sole = |v: ValueId, uses: &[usize]| uses[v.0] == 1 && !is_output[v.0];
        if let Some(&r1) = producer.get(&x) {
            if matches!(g.nodes[r1].op, Op::Reshape(_)) && sole(x, &uses) {
                // The first reshape is dead now: its input's use count moves to this one.
                uses[x.0] = 0;
                g.nodes[i].inputs[0] = g.nodes[r1].inputs[0];
                changed = true;
            }
        }
        let x = g.nodes[i].inputs[0];
        if let Some(&r) = producer.get(&x) {
            if sole(x, &uses) {
                changed |= keep_reduced_axes(g, r, g.nodes[i].outputs[0]);
            }
        }
        let (x, y) = (g.nodes[i].inputs[0], g.nodes[i].outputs[0]);
        if !is_output[y.0] && g.ty(x).shape == g.ty(y).shape && g.nodes[i].inputs.len() == 1 {
            replaced.insert(y, x);
            changed = true;
        }
    }
    if changed {
        g.remove_dead();
    }
    changed
}

/// A reduction without kept axes whose only reader reshapes it to the shape it has with them
/// (`[N,C]` back to `[N,C,1,1]`: squeeze-excite) keeps them instead; the reshape, now to its
/// input's own shape, is then dropped.
fn keep_reduced_axes(g: &mut Graph, r: usize, reshaped: ValueId) -> bool {
    let Op::Reduce(red) = &g.nodes[r].op else {
        return false;
    };
    if red.keep_dims {
        return false;
    }
    let src = g.ty(g.nodes[r].inputs[0]).shape.clone();
    let kept: Vec<Dim> = src
        .iter()
        .enumerate()
        .map(|(a, d)| {
            if red.axes.contains(&a) {
                Dim::Fixed(1)
            } else {
                d.clone()
            }
        })
        .collect();
    if g.ty(reshaped).shape != kept {
        return false;
    }
    let mut op = red.clone();
    op.keep_dims = true;
    g.nodes[r].op = Op::Reduce(op);
    let out = g.nodes[r].outputs[0];
    g.value_mut(out).ty.shape = kept;
    true
}

fn rewrite(g: &mut Graph, st: &mut State, i: usize) -> Result<bool, String> {
    let op = g.nodes[i].op.clone();
    match op {
        // A transpose of size-1 axes stays a transpose while the sweep runs (so that it sinks
        // and cancels like any other); `reshape_sweep` turns what is left into reshapes.
        Op::Transpose(t2) => Ok(compose(g, st, i, &t2.perm)),
        Op::Reshape(_) => Ok(merge_reshapes(g, st, i)),
        Op::Unary(_) | Op::Activation(_) | Op::Cast(_) => {
            let split = split_for_gate(g, st, i);
            Ok(sink(g, st, i, |_, op| Some(op.clone()))? || split)
        }
        Op::Softmax(s) => sink(g, st, i, |p, _| {
            Some(Op::Softmax(Softmax {
                axis: p[s.axis],
                log: s.log,
            }))
        }),
        Op::Reduce(r) if !r.keep_dims => Ok(reduce_through(g, st, i, &r)),
        Op::Reduce(r) => Ok(sink(g, st, i, |p, _| {
            let mut axes: Vec<usize> = r.axes.iter().map(|&a| p[a]).collect();
            axes.sort_unstable();
            Some(Op::Reduce(Reduce {
                kind: r.kind,
                axes,
                keep_dims: true,
            }))
        })? || reduce_keep_through(g, st, i, &r)),
        Op::Pad(pad) => sink(g, st, i, |p, _| {
            let mut q = pad.clone();
            let inv = inverse(p);
            q.pads = (0..p.len()).map(|a| pad.pads[inv[a]]).collect();
            Some(Op::Pad(q))
        }),
        Op::Slice(s) => sink(g, st, i, |p, _| {
            let mut q = s.clone();
            for a in &mut q.axes {
                a.axis = p[a.axis];
            }
            Some(Op::Slice(Slice { axes: q.axes }))
        }),
        Op::Binary(_) => sink_binary(g, st, i),
        Op::Concat(c) => sink_concat(g, st, i, c.axis),
        Op::ShapeOf(s) if s.end == s.start + 1 => Ok(size_before_transpose(g, st, i, s.start)),
        Op::Where
        | Op::MatMul(_)
        | Op::Einsum(_)
        | Op::Conv(_)
        | Op::ConvTranspose(_)
        | Op::Pool(_)
        | Op::GlobalPool(_)
        | Op::BatchNorm(_)
        | Op::LayerNorm(_)
        | Op::InstanceNorm(_)
        | Op::Hardmax(_)
        | Op::LpNorm(_)
        | Op::Split(_)
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
        | Op::Loop(_) => Ok(false),
    }
}

/// A reduction without kept axes over a transposed value whose remaining axes keep their order
/// (a global average over H, W of NHWC read from NCHW: squeeze-excite blocks) reads the
/// transpose's input with its axes mapped, and needs no transpose after it: the transpose loses
/// a reader (whatever the others are) and nothing is added.
fn reduce_through(g: &mut Graph, st: &mut State, i: usize, r: &Reduce) -> bool {
    let v = g.nodes[i].inputs[0];
    let Some(&t) = st.producer.get(&v) else {
        return false;
    };
    let Op::Transpose(tr) = &g.nodes[t].op else {
        return false;
    };
    let perm = &tr.perm;
    if r.axes.iter().any(|&a| a >= perm.len()) {
        return false;
    }
    let kept: Vec<usize> = (0..perm.len())
        .filter(|a| !r.axes.contains(a))
        .map(|a| perm[a])
        .collect();
    if kept.windows(2).any(|w| w[0] > w[1]) {
        return false;
    }
    let mut axes: Vec<usize> = r.axes.iter().map(|&a| perm[a]).collect();
    axes.sort_unstable();
    let src = g.nodes[t].inputs[0];
    st.uses[v.0] -= 1;
    st.uses[src.0] += 1;
    g.nodes[i].inputs[0] = src;
    g.nodes[i].op = Op::Reduce(Reduce {
        kind: r.kind,
        axes,
        keep_dims: false,
    });
    true
}

/// A reduction with kept axes over a transpose that has other readers: the reduction reads the
/// transpose's input (axes mapped) and a new transpose of the small result takes its place, so
/// the big transpose loses a reader and the new one can sink on (squeeze-excite's mean, read
/// beside the block's product, otherwise pins the transpose before both).
fn reduce_keep_through(g: &mut Graph, st: &mut State, i: usize, r: &Reduce) -> bool {
    let v = g.nodes[i].inputs[0];
    let Some(&t) = st.producer.get(&v) else {
        return false;
    };
    let Op::Transpose(tr) = &g.nodes[t].op else {
        return false;
    };
    let perm = tr.perm.clone();
    let x = g.nodes[t].inputs[0];
    let mut axes: Vec<usize> = r.axes.iter().map(|&a| perm[a]).collect();
    axes.sort_unstable();
    let out = g.nodes[i].outputs[0];
    let inner_ty = permuted(g.ty(out), &inverse(&perm));
    let inner = g.add_value(
        &st.names.fresh(&format!("{}/pre", g.value(out).name)),
        inner_ty,
    );
    st.uses.push(1);
    st.is_output.push(false);
    st.uses[v.0] -= 1;
    st.uses[x.0] += 1;
    g.nodes[i].inputs[0] = x;
    g.nodes[i].outputs[0] = inner;
    g.nodes[i].op = Op::Reduce(Reduce {
        kind: r.kind,
        axes,
        keep_dims: true,
    });
    st.producer.insert(inner, i);
    let name = st.names.fresh(&format!("{}/transpose", g.value(out).name));
    st.producer.insert(out, g.nodes.len());
    g.nodes.push(crate::ir::Node {
        name,
        op: Op::Transpose(Transpose { perm }),
        inputs: vec![inner],
        outputs: vec![out],
    });
    true
}

/// A gate `x · f(x)` over a transposed `x` (swish, GELU's tanh form: the transpose feeds `f`
/// and the product, and nothing else): `f` gets a transpose of its own, so that it sinks
/// through `f` and the product then meets two equal transposes and sinks too. A lone
/// transpose with two readers would stop both (EfficientNet's 33 swishes kept 66 transposes
/// in the ONNX output, which cut every int8 convolution off its QDQ neighbours).
fn split_for_gate(g: &mut Graph, st: &mut State, i: usize) -> bool {
    let (Some(&v), [out]) = (g.nodes[i].inputs.first(), g.nodes[i].outputs.as_slice()) else {
        return false;
    };
    let out = *out;
    if st.uses[v.0] != 2 || st.is_output[v.0] {
        return false;
    }
    let Some(&t) = st.producer.get(&v) else {
        return false;
    };
    let Op::Transpose(tr) = &g.nodes[t].op else {
        return false;
    };
    let perm = tr.perm.clone();
    let gated = st.consumers.get(&v).into_iter().flatten().any(|&m| {
        m != i
            && matches!(g.nodes[m].op, Op::Binary(_))
            && g.nodes[m].inputs.contains(&v)
            && g.nodes[m].inputs.contains(&out)
    });
    if !gated {
        return false;
    }
    let src = g.nodes[t].inputs[0];
    let name = st.names.fresh(&format!("{}/gate", g.value(v).name));
    let copy = g.add_value(&name, g.ty(v).clone());
    st.uses.push(1);
    st.is_output.push(false);
    st.uses[v.0] -= 1;
    st.uses[src.0] += 1;
    let node = st
        .names
        .fresh(&format!("{}/gate_transpose", g.value(v).name));
    g.nodes.push(crate::ir::Node {
        name: node,
        op: Op::Transpose(Transpose { perm }),
        inputs: vec![src],
        outputs: vec![copy],
    });
    st.producer.insert(copy, g.nodes.len() - 1);
    g.nodes[i].inputs[0] = copy;
    true
}

/// The size of one axis of a transpose's output read from its input instead (`axis` of
/// `Transpose(x, p)` is `p[axis]` of `x`), so the transpose is not kept only to be measured.
fn size_before_transpose(g: &mut Graph, st: &mut State, i: usize, axis: usize) -> bool {
    let v = g.nodes[i].inputs[0];
    let Some(&t) = st.producer.get(&v) else {
        return false;
    };
    let Op::Transpose(tr) = &g.nodes[t].op else {
        return false;
    };
    let (x, from) = (g.nodes[t].inputs[0], tr.perm[axis]);
    g.nodes[i].op = Op::ShapeOf(ShapeOf {
        start: from,
        end: from + 1,
    });
    g.nodes[i].inputs[0] = x;
    st.uses[v.0] -= 1;
    st.uses[x.0] += 1;
    true
}

/// Transpose of a transpose: one transpose, or none when they cancel.
fn compose(g: &mut Graph, st: &mut State, i: usize, p2: &[usize]) -> bool {
    let x = g.nodes[i].inputs[0];
    let Some(&t1) = st.producer.get(&x) else {
        return false;
    };
    let Op::Transpose(tr1) = &g.nodes[t1].op else {
        return false;
    };
    let src = g.nodes[t1].inputs[0];
    let perm: Vec<usize> = p2.iter().map(|&k| tr1.perm[k]).collect();
    let out = g.nodes[i].outputs[0];
    st.uses[x.0] -= 1;
    st.uses[src.0] += 1;
    if perm.iter().enumerate().all(|(k, &p)| k == p) && !st.is_output[out.0] {
        // Identity: readers of `out` read `src`; the node becomes dead.
        st.replaced.insert(out, src);
        st.uses[src.0] += st.uses[out.0];
        g.nodes[i].inputs[0] = src;
        return true;
    }
    g.nodes[i].inputs[0] = src;
    g.nodes[i].op = Op::Transpose(Transpose { perm });
    true
}

/// A transpose that only moves size-1 axes keeps the memory order: it is a reshape.
fn transpose_to_reshape(g: &mut Graph, i: usize) -> bool {
    let Op::Transpose(t) = &g.nodes[i].op else {
        return false;
    };
    let x = g.ty(g.nodes[i].inputs[0]);
    let kept: Vec<usize> = t
        .perm
        .iter()
        .copied()
        .filter(|&a| x.shape[a] != Dim::Fixed(1))
        .collect();
    if !kept.windows(2).all(|w| w[0] < w[1]) {
        return false;
    }
    let shape = g.ty(g.nodes[i].outputs[0]).shape.clone();
    g.nodes[i].op = Op::Reshape(Reshape { shape });
    true
}

/// Reshape of a single-use reshape reads the first reshape's input directly.
fn merge_reshapes(g: &mut Graph, st: &mut State, i: usize) -> bool {
    let x = g.nodes[i].inputs[0];
    let Some(&r1) = st.producer.get(&x) else {
        return false;
    };
    if !matches!(g.nodes[r1].op, Op::Reshape(_)) || st.uses[x.0] != 1 || st.is_output[x.0] {
        return false;
    }
    let src = g.nodes[r1].inputs[0];
    st.uses[x.0] -= 1;
    st.uses[src.0] += 1;
    g.nodes[i].inputs[0] = src;
    true
}

/// Moves the transpose feeding input 0 of node `i` to after it, with the node's op adapted by
/// `adapt(perm, op)`. The transpose node is reused: it now reads the node's new output.
fn sink(
    g: &mut Graph,
    st: &mut State,
    i: usize,
    adapt: impl Fn(&[usize], &Op) -> Option<Op>,
) -> Result<bool, String> {
    if g.nodes[i].outputs.len() != 1 {
        return Ok(false);
    }
    let Some((t, perm)) = sole_transpose(g, st, g.nodes[i].inputs[0]) else {
        return Ok(false);
    };
    let Some(new_op) = adapt(&perm, &g.nodes[i].op) else {
        return Ok(false);
    };
    let x = g.nodes[t].inputs[0];
    g.nodes[i].inputs[0] = x;
    g.nodes[i].op = new_op;
    move_after(g, st, i, t, &perm);
    Ok(true)
}

/// Node `i` now computes in the transpose's input layout: give it an un-permuted output value
/// and make transpose node `t` turn that into the node's original output.
fn move_after(g: &mut Graph, st: &mut State, i: usize, t: usize, perm: &[usize]) {
    let out = g.nodes[i].outputs[0];
    let old_tx = g.nodes[t].outputs[0];
    let inner_ty = permuted(g.ty(out), &inverse(perm));
    let inner = g.add_value(
        &st.names.fresh(&format!("{}/pre", g.value(out).name)),
        inner_ty,
    );
    st.uses.push(1);
    st.is_output.push(false);
    st.uses[old_tx.0] = 0;
    g.nodes[i].outputs[0] = inner;
    g.nodes[t].inputs = vec![inner];
    g.nodes[t].outputs = vec![out];
    st.producer.insert(inner, i);
    st.producer.insert(out, t);
    st.producer.remove(&old_tx);
}

/// Binary op with a transposed operand: the other is the same transpose (dropped), a constant
/// (permuted once, small) or a scalar.
fn sink_binary(g: &mut Graph, st: &mut State, i: usize) -> Result<bool, String> {
    let (a, b) = (g.nodes[i].inputs[0], g.nodes[i].inputs[1]);
    let out_rank = g.ty(g.nodes[i].outputs[0]).rank();
    for (k, other) in [(0usize, b), (1usize, a)] {
        let v = g.nodes[i].inputs[k];
        let Some((t, perm)) = sole_transpose(g, st, v) else {
            continue;
        };
        if perm.len() != out_rank || g.ty(g.nodes[t].inputs[0]).rank() != out_rank {
            continue;
        }
        let new_other =
            if let Some((t2, p2)) = sole_transpose(g, st, other).filter(|(_, p2)| *p2 == perm) {
                let _ = p2;
                let src = g.nodes[t2].inputs[0];
                st.uses[other.0] = 0;
                st.uses[src.0] += 1;
                Some(src)
            } else if let Some(c) = g.constant(other) {
                if c.shape.len() > out_rank {
                    None
                } else {
                    // Broadcast to full rank (leading 1s), then undo the permutation.
                    let mut full = vec![1usize; out_rank - c.shape.len()];
                    full.extend(&c.shape);
                    let moved = c.reshaped(full).transposed(&inverse(&perm));
                    let name = st.names.fresh(&format!("{}/moved", g.value(other).name));
                    let id = g.add_const(&name, moved);
                    st.uses.push(1);
                    st.is_output.push(false);
                    st.uses[other.0] -= 1;
                    Some(id)
                }
            } else if g.ty(other).rank() == out_rank {
                // Any other operand of full rank: transpose it the other way (shared with an
                // existing identical transpose when there is one, e.g. a skip connection's input).
                Some(transpose_of(g, st, other, &inverse(&perm)))
            } else {
                None
            };
        let Some(new_other) = new_other else { continue };
        let x = g.nodes[t].inputs[0];
        g.nodes[i].inputs[k] = x;
        g.nodes[i].inputs[1 - k] = new_other;
        move_after(g, st, i, t, &perm);
        return Ok(true);
    }
    Ok(false)
}

/// `v` transposed by `perm`: an existing transpose's output, or a new transpose node.
fn transpose_of(g: &mut Graph, st: &mut State, v: ValueId, perm: &[usize]) -> ValueId {
    // A transposed transpose may simply be its source.
    if let Some(&t) = st.producer.get(&v) {
        if let Op::Transpose(tr) = &g.nodes[t].op {
            let composed: Vec<usize> = perm.iter().map(|&k| tr.perm[k]).collect();
            if composed.iter().enumerate().all(|(k, &p)| k == p) {
                let src = g.nodes[t].inputs[0];
                st.uses[v.0] -= 1;
                st.uses[src.0] += 1;
                return src;
            }
        }
    }
    if let Some(&out) = st.transposes.get(&(v, perm.to_vec())) {
        st.uses[v.0] -= 1;
        st.uses[out.0] += 1;
        return out;
    }
    let ty = permuted(g.ty(v), perm);
    let out = g.add_value(&st.names.fresh(&format!("{}/t", g.value(v).name)), ty);
    st.uses.push(1);
    st.is_output.push(false);
    let name = st.names.fresh(&format!("{}/transpose", g.value(v).name));
    g.nodes.push(crate::ir::Node {
        name,
        op: Op::Transpose(Transpose {
            perm: perm.to_vec(),
        }),
        inputs: vec![v],
        outputs: vec![out],
    });
    st.producer.insert(out, g.nodes.len() - 1);
    st.transposes.insert((v, perm.to_vec()), out);
    out
}

/// Concat of inputs all transposed the same way: concat first (axis mapped), transpose once.
fn sink_concat(g: &mut Graph, st: &mut State, i: usize, axis: usize) -> Result<bool, String> {
    let ins = g.nodes[i].inputs.clone();
    let mut found = Vec::new();
    for &v in &ins {
        match sole_transpose(g, st, v) {
            Some((t, p))
                if found
                    .first()
                    .is_none_or(|(_, q): &(usize, Vec<usize>)| *q == p) =>
            {
                found.push((t, p))
            }
            _ => return Ok(false),
        }
    }
    let Some((t0, perm)) = found.first().cloned() else {
        return Ok(false);
    };
    for (k, (t, _)) in found.iter().enumerate() {
        g.nodes[i].inputs[k] = g.nodes[*t].inputs[0];
        if k > 0 {
            st.uses[ins[k].0] = 0;
        }
    }
    g.nodes[i].op = Op::Concat(Concat { axis: perm[axis] });
    move_after(g, st, i, t0, &perm);
    Ok(true)
}
