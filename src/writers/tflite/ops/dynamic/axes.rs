//! The members whose operand names axes (Squeeze, Unsqueeze, Slice, Pad): the axes are
//! normalized at run time and compared with every position (`axis_hits`), which builds the
//! full-rank shape, bounds or paddings the builtins take.

use super::super::super::plan::{Cx, Opts, TRef};
use super::{clamped_int32, fixed, input_dims, int32, len_of, op, temp, unknown};
use crate::ir::ops::PadMode;
use crate::ir::{DType, Dim};
use tract_tflite::tflite::{ActivationFunctionType as Act, BuiltinOperator as B};

/// `[n, rank]` booleans: row `i` marks the axis operand `at` (normalized for `rank`) names.
pub(super) fn axis_hits(cx: &mut Cx, at: usize, rank: usize) -> Result<TRef, String> {
    let n = len_of(cx, at)?;
    let axes = int32(cx, at)?;
    let r = cx.i32s("rank", vec![], &[rank as i32]);
    let norm = temp(cx, "axes_normalized", DType::I32, fixed(&[n]));
    let norm = op(cx, B::FLOOR_MOD, Opts::None, vec![axes, r], norm);
    let col_shape = cx.i32_vec("column", &[n as i32, 1]);
    let col = temp(cx, "axes_column", DType::I32, fixed(&[n, 1]));
    let col = op(
        cx,
        B::RESHAPE,
        Opts::Reshape(Some(vec![n as i32, 1])),
        vec![norm, col_shape],
        col,
    );
    let iota: Vec<i32> = (0..rank as i32).collect();
    let iota = cx.i32s("positions", vec![1, rank], &iota);
    let hits = temp(cx, "axis_hits", DType::Bool, fixed(&[n, rank]));
    Ok(op(cx, B::EQUAL, Opts::None, vec![col, iota], hits))
}

/// `[rank]` booleans: the positions some row of `hits` marks.
pub(super) fn any_hit(cx: &mut Cx, hits: TRef, rank: usize) -> TRef {
    let axis0 = cx.i32_vec("axis0", &[0]);
    let out = temp(cx, "marked", DType::Bool, fixed(&[rank]));
    let opts = Opts::Reducer { keep_dims: false };
    op(cx, B::REDUCE_ANY, opts, vec![hits, axis0], out)
}

/// RESHAPE of input 0 to `shape` into the node's output.
fn reshape_to(cx: &mut Cx, shape: TRef) -> Result<(), String> {
    let (x, y) = (cx.x(0)?, cx.out(0));
    let inputs = vec![Some(x), Some(shape)];
    cx.emit(B::RESHAPE, Opts::Reshape(None), inputs, vec![y]);
    Ok(())
}

/// The kept dims are the first `rank - n` positions in order among those not squeezed:
/// TOPK_V2 of `rank - i` (squeezed: -1) gives their indices in ascending order.
pub(super) fn squeeze(cx: &mut Cx) -> Result<(), String> {
    let x_ty = cx.ty(0)?.clone();
    let (rank, n) = (x_ty.rank(), len_of(cx, 1)?);
    let kept = rank.saturating_sub(n);
    if n == 0 || kept == 0 {
        // Nothing dropped (the IR's reading of empty axes), or everything: the shape is known.
        let dims = if n == 0 { x_ty.shape.clone() } else { vec![] };
        let shape = input_dims(cx, "shape", &dims)?;
        return reshape_to(cx, shape);
    }
    let hits = axis_hits(cx, 1, rank)?;
    let dropped = any_hit(cx, hits, rank);
    let down: Vec<i32> = (0..rank as i32).map(|i| rank as i32 - i).collect();
    let down = cx.i32_vec("order", &down);
    let minus = cx.i32s("minus_one", vec![], &[-1]);
    let keys = temp(cx, "keys", DType::I32, fixed(&[rank]));
    let keys = op(
        cx,
        B::SELECT_V2,
        Opts::None,
        vec![dropped, minus, down],
        keys,
    );
    let k = cx.i32s("kept", vec![], &[kept as i32]);
    let top = temp(cx, "top", DType::I32, fixed(&[kept]));
    let at = temp(cx, "kept_axes", DType::I32, fixed(&[kept]));
    cx.emit(
        B::TOPK_V2,
        Opts::None,
        vec![Some(keys), Some(k)],
        vec![top, at],
    );
    let dims = input_dims(cx, "input_dims", &x_ty.shape)?;
    let shape = temp(cx, "shape", DType::I32, fixed(&[kept]));
    let shape = op(
        cx,
        B::GATHER,
        Opts::Gather { axis: 0 },
        vec![dims, at],
        shape,
    );
    reshape_to(cx, shape)
}

