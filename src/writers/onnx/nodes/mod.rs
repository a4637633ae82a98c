//! IR node → ONNX nodes for opsets 13–21. Where an op is newer than the target opset (Gelu < 20,
//! LayerNormalization < 17, HardSwish < 14, Mish < 18) it is written as its decomposition; ops
//! with no decomposition (GridSample < 16, Bitwise* < 18) raise the opset through [`min_opset`].
//! This file dispatches and writes the data-movement, indexing and reduction ops; the
//! elementwise and neural-network families are in their own files.

mod control;
mod dynamic;
mod elementwise;
mod nn;

use super::emit::{attr_f, attr_i, attr_ints, attr_s, attr_t, attr_usizes, Emitter};
use crate::ir::ops::*;
use crate::ir::{DType, Dim, Layout, Node, Op, Tensor};
use elementwise::{activation, binary, unary};
use nn::{conv, grid_sample, layer_norm, lp_norm, nms, pool, rnn};
use tract_onnx::pb::AttributeProto;

type R = Result<(), String>;

/// The lowest opset that can express this node (features added to ops after opset 13).
pub fn min_opset(g: &crate::ir::Graph, n: &Node) -> i64 {
    let dt = |i: usize| n.inputs.get(i).map(|&v| g.ty(v).dtype);
    let out_dt = g.ty(n.outputs[0]).dtype;
    let wide = |d: Option<DType>| matches!(d, Some(DType::I16 | DType::U16));
    match &n.op {
        Op::QuantizeLinear(_) if wide(Some(out_dt)) => 21,
        Op::DequantizeLinear(_) if wide(dt(0)) => 21,
        Op::QuantizeLinear(_) | Op::DequantizeLinear(_) if dt(1) != Some(DType::F32) => 19,
        Op::QLinearMatMul | Op::QLinearConv(_) if dt(1) != Some(DType::F32) => 21,
        Op::Pool(p) if p.dilations.iter().any(|&d| d != 1) => match p.kind {
            PoolKind::Max => 13,
            PoolKind::L2 => 18,
            PoolKind::Avg => 19,
        },
        Op::ScatterNd(Scatter { reduction: r })
        | Op::ScatterElements(ScatterElements { reduction: r, .. }) => match r {
            ScatterReduction::None => 13,
            ScatterReduction::Add | ScatterReduction::Mul => 16,
            ScatterReduction::Max | ScatterReduction::Min => 18,
        },
        Op::Pad(p) if p.mode == PadMode::Wrap => 19,
        // ReduceMax/ReduceMin take booleans from opset 20.
        Op::Reduce(Reduce {
            kind: ReduceKind::Max | ReduceKind::Min,
            ..
        })
        | Op::Dynamic(Dynamic::Reduce {
            kind: ReduceKind::Max | ReduceKind::Min,
            ..
        }) if dt(0) == Some(DType::Bool) => 20,
        Op::Unary(u) => elementwise::unary_min_opset(*u),
        Op::Binary(b) => elementwise::binary_min_opset(*b),
        Op::Activation(a) => elementwise::activation_min_opset(a),
        Op::GridSample(_) if n.inputs.first().map(|&v| g.ty(v).rank()) != Some(4) => 20,
        Op::GridSample(_) => 16,
        Op::Resize(r) if r.coord == CoordTransform::HalfPixelSymmetric => 19,
        Op::Dynamic(d) => dynamic::min_opset(d),
        Op::If(i) => [&i.then_branch, &i.else_branch]
            .iter()
            .flat_map(|b| b.0.nodes.iter().map(|n| min_opset(&b.0, n)))
            .fold(13, i64::max),
        Op::Loop(l) => l
            .body
            .0
            .nodes
            .iter()
            .map(|n| min_opset(&l.body.0, n))
            .fold(13, i64::max),
        Op::Where
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
        | Op::Gather(_)
        | Op::GatherElements(_)
        | Op::GatherNd(_)
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
        | Op::QLinearMatMul => 13,
    }
}

