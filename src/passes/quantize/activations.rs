//! Full-integer quantization: `QuantizeLinear → DequantizeLinear` pairs on the activations
//! around every op with an int8 kernel (TFLite's list, which onnxruntime's QDQ fusion also
//! covers: conv, dense, add/sub/mul, pools, mean, relu/relu6, hard-swish, leaky relu, logistic,
//! tanh, concat, and the data-movement ops reshape, transpose, slice, gather, zero pad, resize,
//! depth/space rearrangements), asymmetric int8 parameters from ranges measured by running the graph on the
//! calibration samples (through tract), and int32 biases (`scale = s_input · s_weight[c]`).
//!
//! Parameters follow TFLite's int8 specification: ops that only move data (reshape, transpose,
//! max/avg pooling, zero padding) keep their input's parameters; softmax and logistic outputs
//! are `1/256, -128`, tanh `1/128, 0`. An activation fused into the op before it (Relu, Relu6)
//! and a dense layer's bias Add get no pair in between, so runtimes fuse them.

use super::math;
use super::{excluded, Form, QuantizeOptions};
use crate::error::{failed, Result};
use crate::ir::ops::{Activation, BinaryOp, PadMode, PoolKind, QuantAxis, ReduceKind, UnaryOp};
use crate::ir::{DType, Graph, Node, Op, Tensor, ValueId};
use std::collections::{HashMap, HashSet};

/// How an int8 op's output parameters are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// From the calibrated range of the output.
    Calibrated,
    /// Equal to input 0's (the op moves or selects values).
    SameAsInput,
    /// Fixed by the int8 kernel.
    Fixed(f32, i64),
}

/// The producer of `v` when it is a DequantizeLinear of a constant (a quantized weight).
pub fn weight_dq(g: &Graph, producers: &HashMap<ValueId, usize>, v: ValueId) -> Option<usize> {
    let &p = producers.get(&v)?;
    let n = &g.nodes[p];
    (matches!(n.op, Op::DequantizeLinear(_)) && g.constant(n.inputs[0]).is_some()).then_some(p)
}

/// Values computed from constants only (weights, possibly dequantized or moved by the layout
/// pass): never activations.
pub fn weight_values(g: &Graph) -> HashSet<ValueId> {
    let mut w: HashSet<ValueId> = g
        .values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.constant.is_some())
        .map(|(i, _)| ValueId(i))
        .collect();
    for n in &g.nodes {
        if !n.inputs.is_empty() && n.inputs.iter().all(|v| w.contains(v)) {
            w.extend(n.outputs.iter().copied());
        }
    }
    w
}

