//! Ops that make tensors from shapes: ONNX Shape-15 (start/end), ConstantOfShape-9, Range-11.

use super::{unknown_dim, Inputs};
use crate::ir::{DType, Dim, Tensor, TensorType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeOf {
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConstantOfShape {
    /// One element: the fill value and the output type.
    pub value: Tensor,
}

pub fn infer_shape_of(s: &ShapeOf, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let rank = inputs.ty(0)?.rank();
    if s.start > s.end || s.end > rank {
        return Err(format!("shape range {}..{} of rank {rank}", s.start, s.end));
    }
    Ok(vec![TensorType::new(
        DType::I64,
        vec![Dim::Fixed((s.end - s.start) as u64)],
    )])
}

pub fn infer_constant_of_shape(
    c: &ConstantOfShape,
    inputs: &Inputs,
) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let s = inputs.ty(0)?;
    let Some(rank) = s
        .shape
        .first()
        .and_then(|d| d.fixed())
        .filter(|_| s.rank() == 1)
    else {
        return Err(format!("shape input must be 1-D of fixed length, got {s}"));
    };
    let dims = match inputs.consts[0].and_then(|t| t.to_i64s()) {
        Some(v) => v.iter().map(|&n| Dim::Fixed(n.max(0) as u64)).collect(),
        None => vec![unknown_dim(); rank as usize],
    };
    Ok(vec![TensorType::new(c.value.dtype, dims)])
}

pub fn infer_range(inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(3, 3)?;
    let dtype = inputs.dtype(0)?;
    let len = match (inputs.consts[0], inputs.consts[1], inputs.consts[2]) {
        (Some(a), Some(b), Some(c)) => {
            let (a, b, c) = (a.to_f64s(), b.to_f64s(), c.to_f64s());
            match (a.first(), b.first(), c.first()) {
                (Some(a), Some(b), Some(c)) if *c != 0.0 => {
                    Dim::Fixed(((b - a) / c).ceil().max(0.0) as u64)
                }
                _ => return Err("Range needs scalar inputs and a non-zero delta".into()),
            }
        }
        _ => unknown_dim(),
    };
    Ok(vec![TensorType::new(dtype, vec![len])])
}
