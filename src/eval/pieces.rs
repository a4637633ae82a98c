//! Evaluation of a large graph in pieces, so that peak memory stays near the IR's own weights.
//!
//! tract holds its own copy of every weight (and packs matmul weights into another), so running
//! a whole 100 MB graph needs two or three times its weights on top of the IR's. Cut into
//! stretches of the topological order holding at most [`PIECE_BYTES`] of constants each, only
//! one piece is in tract at a time: its weights are loaded, the batches run through it, and it is
//! dropped before the next piece loads. The values crossing a cut are kept per batch in between.
//!
//! Batches go through the pieces in waves: the first wave is one batch, which measures how
//! many bytes a batch keeps alive at the cuts; later waves take as many batches as fit in
//! [`WAVE_BYTES`], so a piece is loaded once per wave, not once per batch.

use super::{load, plan_for, release_constants, run_plan, Plan};
use crate::error::{failed, Result};
use crate::ir::{Dim, Graph, Tensor, ValueId};
use std::collections::{HashMap, HashSet};

/// Constant bytes one piece holds at most (a node whose own constants are larger is a piece
/// alone).
pub const PIECE_BYTES: usize = 16 << 20;
/// Bytes of values kept alive at the cuts for one wave of batches.
const WAVE_BYTES: usize = 32 << 20;

/// A stretch of the graph's nodes as a graph of its own.
pub struct Piece {
    pub graph: Graph,
    /// The full graph's values fed to `graph`'s inputs, in order.
    pub inputs: Vec<ValueId>,
    /// The full graph's values `graph` computes, in its output order.
    pub outputs: Vec<ValueId>,
    /// Values no later piece reads: dropped once this piece has run.
    pub done_with: Vec<ValueId>,
}

/// Cuts `g` (topologically ordered) into pieces of at most `budget` constant bytes, counted as
/// float32; none when it is one piece. A piece's
/// outputs are the values it computes that a later piece reads or that `wanted` lists.
pub fn split(g: &Graph, wanted: &[ValueId], budget: usize) -> Vec<Piece> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    let mut seen: HashSet<ValueId> = HashSet::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let consts: Vec<ValueId> = n
            .inputs
            .iter()
            .copied()
            .filter(|&v| g.constant(v).is_some())
            .collect();
        let size = |seen: &HashSet<ValueId>| -> usize {
            let mut own = HashSet::new();
            consts
                .iter()
                .filter(|&&v| !seen.contains(&v) && own.insert(v))
                .filter_map(|&v| g.constant(v))
                .map(float_bytes)
                .sum()
        };
        let mut add = size(&seen);
        // A node adding few weights (a bias) joins the piece up to twice the budget: a cut
        // before it would cost another load and save little.
        let full =
            bytes + add > budget && (add >= budget / 4 || bytes + add > budget.saturating_mul(2));
        // Control flow runs outside tract: such a node is a piece alone.
        let after_control = i > 0 && super::control::is_control(&g.nodes[i - 1]);
        if i > start && (full || after_control || super::control::is_control(n)) {
            ranges.push(start..i);
            start = i;
            bytes = 0;
            seen.clear();
            add = size(&seen);
        }
        bytes += add;
        seen.extend(consts);
    }
    if start < g.nodes.len() {
        ranges.push(start..g.nodes.len());
    }
    if ranges.len() <= 1 && !super::control::has_control(g) {
        // The whole graph is one piece: the caller runs it as it is.
        return Vec::new();
    }

    // Which piece produces each value, and the last piece that reads it.
    let mut producer = vec![usize::MAX; g.values.len()];
    let mut last_read = vec![None::<usize>; g.values.len()];
    for (p, r) in ranges.iter().enumerate() {
        for n in &g.nodes[r.clone()] {
            for &v in &n.inputs {
                last_read[v.0] = Some(p);
            }
            for &v in &n.outputs {
                producer[v.0] = p;
            }
        }
    }
    let mut is_wanted = vec![false; g.values.len()];
    for &v in wanted {
        is_wanted[v.0] = true;
    }
    ranges
        .iter()
        .enumerate()
        .map(|(p, r)| {
            let mut inputs = Vec::new();
            let mut outputs = Vec::new();
            let mut done_with = Vec::new();
            let mut listed = HashSet::new();
            for n in &g.nodes[r.clone()] {
                for &v in &n.inputs {
                    if g.constant(v).is_none() && producer[v.0] != p && listed.insert(v) {
                        inputs.push(v);
                        if last_read[v.0] == Some(p) && !is_wanted[v.0] && !g.inputs.contains(&v) {
                            done_with.push(v);
                        }
                    }
                }
                for &v in &n.outputs {
                    if is_wanted[v.0] || last_read[v.0].is_some_and(|q| q > p) {
                        outputs.push(v);
                    }
                }
            }
            inputs.extend(symbol_sources(g, r.clone(), &inputs));
            Piece {
                graph: g.subgraph(r.clone(), &inputs, &outputs),
                inputs,
                outputs,
                done_with,
            }
        })
        .collect()
}

