//! Control flow as TFLite's multi-subgraph builtins. `Loop` is WHILE over the variables
//! `(i, limit, cond, carried…, captures…)`: a condition subgraph `i < limit && cond` and a body
//! subgraph running the IR body and returning the variables in the same order (`i + 1`, the
//! limit, its condition, its carried values, the captures). `If` is IF whose branch subgraphs
//! take the captures. Each subgraph is legalized and planned as a graph of its own; a body holding
//! control flow itself brings its own subgraphs, which join the file's list (renumbered).

use super::plan::{Child, Cx, Opts, TRef};
use crate::ir::ops::{BinaryOp, If, Loop, Reshape};
use crate::ir::{DType, Graph, Op, Tensor, TensorType, ValueId};
use tract_tflite::tflite::BuiltinOperator as B;

/// Legalizes and plans `g` as a subgraph of the file; returns its subgraph index.
fn child(cx: &mut Cx, mut g: Graph, what: &str) -> Result<i32, String> {
    super::legalize::legalize(&mut g, false).map_err(|e| format!("{what}: {e}"))?;
    let plan = super::plan::build(&g).map_err(|items| {
        let reasons: Vec<String> = items
            .iter()
            .map(|u| format!("{} at '{}': {}", u.op, u.node, u.reason))
            .collect();
        format!("{what}: {}", reasons.join("; "))
    })?;
    let mut plan = plan;
    // The body's own subgraphs are numbered from 1 within it; in the file they follow the
    // subgraphs already listed.
    let base = cx.plan.children.len() as i32;
    let mut nested = std::mem::take(&mut plan.children);
    for p in nested.iter_mut().map(|c| &mut c.plan).chain([&mut plan]) {
        for op in &mut p.ops {
            match &mut op.opts {
                Opts::While { cond, body } => {
                    *cond += base;
                    *body += base;
                }
                Opts::If { then, other } => {
                    *then += base;
                    *other += base;
                }
                _ => {}
            }
        }
    }
    cx.plan.children.append(&mut nested);
    cx.plan.children.push(Child { graph: g, plan });
    Ok(cx.plan.children.len() as i32)
}

/// A one-element operand as a scalar (TFLite's WHILE variables keep their shapes).
fn scalar(cx: &mut Cx, v: ValueId, tag: &str) -> Result<TRef, String> {
    let ty = cx.g.ty(v).clone();
    let r = TRef::Value(v);
    if ty.rank() == 0 {
        return Ok(r);
    }
    let out = cx.temp(tag, TensorType::new(ty.dtype, vec![]));
    let shape = cx.i32_vec(&format!("{tag}_shape"), &[]);
    cx.emit(
        B::RESHAPE,
        Opts::Reshape(Some(vec![])),
        vec![Some(r), Some(shape)],
        vec![out],
    );
    Ok(out)
}

/// The loop variables' inputs: `(i, limit, cond, carried…, captures…)` typed as the body sees
/// them (the counter and limit as i64 scalars, the condition a bool scalar).
fn loop_inputs(g: &mut Graph, body: &Graph) -> Vec<ValueId> {
    let scalar = |d: DType| TensorType::new(d, vec![]);
    let mut v = vec![
        g.add_input("i", scalar(DType::I64)),
        g.add_input("limit", scalar(DType::I64)),
        g.add_input("cond", scalar(DType::Bool)),
    ];
    for (k, &b) in body.inputs.iter().enumerate().skip(2) {
        v.push(g.add_input(&format!("var_{k}"), body.ty(b).clone()));
    }
    v
}

fn cond_graph(body: &Graph) -> Result<Graph, String> {
    let mut g = Graph::new();
    let vars = loop_inputs(&mut g, body);
    let less = g.add_node(
        "less",
        Op::Binary(BinaryOp::Less),
        vec![vars[0], vars[1]],
        &[],
    )?[0];
    g.outputs = g.add_node("and", Op::Binary(BinaryOp::And), vec![less, vars[2]], &[])?;
    g.verify()?;
    Ok(g)
}