/// Output dim `j` is 1 where inserted, else input dim `j - (inserted positions up to j)`.
pub(super) fn unsqueeze(cx: &mut Cx) -> Result<(), String> {
    let x_ty = cx.ty(0)?.clone();
    let rank = x_ty.rank();
    let out_rank = rank + len_of(cx, 1)?;
    if rank == 0 || rank == out_rank {
        let dims = if rank == 0 {
            vec![Dim::Fixed(1); out_rank]
        } else {
            x_ty.shape.clone()
        };
        let shape = input_dims(cx, "shape", &dims)?;
        return reshape_to(cx, shape);
    }
    let hits = axis_hits(cx, 1, out_rank)?;
    let inserted = any_hit(cx, hits, out_rank);
    let v = fixed(&[out_rank]);
    let count = temp(cx, "inserted_count", DType::I32, v.clone());
    let opts = Opts::Cast {
        from: DType::Bool,
        to: DType::I32,
    };
    let count = op(cx, B::CAST, opts, vec![inserted], count);
    let axis = cx.i32s("axis", vec![], &[0]);
    let before = temp(cx, "inserted_before", DType::I32, v.clone());
    let opts = Opts::Cumsum {
        exclusive: false,
        reverse: false,
    };
    let before = op(cx, B::CUMSUM, opts, vec![count, axis], before);
    let iota: Vec<i32> = (0..out_rank as i32).collect();
    let iota = cx.i32_vec("positions_out", &iota);
    let src = temp(cx, "source", DType::I32, v.clone());
    let src = op(cx, B::SUB, Opts::Arith(Act::NONE), vec![iota, before], src);
    // Inserted positions may point past the input's dims: clamp before gathering.
    let last = cx.i32s("last", vec![], &[rank as i32 - 1]);
    let zero = cx.i32s("zero", vec![], &[0]);
    let s1 = temp(cx, "source_below", DType::I32, v.clone());
    let s1 = op(cx, B::MINIMUM, Opts::None, vec![src, last], s1);
    let s2 = temp(cx, "source_within", DType::I32, v.clone());
    let s2 = op(cx, B::MAXIMUM, Opts::None, vec![s1, zero], s2);
    let dims = input_dims(cx, "input_dims", &x_ty.shape)?;
    let picked = temp(cx, "picked", DType::I32, v.clone());
    let picked = op(
        cx,
        B::GATHER,
        Opts::Gather { axis: 0 },
        vec![dims, s2],
        picked,
    );
    let one = cx.i32s("one", vec![], &[1]);
    let shape = temp(cx, "shape", DType::I32, v);
    let shape = op(
        cx,
        B::SELECT_V2,
        Opts::None,
        vec![inserted, one, picked],
        shape,
    );
    reshape_to(cx, shape)
}

