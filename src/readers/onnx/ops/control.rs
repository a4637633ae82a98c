//! ONNX control flow: If (inlined when its condition folds to a constant, else `Op::If` with both
//! branches as bodies) and Loop (`Op::Loop`). Subgraphs are imported by `subgraph.rs`.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::super::subgraph::{self, declared_type};
use super::Handler;
use crate::ir::ops::{Body, If, Loop};
use crate::ir::{DType, Graph, Op, Tensor, TensorType, ValueId};
use tract_onnx::pb::GraphProto;

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "If" => if_,
        "Loop" => loop_,
        "Scan" => super::scan::scan,
        _ => return None,
    })
}

pub fn graph_attr<'a>(ctx: &NodeCtx<'a>, name: &str) -> NodeResult<&'a GraphProto> {
    ctx.node
        .attribute
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| a.g.as_ref())
        .ok_or_else(|| NodeError::Invalid(format!("{} without {name}", ctx.node.op_type)))
}

fn if_(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let cond = ctx.input(0)?;
    if let Some(c) = imp.const_ints(cond) {
        return inline_branch(imp, ctx, c);
    }
    let t = subgraph::import(imp, graph_attr(ctx, "then_branch")?, vec![], "then_branch")?;
    let e = subgraph::import(imp, graph_attr(ctx, "else_branch")?, vec![], "else_branch")?;
    let (to, eo) = (&t.body.outputs, &e.body.outputs);
    if to.len() != eo.len() {
        return Err(NodeError::Invalid(
            "the branches give different numbers of outputs".into(),
        ));
    }
    for (&a, &b) in to.iter().zip(eo) {
        let (ta, tb) = (t.body.ty(a), e.body.ty(b));
        if ta.dtype != tb.dtype || ta.rank() != tb.rank() {
            return unsupported(format!(
                "an If whose branches give {ta} and {tb}: a value's rank must not depend on the branch"
            ));
        }
    }
    let mut captures = t.captures.clone();
    for c in &e.captures {
        if !captures.contains(c) {
            captures.push(*c);
        }
    }
    let op = If {
        then_branch: Body::new(with_captures(imp, t.body, &t.captures, &captures)),
        else_branch: Body::new(with_captures(imp, e.body, &e.captures, &captures)),
    };
    let mut inputs = vec![cond];
    inputs.extend(captures);
    imp.emit(&ctx.name, Op::If(op), inputs)
}

/// `body` (whose inputs are its own `own` captures) taking every capture of `all`, in that
/// order: the ones it does not read become unused inputs.
fn with_captures(imp: &Importer, mut body: Graph, own: &[ValueId], all: &[ValueId]) -> Graph {
    let formal = body.inputs.len() - own.len();
    let mut inputs = body.inputs[..formal].to_vec();
    let mut names = body.names();
    for outer in all {
        match own.iter().position(|o| o == outer) {
            Some(k) => inputs.push(body.inputs[formal + k]),
            None => {
                let name = names.fresh(&imp.g.value(*outer).name);
                inputs.push(body.add_input(&name, imp.g.ty(*outer).clone()));
            }
        }
    }
    body.inputs = inputs;
    body
}

/// Loop-13 (and 1, 11): a trip count or condition left out becomes a constant (no limit: the
/// largest i64; no condition: true).
fn loop_(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let g = graph_attr(ctx, "body")?;
    let trip = match ctx.opt_input(0) {
        Some(v) => v,
        None => imp.add_const(
            &format!("{}/no_limit", ctx.name),
            Tensor::scalar_i64(i64::MAX),
        ),
    };
    let cond = match ctx.opt_input(1) {
        Some(v) => v,
        None => {
            let t = Tensor::from_f64s(DType::Bool, vec![], &[1.0]);
            imp.add_const(&format!("{}/always", ctx.name), t)
        }
    };
    let carried: Vec<ValueId> = (2..ctx.inputs.len())
        .map(|i| ctx.input(i))
        .collect::<NodeResult<_>>()?;
    if g.input.len() != 2 + carried.len() {
        return Err(NodeError::Invalid(format!(
            "the body takes {} inputs for {} carried values",
            g.input.len(),
            carried.len()
        )));
    }
    let mut formal = vec![
        (g.input[0].name.clone(), TensorType::new(DType::I64, vec![])),
        (
            g.input[1].name.clone(),
            TensorType::new(DType::Bool, vec![]),
        ),
    ];
    for (j, &v) in carried.iter().enumerate() {
        let given = imp.g.ty(v).clone();
        formal.push((
            g.input[2 + j].name.clone(),
            declared_type(imp, g, 2 + j, &given),
        ));
    }
    let b = subgraph::import(imp, g, formal, "body")?;
    if b.body.outputs.len() < 1 + carried.len() {
        return unsupported("a Loop body without its condition and carried outputs");
    }
    let op = Loop {
        body: Body::new(b.body),
        carried: carried.len(),
    };
    let mut inputs = vec![trip, cond];
    inputs.extend(carried);
    inputs.extend(b.captures);
    imp.emit(&ctx.name, Op::Loop(op), inputs)
}

/// An If whose condition folded to a constant: the branch taken is imported in place.
fn inline_branch(imp: &mut Importer, ctx: &NodeCtx, c: Vec<i64>) -> NodeResult<Vec<ValueId>> {
    let branch = if c.first().copied().unwrap_or(0) != 0 {
        "then_branch"
    } else {
        "else_branch"
    };
    let g = ctx
        .attr(branch)
        .and_then(|a| a.g.as_ref())
        .ok_or_else(|| NodeError::Invalid(format!("If without {branch}")))?;
    for init in &g.initializer {
        let t = super::super::tensor::tensor_from_proto(
            init,
            None,
            std::path::Path::new("."),
            &mut Default::default(),
        )?;
        let id = imp.add_const(&init.name, t);
        imp.bind(&init.name, id);
    }
    let before = imp.unsupported.len();
    imp.import_nodes(&g.node).map_err(NodeError::Invalid)?;
    if imp.unsupported.len() > before {
        return unsupported(format!(
            "its {branch} holds unsupported ops (listed separately)"
        ));
    }
    if g.output.iter().any(|o| imp.is_poisoned(&o.name)) {
        return unsupported(format!(
            "its {branch} depends on unsupported ops (listed separately)"
        ));
    }
    g.output
        .iter()
        .map(|o| {
            imp.lookup(&o.name).ok_or_else(|| {
                NodeError::Invalid(format!("{branch} output '{}' not produced", o.name))
            })
        })
        .collect()
}
