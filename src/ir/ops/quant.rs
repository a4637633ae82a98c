//! Quantization ops in the ONNX forms: QuantizeLinear/DequantizeLinear-13+ (per-tensor or
//! per-axis), DynamicQuantizeLinear-11, ConvInteger-10, MatMulInteger-10, QLinearConv-10,
//! QLinearMatMul-10.

use super::{linear::conv_shape, linear::matmul_shape, Conv, Inputs};
use crate::ir::{DType, Dim, TensorType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantAxis {
    /// Channel axis for per-axis scales (ignored for scalar scales).
    pub axis: usize,
    /// Quantized element type (QuantizeLinear output).
    pub dtype: DType,
}

pub fn infer_quantize(q: &QuantAxis, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 3)?;
    Ok(vec![TensorType::new(q.dtype, inputs.shape(0)?.to_vec())])
}

pub fn infer_dequantize(_q: &QuantAxis, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 3)?;
    Ok(vec![TensorType::new(
        inputs.dtype(1)?,
        inputs.shape(0)?.to_vec(),
    )])
}

pub fn infer_dynamic_quantize(inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    Ok(vec![
        TensorType::new(DType::U8, inputs.shape(0)?.to_vec()),
        TensorType::new(DType::F32, vec![]),
        TensorType::new(DType::U8, vec![]),
    ])
}

pub fn infer_conv_integer(c: &Conv, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 4)?;
    Ok(vec![TensorType::new(
        DType::I32,
        conv_shape(c, inputs.shape(0)?, inputs.shape(1)?)?,
    )])
}

pub fn infer_matmul_integer(inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 4)?;
    Ok(vec![TensorType::new(
        DType::I32,
        matmul_shape(inputs.shape(0)?, inputs.shape(1)?)?,
    )])
}

pub fn infer_qlinear_conv(c: &Conv, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(8, 9)?;
    let shape: Vec<Dim> = conv_shape(c, inputs.shape(0)?, inputs.shape(3)?)?;
    Ok(vec![TensorType::new(inputs.dtype(7)?, shape)])
}

pub fn infer_qlinear_matmul(inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(8, 8)?;
    Ok(vec![TensorType::new(
        inputs.dtype(7)?,
        matmul_shape(inputs.shape(0)?, inputs.shape(3)?)?,
    )])
}
