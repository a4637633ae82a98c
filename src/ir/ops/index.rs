//! Indexing ops: ONNX Gather-13, GatherElements-13, GatherND-13, ScatterND-18,
//! ScatterElements-18, TopK-11 (k folded to a constant), ArgMax/ArgMin-13, CumSum-14,
//! NonZero-13, OneHot-11 (depth constant), Trilu-14 (k constant), NonMaxSuppression-11 (the
//! optional scalar inputs constant).

use super::{norm_axis, unknown_dim, Inputs};
use crate::ir::{DType, Dim, TensorType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gather {
    pub axis: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatherNd {
    pub batch_dims: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScatterReduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scatter {
    pub reduction: ScatterReduction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScatterElements {
    pub axis: usize,
    pub reduction: ScatterReduction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopK {
    pub axis: usize,
    pub k: usize,
    pub largest: bool,
    pub sorted: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgReduce {
    pub max: bool,
    pub axis: usize,
    pub keep_dims: bool,
    pub select_last: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CumSum {
    pub axis: usize,
    pub exclusive: bool,
    pub reverse: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OneHot {
    pub axis: i64,
    pub depth: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trilu {
    pub upper: bool,
    pub k: i64,
}

/// inputs: boxes `[batch, n, 4]`, scores `[batch, classes, n]`; output: the selected
/// `[batch, class, box]` triples, `[?, 3]` i64.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nms {
    /// Boxes are `[x_center, y_center, width, height]` (else `[y1, x1, y2, x2]`, any corners).
    pub center_point_box: bool,
    /// Per batch and class; 0 selects nothing.
    pub max_output_boxes_per_class: i64,
    /// Boxes whose IoU with a selected box is strictly greater are suppressed.
    pub iou_threshold: f32,
    /// Boxes scoring below it are dropped; `None` keeps every score.
    pub score_threshold: Option<f32>,
}

pub fn infer_gather(g: &Gather, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 2)?;
    let (x, idx) = (inputs.ty(0)?, inputs.ty(1)?);
    if g.axis >= x.rank() {
        return Err(format!("axis {} out of rank {}", g.axis, x.rank()));
    }
    let mut out: Vec<Dim> = x.shape[..g.axis].to_vec();
    out.extend(idx.shape.iter().cloned());
    out.extend(x.shape[g.axis + 1..].iter().cloned());
    Ok(vec![TensorType::new(x.dtype, out)])
}

pub fn infer_gather_elements(g: &Gather, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 2)?;
    let (x, idx) = (inputs.ty(0)?, inputs.ty(1)?);
    if g.axis >= x.rank() || idx.rank() != x.rank() {
        return Err(format!("GatherElements of {x} by {idx} on axis {}", g.axis));
    }
    Ok(vec![TensorType::new(x.dtype, idx.shape.clone())])
}

pub fn infer_gather_nd(g: &GatherNd, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 2)?;
    let (x, idx) = (inputs.ty(0)?, inputs.ty(1)?);
    let Some(last) = idx.shape.last().and_then(|d| d.fixed()) else {
        return Err("GatherND indices need a fixed last dimension".into());
    };
    let last = last as usize;
    if idx.rank() == 0 || g.batch_dims + last > x.rank() {
        return Err(format!("GatherND of {x} by {idx}"));
    }
    let mut out: Vec<Dim> = idx.shape[..idx.rank() - 1].to_vec();
    out.extend(x.shape[g.batch_dims + last..].iter().cloned());
    Ok(vec![TensorType::new(x.dtype, out)])
}

pub fn infer_topk(t: &TopK, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    if t.axis >= x.rank() {
        return Err(format!("axis {} out of rank {}", t.axis, x.rank()));
    }
    let mut s = x.shape.clone();
    s[t.axis] = Dim::Fixed(t.k as u64);
    Ok(vec![
        TensorType::new(x.dtype, s.clone()),
        TensorType::new(DType::I64, s),
    ])
}

pub fn infer_arg_reduce(a: &ArgReduce, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    let s = super::reduce::reduced_shape(&x.shape, &[a.axis], a.keep_dims)?;
    Ok(vec![TensorType::new(DType::I64, s)])
}

pub fn infer_non_zero(inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    Ok(vec![TensorType::new(
        DType::I64,
        vec![Dim::Fixed(x.rank() as u64), unknown_dim()],
    )])
}

pub fn infer_nms(_: &Nms, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 2)?;
    let (boxes, scores) = (inputs.ty(0)?, inputs.ty(1)?);
    if boxes.rank() != 3 || scores.rank() != 3 {
        return Err(format!(
            "NonMaxSuppression of boxes {boxes} and scores {scores}"
        ));
    }
    if !boxes.dtype.is_float() || boxes.dtype != scores.dtype {
        return Err(format!(
            "NonMaxSuppression boxes {} and scores {} must be the same float type",
            boxes.dtype, scores.dtype
        ));
    }
    let differ = |a: &Dim, b: &Dim| matches!((a, b), (Dim::Fixed(x), Dim::Fixed(y)) if x != y);
    if boxes.shape[2].fixed().is_some_and(|k| k != 4)
        || differ(&boxes.shape[0], &scores.shape[0])
        || differ(&boxes.shape[1], &scores.shape[2])
    {
        return Err(format!(
            "NonMaxSuppression of boxes {boxes} and scores {scores}"
        ));
    }
    Ok(vec![TensorType::new(
        DType::I64,
        vec![unknown_dim(), Dim::Fixed(3)],
    )])
}

pub fn infer_one_hot(o: &OneHot, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 2)?;
    let idx = inputs.ty(0)?;
    let axis = norm_axis(o.axis, idx.rank() + 1)?;
    let mut s = idx.shape.clone();
    s.insert(axis, Dim::Fixed(o.depth as u64));
    Ok(vec![TensorType::new(inputs.dtype(1)?, s)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::fixed_shape;
    use crate::ir::ops::is_unknown;

    fn ins(ts: &[TensorType]) -> Inputs<'_> {
        Inputs::of_types(ts)
    }

    #[test]
    fn nms_gives_unknown_by_3_indices_and_checks_box_shapes() {
        let nms = Nms {
            center_point_box: false,
            max_output_boxes_per_class: 10,
            iou_threshold: 0.5,
            score_threshold: None,
        };
        let boxes = TensorType::new(
            DType::F32,
            vec![Dim::Sym("b".into()), Dim::Fixed(100), Dim::Fixed(4)],
        );
        let scores = TensorType::new(
            DType::F32,
            vec![Dim::Sym("b".into()), Dim::Fixed(3), Dim::Fixed(100)],
        );
        let out = infer_nms(&nms, &ins(&[boxes.clone(), scores])).unwrap();
        assert_eq!(out[0].dtype, DType::I64);
        assert!(is_unknown(&out[0].shape[0]));
        assert_eq!(out[0].shape[1], Dim::Fixed(3));
        let wrong_n = TensorType::new(DType::F32, fixed_shape(&[1, 3, 99]));
        assert!(infer_nms(&nms, &ins(&[boxes.clone(), wrong_n])).is_err());
        let five = TensorType::new(DType::F32, fixed_shape(&[1, 100, 5]));
        let scores = TensorType::new(DType::F32, fixed_shape(&[1, 3, 100]));
        assert!(infer_nms(&nms, &ins(&[five, scores])).is_err());
    }
}