/// Graph inputs a piece needs only for their sizes: the ONNX emitter computes a symbolic
/// dimension (a Reshape to `[batch, seq, 64]`) from the shape of an input that has it, and a
/// piece's own inputs may not (`seq` comes from the graph input `ids`, the piece starts after
/// it). Graph inputs stay alive for a whole wave, so they can always be fed.
fn symbol_sources(g: &Graph, nodes: std::ops::Range<usize>, inputs: &[ValueId]) -> Vec<ValueId> {
    let has = |v: ValueId, s: &str| {
        g.ty(v)
            .shape
            .iter()
            .any(|d| matches!(d, Dim::Sym(x) if x == s))
    };
    let mut wanted: Vec<String> = Vec::new();
    for n in &g.nodes[nodes] {
        for &v in n.inputs.iter().chain(&n.outputs) {
            for d in &g.ty(v).shape {
                for s in d.factors().1 {
                    if !wanted.contains(&s) {
                        wanted.push(s);
                    }
                }
            }
        }
    }
    let mut extra: Vec<ValueId> = Vec::new();
    for s in wanted {
        if inputs.iter().chain(&extra).any(|&v| has(v, &s)) {
            continue;
        }
        if let Some(&v) = g.inputs.iter().find(|&&v| has(v, &s)) {
            extra.push(v);
        }
    }
    extra
}

/// Moves nodes computed from constants alone (the DequantizeLinear of int8 weights, a kernel's
/// transpose) to just before their first user that is not, so the weights they expand travel
/// in the piece of the node that uses them instead of crossing cuts as large float values.
/// The order stays topological.
pub fn place_constant_nodes_late(g: &mut Graph) {
    let producers = g.producers();
    let n = g.nodes.len();
    let mut from_constants = vec![false; n];
    for i in 0..n {
        from_constants[i] = g.nodes[i].inputs.iter().all(|v| {
            g.constant(*v).is_some() || producers.get(v).is_some_and(|&p| from_constants[p])
        });
    }
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    for i in (0..n).filter(|&i| !from_constants[i]) {
        // Post-order walk over the constant-only producers not placed yet.
        let mut stack = vec![(i, 0usize)];
        while let Some((node, k)) = stack.pop() {
            if let Some(v) = g.nodes[node].inputs.get(k) {
                stack.push((node, k + 1));
                if let Some(&p) = producers.get(v) {
                    if from_constants[p] && !placed[p] {
                        placed[p] = true;
                        stack.push((p, 0));
                    }
                }
            } else {
                order.push(node);
            }
        }
        placed[i] = true;
    }
    // Constant-only nodes no other node reads (graph outputs) keep their relative order.
    order.extend((0..n).filter(|&i| !placed[i]));
    let mut old: Vec<Option<crate::ir::Node>> =
        std::mem::take(&mut g.nodes).into_iter().map(Some).collect();
    g.nodes = order.into_iter().filter_map(|i| old[i].take()).collect();
}

/// What a constant may cost in tract: at least its float32 size, since tract dequantizes
/// int8 and float16 weights to float when it runs them.
fn float_bytes(t: &Tensor) -> usize {
    t.data.len().max(t.len() * 4)
}