pub fn emit_node(em: &mut Emitter, n: &Node) -> R {
    let need = min_opset(em.g, n);
    if need > em.opset {
        return Err(format!(
            "needs opset {need} or later (writing opset {})",
            em.opset
        ));
    }
    let ins: Vec<String> = n.inputs.iter().map(|&i| em.input(i)).collect();
    let outs: Vec<String> = n.outputs.iter().map(|&o| em.output(o)).collect();
    let name = n.name.as_str();
    let x_ty = n.inputs.first().map(|&i| em.g.ty(i).clone());
    let dtype = x_ty.as_ref().map_or(DType::F32, |t| t.dtype);
    match &n.op {
        Op::Unary(u) => unary(em, *u, name, ins, outs, dtype),
        Op::Binary(b) => binary(em, *b, name, ins, outs),
        Op::Activation(a) => activation(em, a, name, ins, outs, dtype),
        Op::Where => simple(em, "Where", name, ins, outs),
        Op::Cast(c) => {
            em.node(
                "Cast",
                name,
                ins,
                outs,
                vec![attr_i("to", crate::formats::onnx::onnx_code(c.to) as i64)],
            );
            Ok(())
        }
        Op::MatMul(m) => matmul(em, n, m, name, ins, outs),
        Op::Einsum(e) => {
            em.node(
                "Einsum",
                name,
                ins,
                outs,
                vec![attr_s("equation", &e.equation)],
            );
            Ok(())
        }
        Op::Conv(c) => conv(em, "Conv", c, name, ins, outs, false),
        Op::ConvTranspose(c) => conv(em, "ConvTranspose", c, name, ins, outs, true),
        Op::Pool(p) => pool(em, p, name, ins, outs),
        Op::GlobalPool(p) => {
            need_nchw(p.layout)?;
            let op = match p.kind {
                PoolKind::Max => "GlobalMaxPool",
                PoolKind::Avg => "GlobalAveragePool",
                PoolKind::L2 => "GlobalLpPool",
            };
            simple(em, op, name, ins, outs)
        }
        Op::BatchNorm(b) => {
            need_nchw(b.layout)?;
            em.node(
                "BatchNormalization",
                name,
                ins,
                outs,
                vec![attr_f("epsilon", b.epsilon)],
            );
            Ok(())
        }
        Op::LayerNorm(l) => layer_norm(em, l, name, ins, outs, dtype, x_ty.map_or(0, |t| t.rank())),
        Op::InstanceNorm(i) => {
            need_nchw(i.layout)?;
            em.node(
                "InstanceNormalization",
                name,
                ins,
                outs,
                vec![attr_f("epsilon", i.epsilon)],
            );
            Ok(())
        }
        Op::Softmax(s) => {
            em.node(
                if s.log { "LogSoftmax" } else { "Softmax" },
                name,
                ins,
                outs,
                vec![attr_i("axis", s.axis as i64)],
            );
            Ok(())
        }
        Op::Hardmax(h) => {
            em.node(
                "Hardmax",
                name,
                ins,
                outs,
                vec![attr_i("axis", h.axis as i64)],
            );
            Ok(())
        }
        Op::LpNorm(l) => lp_norm(em, l, name, ins, outs),
        Op::Reshape(r) => reshape(em, n, r, name, ins, outs),
        Op::Transpose(t) => {
            em.node(
                "Transpose",
                name,
                ins,
                outs,
                vec![attr_usizes("perm", &t.perm)],
            );
            Ok(())
        }
        Op::Concat(c) => {
            em.node(
                "Concat",
                name,
                ins,
                outs,
                vec![attr_i("axis", c.axis as i64)],
            );
            Ok(())
        }
        Op::Split(s) => {
            let sizes: Vec<i64> = s.sizes.iter().map(|&v| v as i64).collect();
            let split = em.ints(&format!("{name}/split"), &sizes);
            em.node(
                "Split",
                name,
                vec![ins[0].clone(), split],
                outs,
                vec![attr_i("axis", s.axis as i64)],
            );
            Ok(())
        }
        Op::Slice(s) => {
            let starts = em.ints(
                &format!("{name}/starts"),
                &s.axes.iter().map(|a| a.start).collect::<Vec<_>>(),
            );
            let ends = em.ints(
                &format!("{name}/ends"),
                &s.axes.iter().map(|a| a.end).collect::<Vec<_>>(),
            );
            let axes = em.ints(
                &format!("{name}/axes"),
                &s.axes.iter().map(|a| a.axis as i64).collect::<Vec<_>>(),
            );
            let steps = em.ints(
                &format!("{name}/steps"),
                &s.axes.iter().map(|a| a.step).collect::<Vec<_>>(),
            );
            em.node(
                "Slice",
                name,
                vec![ins[0].clone(), starts, ends, axes, steps],
                outs,
                vec![],
            );
            Ok(())
        }
        Op::Pad(p) => pad(em, p, name, ins, outs, dtype),
        Op::Tile(t) => {
            let r = em.ints(
                &format!("{name}/repeats"),
                &t.repeats.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            );
            em.node("Tile", name, vec![ins[0].clone(), r], outs, vec![]);
            Ok(())
        }
        Op::Expand(e) => {
            // A target dim equal to the input's aligned dim can be written as 1 (keep size).
            let src = &em.g.ty(n.inputs[0]).shape;
            let lead = e.shape.len().saturating_sub(src.len());
            let dims: Vec<Dim> = e
                .shape
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    if i >= lead && src[i - lead] == *d && !d.is_fixed() {
                        Dim::Fixed(1)
                    } else {
                        d.clone()
                    }
                })
                .collect();
            let s = em.shape_tensor(&format!("{name}/shape"), &dims, n.inputs[0], false)?;
            em.node("Expand", name, vec![ins[0].clone(), s], outs, vec![]);
            Ok(())
        }
        Op::DepthToSpace(d) => {
            need_nchw(d.layout)?;
            let mode = if d.mode == DepthToSpaceMode::Crd {
                "CRD"
            } else {
                "DCR"
            };
            em.node(
                "DepthToSpace",
                name,
                ins,
                outs,
                vec![attr_i("blocksize", d.block as i64), attr_s("mode", mode)],
            );
            Ok(())
        }
        Op::SpaceToDepth(s) => {
            need_nchw(s.layout)?;
            em.node(
                "SpaceToDepth",
                name,
                ins,
                outs,
                vec![attr_i("blocksize", s.block as i64)],
            );
            Ok(())
        }
        Op::Resize(r) => resize(em, n, r, name, ins, outs),
        Op::GridSample(gs) => grid_sample(em, gs, name, ins, outs, x_ty.map_or(0, |t| t.rank())),
        Op::Gather(g) => {
            em.node(
                "Gather",
                name,
                ins,
                outs,
                vec![attr_i("axis", g.axis as i64)],
            );
            Ok(())
        }
        Op::GatherElements(g) => {
            em.node(
                "GatherElements",
                name,
                ins,
                outs,
                vec![attr_i("axis", g.axis as i64)],
            );
            Ok(())
        }
        Op::GatherNd(g) => {
            em.node(
                "GatherND",
                name,
                ins,
                outs,
                vec![attr_i("batch_dims", g.batch_dims as i64)],
            );
            Ok(())
        }
        Op::ScatterNd(s) => {
            let attrs = reduction_attr(em, s.reduction)?;
            em.node("ScatterND", name, ins, outs, attrs);
            Ok(())
        }
        Op::ScatterElements(s) => {
            let mut attrs = reduction_attr(em, s.reduction)?;
            attrs.push(attr_i("axis", s.axis as i64));
            em.node("ScatterElements", name, ins, outs, attrs);
            Ok(())
        }
        Op::TopK(t) => {
            let k = em.ints(&format!("{name}/k"), &[t.k as i64]);
            let attrs = vec![
                attr_i("axis", t.axis as i64),
                attr_i("largest", t.largest as i64),
                attr_i("sorted", t.sorted as i64),
            ];
            em.node("TopK", name, vec![ins[0].clone(), k], outs, attrs);
            Ok(())
        }
        Op::ArgReduce(a) => {
            let attrs = vec![
                attr_i("axis", a.axis as i64),
                attr_i("keepdims", a.keep_dims as i64),
                attr_i("select_last_index", a.select_last as i64),
            ];
            em.node(
                if a.max { "ArgMax" } else { "ArgMin" },
                name,
                ins,
                outs,
                attrs,
            );
            Ok(())
        }
        Op::CumSum(c) => {
            let axis = em.konst(&format!("{name}/axis"), Tensor::scalar_i64(c.axis as i64));
            let attrs = vec![
                attr_i("exclusive", c.exclusive as i64),
                attr_i("reverse", c.reverse as i64),
            ];
            em.node("CumSum", name, vec![ins[0].clone(), axis], outs, attrs);
            Ok(())
        }
        Op::NonZero => simple(em, "NonZero", name, ins, outs),
        Op::OneHot(o) => {
            let depth = em.konst(&format!("{name}/depth"), Tensor::scalar_i64(o.depth as i64));
            em.node(
                "OneHot",
                name,
                vec![ins[0].clone(), depth, ins[1].clone()],
                outs,
                vec![attr_i("axis", o.axis)],
            );
            Ok(())
        }
        Op::Trilu(t) => {
            let k = em.konst(&format!("{name}/k"), Tensor::scalar_i64(t.k));
            em.node(
                "Trilu",
                name,
                vec![ins[0].clone(), k],
                outs,
                vec![attr_i("upper", t.upper as i64)],
            );
            Ok(())
        }
        Op::NonMaxSuppression(s) => nms(em, s, name, ins, outs, dtype),
        Op::ShapeOf(s) => {
            let rank = em.g.ty(n.inputs[0]).rank();
            let mut attrs = vec![];
            if s.start != 0 {
                attrs.push(attr_i("start", s.start as i64));
            }
            if s.end != rank {
                attrs.push(attr_i("end", s.end as i64));
            }
            if em.opset < 15 && !attrs.is_empty() {
                let full = em.tmp("Shape", name, ins, vec![]);
                let st = em.ints(&format!("{name}/start"), &[s.start as i64]);
                let en = em.ints(&format!("{name}/end"), &[s.end as i64]);
                em.node("Slice", name, vec![full, st, en], outs, vec![]);
            } else {
                em.node("Shape", name, ins, outs, attrs);
            }
            Ok(())
        }
        Op::ConstantOfShape(c) => {
            em.node(
                "ConstantOfShape",
                name,
                ins,
                outs,
                vec![attr_t("value", &c.value.reshaped(vec![1]))],
            );
            Ok(())
        }
        Op::Range => simple(em, "Range", name, ins, outs),
        Op::Reduce(r) => reduce(em, r, name, ins, outs),
        Op::Lstm(r) => rnn(em, "LSTM", r, name, ins, outs),
        Op::Gru(r) => rnn(em, "GRU", r, name, ins, outs),
        Op::QuantizeLinear(q) | Op::DequantizeLinear(q) => {
            let op = if matches!(n.op, Op::QuantizeLinear(_)) {
                "QuantizeLinear"
            } else {
                "DequantizeLinear"
            };
            let scalar_scale = em.g.ty(n.inputs[1]).rank() == 0;
            let attrs = if scalar_scale {
                vec![]
            } else {
                vec![attr_i("axis", q.axis as i64)]
            };
            em.node(op, name, ins, outs, attrs);
            Ok(())
        }
        Op::DynamicQuantizeLinear => simple(em, "DynamicQuantizeLinear", name, ins, outs),
        Op::ConvInteger(c) => conv(em, "ConvInteger", c, name, ins, outs, false),
        Op::MatMulInteger => simple(em, "MatMulInteger", name, ins, outs),
        Op::QLinearConv(c) => conv(em, "QLinearConv", c, name, ins, outs, false),
        Op::QLinearMatMul => simple(em, "QLinearMatMul", name, ins, outs),
        Op::Dynamic(d) => dynamic::emit(em, d, name, ins, outs),
        Op::If(i) => control::emit_if(em, n, i, ins, outs),
        Op::Loop(l) => control::emit_loop(em, n, l, ins, outs),
    }
}

