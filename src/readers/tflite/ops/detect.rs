//! Selection builtins with run-time sizes: WHERE (one input: the coordinates of the true
//! elements, int64 `[n, rank]`, the transpose of the IR's NonZero) and NON_MAX_SUPPRESSION_V4/V5
//! (one class of `[num_boxes, 4]` boxes; TFLite pads the selected indices, and V5's selected
//! scores, with zeros to `max_output_size` and counts the valid ones).

use super::{Handler, Node};
use crate::ir::ops::{Cast, Concat, Gather, Nms, ShapeOf};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};
use crate::readers::builder::{reshape_to, unsupported, GraphBuilder, NodeError, NodeResult};
use tract_tflite::tflite::BuiltinOperator as B;

pub fn handler(code: B) -> Option<Handler> {
    Some(match code {
        B::WHERE => where_,
        B::NON_MAX_SUPPRESSION_V4 | B::NON_MAX_SUPPRESSION_V5 => nms,
        _ => return None,
    })
}

/// WHERE(condition) alone; with x and y it is SELECT_V2, which the converter writes instead.
fn where_(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    if n.inputs.len() > 1 {
        return unsupported("WHERE with x and y (SELECT_V2's form)");
    }
    crate::readers::tf_common::norm_select::where_coords(b, &n.name, n.input(0)?)
}

const MAX_OUTPUT: i64 = 1 << 20;

/// The one float value of constant input `i`.
fn scalar(b: &GraphBuilder, n: &Node, i: usize, what: &str) -> NodeResult<f64> {
    match b.const_floats(n.input(i)?).as_deref() {
        Some([v]) => Ok(*v),
        Some(_) => Err(NodeError::Invalid(format!("{what} must be one value"))),
        None => unsupported(format!("{what} computed at run time")),
    }
}

/// NON_MAX_SUPPRESSION_V4(boxes, scores, max_output_size, iou_threshold, score_threshold) →
/// (indices, valid); V5 adds soft_nms_sigma and the selected scores before the count. The IR's
/// NonMaxSuppression over one batch and one class gives the `[n]` selected indices; each padded
/// output is those followed by `max_output_size` zeros, gathered back to its first
/// `max_output_size` entries (a fixed size; n never exceeds it).
fn nms(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let (boxes, scores) = (n.input(0)?, n.input(1)?);
    let max = match n.ints(b, 2, "max_output_size")?.as_slice() {
        // The padded outputs are materialized at this size: a bound keeps a corrupt file from
        // asking for gigabytes of zeros.
        [m] if (0..=MAX_OUTPUT).contains(m) => *m,
        _ => {
            return Err(NodeError::Invalid(format!(
                "max_output_size must be one value in 0..={MAX_OUTPUT}"
            )))
        }
    };
    let iou = scalar(b, n, 3, "iou_threshold")?;
    let score = scalar(b, n, 4, "score_threshold")?;
    let v5 = n.code == B::NON_MAX_SUPPRESSION_V5;
    if v5 && scalar(b, n, 5, "soft_nms_sigma")? != 0.0 {
        return unsupported("NON_MAX_SUPPRESSION_V5 with soft_nms_sigma ≠ 0 (soft-NMS rescoring)");
    }
    let (bt, st) = (b.g.ty(boxes).clone(), b.g.ty(scores).clone());
    if bt.rank() != 2 || st.rank() != 1 {
        return Err(NodeError::Invalid(format!(
            "needs [num_boxes, 4] boxes and [num_boxes] scores, got {bt} and {st}"
        )));
    }
    let name = &n.name;
    let count = bt.shape[0].clone();
    let mut shape3 = bt.shape.clone();
    shape3.insert(0, Dim::Fixed(1));
    let boxes3 = reshape_to(b, &format!("{name}/boxes"), boxes, shape3)?[0];
    let scores3 = vec![Dim::Fixed(1), Dim::Fixed(1), count];
    let scores3 = reshape_to(b, &format!("{name}/scores"), scores, scores3)?[0];
    let op = Op::NonMaxSuppression(Nms {
        center_point_box: false,
        max_output_boxes_per_class: max,
        iou_threshold: iou as f32,
        score_threshold: Some(score as f32),
    });
    let triples = b.emit1(&format!("{name}/nms"), op, vec![boxes3, scores3])?;
    let column = b.add_const(&format!("{name}/box_column"), Tensor::scalar_i64(2));
    let picked = b.emit1(
        &format!("{name}/picked"),
        Op::Gather(Gather { axis: 1 }),
        vec![triples, column],
    )?;
    let indices = padded(b, &format!("{name}/indices"), picked, max)?;
    let indices = b.emit1(
        &format!("{name}/indices_i32"),
        Op::Cast(Cast { to: DType::I32 }),
        vec![indices],
    )?;
    let mut outs = vec![indices];
    if v5 {
        let s = b.emit1(
            &format!("{name}/picked_scores"),
            Op::Gather(Gather { axis: 0 }),
            vec![scores, picked],
        )?;
        outs.push(padded(b, &format!("{name}/scores_out"), s, max)?);
    }
    let len = b.emit1(
        &format!("{name}/count"),
        Op::ShapeOf(ShapeOf { start: 0, end: 1 }),
        vec![picked],
    )?;
    let len = reshape_to(b, &format!("{name}/count_scalar"), len, vec![])?[0];
    outs.push(b.emit1(
        &format!("{name}/valid"),
        Op::Cast(Cast { to: DType::I32 }),
        vec![len],
    )?);
    Ok(outs)
}

/// `[n]` values followed by zeros, cut to the first `max` (a fixed-size gather).
fn padded(b: &mut GraphBuilder, name: &str, v: ValueId, max: i64) -> NodeResult<ValueId> {
    let dt = b.g.ty(v).dtype;
    let len = usize::try_from(max).unwrap_or(0);
    let zeros = b.add_const(
        &format!("{name}/zeros"),
        Tensor::from_f64s(dt, vec![len], &vec![0.0; len]),
    );
    let joined = b.emit1(
        &format!("{name}/join"),
        Op::Concat(Concat { axis: 0 }),
        vec![v, zeros],
    )?;
    let first: Vec<i64> = (0..max).collect();
    let at = b.add_const(
        &format!("{name}/first"),
        Tensor::from_i64(vec![len], &first),
    );
    b.emit1(name, Op::Gather(Gather { axis: 0 }), vec![joined, at])
}
