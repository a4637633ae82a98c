//! `Op::Dynamic` members as builtins that read their shape-like operand from a tensor: RESHAPE
//! with a shape input (ONNX's 0 = copy the input's dim through SELECT_V2 on the input's dims),
//! BROADCAST_TO of BROADCAST_ARGS(dims of x, target) (ONNX Expand broadcasts both ways), TILE,
//! SUM/MEAN/REDUCE_MAX/REDUCE_MIN/REDUCE_PROD (REDUCE_ANY/REDUCE_ALL for bool) with an axis
//! tensor, TOPK_V2 (+NEG for the smallest, TRANSPOSE for an inner axis, CAST of the int32
//! indices), CUMSUM, SPLIT_V, ONE_HOT, Trilu (SELECT_V2 of a mask), and (`axes.rs`)
//! Squeeze/Unsqueeze and Slice/Pad whose full-rank shape, bounds or paddings are computed from
//! the operands at run time. TFLite wants int32 shapes, axes and counts: int64 operands are
//! CAST (slice bounds first clamped into int32, where TFLite's own clamping keeps ONNX's
//! meaning). The ops see ONNX-layout tensors — they are not spatial and no transpose sinks
//! through them — but for a resize to run-time sizes, which is laid out NHWC like any resize
//! (its sizes permuted with it) and becomes RESIZE_* with a size tensor. The rest is refused
//! with the operand and the reason.

use super::super::plan::{Cx, Opts, TRef};
use crate::ir::ops::{Dynamic, ReduceKind, Resize};
use crate::ir::{DType, Dim, Layout, Tensor, TensorType};
use tract_tflite::tflite::{ActivationFunctionType as Act, BuiltinOperator as B};

mod axes;

pub fn dynamic(cx: &mut Cx, d: &Dynamic) -> Result<(), String> {
    let what = d.operand();
    kernel_has_type(cx, d)?;
    match d {
        Dynamic::Reshape { allowzero } => reshape(cx, *allowzero),
        Dynamic::Expand => expand(cx),
        Dynamic::Tile => {
            let reps = int32(cx, 1)?;
            let (x, y) = (cx.x(0)?, cx.out(0));
            cx.emit(B::TILE, Opts::None, vec![Some(x), Some(reps)], vec![y]);
            Ok(())
        }
        Dynamic::Reduce {
            kind,
            keep_dims,
            noop_with_empty_axes,
        } => reduce(cx, *kind, *keep_dims, *noop_with_empty_axes),
        Dynamic::TopK {
            axis,
            largest,
            sorted: _,
        } => topk(cx, *axis, *largest),
        Dynamic::CumSum { exclusive, reverse } => {
            let axis = int32(cx, 1)?;
            let axis = scalar(cx, axis)?;
            let (x, y) = (cx.x(0)?, cx.out(0));
            let opts = Opts::Cumsum {
                exclusive: *exclusive,
                reverse: *reverse,
            };
            cx.emit(B::CUMSUM, opts, vec![Some(x), Some(axis)], vec![y]);
            Ok(())
        }
        Dynamic::Split { axis } => {
            let sizes = int32(cx, 1)?;
            let axis = cx.i32s("axis", vec![], &[*axis as i32]);
            let outs: Vec<_> = (0..cx.node.outputs.len()).map(|i| cx.out(i)).collect();
            let n = outs.len() as i32;
            let x = cx.x(0)?;
            let inputs = vec![Some(x), Some(sizes), Some(axis)];
            cx.emit(B::SPLIT_V, Opts::SplitV(n), inputs, outs);
            Ok(())
        }
        Dynamic::Squeeze => axes::squeeze(cx),
        Dynamic::Unsqueeze => axes::unsqueeze(cx),
        Dynamic::Slice => axes::slice(cx),
        Dynamic::Pad { mode } => axes::pad(cx, *mode),
        Dynamic::Resize { resize, by_sizes } => resize_to(cx, resize, *by_sizes, what),
        Dynamic::Trilu { upper } => trilu(cx, *upper),
        Dynamic::OneHot { axis } => one_hot(cx, *axis, None),
        Dynamic::NonMaxSuppression { .. } => Err(format!(
            "{what} computed at run time: NON_MAX_SUPPRESSION_V5 has a different output form"
        )),
    }
}

