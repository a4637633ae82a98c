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
//! Equality of booleans is Xor (negated for Equal): tract 0.23's Equal takes numbers only
//! ("Bool is not a number"), and TFLite's NOT_EQUAL of two conditions is how the TFLite writer
//! spells Xor.
//!
//! SAME-padded NCHW convolutions get their padding spelled out: tract 0.23 pulls a following
//! strided op's stride into a SAME_UPPER convolution and recomputes SAME's padding for the new
//! stride, which moves the window (a dilated SAME conv before a stride-2 1x1 conv took the odd
//! positions instead of the even ones; found by the `ir_graph` fuzz target).
//!
//! A per-channel constant Add after a convolution becomes its bias: tract 0.23 folds such an
//! Add (a `[C, 1, 1]` operand) into the convolution itself, then fails re-axing it ("Bias should
//! be scalar or a vector", SqueezeNet's Fire modules read back from a SavedModel).
//!
//! Celu runs as its decomposition (`passes::lower`): tract 0.23's Celu leaves out the factor
//! alpha on the negative part.
//!
//! A one-way reverse LSTM or GRU runs forward on the time-reversed input, its Y reversed back:
//! tract 0.23 computes `direction=reverse` layers wrongly (bidirectional ones are right; a
//! reverse LSTM off onnxruntime by 0.35 on the `lstm_fixed_batch_seq` weights), and TFLite
//! writes such layers as a forward builtin between REVERSE_V2s, which this is.

use crate::ir::ops::{
    Activation, BinaryOp, Cast, Padding, RnnDirection, Slice, SliceAxis, UnaryOp,
};
use crate::ir::{DType, Graph, Layout, Node, Op, QuantParams, Tensor, ValueId};
use std::collections::HashMap;

/// Everything this module does, in order.
pub fn for_tract(g: &mut Graph) {
    lower_cell_clips(g);
    bool_equality_as_xor(g);
    lower_celu(g);
    explicit_same_padding(g);
    crate::passes::conv_fold::fold_bias_adds_into_convs(g);
    quantized_outputs_as_float_math(g);
    reverse_rnns_forward(g);
    expand_stored_weights(g);
    merge_duplicate_nodes(g);
}

/// `a == b` on booleans as `Not(Xor(a, b))`.
fn bool_equality_as_xor(g: &mut Graph) {
    let is_bool_equal = |g: &Graph, n: &Node| {
        n.op == Op::Binary(BinaryOp::Equal) && g.ty(n.inputs[0]).dtype == DType::Bool
    };
    if !g.nodes.iter().any(|n| is_bool_equal(g, n)) {
        return;
    }
    let (mut rw, old) = crate::passes::rewrite::Rewriter::begin(g);
    for n in old {
        if !is_bool_equal(rw.g, &n) {
            rw.keep(n);
            continue;
        }
        let xor = rw.op(&n.name, Op::Binary(BinaryOp::Xor), n.inputs.clone());
        match xor {
            Ok(x) => rw.op_into(&n.name, Op::Unary(UnaryOp::Not), vec![x], n.outputs[0]),
            // Inference refused the pair (it cannot, both are bool): keep the node as it was.
            Err(_) => rw.keep(n),
        }
    }
    rw.finish();
}

/// LSTMs with a cell clip (which has no ONNX form) unrolled or looped; if that fails, the graph
/// stays whole and building the ONNX message refuses the layer by name.
fn lower_cell_clips(g: &mut Graph) {
    if !crate::passes::rnn::any_cell_clip(g) {
        return;
    }
    let mut lowered = g.clone();
    if matches!(crate::passes::rnn::lower_cell_clips(&mut lowered), Ok(true)) {
        *g = lowered;
    }
}

/// Every NCHW convolution with SAME padding over fixed spatial sizes, with the pads SAME
/// means for them written out (what it computes does not change).
fn explicit_same_padding(g: &mut Graph) {
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        let Op::Conv(c) = &n.op else { continue };
        if matches!(c.padding, Padding::Explicit(_)) || c.layout != Layout::Nchw {
            continue;
        }
        let (Some(&x), Some(&k)) = (n.inputs.first(), n.inputs.get(1)) else {
            continue;
        };
        let spatial = g.ty(x).shape.get(2..).unwrap_or_default().to_vec();
        let Ok((_, _, kernel)) = c.kernel_dims(&g.ty(k).shape) else {
            continue;
        };
        if let Some(pads) = c.explicit_pads(&spatial, &kernel) {
            if let Op::Conv(c) = &mut g.nodes[i].op {
                c.padding = Padding::Explicit(pads);
            }
        }
    }
}

