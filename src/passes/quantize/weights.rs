//! Weight quantization: every float32 constant in a weight slot (convolution and dense kernels,
//! embedding tables, large elementwise operands, recurrent weights) becomes int8 + DequantizeLinear
//! or float16 + Cast. Quantization of the tensors runs in parallel (one job per tensor, spread
//! over the available cores); each float tensor is read once and its replacement written once.

use super::math;
use super::{excluded, Form, Mode, QuantizeOptions, WeightStats};
use crate::ir::ops::{BinaryOp, Cast, QuantAxis};
use crate::ir::{DType, Graph, KernelLayout, Node, Op, QuantParams, Tensor, ValueId};
use std::collections::HashMap;

/// Elementwise operands and biases smaller than this stay float32 (TFLite's converter uses the
/// same threshold for int8: small constants cost nothing and are often scales or biases that need
/// precision: a requantization multiplier or an integer-valued bias stored as float16 moves
/// outputs by a step).
const SMALL_OPERAND_ELEMENTS: usize = 1024;
/// float16 leaves scalars and tiny constants alone (no size gain, one more op each).
const F16_MIN_ELEMENTS: usize = 16;

/// How a constant used at one node input may be quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightSlot {
    /// A kernel quantized per channel along this axis (the output channels).
    PerChannel(usize),
    /// Quantized with one scale.
    PerTensor,
    /// Only float16 (biases: int8 would cost accuracy for no size).
    Float16Only,
    /// Must stay as it is (parameters writers need as constants, integer data…).
    No,
}

/// Output-channel axis of a convolution kernel in `layout` (rank `rank`).
fn out_axis(layout: KernelLayout, rank: usize) -> usize {
    match layout {
        KernelLayout::Oihw | KernelLayout::Ohwi => 0,
        KernelLayout::Iohw => 1,
        KernelLayout::Hwio | KernelLayout::Ihwo => rank - 1,
        KernelLayout::Hwoi => rank - 2,
    }
}

/// The slot of input `i` of node `n` holding a constant of `len` elements and rank `rank`.
pub fn slot(n: &Node, i: usize, len: usize, rank: usize) -> WeightSlot {
    use WeightSlot::*;
    let big = |s| {
        if len >= SMALL_OPERAND_ELEMENTS {
            s
        } else {
            No
        }
    };
    match (&n.op, i) {
        (Op::Conv(c) | Op::ConvTranspose(c), 1) => PerChannel(out_axis(c.kernel_layout, rank)),
        (Op::Conv(_) | Op::ConvTranspose(_), 2) => Float16Only,
        (Op::MatMul(m), 1) if rank == 2 => PerChannel(if m.transpose_b { 0 } else { 1 }),
        (Op::MatMul(_), 0 | 1) => PerTensor,
        (Op::Einsum(_), _) => PerTensor,
        (Op::Gather(_), 0) => PerTensor,
        (Op::Binary(b), 0 | 1) if arithmetic(*b) => big(PerTensor),
        (Op::Lstm(_) | Op::Gru(_), 1 | 2) => PerTensor,
        (Op::Lstm(_) | Op::Gru(_), 3) => Float16Only,
        // Their other inputs (data, indices, initial states) and non-arithmetic binary operands.
        (
            Op::Conv(_)
            | Op::ConvTranspose(_)
            | Op::MatMul(_)
            | Op::Gather(_)
            | Op::Binary(_)
            | Op::Lstm(_)
            | Op::Gru(_),
            _,
        ) => No,
        (
            Op::Unary(_)
            | Op::Activation(_)
            | Op::Where
            | Op::Cast(_)
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
            | Op::QuantizeLinear(_)
            | Op::DequantizeLinear(_)
            | Op::DynamicQuantizeLinear
            | Op::ConvInteger(_)
            | Op::MatMulInteger
            | Op::QLinearConv(_)
            | Op::QLinearMatMul
            | Op::Dynamic(_)
            | Op::If(_)
            | Op::Loop(_),
            _,
        ) => No,
    }
}

/// Binary ops whose constant operand may be stored quantized (float arithmetic on it).
fn arithmetic(b: BinaryOp) -> bool {
    match b {
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::Div
        | BinaryOp::Min
        | BinaryOp::Max => true,
        BinaryOp::Pow
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
        | BinaryOp::BitwiseXor => false,
    }
}

struct Job {
    value: ValueId,
    axis: Option<usize>,
    f16: bool,
    /// Transpose the 2-D tensor (dense kernel `[in, out]` → `[out, in]`) while quantizing.
    transpose: bool,
}

enum Done {
    Int8(math::Quantized),
    F16(Tensor),
}

/// A convolution with one input channel per group.
fn is_depthwise(g: &Graph, n: &crate::ir::Node) -> bool {
    let Op::Conv(c) = &n.op else {
        return false;
    };
    let Some(&x) = n.inputs.first() else {
        return false;
    };
    let t = g.ty(x);
    let channels = t
        .shape
        .get(c.layout.channel_axis(t.rank()))
        .and_then(|d| d.fixed());
    c.group > 1 && channels == Some(c.group as u64)
}

