//! Selections of run-time size: NonZero as WHERE (TFLite's `[n, rank]` int64 coordinates) then
//! TRANSPOSE to the IR's `[rank, n]`; NonMaxSuppression of one batch and one class as
//! NON_MAX_SUPPRESSION_V4, whose padded indices are cut to the valid count (SLICE with a
//! run-time size) and widened to the IR's `[n, 3]` `(batch 0, class 0, box)` rows by a MUL
//! with `[0, 0, 1]`.

use super::super::plan::{Cx, Opts, TRef};
use crate::ir::ops::{unknown_dim, Nms};
use crate::ir::{DType, Dim, Tensor, TensorType};
use tract_tflite::tflite::{ActivationFunctionType as Act, BuiltinOperator as B};

pub fn non_zero(cx: &mut Cx) -> Result<(), String> {
    let rank = cx.ty(0)?.rank();
    if rank == 0 {
        return Err("WHERE of a scalar".into());
    }
    let x = cx.x(0)?;
    let coords = cx.temp(
        "coords",
        TensorType::new(DType::I64, vec![unknown_dim(), Dim::Fixed(rank as u64)]),
    );
    cx.emit(B::WHERE, Opts::None, vec![Some(x)], vec![coords]);
    let perm = cx.i32_vec("perm", &[1, 0]);
    let y = cx.out(0);
    cx.emit(
        B::TRANSPOSE,
        Opts::None,
        vec![Some(coords), Some(perm)],
        vec![y],
    );
    Ok(())
}

pub fn nms(cx: &mut Cx, s: &Nms) -> Result<(), String> {
    let (bt, st) = (cx.ty(0)?.clone(), cx.ty(1)?.clone());
    let one = Dim::Fixed(1);
    if bt.shape[0] != one || st.shape[0] != one || st.shape[1] != one {
        return Err(format!(
            "NON_MAX_SUPPRESSION_V4 takes one batch and one class, got boxes {bt} and scores {st}"
        ));
    }
    if s.center_point_box {
        return Err("NON_MAX_SUPPRESSION_V4 takes corner boxes, not center-point ones".into());
    }
    if bt.dtype != DType::F32 {
        return Err(format!("NON_MAX_SUPPRESSION_V4 of {} boxes", bt.dtype));
    }
    let max = i32::try_from(s.max_output_boxes_per_class)
        .map_err(|_| "max_output_boxes_per_class past int32".to_string())?;
    let count = bt.shape[1].clone();
    let (boxes_id, scores_id) = (cx.input(0)?, cx.input(1)?);
    let boxes = flat(cx, "boxes", 0, vec![count.clone(), Dim::Fixed(4)], boxes_id)?;
    let scores = flat(cx, "scores", 1, vec![count], scores_id)?;
    let max_t = cx.i32s("max_output_size", vec![], &[max]);
    let iou = cx.f32s("iou_threshold", vec![], &[s.iou_threshold]);
    // No threshold keeps every score: -inf lets every finite one through (TFLite keeps
    // scores strictly above the threshold).
    let floor = s.score_threshold.unwrap_or(f32::NEG_INFINITY);
    let floor = cx.f32s("score_threshold", vec![], &[floor]);
    let max_len = Dim::Fixed(max as u64);
    let padded = cx.temp("padded", TensorType::new(DType::I32, vec![max_len]));
    let valid = cx.temp("valid", TensorType::new(DType::I32, vec![]));
    cx.emit(
        B::NON_MAX_SUPPRESSION_V4,
        Opts::None,
        vec![
            Some(boxes),
            Some(scores),
            Some(max_t),
            Some(iou),
            Some(floor),
        ],
        vec![padded, valid],
    );
    let size_shape = cx.i32_vec("size_shape", &[1]);
    let size = cx.temp("size", TensorType::new(DType::I32, vec![Dim::Fixed(1)]));
    cx.emit(
        B::RESHAPE,
        Opts::Reshape(Some(vec![1])),
        vec![Some(valid), Some(size_shape)],
        vec![size],
    );
    let begin = cx.i32_vec("begin", &[0]);
    let picked = cx.temp("picked", TensorType::new(DType::I32, vec![unknown_dim()]));
    cx.emit(
        B::SLICE,
        Opts::None,
        vec![Some(padded), Some(begin), Some(size)],
        vec![picked],
    );
    let column_shape = cx.i32_vec("column_shape", &[-1, 1]);
    let column = cx.temp(
        "column",
        TensorType::new(DType::I32, vec![unknown_dim(), Dim::Fixed(1)]),
    );
    cx.emit(
        B::RESHAPE,
        Opts::Reshape(None),
        vec![Some(picked), Some(column_shape)],
        vec![column],
    );
    let rows_ty = TensorType::new(DType::I32, vec![unknown_dim(), Dim::Fixed(3)]);
    let spread = cx.konst(
        "box_column",
        Tensor::from_i64s(DType::I32, vec![1, 3], &[0, 0, 1]),
    );
    let rows = cx.temp("rows", rows_ty);
    cx.emit(
        B::MUL,
        Opts::Arith(Act::NONE),
        vec![Some(column), Some(spread)],
        vec![rows],
    );
    let y = cx.out(0);
    cx.emit(
        B::CAST,
        Opts::Cast {
            from: DType::I32,
            to: DType::I64,
        },
        vec![Some(rows)],
        vec![y],
    );
    Ok(())
}

/// Input `i` reshaped to `dims` (the batch and class axes dropped).
fn flat(
    cx: &mut Cx,
    tag: &str,
    i: usize,
    dims: Vec<Dim>,
    like: crate::ir::ValueId,
) -> Result<TRef, String> {
    let shape = cx.dims_operand(&format!("{tag}_shape"), &dims, &[like], true)?;
    let fixed: Option<Vec<i32>> = dims.iter().map(|d| d.fixed().map(|n| n as i32)).collect();
    let x = cx.x(i)?;
    let t = cx.temp(tag, TensorType::new(DType::F32, dims));
    cx.emit(
        B::RESHAPE,
        Opts::Reshape(fixed),
        vec![Some(x), Some(shape)],
        vec![t],
    );
    Ok(t)
}
