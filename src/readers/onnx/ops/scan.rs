//! ONNX Scan-9+ as a Loop: the trip count is the scan axis' length, the loop body takes the
//! scanned tensors whole and gathers the iteration's slice (from the end for a reverse
//! direction) before running the Scan body on it; collected values are reversed and moved to
//! their output axis after the loop. Scan-8, whose inputs and outputs all have a batch axis
//! first, is a Loop over the batch whose body runs that loop over one item and collects its
//! results (one row per item: the batch axis of the outputs).

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::super::subgraph::{self, declared_type};
use super::control::graph_attr;
use crate::ir::ops::{
    norm_axis, BinaryOp, Body, Gather, Loop, Reshape, ShapeOf, Slice, SliceAxis, Transpose,
};
use crate::ir::Dim;
use crate::ir::{DType, Graph, Op, Tensor, TensorType, ValueId};

/// Per scan input or output: its axis and whether it runs backwards.
struct Scanned {
    axis: usize,
    reverse: bool,
}

fn scanned(ctx: &NodeCtx, axes: &str, dirs: &str, ranks: &[usize]) -> NodeResult<Vec<Scanned>> {
    let a = ctx.ints(axes).unwrap_or_else(|| vec![0; ranks.len()]);
    let d = ctx.ints(dirs).unwrap_or_else(|| vec![0; ranks.len()]);
    if a.len() != ranks.len() || d.len() != ranks.len() {
        return Err(NodeError::Invalid(format!(
            "{axes}/{dirs} do not match the values scanned"
        )));
    }
    ranks
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            Ok(Scanned {
                axis: norm_axis(a[i], r)?,
                reverse: d[i] == 1,
            })
        })
        .collect()
}

/// The body, the inputs from `first` on (states then scanned values), and how many are scanned.
fn operands<'a>(
    ctx: &NodeCtx<'a>,
    first: usize,
) -> NodeResult<(&'a tract_onnx::pb::GraphProto, Vec<ValueId>, usize)> {
    let g = graph_attr(ctx, "body")?;
    let all: Vec<ValueId> = (first..ctx.inputs.len())
        .map(|i| ctx.input(i))
        .collect::<NodeResult<_>>()?;
    let m = ctx.int("num_scan_inputs", 0).max(0) as usize;
    if m == 0 || m > all.len() || g.input.len() != all.len() {
        return Err(NodeError::Invalid(
            "num_scan_inputs does not fit the inputs and the body".into(),
        ));
    }
    Ok((g, all, m))
}

pub fn scan(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    if imp.opset < 9 {
        return scan8(imp, ctx);
    }
    let (g, all, m) = operands(ctx, 0)?;
    let n = all.len() - m;
    let (states, scans) = all.split_at(n);
    let ranks: Vec<usize> = scans.iter().map(|&v| imp.g.ty(v).rank()).collect();
    let ins = scanned(ctx, "scan_input_axes", "scan_input_directions", &ranks)?;
    // The Scan body's own inputs: the states, then one slice of each scanned tensor.
    let mut formal = Vec::with_capacity(all.len());
    for (j, &v) in states.iter().enumerate() {
        let given = imp.g.ty(v).clone();
        formal.push((g.input[j].name.clone(), declared_type(imp, g, j, &given)));
    }
    for (j, (&v, s)) in scans.iter().zip(&ins).enumerate() {
        let mut ty = imp.g.ty(v).clone();
        ty.shape.remove(s.axis);
        formal.push((g.input[n + j].name.clone(), ty));
    }
    let b = subgraph::import(imp, g, formal, "body")?;
    let k = b.body.outputs.len().saturating_sub(n);
    let scan_tys = types(imp, scans);
    let body = loop_body(
        &imp.g,
        &b.body,
        n,
        &scan_tys,
        &ins,
        &types(imp, &b.captures),
    )
    .map_err(|e| NodeError::Invalid(format!("body: {e}")))?;
    let first = ins[0].axis;
    let trip = imp.emit1(
        &format!("{}/length", ctx.name),
        Op::ShapeOf(ShapeOf {
            start: first,
            end: first + 1,
        }),
        vec![scans[0]],
    )?;
    let always = imp.add_const(
        &format!("{}/always", ctx.name),
        Tensor::from_f64s(DType::Bool, vec![], &[1.0]),
    );
    let mut inputs = vec![trip, always];
    inputs.extend_from_slice(states);
    inputs.extend_from_slice(scans);
    inputs.extend(b.captures);
    let op = Loop {
        body: Body::new(body),
        carried: n,
    };
    let outs = imp.emit(&format!("{}/loop", ctx.name), Op::Loop(op), inputs)?;
    let out_ranks: Vec<usize> = outs[n..].iter().map(|&v| imp.g.ty(v).rank()).collect();
    if out_ranks.len() != k {
        return Err(NodeError::Invalid("the loop lost a scan output".into()));
    }
    let outs_scanned = scanned(
        ctx,
        "scan_output_axes",
        "scan_output_directions",
        &out_ranks,
    )?;
    let mut result = outs[..n].to_vec();
    for (&y, s) in outs[n..].iter().zip(&outs_scanned) {
        result.push(place_output(imp, ctx, y, s)?);
    }
    Ok(result)
}