/// A resize to an output size computed at run time: RESIZE_* with the (NHWC) sizes' H and W
/// entries as its int32 size tensor. The batch and channel entries are taken to keep their sizes,
/// as any resize TFLite runs does. Scales are refused: the output size `⌊in·scale⌋` need not give
/// back the scale ONNX maps coordinates by.
fn resize_to(cx: &mut Cx, r: &Resize, by_sizes: bool, what: &str) -> Result<(), String> {
    if r.layout != Layout::Nhwc || cx.ty(0)?.rank() != 4 {
        return Err(format!(
            "{what} computed at run time of a tensor that is not 2-D NHWC"
        ));
    }
    if !by_sizes {
        return Err(format!(
            "{what} computed at run time: RESIZE_* takes an output size, whose ratio to the input \
             need not be the scale ONNX maps coordinates by"
        ));
    }
    let (code, opts) = super::nn::resize_builtin(r, None)?;
    let sizes = int32(cx, 1)?;
    let begin = cx.i32s("hw_begin", vec![1], &[1]);
    let len = cx.i32s("hw_size", vec![1], &[2]);
    let hw = temp(cx, "hw", DType::I32, vec![Dim::Fixed(2)]);
    let hw = op(cx, B::SLICE, Opts::None, vec![sizes, begin, len], hw);
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(code, opts, vec![Some(x), Some(hw)], vec![y]);
    Ok(())
}

/// TFLite's kernels that compute on the values (not only move bytes) have a few element types;
/// LiteRT would only fail when preparing the model (float64 inputs, mostly). int16 (and int8
/// for SPLIT_V) would also need operator versions `versions.rs` does not give these builtins.
fn kernel_has_type(cx: &Cx, d: &Dynamic) -> Result<(), String> {
    use DType::*;
    let (name, types): (&str, &[DType]) = match d {
        Dynamic::Reduce { .. } => ("reductions", &[F32, I32, I64, I8, U8, Bool]),
        Dynamic::CumSum { .. } => ("CUMSUM", &[F32, I32, I64]),
        Dynamic::TopK { .. } => ("TOPK_V2", &[F32, I32, I64, I8, U8]),
        Dynamic::Tile => ("TILE", &[F32, I32, I64, I8, U8, I16, Bool]),
        Dynamic::Pad { .. } => ("PADV2/MIRROR_PAD", &[F32, I32, I64, I8, U8, I16]),
        Dynamic::Split { .. } => ("SPLIT_V", &[F32, I32, I64, U8]),
        Dynamic::Trilu { .. } => ("SELECT_V2", &[F32, I32, I64, I8, U8, I16, Bool]),
        Dynamic::OneHot { .. } => ("ONE_HOT", &[F32, I32, I64, I8, U8, I16, Bool]),
        Dynamic::Reshape { .. }
        | Dynamic::Expand
        | Dynamic::Slice
        | Dynamic::Resize { .. }
        | Dynamic::Squeeze
        | Dynamic::Unsqueeze
        | Dynamic::NonMaxSuppression { .. } => return Ok(()),
    };
    // OneHot computes in the type of its values (input 2), the others in input 0's.
    let at = if matches!(d, Dynamic::OneHot { .. }) {
        2
    } else {
        0
    };
    let dtype = cx.ty(at)?.dtype;
    match types.contains(&dtype) {
        true => Ok(()),
        false => Err(format!("TFLite's {name} have no {dtype} kernel")),
    }
}

/// A new intermediate tensor.
fn temp(cx: &mut Cx, tag: &str, dtype: DType, dims: Vec<Dim>) -> TRef {
    cx.temp(tag, TensorType::new(dtype, dims))
}