/// Whether `n` has an int8 kernel, and how its output parameters are chosen.
pub fn int8_kind(g: &Graph, weights: &HashSet<ValueId>, n: &Node) -> Option<Kind> {
    let w = |i: usize| n.inputs.get(i).is_some_and(|v| weights.contains(v));
    let act = |i: usize| n.inputs.get(i).is_some_and(|v| !weights.contains(v));
    if !act(0) {
        return None;
    }
    let float_in = n
        .inputs
        .first()
        .is_some_and(|&v| g.ty(v).dtype == DType::F32);
    if !float_in || n.outputs.len() != 1 {
        return None;
    }
    Some(match &n.op {
        Op::Conv(_) if act(0) && w(1) && g.ty(n.inputs[0]).rank() == 4 => Kind::Calibrated,
        Op::MatMul(m) if act(0) && w(1) && !m.transpose_a && g.ty(n.inputs[1]).rank() == 2 => {
            Kind::Calibrated
        }
        Op::Binary(b) if act(0) && act(1) => match b {
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul => Kind::Calibrated,
            BinaryOp::Div
            | BinaryOp::Pow
            | BinaryOp::Min
            | BinaryOp::Max
            | BinaryOp::Mod
            | BinaryOp::Fmod
            | BinaryOp::PRelu
            | BinaryOp::Equal
            | BinaryOp::Less
            | BinaryOp::Greater
            | BinaryOp::LessOrEqual
            | BinaryOp::GreaterOrEqual
            | BinaryOp::And
            | BinaryOp::Or
            | BinaryOp::Xor
            | BinaryOp::SquaredDifference
            | BinaryOp::BitShiftLeft
            | BinaryOp::BitShiftRight
            | BinaryOp::BitwiseAnd
            | BinaryOp::BitwiseOr
            | BinaryOp::BitwiseXor => return None,
        },
        Op::Pool(p) if matches!(p.kind, PoolKind::Max | PoolKind::Avg) => Kind::SameAsInput,
        Op::GlobalPool(p) if p.kind == PoolKind::Max => Kind::SameAsInput,
        Op::GlobalPool(p) if p.kind == PoolKind::Avg => Kind::Calibrated,
        Op::Reduce(r) if r.kind == ReduceKind::Mean => Kind::Calibrated,
        Op::Reshape(_) | Op::Transpose(_) => Kind::SameAsInput,
        Op::Pad(p) if p.mode == PadMode::Constant && p.value == 0.0 => Kind::SameAsInput,
        Op::Concat(_) if (0..n.inputs.len()).all(act) => Kind::Calibrated,
        Op::Unary(u) => match u {
            UnaryOp::Sigmoid => Kind::Fixed(1.0 / 256.0, -128),
            UnaryOp::Tanh => Kind::Fixed(1.0 / 128.0, 0),
            UnaryOp::Relu => Kind::Calibrated,
            UnaryOp::Abs
            | UnaryOp::Neg
            | UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Reciprocal
            | UnaryOp::Erf
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round
            | UnaryOp::Sign
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Tan
            | UnaryOp::Asin
            | UnaryOp::Acos
            | UnaryOp::Atan
            | UnaryOp::Sinh
            | UnaryOp::Cosh
            | UnaryOp::Asinh
            | UnaryOp::Acosh
            | UnaryOp::Atanh
            | UnaryOp::Softplus
            | UnaryOp::Softsign
            | UnaryOp::Not
            | UnaryOp::IsNaN
            | UnaryOp::Square
            | UnaryOp::BitwiseNot => return None,
        },
        Op::Activation(a) => match a {
            Activation::HardSwish | Activation::LeakyRelu { .. } | Activation::Clip { .. } => {
                Kind::Calibrated
            }
            Activation::Elu { .. }
            | Activation::Selu { .. }
            | Activation::Celu { .. }
            | Activation::HardSigmoid { .. }
            | Activation::Gelu { .. }
            | Activation::ThresholdedRelu { .. }
            | Activation::Mish
            | Activation::Shrink { .. } => return None,
        },
        Op::Slice(_)
        | Op::DepthToSpace(_)
        | Op::SpaceToDepth(_)
        | Op::Resize(_)
        | Op::Gather(_) => Kind::SameAsInput,
        Op::Binary(_)
        | Op::Where
        | Op::Cast(_)
        | Op::MatMul(_)
        | Op::Einsum(_)
        | Op::Conv(_)
        | Op::ConvTranspose(_)
        | Op::Pool(_)
        | Op::GlobalPool(_)
        | Op::BatchNorm(_)
        | Op::LayerNorm(_)
        | Op::InstanceNorm(_)
        | Op::Softmax(_)
        | Op::Hardmax(_)
        | Op::LpNorm(_)
        | Op::Concat(_)
        | Op::Split(_)
        | Op::Pad(_)
        | Op::Tile(_)
        | Op::Expand(_)
        | Op::GridSample(_)
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
        | Op::Loop(_) => return None,
    })
}

