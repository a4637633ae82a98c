//! Shape and data-movement ONNX ops. Axes, pads, repeats, sizes and target shapes move from
//! attributes (older opsets) to inputs (newer); both are read, and inputs must be known at
//! import time (constants, or shape tensors whose contents were tracked).

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult, ShapeEntry};
use super::{dynamic, Handler};
use crate::ir::ops::{
    norm_axes, norm_axis, ConstantOfShape, DepthToSpace, DepthToSpaceMode, Dynamic, Expand, Pad,
    PadMode, ShapeOf, Slice, SliceAxis, SpaceToDepth, Split, Tile, Transpose,
};
use crate::ir::{Dim, Layout, Op, Shape, Tensor, ValueId};
use crate::readers::builder::{entries_to_shape, reshape_to, resolve_target};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Reshape" => reshape,
        "Flatten" => flatten,
        "Squeeze" | "Unsqueeze" => squeeze,
        "Transpose" => transpose,
        "Concat" => concat,
        "Split" => split,
        "Slice" => slice,
        "Pad" => pad,
        "Tile" => tile,
        "Expand" => expand,
        "Shape" => shape_of,
        "Size" => size,
        "ConstantOfShape" => constant_of_shape,
        "Constant" => constant,
        "Range" => range,
        "DepthToSpace" | "SpaceToDepth" => depth_space,
        _ => return None,
    })
}

/// Integer list from an attribute (older opsets) or a constant input (newer ones).
fn ints_arg(
    imp: &Importer,
    ctx: &NodeCtx,
    attr: &str,
    input: usize,
) -> NodeResult<Option<Vec<i64>>> {
    if let Some(v) = ctx.ints(attr) {
        return Ok(Some(v));
    }
    match ctx.opt_input(input) {
        None => Ok(None),
        Some(v) => match imp.const_ints(v) {
            Some(x) => Ok(Some(x)),
            None => unsupported(format!("'{attr}' computed at run time")),
        },
    }
}

fn ints_const(imp: &mut Importer, ctx: &NodeCtx, what: &str, v: &[i64]) -> ValueId {
    imp.add_const(
        &format!("{}/{what}", ctx.name),
        Tensor::from_i64(vec![v.len()], v),
    )
}

/// The fixed length of a 1-D operand (starts, axes), for building its defaults.
fn operand_len(imp: &Importer, v: ValueId) -> NodeResult<usize> {
    let t = imp.g.ty(v);
    match t.shape.as_slice() {
        [d] => d
            .fixed()
            .map(|n| n as usize)
            .ok_or_else(|| NodeError::Unsupported("an operand of run-time length".into())),
        _ => Err(NodeError::Invalid(format!("operand {t} is not 1-D"))),
    }
}

fn reshape(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let allowzero = ctx.int("allowzero", 0) == 1;
    let dynamic_reshape = |imp: &mut Importer, s: ValueId| {
        dynamic(imp, ctx, Dynamic::Reshape { allowzero }, vec![x, s])
    };
    let target = match ctx.opt_input(1) {
        Some(s) => match imp.entries_or_unknown(s) {
            Some(t) => t,
            None => return dynamic_reshape(imp, s),
        },
        None => ctx
            .ints("shape")
            .unwrap_or_default()
            .into_iter()
            .map(ShapeEntry::Int)
            .collect(),
    };
    let input = imp.g.ty(x).shape.clone();
    match (
        resolve_target(imp, &input, &target, allowzero),
        ctx.opt_input(1),
    ) {
        (Ok(shape), _) => reshape_to(imp, &ctx.name, x, shape),
        (Err(NodeError::Unsupported(_)), Some(s)) => dynamic_reshape(imp, s),
        (Err(e), _) => Err(e),
    }
}

fn flatten(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let s = imp.g.ty(x).shape.clone();
    let axis = ctx.int("axis", 1);
    let axis = if axis < 0 {
        axis + s.len() as i64
    } else {
        axis
    } as usize;
    if axis > s.len() {
        return Err(NodeError::Invalid(format!(
            "axis {axis} past rank {}",
            s.len()
        )));
    }
    let shape = vec![Dim::product(&s[..axis]), Dim::product(&s[axis..])];
    reshape_to(imp, &ctx.name, x, shape)
}

/// An integer operand (opset 13's input form) that is neither an attribute nor a constant.
fn run_time_operand(imp: &Importer, ctx: &NodeCtx, attr: &str, input: usize) -> Option<ValueId> {
    if ctx.attr(attr).is_some() {
        return None;
    }
    ctx.opt_input(input)
        .filter(|&v| imp.const_ints(v).is_none())
}

