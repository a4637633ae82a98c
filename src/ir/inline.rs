//! Copying one graph into another (a Scan body into the loop body that runs it, a branch into
//! the graph around it).

use super::{Graph, Node, ValueId};
use std::collections::HashMap;

impl Graph {
    /// Copies `body`'s nodes into this graph with its inputs bound to `inputs`, and returns the
    /// values its outputs became. Copied names are prefixed with `prefix` (made unique);
    /// constants share their bytes.
    pub fn inline(
        &mut self,
        body: &Graph,
        inputs: &[ValueId],
        prefix: &str,
    ) -> Result<Vec<ValueId>, String> {
        if inputs.len() != body.inputs.len() {
            return Err(format!(
                "{prefix}: the body takes {} inputs, {} given",
                body.inputs.len(),
                inputs.len()
            ));
        }
        let mut names = self.names();
        let mut node_names = self.names();
        let mut map: HashMap<ValueId, ValueId> = body
            .inputs
            .iter()
            .copied()
            .zip(inputs.iter().copied())
            .collect();
        let mut take = |g: &mut Graph, v: ValueId| -> ValueId {
            *map.entry(v).or_insert_with(|| {
                let mut value = body.value(v).clone();
                value.name = names.fresh(&format!("{prefix}/{}", value.name));
                g.values.push(value);
                ValueId(g.values.len() - 1)
            })
        };
        for n in &body.nodes {
            let node = Node {
                name: node_names.fresh(&format!("{prefix}/{}", n.name)),
                op: n.op.clone(),
                inputs: n.inputs.iter().map(|&v| take(self, v)).collect(),
                outputs: n.outputs.iter().map(|&v| take(self, v)).collect(),
            };
            self.nodes.push(node);
        }
        Ok(body.outputs.iter().map(|&o| take(self, o)).collect())
    }
}