/// Activations TFLite fuses into the op before them (no pair in between).
fn fusable(op: &Op) -> bool {
    match op {
        Op::Unary(u) => *u == UnaryOp::Relu,
        Op::Activation(a) => {
            matches!(a, Activation::Clip { min: Some(lo), max } if *lo == 0.0 && matches!(max, None | Some(6.0)))
        }
        Op::Binary(_)
        | Op::Where
        | Op::Cast(_)
        | Op::MatMul(_)
        | Op::Einsum(_)
        | Op::Conv(_)
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

/// Int8 ops whose TFLite kernel takes a fused activation.
fn takes_fused(op: &Op) -> bool {
    match op {
        Op::Conv(_) | Op::MatMul(_) | Op::Binary(_) => true,
        Op::Unary(_)
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

/// What the pass did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ActivationStats {
    pub activations: usize,
    pub int8_nodes: usize,
    pub float_nodes: Vec<String>,
    pub int32_biases: usize,
    pub calibration_batches: usize,
    /// Activations left float because the evaluator could not measure their range.
    pub unmeasured: Vec<String>,
}

/// Which activations of a graph get a `QuantizeLinear → DequantizeLinear` pair and how each
/// int8 op's output parameters are chosen. The ranges of [`Plan::values`] are measured by the
/// caller (by running the graph on calibration samples) and handed to [`quantize_activations`].
pub struct Plan {
    kinds: Vec<Option<Kind>>,
    /// A dense layer's bias Add node → its MatMul node.
    bias_add: HashMap<usize, usize>,
    quantize: Vec<ValueId>,
    seen: HashSet<ValueId>,
    float_nodes: Vec<String>,
    int8_nodes: usize,
}

impl Plan {
    /// The values whose `(min, max)` over the calibration samples the pass needs.
    pub fn values(&self) -> &[ValueId] {
        &self.quantize
    }
}

/// Measured `(min, max)` per value.
pub type Ranges = HashMap<ValueId, (f32, f32)>;

/// What the caller measured for a [`Plan`].
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub ranges: Ranges,
    /// Values whose range could not be measured: they stay float.
    pub unmeasured: Vec<ValueId>,
    /// Calibration batches the ranges come from (for the report).
    pub batches: usize,
}

/// Plans the activation quantization of `g` (whose weights are already int8 +
/// DequantizeLinear).
pub fn plan(g: &Graph, opts: &QuantizeOptions) -> Plan {
    let weights = weight_values(g);
    let uses = g.use_counts();
    let mut consumers: HashMap<ValueId, Vec<usize>> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for &v in &n.inputs {
            consumers.entry(v).or_default().push(i);
        }
    }
    let outputs: HashSet<ValueId> = g.outputs.iter().copied().collect();
    let mut kinds: Vec<Option<Kind>> = Vec::with_capacity(g.nodes.len());
    let mut int8_nodes = 0;
    for n in &g.nodes {
        let k = if excluded(opts, n) {
            None
        } else {
            int8_kind(g, &weights, n)
        };
        kinds.push(k);
    }
    let control_float = super::control::keep_control_inputs_float(g, &mut kinds);
    // A dense layer's bias Add joins the MatMul (treated as one int8 op).
    let sole = |v: ValueId| -> Option<usize> {
        (uses[v.0] == 1 && !outputs.contains(&v))
            .then(|| consumers.get(&v).and_then(|c| c.first().copied()))
            .flatten()
    };
    let mut bias_add: HashMap<usize, usize> = HashMap::new(); // add node -> matmul node
    for (i, n) in g.nodes.iter().enumerate() {
        if kinds[i].is_none() || !matches!(n.op, Op::MatMul(_)) {
            continue;
        }
        if let Some(a) = sole(n.outputs[0]) {
            let an = &g.nodes[a];
            let bias_ok = matches!(an.op, Op::Binary(BinaryOp::Add))
                && an.inputs[0] == n.outputs[0]
                && an
                    .inputs
                    .get(1)
                    .and_then(|&b| g.constant(b))
                    .is_some_and(|t| t.dtype == DType::F32 && t.shape.len() == 1);
            if bias_ok && !excluded(opts, an) {
                kinds[a] = Some(Kind::Calibrated);
                bias_add.insert(a, i);
            }
        }
    }
    let float_nodes = g
        .nodes
        .iter()
        .zip(&kinds)
        .filter(|(n, k)| {
            k.is_none() && !matches!(n.op, Op::DequantizeLinear(_) | Op::QuantizeLinear(_))
        })
        .map(|(n, _)| n.name.clone())
        .collect();
    // Values between an int8 op and what it fuses with get no pair.
    let mut inner: HashSet<ValueId> = HashSet::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if kinds[i].is_none() {
            continue;
        }
        let fuses_into = |c: usize| {
            kinds[c].is_some()
                && (fusable(&g.nodes[c].op) || bias_add.get(&c) == Some(&i))
                && takes_fused(&n.op)
        };
        if let Some(c) = sole(n.outputs[0]) {
            if fuses_into(c) {
                inner.insert(n.outputs[0]);
            }
        }
    }
    // The values that get a pair: activation inputs and outputs of int8 ops.
    let mut quantize: Vec<ValueId> = Vec::new();
    let mut seen: HashSet<ValueId> = HashSet::new();
    let add = |v: ValueId, seen: &mut HashSet<ValueId>, q: &mut Vec<ValueId>| {
        let paired = !inner.contains(&v) && !control_float.contains(&v);
        if g.ty(v).dtype == DType::F32 && paired && seen.insert(v) {
            q.push(v);
        }
    };
    for (i, n) in g.nodes.iter().enumerate() {
        if kinds[i].is_none() {
            continue;
        }
        int8_nodes += 1;
        if kinds[i] == Some(Kind::SameAsInput) && opts.form == Form::Qdq {
            // Still a pair on a graph input (what `--io int8` makes the model's input).
            for &v in &n.inputs {
                if g.inputs.contains(&v) {
                    add(v, &mut seen, &mut quantize);
                }
            }
            continue;
        }
        for &v in &n.inputs {
            if !weights.contains(&v) && !inner.contains(&v) {
                add(v, &mut seen, &mut quantize);
            }
        }
        // In the QDQ form an output only float ops read needs no pair: it would be a round
        // trip through int8 (see `Form`).
        let out = n.outputs[0];
        let int8_reader = consumers
            .get(&out)
            .is_some_and(|c| c.iter().any(|&c| kinds[c].is_some()));
        if opts.form == Form::Tflite || int8_reader || outputs.contains(&out) {
            add(out, &mut seen, &mut quantize);
        }
    }
    Plan {
        kinds,
        bias_add,
        quantize,
        seen,
        float_nodes,
        int8_nodes,
    }
}

