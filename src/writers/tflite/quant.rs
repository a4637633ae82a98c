//! Quantized forms in TFLite (the IR's QDQ representation → what LiteRT's kernels run).
//!
//! - An op with an int8 kernel whose activation inputs all come from DequantizeLinear of int8
//!   values, whose weights are DequantizeLinear of int8 constants (biases: int32), and whose
//!   (fused) output goes only to a QuantizeLinear, is written as the int8 builtin: it reads the
//!   int8 tensors and writes the QuantizeLinear's int8 output. The Q/DQ nodes it absorbed are
//!   not written.
//! - A float op reading a DequantizeLinear of an int8 constant (dynamic range) keeps a
//!   DEQUANTIZE op (computed once by LiteRT, since its input is constant); float16 constants
//!   cast to float32 are DEQUANTIZE as well (TFLiteConverter's float16 form).
//! - Remaining QuantizeLinear/DequantizeLinear are QUANTIZE/DEQUANTIZE ops (model boundaries
//!   with `--io float`, ops without an int8 kernel).

use super::plan::Fused;
use crate::ir::{DType, Graph, KernelLayout, Layout, Op, ValueId};
use crate::passes::quantize::activations::{int8_kind, weight_values};
use std::collections::HashMap;

#[derive(Default)]
pub struct Folding {
    /// `(node index, value)` → the value the node reads instead (its int8 form).
    pub reads: HashMap<(usize, ValueId), ValueId>,
    /// A node's (fused) output → the int8 value it writes instead.
    pub writes: HashMap<ValueId, ValueId>,
    /// Q/DQ nodes whose every use was absorbed.
    pub skip: Vec<bool>,
    /// Nodes written as int8 builtins.
    pub int8: Vec<bool>,
    /// Nodes written as hybrid builtins: float activations, int8 kernel (dynamic range).
    pub hybrid: Vec<bool>,
}

impl Folding {
    pub fn read(&self, node: usize, v: ValueId) -> ValueId {
        self.reads.get(&(node, v)).copied().unwrap_or(v)
    }
    pub fn write(&self, v: ValueId) -> ValueId {
        self.writes.get(&v).copied().unwrap_or(v)
    }
}

/// The DequantizeLinear input behind `v`, if `v` is a DequantizeLinear output.
fn dq_source(g: &Graph, producers: &HashMap<ValueId, usize>, v: ValueId) -> Option<ValueId> {
    let &p = producers.get(&v)?;
    matches!(g.nodes[p].op, Op::DequantizeLinear(_)).then(|| g.nodes[p].inputs[0])
}

/// Ops LiteRT has hybrid kernels for, in the form the plan writes them.
fn hybrid_op(g: &Graph, producers: &HashMap<ValueId, usize>, n: &crate::ir::Node) -> bool {
    match &n.op {
        Op::Conv(c) => {
            let in_c = g.ty(n.inputs[0]).shape.last().and_then(|d| d.fixed());
            let plain = c.group == 1 && c.kernel_layout == KernelLayout::Ohwi;
            let depthwise = c.kernel_layout == KernelLayout::Ihwo && in_c == Some(c.group as u64);
            c.layout == Layout::Nhwc && g.ty(n.inputs[0]).rank() == 4 && (plain || depthwise)
        }
        Op::MatMul(_) => super::ops::nn::fc_weights(g, producers, n).is_some(),
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Activation(_)
        | Op::Where
        | Op::Cast(_)
        | Op::Einsum(_)
        | Op::ConvTranspose(_)
        | Op::Pool(_)
        | Op::GlobalPool(_)
        | Op::BatchNorm(_)
        | Op::LayerNorm(_)
        | Op::InstanceNorm(_)
        | Op::Softmax(_)
        | Op::Hardmax(_)
        | Op::LpNorm(_)
        | Op::Reshape(_)
        | Op::Transpose(_)
        | Op::Concat(_)
        | Op::Split(_)
        | Op::Slice(_)
        | Op::Pad(_)
        | Op::Tile(_)
        | Op::Expand(_)
        | Op::DepthToSpace(_)
        | Op::SpaceToDepth(_)
        | Op::Resize(_)
        | Op::GridSample(_)
        | Op::Gather(_)
        | Op::GatherElements(_)
        | Op::GatherNd(_)
        | Op::ScatterNd(_)
        | Op::ScatterElements(_)
        | Op::TopK(_)
        | Op::ArgReduce(_)
        | Op::CumSum(_)
        | Op::NonZero
        | Op::OneHot(_)
        | Op::Trilu(_)
        | Op::NonMaxSuppression(_)
        | Op::ShapeOf(_)
        | Op::ConstantOfShape(_)
        | Op::Range
        | Op::Reduce(_)
        | Op::Lstm(_)
        | Op::Gru(_)
        | Op::QuantizeLinear(_)
        | Op::DequantizeLinear(_)
        | Op::DynamicQuantizeLinear
        | Op::ConvInteger(_)
        | Op::MatMulInteger
        | Op::QLinearConv(_)
        | Op::QLinearMatMul
        | Op::Dynamic(_)
        | Op::If(_)
        | Op::Loop(_) => false,
    }
}

