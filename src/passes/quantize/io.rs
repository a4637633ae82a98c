//! `--io int8`: the quantized model's inputs and outputs as its int8 values.

use crate::error::Result;
use crate::ir::{Graph, Op, ValueId};
use std::collections::HashMap;

/// `--io int8`: graph inputs and outputs that have a quantize/dequantize pair become the int8
/// values themselves (names kept), so the model takes and returns int8.
pub fn int8_io(g: &mut Graph) -> Result<usize> {
    let producers = g.producers();
    let mut readers: HashMap<ValueId, Vec<usize>> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for &v in &n.inputs {
            readers.entry(v).or_default().push(i);
        }
    }
    let mut names = g.names();
    let mut dead = vec![false; g.nodes.len()];
    let mut changed = 0;
    for k in 0..g.inputs.len() {
        let x = g.inputs[k];
        // Only an input read by nothing but its QuantizeLinear.
        let Some(&[qi]) = readers.get(&x).map(Vec::as_slice) else {
            continue;
        };
        if !matches!(g.nodes[qi].op, Op::QuantizeLinear(_)) || g.outputs.contains(&x) {
            continue;
        }
        let q = g.nodes[qi].outputs[0];
        let name = g.value(x).name.clone();
        g.value_mut(x).name = names.fresh(&format!("{name}_float"));
        g.value_mut(q).name = name;
        g.inputs[k] = q;
        dead[qi] = true;
        changed += 1;
    }
    for k in 0..g.outputs.len() {
        let d = g.outputs[k];
        let Some(&di) = producers.get(&d) else {
            continue;
        };
        if !matches!(g.nodes[di].op, Op::DequantizeLinear(_)) {
            continue;
        }
        let q = g.nodes[di].inputs[0];
        if g.constant(q).is_some() {
            continue;
        }
        let name = g.value(d).name.clone();
        g.value_mut(d).name = names.fresh(&format!("{name}_dequantized"));
        g.value_mut(q).name = name;
        g.outputs[k] = q;
        changed += 1;
    }
    let mut k = dead.iter();
    g.nodes.retain(|_| !*k.next().unwrap_or(&false));
    g.remove_dead();
    Ok(changed)
}