/// Quantizes the activations of `g` as `plan` says, with the ranges `measured` of its values.
pub fn quantize_activations(
    g: &mut Graph,
    plan: Plan,
    measured: &Measured,
) -> Result<ActivationStats> {
    let Plan {
        kinds,
        bias_add,
        mut quantize,
        mut seen,
        float_nodes,
        int8_nodes,
    } = plan;
    let ranges = &measured.ranges;
    let producers = g.producers();
    let mut stats = ActivationStats {
        calibration_batches: measured.batches,
        float_nodes,
        int8_nodes,
        ..Default::default()
    };
    for v in &measured.unmeasured {
        seen.remove(v);
        stats.unmeasured.push(g.value(*v).name.clone());
    }
    quantize.retain(|v| seen.contains(v));
    // Parameters in topological order (pass-through ops take their input's).
    let mut params: HashMap<ValueId, (f32, i64)> = HashMap::new();
    for &v in &g.inputs {
        if let Some(&(lo, hi)) = ranges.get(&v) {
            params.insert(v, math::activation_params(lo, hi));
        }
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let out = n.outputs[0];
        if !seen.contains(&out) {
            continue;
        }
        let p = match kinds[i] {
            Some(Kind::SameAsInput) => params.get(&n.inputs[0]).copied(),
            Some(Kind::Fixed(s, z)) => Some((s, z)),
            _ => None,
        };
        let p = match p {
            Some(p) => p,
            None => {
                let (lo, hi) = ranges.get(&out).copied().unwrap_or((0.0, 0.0));
                math::activation_params(lo, hi)
            }
        };
        params.insert(out, p);
    }
    for &v in &quantize {
        params.entry(v).or_insert_with(|| {
            let (lo, hi) = ranges.get(&v).copied().unwrap_or((0.0, 0.0));
            math::activation_params(lo, hi)
        });
    }
    stats.int32_biases = quantize_biases(g, &producers, &kinds, &bias_add, &params)?;
    insert_pairs(g, &quantize, &params)?;
    g.remove_dead();
    stats.activations = quantize.len();
    Ok(stats)
}