/// A `[rank]` vector holding `values` (`[n]`) at the axes `hits` (`[n, rank]`) marks,
/// `default` elsewhere (`marked`: the positions any row marks).
fn scatter_axes(
    cx: &mut Cx,
    tag: &str,
    values: TRef,
    (hits, marked): (TRef, TRef),
    (n, rank): (usize, usize),
    default: i32,
) -> TRef {
    let col_shape = cx.i32_vec("column", &[n as i32, 1]);
    let col = temp(cx, &format!("{tag}_column"), DType::I32, fixed(&[n, 1]));
    let col = op(
        cx,
        B::RESHAPE,
        Opts::Reshape(Some(vec![n as i32, 1])),
        vec![values, col_shape],
        col,
    );
    let zero = cx.i32s("zero", vec![], &[0]);
    let spread = temp(cx, &format!("{tag}_spread"), DType::I32, fixed(&[n, rank]));
    let spread = op(cx, B::SELECT_V2, Opts::None, vec![hits, col, zero], spread);
    let axis0 = cx.i32_vec("axis0", &[0]);
    let summed = temp(cx, &format!("{tag}_placed"), DType::I32, fixed(&[rank]));
    let opts = Opts::Reducer { keep_dims: false };
    let summed = op(cx, B::SUM, opts, vec![spread, axis0], summed);
    let d = cx.i32_vec(&format!("{tag}_default"), &vec![default; rank]);
    let out = temp(cx, tag, DType::I32, fixed(&[rank]));
    op(cx, B::SELECT_V2, Opts::None, vec![marked, summed, d], out)
}

/// STRIDED_SLICE with full-rank begin/end/strides built at run time. TFLite's
/// `StartForAxis`/`StopForAxis` normalize and clamp as ONNX Slice does (negative indices
/// count from the end once; `[0, dim]` for positive steps, `[-1, dim - 1]` for negative ones),
/// so the ONNX values go in unchanged; unsliced axes get `0 .. i32::MAX` step 1.
pub(super) fn slice(cx: &mut Cx) -> Result<(), String> {
    let rank = cx.ty(0)?.rank();
    let n = len_of(cx, 1)?;
    let (begin, end, strides) = if n == 0 {
        (
            cx.i32_vec("begin", &vec![0; rank]),
            cx.i32_vec("end", &vec![i32::MAX; rank]),
            cx.i32_vec("strides", &vec![1; rank]),
        )
    } else {
        let hits = axis_hits(cx, 3, rank)?;
        let marked = any_hit(cx, hits, rank);
        let starts = clamped_int32(cx, 1)?;
        let ends = clamped_int32(cx, 2)?;
        let steps = clamped_int32(cx, 4)?;
        (
            scatter_axes(cx, "begin", starts, (hits, marked), (n, rank), 0),
            scatter_axes(cx, "end", ends, (hits, marked), (n, rank), i32::MAX),
            scatter_axes(cx, "strides", steps, (hits, marked), (n, rank), 1),
        )
    };
    let (x, y) = (cx.x(0)?, cx.out(0));
    let opts = Opts::StridedSlice {
        begin_mask: 0,
        end_mask: 0,
    };
    let inputs = vec![Some(x), Some(begin), Some(end), Some(strides)];
    cx.emit(B::STRIDED_SLICE, opts, inputs, vec![y]);
    Ok(())
}

