//! Indexing, reduction, Einsum and NonMaxSuppression ONNX ops. Reductions take axes from the
//! attribute (before opset 18, ReduceSum before 13) or from a constant input;
//! `noop_with_empty_axes` is honoured. NonMaxSuppression's optional scalar inputs must be
//! constants (they become parameters). CumProd is a log-step scan of products. EyeLike of a fixed shape is a constant;
//! ReverseSequence a GatherElements with computed indices; Compress a Gather of NonZero.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::{dynamic, Handler};
use crate::ir::ops::{
    norm_axes, norm_axis, ArgReduce, BinaryOp, ConstantOfShape, CumSum, Dynamic, Einsum, Expand,
    Gather, GatherNd, Nms, OneHot, Reduce, ReduceKind, Scatter, ScatterElements, ScatterReduction,
    ShapeOf, TopK, Trilu,
};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Gather" | "GatherElements" => gather,
        "GatherND" => gather_nd,
        "ScatterND" => scatter_nd,
        "ScatterElements" | "Scatter" => scatter_elements,
        "TopK" => topk,
        "ArgMax" | "ArgMin" => arg_reduce,
        "CumSum" => cumsum,
        "CumProd" => cumprod,
        "NonZero" => non_zero,
        "OneHot" => one_hot,
        "Trilu" => trilu,
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1"
        | "ReduceL2" | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceSumSquare" => reduce,
        "NonMaxSuppression" => nms,
        "Einsum" => einsum,
        "EyeLike" => eye_like,
        "ReverseSequence" => reverse_sequence,
        "Compress" => compress,
        "ai.onnx.ml:ArrayFeatureExtractor" => feature_extractor,
        _ => return None,
    })
}

fn gather(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, i) = (ctx.input(0)?, ctx.input(1)?);
    let axis = norm_axis(ctx.int("axis", 0), imp.g.ty(x).rank())?;
    let op = if ctx.node.op_type == "Gather" {
        Op::Gather(Gather { axis })
    } else {
        Op::GatherElements(Gather { axis })
    };
    imp.emit(&ctx.name, op, vec![x, i])
}

fn gather_nd(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let g = GatherNd {
        batch_dims: ctx.int("batch_dims", 0).max(0) as usize,
    };
    imp.emit(
        &ctx.name,
        Op::GatherNd(g),
        vec![ctx.input(0)?, ctx.input(1)?],
    )
}

fn reduction(ctx: &NodeCtx) -> NodeResult<ScatterReduction> {
    Ok(match ctx.string("reduction", "none").as_str() {
        "none" => ScatterReduction::None,
        "add" => ScatterReduction::Add,
        "mul" => ScatterReduction::Mul,
        "max" => ScatterReduction::Max,
        "min" => ScatterReduction::Min,
        r => return unsupported(format!("reduction '{r}'")),
    })
}

fn scatter_nd(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let s = Scatter {
        reduction: reduction(ctx)?,
    };
    imp.emit(
        &ctx.name,
        Op::ScatterNd(s),
        vec![ctx.input(0)?, ctx.input(1)?, ctx.input(2)?],
    )
}

fn scatter_elements(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let axis = norm_axis(ctx.int("axis", 0), imp.g.ty(x).rank())?;
    let s = ScatterElements {
        axis,
        reduction: reduction(ctx)?,
    };
    imp.emit(
        &ctx.name,
        Op::ScatterElements(s),
        vec![x, ctx.input(1)?, ctx.input(2)?],
    )
}

fn topk(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let k = if imp.opset < 10 {
        ctx.int("k", 1)
    } else {
        match imp.const_ints(ctx.input(1)?) {
            Some(v) if v.len() == 1 => v[0],
            Some(_) => return Err(NodeError::Invalid("k must hold one value".into())),
            None => return dynamic_topk(imp, ctx, x),
        }
    };
    let axis = norm_axis(ctx.int("axis", -1), imp.g.ty(x).rank())?;
    if let Some(n) = imp.g.ty(x).shape[axis].fixed() {
        if k < 0 || k as u64 > n {
            return Err(NodeError::Invalid(format!("k = {k} for an axis of {n}")));
        }
    }
    let t = TopK {
        axis,
        k: k.max(0) as usize,
        largest: ctx.int("largest", 1) == 1,
        sorted: ctx.int("sorted", 1) == 1,
    };
    imp.emit(&ctx.name, Op::TopK(t), vec![x])
}

