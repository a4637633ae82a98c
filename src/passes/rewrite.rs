//! A small helper for passes that replace nodes by sequences of other nodes: the node list is
//! taken out of the graph and rebuilt in order, so new nodes land right where the node they
//! replace was (topological order is kept without a sort).

use crate::ir::ops::is_unknown;
use crate::ir::{Graph, Names, Node, Op, Tensor, ValueId};

pub struct Rewriter<'g> {
    pub g: &'g mut Graph,
    pub names: Names,
    out: Vec<Node>,
}

impl<'g> Rewriter<'g> {
    /// Takes the nodes out of `g`; returns the rewriter and the old nodes to walk.
    pub fn begin(g: &'g mut Graph) -> (Rewriter<'g>, Vec<Node>) {
        let names = g.names();
        let old = std::mem::take(&mut g.nodes);
        let out = Vec::with_capacity(old.len());
        (Rewriter { g, names, out }, old)
    }

    /// Keeps a node unchanged.
    pub fn keep(&mut self, n: Node) {
        self.out.push(n);
    }

    /// A new constant value.
    pub fn konst(&mut self, base: &str, t: Tensor) -> ValueId {
        let name = self.names.fresh(base);
        self.g.add_const(&name, t)
    }

    /// A scalar f32 constant, broadcastable against anything.
    pub fn f32(&mut self, base: &str, v: f32) -> ValueId {
        self.konst(base, Tensor::scalar_f32(v))
    }

    /// Appends `op` on `inputs`; returns its (single, first) output, typed by inference.
    pub fn op(&mut self, base: &str, op: Op, inputs: Vec<ValueId>) -> Result<ValueId, String> {
        Ok(self.op_multi(base, op, inputs)?[0])
    }

    /// Appends `op` on `inputs`; returns all its outputs.
    pub fn op_multi(
        &mut self,
        base: &str,
        op: Op,
        inputs: Vec<ValueId>,
    ) -> Result<Vec<ValueId>, String> {
        let types = self.g.infer(&op, &inputs)?;
        let mut outputs = Vec::with_capacity(types.len());
        for mut ty in types {
            for d in ty.shape.iter_mut() {
                if is_unknown(d) {
                    *d = self.g.fresh_symbol();
                }
            }
            let name = self.names.fresh(base);
            outputs.push(self.g.add_value(&name, ty));
        }
        if outputs.is_empty() {
            return Err(format!("{} makes no output", op.name()));
        }
        self.out.push(Node {
            name: self.names.fresh(base),
            op,
            inputs,
            outputs: outputs.clone(),
        });
        Ok(outputs)
    }

    /// Appends `op` on `inputs` writing the existing value `out` (the replaced node's output, so
    /// its name and uses stay).
    pub fn op_into(&mut self, name: &str, op: Op, inputs: Vec<ValueId>, out: ValueId) {
        self.out.push(Node {
            name: name.to_string(),
            op,
            inputs,
            outputs: vec![out],
        });
    }

    /// Makes the new node that produced `v` write `out` instead (the replaced node's output, so
    /// its name and uses stay). `v` must be the output of a node added by this rewriter.
    pub fn retarget_last(&mut self, v: ValueId, out: ValueId) {
        if let Some(n) = self.out.iter_mut().rev().find(|n| n.outputs.contains(&v)) {
            for o in n.outputs.iter_mut().filter(|o| **o == v) {
                *o = out;
            }
        }
    }

    /// Puts the rebuilt node list back into the graph.
    pub fn finish(self) {
        self.g.nodes = self.out;
    }
}