fn unknown(n: usize) -> Vec<Dim> {
    (0..n).map(|_| crate::ir::ops::unknown_dim()).collect()
}

fn fixed(dims: &[usize]) -> Vec<Dim> {
    dims.iter().map(|&d| Dim::Fixed(d as u64)).collect()
}

/// One operator with one new output; returns the output.
fn op(cx: &mut Cx, code: B, opts: Opts, inputs: Vec<TRef>, out: TRef) -> TRef {
    cx.emit(
        code,
        opts,
        inputs.into_iter().map(Some).collect(),
        vec![out],
    );
    out
}

/// The length of the 1-D operand `i` (fixed: inference checks it).
fn len_of(cx: &Cx, i: usize) -> Result<usize, String> {
    let t = cx.ty(i)?;
    match t.shape.first().and_then(Dim::fixed) {
        Some(n) if t.rank() == 1 => Ok(n as usize),
        _ => Err(format!(
            "operand #{i} must be 1-D of a fixed length, is {t}"
        )),
    }
}

/// Operand `i` as int32 (CAST from other integer types; same shape).
fn int32(cx: &mut Cx, i: usize) -> Result<TRef, String> {
    let ty = cx.ty(i)?.clone();
    let x = cx.x(i)?;
    if ty.dtype == DType::I32 {
        return Ok(x);
    }
    if !ty.dtype.is_int() {
        return Err(format!("operand #{i} must be integers, is {ty}"));
    }
    let out = temp(cx, &format!("operand{i}_i32"), DType::I32, ty.shape.clone());
    let opts = Opts::Cast {
        from: ty.dtype,
        to: DType::I32,
    };
    Ok(op(cx, B::CAST, opts, vec![x], out))
}

/// Operand `i` as int32 with int64 values first clamped into int32's range (slice bounds:
/// `i64::MAX` means "to the end" and must not wrap).
fn clamped_int32(cx: &mut Cx, i: usize) -> Result<TRef, String> {
    let ty = cx.ty(i)?.clone();
    if ty.dtype != DType::I64 {
        return int32(cx, i);
    }
    let x = cx.x(i)?;
    let hi = cx.konst("i32_max", Tensor::from_i64(vec![], &[i32::MAX as i64]));
    let lo = cx.konst("i32_min", Tensor::from_i64(vec![], &[i32::MIN as i64]));
    let t = temp(
        cx,
        &format!("operand{i}_below"),
        DType::I64,
        ty.shape.clone(),
    );
    let t = op(cx, B::MINIMUM, Opts::None, vec![x, hi], t);
    let u = temp(
        cx,
        &format!("operand{i}_within"),
        DType::I64,
        ty.shape.clone(),
    );
    let u = op(cx, B::MAXIMUM, Opts::None, vec![t, lo], u);
    let out = temp(cx, &format!("operand{i}_i32"), DType::I32, ty.shape);
    let opts = Opts::Cast {
        from: DType::I64,
        to: DType::I32,
    };
    Ok(op(cx, B::CAST, opts, vec![u], out))
}

/// A one-element int32 tensor (operand 1) as a scalar (CUMSUM wants a 0-D axis).
fn scalar(cx: &mut Cx, v: TRef) -> Result<TRef, String> {
    scalar_of(cx, 1, v)
}

/// `v`, the int32 form of the one-element operand `i`, as a scalar.
fn scalar_of(cx: &mut Cx, i: usize, v: TRef) -> Result<TRef, String> {
    let rank = cx.ty(i)?.rank();
    if rank == 0 {
        return Ok(v);
    }
    let shape = cx.i32s("scalar_shape", vec![0], &[]);
    let out = temp(cx, "axis_scalar", DType::I32, vec![]);
    Ok(op(cx, B::RESHAPE, Opts::Reshape(None), vec![v, shape], out))
}

