//! Graphs whose shape-like operands come from graph inputs (a `Reshape` to a shape the caller
//! passes, a `Slice` with bounds as inputs) are run by binding those inputs to the values of the
//! batch at hand: tract types a graph before running it and cannot type such ops, but with the
//! operands known they fold into the static ops (`passes::cleanup::static_operands`). Batches
//! with the same bound values share one specialized graph.

use crate::ir::{Graph, Op, Tensor, ValueId};

/// The graph inputs (positions in `g.inputs`) that some op's run-time operand depends on.
pub fn operand_inputs(g: &Graph) -> Vec<usize> {
    let producer = g.producers();
    let mut wanted = vec![false; g.values.len()];
    let mut stack: Vec<ValueId> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Dynamic(_)))
        .flat_map(|n| n.inputs.iter().skip(1).copied())
        .collect();
    while let Some(v) = stack.pop() {
        if std::mem::replace(&mut wanted[v.0], true) {
            continue;
        }
        if let Some(&p) = producer.get(&v) {
            stack.extend(g.nodes[p].inputs.iter().copied());
        }
    }
    g.inputs
        .iter()
        .enumerate()
        .filter(|(_, v)| wanted[v.0])
        .map(|(i, _)| i)
        .collect()
}

/// `g` with the graph inputs at `bound` (positions in `g.inputs`) made constants holding
/// `values`, and the ops they make static folded. Value ids stay valid.
pub fn bind(g: &Graph, bound: &[usize], values: &[Tensor]) -> Result<Graph, String> {
    let mut g = g.clone();
    for (&at, t) in bound.iter().zip(values) {
        let v = g.inputs[at];
        if t.ty().dtype != g.ty(v).dtype || t.shape.len() != g.ty(v).rank() {
            return Err(format!(
                "input '{}' is {} but was given {}",
                g.value(v).name,
                g.ty(v),
                t.ty()
            ));
        }
        let value = g.value_mut(v);
        value.ty = t.ty();
        value.constant = Some(t.clone());
    }
    let keep: Vec<ValueId> = g
        .inputs
        .iter()
        .enumerate()
        .filter(|(i, _)| !bound.contains(i))
        .map(|(_, &v)| v)
        .collect();
    g.inputs = keep;
    g.refine_types()?;
    // Each round makes the ops whose operands became constants static and folds what that
    // made constant; the chains are short (shape arithmetic), the bound is the node count.
    for _ in 0..g.nodes.len().max(1) {
        let made_static = crate::passes::cleanup::static_operands(&mut g)?;
        if !(crate::passes::cleanup::fold_constants(&mut g) | made_static) {
            break;
        }
    }
    // An op left with constant operands was given values it cannot take.
    for n in &g.nodes {
        let Op::Dynamic(d) = &n.op else { continue };
        if n.inputs.iter().skip(1).all(|&v| g.constant(v).is_some()) {
            return Err(format!(
                "node '{}' ({}): the {} computed from the given inputs do not fit its input {} \
                 (give the inputs that set it with --input)",
                n.name,
                n.op.name(),
                d.operand(),
                g.ty(n.inputs[0])
            ));
        }
    }
    Ok(g)
}

/// Splits one batch into the tensors of the bound inputs and the rest.
pub fn split_batch(bound: &[usize], batch: &[Tensor]) -> (Vec<Tensor>, Vec<Tensor>) {
    let (mut fixed, mut rest) = (Vec::new(), Vec::new());
    for (i, t) in batch.iter().enumerate() {
        if bound.contains(&i) {
            fixed.push(t.clone());
        } else {
            rest.push(t.clone());
        }
    }
    (fixed, rest)
}
