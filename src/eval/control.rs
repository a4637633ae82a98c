//! Control flow run by mdeploy itself: tract 0.23 evaluates `If` only outside typed plans and
//! has no `Loop`, so a graph with either is cut around those nodes (`pieces::split`), the
//! stretches between run in tract as usual, and each control node runs here: `If` picks a branch
//! by its condition and runs that body; `Loop` runs its body once per iteration (loaded and
//! planned once), feeding each iteration's carried values to the next and stacking the values
//! it collects.

use crate::error::{failed, Result};
use crate::ir::ops::{If, Loop};
use crate::ir::{DType, Graph, Node, Op, Tensor};
use bytes::{Bytes, BytesMut};

/// Iterations a loop may run at most: a model whose trip count and condition never stop it
/// would otherwise never end.
const MAX_ITERATIONS: i64 = 1 << 20;

pub fn has_control(g: &Graph) -> bool {
    g.nodes.iter().any(is_control)
}

pub fn is_control(n: &Node) -> bool {
    !n.op.bodies().is_empty()
}

/// Runs one control node on its input values.
pub fn run_node(n: &Node, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let in_node =
        |e: crate::error::Error| failed(format!("node '{}' ({}): {e}", n.name, n.op.name()));
    match &n.op {
        Op::If(op) => run_if(op, inputs).map_err(in_node),
        Op::Loop(op) => run_loop(op, inputs).map_err(in_node),
        _ => Err(failed(format!("node '{}' is not control flow", n.name))),
    }
}

fn truth(t: &Tensor) -> Result<bool> {
    match t.to_f64s().as_slice() {
        [v] => Ok(*v != 0.0),
        _ => Err(failed(format!("a condition of shape {:?}", t.shape))),
    }
}

fn run_if(op: &If, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let (cond, captures) = inputs
        .split_first()
        .ok_or_else(|| failed("If without a condition"))?;
    let branch = if truth(cond)? {
        &op.then_branch
    } else {
        &op.else_branch
    };
    super::run(&branch.0, captures)
}

fn run_loop(op: &Loop, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let k = op.carried;
    if inputs.len() < 2 + k {
        return Err(failed("Loop with too few inputs"));
    }
    let trip = match inputs[0].to_i64s().as_deref() {
        Some([n]) => *n,
        _ => return Err(failed("the trip count is not one integer")),
    };
    let mut cond = truth(&inputs[1])?;
    let mut carried: Vec<Tensor> = inputs[2..2 + k].to_vec();
    let captures = &inputs[2 + k..];
    // The body is loaded once (and planned once per input shapes) for all iterations.
    let mut reusable = super::Reusable::new(&op.body.0)?;
    let mut collected: Vec<Vec<Tensor>> = vec![Vec::new(); op.collected()];
    let mut i = 0i64;
    while i < trip && cond {
        if i >= MAX_ITERATIONS {
            return Err(failed(format!(
                "stopped after {MAX_ITERATIONS} iterations (the trip count and condition never end it)"
            )));
        }
        let mut body_in = vec![
            Tensor::scalar_i64(i),
            Tensor::from_f64s(DType::Bool, vec![], &[1.0]),
        ];
        body_in.extend(carried.iter().cloned());
        body_in.extend(captures.iter().cloned());
        let out = match reusable.as_mut() {
            Some(r) => r.run(&body_in)?,
            None => super::run(&op.body.0, &body_in)?,
        };
        cond = truth(&out[0])?;
        carried = out[1..1 + k].to_vec();
        for (c, t) in collected.iter_mut().zip(&out[1 + k..]) {
            c.push(t.clone());
        }
        i += 1;
    }
    let body = &op.body.0;
    let mut result = carried;
    for (j, rows) in collected.into_iter().enumerate() {
        let ty = body.ty(body.outputs[1 + k + j]);
        result.push(stack(rows, ty)?);
    }
    Ok(result)
}

/// Tensors of one shape stacked on a new first axis; none gives `[0, …]` with the declared dims
/// (unknown ones 0).
fn stack(rows: Vec<Tensor>, ty: &crate::ir::TensorType) -> Result<Tensor> {
    let Some(first) = rows.first() else {
        let mut shape = vec![0];
        shape.extend(ty.shape.iter().map(|d| d.fixed().unwrap_or(0) as usize));
        return Tensor::new(ty.dtype, shape, Bytes::new()).map_err(failed);
    };
    if rows
        .iter()
        .any(|r| r.shape != first.shape || r.dtype != first.dtype)
    {
        return Err(failed(
            "values collected per iteration change shape; they cannot be stacked",
        ));
    }
    let mut data = BytesMut::with_capacity(first.data.len() * rows.len());
    for r in &rows {
        data.extend_from_slice(&r.data);
    }
    let mut shape = vec![rows.len()];
    shape.extend(first.shape.iter().copied());
    Tensor::new(first.dtype, shape, data.freeze()).map_err(failed)
}
