//! Loops that collect a value per iteration (ONNX Loop's scan outputs, hence ONNX Scan), for the
//! writers whose while loops only carry values (TFLite WHILE, TF.js StatelessWhile): each
//! collected value becomes one more carried value, an accumulator to which every iteration
//! appends its element on axis 0 (Concat after a Reshape to `[1, element…]`). It starts as one
//! row of zeros and that row is sliced off after the loop, leaving one row per iteration run:
//! the scan output, also when the condition stops the loop early or it runs zero times (then
//! `[0, element…]`).
//!
//! Why appending rather than writing row `i` of a `[trip count, element…]` tensor made before the
//! loop: the trip count may be "no limit" (a loop stopped by its condition alone) and a loop
//! stopped early would need its unwritten rows sliced off; appending needs neither. Both
//! runtimes run a loop variable whose shape changes between iterations: LiteRT's WHILE resizes
//! its variables (and the body's tensors) every iteration once a body output's shape differs
//! from its input's, and TF.js's While keeps no shapes at all. Why the seed row: LiteRT's WHILE
//! fails ("failed to invoke", no message) when a variable has no elements, and TF.js's
//! `broadcastTo` returns its input unchanged for a target shape like `[0]` (no dim above 1 to
//! tile); a Slice that leaves nothing runs in both.
//!
//! The seed needs the element's shape before the loop runs: each dim must be fixed or a symbol
//! some input of the loop has (read from it at run time with Shape). Carried values that keep
//! their shape from one iteration to the next are typed as their initial values first (see
//! [`invariant_body`]), which is how a state's batch size reaches the element shape.

use crate::ir::ops::{
    is_unknown, Body, Concat, Dynamic, Expand, Loop, Reshape, ShapeOf, Slice, SliceAxis,
};
use crate::ir::{DType, Dim, Graph, Node, Op, Tensor, TensorType, ValueId};

/// Rewrites every loop of `g` (not of its bodies) that collects values and whose element
/// shapes are known; returns whether any changed. A loop left as it was is refused by the
/// writer with [`why_not`]'s reason.
pub fn carry_collected(g: &mut Graph) -> Result<bool, String> {
    let mut changed = false;
    for i in 0..g.nodes.len() {
        let Op::Loop(l) = &g.nodes[i].op else {
            continue;
        };
        if l.collected() == 0 {
            continue;
        }
        let n = g.nodes[i].clone();
        let body = invariant_body(g, &n, l);
        let Ok(shapes) = element_shapes(g, &n, &body, l.carried) else {
            continue;
        };
        let node =
            carry(g, &n, body, l.carried, shapes).map_err(|e| format!("loop '{}': {e}", n.name))?;
        g.nodes[i] = node;
        changed = true;
    }
    if changed {
        g.sort()?;
    }
    Ok(changed)
}

/// Why a loop collecting values cannot be carried (an element dim known only inside the body).
pub fn why_not(g: &Graph, n: &Node, l: &Loop) -> String {
    let body = invariant_body(g, n, l);
    match element_shapes(g, n, &body, l.carried) {
        Err(e) => format!("a loop collecting values per iteration: {e}"),
        Ok(_) => "a loop collecting values per iteration was left as it is".into(),
    }
}

/// Where one dim of an element comes from before the loop.
enum DimSource {
    Fixed(u64),
    /// Axis `.1` of the loop's input `.0`.
    Axis(ValueId, usize),
}

/// For each collected value, its dims' sources; an error names the first dim with none.
fn element_shapes(
    g: &Graph,
    n: &Node,
    body: &Graph,
    carried: usize,
) -> Result<Vec<Vec<DimSource>>, String> {
    let mut all = Vec::new();
    for &o in &body.outputs[1 + carried..] {
        let ty = body.ty(o);
        let mut dims = Vec::with_capacity(ty.rank());
        for d in &ty.shape {
            dims.push(match d {
                Dim::Fixed(k) => DimSource::Fixed(*k),
                Dim::Sym(_) => find_axis(g, n, body, d).ok_or_else(|| {
                    format!(
                        "the shape of '{}' ({ty}) is not known before the loop",
                        body.value(o).name
                    )
                })?,
            });
        }
        all.push(dims);
    }
    Ok(all)
}