pub fn simple(em: &mut Emitter, op: &str, name: &str, ins: Vec<String>, outs: Vec<String>) -> R {
    em.node(op, name, ins, outs, vec![]);
    Ok(())
}

/// Rank-2 products with transposed operands are Gemm (no copy of the weights); higher ranks get
/// an explicit Transpose on the flagged operand.
fn matmul(
    em: &mut Emitter,
    n: &Node,
    m: &MatMul,
    name: &str,
    mut ins: Vec<String>,
    outs: Vec<String>,
) -> R {
    let ranks = (em.g.ty(n.inputs[0]).rank(), em.g.ty(n.inputs[1]).rank());
    if !m.transpose_a && !m.transpose_b {
        return simple(em, "MatMul", name, ins, outs);
    }
    if ranks == (2, 2) {
        let attrs = vec![
            attr_i("transA", m.transpose_a as i64),
            attr_i("transB", m.transpose_b as i64),
        ];
        em.node("Gemm", name, ins, outs, attrs);
        return Ok(());
    }
    for (k, (t, r)) in [(m.transpose_a, ranks.0), (m.transpose_b, ranks.1)]
        .into_iter()
        .enumerate()
    {
        if t {
            let mut perm: Vec<usize> = (0..r).collect();
            perm.swap(r - 1, r - 2);
            ins[k] = em.tmp(
                "Transpose",
                name,
                vec![ins[k].clone()],
                vec![attr_usizes("perm", &perm)],
            );
        }
    }
    simple(em, "MatMul", name, ins, outs)
}