fn dynamic_topk(imp: &mut Importer, ctx: &NodeCtx, x: ValueId) -> NodeResult<Vec<ValueId>> {
    let d = Dynamic::TopK {
        axis: norm_axis(ctx.int("axis", -1), imp.g.ty(x).rank())?,
        largest: ctx.int("largest", 1) == 1,
        sorted: ctx.int("sorted", 1) == 1,
    };
    dynamic(imp, ctx, d, vec![x, ctx.input(1)?])
}

fn arg_reduce(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let a = ArgReduce {
        max: ctx.node.op_type == "ArgMax",
        axis: norm_axis(ctx.int("axis", 0), imp.g.ty(x).rank())?,
        keep_dims: ctx.int("keepdims", 1) == 1,
        select_last: ctx.int("select_last_index", 0) == 1,
    };
    imp.emit(&ctx.name, Op::ArgReduce(a), vec![x])
}

fn cumsum(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let exclusive = ctx.int("exclusive", 0) == 1;
    let reverse = ctx.int("reverse", 0) == 1;
    let axis = match imp.const_ints(ctx.input(1)?) {
        Some(v) if v.len() == 1 => norm_axis(v[0], imp.g.ty(x).rank())?,
        Some(_) => return Err(NodeError::Invalid("the axis must hold one value".into())),
        None => {
            let d = Dynamic::CumSum { exclusive, reverse };
            return dynamic(imp, ctx, d, vec![x, ctx.input(1)?]);
        }
    };
    let c = CumSum {
        axis,
        exclusive,
        reverse,
    };
    imp.emit(&ctx.name, Op::CumSum(c), vec![x])
}

/// CumProd as a log-step scan along the axis: `⌈log₂ n⌉` products of the running result with
/// itself shifted by 1, 2, 4, … (ones shifted in). An axis computed at run time computes the scan
/// along every axis it can name and selects by its value.
fn cumprod(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, axis) = (ctx.input(0)?, ctx.input(1)?);
    let rank = imp.g.ty(x).rank();
    let exclusive = ctx.int("exclusive", 0) == 1;
    let reverse = ctx.int("reverse", 0) == 1;
    let mut b = Build::new(imp, &ctx.name);
    if let Some(v) = b.imp.const_ints(axis) {
        let [a] = v[..] else {
            return Err(NodeError::Invalid("the axis must hold one value".into()));
        };
        let a = norm_axis(a, rank)?;
        return Ok(vec![prefix_products(&mut b, x, a, exclusive, reverse)?]);
    }
    let mut y = prefix_products(&mut b, x, 0, exclusive, reverse)?;
    if rank > 1 {
        let axis = b.cast(axis, DType::I64)?;
        let r = b.scalar("rank", DType::I64, rank as f64);
        let shifted = b.bin(BinaryOp::Add, axis, r)?;
        let axis = b.bin(BinaryOp::Mod, shifted, r)?;
        for a in 1..rank {
            let ya = prefix_products(&mut b, x, a, exclusive, reverse)?;
            let k = b.scalar("axis", DType::I64, a as f64);
            let pick = b.bin(BinaryOp::Equal, axis, k)?;
            y = b.op("select", Op::Where, vec![pick, ya, y])?;
        }
    }
    Ok(vec![y])
}

fn prefix_products(
    b: &mut Build,
    x: ValueId,
    axis: usize,
    exclusive: bool,
    reverse: bool,
) -> NodeResult<ValueId> {
    let Some(n) = b.shape(x)[axis].fixed().map(|n| n as i64) else {
        return unsupported("CumProd along an axis known only at run time");
    };
    // `x` shifted by `s` along the axis toward its end (or start, reversed), ones shifted in.
    let shift = |b: &mut Build, y: ValueId, s: i64| -> NodeResult<ValueId> {
        let kept = if reverse {
            b.slice(y, axis, s, n)?
        } else {
            b.slice(y, axis, 0, n - s)?
        };
        let edge = b.slice(y, axis, 0, s)?;
        let rank = b.shape(edge).len();
        let shape = Op::ShapeOf(ShapeOf {
            start: 0,
            end: rank,
        });
        let shape = b.op("shape", shape, vec![edge])?;
        let value = Tensor::from_f64s(b.imp.g.ty(y).dtype, vec![], &[1.0]);
        let ones = b.op(
            "ones",
            Op::ConstantOfShape(ConstantOfShape { value }),
            vec![shape],
        )?;
        let parts = if reverse {
            vec![kept, ones]
        } else {
            vec![ones, kept]
        };
        b.concat(parts, axis)
    };
    let mut y = x;
    let mut s = 1;
    while s < n {
        let shifted = shift(b, y, s)?;
        y = b.bin(BinaryOp::Mul, y, shifted)?;
        s *= 2;
    }
    if exclusive && n > 0 {
        y = shift(b, y, 1)?;
    }
    Ok(y)
}