fn types(imp: &Importer, vs: &[ValueId]) -> Vec<TensorType> {
    vs.iter().map(|&v| imp.g.ty(v).clone()).collect()
}

/// The loop body: `(iter, cond, n states, scanned tensors, captures)` → `(true, states,
/// slices)`; the scanned tensors and captures are of types `scan_tys` and `cap_tys`.
fn loop_body(
    symbols: &Graph,
    scan_body: &Graph,
    n: usize,
    scan_tys: &[TensorType],
    ins: &[Scanned],
    cap_tys: &[TensorType],
) -> Result<Graph, String> {
    let mut lb = Graph::new();
    lb.continue_symbols(symbols);
    let iter = lb.add_input("iter", TensorType::new(DType::I64, vec![]));
    lb.add_input("cond", TensorType::new(DType::Bool, vec![]));
    let body_states: Vec<ValueId> = (0..n)
        .map(|j| {
            let ty = scan_body.ty(scan_body.inputs[j]).clone();
            lb.add_input(&format!("state_{j}"), ty)
        })
        .collect();
    let full: Vec<ValueId> = scan_tys
        .iter()
        .enumerate()
        .map(|(j, t)| lb.add_input(&format!("scanned_{j}"), t.clone()))
        .collect();
    let caps: Vec<ValueId> = cap_tys
        .iter()
        .enumerate()
        .map(|(j, t)| lb.add_input(&format!("capture_{j}"), t.clone()))
        .collect();
    let one = lb.add_const("one", Tensor::scalar_i64(1));
    let mut slices = Vec::with_capacity(full.len());
    for (j, (&x, s)) in full.iter().zip(ins).enumerate() {
        let at = if s.reverse {
            let shape = Op::ShapeOf(ShapeOf {
                start: s.axis,
                end: s.axis + 1,
            });
            let len = lb.add_node(&format!("len_{j}"), shape, vec![x], &[])?[0];
            let scalar = Op::Reshape(Reshape { shape: vec![] });
            let len = lb.add_node(&format!("len_scalar_{j}"), scalar, vec![len], &[])?[0];
            let last = lb.add_node(
                &format!("last_{j}"),
                Op::Binary(BinaryOp::Sub),
                vec![len, one],
                &[],
            )?[0];
            lb.add_node(
                &format!("index_{j}"),
                Op::Binary(BinaryOp::Sub),
                vec![last, iter],
                &[],
            )?[0]
        } else {
            iter
        };
        let gather = Op::Gather(Gather { axis: s.axis });
        slices.push(lb.add_node(&format!("slice_{j}"), gather, vec![x, at], &[])?[0]);
    }
    let mut body_inputs = body_states;
    body_inputs.extend(slices);
    body_inputs.extend(caps);
    let outs = lb.inline(scan_body, &body_inputs, "scan")?;
    let cond = lb.add_const("true", Tensor::from_f64s(DType::Bool, vec![], &[1.0]));
    lb.outputs = std::iter::once(cond).chain(outs).collect();
    lb.remove_dead();
    lb.verify()?;
    Ok(lb)
}

/// A collected output (`[T, …]`, forward order) reversed and moved to its output axis.
fn place_output(imp: &mut Importer, ctx: &NodeCtx, y: ValueId, s: &Scanned) -> NodeResult<ValueId> {
    let mut y = y;
    if s.reverse {
        let back = SliceAxis {
            axis: 0,
            start: -1,
            end: i64::MIN,
            step: -1,
        };
        let op = Op::Slice(Slice { axes: vec![back] });
        y = imp.emit1(&format!("{}/reverse", ctx.name), op, vec![y])?;
    }
    if s.axis != 0 {
        let rank = imp.g.ty(y).rank();
        let mut perm: Vec<usize> = (1..rank).collect();
        perm.insert(s.axis, 0);
        let op = Op::Transpose(Transpose { perm });
        y = imp.emit1(&format!("{}/axis", ctx.name), op, vec![y])?;
    }
    Ok(y)
}