pub fn need_nchw(l: Layout) -> R {
    if l != Layout::Nchw {
        return Err("channels-last layout must be legalized to NCHW before writing ONNX".into());
    }
    Ok(())
}

fn reshape(
    em: &mut Emitter,
    n: &Node,
    r: &Reshape,
    name: &str,
    ins: Vec<String>,
    outs: Vec<String>,
) -> R {
    let src = em.g.ty(n.inputs[0]).shape.clone();
    // Symbols at the same position as in the input copy it (0); one other unknown becomes -1.
    let mut v = Vec::with_capacity(r.shape.len());
    let mut unknown = 0;
    for (i, d) in r.shape.iter().enumerate() {
        v.push(match d {
            Dim::Fixed(k) => *k as i64,
            Dim::Sym(_) if src.get(i) == Some(d) => 0,
            Dim::Sym(_) => {
                unknown += 1;
                -1
            }
        });
    }
    // allowzero=0 reads a literal 0 as "copy": only valid where the input has a dim there.
    let zero_ok = r
        .shape
        .iter()
        .enumerate()
        .all(|(i, d)| *d != Dim::Fixed(0) || src.get(i) == Some(&Dim::Fixed(0)));
    let shape = if unknown <= 1 && zero_ok {
        em.ints(&format!("{name}/shape"), &v)
    } else {
        em.shape_tensor(&format!("{name}/shape"), &r.shape, n.inputs[0], true)?
    };
    em.node("Reshape", name, vec![ins[0].clone(), shape], outs, vec![]);
    Ok(())
}

