//! The QDQ form's last step: one `DequantizeLinear` per consumer.
//!
//! onnxruntime turns `DQ → op → Q` into an integer kernel (QLinearConv, QLinearAdd, …) only
//! when each DQ feeding the op feeds nothing else; its own quantization tool writes one DQ per
//! consumer. A DQ shared by a residual branch's Add and the next convolution leaves both float
//! (measured: MobileNetV2 kept 15 of its 52 convolutions and all 10 residual Adds float).

use crate::ir::ops::{BinaryOp, Cast};
use crate::ir::{DType, Graph, Names, Node, Op, Tensor, ValueId};
use std::collections::{HashMap, HashSet};

/// Gives every node that reads a DequantizeLinear's output, past the first, a copy of that DQ
/// (same int8 input and parameters) placed just before it. Graph outputs keep the original.
pub fn dedicate_dequantize(g: &mut Graph) -> usize {
    let dq_of: HashMap<ValueId, Node> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::DequantizeLinear(_)))
        .map(|n| (n.outputs[0], n.clone()))
        .collect();
    let uses = g.use_counts();
    let mut names = g.names();
    // Readers seen so far per shared DQ output: the first keeps the original.
    let mut seen: HashMap<ValueId, usize> = HashMap::new();
    let old = std::mem::take(&mut g.nodes);
    let mut out: Vec<Node> = Vec::with_capacity(old.len());
    let mut copies = 0;
    for mut n in old {
        for k in 0..n.inputs.len() {
            let v = n.inputs[k];
            let Some(source) = dq_of.get(&v) else {
                continue;
            };
            if uses[v.0] < 2 {
                continue;
            }
            let first = !g.outputs.contains(&v) && {
                let c = seen.entry(v).or_insert(0);
                *c += 1;
                *c == 1
            };
            if first {
                continue;
            }
            let ty = g.ty(v).clone();
            let quant = g.value(v).quant.clone();
            let name = names.fresh(&format!("{}_{}", g.value(v).name, copies + 1));
            let copy = g.add_value(&name, ty);
            g.value_mut(copy).quant = quant;
            out.push(Node {
                name: names.fresh(&format!("{}/{}", source.name, copies + 1)),
                op: source.op.clone(),
                inputs: source.inputs.clone(),
                outputs: vec![copy],
            });
            n.inputs[k] = copy;
            copies += 1;
        }
        out.push(n);
    }
    g.nodes = out;
    copies
}

/// Makes the activation pairs uint8 (value + 128, zero point + 128: the same dequantized
/// values). onnxruntime's x86 integer kernels take uint8 activations with int8 weights (its
/// quantization tool's default); with int8 activations it converts what it can and leaves
/// float every convolution or Add next to an activation read twice (measured on MobileNetV2:
/// 15 of 52 convolutions and all 10 residual Adds stayed float; with uint8, none). Pairs whose
/// int8 value is a graph input or output (`--io int8`) stay int8.
pub fn unsigned_activations(g: &mut Graph) -> usize {
    let boundary: HashSet<ValueId> = g.inputs.iter().chain(&g.outputs).copied().collect();
    let mut readers: HashMap<ValueId, Vec<usize>> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for &v in &n.inputs {
            readers.entry(v).or_default().push(i);
        }
    }
    let int8_zero_point = |g: &Graph, n: &Node| {
        n.inputs
            .get(2)
            .and_then(|&z| g.constant(z))
            .is_some_and(|t| t.dtype == DType::I8)
    };
    // A pair converts only whole: the Q and every reader of its output, each a DQ with an int8
    // zero-point constant (a source model's DQ may carry its own constants, not the Q's).
    let mut pairs: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let Op::QuantizeLinear(axis) = n.op else {
            continue;
        };
        let q = n.outputs[0];
        if axis.dtype != DType::I8 || boundary.contains(&q) || !int8_zero_point(g, n) {
            continue;
        }
        let dqs = readers.get(&q).cloned().unwrap_or_default();
        let all_dq = dqs.iter().all(|&d| {
            matches!(g.nodes[d].op, Op::DequantizeLinear(_)) && int8_zero_point(g, &g.nodes[d])
        });
        if all_dq {
            pairs.push((i, dqs));
        }
    }
    let mut zero_points: HashMap<ValueId, ValueId> = HashMap::new();
    let mut names = g.names();
    for (qi, dqs) in &pairs {
        for &i in std::iter::once(qi).chain(dqs) {
            let old = g.nodes[i].inputs[2];
            let Some(zp) = unsigned_zero_point(g, &mut names, &mut zero_points, old) else {
                continue;
            };
            let n = &mut g.nodes[i];
            n.inputs[2] = zp;
            if let Op::QuantizeLinear(a) | Op::DequantizeLinear(a) = &mut n.op {
                a.dtype = DType::U8;
            }
        }
        let q = g.nodes[*qi].outputs[0];
        let value = g.value_mut(q);
        value.ty.dtype = DType::U8;
        if let Some(p) = &mut value.quant {
            p.zero_point.iter_mut().for_each(|z| *z += 128);
        }
    }
    pairs.len()
}

