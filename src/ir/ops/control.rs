//! Control flow: `If` (ONNX If-13; TF `If`/`StatelessIf` and TF1 `tf.cond` map here) and `Loop`
//! (ONNX Loop-13; ONNX Scan and TF `While` are written as it). Each carries its subgraphs as
//! graphs of their own: a subgraph never refers to a value of the graph around it. The values it
//! reads from outside ("captures") are the node's last inputs and the subgraph's last inputs,
//! in the same order, so every graph verifies on its own and passes treat a body like any graph.

use super::{unknown_dim, Inputs};
use crate::ir::{DType, Dim, Graph, TensorType};
use std::fmt;
use std::sync::Arc;

/// A subgraph an op runs. Shared: cloning the op does not copy the body. Two bodies are equal
/// only when they are the same graph.
#[derive(Clone)]
pub struct Body(pub Arc<Graph>);

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "Body({} inputs, {} nodes, {} outputs)",
            self.0.inputs.len(),
            self.0.nodes.len(),
            self.0.outputs.len()
        )
    }
}

impl Body {
    pub fn new(g: Graph) -> Body {
        Body(Arc::new(g))
    }
    fn input_types(&self) -> Vec<&TensorType> {
        self.0.inputs.iter().map(|&v| self.0.ty(v)).collect()
    }
    fn output_types(&self) -> Vec<&TensorType> {
        self.0.outputs.iter().map(|&v| self.0.ty(v)).collect()
    }
}

/// inputs: cond (bool, one element), then the captures. Each branch's inputs are the captures;
/// its outputs are the node's outputs. Branch outputs may differ in their dims (not in dtype
/// or rank): those dims are unknown.
#[derive(Clone, Debug, PartialEq)]
pub struct If {
    pub then_branch: Body,
    pub else_branch: Body,
}

/// inputs: max trip count (i64 scalar), condition (bool, one element), the `carried` initial
/// values, then the captures. The body's inputs: iteration number (i64 scalar), condition,
/// carried values, captures; its outputs: condition, carried values, then values collected per
/// iteration. The node's outputs: the final carried values, then the collected values stacked on
/// a new first axis (one row per iteration run).
#[derive(Clone, Debug, PartialEq)]
pub struct Loop {
    pub body: Body,
    pub carried: usize,
}

impl Loop {
    /// How many per-iteration values the body collects.
    pub fn collected(&self) -> usize {
        self.body.0.outputs.len().saturating_sub(1 + self.carried)
    }
}

/// Whether a value of type `have` may stand where a subgraph declares `want`.
fn fits(have: &TensorType, want: &TensorType) -> bool {
    have.dtype == want.dtype
        && have.rank() == want.rank()
        && have
            .shape
            .iter()
            .zip(&want.shape)
            .all(|(h, w)| h == w || !h.is_fixed() || !w.is_fixed())
}

fn check_inputs(what: &str, given: &[&TensorType], body: &Body) -> Result<(), String> {
    let want = body.input_types();
    if given.len() != want.len() {
        return Err(format!(
            "{what} takes {} inputs, the node gives {}",
            want.len(),
            given.len()
        ));
    }
    for (i, (h, w)) in given.iter().zip(&want).enumerate() {
        if !fits(h, w) {
            return Err(format!("{what} input #{i} is {w}, the node gives {h}"));
        }
    }
    Ok(())
}

/// The type both of two types are: dims that differ become unknown.
fn merge(a: &TensorType, b: &TensorType) -> Result<TensorType, String> {
    if a.dtype != b.dtype || a.rank() != b.rank() {
        return Err(format!(
            "branch outputs {a} and {b} differ in dtype or rank"
        ));
    }
    let shape = a
        .shape
        .iter()
        .zip(&b.shape)
        .map(|(x, y)| if x == y { x.clone() } else { unknown_dim() })
        .collect();
    Ok(TensorType::new(a.dtype, shape))
}

fn one_bool(t: &TensorType, what: &str) -> Result<(), String> {
    let n = t.shape.iter().map(Dim::fixed).product::<Option<u64>>();
    if t.dtype != DType::Bool || n.is_some_and(|n| n != 1) {
        return Err(format!("{what} must be one boolean, is {t}"));
    }
    Ok(())
}

pub fn infer_if(op: &If, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    one_bool(inputs.ty(0)?, "the condition")?;
    let captures = &inputs.types[1..];
    check_inputs("then_branch", captures, &op.then_branch)?;
    check_inputs("else_branch", captures, &op.else_branch)?;
    let (t, e) = (op.then_branch.output_types(), op.else_branch.output_types());
    if t.len() != e.len() {
        return Err(format!(
            "then_branch has {} outputs, else_branch {}",
            t.len(),
            e.len()
        ));
    }
    t.iter().zip(&e).map(|(a, b)| merge(a, b)).collect()
}

pub fn infer_loop(op: &Loop, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    let k = op.carried;
    if inputs.len() < 2 + k {
        return Err(format!(
            "Loop with {k} carried values has {} inputs",
            inputs.len()
        ));
    }
    let trip = inputs.ty(0)?;
    if !trip.dtype.is_int() || trip.shape.iter().any(|d| d.fixed().is_some_and(|n| n != 1)) {
        return Err(format!("the trip count must be one integer, is {trip}"));
    }
    one_bool(inputs.ty(1)?, "the condition")?;
    let body_in = op.body.input_types();
    let body_out = op.body.output_types();
    if body_in.len() != inputs.len() || body_out.len() < 1 + k {
        return Err(format!(
            "the body takes {} inputs and gives {} outputs for {} node inputs and {k} carried values",
            body_in.len(),
            body_out.len(),
            inputs.len()
        ));
    }
    // The iteration number and condition come from the loop, the rest from the node.
    let given: Vec<&TensorType> = inputs.types[2..].to_vec();
    for (i, (h, w)) in given.iter().zip(&body_in[2..]).enumerate() {
        if !fits(h, w) {
            return Err(format!("body input #{} is {w}, the node gives {h}", i + 2));
        }
    }
    one_bool(body_out[0], "the body's condition output")?;
    let mut out = Vec::with_capacity(body_out.len() - 1);
    for (initial, next) in inputs.types[2..2 + k].iter().zip(&body_out[1..1 + k]) {
        out.push(merge(initial, next)?);
    }
    let rows = exact_trips(op, inputs).map_or_else(unknown_dim, Dim::Fixed);
    for each in &body_out[1 + k..] {
        let mut shape = vec![rows.clone()];
        shape.extend(each.shape.iter().cloned());
        out.push(TensorType::new(each.dtype, shape));
    }
    Ok(out)
}

/// How many iterations a loop runs when nothing but a constant trip count ends it: the initial
/// condition and the body's condition output are the constant true (an ONNX Scan of a fixed
/// length is such a loop).
fn exact_trips(op: &Loop, inputs: &Inputs) -> Option<u64> {
    let is_true = |t: Option<&crate::ir::Tensor>| t.is_some_and(|t| t.to_f64s() == [1.0]);
    let body = &*op.body.0;
    let always = is_true(inputs.consts.get(1).copied().flatten())
        && is_true(body.outputs.first().and_then(|&c| body.constant(c)));
    let trip = inputs.consts.first().copied().flatten()?.to_i64s()?;
    match trip.as_slice() {
        [n] if always && (0..i64::MAX).contains(n) => Some(*n as u64),
        _ => None,
    }
}