/// PAD / PADV2 / MIRROR_PAD with the `[rank, 2]` paddings built at run time from ONNX's
/// `[begins..., ends...]` for `axes`.
pub(super) fn pad(cx: &mut Cx, mode: PadMode) -> Result<(), String> {
    let rank = cx.ty(0)?.rank();
    let n = len_of(cx, 3)?;
    let paddings = paddings(cx, n, rank)?;
    if matches!(mode, PadMode::Edge | PadMode::Wrap) {
        return gather_pad(cx, mode == PadMode::Wrap, paddings);
    }
    let x = cx.x(0)?;
    if n == 0 {
        return pad_with(cx, mode, x, paddings, cx.out(0)).map(|_| ());
    }
    // ONNX's negative pads crop, which PADV2/MIRROR_PAD refuse: pad by max(p, 0), then
    // STRIDED_SLICE away max(-p, 0) at each end.
    let zero = cx.i32s("zero", vec![], &[0]);
    let pos = temp(cx, "paddings_added", DType::I32, fixed(&[rank, 2]));
    let pos = op(cx, B::MAXIMUM, Opts::None, vec![paddings, zero], pos);
    let neg = temp(cx, "paddings_negated", DType::I32, fixed(&[rank, 2]));
    let neg = op(cx, B::NEG, Opts::None, vec![paddings], neg);
    let crop = temp(cx, "paddings_cropped", DType::I32, fixed(&[rank, 2]));
    let crop = op(cx, B::MAXIMUM, Opts::None, vec![neg, zero], crop);
    let dtype = cx.ty(0)?.dtype;
    let padded = temp(cx, "padded", dtype, unknown(rank));
    let padded = pad_with(cx, mode, x, pos, padded)?;
    let mut ends = [crop; 2];
    for (i, e) in ends.iter_mut().enumerate() {
        let at = cx.i32s(&format!("end{i}"), vec![], &[i as i32]);
        let t = temp(cx, &format!("crop{i}"), DType::I32, fixed(&[rank]));
        *e = op(cx, B::GATHER, Opts::Gather { axis: 1 }, vec![crop, at], t);
    }
    let dims = temp(cx, "padded_dims", DType::I32, fixed(&[rank]));
    let dims = op(cx, B::SHAPE, Opts::Shape, vec![padded], dims);
    let end = temp(cx, "kept_end", DType::I32, fixed(&[rank]));
    let end = op(cx, B::SUB, Opts::Arith(Act::NONE), vec![dims, ends[1]], end);
    let ones = cx.i32_vec("strides", &vec![1; rank]);
    let opts = Opts::StridedSlice {
        begin_mask: 0,
        end_mask: 0,
    };
    let y = cx.out(0);
    op(
        cx,
        B::STRIDED_SLICE,
        opts,
        vec![padded, ends[0], end, ones],
        y,
    );
    Ok(())
}

/// PADV2 (constant) or MIRROR_PAD (reflect) of `x` by `paddings` into `out`.
fn pad_with(
    cx: &mut Cx,
    mode: PadMode,
    x: TRef,
    paddings: TRef,
    out: TRef,
) -> Result<TRef, String> {
    Ok(match mode {
        PadMode::Reflect => {
            let opts = Opts::MirrorPad { reflect: true };
            op(cx, B::MIRROR_PAD, opts, vec![x, paddings], out)
        }
        _ => {
            let value = cx.x(2)?;
            op(cx, B::PADV2, Opts::None, vec![x, paddings, value], out)
        }
    })
}

/// The `[rank, 2]` paddings from ONNX's `[begins..., ends...]` (operand 1) for the `n` axes of
/// operand 3.
fn paddings(cx: &mut Cx, n: usize, rank: usize) -> Result<TRef, String> {
    Ok(if n == 0 {
        cx.i32s("paddings", vec![rank, 2], &vec![0; 2 * rank])
    } else {
        let hits = axis_hits(cx, 3, rank)?;
        let pads = int32(cx, 1)?;
        // [begins, ends] → [n, 2] pairs → [n, 1, 2] against hits [n, rank, 1] → sum over n.
        let two_n = cx.i32_vec("pairs_shape", &[2, n as i32]);
        let t = temp(cx, "pads_2n", DType::I32, fixed(&[2, n]));
        let t = op(
            cx,
            B::RESHAPE,
            Opts::Reshape(Some(vec![2, n as i32])),
            vec![pads, two_n],
            t,
        );
        let perm = cx.i32_vec("perm", &[1, 0]);
        let pairs = temp(cx, "pads_n2", DType::I32, fixed(&[n, 2]));
        let pairs = op(cx, B::TRANSPOSE, Opts::None, vec![t, perm], pairs);
        let s = cx.i32_vec("pairs_3d", &[n as i32, 1, 2]);
        let pairs3 = temp(cx, "pads_n12", DType::I32, fixed(&[n, 1, 2]));
        let pairs3 = op(
            cx,
            B::RESHAPE,
            Opts::Reshape(Some(vec![n as i32, 1, 2])),
            vec![pairs, s],
            pairs3,
        );
        let s = cx.i32_vec("hits_3d", &[n as i32, rank as i32, 1]);
        let hits3 = temp(cx, "hits_3d", DType::Bool, fixed(&[n, rank, 1]));
        let hits3 = op(
            cx,
            B::RESHAPE,
            Opts::Reshape(Some(vec![n as i32, rank as i32, 1])),
            vec![hits, s],
            hits3,
        );
        let zero = cx.i32s("zero", vec![], &[0]);
        let spread = temp(cx, "pads_spread", DType::I32, fixed(&[n, rank, 2]));
        let spread = op(
            cx,
            B::SELECT_V2,
            Opts::None,
            vec![hits3, pairs3, zero],
            spread,
        );
        let axis0 = cx.i32_vec("axis0", &[0]);
        let out = temp(cx, "paddings", DType::I32, fixed(&[rank, 2]));
        let opts = Opts::Reducer { keep_dims: false };
        op(cx, B::SUM, opts, vec![spread, axis0], out)
    })
}

