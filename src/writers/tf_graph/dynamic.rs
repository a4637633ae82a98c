//! `Op::Dynamic` members as the TF ops whose shape-like operand is a tensor input (the
//! tfjs-converter executors read it with `dataSync` when they run): Reshape (ONNX's 0 = copy
//! the input's dim through SelectV2 on the input's dims), BroadcastTo of BroadcastArgs(dims of x,
//! target) (ONNX Expand broadcasts both ways), Tile, Sum/Mean/Max/Min/Prod (Any/All for bool),
//! TopKV2 (Neg for the smallest, Transpose for an inner axis), Cumsum (axis made non-negative:
//! tfjs does not wrap it), SplitV, OneHot, Trilu (SelectV2 of a mask), and
//! Squeeze/Unsqueeze/Slice/Pad whose full-rank shape, bounds or paddings are computed from the
//! operands at run time (tfjs 4.22's StridedSlice canonicalizes begin/end as TF and ONNX do;
//! edge/wrap padding gathers). Integers are int32 in TF.js, so no operand needs a cast. The ops
//! see ONNX-layout tensors (they are not spatial), but for a resize to run-time sizes, laid out
//! NHWC like any resize (`resize.rs`). The rest is refused with the operand and why.

use super::emit::{a_bool, a_int, a_type, Gx};
use crate::ir::ops::{Dynamic, ReduceKind};
use crate::ir::{DType, Dim, Node};

mod axes;

pub fn emit(gx: &mut Gx, n: &Node, d: &Dynamic) -> Result<(), String> {
    let what = d.operand();
    let y = match d {
        Dynamic::Reshape { allowzero } => reshape(gx, n, *allowzero)?,
        Dynamic::Expand => {
            let x = gx.r(n.inputs[0])?;
            let t = gx.r(n.inputs[1])?;
            let dims = input_dims(gx, n, "input_dims", &gx.g.ty(n.inputs[0]).shape.clone())?;
            let s = gx.node("shape", "BroadcastArgs", vec![dims, t], vec![i32t()]);
            gx.node("", "BroadcastTo", vec![x, s], vec![t_of(gx, n)])
        }
        Dynamic::Tile => {
            let x = gx.r(n.inputs[0])?;
            let reps = gx.r(n.inputs[1])?;
            gx.node("", "Tile", vec![x, reps], vec![t_of(gx, n)])
        }
        Dynamic::Reduce {
            kind,
            keep_dims,
            noop_with_empty_axes,
        } => reduce(gx, n, *kind, *keep_dims, *noop_with_empty_axes)?,
        Dynamic::TopK { axis, largest, .. } => return topk(gx, n, *axis, *largest),
        Dynamic::CumSum { exclusive, reverse } => {
            let x = gx.r(n.inputs[0])?;
            let a = gx.r(n.inputs[1])?;
            let rank = gx.int("rank", gx.g.ty(n.inputs[0]).rank() as i64)?;
            let axis = gx.node("axis", "FloorMod", vec![a, rank], vec![i32t()]);
            gx.node(
                "",
                "Cumsum",
                vec![x, axis],
                vec![
                    t_of(gx, n),
                    ("exclusive", a_bool(*exclusive)),
                    ("reverse", a_bool(*reverse)),
                ],
            )
        }
        Dynamic::Split { axis } => {
            let x = gx.r(n.inputs[0])?;
            let sizes = gx.r(n.inputs[1])?;
            let axis = gx.int("axis", *axis as i64)?;
            let attrs = vec![
                t_of(gx, n),
                ("num_split", a_int(n.outputs.len() as i64)),
                ("Tlen", a_type(DType::I32)),
            ];
            let y = gx.node("", "SplitV", vec![x, sizes, axis], attrs);
            for (i, &o) in n.outputs.iter().enumerate() {
                let r = if i == 0 {
                    y.clone()
                } else {
                    format!("{y}:{i}")
                };
                gx.bind(o, r);
            }
            return Ok(());
        }
        Dynamic::Squeeze => axes::squeeze(gx, n)?,
        Dynamic::Unsqueeze => axes::unsqueeze(gx, n)?,
        Dynamic::Slice => axes::slice(gx, n)?,
        Dynamic::Pad { mode } => axes::pad(gx, n, *mode)?,
        Dynamic::Resize { resize, by_sizes } => {
            return super::resize::resize_to(gx, n, resize, *by_sizes)
        }
        Dynamic::Trilu { upper } => trilu(gx, n, *upper)?,
        Dynamic::OneHot { axis } => one_hot(gx, n, *axis)?,
        Dynamic::NonMaxSuppression { .. } => {
            return Err(format!(
                "{what} computed at run time: ONNX NonMaxSuppression (per batch and class) has \
                 no TF.js form"
            ))
        }
    };
    gx.bind(n.outputs[0], y);
    Ok(())
}