fn pad(
    em: &mut Emitter,
    p: &Pad,
    name: &str,
    ins: Vec<String>,
    outs: Vec<String>,
    dtype: DType,
) -> R {
    let mode = pad_mode(em, p.mode)?;
    let pads: Vec<i64> = p
        .pads
        .iter()
        .map(|x| x.0)
        .chain(p.pads.iter().map(|x| x.1))
        .collect();
    let pads = em.ints(&format!("{name}/pads"), &pads);
    let mut inputs = vec![ins[0].clone(), pads];
    if p.mode == PadMode::Constant && p.value != 0.0 {
        inputs.push(em.scalar(&format!("{name}/value"), dtype, p.value));
    }
    em.node("Pad", name, inputs, outs, vec![attr_s("mode", mode)]);
    Ok(())
}

pub fn pad_mode(em: &Emitter, mode: PadMode) -> Result<&'static str, String> {
    Ok(match mode {
        PadMode::Constant => "constant",
        PadMode::Reflect => "reflect",
        PadMode::Edge => "edge",
        PadMode::Wrap if em.opset >= 19 => "wrap",
        PadMode::Wrap => return Err("wrap padding needs opset 19".into()),
    })
}

fn resize(
    em: &mut Emitter,
    n: &Node,
    r: &Resize,
    name: &str,
    ins: Vec<String>,
    outs: Vec<String>,
) -> R {
    let attrs = resize_attrs(em, r)?;
    let inputs = match &r.sizes {
        Some(s) => {
            let sizes = em.shape_tensor(&format!("{name}/sizes"), s, n.inputs[0], false)?;
            vec![ins[0].clone(), String::new(), String::new(), sizes]
        }
        None => {
            let scales = em.konst(
                &format!("{name}/scales"),
                Tensor::from_f32(vec![r.scales.len()], &r.scales),
            );
            vec![ins[0].clone(), String::new(), scales]
        }
    };
    em.node("Resize", name, inputs, outs, attrs);
    Ok(())
}