fn body_graph(l: &Loop) -> Result<Graph, String> {
    let body = &*l.body.0;
    let mut g = Graph::new();
    g.continue_symbols(body);
    let vars = loop_inputs(&mut g, body);
    let mut ins = vec![vars[0], vars[2]];
    ins.extend_from_slice(&vars[3..]);
    let outs = g.inline(body, &ins, "body")?;
    let one = g.add_const("one", Tensor::from_i64s(DType::I64, vec![], &[1]));
    let next = g.add_node("next", Op::Binary(BinaryOp::Add), vec![vars[0], one], &[])?[0];
    // A variable the body passes through is copied (a subgraph output is a tensor it writes).
    let copy = |g: &mut Graph, v: ValueId, name: String| -> Result<ValueId, String> {
        let shape = g.ty(v).shape.clone();
        let op = Op::Reshape(Reshape { shape });
        Ok(g.add_node(&name, op, vec![v], &[])?[0])
    };
    let mut outputs = vec![next, copy(&mut g, vars[1], "pass_limit".into())?];
    for (k, &o) in outs.iter().take(1 + l.carried).enumerate() {
        let is_input = g.inputs.contains(&o) || g.constant(o).is_some();
        outputs.push(match is_input {
            true => copy(&mut g, o, format!("pass_result_{k}"))?,
            false => o,
        });
    }
    for (k, &v) in vars[3 + l.carried..].iter().enumerate() {
        outputs.push(copy(&mut g, v, format!("pass_capture_{k}"))?);
    }
    g.outputs = outputs;
    g.verify()?;
    Ok(g)
}

pub fn while_loop(cx: &mut Cx, l: &Loop) -> Result<(), String> {
    if l.collected() > 0 {
        return Err(
            "a loop that collects values per iteration is not written for TFLite yet".into(),
        );
    }
    let cond = child(cx, cond_graph(&l.body.0)?, "the loop condition")?;
    let body = child(cx, body_graph(l)?, "the loop body")?;
    let n = cx.node;
    let zero = cx.konst("start", Tensor::from_i64s(DType::I64, vec![], &[0]));
    let limit = i64_scalar(cx, n.inputs[0])?;
    let first = scalar(cx, n.inputs[1], "first_cond")?;
    let mut inputs = vec![Some(zero), Some(limit), Some(first)];
    inputs.extend(n.inputs[2..].iter().map(|&v| Some(TRef::Value(v))));
    let scalar_ty = |d: DType| TensorType::new(d, vec![]);
    let mut outputs = vec![
        cx.temp("i_out", scalar_ty(DType::I64)),
        cx.temp("limit_out", scalar_ty(DType::I64)),
        cx.temp("cond_out", scalar_ty(DType::Bool)),
    ];
    for j in 0..l.carried {
        outputs.push(cx.out(j));
    }
    for (k, &v) in n.inputs[2 + l.carried..].iter().enumerate() {
        let ty = cx.g.ty(v).clone();
        outputs.push(cx.temp(&format!("capture_out_{k}"), ty));
    }
    cx.emit(B::WHILE, Opts::While { cond, body }, inputs, outputs);
    Ok(())
}

/// The trip limit as an i64 scalar (a larger constant than i64 allows never occurs: IR limits
/// are i64).
fn i64_scalar(cx: &mut Cx, v: ValueId) -> Result<TRef, String> {
    let dt = cx.g.ty(v).dtype;
    let s = scalar(cx, v, "limit")?;
    if dt == DType::I64 {
        return Ok(s);
    }
    let out = cx.temp("limit64", TensorType::new(DType::I64, vec![]));
    cx.emit(
        B::CAST,
        Opts::Cast {
            from: dt,
            to: DType::I64,
        },
        vec![Some(s)],
        vec![out],
    );
    Ok(out)
}

pub fn if_(cx: &mut Cx, op: &If) -> Result<(), String> {
    let then = child(cx, (*op.then_branch.0).clone(), "the then branch")?;
    let other = child(cx, (*op.else_branch.0).clone(), "the else branch")?;
    let n = cx.node;
    let cond = scalar(cx, n.inputs[0], "cond")?;
    let mut inputs = vec![Some(cond)];
    inputs.extend(n.inputs[1..].iter().map(|&v| Some(TRef::Value(v))));
    let outputs = (0..n.outputs.len()).map(|j| cx.out(j)).collect();
    cx.emit(B::IF, Opts::If { then, other }, inputs, outputs);
    Ok(())
}
