//! ONNX-form NonMaxSuppression of one batch and one class: NonMaxSuppressionV3 (TF and TF.js)
//! on the `[N, 4]` boxes and `[N]` scores, its `[n]` int32 box indices widened to the IR's
//! `[n, 3]` `(batch 0, class 0, box)` rows by a Mul with `[0, 0, 1]`.

use super::emit::{a_type, Gx};
use crate::ir::ops::Nms;
use crate::ir::{DType, Dim, Node, Tensor};

pub fn nms(gx: &mut Gx, n: &Node, s: &Nms) -> Result<String, String> {
    let g = gx.g;
    let (bt, st) = (g.ty(n.inputs[0]).clone(), g.ty(n.inputs[1]).clone());
    let one = Dim::Fixed(1);
    if bt.shape[0] != one || st.shape[0] != one || st.shape[1] != one {
        return Err(format!(
            "NonMaxSuppressionV3 takes one batch and one class, got boxes {bt} and scores {st}"
        ));
    }
    if s.center_point_box {
        return Err("NonMaxSuppressionV3 takes corner boxes, not center-point ones".into());
    }
    let max = i32::try_from(s.max_output_boxes_per_class)
        .map_err(|_| "max_output_boxes_per_class past int32".to_string())?;
    let f32_t = ("T", a_type(DType::F32));
    let shape_t = ("Tshape", a_type(DType::I32));
    let boxes = gx.r(n.inputs[0])?;
    let shape = gx.ints("boxes_shape", &[-1, 4])?;
    let boxes = gx.node(
        "boxes",
        "Reshape",
        vec![boxes, shape],
        vec![f32_t.clone(), shape_t.clone()],
    );
    let scores = gx.r(n.inputs[1])?;
    let shape = gx.ints("scores_shape", &[-1])?;
    let scores = gx.node(
        "scores",
        "Reshape",
        vec![scores, shape],
        vec![f32_t, shape_t],
    );
    let max = gx.int("max_output_size", i64::from(max))?;
    let iou = gx.float("iou_threshold", s.iou_threshold)?;
    // No threshold keeps every score: TF keeps the scores strictly above it, so -inf.
    let floor = gx.float(
        "score_threshold",
        s.score_threshold.unwrap_or(f32::NEG_INFINITY),
    )?;
    let picked = gx.node(
        "nms",
        "NonMaxSuppressionV3",
        vec![boxes, scores, max, iou, floor],
        vec![
            ("T", a_type(DType::F32)),
            ("T_threshold", a_type(DType::F32)),
        ],
    );
    let i32_t = ("T", a_type(DType::I32));
    let shape = gx.ints("column_shape", &[-1, 1])?;
    let column = gx.node(
        "column",
        "Reshape",
        vec![picked, shape],
        vec![i32_t.clone(), ("Tshape", a_type(DType::I32))],
    );
    let spread = gx.konst(
        &format!("{}/box_column", n.name),
        Tensor::from_i64s(DType::I32, vec![1, 3], &[0, 0, 1]),
    )?;
    Ok(gx.node("", "Mul", vec![column, spread], vec![i32_t]))
}
