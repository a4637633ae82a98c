//! Model-local ONNX functions (`ModelProto.functions`, ONNX IR ≥ 8): a node whose
//! (domain, op type) names one is replaced by the function's body, with the function's own
//! value names prefixed by the calling node's name so they stay unique, its formal inputs and
//! outputs mapped to the call's, and attribute references (`ref_attr_name`) taken from the call.

use std::collections::HashMap;
use tract_onnx::pb::{AttributeProto, FunctionProto, NodeProto};

pub type Functions = HashMap<(String, String), FunctionProto>;

pub fn collect(functions: &[FunctionProto]) -> Functions {
    functions
        .iter()
        .map(|f| {
            (
                (
                    f.domain.clone().unwrap_or_default(),
                    f.name.clone().unwrap_or_default(),
                ),
                f.clone(),
            )
        })
        .collect()
}

/// The body of `f` as called by `call` (named `call_name`), ready to import in its place.
pub fn inline(f: &FunctionProto, call: &NodeProto, call_name: &str) -> Vec<NodeProto> {
    let mut rename: HashMap<&str, String> = HashMap::new();
    for (formal, actual) in f.input.iter().zip(&call.input) {
        rename.insert(formal, actual.clone());
    }
    // Formal inputs the call leaves out are absent optional inputs.
    for formal in f.input.iter().skip(call.input.len()) {
        rename.insert(formal, String::new());
    }
    for (formal, actual) in f.output.iter().zip(&call.output) {
        rename.insert(formal, actual.clone());
    }
    let local = |name: &str| -> String {
        if name.is_empty() {
            return String::new();
        }
        rename
            .get(name)
            .cloned()
            .unwrap_or_else(|| format!("{call_name}/{name}"))
    };
    f.node
        .iter()
        .map(|n| {
            let mut n = n.clone();
            n.input = n.input.iter().map(|i| local(i)).collect();
            n.output = n.output.iter().map(|o| local(o)).collect();
            n.name = format!(
                "{call_name}/{}",
                if n.name.is_empty() {
                    &n.op_type
                } else {
                    &n.name
                }
            );
            n.attribute = n
                .attribute
                .iter()
                .filter_map(|a| bind_attribute(a, call))
                .collect();
            n
        })
        .collect()
}

/// An attribute of a body node: itself, or the call's attribute it refers to (dropped when the
/// call does not set it, so the op's default applies).
fn bind_attribute(a: &AttributeProto, call: &NodeProto) -> Option<AttributeProto> {
    if a.ref_attr_name.is_empty() {
        return Some(a.clone());
    }
    let mut bound = call
        .attribute
        .iter()
        .find(|c| c.name == a.ref_attr_name)?
        .clone();
    bound.name = a.name.clone();
    Some(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_names_are_prefixed_and_io_mapped() {
        let body = NodeProto {
            op_type: "Mul".into(),
            input: vec!["x".into(), "x".into()],
            output: vec!["t".into()],
            attribute: vec![AttributeProto {
                name: "alpha".into(),
                ref_attr_name: "scale".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let body2 = NodeProto {
            op_type: "Relu".into(),
            input: vec!["t".into()],
            output: vec!["y".into()],
            ..Default::default()
        };
        let f = FunctionProto {
            name: Some("SquareRelu".into()),
            input: vec!["x".into()],
            output: vec!["y".into()],
            node: vec![body, body2],
            ..Default::default()
        };
        let call = NodeProto {
            op_type: "SquareRelu".into(),
            input: vec!["a".into()],
            output: vec!["b".into()],
            attribute: vec![AttributeProto {
                name: "scale".into(),
                f: 2.0,
                ..Default::default()
            }],
            ..Default::default()
        };
        let nodes = inline(&f, &call, "call1");
        assert_eq!(nodes[0].input, vec!["a", "a"]);
        assert_eq!(nodes[0].output, vec!["call1/t"]);
        assert_eq!(nodes[0].attribute[0].name, "alpha");
        assert_eq!(nodes[0].attribute[0].f, 2.0);
        assert_eq!(nodes[1].input, vec!["call1/t"]);
        assert_eq!(nodes[1].output, vec!["b"]);
    }
}