/// The dims of input 0 as an int32 vector: a constant when they are fixed, else read from its
/// SHAPE.
fn input_dims(cx: &mut Cx, tag: &str, dims: &[Dim]) -> Result<TRef, String> {
    let x = cx.input(0)?;
    cx.dims_operand(tag, dims, &[x], false)
}

fn reshape(cx: &mut Cx, allowzero: bool) -> Result<(), String> {
    let n = len_of(cx, 1)?;
    let mut shape = int32(cx, 1)?;
    if !allowzero {
        // ONNX: a 0 copies the input's dim at that position (positions past the input's rank
        // keep the 0, which ONNX does not allow anyway).
        let mut dims: Vec<Dim> = cx.ty(0)?.shape.iter().take(n).cloned().collect();
        dims.resize(n, Dim::Fixed(0));
        let input = input_dims(cx, "input_dims", &dims)?;
        let zero = cx.i32s("zero", vec![], &[0]);
        let is0 = temp(cx, "is_zero", DType::Bool, fixed(&[n]));
        let is0 = op(cx, B::EQUAL, Opts::None, vec![shape, zero], is0);
        let s = temp(cx, "shape", DType::I32, fixed(&[n]));
        shape = op(cx, B::SELECT_V2, Opts::None, vec![is0, input, shape], s);
    }
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(
        B::RESHAPE,
        Opts::Reshape(None),
        vec![Some(x), Some(shape)],
        vec![y],
    );
    Ok(())
}

fn expand(cx: &mut Cx) -> Result<(), String> {
    let target = int32(cx, 1)?;
    let dims = cx.ty(0)?.shape.clone();
    let input = input_dims(cx, "input_dims", &dims)?;
    let rank = cx.out_ty(0).rank();
    // ONNX Expand broadcasts both ways: a target dim of 1 keeps the input's dim.
    let s = temp(cx, "shape", DType::I32, fixed(&[rank]));
    let shape = op(cx, B::BROADCAST_ARGS, Opts::None, vec![input, target], s);
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(
        B::BROADCAST_TO,
        Opts::None,
        vec![Some(x), Some(shape)],
        vec![y],
    );
    Ok(())
}

fn reduce(cx: &mut Cx, kind: ReduceKind, keep_dims: bool, noop: bool) -> Result<(), String> {
    let x_ty = cx.ty(0)?.clone();
    let boolean = x_ty.dtype == DType::Bool;
    let code = match kind {
        ReduceKind::Mean if !boolean => B::MEAN,
        ReduceKind::Sum if !boolean => B::SUM,
        ReduceKind::Max if boolean => B::REDUCE_ANY,
        ReduceKind::Min if boolean => B::REDUCE_ALL,
        ReduceKind::Max => B::REDUCE_MAX,
        ReduceKind::Min => B::REDUCE_MIN,
        ReduceKind::Prod if !boolean => B::REDUCE_PROD,
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
                 legalize for float32 inputs only"
            ))
        }
    };
    // The operand's length is known: an empty one reduces every axis, or none (`noop`).
    let axes = match len_of(cx, 1)? {
        0 if noop => {
            let shape = input_dims(cx, "shape", &x_ty.shape)?;
            let (x, y) = (cx.x(0)?, cx.out(0));
            let inputs = vec![Some(x), Some(shape)];
            cx.emit(B::RESHAPE, Opts::Reshape(None), inputs, vec![y]);
            return Ok(());
        }
        0 => {
            let all: Vec<i32> = (0..x_ty.rank() as i32).collect();
            cx.i32_vec("axes", &all)
        }
        _ => int32(cx, 1)?,
    };
    let mut x = cx.x(0)?;
    let extreme = matches!(code, B::REDUCE_MAX | B::REDUCE_MIN);
    if extreme && x_ty.shape.contains(&Dim::Fixed(0)) {
        x = pad_reduced_axes(cx, x, code == B::REDUCE_MAX)?;
    }
    let y = cx.out(0);
    let opts = Opts::Reducer { keep_dims };
    cx.emit(code, opts, vec![Some(x), Some(axes)], vec![y]);
    Ok(())
}

