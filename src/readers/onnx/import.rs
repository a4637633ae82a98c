//! Turns ONNX nodes into IR nodes. Every node goes through [`Importer::import_node`], which
//! dispatches on the op type (handlers in `ops/`) and binds the ONNX output names; folding and
//! shape tracking live in the shared [`GraphBuilder`] the importer wraps.

use super::ops;
use crate::error::Unsupported;
use crate::ir::ValueId;
pub use crate::readers::builder::{unsupported, GraphBuilder, NodeError, NodeResult, ShapeEntry};
use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use tract_onnx::pb::{AttributeProto, NodeProto};

pub struct Importer {
    pub b: GraphBuilder,
    pub opset: i64,
    names: HashMap<String, ValueId>,
    /// Model-local functions, inlined where called.
    pub functions: super::functions::Functions,
    inline_depth: usize,
    /// How deep in subgraphs (If branches, Loop bodies) this importer is.
    pub depth: usize,
    /// Nodes the model may still import ([`crate::ir::limits::max_nodes`] at the start), shared
    /// with the importers of its subgraphs: nested function calls can multiply a small file's
    /// nodes without end, and this bounds the graph built whatever the nesting.
    pub budget: std::rc::Rc<std::cell::Cell<usize>>,
    /// ONNX value names that could not be produced because their node was unsupported.
    poisoned: HashSet<String>,
}

impl Deref for Importer {
    type Target = GraphBuilder;
    fn deref(&self) -> &GraphBuilder {
        &self.b
    }
}

impl DerefMut for Importer {
    fn deref_mut(&mut self) -> &mut GraphBuilder {
        &mut self.b
    }
}

/// A node being imported: its proto and resolved inputs (`None` for omitted optional inputs).
pub struct NodeCtx<'a> {
    pub node: &'a NodeProto,
    pub inputs: Vec<Option<ValueId>>,
    pub name: String,
}

impl NodeCtx<'_> {
    pub fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }
    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).map_or(default, |a| a.f)
    }
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
    pub fn string(&self, name: &str, default: &str) -> String {
        self.attr(name).map_or(default.to_string(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        })
    }
    /// Required input `i`.
    pub fn input(&self, i: usize) -> NodeResult<ValueId> {
        self.inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| NodeError::Invalid(format!("missing input #{i}")))
    }
    pub fn opt_input(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }
}

impl Importer {
    pub fn new(opset: i64) -> Importer {
        Importer {
            b: GraphBuilder::new(),
            opset,
            names: HashMap::new(),
            functions: Default::default(),
            inline_depth: 0,
            depth: 0,
            budget: std::rc::Rc::new(std::cell::Cell::new(crate::ir::limits::max_nodes())),
            poisoned: HashSet::new(),
        }
    }

    pub fn bind(&mut self, onnx_name: &str, id: ValueId) {
        self.names.insert(onnx_name.to_string(), id);
    }

    /// Records a graph input or initializer this reader cannot represent; nodes using it are
    /// skipped (and still reported if their own op is unknown).
    pub fn refuse_value(&mut self, kind: &str, name: &str, reason: String) {
        self.unsupported.push(Unsupported {
            op: kind.to_string(),
            node: name.to_string(),
            reason,
        });
        self.poisoned.insert(name.to_string());
    }

    /// Whether `onnx_name` could not be produced because an unsupported node stood before it.
    pub fn is_poisoned(&self, onnx_name: &str) -> bool {
        self.poisoned.contains(onnx_name)
    }

    pub fn lookup(&self, onnx_name: &str) -> Option<ValueId> {
        self.names.get(onnx_name).copied()
    }

    pub fn add_input(&mut self, name: &str, ty: crate::ir::TensorType) -> ValueId {
        let id = self.b.add_input(name, ty);
        self.bind(name, id);
        id
    }

    /// Imports a list of nodes in order, collecting unsupported ones instead of stopping.
    pub fn import_nodes(&mut self, nodes: &[NodeProto]) -> Result<(), String> {
        for (i, node) in nodes.iter().enumerate() {
            let name = if node.name.is_empty() {
                format!("{}_{i}", node.op_type)
            } else {
                node.name.clone()
            };
            match self.budget.get().checked_sub(1) {
                Some(left) => self.budget.set(left),
                None => return Err(crate::ir::limits::too_many_nodes(&format!("node '{name}'"))),
            }
            let key = (node.domain.clone(), node.op_type.clone());
            if let Some(f) = self.functions.get(&key) {
                if self.inline_depth > 32 {
                    return Err(format!(
                        "node '{name}': function '{}' calls itself too deeply",
                        node.op_type
                    ));
                }
                let body = super::functions::inline(f, node, &name);
                self.inline_depth += 1;
                let r = self.import_nodes(&body);
                self.inline_depth -= 1;
                r?;
                continue;
            }
            let mut inputs = Vec::with_capacity(node.input.len());
            let mut blocked = false;
            for inp in &node.input {
                if inp.is_empty() {
                    inputs.push(None);
                } else if let Some(v) = self.lookup(inp) {
                    inputs.push(Some(v));
                } else if self.poisoned.contains(inp) {
                    blocked = true;
                } else {
                    return Err(format!(
                        "node '{name}' ({}): input '{inp}' is not defined",
                        node.op_type
                    ));
                }
            }
            let domain_ok = ops::domain_known(&node.domain);
            if blocked {
                // An upstream node was unsupported: still report this one if it is unknown too.
                if !domain_ok || !ops::is_known(&node.domain, &node.op_type) {
                    self.report(node, &name, "no converter for this op".into());
                }
                self.poison(node);
                continue;
            }
            let ctx = NodeCtx {
                node,
                inputs,
                name: name.clone(),
            };
            let values_before = self.g.values.len();
            let result = if domain_ok {
                ops::import(self, &ctx)
            } else {
                unsupported(format!("custom domain '{}'", node.domain))
            };
            match result {
                Ok(outs) => self.bind_outputs(node, &name, outs, values_before)?,
                Err(NodeError::Unsupported(why)) => {
                    self.report(node, &name, why);
                    self.poison(node);
                }
                Err(NodeError::Invalid(why)) => {
                    return Err(format!("node '{name}' ({}): {why}", node.op_type))
                }
            }
        }
        Ok(())
    }

    fn report(&mut self, node: &NodeProto, name: &str, reason: String) {
        let op = if node.domain.is_empty() {
            node.op_type.clone()
        } else {
            format!("{}:{}", node.domain, node.op_type)
        };
        self.unsupported.push(Unsupported {
            op,
            node: name.to_string(),
            reason,
        });
    }

    fn poison(&mut self, node: &NodeProto) {
        for o in &node.output {
            self.poisoned.insert(o.clone());
        }
    }

    fn bind_outputs(
        &mut self,
        node: &NodeProto,
        name: &str,
        outs: Vec<ValueId>,
        values_before: usize,
    ) -> Result<(), String> {
        for (i, onnx_out) in node.output.iter().enumerate() {
            if onnx_out.is_empty() {
                continue;
            }
            let Some(&v) = outs.get(i) else {
                return Err(format!(
                    "node '{name}' ({}): output '{onnx_out}' is not produced",
                    node.op_type
                ));
            };
            // A value made by this node takes the ONNX name; an existing one (Identity) is aliased.
            if v.0 >= values_before
                && self.g.value(v).name != *onnx_out
                && !self.b.name_taken(onnx_out)
            {
                self.b.claim_name(onnx_out);
                self.g.value_mut(v).name = onnx_out.clone();
            }
            self.bind(onnx_out, v);
        }
        Ok(())
    }
}
