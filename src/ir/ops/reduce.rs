//! Reductions: ONNX Reduce{Mean,Sum,Max,Min,Prod,L1,L2,LogSum,LogSumExp,SumSquare} (axes as
//! attribute before opset 18 / 13 for ReduceSum, as input after; the reader normalizes both). TF
//! Mean, Sum, Max, Min, Prod map here.

use super::Inputs;
use crate::ir::{Dim, TensorType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
    L1,
    L2,
    /// `log(sum(x))`
    LogSum,
    LogSumExp,
    SumSquare,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reduce {
    pub kind: ReduceKind,
    /// Sorted, non-negative axes; never empty (the reader expands "all axes").
    pub axes: Vec<usize>,
    pub keep_dims: bool,
}

pub fn infer_reduce(r: &Reduce, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    Ok(vec![TensorType::new(
        x.dtype,
        reduced_shape(&x.shape, &r.axes, r.keep_dims)?,
    )])
}

pub fn reduced_shape(shape: &[Dim], axes: &[usize], keep: bool) -> Result<Vec<Dim>, String> {
    if let Some(a) = axes.iter().find(|&&a| a >= shape.len()) {
        return Err(format!("reduction axis {a} out of rank {}", shape.len()));
    }
    Ok(shape
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match (axes.contains(&i), keep) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Fixed(1)),
            (true, false) => None,
        })
        .collect())
}