/// The value max (`max`) or min reduces an empty set to: the lowest or highest of the type.
fn reduce_identity(dtype: DType, max: bool) -> f64 {
    let (lo, hi) = match dtype {
        DType::I8 => (i8::MIN as f64, i8::MAX as f64),
        DType::U8 => (0.0, u8::MAX as f64),
        DType::I16 => (i16::MIN as f64, i16::MAX as f64),
        DType::U16 => (0.0, u16::MAX as f64),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        // Saturating casts bring these back to the exact bounds.
        DType::I64 => (i64::MIN as f64, i64::MAX as f64),
        DType::U64 => (0.0, u64::MAX as f64),
        DType::Bool => (0.0, 1.0),
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => (f64::NEG_INFINITY, f64::INFINITY),
    };
    if max {
        lo
    } else {
        hi
    }
}

/// ONNX reduces an empty set to the identity of max/min (the lowest/highest value), where
/// LiteRT's REDUCE_MAX/MIN give NaN: for an input with a zero dim, one identity element is
/// padded onto every reduced axis (it changes no other result).
fn pad_reduced_axes(cx: &mut Cx, x: TRef, max: bool) -> Result<TRef, String> {
    let x_ty = cx.ty(0)?.clone();
    let rank = x_ty.rank();
    let paddings = match len_of(cx, 1)? {
        0 => {
            let all: Vec<i32> = (0..rank).flat_map(|_| [0, 1]).collect();
            cx.i32s("paddings", vec![rank, 2], &all)
        }
        _ => {
            let hits = axes::axis_hits(cx, 1, rank)?;
            let marked = axes::any_hit(cx, hits, rank);
            let s = cx.i32_vec("marked_column", &[rank as i32, 1]);
            let col = temp(cx, "marked_column", DType::Bool, fixed(&[rank, 1]));
            let opts = Opts::Reshape(Some(vec![rank as i32, 1]));
            let col = op(cx, B::RESHAPE, opts, vec![marked, s], col);
            let one_after = cx.i32s("one_after", vec![1, 2], &[0, 1]);
            let zero = cx.i32s("zero", vec![], &[0]);
            let p = temp(cx, "paddings", DType::I32, fixed(&[rank, 2]));
            op(cx, B::SELECT_V2, Opts::None, vec![col, one_after, zero], p)
        }
    };
    let value = reduce_identity(x_ty.dtype, max);
    let value = cx.konst("identity", Tensor::from_f64s(x_ty.dtype, vec![], &[value]));
    let dims = (0..rank).map(|_| crate::ir::ops::unknown_dim()).collect();
    let padded = temp(cx, "padded", x_ty.dtype, dims);
    Ok(op(
        cx,
        B::PADV2,
        Opts::None,
        vec![x, paddings, value],
        padded,
    ))
}