/// Quantizes the weights of `g` (a graph already legalized for its writer).
pub fn quantize_weights(g: &mut Graph, opts: &QuantizeOptions) -> Result<WeightStats, String> {
    let mut stats = WeightStats::default();
    let decision = decide_slots(g, opts, &mut stats);
    let jobs = plan_jobs(g, opts, &decision);
    let results = run_jobs(g, &jobs)?;
    let replace = insert_dequantized(g, &jobs, results, &mut stats);
    let transposed: std::collections::HashSet<ValueId> = jobs
        .iter()
        .filter(|j| j.transpose)
        .map(|j| j.value)
        .collect();
    for n in &mut g.nodes {
        if let (Op::MatMul(m), Some(&b)) = (&mut n.op, n.inputs.get(1)) {
            if transposed.contains(&b) {
                m.transpose_b = true;
            }
        }
        for i in &mut n.inputs {
            if let Some(&r) = replace.get(i) {
                *i = r;
            }
        }
    }
    g.remove_dead();
    Ok(stats)
}

/// How each float constant may be stored, from every use it has: `Some(No)` where one use
/// (an excluded node, a graph output, a float depthwise kernel) keeps it float.
fn decide_slots(
    g: &Graph,
    opts: &QuantizeOptions,
    stats: &mut WeightStats,
) -> HashMap<ValueId, Option<WeightSlot>> {
    let mut decision: HashMap<ValueId, Option<WeightSlot>> = HashMap::new();
    let outputs: std::collections::HashSet<ValueId> = g.outputs.iter().copied().collect();
    for n in &g.nodes {
        let skip = excluded(opts, n);
        if skip {
            stats.excluded_nodes.push(n.name.clone());
        }
        let float_kernel = opts.float_depthwise && is_depthwise(g, n);
        for (i, &v) in n.inputs.iter().enumerate() {
            let Some(t) = g.constant(v) else { continue };
            if t.dtype != DType::F32 {
                continue;
            }
            let s = if skip || outputs.contains(&v) || (float_kernel && i == 1) {
                WeightSlot::No
            } else {
                slot(n, i, t.len(), t.shape.len())
            };
            let entry = decision.entry(v).or_insert(Some(s));
            *entry = match (*entry, s) {
                (Some(a), b) if a == b => Some(a),
                // Disagreeing uses: the weakest form every use accepts.
                (Some(WeightSlot::No), _) | (_, WeightSlot::No) | (None, _) => Some(WeightSlot::No),
                (Some(WeightSlot::Float16Only), _) | (_, WeightSlot::Float16Only) => {
                    Some(WeightSlot::Float16Only)
                }
                _ => Some(WeightSlot::PerTensor),
            };
        }
    }
    decision
}

/// The constants to quantize and how, in value-id order (whatever the hash map's order).
fn plan_jobs(
    g: &Graph,
    opts: &QuantizeOptions,
    decision: &HashMap<ValueId, Option<WeightSlot>>,
) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    for (&v, s) in decision {
        let len = g.constant(v).map_or(0, Tensor::len);
        let job = match (opts.mode, s) {
            (_, None | Some(WeightSlot::No)) => continue,
            // Small biases keep float32 (little size to gain, and an integer-valued bias past
            // 2048 is not exact in float16); scalars and tiny constants too.
            (Mode::Float16, Some(WeightSlot::Float16Only)) if len < SMALL_OPERAND_ELEMENTS => {
                continue
            }
            (Mode::Float16, _) if len < F16_MIN_ELEMENTS => continue,
            (Mode::Float16, _) => Job {
                value: v,
                axis: None,
                f16: true,
                transpose: false,
            },
            (Mode::Int8, Some(WeightSlot::Float16Only)) => continue,
            (Mode::Int8, Some(WeightSlot::PerChannel(a))) => Job {
                value: v,
                axis: Some(*a),
                f16: false,
                transpose: false,
            },
            (Mode::Int8, Some(WeightSlot::PerTensor)) => Job {
                value: v,
                axis: None,
                f16: false,
                transpose: false,
            },
        };
        jobs.push(job);
    }
    jobs.sort_by_key(|j| j.value);
    if opts.form == Form::Tflite {
        let dense = dense_kernels(g);
        for j in &mut jobs {
            if dense.contains(&j.value) {
                j.transpose = true;
                if j.axis == Some(1) {
                    j.axis = Some(0);
                }
            }
        }
    }
    jobs
}

