//! Normalizations and softmax: ONNX BatchNormalization-15 (inference form), LayerNormalization-17,
//! InstanceNormalization-6, Softmax/LogSoftmax-13 and Hardmax-13 (one axis; the opset < 13
//! "flatten to 2-D" form is rewritten by the ONNX reader), LpNormalization-1 (p 1 or 2; a zero
//! norm gives zeros). MeanVarianceNormalization is lowered by the ONNX reader.

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

/// 1 at the first maximum along `axis`, 0 elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hardmax {
    pub axis: usize,
}

/// `x / ‖x‖_p` along `axis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LpNorm {
    pub axis: usize,
    /// 1 or 2.
    pub p: u32,
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

pub fn infer_hardmax(h: &Hardmax, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    norm_axis(h.axis as i64, x.rank())?;
    Ok(vec![x.clone()])
}

pub fn infer_lp_norm(n: &LpNorm, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    norm_axis(n.axis as i64, x.rank())?;
    if n.p != 1 && n.p != 2 {
        return Err(format!("LpNorm p = {} (only 1 and 2)", n.p));
    }
    if !x.dtype.is_float() {
        return Err(format!("LpNorm needs float input, has {}", x.dtype));
    }
    Ok(vec![x.clone()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{fixed_shape, DType};

    fn ins(ts: &[TensorType]) -> Inputs<'_> {
        Inputs::of_types(ts)
    }

    #[test]
    fn hardmax_and_lp_norm_keep_the_type_and_check_axis_and_p() {
        let x = TensorType::new(DType::F32, fixed_shape(&[3, 4, 5]));
        let h = infer_hardmax(&Hardmax { axis: 2 }, &ins(std::slice::from_ref(&x))).unwrap();
        assert_eq!(h[0], x);
        assert!(infer_hardmax(&Hardmax { axis: 3 }, &ins(std::slice::from_ref(&x))).is_err());
        let l = infer_lp_norm(&LpNorm { axis: 0, p: 1 }, &ins(std::slice::from_ref(&x))).unwrap();
        assert_eq!(l[0], x);
        assert!(infer_lp_norm(&LpNorm { axis: 0, p: 3 }, &ins(&[x])).is_err());
        let i = TensorType::new(DType::I32, fixed_shape(&[3]));
        assert!(infer_lp_norm(&LpNorm { axis: 0, p: 2 }, &ins(&[i])).is_err());
    }
}