/// Runs `batches` through `pieces` in waves and hands each batch's `wanted` values, in order,
/// to `each(batch index, values)`. Graph inputs and constants among `wanted` come from the
/// batch and the graph.
///
/// Returns `Ok(false)`, having handed nothing on, when tract cannot run a piece of the first
/// wave although it may run the whole graph: tract 0.23 fails on some graph outputs that are
/// fine inside a graph (an LSTM's final hidden and cell states both as outputs), which a cut
/// can make. The caller then evaluates the graph whole.
pub fn run(
    g: &Graph,
    pieces: &[Piece],
    wanted: &[ValueId],
    batches: &[Vec<Tensor>],
    mut each: impl FnMut(usize, Vec<Tensor>) -> Result<()>,
) -> Result<bool> {
    // Weights a reader mapped and an earlier step read are resident; each piece brings its own
    // back while it loads.
    release_constants(g);
    let mut start = 0;
    let mut wave_len = 1;
    while start < batches.len() {
        let end = (start + wave_len).min(batches.len());
        let mut live: Vec<HashMap<ValueId, Tensor>> = batches[start..end]
            .iter()
            .map(|b| g.inputs.iter().copied().zip(b.iter().cloned()).collect())
            .collect();
        let mut most = 0;
        for piece in pieces {
            match run_piece(piece, &mut live) {
                Ok(()) => {}
                Err(_) if start == 0 && !super::control::has_control(g) => return Ok(false),
                Err(e) => return Err(e),
            }
            for vals in &mut live {
                for v in &piece.done_with {
                    vals.remove(v);
                }
            }
            let held: usize = live
                .iter()
                .flat_map(|vals| vals.values())
                .map(|t| t.data.len())
                .sum();
            most = most.max(held);
        }
        for (k, mut vals) in live.into_iter().enumerate() {
            let out = wanted
                .iter()
                .map(|&v| {
                    vals.remove(&v)
                        .or_else(|| g.constant(v).cloned())
                        .ok_or_else(|| failed(format!("'{}' was not computed", g.value(v).name)))
                })
                .collect::<Result<Vec<Tensor>>>()?;
            each(start + k, out)?;
        }
        let per_batch = (most / (end - start)).max(1);
        wave_len = (WAVE_BYTES / per_batch).max(1);
        start = end;
    }
    Ok(true)
}

/// One piece over every batch of a wave: loaded once per distinct input shape, then dropped.
fn run_piece(piece: &Piece, live: &mut [HashMap<ValueId, Tensor>]) -> Result<()> {
    let mut planned: Option<(Vec<Vec<usize>>, Plan)> = None;
    for vals in live.iter_mut() {
        let inputs = piece
            .inputs
            .iter()
            .map(|v| {
                vals.get(v)
                    .cloned()
                    .ok_or_else(|| failed(format!("'{}' was not computed", piece_name(piece, *v))))
            })
            .collect::<Result<Vec<Tensor>>>()?;
        if let Some(outs) = run_control_piece(piece, &inputs)? {
            for (v, t) in piece.outputs.iter().zip(outs) {
                vals.insert(*v, t);
            }
            continue;
        }
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape.clone()).collect();
        if planned.as_ref().is_none_or(|(s, _)| *s != shapes) {
            drop(planned.take());
            let plan = load(&piece.graph).and_then(|m| {
                release_constants(&piece.graph);
                plan_for(m, &inputs)
            });
            match plan {
                Ok(p) => planned = Some((shapes, p)),
                Err(e) => {
                    let outs = run_with_sizes_bound(piece, &inputs, e)?;
                    for (v, t) in piece.outputs.iter().zip(outs) {
                        vals.insert(*v, t);
                    }
                    continue;
                }
            }
        }
        let Some((_, plan)) = &planned else {
            continue;
        };
        for (v, t) in piece.outputs.iter().zip(run_plan(plan, &inputs)?) {
            vals.insert(*v, t);
        }
    }
    Ok(())
}

/// A piece tract cannot type because a size it needs arrives as an input (a cut between a
/// `Shape` computation and the `ConstantOfShape` using it; control flow forces such cuts): run
/// with its integer inputs bound to their values, which folds those sizes into constants.
fn run_with_sizes_bound(
    piece: &Piece,
    inputs: &[Tensor],
    why: crate::error::Error,
) -> Result<Vec<Tensor>> {
    let bound: Vec<usize> = inputs
        .iter()
        .enumerate()
        .filter(|(_, t)| t.dtype.is_int() && t.shape.len() <= 1)
        .map(|(i, _)| i)
        .collect();
    if bound.is_empty() {
        return Err(why);
    }
    let (fixed, rest) = super::specialize::split_batch(&bound, inputs);
    let g = super::specialize::bind(&piece.graph, &bound, &fixed).map_err(failed)?;
    super::run(&g, &rest)
}

