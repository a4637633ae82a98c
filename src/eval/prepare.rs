//! A graph's last changes before it goes to tract, none of which changes what it computes.
//!
//! Weights stored quantized (DequantizeLinear of int8 constants) or as float16 (Cast of float16
//! constants) become float32 constants. tract keeps such nodes in its plan and runs them on
//! every run, then repacks the matmul weights they feed each time; as constants, the weights are
//! packed once, when the plan is made (on the 106 MB benchmark MLP this took the int8 model's
//! accuracy report from 25 ms per layer and batch to the float model's speed). The arithmetic
//! is the op's own — `(q - zero_point) · scale` in float32, float16 → float32 exactly.
//!
//! Nodes computing the same op on the same inputs are merged: tract 0.23 fails on a graph whose
//! outputs include two identical Relus around a Clip(0, 6) ("eval() called on a Dummy op"),
//! which evaluation in pieces produces when parallel branches end at a cut.
//!
//! A one-way reverse LSTM or GRU runs forward on the time-reversed input, its Y reversed back:
//! tract 0.23 computes `direction=reverse` layers wrongly (bidirectional ones are right; a
//! reverse LSTM off onnxruntime by 0.35 on the `lstm_fixed_batch_seq` weights), and TFLite
//! writes such layers as a forward builtin between REVERSE_V2s, which this is.

use crate::ir::ops::{RnnDirection, Slice, SliceAxis};
use crate::ir::{Graph, Node, Op, QuantParams, ValueId};
use std::collections::HashMap;

/// Everything this module does, in order.
pub fn for_tract(g: &mut Graph) {
    reverse_rnns_forward(g);
    expand_stored_weights(g);
    merge_duplicate_nodes(g);
}

/// Every one-way reverse LSTM/GRU as Slice(step -1) → forward layer → Slice(step -1) on Y.
/// Y_h and Y_c are the states after the last step run either way.
pub fn reverse_rnns_forward(g: &mut Graph) -> bool {
    let mut changed = false;
    for i in 0..g.nodes.len() {
        let mut n = g.nodes[i].clone();
        let r = match &mut n.op {
            Op::Lstm(r) | Op::Gru(r) if r.direction == RnnDirection::Reverse => r,
            _ => continue,
        };
        r.direction = RnnDirection::Forward;
        let time = usize::from(r.batch_major);
        let flip = |axis| {
            Op::Slice(Slice {
                axes: vec![SliceAxis {
                    axis,
                    start: -1,
                    end: i64::MIN,
                    step: -1,
                }],
            })
        };
        let (x, y) = (n.inputs[0], n.outputs[0]);
        let x_rev = g.add_value(&format!("{}/x_reversed", n.name), g.ty(x).clone());
        let y_rev = g.add_value(&format!("{}/y_reversed", n.name), g.ty(y).clone());
        n.inputs[0] = x_rev;
        n.outputs[0] = y_rev;
        g.nodes.push(Node {
            name: format!("{}/reverse_x", n.name),
            op: flip(time),
            inputs: vec![x],
            outputs: vec![x_rev],
        });
        g.nodes.push(Node {
            name: format!("{}/reverse_y", n.name),
            op: flip(time),
            inputs: vec![y_rev],
            outputs: vec![y],
        });
        g.nodes[i] = n;
        changed = true;
    }
    if changed && g.sort().is_err() {
        // A graph that was sorted stays sortable: the new nodes only wrap existing edges.
        return false;
    }
    changed
}

/// Later nodes with the same op and inputs as an earlier one are dropped, their outputs' uses
/// (graph outputs included, which may then list a value twice) moved to the earlier node's.
/// Nodes without inputs are left alone.
pub fn merge_duplicate_nodes(g: &mut Graph) -> bool {
    let mut seen: HashMap<(Vec<ValueId>, String), Vec<usize>> = HashMap::new();
    let mut replace: HashMap<ValueId, ValueId> = HashMap::new();
    let mut dead = vec![false; g.nodes.len()];
    for (i, is_dead) in dead.iter_mut().enumerate() {
        for v in &mut g.nodes[i].inputs {
            if let Some(&r) = replace.get(v) {
                *v = r;
            }
        }
        let n = &g.nodes[i];
        if n.inputs.is_empty() {
            continue;
        }
        let same = seen.entry((n.inputs.clone(), n.op.name())).or_default();
        let earlier = same
            .iter()
            .copied()
            .find(|&j| g.nodes[j].op == n.op && g.nodes[j].outputs.len() == n.outputs.len());
        match earlier {
            Some(j) => {
                for (&a, &b) in n.outputs.iter().zip(&g.nodes[j].outputs) {
                    replace.insert(a, b);
                }
                *is_dead = true;
            }
            None => same.push(i),
        }
    }
    if replace.is_empty() {
        return false;
    }
    for o in &mut g.outputs {
        if let Some(&r) = replace.get(o) {
            *o = r;
        }
    }
    let mut k = dead.iter();
    g.nodes.retain(|_| !*k.next().unwrap_or(&false));
    true
}

