//! ONNX Resize (opsets 10–19) and Upsample: modes and coordinate transforms map onto the IR's
//! Resize; `scales`/`sizes` known at import time give a static op, ones computed at run time a
//! `Dynamic::Resize`. `axes` (opset 18) names the axes the operands cover — the others keep
//! their size — and `keep_aspect_ratio_policy` `not_larger`/`not_smaller` scales those axes by
//! the smallest/largest of the asked ratios, `sizes` becoming `round(scale · in)`; both are
//! written as full-rank operands (shape arithmetic that folds when everything is known).

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult, ShapeEntry};
use super::build::Build;
use super::{dynamic, Handler};
use crate::ir::ops::{
    norm_axis, BinaryOp, CoordTransform, Dynamic, NearestRounding, ReduceKind, Resize, ResizeMode,
    ShapeOf, UnaryOp,
};
use crate::ir::{DType, Dim, Layout, Op, Tensor, ValueId};
use crate::readers::builder::entries_to_shape;

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Resize" | "Upsample" => resize,
        _ => return None,
    })
}

fn resize(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let upsample = ctx.node.op_type == "Upsample";
    let mode = match ctx.string("mode", "nearest").as_str() {
        "nearest" => ResizeMode::Nearest,
        "linear" | "bilinear" => ResizeMode::Linear,
        "cubic" => ResizeMode::Cubic,
        m => return unsupported(format!("resize mode '{m}'")),
    };
    let coord = if upsample || imp.opset < 11 {
        CoordTransform::Asymmetric
    } else {
        match ctx
            .string("coordinate_transformation_mode", "half_pixel")
            .as_str()
        {
            "half_pixel" => CoordTransform::HalfPixel,
            "half_pixel_symmetric" => CoordTransform::HalfPixelSymmetric,
            "pytorch_half_pixel" => CoordTransform::PytorchHalfPixel,
            "align_corners" => CoordTransform::AlignCorners,
            "asymmetric" => CoordTransform::Asymmetric,
            "tf_crop_and_resize" => return unsupported("tf_crop_and_resize"),
            m => return unsupported(format!("coordinate_transformation_mode '{m}'")),
        }
    };
    let nearest = if upsample || imp.opset < 11 {
        NearestRounding::Floor
    } else {
        match ctx.string("nearest_mode", "round_prefer_floor").as_str() {
            "round_prefer_ceil" => NearestRounding::RoundPreferCeil,
            "floor" => NearestRounding::Floor,
            "ceil" => NearestRounding::Ceil,
            _ => NearestRounding::RoundPreferFloor,
        }
    };
    if ctx.int("antialias", 0) != 0 {
        return unsupported("Resize with antialias");
    }
    // Inputs: Upsample(X, scales); Resize-10(X, scales); Resize-11+(X, roi, scales, sizes).
    let (scales_in, sizes_in) = if upsample || imp.opset < 11 {
        (ctx.opt_input(1), None)
    } else {
        (ctx.opt_input(2), ctx.opt_input(3))
    };
    // An empty tensor stands for an absent input (Resize-13 passes scales as `[]` beside sizes).
    let given =
        |v: Option<ValueId>| v.filter(|&v| imp.g.ty(v).shape.first() != Some(&Dim::Fixed(0)));
    let (scales_in, sizes_in) = full_rank(imp, ctx, x, given(scales_in), given(sizes_in))?;
    // Tracked entries with an unknown among them are as good as computed at run time.
    let at_run_time = |v: Option<ValueId>| {
        v.filter(|&v| {
            imp.shape_entries(v)
                .is_none_or(|e| e.contains(&ShapeEntry::Unknown))
                && imp.g.constant(v).is_none()
        })
    };
    let run_time = match (at_run_time(sizes_in), at_run_time(scales_in)) {
        (Some(v), _) => Some((v, true)),
        (None, Some(v)) if sizes_in.is_none() => Some((v, false)),
        _ => None,
    };
    let mut scales: Vec<f32> = match scales_in.filter(|_| run_time.is_none()) {
        Some(s) => imp
            .const_floats(s)
            .ok_or_else(|| NodeError::Unsupported("scales computed at run time".into()))?
            .iter()
            .map(|&v| v as f32)
            .collect(),
        None if upsample => ctx
            .attr("scales")
            .map(|a| a.floats.clone())
            .unwrap_or_default(),
        None => vec![],
    };
    let sizes = match sizes_in.filter(|_| run_time.is_none()) {
        Some(s) => {
            let e = imp
                .shape_entries(s)
                .ok_or_else(|| NodeError::Unsupported("sizes computed at run time".into()))?;
            if e.is_empty() {
                None
            } else {
                Some(entries_to_shape(imp, &e)?)
            }
        }
        None => None,
    };
    if sizes.is_none() && scales.is_empty() && run_time.is_none() {
        return Err(NodeError::Invalid("Resize needs scales or sizes".into()));
    }
    if sizes.is_some() {
        scales.clear();
    }
    let r = Resize {
        mode,
        coord,
        nearest,
        cubic_coeff_a: ctx.float("cubic_coeff_a", -0.75),
        exclude_outside: ctx.int("exclude_outside", 0) == 1,
        extrapolation_value: ctx.float("extrapolation_value", 0.0),
        layout: Layout::Nchw,
        scales,
        sizes,
    };
    if let Some((operand, by_sizes)) = run_time {
        let d = Dynamic::Resize {
            resize: r,
            by_sizes,
        };
        return dynamic(imp, ctx, d, vec![x, operand]);
    }
    imp.emit(&ctx.name, Op::Resize(r), vec![x])
}