fn i32t() -> (&'static str, serde_json::Value) {
    ("T", a_type(DType::I32))
}

/// `T` of the node's first input.
fn t_of(gx: &Gx, n: &Node) -> (&'static str, serde_json::Value) {
    ("T", a_type(gx.g.ty(n.inputs[0]).dtype))
}

/// The length of the 1-D operand `i` (fixed: inference checks it).
fn len_of(gx: &Gx, n: &Node, i: usize) -> Result<usize, String> {
    let t = gx.g.ty(n.inputs[i]);
    match t.shape.first().and_then(Dim::fixed) {
        Some(len) if t.rank() == 1 => Ok(len as usize),
        _ => Err(format!(
            "operand #{i} must be 1-D of a fixed length, is {t}"
        )),
    }
}

/// `dims` (dims of input 0) as an int32 vector: a constant when fixed, else from its `Shape`.
fn input_dims(gx: &mut Gx, n: &Node, tag: &str, dims: &[Dim]) -> Result<String, String> {
    gx.dims(tag, dims, &[n.inputs[0]], false)
}

fn reshape_to(gx: &mut Gx, n: &Node, shape: String) -> Result<String, String> {
    let x = gx.r(n.inputs[0])?;
    let attrs = vec![t_of(gx, n), ("Tshape", a_type(DType::I32))];
    Ok(gx.node("", "Reshape", vec![x, shape], attrs))
}

fn reshape(gx: &mut Gx, n: &Node, allowzero: bool) -> Result<String, String> {
    let len = len_of(gx, n, 1)?;
    let mut shape = gx.r(n.inputs[1])?;
    if !allowzero {
        // ONNX: a 0 copies the input's dim at that position.
        let mut dims: Vec<Dim> =
            gx.g.ty(n.inputs[0])
                .shape
                .iter()
                .take(len)
                .cloned()
                .collect();
        dims.resize(len, Dim::Fixed(0));
        let input = input_dims(gx, n, "input_dims", &dims)?;
        let zero = gx.int("zero", 0)?;
        let is0 = gx.node("is_zero", "Equal", vec![shape.clone(), zero], vec![i32t()]);
        shape = gx.node("shape", "SelectV2", vec![is0, input, shape], vec![i32t()]);
    }
    reshape_to(gx, n, shape)
}

fn reduce(
    gx: &mut Gx,
    n: &Node,
    kind: ReduceKind,
    keep_dims: bool,
    noop: bool,
) -> Result<String, String> {
    let x_ty = gx.g.ty(n.inputs[0]).clone();
    let boolean = x_ty.dtype == DType::Bool;
    let op = match kind {
        ReduceKind::Mean if !boolean => "Mean",
        ReduceKind::Sum if !boolean => "Sum",
        ReduceKind::Max if boolean => "Any",
        ReduceKind::Min if boolean => "All",
        ReduceKind::Max => "Max",
        ReduceKind::Min => "Min",
        ReduceKind::Prod if !boolean => "Prod",
        ReduceKind::Mean | ReduceKind::Sum | ReduceKind::Prod => {
            return Err(format!("Reduce{kind:?} of booleans"))
        }
        ReduceKind::L1
        | ReduceKind::L2
        | ReduceKind::LogSum
        | ReduceKind::LogSumExp
        | ReduceKind::SumSquare => {
            return Err(format!(
                "Reduce{kind:?} with reduction axes computed at run time is lowered by \
                 legalization for float32 inputs only"
            ))
        }
    };
    let mut x = gx.r(n.inputs[0])?;
    // The operand's length is known: an empty one reduces every axis, or none (`noop`).
    let axes = match len_of(gx, n, 1)? {
        0 if noop => return Ok(gx.node("", "Identity", vec![x], vec![t_of(gx, n)])),
        0 => {
            let all: Vec<i64> = (0..x_ty.rank() as i64).collect();
            gx.ints("axes", &all)?
        }
        _ => gx.r(n.inputs[1])?,
    };
    if matches!(op, "Max" | "Min") && x_ty.shape.contains(&Dim::Fixed(0)) {
        x = pad_reduced_axes(gx, n, x, op == "Max")?;
    }
    let attrs = vec![
        t_of(gx, n),
        ("keep_dims", a_bool(keep_dims)),
        ("Tidx", a_type(DType::I32)),
    ];
    Ok(gx.node("", op, vec![x, axes], attrs))
}