/// Replaces every DequantizeLinear and float16→float32 Cast whose inputs are all constants by
/// the float32 constant it computes. Returns whether anything changed.
pub fn expand_stored_weights(g: &mut Graph) -> bool {
    let mut done = vec![false; g.nodes.len()];
    let mut results = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let Some(&out) = n.outputs.first() else {
            continue;
        };
        if g.outputs.contains(&out) {
            continue;
        }
        if let Some(t) = crate::ir::quant::stored_f32(g, n) {
            done[i] = true;
            results.push((out, t));
        }
    }
    if results.is_empty() {
        return false;
    }
    for (v, t) in results {
        let value = g.value_mut(v);
        value.constant = Some(t);
        value.quant = None::<QuantParams>;
    }
    let mut k = done.iter();
    g.nodes.retain(|_| !*k.next().unwrap_or(&false));
    g.remove_dead();
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::{MatMul, QuantAxis};
    use crate::ir::{fixed_shape, DType, Tensor, TensorType};

    /// x → Relu, Clip(0, 6), Relu, all three graph outputs: tract fails on it as it is and
    /// computes it once the Relus are merged.
    #[test]
    fn merged_duplicates_let_tract_run_what_it_failed_on() {
        use crate::ir::ops::{Activation, UnaryOp};
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[2, 3])));
        let relu = || Op::Unary(UnaryOp::Relu);
        let a = g.add_node("a", relu(), vec![x], &[]).unwrap()[0];
        let clip = Op::Activation(Activation::Clip {
            min: Some(0.0),
            max: Some(6.0),
        });
        let y = g.add_node("clip", clip, vec![x], &[]).unwrap()[0];
        let b = g.add_node("b", relu(), vec![x], &[]).unwrap()[0];
        g.outputs = vec![a, y, b];
        let inputs = crate::eval::random_inputs(&g, 2, 1);
        let bytes = crate::writers::onnx::OnnxWriter::default()
            .to_bytes(&g)
            .unwrap();
        assert!(crate::eval::run_onnx_bytes(&bytes, &inputs).is_err());
        let mut merged = g.clone();
        assert!(merge_duplicate_nodes(&mut merged));
        assert_eq!(merged.nodes.len(), 2);
        assert_eq!(merged.outputs, vec![a, y, a]);
        let got = crate::eval::run(&g, &inputs).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].data, got[2].data);
        let want: Vec<f64> = inputs[0]
            .to_f64s()
            .iter()
            .map(|v| (*v as f32).clamp(0.0, 6.0) as f64)
            .collect();
        assert_eq!(got[1].to_f64s(), want);
    }

    /// x · DequantizeLinear(w_int8, per-row scales, zero points) gives the same result in tract
    /// before and after the weights are expanded, and the expanded graph has no DQ left.
    #[test]
    fn expanded_weights_compute_the_same() {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[2, 3])));
        let q: Vec<i64> = (0..12).map(|i| (i * 37 % 255) - 128).collect();
        let w = g.add_const("w", Tensor::from_i64s(DType::I8, vec![3, 4], &q));
        let s = g.add_const("s", Tensor::from_f32(vec![3], &[0.5, 0.25, 0.125]));
        let z = g.add_const("z", Tensor::from_i64s(DType::I8, vec![3], &[1, -2, 3]));
        let dq = Op::DequantizeLinear(QuantAxis {
            axis: 0,
            dtype: DType::I8,
        });
        let wf = g.add_node("dq", dq, vec![w, s, z], &[]).unwrap()[0];
        let y = g
            .add_node("mm", Op::MatMul(MatMul::default()), vec![x, wf], &[])
            .unwrap()[0];
        g.outputs.push(y);
        let inputs = crate::eval::random_inputs(&g, 1, 1);
        let mut expanded = g.clone();
        assert!(expand_stored_weights(&mut expanded));
        assert!(expanded
            .nodes
            .iter()
            .all(|n| !matches!(n.op, Op::DequantizeLinear(_))));
        let want = crate::eval::run_onnx_bytes(
            &crate::writers::onnx::OnnxWriter::default()
                .to_bytes(&g)
                .unwrap(),
            &inputs,
        )
        .unwrap();
        let got = crate::eval::run(&expanded, &inputs).unwrap();
        assert_eq!(want[0].data, got[0].data);
    }
}
