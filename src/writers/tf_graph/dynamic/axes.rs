//! The members whose operand names axes (Squeeze, Unsqueeze, Slice, Pad): the axes are
//! normalized at run time and compared with every position (`axis_hits`), which builds the
//! full-rank shape, bounds or paddings the ops take.

use super::super::emit::{a_bool, a_int, a_str, a_type, Gx};
use super::{i32t, input_dims, len_of, reshape_to, t_of};
use crate::ir::ops::PadMode;
use crate::ir::{DType, Dim, Node};

/// `[len, rank]` booleans: row `i` marks the axis operand `at` (normalized for `rank`) names.
pub(super) fn axis_hits(gx: &mut Gx, n: &Node, at: usize, rank: usize) -> Result<String, String> {
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
pub(super) fn any_hit(gx: &mut Gx, hits: String) -> Result<String, String> {
    let axis0 = gx.ints("axis0", &[0])?;
    let attrs = vec![("keep_dims", a_bool(false)), ("Tidx", a_type(DType::I32))];
    Ok(gx.node("marked", "Any", vec![hits, axis0], attrs))
}

/// The kept dims are the first `rank - len` positions in order among those not squeezed:
/// TopKV2 of `rank - i` (squeezed: -1) gives their indices in ascending order.
pub(super) fn squeeze(gx: &mut Gx, n: &Node) -> Result<String, String> {
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
pub(super) fn unsqueeze(gx: &mut Gx, n: &Node) -> Result<String, String> {
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
pub(super) fn slice(gx: &mut Gx, n: &Node) -> Result<String, String> {
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
pub(super) fn pad(gx: &mut Gx, n: &Node, mode: PadMode) -> Result<String, String> {
    let rank = gx.g.ty(n.inputs[0]).rank();
    let len = len_of(gx, n, 3)?;
    let paddings = paddings(gx, n, len, rank)?;
    if matches!(mode, PadMode::Edge | PadMode::Wrap) {
        return gather_pad(gx, n, mode == PadMode::Wrap, paddings);
    }
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

/// Edge and wrap padding (MirrorPad has neither): along each padded axis, GatherV2 at
/// `Range(-begin, dim + end)` clamped into `[0, dim - 1]` (edge) or taken modulo `dim` (wrap);
/// negative pads crop the same way. Only the axes a constant axes operand names are gathered
/// (all of them when it is computed too).
fn gather_pad(gx: &mut Gx, n: &Node, wrap: bool, paddings: String) -> Result<String, String> {
    let g = gx.g;
    let x_ty = g.ty(n.inputs[0]).clone();
    let rank = x_ty.rank();
    let named = g.constant(n.inputs[3]).and_then(|t| t.to_i64s());
    let mut axes = match named {
        Some(v) => crate::ir::ops::norm_axes(&v, rank)?,
        None => (0..rank).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    let mut x = gx.r(n.inputs[0])?;
    if axes.is_empty() {
        return Ok(gx.node("", "Identity", vec![x], vec![t_of(gx, n)]));
    }
    let dims = input_dims(gx, n, "input_dims", &x_ty.shape)?;
    let count = axes.len();
    for (j, a) in axes.into_iter().enumerate() {
        let inside = gather_positions(gx, (&paddings, &dims), a, wrap)?;
        let axis = gx.int(&format!("axis{a}"), a as i64)?;
        let tag = if j + 1 == count {
            String::new()
        } else {
            format!("padded{a}")
        };
        let attrs = vec![("batch_dims", a_int(0)), ("Tparams", a_type(x_ty.dtype))];
        x = gx.node(&tag, "GatherV2", vec![x, inside, axis], attrs);
    }
    Ok(x)
}

/// The positions of axis `a` the padded tensor takes: `Range(-begin, dim + end)` clamped into
/// `[0, dim - 1]` (edge) or modulo `dim` (wrap).
fn gather_positions(
    gx: &mut Gx,
    (paddings, dims): (&str, &str),
    a: usize,
    wrap: bool,
) -> Result<String, String> {
    let (paddings, dims) = (paddings.to_string(), dims.to_string());
    let one = gx.int("one", 1)?;
    let zero = gx.int("zero", 0)?;
    let axis0 = gx.int("axis0", 0)?;
    let mut ends = Vec::with_capacity(2);
    for i in 0..2 {
        let at = gx.ints(&format!("at{a}_{i}"), &[a as i64, i])?;
        let attrs = vec![("Tparams", a_type(DType::I32))];
        let e = gx.node(
            &format!("pad{a}_{i}"),
            "GatherNd",
            vec![paddings.clone(), at],
            attrs,
        );
        ends.push(e);
    }
    let at = gx.int(&format!("dim{a}_at"), a as i64)?;
    let dim = gx.node(
        &format!("dim{a}"),
        "GatherV2",
        vec![dims.clone(), at, axis0.clone()],
        vec![("batch_dims", a_int(0))],
    );
    let start = gx.node(
        &format!("start{a}"),
        "Neg",
        vec![ends[0].clone()],
        vec![i32t()],
    );
    let limit = gx.node(
        &format!("limit{a}"),
        "AddV2",
        vec![dim.clone(), ends[1].clone()],
        vec![i32t()],
    );
    let range = vec![start, limit, one.clone()];
    let idx = gx.node(
        &format!("from{a}"),
        "Range",
        range,
        vec![("Tidx", a_type(DType::I32))],
    );
    let inside = if wrap {
        gx.node(
            &format!("source{a}"),
            "FloorMod",
            vec![idx, dim],
            vec![i32t()],
        )
    } else {
        let last = gx.node(
            &format!("last{a}"),
            "Sub",
            vec![dim, one.clone()],
            vec![i32t()],
        );
        let low = gx.node(
            &format!("source{a}_low"),
            "Maximum",
            vec![idx, zero.clone()],
            vec![i32t()],
        );
        gx.node(
            &format!("source{a}"),
            "Minimum",
            vec![low, last],
            vec![i32t()],
        )
    };
    Ok(inside)
}