fn non_zero(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    imp.emit(&ctx.name, Op::NonZero, vec![ctx.input(0)?])
}

fn one_hot(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let depth = match imp.const_floats(ctx.input(1)?) {
        Some(v) if v.len() == 1 && v[0] >= 1.0 => v[0] as usize,
        Some(_) => {
            return Err(NodeError::Invalid(
                "OneHot depth must be one value ≥ 1".into(),
            ))
        }
        None => {
            let d = Dynamic::OneHot {
                axis: ctx.int("axis", -1),
            };
            let inputs = vec![ctx.input(0)?, ctx.input(1)?, ctx.input(2)?];
            return dynamic(imp, ctx, d, inputs);
        }
    };
    let o = OneHot {
        axis: ctx.int("axis", -1),
        depth,
    };
    imp.emit(&ctx.name, Op::OneHot(o), vec![ctx.input(0)?, ctx.input(2)?])
}

fn trilu(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let k = match ctx.opt_input(1) {
        None => 0,
        Some(v) => match imp.const_ints(v) {
            Some(k) if k.len() == 1 => k[0],
            Some(_) => return Err(NodeError::Invalid("Trilu k must hold one value".into())),
            None => {
                let d = Dynamic::Trilu {
                    upper: ctx.int("upper", 1) == 1,
                };
                return dynamic(imp, ctx, d, vec![ctx.input(0)?, v]);
            }
        },
    };
    imp.emit(
        &ctx.name,
        Op::Trilu(Trilu {
            upper: ctx.int("upper", 1) == 1,
            k,
        }),
        vec![ctx.input(0)?],
    )
}

fn reduce(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let rank = imp.g.ty(x).rank();
    let kind = match ctx.node.op_type.as_str() {
        "ReduceMean" => ReduceKind::Mean,
        "ReduceSum" => ReduceKind::Sum,
        "ReduceMax" => ReduceKind::Max,
        "ReduceMin" => ReduceKind::Min,
        "ReduceProd" => ReduceKind::Prod,
        "ReduceL1" => ReduceKind::L1,
        "ReduceL2" => ReduceKind::L2,
        "ReduceLogSum" => ReduceKind::LogSum,
        "ReduceLogSumExp" => ReduceKind::LogSumExp,
        _ => ReduceKind::SumSquare,
    };
    let axes = match ctx.ints("axes") {
        Some(a) => Some(a),
        None => match ctx.opt_input(1) {
            None => None,
            Some(v) => match imp.const_ints(v) {
                Some(a) => Some(a),
                None => {
                    let d = Dynamic::Reduce {
                        kind,
                        keep_dims: ctx.int("keepdims", 1) == 1,
                        noop_with_empty_axes: ctx.int("noop_with_empty_axes", 0) == 1,
                    };
                    return dynamic(imp, ctx, d, vec![x, v]);
                }
            },
        },
    };
    let mut axes = match axes {
        Some(a) if !a.is_empty() => norm_axes(&a, rank)?,
        _ if ctx.int("noop_with_empty_axes", 0) == 1 => return Ok(vec![x]),
        _ => (0..rank).collect(),
    };
    axes.sort_unstable();
    if axes.is_empty() {
        // Reducing a scalar over "all axes" leaves it unchanged for every kind but the
        // squared/absolute ones; keep those as an explicit elementwise op would be needed.
        if matches!(
            kind,
            ReduceKind::Mean
                | ReduceKind::Sum
                | ReduceKind::Max
                | ReduceKind::Min
                | ReduceKind::Prod
        ) {
            return Ok(vec![x]);
        }
        return unsupported("reduction of a scalar");
    }
    let r = Reduce {
        kind,
        axes,
        keep_dims: ctx.int("keepdims", 1) == 1,
    };
    imp.emit(&ctx.name, Op::Reduce(r), vec![x])
}