/// The `scales`/`sizes` operand over every axis when `axes` names some of them or a
/// `keep_aspect_ratio_policy` adjusts the sizes; unchanged otherwise.
fn full_rank(
    imp: &mut Importer,
    ctx: &NodeCtx,
    x: ValueId,
    scales: Option<ValueId>,
    sizes: Option<ValueId>,
) -> NodeResult<(Option<ValueId>, Option<ValueId>)> {
    let rank = imp.g.ty(x).rank();
    let axes: Vec<usize> = match ctx.ints("axes") {
        Some(a) => a
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    let policy = ctx.string("keep_aspect_ratio_policy", "stretch");
    let keep = match policy.as_str() {
        "stretch" => None,
        "not_larger" => Some(ReduceKind::Min),
        "not_smaller" => Some(ReduceKind::Max),
        p => {
            return Err(NodeError::Invalid(format!(
                "keep_aspect_ratio_policy '{p}'"
            )))
        }
    };
    let all: Vec<usize> = (0..rank).collect();
    if axes == all && (keep.is_none() || sizes.is_none()) {
        return Ok((scales, sizes));
    }
    let mut b = Build::new(imp, &ctx.name);
    let shape = Op::ShapeOf(ShapeOf {
        start: 0,
        end: rank,
    });
    let shape = b.op("shape", shape, vec![x])?;
    // Piece `i` of the full operand: entry `j` of the given one for `axes[j] == i`, else `other(i)`.
    let pieces = |b: &mut Build,
                  given: ValueId,
                  other: &dyn Fn(&mut Build, usize) -> NodeResult<ValueId>| {
        let mut parts = vec![];
        for i in 0..rank {
            parts.push(match axes.iter().position(|&a| a == i) {
                Some(j) => b.slice(given, 0, j as i64, j as i64 + 1)?,
                None => other(b, i)?,
            });
        }
        b.concat(parts, 0)
    };
    if let Some(s) = sizes {
        let mut s = b.cast(s, DType::I64)?;
        if let Some(kind) = keep {
            s = keep_aspect(&mut b, s, shape, &axes, kind)?;
        }
        let full = pieces(&mut b, s, &|b, i| b.slice(shape, 0, i as i64, i as i64 + 1))?;
        return Ok((None, Some(full)));
    }
    let Some(sc) = scales else {
        return Ok((None, None));
    };
    let dt = b.imp.g.ty(sc).dtype;
    let full = pieces(&mut b, sc, &|b, _| {
        Ok(b.constant("one", Tensor::from_f64s(dt, vec![1], &[1.0])))
    })?;
    Ok((Some(full), None))
}

/// `round(scale · in)` on `axes`, `scale` the min (`not_larger`) or max (`not_smaller`) of the
/// asked `sizes / in` ratios, rounding halves up as the reference does.
fn keep_aspect(
    b: &mut Build,
    sizes: ValueId,
    shape: ValueId,
    axes: &[usize],
    kind: ReduceKind,
) -> NodeResult<ValueId> {
    let idx: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
    let idx = b.constant("axes", Tensor::from_i64s(DType::I64, vec![idx.len()], &idx));
    let gather = Op::Gather(crate::ir::ops::Gather { axis: 0 });
    let input = b.op("in_sizes", gather, vec![shape, idx])?;
    let input = b.cast(input, DType::F32)?;
    let asked = b.cast(sizes, DType::F32)?;
    let ratios = b.bin(BinaryOp::Div, asked, input)?;
    let scale = b.reduce(kind, ratios, vec![0], true)?;
    let scaled = b.bin(BinaryOp::Mul, input, scale)?;
    let half = b.scalar("half", DType::F32, 0.5);
    let scaled = b.bin(BinaryOp::Add, scaled, half)?;
    let rounded = b.un(UnaryOp::Floor, scaled)?;
    b.cast(rounded, DType::I64)
}