/// Float biases of int8 convolutions and dense layers become int32 + DequantizeLinear with
/// `scale = s_input · s_weight[c]`.
fn quantize_biases(
    g: &mut Graph,
    producers: &HashMap<ValueId, usize>,
    kinds: &[Option<Kind>],
    bias_add: &HashMap<usize, usize>,
    params: &HashMap<ValueId, (f32, i64)>,
) -> Result<usize> {
    // (node, bias input index, activation input, weight DQ node)
    let mut jobs: Vec<(usize, usize, ValueId, usize)> = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        match (&n.op, kinds[i]) {
            (Op::Conv(_), Some(_)) if n.inputs.len() > 2 => {
                if let Some(d) = weight_dq(g, producers, n.inputs[1]) {
                    jobs.push((i, 2, n.inputs[0], d));
                }
            }
            (Op::Binary(BinaryOp::Add), Some(_)) => {
                if let Some(&m) = bias_add.get(&i) {
                    let mm = &g.nodes[m];
                    if let Some(d) = weight_dq(g, producers, mm.inputs[1]) {
                        jobs.push((i, 1, mm.inputs[0], d));
                    }
                }
            }
            _ => {}
        }
    }
    let mut names = g.names();
    let mut count = 0;
    let mut new_nodes = Vec::new();
    for (i, k, x, d) in jobs {
        let b = g.nodes[i].inputs[k];
        let (Some(bias), Some(&(s_x, _))) = (g.constant(b).cloned(), params.get(&x)) else {
            continue;
        };
        let dq = &g.nodes[d];
        // Only int8 weights make an integer convolution or fully-connected op; a source's
        // uint8 weight (onnxruntime's QUInt8) keeps the op float, and a float op's bias cannot
        // be an int32 DEQUANTIZE (TFLite dequantizes 8- and 16-bit values only).
        if g.ty(dq.inputs[0]).dtype != DType::I8 {
            continue;
        }
        let Some(s_w) = g.constant(dq.inputs[1]).map(|t| t.to_f64s()) else {
            continue;
        };
        let s_w: Vec<f32> = s_w.iter().map(|&s| s as f32).collect();
        if bias.dtype != DType::F32
            || bias.shape.len() != 1
            || (s_w.len() != 1 && s_w.len() != bias.len())
        {
            continue;
        }
        let q = math::quantize_bias(&bias, s_x, &s_w).map_err(failed)?;
        let scales: Vec<f32> = (0..bias.len())
            .map(|c| s_x * s_w[if s_w.len() == 1 { 0 } else { c }])
            .collect();
        let base = g.value(b).name.clone();
        let qv = g.add_const(&names.fresh(&format!("{base}_i32")), q);
        g.value_mut(qv).quant = Some(crate::ir::QuantParams {
            scale: scales.clone(),
            zero_point: vec![0; scales.len()],
            axis: Some(0),
        });
        let sv = g.add_const(
            &names.fresh(&format!("{base}_s")),
            Tensor::from_f32(vec![scales.len()], &scales),
        );
        let out = g.add_value(&names.fresh(&format!("{base}_dq")), g.ty(b).clone());
        new_nodes.push(Node {
            name: names.fresh(&format!("{base}/DQ")),
            op: Op::DequantizeLinear(QuantAxis {
                axis: 0,
                dtype: DType::I32,
            }),
            inputs: vec![qv, sv],
            outputs: vec![out],
        });
        g.nodes[i].inputs[k] = out;
        count += 1;
    }
    // The new nodes read constants only: first keeps the topological order. (No dead-code
    // removal here: it would renumber the values the caller still holds.)
    new_nodes.append(&mut g.nodes);
    g.nodes = new_nodes;
    Ok(count)
}