/// Every f32 Celu as `relu(x) + alpha * (exp(min(x / alpha, 0)) - 1)`; if that fails, the graph
/// stays whole (tract's Celu then runs, wrongly for alpha ≠ 1).
fn lower_celu(g: &mut Graph) {
    let celu = |n: &Node| matches!(n.op, Op::Activation(Activation::Celu { .. }));
    if !g.nodes.iter().any(celu) {
        return;
    }
    let mut lowered = g.clone();
    if matches!(crate::passes::lower::lower_celu(&mut lowered), Ok(true)) {
        *g = lowered;
    }
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

/// A QuantizeLinear whose output is a graph output or is read by anything but a
/// DequantizeLinear, as its float arithmetic: clip(round(x / scale) + zp) cast to the
/// quantized type. tract 0.23 saturates such a value (every output element at 127 or 255 on the
/// full-integer TFLite fixtures, where onnxruntime, LiteRT and this arithmetic agree with the
/// framework); a QuantizeLinear → DequantizeLinear pair it computes right. Likewise one that
/// quantizes a Softmax of a dequantized value: tract runs DequantizeLinear → Softmax →
/// QuantizeLinear as its integer softmax, which leaves out the output zero point (a full-int8
/// TFLite softmax over `[B, heads, T, S]`, zero point -128, came out 0.996 everywhere;
/// onnxruntime, LiteRT and TensorFlow agree with this arithmetic).
fn quantized_outputs_as_float_math(g: &mut Graph) {
    let producer: HashMap<ValueId, usize> = (g.nodes.iter().enumerate())
        .flat_map(|(i, n)| n.outputs.iter().map(move |&v| (v, i)))
        .collect();
    let dequantized = |v: ValueId| {
        (producer.get(&v)).is_some_and(|&i| matches!(g.nodes[i].op, Op::DequantizeLinear(_)))
    };
    let quantized_softmax: std::collections::HashSet<ValueId> = (g.nodes.iter())
        .filter(|n| matches!(n.op, Op::Softmax(_)) && dequantized(n.inputs[0]))
        .map(|n| n.outputs[0])
        .collect();
    let mut changed = false;
    for i in 0..g.nodes.len() {
        let Op::QuantizeLinear(q) = &g.nodes[i].op else {
            continue;
        };
        let q = *q;
        let n = g.nodes[i].clone();
        let y = n.outputs[0];
        let only_dequantized = !g.outputs.contains(&y)
            && g.nodes
                .iter()
                .filter(|m| m.inputs.contains(&y))
                .all(|m| matches!(m.op, Op::DequantizeLinear(_)));
        let after_softmax = quantized_softmax.contains(&n.inputs[0]);
        if (only_dequantized && !after_softmax) || g.ty(n.inputs[0]).dtype != DType::F32 {
            continue;
        }
        if let Some(inputs) = float_quantize(g, &n.name, &n.inputs, q.axis, q.dtype) {
            g.nodes[i].op = Op::Cast(Cast { to: q.dtype });
            g.nodes[i].inputs = vec![inputs];
            changed = true;
        }
    }
    if changed {
        // The Cast now reads nodes added after it.
        let _ = g.sort();
    }
}

/// clip(round(x / scale) + zero point, type range) in float, or `None` when the scale or zero
/// point is not a constant.
fn float_quantize(
    g: &mut Graph,
    name: &str,
    inputs: &[ValueId],
    axis: usize,
    to: DType,
) -> Option<ValueId> {
    let x = inputs[0];
    let rank = g.ty(x).rank();
    let broadcast = |t: &Tensor| -> Tensor {
        let f = Tensor::from_f64s(DType::F32, t.shape.clone(), &t.to_f64s());
        match t.shape.as_slice() {
            [c] if rank > 1 && axis < rank => {
                let mut shape = vec![1; rank];
                shape[axis] = *c;
                f.reshaped(shape)
            }
            _ => f,
        }
    };
    let scale = broadcast(g.constant(inputs[1])?);
    let zero = match inputs.get(2) {
        Some(&z) => broadcast(g.constant(z)?),
        None => Tensor::scalar_f32(0.0),
    };
    let (lo, hi) = match to {
        DType::I8 => (-128.0, 127.0),
        DType::U8 => (0.0, 255.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::U16 => (0.0, 65535.0),
        _ => return None,
    };
    let scale = g.add_const(&format!("{name}/f_scale"), scale);
    let zero = g.add_const(&format!("{name}/f_zero"), zero);
    let lo = g.add_const(&format!("{name}/f_lo"), Tensor::scalar_f32(lo));
    let hi = g.add_const(&format!("{name}/f_hi"), Tensor::scalar_f32(hi));
    let mut step = |tag: &str, op: Op, ins: Vec<ValueId>| -> Option<ValueId> {
        let out = [format!("{name}/f_{tag}")];
        g.add_node(&out[0], op, ins, &out).ok()?.first().copied()
    };
    let d = step("div", Op::Binary(BinaryOp::Div), vec![x, scale])?;
    let r = step("round", Op::Unary(UnaryOp::Round), vec![d])?;
    let a = step("add", Op::Binary(BinaryOp::Add), vec![r, zero])?;
    let m = step("max", Op::Binary(BinaryOp::Max), vec![a, lo])?;
    step("min", Op::Binary(BinaryOp::Min), vec![m, hi])
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
        use crate::ir::ops::UnaryOp;
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

    /// Celu(alpha 0.64) evaluates to its definition (tract's own Celu drops the alpha factor).
    #[test]
    fn celu_evaluates_to_its_definition() {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[2, 5])));
        let celu = Op::Activation(Activation::Celu { alpha: 0.64 });
        g.outputs = g.add_node("celu", celu, vec![x], &[]).unwrap();
        let xs: Vec<f32> = (0..10).map(|i| i as f32 * 0.4 - 2.0).collect();
        let inputs = vec![Tensor::from_f32(vec![2, 5], &xs)];
        let got = crate::eval::run(&g, &inputs).unwrap()[0].to_f64s();
        for (v, &x) in got.iter().zip(&xs) {
            let x = f64::from(x);
            let want = x.max(0.0) + (0.64 * ((x / 0.64).exp() - 1.0)).min(0.0);
            assert!((v - want).abs() < 1e-5, "celu({x}) = {v}, want {want}");
        }
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