/// TOPK_V2 works along the last axis: another axis is swapped there and back (TRANSPOSE);
/// the smallest values are TOPK_V2 of the negated input.
fn topk(cx: &mut Cx, axis: usize, largest: bool) -> Result<(), String> {
    let x_ty = cx.ty(0)?.clone();
    let rank = x_ty.rank();
    if !largest && !x_ty.dtype.is_float() {
        return Err(
            "k computed at run time: the smallest values are taken as TOPK_V2 of the \
             negated input, for floats only"
                .into(),
        );
    }
    let last = axis + 1 == rank;
    if !last && rank > 6 {
        return Err("k computed at run time: TOPK_V2 along an inner axis of rank > 6".into());
    }
    let k = int32(cx, 1)?;
    let k = scalar(cx, k)?;
    let (val_ty, idx_ty) = (cx.out_ty(0).clone(), cx.out_ty(1).clone());
    let mut perm: Vec<i32> = (0..rank as i32).collect();
    perm.swap(axis, rank - 1);
    let swapped = |s: &[Dim]| {
        let mut s = s.to_vec();
        s.swap(axis, rank - 1);
        s
    };
    let perm = cx.i32_vec("perm", &perm);
    let mut x = cx.x(0)?;
    if !last {
        let t = temp(cx, "moved", x_ty.dtype, swapped(&x_ty.shape));
        x = op(cx, B::TRANSPOSE, Opts::None, vec![x, perm], t);
    }
    if !largest {
        // Negation keeps the order of equal values (TOPK_V2 takes the lower index first, as
        // ONNX does for both directions).
        let neg = temp(cx, "negated", x_ty.dtype, swapped(&x_ty.shape));
        x = op(cx, B::NEG, Opts::None, vec![x], neg);
    }
    let values = cx.out(0);
    let direct = last && largest;
    let top = match direct {
        true => values,
        false => temp(cx, "top", val_ty.dtype, swapped(&val_ty.shape)),
    };
    let idx32 = temp(cx, "indices32", DType::I32, swapped(&idx_ty.shape));
    let inputs = vec![Some(x), Some(k)];
    cx.emit(B::TOPK_V2, Opts::None, inputs, vec![top, idx32]);
    let mut v = top;
    if !largest {
        let out = match last {
            true => values,
            false => temp(cx, "top_values", val_ty.dtype, swapped(&val_ty.shape)),
        };
        v = op(cx, B::NEG, Opts::None, vec![top], out);
    }
    let mut idx32 = idx32;
    if !last {
        op(cx, B::TRANSPOSE, Opts::None, vec![v, perm], values);
        let t = temp(cx, "indices32_back", DType::I32, idx_ty.shape.clone());
        idx32 = op(cx, B::TRANSPOSE, Opts::None, vec![idx32, perm], t);
    }
    let idx = cx.out(1);
    let opts = Opts::Cast {
        from: DType::I32,
        to: idx_ty.dtype,
    };
    op(cx, B::CAST, opts, vec![idx32], idx);
    Ok(())
}

/// The last two dims as fixed sizes (Trilu's matrix), if they are.
fn matrix_dims(shape: &[Dim]) -> Option<(usize, usize)> {
    match shape {
        [.., r, c] => Some((r.fixed()? as usize, c.fixed()? as usize)),
        _ => None,
    }
}

/// `j - i` for every element `(i, j)` of a `rows × cols` matrix, row-major.
fn diagonal_offsets(rows: usize, cols: usize) -> Vec<i32> {
    (0..rows * cols)
        .map(|e| (e % cols) as i32 - (e / cols) as i32)
        .collect()
}

/// Trilu as SELECT_V2(mask, x, 0), the mask comparing the constant `j - i` of the fixed-size
/// matrix with k (upper: `j - i >= k`, lower: `j - i <= k`).
fn trilu(cx: &mut Cx, upper: bool) -> Result<(), String> {
    let x_ty = cx.ty(0)?.clone();
    let Some((rows, cols)) = matrix_dims(&x_ty.shape) else {
        return Err("Trilu k computed at run time: the last two dims must be fixed".into());
    };
    let k = clamped_int32(cx, 1)?;
    let offsets = diagonal_offsets(rows, cols);
    let offsets = cx.i32s("offsets", vec![rows, cols], &offsets);
    let code = if upper {
        B::GREATER_EQUAL
    } else {
        B::LESS_EQUAL
    };
    let mask = temp(cx, "mask", DType::Bool, fixed(&[rows, cols]));
    let mask = op(cx, code, Opts::None, vec![offsets, k], mask);
    let zero = cx.konst("zero", Tensor::from_f64s(x_ty.dtype, vec![], &[0.0]));
    let (x, y) = (cx.x(0)?, cx.out(0));
    op(cx, B::SELECT_V2, Opts::None, vec![mask, x, zero], y);
    Ok(())
}