fn squeeze(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let s = imp.g.ty(x).shape.clone();
    if let Some(axes) = run_time_operand(imp, ctx, "axes", 1) {
        let d = match ctx.node.op_type.as_str() {
            "Squeeze" => Dynamic::Squeeze,
            _ => Dynamic::Unsqueeze,
        };
        return dynamic(imp, ctx, d, vec![x, axes]);
    }
    let axes = ints_arg(imp, ctx, "axes", 1)?;
    let shape: Shape = if ctx.node.op_type == "Squeeze" {
        let axes = match axes {
            Some(a) => norm_axes(&a, s.len())?,
            None => {
                if s.iter().any(|d| !d.is_fixed()) {
                    return unsupported("Squeeze without axes on symbolic dimensions");
                }
                (0..s.len()).filter(|&i| s[i] == Dim::Fixed(1)).collect()
            }
        };
        s.iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, d)| d.clone())
            .collect()
    } else {
        let axes = axes.ok_or_else(|| NodeError::Invalid("Unsqueeze without axes".into()))?;
        let rank = s.len() + axes.len();
        let axes = norm_axes(&axes, rank)?;
        let mut it = s.iter();
        (0..rank)
            .map(|i| {
                if axes.contains(&i) {
                    Dim::Fixed(1)
                } else {
                    it.next().cloned().unwrap_or(Dim::Fixed(1))
                }
            })
            .collect()
    };
    reshape_to(imp, &ctx.name, x, shape)
}

fn transpose(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let rank = imp.g.ty(x).rank();
    let perm: Vec<usize> = match ctx.ints("perm") {
        Some(p) => norm_axes(&p, rank)?,
        None => (0..rank).rev().collect(),
    };
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(vec![x]);
    }
    imp.emit(&ctx.name, Op::Transpose(Transpose { perm }), vec![x])
}

fn concat(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let inputs: Vec<ValueId> = ctx.inputs.iter().flatten().copied().collect();
    let first = inputs
        .first()
        .ok_or_else(|| NodeError::Invalid("Concat of nothing".into()))?;
    let rank = imp.g.ty(*first).rank();
    let axis = norm_axis(ctx.int("axis", 0), rank)?;
    // Empty inputs (a common exporter artifact) contribute nothing.
    let inputs: Vec<ValueId> = inputs
        .iter()
        .copied()
        .filter(|&i| imp.g.ty(i).shape.get(axis) != Some(&Dim::Fixed(0)))
        .collect();
    if inputs.len() == 1 {
        return Ok(inputs);
    }
    if inputs.is_empty() {
        return Ok(vec![*first]);
    }
    imp.emit(
        &ctx.name,
        Op::Concat(crate::ir::ops::Concat { axis }),
        inputs,
    )
}

fn split(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let s = imp.g.ty(x).shape.clone();
    let axis = norm_axis(ctx.int("axis", 0), s.len())?;
    if let Some(sizes) = run_time_operand(imp, ctx, "split", 1) {
        return dynamic(imp, ctx, Dynamic::Split { axis }, vec![x, sizes]);
    }
    let n_out = ctx.node.output.len();
    let sizes: Vec<usize> = match ints_arg(imp, ctx, "split", 1)? {
        Some(v) => v.iter().map(|&x| x.max(0) as usize).collect(),
        None => {
            let Some(total) = s[axis].fixed() else {
                return unsupported("Split of a symbolic axis without sizes");
            };
            let parts = ctx.int("num_outputs", n_out as i64).max(1) as u64;
            let chunk = total.div_ceil(parts);
            (0..parts)
                .map(|i| chunk.min(total.saturating_sub(i * chunk)) as usize)
                .collect()
        }
    };
    imp.emit(&ctx.name, Op::Split(Split { axis, sizes }), vec![x])
}