/// Edge and wrap padding (MIRROR_PAD has neither): along each padded axis, GATHER at
/// `RANGE(-begin, dim + end)` clamped into `[0, dim - 1]` (edge) or taken modulo `dim` (wrap);
/// negative pads crop the same way. Only the axes a constant axes operand names are gathered
/// (all of them when it is computed too).
fn gather_pad(cx: &mut Cx, wrap: bool, paddings: TRef) -> Result<(), String> {
    let x_ty = cx.ty(0)?.clone();
    let rank = x_ty.rank();
    let named = cx.konst_in(3).and_then(|t| t.to_i64s());
    let mut axes = match named {
        Some(v) => crate::ir::ops::norm_axes(&v, rank)?,
        None => (0..rank).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    let mut x = cx.x(0)?;
    let Some(&final_axis) = axes.last() else {
        let shape = input_dims(cx, "shape", &x_ty.shape)?;
        return reshape_to(cx, shape);
    };
    let one = cx.i32s("one", vec![], &[1]);
    let zero = cx.i32s("zero", vec![], &[0]);
    let scalar = |cx: &mut Cx, tag: &str| temp(cx, tag, DType::I32, vec![]);
    for a in axes {
        let mut ends = [paddings; 2];
        for (i, e) in ends.iter_mut().enumerate() {
            let at = cx.i32_vec(&format!("at{a}_{i}"), &[a as i32, i as i32]);
            let t = scalar(cx, &format!("pad{a}_{i}"));
            *e = op(cx, B::GATHER_ND, Opts::None, vec![paddings, at], t);
        }
        let dim = input_dims(cx, &format!("dim{a}"), &x_ty.shape[a..=a])?;
        let s = cx.i32s(&format!("dim{a}_scalar_shape"), vec![0], &[]);
        let d = scalar(cx, &format!("dim{a}_scalar"));
        let dim = op(cx, B::RESHAPE, Opts::Reshape(None), vec![dim, s], d);
        let start = scalar(cx, &format!("start{a}"));
        let start = op(cx, B::NEG, Opts::None, vec![ends[0]], start);
        let limit = scalar(cx, &format!("limit{a}"));
        let limit = op(
            cx,
            B::ADD,
            Opts::Arith(Act::NONE),
            vec![dim, ends[1]],
            limit,
        );
        let v = vec![crate::ir::ops::unknown_dim()];
        let idx = temp(cx, &format!("from{a}"), DType::I32, v.clone());
        let idx = op(cx, B::RANGE, Opts::None, vec![start, limit, one], idx);
        let inside = temp(cx, &format!("source{a}"), DType::I32, v.clone());
        let inside = if wrap {
            op(cx, B::FLOOR_MOD, Opts::None, vec![idx, dim], inside)
        } else {
            let last = scalar(cx, &format!("last{a}"));
            let last = op(cx, B::SUB, Opts::Arith(Act::NONE), vec![dim, one], last);
            let low = temp(cx, &format!("source{a}_low"), DType::I32, v);
            let low = op(cx, B::MAXIMUM, Opts::None, vec![idx, zero], low);
            op(cx, B::MINIMUM, Opts::None, vec![low, last], inside)
        };
        let out = match a == final_axis {
            true => cx.out(0),
            false => temp(cx, &format!("padded{a}"), x_ty.dtype, unknown(rank)),
        };
        let opts = Opts::Gather { axis: a as i32 };
        x = op(cx, B::GATHER, opts, vec![x, inside], out);
    }
    Ok(())
}