/// Adds each job's stored constant and the node that turns it back into float32 (a Cast from
/// float16, a DequantizeLinear from int8) at the front of the graph; returns the replacement of
/// each original constant.
fn insert_dequantized(
    g: &mut Graph,
    jobs: &[Job],
    results: Vec<Done>,
    stats: &mut WeightStats,
) -> HashMap<ValueId, ValueId> {
    let mut new_nodes: Vec<Node> = Vec::with_capacity(jobs.len());
    let mut names = g.names();
    let mut replace: HashMap<ValueId, ValueId> = HashMap::new();
    for (job, done) in jobs.iter().zip(results) {
        let base = g.value(job.value).name.clone();
        let mut ty = g.ty(job.value).clone();
        if job.transpose {
            ty.shape.swap(0, 1);
        }
        stats.tensors += 1;
        stats.bytes_before += g.constant(job.value).map_or(0, |t| t.data.len());
        let out = match done {
            Done::F16(t) => {
                stats.bytes_after += t.data.len();
                let h = g.add_const(&names.fresh(&format!("{base}_h")), t);
                let out = g.add_value(&names.fresh(&format!("{base}_f")), ty);
                new_nodes.push(Node {
                    name: names.fresh(&format!("{base}/cast")),
                    op: Op::Cast(Cast { to: DType::F32 }),
                    inputs: vec![h],
                    outputs: vec![out],
                });
                out
            }
            Done::Int8(q) => {
                stats.bytes_after += q.data.data.len() + q.scales.len() * 5;
                if job.axis.is_some() {
                    stats.per_channel += 1;
                }
                // Symmetric: the zero point is 0, DequantizeLinear's default, so it is omitted
                // (the element type comes from the int8 data).
                let scale_t = match job.axis {
                    Some(_) => Tensor::from_f32(vec![q.scales.len()], &q.scales),
                    None => Tensor::scalar_f32(q.scales[0]),
                };
                let qp = QuantParams {
                    scale: q.scales.clone(),
                    zero_point: vec![0; q.scales.len()],
                    axis: job.axis,
                };
                let w = g.add_const(&names.fresh(&format!("{base}_q")), q.data);
                g.value_mut(w).quant = Some(qp);
                let s = g.add_const(&names.fresh(&format!("{base}_s")), scale_t);
                let out = g.add_value(&names.fresh(&format!("{base}_dq")), ty);
                new_nodes.push(Node {
                    name: names.fresh(&format!("{base}/DQ")),
                    op: Op::DequantizeLinear(QuantAxis {
                        axis: job.axis.unwrap_or(0),
                        dtype: DType::I8,
                    }),
                    inputs: vec![w, s],
                    outputs: vec![out],
                });
                out
            }
        };
        replace.insert(job.value, out);
    }
    // The new nodes read constants only: placing them first keeps the topological order.
    new_nodes.append(&mut g.nodes);
    g.nodes = new_nodes;
    replace
}

/// Dense kernels `[in, out]` that only MatMuls without `transpose_b` read (as input 1).
fn dense_kernels(g: &Graph) -> std::collections::HashSet<ValueId> {
    let mut ok: HashMap<ValueId, bool> = HashMap::new();
    for n in &g.nodes {
        for (i, &v) in n.inputs.iter().enumerate() {
            if g.constant(v).is_none_or(|t| t.shape.len() != 2) {
                continue;
            }
            let dense =
                matches!(&n.op, Op::MatMul(m) if i == 1 && !m.transpose_b && !m.transpose_a);
            *ok.entry(v).or_insert(true) &= dense;
        }
    }
    for &o in &g.outputs {
        ok.insert(o, false);
    }
    ok.into_iter().filter(|&(_, d)| d).map(|(v, _)| v).collect()
}

/// Quantizes every job's tensor, on every core (largest first); results in job order.
fn run_jobs(g: &Graph, jobs: &[Job]) -> Result<Vec<Done>, String> {
    let one = |j: &Job| -> Result<Done, String> {
        let v = g.value(j.value);
        let t = v.constant.as_ref().ok_or("not a constant")?;
        let r = match (j.f16, j.transpose) {
            (true, false) => math::to_f16(t).map(Done::F16),
            (true, true) => math::to_f16(t).map(|h| Done::F16(h.transposed(&[1, 0]))),
            // Dense kernels for TFLite: quantized per output column and written [out, in]
            // in one pass (the channel axis becomes 0).
            (false, true) if j.axis.is_some() => {
                math::quantize_columns_transposed(t).map(Done::Int8)
            }
            (false, true) => math::quantize_symmetric(t, None).map(|q| {
                Done::Int8(math::Quantized {
                    data: q.data.transposed(&[1, 0]),
                    scales: q.scales,
                })
            }),
            (false, false) => math::quantize_symmetric(t, j.axis).map(Done::Int8),
        };
        // The float source is read: its file pages need not stay resident next to the result.
        crate::ir::mapped::release_pages(&t.data);
        r.map_err(|e| format!("constant '{}': {e}", v.name))
    };
    let size = |j: &Job| g.constant(j.value).map_or(0, |t| t.data.len());
    crate::parallel::map(jobs, size, one).into_iter().collect()
}
