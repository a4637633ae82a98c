//! Indexing ops: ONNX Gather-13, GatherElements-13, GatherND-13, ScatterND-18,
//! ScatterElements-18, TopK-11 (k folded to a constant), ArgMax/ArgMin-13, CumSum-14,
//! NonZero-13, OneHot-11 (depth constant), Trilu-14 (k constant).

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

pub fn infer_one_hot(o: &OneHot, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 2)?;
    let idx = inputs.ty(0)?;
    let axis = norm_axis(o.axis, idx.rank() + 1)?;
    let mut s = idx.shape.clone();
    s.insert(axis, Dim::Fixed(o.depth as u64));
    Ok(vec![TensorType::new(inputs.dtype(1)?, s)])
}