/// NonMaxSuppression with a limit computed at run time; absent limits become constants.
fn dynamic_nms(
    imp: &mut Importer,
    ctx: &NodeCtx,
    center_point_box: bool,
) -> NodeResult<Vec<ValueId>> {
    let mut inputs = vec![ctx.input(0)?, ctx.input(1)?];
    let defaults = [
        ("max_output_boxes_per_class", Tensor::scalar_i64(0)),
        ("iou_threshold", Tensor::scalar_f32(0.0)),
        ("score_threshold", Tensor::scalar_f32(f32::NEG_INFINITY)),
    ];
    for (i, (what, t)) in defaults.into_iter().enumerate() {
        inputs.push(match ctx.opt_input(i + 2) {
            Some(v) => v,
            None => imp.add_const(&format!("{}/{what}", ctx.name), t),
        });
    }
    dynamic(
        imp,
        ctx,
        Dynamic::NonMaxSuppression { center_point_box },
        inputs,
    )
}

fn nms(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let at_run_time = |i: usize| {
        ctx.opt_input(i)
            .is_some_and(|v| imp.g.constant(v).is_none())
    };
    if (2..5).any(at_run_time) {
        let center = ctx.int("center_point_box", 0);
        if !matches!(center, 0 | 1) {
            return unsupported(format!("NonMaxSuppression center_point_box = {center}"));
        }
        return dynamic_nms(imp, ctx, center == 1);
    }
    let scalar = |i: usize, what: &str| -> NodeResult<Option<f64>> {
        let Some(v) = ctx.opt_input(i) else {
            return Ok(None);
        };
        match imp.const_floats(v) {
            Some(f) if f.len() == 1 => Ok(Some(f[0])),
            Some(_) => Err(NodeError::Invalid(format!("{what} is not a scalar"))),
            None => unsupported(format!("NonMaxSuppression {what} computed at run time")),
        }
    };
    let max = match ctx.opt_input(2) {
        None => 0,
        Some(v) => match imp.const_ints(v) {
            Some(m) if m.len() == 1 => m[0],
            Some(_) => {
                return Err(NodeError::Invalid(
                    "max_output_boxes_per_class is not a scalar".into(),
                ))
            }
            None => {
                return unsupported(
                    "NonMaxSuppression max_output_boxes_per_class computed at run time",
                )
            }
        },
    };
    let n = Nms {
        center_point_box: match ctx.int("center_point_box", 0) {
            0 => false,
            1 => true,
            c => return unsupported(format!("NonMaxSuppression center_point_box = {c}")),
        },
        max_output_boxes_per_class: max,
        iou_threshold: scalar(3, "iou_threshold")?.unwrap_or(0.0) as f32,
        score_threshold: scalar(4, "score_threshold")?.map(|v| v as f32),
    };
    imp.emit(
        &ctx.name,
        Op::NonMaxSuppression(n),
        vec![ctx.input(0)?, ctx.input(1)?],
    )
}

fn einsum(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let inputs: Vec<ValueId> = ctx.inputs.iter().flatten().copied().collect();
    imp.emit(
        &ctx.name,
        Op::Einsum(Einsum {
            equation: ctx.string("equation", ""),
        }),
        inputs,
    )
}

/// A constant of the input's (fixed, 2-D) shape with ones on diagonal `k`, of `dtype` (the
/// input's when absent).
fn eye_like(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let ty = imp.g.ty(ctx.input(0)?).clone();
    let dims: Option<Vec<u64>> = ty.shape.iter().map(|d| d.fixed()).collect();
    let [rows, cols] = dims.as_deref().unwrap_or(&[]) else {
        return match dims {
            Some(_) => Err(NodeError::Invalid(format!(
                "EyeLike needs a 2-D input, got {ty}"
            ))),
            None => unsupported("EyeLike of a shape known only at run time"),
        };
    };
    let dtype = match ctx.attr("dtype") {
        Some(_) => {
            let code = ctx.int("dtype", 1) as i32;
            crate::formats::onnx::dtype_from_onnx(code)
                .ok_or_else(|| NodeError::Unsupported(format!("EyeLike of element type {code}")))?
        }
        None => ty.dtype,
    };
    let (rows, cols, k) = (*rows as usize, *cols as usize, ctx.int("k", 0));
    let mut v = vec![0.0; rows * cols];
    for r in 0..rows {
        let c = r as i64 + k;
        if (0..cols as i64).contains(&c) {
            v[r * cols + c as usize] = 1.0;
        }
    }
    let t = Tensor::from_f64s(dtype, vec![rows, cols], &v);
    Ok(vec![imp.add_const(&ctx.name, t)])
}

