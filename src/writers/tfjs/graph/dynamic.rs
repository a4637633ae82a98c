//! `Op::Dynamic` members as the TF ops whose shape-like operand is a tensor input (the
//! tfjs-converter executors read it with `dataSync` when they run): Reshape (ONNX's 0 = copy
//! the input's dim through SelectV2 on the input's dims), BroadcastTo of BroadcastArgs(dims of x,
//! target) (ONNX Expand broadcasts both ways), Tile, Sum/Mean/Max/Min/Prod (Any/All for bool),
//! TopKV2 (Neg for the smallest), Cumsum (axis made non-negative: tfjs does not wrap it),
//! SplitV, and Squeeze/Unsqueeze/Slice/Pad whose full-rank shape, bounds or paddings are
//! computed from the operands at run time (tfjs 4.22's StridedSlice canonicalizes begin/end as
//! TF and ONNX do). Integers are int32 in TF.js, so no operand needs a cast. The ops see
//! ONNX-layout tensors (they are not spatial). The rest is refused with the operand and why.

use super::emit::{a_bool, a_int, a_str, a_type, Gx};
use crate::ir::ops::{Dynamic, PadMode, ReduceKind};
use crate::ir::{DType, Dim, Node};

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
        Dynamic::Squeeze => squeeze(gx, n)?,
        Dynamic::Unsqueeze => unsqueeze(gx, n)?,
        Dynamic::Slice => slice(gx, n)?,
        Dynamic::Pad { mode } => pad(gx, n, *mode)?,
        Dynamic::Resize { .. } => {
            return Err(format!(
                "{what} computed at run time: ResizeBilinear/ResizeNearestNeighbor take the NHWC \
                 output size, and this op sees the ONNX layout"
            ))
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
            let hits = axis_hits(gx, n, 1, rank)?;
            let marked = any_hit(gx, hits)?;
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

/// `[len, rank]` booleans: row `i` marks the axis operand `at` (normalized for `rank`) names.
fn axis_hits(gx: &mut Gx, n: &Node, at: usize, rank: usize) -> Result<String, String> {
    let len = len_of(gx, n, at)? as i64;
    let axes = gx.r(n.inputs[at])?;
    let r = gx.int("rank", rank as i64)?;
    let norm = gx.node("axes_normalized", "FloorMod", vec![axes, r], vec![i32t()]);
    let col_shape = gx.ints("column", &[len, 1])?;
    let col = gx.node(
        "axes_column",
        "Reshape",
        vec![norm, col_shape],
        vec![i32t()],
    );
    let iota: Vec<i64> = (0..rank as i64).collect();
    let iota = gx.ints_shaped("positions", &iota, vec![1, rank])?;
    Ok(gx.node("axis_hits", "Equal", vec![col, iota], vec![i32t()]))
}

/// `[rank]` booleans: the positions some row of `hits` marks.
fn any_hit(gx: &mut Gx, hits: String) -> Result<String, String> {
    let axis0 = gx.ints("axis0", &[0])?;
    let attrs = vec![("keep_dims", a_bool(false)), ("Tidx", a_type(DType::I32))];
    Ok(gx.node("marked", "Any", vec![hits, axis0], attrs))
}

/// The kept dims are the first `rank - len` positions in order among those not squeezed:
/// TopKV2 of `rank - i` (squeezed: -1) gives their indices in ascending order.
fn squeeze(gx: &mut Gx, n: &Node) -> Result<String, String> {
    let x_ty = gx.g.ty(n.inputs[0]).clone();
    let (rank, len) = (x_ty.rank(), len_of(gx, n, 1)?);
    let kept = rank.saturating_sub(len);
    if len == 0 || kept == 0 {
        let dims = if len == 0 { x_ty.shape.clone() } else { vec![] };
        let shape = input_dims(gx, n, "shape", &dims)?;
        return reshape_to(gx, n, shape);
    }
    let hits = axis_hits(gx, n, 1, rank)?;
    let dropped = any_hit(gx, hits)?;
    let down: Vec<i64> = (0..rank as i64).map(|i| rank as i64 - i).collect();
    let down = gx.ints("order", &down)?;
    let minus = gx.int("minus_one", -1)?;
    let keys = gx.node("keys", "SelectV2", vec![dropped, minus, down], vec![i32t()]);
    let k = gx.int("kept", kept as i64)?;
    let top = gx.node(
        "kept_axes",
        "TopKV2",
        vec![keys, k],
        vec![i32t(), ("sorted", a_bool(true))],
    );
    let dims = input_dims(gx, n, "input_dims", &x_ty.shape)?;
    let axis0 = gx.int("axis0", 0)?;
    let shape = gx.node(
        "shape",
        "GatherV2",
        vec![dims, format!("{top}:1"), axis0],
        vec![("batch_dims", a_int(0))],
    );
    reshape_to(gx, n, shape)
}

/// Output dim `j` is 1 where inserted, else input dim `j - (inserted positions up to j)`.
fn unsqueeze(gx: &mut Gx, n: &Node) -> Result<String, String> {
    let x_ty = gx.g.ty(n.inputs[0]).clone();
    let rank = x_ty.rank();
    let out_rank = rank + len_of(gx, n, 1)?;
    if rank == 0 || rank == out_rank {
        let dims = match rank {
            0 => vec![Dim::Fixed(1); out_rank],
            _ => x_ty.shape.clone(),
        };
        let shape = input_dims(gx, n, "shape", &dims)?;
        return reshape_to(gx, n, shape);
    }
    let hits = axis_hits(gx, n, 1, out_rank)?;
    let inserted = any_hit(gx, hits)?;
    let cast = vec![("SrcT", a_type(DType::Bool)), ("DstT", a_type(DType::I32))];
    let count = gx.node("inserted_count", "Cast", vec![inserted.clone()], cast);
    let axis0 = gx.int("axis0", 0)?;
    let attrs = vec![
        i32t(),
        ("exclusive", a_bool(false)),
        ("reverse", a_bool(false)),
    ];
    let before = gx.node(
        "inserted_before",
        "Cumsum",
        vec![count, axis0.clone()],
        attrs,
    );
    let iota: Vec<i64> = (0..out_rank as i64).collect();
    let iota = gx.ints("positions_out", &iota)?;
    let src = gx.node("source", "Sub", vec![iota, before], vec![i32t()]);
    // Inserted positions may point past the input's dims: clamp before gathering.
    let last = gx.int("last", rank as i64 - 1)?;
    let zero = gx.int("zero", 0)?;
    let s1 = gx.node("source_below", "Minimum", vec![src, last], vec![i32t()]);
    let s2 = gx.node("source_within", "Maximum", vec![s1, zero], vec![i32t()]);
    let dims = input_dims(gx, n, "input_dims", &x_ty.shape)?;
    let picked = gx.node(
        "picked",
        "GatherV2",
        vec![dims, s2, axis0],
        vec![("batch_dims", a_int(0))],
    );
    let one = gx.int("one", 1)?;
    let shape = gx.node(
        "shape",
        "SelectV2",
        vec![inserted, one, picked],
        vec![i32t()],
    );
    reshape_to(gx, n, shape)
}

/// A `[rank]` vector holding `values` (`[len]`) at the axes `hits` (`[len, rank]`) marks,
/// `default` elsewhere (`marked`: the positions any row marks).
fn scatter_axes(
    gx: &mut Gx,
    tag: &str,
    values: String,
    (hits, marked): (&str, &str),
    (len, rank): (usize, usize),
    default: i64,
) -> Result<String, String> {
    let col_shape = gx.ints("column", &[len as i64, 1])?;
    let col = gx.node(
        &format!("{tag}_column"),
        "Reshape",
        vec![values, col_shape],
        vec![i32t()],
    );
    let zero = gx.int("zero", 0)?;
    let spread = gx.node(
        &format!("{tag}_spread"),
        "SelectV2",
        vec![hits.to_string(), col, zero],
        vec![i32t()],
    );
    let axis0 = gx.ints("axis0", &[0])?;
    let attrs = vec![
        i32t(),
        ("keep_dims", a_bool(false)),
        ("Tidx", a_type(DType::I32)),
    ];
    let summed = gx.node(&format!("{tag}_placed"), "Sum", vec![spread, axis0], attrs);
    let d = gx.ints(&format!("{tag}_default"), &vec![default; rank])?;
    Ok(gx.node(
        tag,
        "SelectV2",
        vec![marked.to_string(), summed, d],
        vec![i32t()],
    ))
}

/// StridedSlice with full-rank begin/end/strides built at run time; TF's canonicalization
/// (negative indices count from the end once, then `[0, dim]` / `[-1, dim - 1]` clamping by
/// the step's sign) is ONNX Slice's, so the ONNX values go in unchanged.
fn slice(gx: &mut Gx, n: &Node) -> Result<String, String> {
    let rank = gx.g.ty(n.inputs[0]).rank();
    let len = len_of(gx, n, 1)?;
    let (begin, end, strides) = if len == 0 {
        (
            gx.ints("begin", &vec![0; rank])?,
            gx.ints("end", &vec![i32::MAX as i64; rank])?,
            gx.ints("strides", &vec![1; rank])?,
        )
    } else {
        let hits = axis_hits(gx, n, 3, rank)?;
        let marked = any_hit(gx, hits.clone())?;
        let at = (hits.as_str(), marked.as_str());
        let (starts, ends, steps) = (gx.r(n.inputs[1])?, gx.r(n.inputs[2])?, gx.r(n.inputs[4])?);
        (
            scatter_axes(gx, "begin", starts, at, (len, rank), 0)?,
            scatter_axes(gx, "end", ends, at, (len, rank), i32::MAX as i64)?,
            scatter_axes(gx, "strides", steps, at, (len, rank), 1)?,
        )
    };
    let x = gx.r(n.inputs[0])?;
    let attrs = vec![
        t_of(gx, n),
        ("Index", a_type(DType::I32)),
        ("begin_mask", a_int(0)),
        ("end_mask", a_int(0)),
        ("ellipsis_mask", a_int(0)),
        ("new_axis_mask", a_int(0)),
        ("shrink_axis_mask", a_int(0)),
    ];
    Ok(gx.node("", "StridedSlice", vec![x, begin, end, strides], attrs))
}

/// Pad / PadV2 / MirrorPad with the `[rank, 2]` paddings built at run time from ONNX's
/// `[begins..., ends...]` for `axes`.
fn pad(gx: &mut Gx, n: &Node, mode: PadMode) -> Result<String, String> {
    match mode {
        PadMode::Constant | PadMode::Reflect => {}
        PadMode::Edge => {
            return Err(
                "pads computed at run time: edge padding is MirrorPad only for pads of \
                        at most one, which cannot be checked here"
                    .into(),
            )
        }
        PadMode::Wrap => {
            return Err("pads computed at run time: wrap padding has no TF.js op".into())
        }
    }
    let rank = gx.g.ty(n.inputs[0]).rank();
    let len = len_of(gx, n, 3)?;
    let paddings = paddings(gx, n, len, rank)?;
    let x = gx.r(n.inputs[0])?;
    if len == 0 {
        return pad_with(gx, n, mode, "", x, paddings);
    }
    // ONNX's negative pads crop; tfjs's pad gets them wrong (it shifts the kept values) and
    // mirrorPad refuses them: pad by max(p, 0), then StridedSlice away max(-p, 0) at each end.
    let zero = gx.int("zero", 0)?;
    let pos = gx.node(
        "paddings_added",
        "Maximum",
        vec![paddings.clone(), zero.clone()],
        vec![i32t()],
    );
    let neg = gx.node("paddings_negated", "Neg", vec![paddings], vec![i32t()]);
    let crop = gx.node("paddings_cropped", "Maximum", vec![neg, zero], vec![i32t()]);
    let padded = pad_with(gx, n, mode, "padded", x, pos)?;
    let axis1 = gx.int("axis1", 1)?;
    let mut ends = Vec::with_capacity(2);
    for i in 0..2 {
        let at = gx.int(&format!("end{i}"), i)?;
        ends.push(gx.node(
            &format!("crop{i}"),
            "GatherV2",
            vec![crop.clone(), at, axis1.clone()],
            vec![("batch_dims", a_int(0)), ("Tparams", a_type(DType::I32))],
        ));
    }
    let attrs = vec![t_of(gx, n), ("out_type", a_type(DType::I32))];
    let dims = gx.node("padded_dims", "Shape", vec![padded.clone()], attrs);
    let end = gx.node("kept_end", "Sub", vec![dims, ends[1].clone()], vec![i32t()]);
    let ones = gx.ints("strides", &vec![1; rank])?;
    let attrs = vec![
        t_of(gx, n),
        ("Index", a_type(DType::I32)),
        ("begin_mask", a_int(0)),
        ("end_mask", a_int(0)),
        ("ellipsis_mask", a_int(0)),
        ("new_axis_mask", a_int(0)),
        ("shrink_axis_mask", a_int(0)),
    ];
    let inputs = vec![padded, ends[0].clone(), end, ones];
    Ok(gx.node("", "StridedSlice", inputs, attrs))
}

/// PadV2 (constant) or MirrorPad (reflect) of `x` by `paddings`.
fn pad_with(
    gx: &mut Gx,
    n: &Node,
    mode: PadMode,
    tag: &str,
    x: String,
    paddings: String,
) -> Result<String, String> {
    Ok(match mode {
        PadMode::Reflect => gx.node(
            tag,
            "MirrorPad",
            vec![x, paddings],
            vec![t_of(gx, n), ("mode", a_str("REFLECT"))],
        ),
        _ => {
            let value = gx.r(n.inputs[2])?;
            gx.node(tag, "PadV2", vec![x, paddings, value], vec![t_of(gx, n)])
        }
    })
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
    let attrs = vec![("axis", a_int(-1)), ("T", a_type(vt))];
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

/// The `[rank, 2]` paddings from ONNX's `[begins..., ends...]` (operand 1) for the `len` axes
/// of operand 3.
fn paddings(gx: &mut Gx, n: &Node, len: usize, rank: usize) -> Result<String, String> {
    Ok(if len == 0 {
        gx.ints_shaped("paddings", &vec![0; 2 * rank], vec![rank, 2])?
    } else {
        let (l, r) = (len as i64, rank as i64);
        let hits = axis_hits(gx, n, 3, rank)?;
        let pads = gx.r(n.inputs[1])?;
        // [begins, ends] → [len, 2] pairs → [len, 1, 2] against hits [len, rank, 1] → sum.
        let s = gx.ints("pads_2n", &[2, l])?;
        let t = gx.node("pads_2n", "Reshape", vec![pads, s], vec![i32t()]);
        let perm = gx.ints("perm", &[1, 0])?;
        let pairs = gx.node("pads_n2", "Transpose", vec![t, perm], vec![i32t()]);
        let s = gx.ints("pads_n12", &[l, 1, 2])?;
        let pairs = gx.node("pads_n12", "Reshape", vec![pairs, s], vec![i32t()]);
        let s = gx.ints("hits_3d", &[l, r, 1])?;
        let hits = gx.node(
            "hits_3d",
            "Reshape",
            vec![hits, s],
            vec![("T", a_type(DType::Bool))],
        );
        let zero = gx.int("zero", 0)?;
        let spread = gx.node(
            "pads_spread",
            "SelectV2",
            vec![hits, pairs, zero],
            vec![i32t()],
        );
        let axis0 = gx.ints("axis0", &[0])?;
        let attrs = vec![
            i32t(),
            ("keep_dims", a_bool(false)),
            ("Tidx", a_type(DType::I32)),
        ];
        gx.node("paddings", "Sum", vec![spread, axis0], attrs)
    })
}