/// The uint8 twin of an int8 zero-point constant (made once per constant).
fn unsigned_zero_point(
    g: &mut Graph,
    names: &mut Names,
    made: &mut HashMap<ValueId, ValueId>,
    zp: ValueId,
) -> Option<ValueId> {
    if let Some(&u) = made.get(&zp) {
        return Some(u);
    }
    let t = g.constant(zp)?;
    if t.dtype != DType::I8 {
        return None;
    }
    let shifted: Vec<i64> = t.to_i64s()?.iter().map(|z| z + 128).collect();
    let shape = t.shape.clone();
    let name = names.fresh(&format!("{}_u8", g.value(zp).name));
    let u = g.add_const(&name, Tensor::from_i64s(DType::U8, shape, &shifted));
    made.insert(zp, u);
    Some(u)
}

/// Dynamic range in the QDQ form: a convolution's int8 kernel is decoded by `Cast` and `Mul`
/// instead of DequantizeLinear. onnxruntime never constant-folds a DequantizeLinear (it keeps
/// them for its QDQ fusions) and has no integer convolution with float activations, so a DQ'd
/// kernel is dequantized on every run and the convolution loses its prepacked layout
/// (MobileNetV2: 2.0× the float model's time; onnxruntime's own ConvInteger form 10×). A Cast
/// and Mul of constants fold when the session starts: float speed, int8 storage. MatMul and
/// Gemm kernels keep their DQ: onnxruntime runs DQ → MatMul as an integer MatMulNBits.
pub fn weight_only_convs(g: &mut Graph) -> usize {
    let producers = g.producers();
    let kernels: Vec<usize> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv(_) | Op::ConvTranspose(_)))
        .filter_map(|n| n.inputs.get(1).and_then(|w| producers.get(w)).copied())
        .collect();
    let mut names = g.names();
    let mut decode: HashMap<usize, ValueId> = HashMap::new();
    for d in kernels {
        let dq = g.nodes[d].clone();
        if let Some(scale) = kernel_scale(g, &mut names, &dq) {
            decode.insert(d, scale);
        }
    }
    if decode.is_empty() {
        return 0;
    }
    let old = std::mem::take(&mut g.nodes);
    let mut out = Vec::with_capacity(old.len() + decode.len());
    for (i, n) in old.into_iter().enumerate() {
        let Some(&scale) = decode.get(&i) else {
            out.push(n);
            continue;
        };
        let q = n.inputs[0];
        let mut ty = g.ty(q).clone();
        ty.dtype = DType::F32;
        let cast = g.add_value(&names.fresh(&format!("{}_f32", g.value(q).name)), ty);
        out.push(Node {
            name: names.fresh(&format!("{}/Cast", n.name)),
            op: Op::Cast(Cast { to: DType::F32 }),
            inputs: vec![q],
            outputs: vec![cast],
        });
        out.push(Node {
            name: n.name,
            op: Op::Binary(BinaryOp::Mul),
            inputs: vec![cast, scale],
            outputs: n.outputs,
        });
    }
    g.nodes = out;
    g.remove_dead();
    decode.len()
}

/// For a DequantizeLinear of a constant int8 kernel with zero offsets: its scale as a constant
/// that broadcasts against the kernel (per-channel scales along their axis).
fn kernel_scale(g: &mut Graph, names: &mut Names, dq: &Node) -> Option<ValueId> {
    let Op::DequantizeLinear(axis) = dq.op else {
        return None;
    };
    let q = g.constant(dq.inputs[0])?;
    if q.dtype != DType::I8 {
        return None;
    }
    let rank = q.shape.len();
    if let Some(&zp) = dq.inputs.get(2) {
        if g.constant(zp)?.to_i64s()?.iter().any(|&z| z != 0) {
            return None;
        }
    }
    let s = g.constant(dq.inputs[1])?;
    if s.dtype != DType::F32 || s.shape.len() > 1 {
        return None;
    }
    let count = s.shape.first().copied().unwrap_or(1);
    if count <= 1 {
        return Some(dq.inputs[1]);
    }
    if axis.axis >= rank {
        return None;
    }
    let mut shape = vec![1; rank];
    shape[axis.axis] = count;
    let t = s.reshaped(shape);
    let name = names.fresh(&format!("{}_b", g.value(dq.inputs[1]).name));
    Some(g.add_const(&name, t))
}