/// A loop input (past the trip count and condition) with dim `d`: the body's input of that
/// position has it (captures are typed as the node's inputs; carried values as the initial
/// ones when they keep their shape), so the node's input has it at run time.
fn find_axis(g: &Graph, n: &Node, body: &Graph, d: &Dim) -> Option<DimSource> {
    let pairs = body.inputs.iter().zip(&n.inputs).skip(2);
    for (&inner, &outer) in pairs {
        if let Some(pos) = body.ty(inner).shape.iter().position(|e| e == d) {
            if g.ty(outer).rank() == body.ty(inner).rank() {
                return Some(DimSource::Axis(outer, pos));
            }
        }
    }
    None
}

/// The body with each carried input typed as its initial value when the body then returns it
/// with that same type: by induction every iteration sees that type, so the dims the body
/// computes from it hold. A carried value that changes shape keeps the body's own type.
pub fn invariant_body(g: &Graph, n: &Node, l: &Loop) -> Graph {
    let k = l.carried;
    let mut try_carried: Vec<bool> = (0..k)
        .map(|j| {
            let (have, want) = (g.ty(n.inputs[2 + j]), l.body.0.ty(l.body.0.inputs[2 + j]));
            have.dtype == want.dtype && have.rank() == want.rank() && have != want
        })
        .collect();
    while try_carried.iter().any(|&t| t) {
        let mut body = (*l.body.0).clone();
        body.continue_symbols(g);
        for (j, _) in try_carried.iter().enumerate().filter(|(_, &t)| t) {
            let v = body.inputs[2 + j];
            body.value_mut(v).ty = g.ty(n.inputs[2 + j]).clone();
        }
        // An op that cannot take the initial types would fail on the first iteration anyway:
        // the body stays as it is.
        if retype(&mut body).is_err() {
            break;
        }
        let kept: Vec<bool> = (0..k)
            .map(|j| body.ty(body.inputs[2 + j]) == body.ty(body.outputs[1 + j]))
            .collect();
        let broken: Vec<usize> = (0..k).filter(|&j| try_carried[j] && !kept[j]).collect();
        if broken.is_empty() {
            if body.verify().is_err() {
                break;
            }
            return body;
        }
        for j in broken {
            try_carried[j] = false;
        }
    }
    (*l.body.0).clone()
}

/// Infers every node's outputs again, in order, after an input's type changed. A dim the old
/// type fixed stays fixed, and one inference cannot name keeps its old name (both still hold).
fn retype(g: &mut Graph) -> Result<(), String> {
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        let inferred = g
            .infer(&n.op, &n.inputs)
            .map_err(|e| format!("node '{}' ({}): {e}", n.name, n.op.name()))?;
        for (o, want) in g.nodes[i].outputs.clone().into_iter().zip(inferred) {
            let old = g.ty(o).clone();
            let shape = match old.rank() == want.rank() {
                true => old
                    .shape
                    .iter()
                    .zip(want.shape)
                    .map(|(h, w)| match h.is_fixed() || is_unknown(&w) {
                        true => h.clone(),
                        false => w,
                    })
                    .collect(),
                false => want.shape,
            };
            g.value_mut(o).ty = TensorType::new(want.dtype, shape);
        }
    }
    Ok(())
}

/// The loop carrying one accumulator per collected value (inputs: trip count, condition,
/// carried values, accumulators, captures). Adds the seeds before it and the Slices after it to
/// `g`; the Slices produce the values the node's collected outputs were.
fn carry(
    g: &mut Graph,
    n: &Node,
    mut body: Graph,
    k: usize,
    shapes: Vec<Vec<DimSource>>,
) -> Result<Node, String> {
    let mut names = g.names();
    let mut starts = Vec::with_capacity(shapes.len());
    let elements: Vec<ValueId> = body.outputs[1 + k..].to_vec();
    for (j, dims) in shapes.iter().enumerate() {
        let ty = body.ty(elements[j]).clone();
        let tag = names.fresh(&format!("{}/collected_{j}", n.name));
        starts.push(seed(g, &tag, &ty, dims)?);
    }
    let added = append_rows(&mut body, k)?;
    let mut node_inputs = n.inputs[..2 + k].to_vec();
    node_inputs.extend(starts);
    node_inputs.extend_from_slice(&n.inputs[2 + k..]);
    let op = Op::Loop(Loop {
        body: Body::new(body),
        carried: k + added,
    });
    let mut outputs = n.outputs[..k].to_vec();
    let drop_seed = Op::Slice(Slice {
        axes: vec![SliceAxis {
            axis: 0,
            start: 1,
            end: i64::MAX,
            step: 1,
        }],
    });
    for (j, &collected) in n.outputs[k..].iter().enumerate() {
        // One row more than the collected value: a size of its own.
        let mut ty = g.ty(collected).clone();
        if let Some(rows) = ty.shape.first_mut() {
            *rows = g.fresh_symbol();
        }
        let acc = g.add_value(&names.fresh(&format!("{}/collected_{j}/all", n.name)), ty);
        outputs.push(acc);
        g.nodes.push(Node {
            name: names.fresh(&format!("{}/collected_{j}/rows", n.name)),
            op: drop_seed.clone(),
            inputs: vec![acc],
            outputs: vec![collected],
        });
    }
    Ok(Node {
        name: n.name.clone(),
        op,
        inputs: node_inputs,
        outputs,
    })
}