fn slice(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let rank = imp.g.ty(x).rank();
    let (starts, ends, axes, steps) = if imp.opset < 10 {
        (ctx.ints("starts"), ctx.ints("ends"), ctx.ints("axes"), None)
    } else {
        let known = |i: usize| ctx.opt_input(i).map(|v| imp.const_ints(v));
        let operands = [known(1), known(2), known(3), known(4)];
        if operands.iter().any(|o| matches!(o, Some(None))) {
            return dynamic_slice(imp, ctx, x);
        }
        let [a, b, c, d] = operands.map(Option::flatten);
        (a, b, c, d)
    };
    let (starts, ends) = match (starts, ends) {
        (Some(s), Some(e)) if s.len() == e.len() => (s, e),
        _ => {
            return Err(NodeError::Invalid(
                "Slice needs starts and ends of equal length".into(),
            ))
        }
    };
    let axes = match axes {
        Some(a) => norm_axes(&a, rank)?,
        None => (0..starts.len()).collect(),
    };
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if axes.len() != starts.len() || steps.len() != starts.len() || steps.contains(&0) {
        return Err(NodeError::Invalid(
            "Slice axes/steps do not match starts".into(),
        ));
    }
    let shape = imp.g.ty(x).shape.clone();
    let axes: Vec<SliceAxis> = (0..starts.len())
        .map(|i| SliceAxis {
            axis: axes[i],
            start: starts[i],
            end: ends[i],
            step: steps[i],
        })
        // Whole-axis slices are no-ops.
        .filter(|a| {
            !(a.step == 1
                && a.start == 0
                && shape[a.axis].fixed().is_some_and(|n| a.end >= n as i64))
        })
        .collect();
    if axes.is_empty() {
        return Ok(vec![x]);
    }
    imp.emit(&ctx.name, Op::Slice(Slice { axes }), vec![x])
}

/// Slice with bounds computed at run time; absent axes and steps become constants.
fn dynamic_slice(imp: &mut Importer, ctx: &NodeCtx, x: ValueId) -> NodeResult<Vec<ValueId>> {
    let (starts, ends) = (ctx.input(1)?, ctx.input(2)?);
    let n = operand_len(imp, starts)?;
    let axes = match ctx.opt_input(3) {
        Some(a) => a,
        None => ints_const(imp, ctx, "axes", &(0..n as i64).collect::<Vec<_>>()),
    };
    let steps = match ctx.opt_input(4) {
        Some(s) => s,
        None => ints_const(imp, ctx, "steps", &vec![1; n]),
    };
    dynamic(imp, ctx, Dynamic::Slice, vec![x, starts, ends, axes, steps])
}

/// Pad with pads, value or axes computed at run time; absent ones become constants.
fn dynamic_pad(
    imp: &mut Importer,
    ctx: &NodeCtx,
    x: ValueId,
    mode: PadMode,
) -> NodeResult<Vec<ValueId>> {
    let ty = imp.g.ty(x).clone();
    let pads = ctx.input(1)?;
    let value = match ctx.opt_input(2) {
        Some(v) => v,
        None => {
            let zero = Tensor::from_f64s(ty.dtype, vec![], &[0.0]);
            imp.add_const(&format!("{}/value", ctx.name), zero)
        }
    };
    let axes = match ctx.opt_input(3) {
        Some(a) => a,
        None => ints_const(imp, ctx, "axes", &(0..ty.rank() as i64).collect::<Vec<_>>()),
    };
    dynamic(imp, ctx, Dynamic::Pad { mode }, vec![x, pads, value, axes])
}

fn pad(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let rank = imp.g.ty(x).rank();
    let mode = match ctx.string("mode", "constant").as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        m => return unsupported(format!("Pad mode '{m}'")),
    };
    if imp.opset >= 11 {
        let at_run_time = |i: usize| {
            ctx.opt_input(i)
                .is_some_and(|v| imp.g.constant(v).is_none())
        };
        if (1..=3).any(at_run_time) {
            return dynamic_pad(imp, ctx, x, mode);
        }
    }
    let pads = ints_arg(imp, ctx, "pads", 1)?
        .ok_or_else(|| NodeError::Invalid("Pad without pads".into()))?;
    let value = if imp.opset < 11 {
        ctx.float("value", 0.0) as f64
    } else {
        match ctx.opt_input(2).and_then(|v| imp.const_floats(v)) {
            None => 0.0,
            Some(f) if f.len() <= 1 => f.first().copied().unwrap_or(0.0),
            Some(_) => return Err(NodeError::Invalid("pad value is not a scalar".into())),
        }
    };
    let axes = match ctx.opt_input(3).and_then(|v| imp.const_ints(v)) {
        None => (0..rank).collect(),
        Some(a) => norm_axes(&a, rank)?,
    };
    let n = axes.len();
    if pads.len() != 2 * n {
        return Err(NodeError::Invalid(format!(
            "{} pads for {n} axes",
            pads.len()
        )));
    }
    let mut pairs = vec![(0i64, 0i64); rank];
    for (i, &a) in axes.iter().enumerate() {
        pairs[a] = (pads[i], pads[i + n]);
    }
    if pairs.iter().all(|&p| p == (0, 0)) {
        return Ok(vec![x]);
    }
    imp.emit(
        &ctx.name,
        Op::Pad(Pad {
            mode,
            pads: pairs,
            value,
        }),
        vec![x],
    )
}