/// ONNX reduces an empty set to the identity of max/min (-inf/+inf for floats, the type's
/// bounds for integers), where tfjs gives NaN: for an input with a zero dim, one identity
/// element is padded onto every reduced axis (it changes no other result).
fn pad_reduced_axes(gx: &mut Gx, n: &Node, x: String, max: bool) -> Result<String, String> {
    let x_ty = gx.g.ty(n.inputs[0]).clone();
    let rank = x_ty.rank();
    let paddings = match len_of(gx, n, 1)? {
        0 => {
            let all: Vec<i64> = (0..rank).flat_map(|_| [0, 1]).collect();
            gx.ints_shaped("paddings", &all, vec![rank, 2])?
        }
        _ => {
            let hits = axes::axis_hits(gx, n, 1, rank)?;
            let marked = axes::any_hit(gx, hits)?;
            let s = gx.ints("marked_column", &[rank as i64, 1])?;
            let bool_t = ("T", a_type(DType::Bool));
            let col = gx.node("marked_column", "Reshape", vec![marked, s], vec![bool_t]);
            let one_after = gx.ints_shaped("one_after", &[0, 1], vec![1, 2])?;
            let zero = gx.int("zero", 0)?;
            gx.node(
                "paddings",
                "SelectV2",
                vec![col, one_after, zero],
                vec![i32t()],
            )
        }
    };
    // TF.js holds every integer as int32 and every float as float32.
    let (dtype, value) = match x_ty.dtype.is_float() {
        true => (
            DType::F32,
            if max {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            },
        ),
        false => (
            DType::I32,
            if max {
                i32::MIN as f64
            } else {
                i32::MAX as f64
            },
        ),
    };
    let value = crate::ir::Tensor::from_f64s(dtype, vec![], &[value]);
    let value = gx.konst(&format!("{}/identity", gx.base), value)?;
    Ok(gx.node(
        "padded",
        "PadV2",
        vec![x, paddings, value],
        vec![t_of(gx, n)],
    ))
}

/// TopKV2 works along the last axis: another axis is swapped there and back (Transpose); the
/// smallest values are TopKV2 of the negated input.
fn topk(gx: &mut Gx, n: &Node, axis: usize, largest: bool) -> Result<(), String> {
    let x_ty = gx.g.ty(n.inputs[0]).clone();
    let rank = x_ty.rank();
    if !largest && !x_ty.dtype.is_float() {
        return Err(
            "k computed at run time: the smallest values are taken as TopKV2 of the \
                    negated input, for floats only"
                .into(),
        );
    }
    let last = axis + 1 == rank;
    let mut perm: Vec<i64> = (0..rank as i64).collect();
    perm.swap(axis, rank - 1);
    let perm = gx.ints("perm", &perm)?;
    let mut x = gx.r(n.inputs[0])?;
    let k = gx.r(n.inputs[1])?;
    if !last {
        x = gx.node(
            "moved",
            "Transpose",
            vec![x, perm.clone()],
            vec![t_of(gx, n)],
        );
    }
    if !largest {
        x = gx.node("negated", "Neg", vec![x], vec![t_of(gx, n)]);
    }
    let attrs = vec![t_of(gx, n), ("sorted", a_bool(true))];
    let y = gx.node("top", "TopKV2", vec![x, k], attrs);
    let (mut values, mut indices) = (y.clone(), format!("{y}:1"));
    if !largest {
        values = gx.node("top_values", "Neg", vec![values], vec![t_of(gx, n)]);
    }
    if !last {
        values = gx.node(
            "values",
            "Transpose",
            vec![values, perm.clone()],
            vec![t_of(gx, n)],
        );
        indices = gx.node("indices", "Transpose", vec![indices, perm], vec![i32t()]);
    }
    gx.bind(n.outputs[0], values);
    if let Some(&i) = n.outputs.get(1) {
        gx.bind(i, indices);
    }
    Ok(())
}