pub fn resize_attrs(em: &Emitter, r: &Resize) -> Result<Vec<AttributeProto>, String> {
    let mode = match r.mode {
        ResizeMode::Nearest => "nearest",
        ResizeMode::Linear => "linear",
        ResizeMode::Cubic => "cubic",
    };
    let coord = match r.coord {
        CoordTransform::HalfPixel => "half_pixel",
        CoordTransform::HalfPixelSymmetric if em.opset >= 19 => "half_pixel_symmetric",
        CoordTransform::HalfPixelSymmetric => {
            return Err("half_pixel_symmetric needs opset 19".into())
        }
        CoordTransform::PytorchHalfPixel => "pytorch_half_pixel",
        CoordTransform::AlignCorners => "align_corners",
        CoordTransform::Asymmetric => "asymmetric",
        CoordTransform::TfCropAndResize => "tf_crop_and_resize",
    };
    let nearest = match r.nearest {
        NearestRounding::RoundPreferFloor => "round_prefer_floor",
        NearestRounding::RoundPreferCeil => "round_prefer_ceil",
        NearestRounding::Floor => "floor",
        NearestRounding::Ceil => "ceil",
    };
    let mut attrs = vec![
        attr_s("mode", mode),
        attr_s("coordinate_transformation_mode", coord),
        attr_s("nearest_mode", nearest),
    ];
    if r.mode == ResizeMode::Cubic {
        attrs.push(attr_f("cubic_coeff_a", r.cubic_coeff_a));
        attrs.push(attr_i("exclude_outside", r.exclude_outside as i64));
    }
    Ok(attrs)
}

fn reduction_attr(
    em: &Emitter,
    r: ScatterReduction,
) -> Result<Vec<tract_onnx::pb::AttributeProto>, String> {
    let s = match r {
        ScatterReduction::None => return Ok(vec![]),
        ScatterReduction::Add => "add",
        ScatterReduction::Mul => "mul",
        ScatterReduction::Max | ScatterReduction::Min if em.opset < 18 => {
            return Err("max/min scatter needs opset 18".into())
        }
        ScatterReduction::Max => "max",
        ScatterReduction::Min => "min",
    };
    if em.opset < 16 {
        return Err("scatter reductions need opset 16".into());
    }
    Ok(vec![attr_s("reduction", s)])
}

fn reduce(em: &mut Emitter, r: &Reduce, name: &str, ins: Vec<String>, outs: Vec<String>) -> R {
    let op = reduce_op(r.kind);
    let axes: Vec<i64> = r.axes.iter().map(|&a| a as i64).collect();
    let keep = attr_i("keepdims", r.keep_dims as i64);
    // Axes became an input in opset 13 for ReduceSum and in opset 18 for the others.
    if em.opset >= 18 || (r.kind == ReduceKind::Sum && em.opset >= 13) {
        let a = em.ints(&format!("{name}/axes"), &axes);
        em.node(op, name, vec![ins[0].clone(), a], outs, vec![keep]);
    } else {
        em.node(op, name, ins, outs, vec![attr_ints("axes", axes), keep]);
    }
    Ok(())
}

pub fn reduce_op(kind: ReduceKind) -> &'static str {
    match kind {
        ReduceKind::Mean => "ReduceMean",
        ReduceKind::Sum => "ReduceSum",
        ReduceKind::Max => "ReduceMax",
        ReduceKind::Min => "ReduceMin",
        ReduceKind::Prod => "ReduceProd",
        ReduceKind::L1 => "ReduceL1",
        ReduceKind::L2 => "ReduceL2",
        ReduceKind::LogSum => "ReduceLogSum",
        ReduceKind::LogSumExp => "ReduceLogSumExp",
        ReduceKind::SumSquare => "ReduceSumSquare",
    }
}