/// Inserts `v → QuantizeLinear → DequantizeLinear` after every value in `values`; every use
/// of `v` reads the dequantized value. A graph output keeps its name on the dequantized value.
fn insert_pairs(
    g: &mut Graph,
    values: &[ValueId],
    params: &HashMap<ValueId, (f32, i64)>,
) -> Result<()> {
    let mut names = g.names();
    let mut pairs: HashMap<ValueId, (Node, Node, ValueId)> = HashMap::new();
    // One scale and zero-point constant per distinct parameter pair: the outputs of data
    // movement share their input's, and fixed-parameter outputs share each other's.
    let mut constants: HashMap<(u32, i64), (ValueId, ValueId)> = HashMap::new();
    for &v in values {
        let Some(&(scale, zp)) = params.get(&v) else {
            continue;
        };
        let base = g.value(v).name.clone();
        let ty = g.ty(v).clone();
        let (s, z) = match constants.get(&(scale.to_bits(), zp)) {
            Some(&sz) => sz,
            None => {
                let s = g.add_const(
                    &names.fresh(&format!("{base}_s")),
                    Tensor::scalar_f32(scale),
                );
                let z = g.add_const(
                    &names.fresh(&format!("{base}_zp")),
                    Tensor::from_i64s(DType::I8, vec![], &[zp]),
                );
                constants.insert((scale.to_bits(), zp), (s, z));
                (s, z)
            }
        };
        let mut qty = ty.clone();
        qty.dtype = DType::I8;
        let q = g.add_value(&names.fresh(&format!("{base}_q")), qty);
        g.value_mut(q).quant = Some(crate::ir::QuantParams::per_tensor(scale, zp));
        let d = g.add_value(&names.fresh(&format!("{base}_dq")), ty);
        let axis = QuantAxis {
            axis: 0,
            dtype: DType::I8,
        };
        let qn = Node {
            name: names.fresh(&format!("{base}/Q")),
            op: Op::QuantizeLinear(axis),
            inputs: vec![v, s, z],
            outputs: vec![q],
        };
        let dn = Node {
            name: names.fresh(&format!("{base}/DQ")),
            op: Op::DequantizeLinear(axis),
            inputs: vec![q, s, z],
            outputs: vec![d],
        };
        pairs.insert(v, (qn, dn, d));
    }
    let replace: HashMap<ValueId, ValueId> = pairs.iter().map(|(&v, p)| (v, p.2)).collect();
    let old = std::mem::take(&mut g.nodes);
    let mut out = Vec::with_capacity(old.len() + 2 * pairs.len());
    let emit =
        |v: ValueId, out: &mut Vec<Node>, pairs: &mut HashMap<ValueId, (Node, Node, ValueId)>| {
            if let Some((qn, dn, _)) = pairs.remove(&v) {
                out.push(qn);
                out.push(dn);
            }
        };
    for &v in &g.inputs.clone() {
        emit(v, &mut out, &mut pairs);
    }
    for mut n in old {
        for i in &mut n.inputs {
            if let Some(&r) = replace.get(i) {
                *i = r;
            }
        }
        let outs = n.outputs.clone();
        out.push(n);
        for v in outs {
            emit(v, &mut out, &mut pairs);
        }
    }
    g.nodes = out;
    // Graph outputs: the dequantized value takes the output's place and name.
    for k in 0..g.outputs.len() {
        let v = g.outputs[k];
        if let Some(&d) = replace.get(&v) {
            let name = g.value(v).name.clone();
            let float_name = names.fresh(&format!("{name}_float"));
            g.value_mut(v).name = float_name;
            g.value_mut(d).name = name;
            g.outputs[k] = d;
        }
    }
    Ok(())
}