/// Trilu as SelectV2(mask, x, 0), the mask comparing the constant `j - i` of the fixed-size
/// matrix with k (upper: `j - i >= k`, lower: `j - i <= k`); MatrixBandPart cannot state a k
/// on the far side of the diagonal.
fn trilu(gx: &mut Gx, n: &Node, upper: bool) -> Result<String, String> {
    let x_ty = gx.g.ty(n.inputs[0]).clone();
    let matrix = match &x_ty.shape[..] {
        [.., r, c] => r.fixed().zip(c.fixed()),
        _ => None,
    };
    let Some((rows, cols)) = matrix.map(|(r, c)| (r as usize, c as usize)) else {
        return Err("Trilu k computed at run time: the last two dims must be fixed".into());
    };
    let offsets: Vec<i64> = (0..rows * cols)
        .map(|e| (e % cols) as i64 - (e / cols) as i64)
        .collect();
    let offsets = gx.ints_shaped("offsets", &offsets, vec![rows, cols])?;
    let k = gx.r(n.inputs[1])?;
    let op = if upper { "GreaterEqual" } else { "LessEqual" };
    let mask = gx.node("mask", op, vec![offsets, k], vec![i32t()]);
    let zero = crate::ir::Tensor::from_f64s(x_ty.dtype, vec![], &[0.0]);
    let zero = gx.konst(&format!("{}/zero", gx.base), zero)?;
    let x = gx.r(n.inputs[0])?;
    Ok(gx.node("", "SelectV2", vec![mask, x, zero], vec![t_of(gx, n)]))
}

/// OneHot with the depth read at run time. ONNX's negative indices (counting back from the
/// depth) are wrapped first; tfjs's `oneHot` ignores the `axis` attribute and appends the new
/// axis last, so a Transpose moves it where ONNX puts it.
fn one_hot(gx: &mut Gx, n: &Node, axis: i64) -> Result<String, String> {
    let g = gx.g;
    let idx_ty = g.ty(n.inputs[0]).clone();
    let out_rank = idx_ty.rank() + 1;
    let axis = crate::ir::ops::norm_axis(axis, out_rank)?;
    let to_int = |gx: &mut Gx, i: usize, tag: &str| -> Result<String, String> {
        let v = gx.r(n.inputs[i])?;
        let dt = g.ty(n.inputs[i]).dtype;
        Ok(match dt.is_float() {
            true => {
                let attrs = vec![("SrcT", a_type(dt)), ("DstT", a_type(DType::I32))];
                gx.node(tag, "Cast", vec![v], attrs)
            }
            false => v,
        })
    };
    let idx = to_int(gx, 0, "indices_int")?;
    let depth = to_int(gx, 1, "depth_int")?;
    let zero = gx.int("zero", 0)?;
    let neg = gx.node("negative", "Less", vec![idx.clone(), zero], vec![i32t()]);
    let up = gx.node(
        "wrapped",
        "AddV2",
        vec![idx.clone(), depth.clone()],
        vec![i32t()],
    );
    let idx = gx.node("indices", "SelectV2", vec![neg, up, idx], vec![i32t()]);
    let values = gx.r(n.inputs[2])?;
    let vt = g.ty(n.inputs[2]).dtype;
    let axis0 = gx.int("axis0", 0)?;
    let mut picked = Vec::with_capacity(2);
    for i in 0..2 {
        let at = gx.int(&format!("value{i}_at"), i)?;
        picked.push(gx.node(
            &format!("value{i}"),
            "GatherV2",
            vec![values.clone(), at, axis0.clone()],
            vec![("batch_dims", a_int(0)), ("Tparams", a_type(vt))],
        ));
    }
    let last = axis + 1 == out_rank;
    let attrs = vec![
        ("axis", a_int(-1)),
        ("T", a_type(vt)),
        ("TI", a_type(DType::I32)),
    ];
    let inputs = vec![idx, depth, picked[1].clone(), picked[0].clone()];
    let y = gx.node(if last { "" } else { "last" }, "OneHot", inputs, attrs);
    if last {
        return Ok(y);
    }
    let mut perm: Vec<i64> = (0..out_rank as i64 - 1).collect();
    perm.insert(axis, out_rank as i64 - 1);
    let perm = gx.ints("perm", &perm)?;
    Ok(gx.node("", "Transpose", vec![y, perm], vec![("T", a_type(vt))]))
}
