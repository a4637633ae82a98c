//! ONNX subgraphs (If branches, Loop and Scan bodies) as IR bodies. An ONNX subgraph reads outer
//! values by name; an IR body is self-contained, so every name a subgraph reads without defining
//! it becomes a capture: an input of the body, fed by the outer value (constants are copied in as
//! constants instead, so they still fold inside).

use super::import::{unsupported, Importer, NodeError, NodeResult};
use crate::ir::{Dim, Graph, TensorType, ValueId};
use std::collections::HashSet;
use tract_onnx::pb::{GraphProto, NodeProto};

/// Nesting deeper than this is refused (each level is a recursion of the reader).
const MAX_DEPTH: usize = 16;

/// An imported subgraph: the body and the outer values its captures read, in its input order
/// (after the formal inputs).
pub struct Imported {
    pub body: Graph,
    pub captures: Vec<ValueId>,
}

/// Names a subgraph's nodes (and the subgraphs nested in them) read but do not define.
pub fn free_names(g: &GraphProto) -> Vec<String> {
    let mut defined: HashSet<&str> = g.input.iter().map(|i| i.name.as_str()).collect();
    defined.extend(g.initializer.iter().map(|t| t.name.as_str()));
    let mut free = Vec::new();
    let mut seen = HashSet::new();
    for n in &g.node {
        for name in node_reads(n) {
            if !name.is_empty() && !defined.contains(name.as_str()) && seen.insert(name.clone()) {
                free.push(name);
            }
        }
        defined.extend(n.output.iter().map(String::as_str));
    }
    free
}

fn node_reads(n: &NodeProto) -> Vec<String> {
    let mut names: Vec<String> = n.input.clone();
    for a in &n.attribute {
        for g in a.g.iter().chain(&a.graphs) {
            names.extend(free_names(g));
        }
    }
    names
}

/// Imports `g` as a body whose first inputs are `formal` (name, type); every other name it reads
/// is looked up in `outer`. Unsupported ops inside are added to `outer`'s list.
pub fn import(
    outer: &mut Importer,
    g: &GraphProto,
    formal: Vec<(String, TensorType)>,
    what: &str,
) -> NodeResult<Imported> {
    if outer.depth >= MAX_DEPTH {
        return unsupported(format!("subgraphs nested more than {MAX_DEPTH} deep"));
    }
    let mut sub = Importer::new(outer.opset);
    sub.depth = outer.depth + 1;
    sub.budget = outer.budget.clone();
    sub.functions = outer.functions.clone();
    sub.g.continue_symbols(&outer.g);
    for (name, ty) in formal {
        sub.add_input(&name, ty);
    }
    for init in &g.initializer {
        let t = super::tensor::tensor_from_proto(
            init,
            None,
            std::path::Path::new("."),
            &mut Default::default(),
        )?;
        let id = sub.add_const(&init.name, t);
        sub.bind(&init.name, id);
    }
    let mut captures = Vec::new();
    for name in free_names(g) {
        if sub.lookup(&name).is_some() {
            continue;
        }
        let Some(v) = outer.lookup(&name) else {
            if outer.is_poisoned(&name) {
                return unsupported(format!(
                    "its {what} reads '{name}', which an unsupported op makes"
                ));
            }
            return Err(NodeError::Invalid(format!(
                "{what} reads '{name}', which is not defined"
            )));
        };
        match outer.g.constant(v) {
            Some(t) => {
                let id = sub.add_const(&name, t.clone());
                sub.bind(&name, id);
            }
            None => {
                let ty = outer.g.ty(v).clone();
                sub.add_input(&name, ty);
                captures.push(v);
            }
        }
    }
    let result = sub.import_nodes(&g.node);
    outer.g.continue_symbols(&sub.g);
    result.map_err(NodeError::Invalid)?;
    if !sub.unsupported.is_empty() {
        outer.unsupported.append(&mut sub.unsupported);
        return unsupported(format!(
            "its {what} holds unsupported ops (listed separately)"
        ));
    }
    let mut outputs = Vec::with_capacity(g.output.len());
    for o in &g.output {
        let v = sub.lookup(&o.name).ok_or_else(|| {
            NodeError::Invalid(format!("{what} output '{}' is not produced", o.name))
        })?;
        outputs.push(v);
    }
    let mut body = std::mem::take(&mut sub.b.g);
    body.outputs = outputs;
    body.remove_dead();
    body.verify()
        .map_err(|e| NodeError::Invalid(format!("{what}: {e}")))?;
    Ok(Imported { body, captures })
}

/// The type a subgraph input gets: the dims its declaration fixes, fresh symbols elsewhere (a
/// loop-carried value may change size between iterations, so the first value's sizes are not
/// promised), with the dtype and rank of the value given.
pub fn declared_type(
    imp: &mut Importer,
    g: &GraphProto,
    index: usize,
    given: &TensorType,
) -> TensorType {
    let declared: Option<Vec<Option<u64>>> = g
        .input
        .get(index)
        .and_then(|i| i.r#type.as_ref())
        .and_then(|t| match &t.value {
            Some(tract_onnx::pb::type_proto::Value::TensorType(tt)) => tt.shape.as_ref(),
            _ => None,
        })
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(n))
                        if n >= 0 =>
                    {
                        Some(n as u64)
                    }
                    _ => None,
                })
                .collect()
        })
        .filter(|d: &Vec<Option<u64>>| d.len() == given.rank());
    let shape = (0..given.rank())
        .map(|i| match declared.as_ref().and_then(|d| d[i]) {
            Some(n) => Dim::Fixed(n),
            None => imp.g.fresh_symbol(),
        })
        .collect();
    TensorType::new(given.dtype, shape)
}