/// Makes `body` (carrying `k` values, collecting the rest) carry one accumulator per collected
/// value, after its carried inputs and outputs, and return it with the iteration's element
/// appended as a row; returns how many it added.
fn append_rows(body: &mut Graph, k: usize) -> Result<usize, String> {
    let elements: Vec<ValueId> = body.outputs[1 + k..].to_vec();
    let mut names = body.names();
    let mut accs = Vec::with_capacity(elements.len());
    let mut next = Vec::with_capacity(elements.len());
    for (j, &e) in elements.iter().enumerate() {
        let ty = body.ty(e).clone();
        let mut acc_shape = vec![body.fresh_symbol()];
        acc_shape.extend(ty.shape.iter().cloned());
        let acc = body.add_input(
            &names.fresh(&format!("collected_{j}")),
            TensorType::new(ty.dtype, acc_shape),
        );
        let mut row = vec![Dim::Fixed(1)];
        row.extend(ty.shape.iter().cloned());
        let r = body.add_node(
            &names.fresh(&format!("collected_{j}/row")),
            Op::Reshape(Reshape { shape: row }),
            vec![e],
            &[],
        )?[0];
        let cat = Op::Concat(Concat { axis: 0 });
        let name = names.fresh(&format!("collected_{j}/append"));
        next.push(body.add_node(&name, cat, vec![acc, r], &[])?[0]);
        accs.push(acc);
    }
    // `add_input` appended them; they go after the carried inputs, before the captures.
    let added = accs.len();
    let mut inputs = body.inputs[..body.inputs.len() - added].to_vec();
    inputs.splice(2 + k..2 + k, accs);
    body.inputs = inputs;
    body.outputs.truncate(1 + k);
    body.outputs.extend(next);
    body.verify()?;
    Ok(added)
}

/// Zeros `[1, element…]`: a constant shape when every dim is fixed, else one assembled from the
/// loop inputs' shapes at run time.
fn seed(g: &mut Graph, tag: &str, ty: &TensorType, dims: &[DimSource]) -> Result<ValueId, String> {
    let zero = g.add_const(
        &format!("{tag}/zero"),
        Tensor::from_f64s(ty.dtype, vec![], &[0.0]),
    );
    let mut shape = vec![Dim::Fixed(1)];
    shape.extend(ty.shape.iter().cloned());
    let out_ty = TensorType::new(ty.dtype, shape.clone());
    if dims.iter().all(|d| matches!(d, DimSource::Fixed(_))) {
        let v = g.add_node(tag, Op::Expand(Expand { shape }), vec![zero], &[])?[0];
        g.value_mut(v).ty = out_ty;
        return Ok(v);
    }
    let mut pieces = vec![g.add_const(
        &format!("{tag}/seed_rows"),
        Tensor::from_i64s(DType::I64, vec![1], &[1]),
    )];
    for (k, d) in dims.iter().enumerate() {
        pieces.push(match *d {
            DimSource::Fixed(n) => g.add_const(
                &format!("{tag}/dim{k}"),
                Tensor::from_i64s(DType::I64, vec![1], &[n as i64]),
            ),
            DimSource::Axis(v, pos) => {
                let op = Op::ShapeOf(ShapeOf {
                    start: pos,
                    end: pos + 1,
                });
                g.add_node(&format!("{tag}/dim{k}"), op, vec![v], &[])?[0]
            }
        });
    }
    let cat = Op::Concat(Concat { axis: 0 });
    let shape_v = g.add_node(&format!("{tag}/shape"), cat, pieces, &[])?[0];
    let op = Op::Dynamic(Dynamic::Expand);
    let v = g.add_node(tag, op, vec![zero, shape_v], &[])?[0];
    g.value_mut(v).ty = out_ty;
    Ok(v)
}
