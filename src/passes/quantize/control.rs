//! Quantization around control flow (If, Loop).

use super::activations::Kind;
use crate::ir::{Graph, ValueId};
use std::collections::HashSet;

/// The values a control-flow node reads stay float, and so do the value-moving ops that make
/// them and the value those start from (it gets no QuantizeLinear/DequantizeLinear pair):
/// onnxruntime 1.31 moves a Transpose across a DequantizeLinear and then loses a loop body's
/// reference to the Transpose's output (an assertion aborts the process). Returns the values
/// that must get no pair.
pub fn keep_control_inputs_float(g: &Graph, kinds: &mut [Option<Kind>]) -> HashSet<ValueId> {
    let producers = g.producers();
    let mut stack: Vec<ValueId> = g
        .nodes
        .iter()
        .filter(|n| !n.op.bodies().is_empty())
        .flat_map(|n| n.inputs.iter().copied())
        .collect();
    let mut seen = HashSet::new();
    let mut float = HashSet::new();
    while let Some(v) = stack.pop() {
        float.insert(v);
        let Some(&p) = producers.get(&v) else {
            continue;
        };
        if seen.insert(p) && kinds[p] == Some(Kind::SameAsInput) {
            kinds[p] = None;
            stack.extend(g.nodes[p].inputs.iter().copied());
        }
    }
    float
}