pub fn fold(g: &Graph, fused: &[Fused]) -> Folding {
    let n = g.nodes.len();
    let mut f = Folding {
        skip: vec![false; n],
        int8: vec![false; n],
        hybrid: vec![false; n],
        ..Default::default()
    };
    if !g
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::QuantizeLinear(_) | Op::DequantizeLinear(_)))
    {
        return f;
    }
    let producers = g.producers();
    let weights = weight_values(g);
    let mut consumers: HashMap<ValueId, Vec<usize>> = HashMap::new();
    for (i, node) in g.nodes.iter().enumerate() {
        for &v in &node.inputs {
            consumers.entry(v).or_default().push(i);
        }
    }
    let is_output = |v: ValueId| g.outputs.contains(&v);
    // Nodes folded into another (bias Add, activation) → the node they joined.
    let mut owner: HashMap<usize, usize> = HashMap::new();
    for (i, fu) in fused.iter().enumerate() {
        if fu.skip || fu.out.is_none() {
            continue;
        }
        let mut v = g.nodes[i].outputs[0];
        for _ in 0..2 {
            let Some(&[c]) = consumers.get(&v).map(|c| &c[..]) else {
                break;
            };
            if !fused[c].skip {
                break;
            }
            owner.insert(c, i);
            v = g.nodes[c].outputs[0];
        }
    }
    for (i, node) in g.nodes.iter().enumerate() {
        if fused[i].skip || int8_kind(g, &weights, node).is_none() {
            continue;
        }
        let out = fused[i].out.unwrap_or(node.outputs[0]);
        let q_out = match consumers.get(&out).map(|c| &c[..]) {
            Some(&[c]) if !is_output(out) => match &g.nodes[c].op {
                Op::QuantizeLinear(q) if q.dtype == DType::I8 => g.nodes[c].outputs[0],
                _ => continue,
            },
            _ => continue,
        };
        let mut reads = Vec::new();
        let mut ok = true;
        let ins = node.inputs.iter().chain(fused[i].bias.iter());
        for &v in ins {
            let Some(src) = dq_source(g, &producers, v) else {
                ok = false;
                break;
            };
            let want = match g.constant(src) {
                Some(t) if t.dtype == DType::I32 => true,
                _ => g.ty(src).dtype == DType::I8,
            };
            if !want {
                ok = false;
                break;
            }
            reads.push((v, src));
        }
        if !ok {
            continue;
        }
        f.int8[i] = true;
        for (v, src) in reads {
            f.reads.insert((i, v), src);
        }
        f.writes.insert(out, q_out);
    }
    // Dynamic range: a float CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED whose kernel is a
    // DequantizeLinear of an int8 constant reads the int8 kernel itself (LiteRT's hybrid kernels
    // quantize the input on the fly, asymmetrically, and keep no float copy of the weights).
    for (i, node) in g.nodes.iter().enumerate() {
        if f.int8[i] || fused[i].skip || !hybrid_op(g, &producers, node) {
            continue;
        }
        let Some(&w) = node.inputs.get(1) else {
            continue;
        };
        let Some(src) = dq_source(g, &producers, w) else {
            continue;
        };
        let int8_const = g.constant(src).is_some_and(|t| t.dtype == DType::I8);
        if int8_const && g.ty(node.inputs[0]).dtype == DType::F32 {
            f.hybrid[i] = true;
            f.reads.insert((i, w), src);
        }
    }
    // Q/DQ nodes left with nothing to do.
    for (i, node) in g.nodes.iter().enumerate() {
        match node.op {
            Op::QuantizeLinear(_) => {
                let x = node.inputs[0];
                f.skip[i] = f.writes.get(&x) == Some(&node.outputs[0]);
            }
            Op::DequantizeLinear(_) => {
                let y = node.outputs[0];
                let absorbed = |c: usize| {
                    let o = owner.get(&c).copied().unwrap_or(c);
                    (f.int8[o] || f.hybrid[o]) && f.reads.contains_key(&(o, y))
                };
                f.skip[i] = !is_output(y)
                    && consumers
                        .get(&y)
                        .is_some_and(|cs| cs.iter().all(|&c| absorbed(c)));
            }
            _ => {}
        }
    }
    f
}
