//! Normalizations and softmax: ONNX BatchNormalization-15 (inference form), LayerNormalization-17,
//! InstanceNormalization-6, Softmax/LogSoftmax-13 (one axis; the opset < 13 "flatten to 2-D"
//! form is rewritten by the ONNX reader).

use super::{norm_axis, Inputs};
use crate::ir::{Layout, TensorType};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm {
    pub epsilon: f32,
    pub layout: Layout,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNorm {
    /// First normalized axis; normalization runs over `axis..rank`.
    pub axis: usize,
    pub epsilon: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceNorm {
    pub epsilon: f32,
    pub layout: Layout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Softmax {
    pub axis: usize,
    pub log: bool,
}

pub fn infer_layer_norm(n: &LayerNorm, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 3)?;
    let x = inputs.ty(0)?;
    if n.axis >= x.rank() {
        return Err(format!("axis {} out of rank {}", n.axis, x.rank()));
    }
    Ok(vec![x.clone()])
}

pub fn infer_softmax(s: &Softmax, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    norm_axis(s.axis as i64, x.rank())?;
    Ok(vec![x.clone()])
}