/// ReverseSequence: the first `sequence_lens[b]` steps of each batch entry reversed, the rest
/// kept — a GatherElements along time with indices `t < len ? len − 1 − t : t`.
fn reverse_sequence(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, lens) = (ctx.input(0)?, ctx.input(1)?);
    let ty = imp.g.ty(x).clone();
    let rank = ty.rank();
    let time = norm_axis(ctx.int("time_axis", 0), rank)?;
    let batch = norm_axis(ctx.int("batch_axis", 1), rank)?;
    if rank < 2 || time == batch || time > 1 || batch > 1 {
        return Err(NodeError::Invalid(format!(
            "ReverseSequence needs time and batch axes 0 and 1 of {ty}"
        )));
    }
    let Some(steps) = ty.shape[time].fixed() else {
        return unsupported("ReverseSequence over a time axis known only at run time");
    };
    let mut b = Build::new(imp, &ctx.name);
    let ones = |axis: usize, d: Dim| -> Vec<Dim> {
        (0..rank)
            .map(|a| if a == axis { d.clone() } else { Dim::Fixed(1) })
            .collect()
    };
    let iota: Vec<i64> = (0..steps as i64).collect();
    let t_shape: Vec<usize> = (0..rank)
        .map(|a| if a == time { steps as usize } else { 1 })
        .collect();
    let t = b.constant("steps", Tensor::from_i64s(DType::I64, t_shape, &iota));
    let lens = b.cast(lens, DType::I64)?;
    let lens = b.reshape(lens, ones(batch, ty.shape[batch].clone()))?;
    let inside = b.bin(BinaryOp::Less, t, lens)?;
    let one = b.scalar("one", DType::I64, 1.0);
    let last = b.bin(BinaryOp::Sub, lens, one)?;
    let mirrored = b.bin(BinaryOp::Sub, last, t)?;
    let idx = b.op("index", Op::Where, vec![inside, mirrored, t])?;
    let idx = b.op(
        "expand",
        Op::Expand(Expand {
            shape: ty.shape.clone(),
        }),
        vec![idx],
    )?;
    Ok(vec![b.op(
        "gather",
        Op::GatherElements(Gather { axis: time }),
        vec![x, idx],
    )?])
}

/// Compress: the slices along `axis` (of the flattened input without one) where `condition`
/// holds — a Gather of the condition's NonZero indices.
fn compress(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, cond) = (ctx.input(0)?, ctx.input(1)?);
    let ty = imp.g.ty(x).clone();
    if imp.g.ty(cond).rank() != 1 {
        return Err(NodeError::Invalid("Compress condition must be 1-D".into()));
    }
    let mut b = Build::new(imp, &ctx.name);
    let (x, axis) = match ctx.attr("axis") {
        Some(_) => (x, norm_axis(ctx.int("axis", 0), ty.rank())?),
        None => {
            let Some(n) = ty.shape.iter().map(|d| d.fixed()).product::<Option<u64>>() else {
                return unsupported("Compress without axis of a shape known only at run time");
            };
            (b.reshape(x, vec![Dim::Fixed(n)])?, 0)
        }
    };
    let cond = b.cast(cond, DType::Bool)?;
    let hits = b.op("nonzero", Op::NonZero, vec![cond])?;
    let count = b.shape(hits)[1].clone();
    let idx = b.reshape(hits, vec![count])?;
    Ok(vec![b.op(
        "gather",
        Op::Gather(Gather { axis }),
        vec![x, idx],
    )?])
}

/// ai.onnx.ml ArrayFeatureExtractor: the given indices of the last axis.
fn feature_extractor(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, i) = (ctx.input(0)?, ctx.input(1)?);
    let rank = imp.g.ty(x).rank();
    if rank == 0 {
        return Err(NodeError::Invalid(
            "ArrayFeatureExtractor of a scalar".into(),
        ));
    }
    let g = Gather { axis: rank - 1 };
    imp.emit(&ctx.name, Op::Gather(g), vec![x, i])
}
