//! If and Loop with their subgraphs. An IR body is a graph of its own whose last inputs are the
//! outer values it reads (captures); ONNX subgraphs read outer values by name instead. So each
//! body is written with its captures renamed to the outer names, its other values prefixed with
//! the node's name (ONNX forbids a subgraph name shadowing an outer one), and only its formal
//! inputs (none for If; iteration number, condition and carried values for Loop) listed.

use super::super::emit::{attr_t, Emitter};
use super::super::{type_proto, value_info};
use super::{emit_node, R};
use crate::formats::onnx::onnx_code;
use crate::ir::ops::{If, Loop};
use crate::ir::{Graph, Node};
use std::collections::HashSet;
use tract_onnx::pb::{self, attribute_proto::AttributeType, AttributeProto};

pub fn emit_if(em: &mut Emitter, n: &Node, op: &If, ins: Vec<String>, outs: Vec<String>) -> R {
    let captures = &ins[1..];
    let attrs = vec![
        graph_attr(em, "then_branch", &op.then_branch.0, 0, captures, &n.name)?,
        graph_attr(em, "else_branch", &op.else_branch.0, 0, captures, &n.name)?,
    ];
    em.node("If", &n.name, ins[..1].to_vec(), outs, attrs);
    Ok(())
}

pub fn emit_loop(em: &mut Emitter, n: &Node, op: &Loop, ins: Vec<String>, outs: Vec<String>) -> R {
    let formal = 2 + op.carried;
    let captures = ins.get(formal..).unwrap_or_default();
    let attrs = vec![graph_attr(
        em, "body", &op.body.0, formal, captures, &n.name,
    )?];
    em.node(
        "Loop",
        &n.name,
        ins[..formal.min(ins.len())].to_vec(),
        outs,
        attrs,
    );
    Ok(())
}

fn graph_attr(
    em: &Emitter,
    attr: &str,
    body: &Graph,
    formal: usize,
    captures: &[String],
    node: &str,
) -> Result<AttributeProto, String> {
    let g = Some(subgraph(
        em,
        body,
        formal,
        captures,
        &format!("{node}/{attr}"),
    )?);
    Ok(AttributeProto {
        name: attr.into(),
        r#type: AttributeType::Graph as i32,
        g,
        ..Default::default()
    })
}

fn subgraph(
    outer: &Emitter,
    body: &Graph,
    formal: usize,
    captures: &[String],
    prefix: &str,
) -> Result<pb::GraphProto, String> {
    if body.inputs.len() != formal + captures.len() {
        return Err(format!(
            "{prefix} takes {} inputs, the node gives {}",
            body.inputs.len(),
            formal + captures.len()
        ));
    }
    let mut g = body.clone();
    let capture_ids: HashSet<_> = g.inputs[formal..].iter().copied().collect();
    for (i, v) in g.values.iter_mut().enumerate() {
        if !capture_ids.contains(&crate::ir::ValueId(i)) {
            v.name = format!("{prefix}/{}", v.name);
        }
    }
    for (&v, name) in body.inputs[formal..].iter().zip(captures) {
        g.value_mut(v).name = name.clone();
    }
    let mut em = Emitter::new(&g, outer.opset);
    for (k, n) in g.nodes.iter().enumerate() {
        em.position = k;
        emit_node(&mut em, n).map_err(|e| format!("{prefix}: node '{}': {e}", n.name))?;
    }
    let output = subgraph_outputs(&mut em, &g, formal, prefix);
    let initializer = em
        .initializers
        .iter()
        .map(|init| pb::TensorProto {
            dims: init.tensor.shape.iter().map(|&d| d as i64).collect(),
            data_type: onnx_code(init.tensor.dtype),
            name: init.name.clone(),
            raw_data: init.tensor.data.to_vec(),
            ..Default::default()
        })
        .collect();
    Ok(pb::GraphProto {
        node: std::mem::take(&mut em.nodes),
        name: prefix.into(),
        input: g.inputs[..formal]
            .iter()
            .map(|&i| value_info(&g, i))
            .collect(),
        output,
        initializer,
        ..Default::default()
    })
}

/// A subgraph's outputs are values its own nodes produce, once each: an output that is an
/// input, a capture, a constant or a repeat gets an Identity (or Constant) node of its own.
fn subgraph_outputs(
    em: &mut Emitter,
    g: &Graph,
    formal: usize,
    prefix: &str,
) -> Vec<pb::ValueInfoProto> {
    let produced: HashSet<_> = g.nodes.iter().flat_map(|n| n.outputs.iter()).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(g.outputs.len());
    for (k, &o) in g.outputs.iter().enumerate() {
        let name = g.value(o).name.clone();
        if produced.contains(&o) && seen.insert(o) {
            out.push(value_info(g, o));
            continue;
        }
        let fresh = em.fresh(&format!("{prefix}/output_{k}"));
        match g.constant(o) {
            Some(t) if !g.inputs[..formal].contains(&o) => em.node(
                "Constant",
                &fresh,
                vec![],
                vec![fresh.clone()],
                vec![attr_t("value", t)],
            ),
            _ => em.node("Identity", &fresh, vec![name], vec![fresh.clone()], vec![]),
        }
        out.push(pb::ValueInfoProto {
            name: fresh,
            r#type: Some(type_proto(g.ty(o))),
            ..Default::default()
        });
    }
    out
}