/// Scan-8 (inputs: sequence_lens, states `[batch, …]`, scanned `[batch, time, …]`; outputs:
/// final states `[batch, …]`, collected `[batch, time, …]`), without sequence_lens: a Loop over
/// the batch collecting, per item, what the Scan-9 loop over that item gives.
fn scan8(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    if ctx.opt_input(0).is_some() {
        return unsupported("Scan-8 with sequence_lens (items of different lengths)");
    }
    let (g, all, m) = operands(ctx, 1)?;
    let n = all.len() - m;
    let batched = types(imp, &all);
    // One item: no batch axis; one step of a scanned item: no time axis either.
    let drop = |t: &TensorType, axes: usize| -> NodeResult<TensorType> {
        if t.rank() < axes {
            return Err(NodeError::Invalid(format!("a Scan-8 input of type {t}")));
        }
        Ok(TensorType::new(t.dtype, t.shape[axes..].to_vec()))
    };
    let items: Vec<TensorType> = batched
        .iter()
        .map(|t| drop(t, 1))
        .collect::<NodeResult<_>>()?;
    let mut formal = Vec::with_capacity(all.len());
    for (j, t) in items.iter().enumerate() {
        let ty = match j < n {
            true => declared_type(imp, g, j, t),
            false => drop(t, 1)?,
        };
        formal.push((g.input[j].name.clone(), ty));
    }
    let dirs = ctx.ints("directions").unwrap_or_else(|| vec![0; m]);
    if dirs.len() != m {
        return Err(NodeError::Invalid(
            "directions do not match the scanned inputs".into(),
        ));
    }
    let ins: Vec<Scanned> = dirs
        .iter()
        .map(|&d| Scanned {
            axis: 0,
            reverse: d == 1,
        })
        .collect();
    let b = subgraph::import(imp, g, formal, "body")?;
    let cap_tys = types(imp, &b.captures);
    let invalid = |e: String| NodeError::Invalid(format!("body: {e}"));
    let inner = loop_body(&imp.g, &b.body, n, &items[n..], &ins, &cap_tys).map_err(invalid)?;
    let outer = batch_body(&imp.g, inner, n, &batched, &cap_tys).map_err(invalid)?;
    let batch = imp.emit1(
        &format!("{}/batch", ctx.name),
        Op::ShapeOf(ShapeOf { start: 0, end: 1 }),
        vec![all[n]],
    )?;
    let always = imp.add_const(
        &format!("{}/always", ctx.name),
        Tensor::from_f64s(DType::Bool, vec![], &[1.0]),
    );
    let mut inputs = vec![batch, always];
    inputs.extend(all);
    inputs.extend(b.captures);
    let op = Loop {
        body: Body::new(outer),
        carried: 0,
    };
    imp.emit(&format!("{}/items", ctx.name), Op::Loop(op), inputs)
}

/// The body of the loop over the batch: `(item, cond, batched states and scanned tensors,
/// captures)` → `(true, the item's final states, its collected values)`, running `inner` (the
/// Scan-9 loop body) over row `item` of each batched input.
fn batch_body(
    symbols: &Graph,
    inner: Graph,
    n: usize,
    batched: &[TensorType],
    cap_tys: &[TensorType],
) -> Result<Graph, String> {
    let mut ob = Graph::new();
    ob.continue_symbols(symbols);
    let item = ob.add_input("item", TensorType::new(DType::I64, vec![]));
    ob.add_input("cond", TensorType::new(DType::Bool, vec![]));
    let full: Vec<ValueId> = batched
        .iter()
        .enumerate()
        .map(|(j, t)| ob.add_input(&format!("batched_{j}"), t.clone()))
        .collect();
    let caps: Vec<ValueId> = cap_tys
        .iter()
        .enumerate()
        .map(|(j, t)| ob.add_input(&format!("capture_{j}"), t.clone()))
        .collect();
    let mut rows = Vec::with_capacity(full.len());
    for (j, &x) in full.iter().enumerate() {
        let gather = Op::Gather(Gather { axis: 0 });
        rows.push(ob.add_node(&format!("row_{j}"), gather, vec![x, item], &[])?[0]);
    }
    let first = rows.get(n).copied().ok_or("no scanned input")?;
    // A fixed length is a constant trip count, so the collected rows have a known length.
    let steps = match ob.ty(first).shape.first() {
        Some(Dim::Fixed(t)) => ob.add_const("steps", Tensor::from_i64(vec![1], &[*t as i64])),
        _ => {
            let len = Op::ShapeOf(ShapeOf { start: 0, end: 1 });
            ob.add_node("steps", len, vec![first], &[])?[0]
        }
    };
    let always = ob.add_const("true", Tensor::from_f64s(DType::Bool, vec![], &[1.0]));
    let mut inputs = vec![steps, always];
    inputs.extend(rows);
    inputs.extend(caps);
    let op = Op::Loop(Loop {
        body: Body::new(inner),
        carried: n,
    });
    let outs = ob.add_node("scan", op, inputs, &[])?;
    ob.outputs = std::iter::once(always).chain(outs).collect();
    ob.verify()?;
    Ok(ob)
}