/// Operand `i` as int32: integers CAST (int64 clamped into int32's range first, so an index
/// out of range stays out of range), floats CAST (ONNX truncates them to integers too).
fn index_int32(cx: &mut Cx, i: usize) -> Result<TRef, String> {
    let ty = cx.ty(i)?.clone();
    if ty.dtype.is_int() {
        return clamped_int32(cx, i);
    }
    let x = cx.x(i)?;
    let out = temp(cx, &format!("operand{i}_i32"), DType::I32, ty.shape.clone());
    let opts = Opts::Cast {
        from: ty.dtype,
        to: DType::I32,
    };
    Ok(op(cx, B::CAST, opts, vec![x], out))
}

/// ONE_HOT, with the depth read at run time (input 1, values input 2) or given (`depth`;
/// values input 1): ONNX's negative indices (counting back from the depth) are wrapped first,
/// `[off, on]` split into the two scalars ONE_HOT takes.
pub(super) fn one_hot(cx: &mut Cx, axis: i64, depth: Option<usize>) -> Result<(), String> {
    let idx_ty = cx.ty(0)?.clone();
    let out_rank = idx_ty.rank() + 1;
    let axis = crate::ir::ops::norm_axis(axis, out_rank)? as i32;
    let idx = index_int32(cx, 0)?;
    let (depth, values_at) = match depth {
        Some(d) => {
            let d = i32::try_from(d).map_err(|_| format!("depth {d} is too large"))?;
            (cx.i32s("depth", vec![], &[d]), 1)
        }
        None => {
            let depth = index_int32(cx, 1)?;
            (scalar_of(cx, 1, depth)?, 2)
        }
    };
    let zero = cx.i32s("zero", vec![], &[0]);
    let shape = idx_ty.shape.clone();
    let neg = temp(cx, "negative", DType::Bool, shape.clone());
    let neg = op(cx, B::LESS, Opts::None, vec![idx, zero], neg);
    let up = temp(cx, "wrapped", DType::I32, shape.clone());
    let up = op(cx, B::ADD, Opts::Arith(Act::NONE), vec![idx, depth], up);
    let wrapped = temp(cx, "indices", DType::I32, shape);
    let wrapped = op(cx, B::SELECT_V2, Opts::None, vec![neg, up, idx], wrapped);
    let values_ty = cx.ty(values_at)?.clone();
    let values = cx.x(values_at)?;
    let mut picked = [values; 2];
    for (i, p) in picked.iter_mut().enumerate() {
        let at = cx.i32s(&format!("value{i}_at"), vec![], &[i as i32]);
        let t = temp(cx, &format!("value{i}"), values_ty.dtype, vec![]);
        *p = op(cx, B::GATHER, Opts::Gather { axis: 0 }, vec![values, at], t);
    }
    let y = cx.out(0);
    let inputs = vec![wrapped, depth, picked[1], picked[0]];
    op(cx, B::ONE_HOT, Opts::OneHot(axis), inputs, y);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_offsets_are_column_minus_row() {
        assert_eq!(diagonal_offsets(2, 3), [0, 1, 2, -1, 0, 1]);
        assert_eq!(
            matrix_dims(&[Dim::Sym("b".into()), Dim::Fixed(2), Dim::Fixed(3)]),
            Some((2, 3))
        );
        assert_eq!(matrix_dims(&[Dim::Fixed(2), Dim::Sym("n".into())]), None);
    }

    #[test]
    fn empty_max_and_min_reduce_to_the_type_bounds() {
        assert_eq!(reduce_identity(DType::F32, true), f64::NEG_INFINITY);
        assert_eq!(reduce_identity(DType::F32, false), f64::INFINITY);
        assert_eq!(reduce_identity(DType::I32, true), i32::MIN as f64);
        let t = Tensor::from_f64s(DType::I64, vec![], &[reduce_identity(DType::I64, false)]);
        assert_eq!(t.to_i64s(), Some(vec![i64::MAX]));
    }
}