/// A piece that is one control-flow node runs here, not in tract: its values (piece order in,
/// piece order out), or `None` for any other piece.
fn run_control_piece(piece: &Piece, inputs: &[Tensor]) -> Result<Option<Vec<Tensor>>> {
    let pg = &piece.graph;
    let [n] = pg.nodes.as_slice() else {
        return Ok(None);
    };
    if !super::control::is_control(n) {
        return Ok(None);
    }
    let node_inputs = n
        .inputs
        .iter()
        .map(|&u| match pg.inputs.iter().position(|&i| i == u) {
            Some(k) => Ok(inputs[k].clone()),
            None => pg
                .constant(u)
                .cloned()
                .ok_or_else(|| failed(format!("'{}' was not computed", pg.value(u).name))),
        })
        .collect::<Result<Vec<Tensor>>>()?;
    let outs = super::control::run_node(n, &node_inputs)?;
    pg.outputs
        .iter()
        .map(|o| {
            n.outputs
                .iter()
                .position(|x| x == o)
                .and_then(|k| outs.get(k).cloned())
                .ok_or_else(|| failed(format!("'{}' was not computed", pg.value(*o).name)))
        })
        .collect::<Result<Vec<Tensor>>>()
        .map(Some)
}

fn piece_name(piece: &Piece, v: ValueId) -> String {
    piece
        .inputs
        .iter()
        .position(|&i| i == v)
        .map(|k| piece.graph.value(piece.graph.inputs[k]).name.clone())
        .unwrap_or_else(|| format!("value {}", v.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::{MatMul, UnaryOp};
    use crate::ir::{DType, Dim, Op, TensorType};

    /// x → (matmul w_i, relu) × 4 with 4 KB weights each: a 9 KB budget gives pieces of two
    /// layers, whose results equal the whole graph's.
    #[test]
    fn pieces_compute_what_the_whole_graph_does() {
        let mut g = Graph::new();
        let ty = TensorType::new(DType::F32, vec![Dim::Sym("n".into()), Dim::Fixed(32)]);
        let mut x = g.add_input("x", ty);
        let mut layer_outputs = vec![];
        for i in 0..4 {
            let w: Vec<f64> = (0..32 * 32)
                .map(|k| (((k * 7 + i * 13) % 17) as f64 - 8.0) / 40.0)
                .collect();
            let w = Tensor::from_f64s(DType::F32, vec![32, 32], &w);
            let w = g.add_const(&format!("w{i}"), w);
            let mm = Op::MatMul(MatMul::default());
            let m = g.add_node(&format!("mm{i}"), mm, vec![x, w], &[]).unwrap()[0];
            let relu = Op::Unary(UnaryOp::Relu);
            x = g.add_node(&format!("relu{i}"), relu, vec![m], &[]).unwrap()[0];
            layer_outputs.push(m);
        }
        g.outputs = vec![x];
        let pieces = split(&g, &[x, layer_outputs[1]], 9 * 1024);
        assert_eq!(pieces.len(), 2);
        assert_eq!(
            pieces[0].outputs,
            vec![layer_outputs[1], g.nodes[3].outputs[0]]
        );
        assert_eq!(pieces[1].inputs, vec![g.nodes[3].outputs[0]]);

        let batches: Vec<Vec<Tensor>> = (0..3)
            .map(|s| crate::eval::random_inputs(&g, s, 2 + s as usize))
            .collect();
        let mut whole = vec![];
        crate::eval::run_batches(&g, &[layer_outputs[1]], &batches, |_, v| {
            whole.push(v);
            Ok(())
        })
        .unwrap();
        let mut split_run = vec![];
        let in_pieces = run(&g, &pieces, &[x, layer_outputs[1]], &batches, |i, v| {
            assert_eq!(i, split_run.len());
            split_run.push(v);
            Ok(())
        })
        .unwrap();
        assert!(in_pieces);
        assert_eq!(whole.len(), 3);
        for (a, b) in whole.iter().zip(&split_run) {
            for (ta, tb) in a.iter().zip(b) {
                assert_eq!(ta.shape, tb.shape);
                let c = crate::eval::compare("y", tb, ta);
                assert!(c.max_rel < 1e-6, "{c:?}");
            }
        }
    }
}
