//! The graph: values (typed, maybe constant) and nodes (an op, its input and output values).
//!
//! Nodes are kept in a topological order: every node comes after the producers of its inputs.
//! Passes that add nodes insert them before their first user or call [`Graph::sort`].

use super::ops::{self, is_unknown, Inputs};
use super::{Dim, Op, QuantParams, Tensor, TensorType};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

#[derive(Clone, Debug)]
pub struct Value {
    pub name: String,
    pub ty: TensorType,
    /// The data of a constant; shared with the source file, never copied by the IR.
    pub constant: Option<Tensor>,
    pub quant: Option<QuantParams>,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}

/// Fresh names for values and nodes a pass adds (built once per pass: linear, not per name).
pub struct Names {
    used: std::collections::HashSet<String>,
}

impl Names {
    /// A generator with no name taken yet (for a writer's own namespace).
    pub fn empty() -> Names {
        Names {
            used: std::collections::HashSet::new(),
        }
    }

    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while !self.used.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    /// The parameter count as the source framework counts it (Keras `count_params()`: every
    /// weight in the file), when a reader knows it; constants added or reshaped by the reader
    /// (e.g. an LSTM's zero recurrent bias) make the constants' total differ.
    pub source_parameters: Option<usize>,
    next_symbol: usize,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.0]
    }
    pub fn value_mut(&mut self, id: ValueId) -> &mut Value {
        &mut self.values[id.0]
    }
    pub fn ty(&self, id: ValueId) -> &TensorType {
        &self.values[id.0].ty
    }
    pub fn constant(&self, id: ValueId) -> Option<&Tensor> {
        self.values[id.0].constant.as_ref()
    }

    /// Adds a graph input.
    pub fn add_input(&mut self, name: &str, ty: TensorType) -> ValueId {
        let id = self.push_value(name, ty, None);
        self.inputs.push(id);
        id
    }

    /// Adds a constant value holding `t` (the bytes are shared, not copied).
    pub fn add_const(&mut self, name: &str, t: Tensor) -> ValueId {
        let ty = t.ty();
        self.push_value(name, ty, Some(t))
    }

    /// Adds a value a pass is about to produce by a node it inserts.
    pub fn add_value(&mut self, name: &str, ty: TensorType) -> ValueId {
        self.push_value(name, ty, None)
    }

    /// A generator of value/node names not used in this graph yet.
    pub fn names(&self) -> Names {
        Names {
            used: self
                .values
                .iter()
                .map(|v| v.name.clone())
                .chain(self.nodes.iter().map(|n| n.name.clone()))
                .collect(),
        }
    }

    /// A generator of value names not used in this graph yet (node names may be reused).
    pub fn value_names(&self) -> Names {
        Names {
            used: self.values.iter().map(|v| v.name.clone()).collect(),
        }
    }

    fn push_value(&mut self, name: &str, ty: TensorType, constant: Option<Tensor>) -> ValueId {
        self.values.push(Value {
            name: name.to_string(),
            ty,
            constant,
            quant: None,
        });
        ValueId(self.values.len() - 1)
    }

    /// Makes this graph's fresh symbols continue after `other`'s, so a body built beside its
    /// outer graph never reuses one of its symbol names.
    pub fn continue_symbols(&mut self, other: &Graph) {
        self.next_symbol = self.next_symbol.max(other.next_symbol);
    }

    /// A new symbol for a dimension nothing names (data-dependent sizes).
    pub fn fresh_symbol(&mut self) -> Dim {
        self.next_symbol += 1;
        Dim::Sym(format!("unk_{}", self.next_symbol))
    }

    /// Infers the output types of `op` on `inputs`.
    pub fn infer(&self, op: &Op, inputs: &[ValueId]) -> Result<Vec<TensorType>, String> {
        let ins = Inputs {
            types: inputs.iter().map(|&i| self.ty(i)).collect(),
            consts: inputs.iter().map(|&i| self.constant(i)).collect(),
        };
        ops::infer(op, &ins)
    }

    /// Re-infers every node's outputs in order and replaces a symbolic dim by the size
    /// inference now fixes (after an operand computed at run time became a constant, the sizes
    /// after it are known too). Nodes must be in topological order.
    pub fn refine_types(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            let inferred = self
                .infer(&n.op, &n.inputs)
                .map_err(|e| format!("node '{}' ({}): {e}", n.name, n.op.name()))?;
            for (o, want) in self.nodes[i].outputs.clone().into_iter().zip(inferred) {
                let have = &mut self.values[o.0].ty;
                if have.shape.len() != want.shape.len() {
                    continue;
                }
                for (h, w) in have.shape.iter_mut().zip(want.shape) {
                    if let (Dim::Sym(_), Dim::Fixed(_)) = (&*h, &w) {
                        *h = w;
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends a node whose output types come from inference; unknown sizes get fresh symbols.
    /// Returns the output values, named `out_names` (or `name:i` when fewer names are given).
    pub fn add_node(
        &mut self,
        name: &str,
        op: Op,
        inputs: Vec<ValueId>,
        out_names: &[String],
    ) -> Result<Vec<ValueId>, String> {
        let types = self.infer(&op, &inputs)?;
        let mut outputs = Vec::with_capacity(types.len());
        for (i, mut ty) in types.into_iter().enumerate() {
            for d in ty.shape.iter_mut() {
                if is_unknown(d) {
                    *d = self.fresh_symbol();
                }
            }
            let vname = out_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("{name}:{i}"));
            outputs.push(self.push_value(&vname, ty, None));
        }
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
            outputs: outputs.clone(),
        });
        Ok(outputs)
    }

    /// For every value, the index of the node producing it.
    pub fn producers(&self) -> HashMap<ValueId, usize> {
        let mut m = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for &o in &n.outputs {
                m.insert(o, i);
            }
        }
        m
    }

    /// For every value, how many node inputs and graph outputs use it.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.values.len()];
        for n in &self.nodes {
            for &i in &n.inputs {
                c[i.0] += 1;
            }
        }
        for &o in &self.outputs {
            c[o.0] += 1;
        }
        c
    }

    /// Replaces every use of `old` (node inputs and graph outputs) by `new`.
    pub fn replace_uses(&mut self, old: ValueId, new: ValueId) {
        for n in &mut self.nodes {
            for i in &mut n.inputs {
                if *i == old {
                    *i = new;
                }
            }
        }
        for o in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Removes nodes whose outputs reach no graph output, and values nothing refers to.
    /// Returns whether anything was removed.
    pub fn remove_dead(&mut self) -> bool {
        let mut live = vec![false; self.values.len()];
        for &o in &self.outputs {
            live[o.0] = true;
        }
        let mut keep = vec![false; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate().rev() {
            if n.outputs.iter().any(|o| live[o.0]) {
                keep[i] = true;
                for &inp in &n.inputs {
                    live[inp.0] = true;
                }
            }
        }
        let before = self.nodes.len();
        let mut k = keep.iter();
        self.nodes.retain(|_| *k.next().unwrap_or(&true));
        let removed_nodes = before != self.nodes.len();
        for &i in &self.inputs {
            live[i.0] = true;
        }
        for n in &self.nodes {
            for &o in &n.outputs {
                live[o.0] = true;
            }
        }
        removed_nodes | self.compact_values(&live)
    }

    /// Drops values not marked live, renumbering ids everywhere.
    fn compact_values(&mut self, live: &[bool]) -> bool {
        if live.iter().all(|&l| l) {
            return false;
        }
        let mut map = vec![usize::MAX; self.values.len()];
        let mut values = Vec::with_capacity(self.values.len());
        for (i, v) in std::mem::take(&mut self.values).into_iter().enumerate() {
            if live[i] {
                map[i] = values.len();
                values.push(v);
            }
        }
        self.values = values;
        let remap = |id: &mut ValueId| id.0 = map[id.0];
        self.inputs.iter_mut().for_each(remap);
        self.outputs.iter_mut().for_each(remap);
        for n in &mut self.nodes {
            n.inputs.iter_mut().for_each(remap);
            n.outputs.iter_mut().for_each(remap);
        }
        true
    }

    /// Restores topological order (stable: keeps the existing order where it is valid).
    pub fn sort(&mut self) -> Result<(), String> {
        let producers = self.producers();
        let mut state = vec![0u8; self.nodes.len()];
        let mut order = Vec::with_capacity(self.nodes.len());
        for start in 0..self.nodes.len() {
            // Iterative depth-first walk: 1 = on the stack, 2 = placed.
            let mut stack = vec![(start, 0usize)];
            while let Some((n, next_input)) = stack.pop() {
                if state[n] == 2 {
                    continue;
                }
                state[n] = 1;
                if let Some(&inp) = self.nodes[n].inputs.get(next_input) {
                    stack.push((n, next_input + 1));
                    if let Some(&p) = producers.get(&inp) {
                        match state[p] {
                            0 => stack.push((p, 0)),
                            1 => {
                                return Err(format!("cycle through node '{}'", self.nodes[p].name))
                            }
                            _ => {}
                        }
                    }
                } else {
                    state[n] = 2;
                    order.push(n);
                }
            }
        }
        let mut old: Vec<Option<Node>> = std::mem::take(&mut self.nodes)
            .into_iter()
            .map(Some)
            .collect();
        self.nodes = order.into_iter().filter_map(|i| old[i].take()).collect();
        Ok(())
    }

    /// The nodes `nodes` (a stretch of the topological order) as a graph of their own: `inputs`
    /// become its inputs and `outputs` its outputs. Values keep their names, types and
    /// quantization; the constants the nodes use are shared, not copied. Evaluation runs a
    /// large graph in such pieces so that only one piece's weights are in the runtime at once.
    pub fn subgraph(
        &self,
        nodes: std::ops::Range<usize>,
        inputs: &[ValueId],
        outputs: &[ValueId],
    ) -> Graph {
        let mut sub = Graph {
            source_parameters: None,
            next_symbol: self.next_symbol,
            ..Graph::default()
        };
        let mut ids: HashMap<ValueId, ValueId> = HashMap::new();
        let mut take = |sub: &mut Graph, v: ValueId| -> ValueId {
            *ids.entry(v).or_insert_with(|| {
                sub.values.push(self.values[v.0].clone());
                ValueId(sub.values.len() - 1)
            })
        };
        for &i in inputs {
            let id = take(&mut sub, i);
            sub.values[id.0].constant = None;
            sub.inputs.push(id);
        }
        for n in &self.nodes[nodes] {
            let node = Node {
                name: n.name.clone(),
                op: n.op.clone(),
                inputs: n.inputs.iter().map(|&v| take(&mut sub, v)).collect(),
                outputs: n.outputs.iter().map(|&v| take(&mut sub, v)).collect(),
            };
            sub.nodes.push(node);
        }
        sub.outputs = outputs.iter().map(|&o| take(&mut sub, o)).collect();
        sub
    }

    /// Parameter count and bytes held in constants.
    pub fn parameter_stats(&self) -> (usize, usize) {
        let own = self
            .values
            .iter()
            .filter_map(|v| v.constant.as_ref())
            .fold((0, 0), |(n, b), t| (n + t.len(), b + t.data.len()));
        // Subgraphs (a loop body's weights) count too.
        self.nodes
            .iter()
            .flat_map(|n| n.op.bodies())
            .map(|(_, body)| body.parameter_stats())
            .fold(own, |(n, b), (bn, bb)| (n + bn, b + bb))
    }
}