fn tile(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let Some(r) = imp.const_ints(ctx.input(1)?) else {
        return dynamic(imp, ctx, Dynamic::Tile, vec![x, ctx.input(1)?]);
    };
    if r.iter().any(|&v| v < 0) {
        return Err(NodeError::Invalid("negative repeats".into()));
    }
    let repeats: Vec<usize> = r.iter().map(|&v| v as usize).collect();
    if repeats.iter().all(|&v| v == 1) {
        return Ok(vec![x]);
    }
    imp.emit(&ctx.name, Op::Tile(Tile { repeats }), vec![x])
}

fn expand(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let s = ctx.input(1)?;
    let shape = match imp.shape_entries(s).map(|e| entries_to_shape(imp, &e)) {
        Some(Ok(shape)) => shape,
        None | Some(Err(NodeError::Unsupported(_))) => {
            return dynamic(imp, ctx, Dynamic::Expand, vec![x, s])
        }
        Some(Err(e)) => return Err(e),
    };
    let out = crate::ir::ops::broadcast(&imp.g.ty(x).shape, &shape)?;
    if out == imp.g.ty(x).shape {
        return Ok(vec![x]);
    }
    imp.emit(&ctx.name, Op::Expand(Expand { shape }), vec![x])
}

fn shape_of(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let rank = imp.g.ty(x).rank() as i64;
    let clampi = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let start = clampi(ctx.int("start", 0));
    let end = clampi(ctx.int("end", rank)).max(start);
    imp.emit(&ctx.name, Op::ShapeOf(ShapeOf { start, end }), vec![x])
}

fn size(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    match crate::ir::ops::dim_product(&imp.g.ty(x).shape) {
        Some(n) => Ok(vec![imp.add_const(&ctx.name, Tensor::scalar_i64(n as i64))]),
        None => unsupported("Size of a tensor with symbolic dimensions"),
    }
}

fn constant_of_shape(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let value = match ctx.attr("value").and_then(|a| a.t.as_ref()) {
        Some(t) => {
            let t = super::super::tensor::tensor_from_proto(
                t,
                None,
                std::path::Path::new("."),
                &mut Default::default(),
            )?;
            t.reshaped(vec![])
        }
        None => Tensor::scalar_f32(0.0),
    };
    if value.len() != 1 {
        return Err(NodeError::Invalid(
            "ConstantOfShape value must have one element".into(),
        ));
    }
    imp.emit(
        &ctx.name,
        Op::ConstantOfShape(ConstantOfShape { value }),
        vec![ctx.input(0)?],
    )
}

fn constant(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let a = ctx
        .node
        .attribute
        .first()
        .ok_or_else(|| NodeError::Invalid("Constant without a value".into()))?;
    let t = match a.name.as_str() {
        "value" => {
            let t =
                a.t.as_ref()
                    .ok_or_else(|| NodeError::Invalid("Constant value is not a tensor".into()))?;
            if let Some(why) = crate::formats::onnx::unsupported_type(t.data_type) {
                return unsupported(why);
            }
            super::super::tensor::tensor_from_proto(
                t,
                None,
                std::path::Path::new("."),
                &mut Default::default(),
            )?
        }
        "value_float" => Tensor::scalar_f32(a.f),
        "value_floats" => Tensor::from_f32(vec![a.floats.len()], &a.floats),
        "value_int" => Tensor::scalar_i64(a.i),
        "value_ints" => Tensor::from_i64(vec![a.ints.len()], &a.ints),
        other => return unsupported(format!("Constant '{other}'")),
    };
    let name = ctx
        .node
        .output
        .first()
        .cloned()
        .unwrap_or_else(|| ctx.name.clone());
    Ok(vec![imp.add_const(&name, t)])
}

fn range(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    imp.emit(
        &ctx.name,
        Op::Range,
        vec![ctx.input(0)?, ctx.input(1)?, ctx.input(2)?],
    )
}

fn depth_space(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let block = ctx.int("blocksize", 0);
    if block <= 0 {
        return Err(NodeError::Invalid("blocksize must be positive".into()));
    }
    let block = block as usize;
    let op = if ctx.node.op_type == "DepthToSpace" {
        let mode = if ctx.string("mode", "DCR") == "CRD" {
            DepthToSpaceMode::Crd
        } else {
            DepthToSpaceMode::Dcr
        };
        Op::DepthToSpace(DepthToSpace {
            block,
            mode,
            layout: Layout::Nchw,
        })
    } else {
        Op::SpaceToDepth(SpaceToDepth {
            block,
            layout: Layout::Nchw,
        })
    };
    imp.emit(&ctx.name, op, vec![x])
}
