//! Elementwise ops. Follows the ONNX operators of the same names (opsets 11–21); binary ops
//! broadcast numpy-style. TFLite and TF spellings map onto these in their readers/writers.
//! Bit ops follow ONNX BitShift-11 (unsigned integers only) and BitwiseAnd/Or/Xor/Not-18 (any
//! integer type); Shrink follows ONNX Shrink-9.

use super::{broadcast, Inputs};
use crate::ir::{DType, TensorType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Abs,
    Neg,
    Sqrt,
    Rsqrt,
    Exp,
    Log,
    Reciprocal,
    Erf,
    Floor,
    Ceil,
    /// Round half to even (ONNX Round).
    Round,
    Sign,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Sigmoid,
    Tanh,
    Relu,
    Softplus,
    Softsign,
    Not,
    IsNaN,
    Square,
    /// Bitwise complement of an integer (ONNX BitwiseNot).
    BitwiseNot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Min,
    Max,
    /// Integer modulo with the sign of the divisor (ONNX Mod fmod=0).
    Mod,
    /// Remainder with the sign of the dividend (ONNX Mod fmod=1).
    Fmod,
    /// `x < 0 ? slope * x : x`, slope broadcast to x.
    PRelu,
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
    And,
    Or,
    Xor,
    SquaredDifference,
    /// `x << y` on unsigned integers (ONNX BitShift direction=LEFT).
    BitShiftLeft,
    /// `x >> y` on unsigned integers (ONNX BitShift direction=RIGHT).
    BitShiftRight,
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
}

impl BinaryOp {
    /// Comparisons and logical ops: their output is bool.
    pub fn is_comparison(self) -> bool {
        match self {
            BinaryOp::Equal
            | BinaryOp::Less
            | BinaryOp::Greater
            | BinaryOp::LessOrEqual
            | BinaryOp::GreaterOrEqual
            | BinaryOp::And
            | BinaryOp::Or
            | BinaryOp::Xor => true,
            BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Pow
            | BinaryOp::Min
            | BinaryOp::Max
            | BinaryOp::Mod
            | BinaryOp::Fmod
            | BinaryOp::PRelu
            | BinaryOp::SquaredDifference
            | BinaryOp::BitShiftLeft
            | BinaryOp::BitShiftRight
            | BinaryOp::BitwiseAnd
            | BinaryOp::BitwiseOr
            | BinaryOp::BitwiseXor => false,
        }
    }

    /// Ops on the bits of integers.
    pub fn is_bitwise(self) -> bool {
        match self {
            BinaryOp::BitShiftLeft
            | BinaryOp::BitShiftRight
            | BinaryOp::BitwiseAnd
            | BinaryOp::BitwiseOr
            | BinaryOp::BitwiseXor => true,
            BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Pow
            | BinaryOp::Min
            | BinaryOp::Max
            | BinaryOp::Mod
            | BinaryOp::Fmod
            | BinaryOp::PRelu
            | BinaryOp::Equal
            | BinaryOp::Less
            | BinaryOp::Greater
            | BinaryOp::LessOrEqual
            | BinaryOp::GreaterOrEqual
            | BinaryOp::And
            | BinaryOp::Or
            | BinaryOp::Xor
            | BinaryOp::SquaredDifference => false,
        }
    }
}

/// Activations with parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    LeakyRelu {
        alpha: f32,
    },
    Elu {
        alpha: f32,
    },
    Selu {
        alpha: f32,
        gamma: f32,
    },
    Celu {
        alpha: f32,
    },
    /// `max(0, min(1, alpha * x + beta))`
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    Gelu {
        tanh_approx: bool,
    },
    /// Bounds are `None` when absent (no clipping on that side).
    Clip {
        min: Option<f32>,
        max: Option<f32>,
    },
    ThresholdedRelu {
        alpha: f32,
    },
    Mish,
    /// `x < -lambd ? x + bias : x > lambd ? x - bias : 0`
    Shrink {
        lambd: f32,
        bias: f32,
    },
}

impl Activation {
    pub fn name(&self) -> &'static str {
        match self {
            Activation::LeakyRelu { .. } => "LeakyRelu",
            Activation::Elu { .. } => "Elu",
            Activation::Selu { .. } => "Selu",
            Activation::Celu { .. } => "Celu",
            Activation::HardSigmoid { .. } => "HardSigmoid",
            Activation::HardSwish => "HardSwish",
            Activation::Gelu { .. } => "Gelu",
            Activation::Clip { .. } => "Clip",
            Activation::ThresholdedRelu { .. } => "ThresholdedRelu",
            Activation::Mish => "Mish",
            Activation::Shrink { .. } => "Shrink",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cast {
    pub to: DType,
}

pub fn infer_same(inputs: &Inputs, max: usize) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, max)?;
    Ok(vec![inputs.ty(0)?.clone()])
}

pub fn infer_unary(op: UnaryOp, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let t = inputs.ty(0)?;
    let out = match op {
        UnaryOp::IsNaN => TensorType::new(DType::Bool, t.shape.clone()),
        UnaryOp::Not if t.dtype != DType::Bool => return Err("Not needs bool input".into()),
        UnaryOp::BitwiseNot if !t.dtype.is_int() => {
            return Err(format!("BitwiseNot needs integer input, has {}", t.dtype))
        }
        UnaryOp::Abs
        | UnaryOp::Neg
        | UnaryOp::Sqrt
        | UnaryOp::Rsqrt
        | UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Reciprocal
        | UnaryOp::Erf
        | UnaryOp::Floor
        | UnaryOp::Ceil
        | UnaryOp::Round
        | UnaryOp::Sign
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Tan
        | UnaryOp::Asin
        | UnaryOp::Acos
        | UnaryOp::Atan
        | UnaryOp::Sinh
        | UnaryOp::Cosh
        | UnaryOp::Asinh
        | UnaryOp::Acosh
        | UnaryOp::Atanh
        | UnaryOp::Sigmoid
        | UnaryOp::Tanh
        | UnaryOp::Relu
        | UnaryOp::Softplus
        | UnaryOp::Softsign
        | UnaryOp::Not
        | UnaryOp::Square
        | UnaryOp::BitwiseNot => t.clone(),
    };
    Ok(vec![out])
}

pub fn infer_binary(op: BinaryOp, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 2)?;
    let (a, b) = (inputs.ty(0)?, inputs.ty(1)?);
    // Pow may raise to an exponent of another type; everything else needs equal types.
    if a.dtype != b.dtype && op != BinaryOp::Pow {
        return Err(format!("input types differ: {} and {}", a.dtype, b.dtype));
    }
    if op.is_bitwise() && !a.dtype.is_int() {
        return Err(format!("{op:?} needs integer inputs, has {}", a.dtype));
    }
    if matches!(op, BinaryOp::BitShiftLeft | BinaryOp::BitShiftRight) && !is_unsigned(a.dtype) {
        return Err(format!(
            "{op:?} needs unsigned integer inputs, has {}",
            a.dtype
        ));
    }
    let shape = if op == BinaryOp::PRelu {
        a.shape.clone()
    } else {
        broadcast(&a.shape, &b.shape)?
    };
    let dtype = if op.is_comparison() {
        DType::Bool
    } else {
        a.dtype
    };
    Ok(vec![TensorType::new(dtype, shape)])
}

fn is_unsigned(d: DType) -> bool {
    matches!(d, DType::U8 | DType::U16 | DType::U32 | DType::U64)
}

pub fn infer_where(inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(3, 3)?;
    if inputs.dtype(0)? != DType::Bool {
        return Err("Where condition must be bool".into());
    }
    if inputs.dtype(1)? != inputs.dtype(2)? {
        return Err("Where branches differ in type".into());
    }
    let s = broadcast(inputs.shape(0)?, inputs.shape(1)?)?;
    let s = broadcast(&s, inputs.shape(2)?)?;
    Ok(vec![TensorType::new(inputs.dtype(1)?, s)])
}

pub fn infer_cast(c: &Cast, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    Ok(vec![TensorType::new(c.to, inputs.shape(0)?.to_vec())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{fixed_shape, Dim};

    fn ins(ts: &[TensorType]) -> Inputs<'_> {
        Inputs::of_types(ts)
    }

    #[test]
    fn binary_broadcasts_and_keeps_symbols() {
        let a = TensorType::new(
            DType::F32,
            vec![Dim::Sym("batch".into()), Dim::Fixed(1), Dim::Fixed(4)],
        );
        let b = TensorType::new(DType::F32, fixed_shape(&[3, 1]));
        let out = infer_binary(BinaryOp::Add, &ins(&[a, b])).unwrap();
        assert_eq!(
            out[0].shape,
            vec![Dim::Sym("batch".into()), Dim::Fixed(3), Dim::Fixed(4)]
        );
    }

    #[test]
    fn comparison_gives_bool_and_mismatch_is_refused() {
        let a = TensorType::new(DType::F32, fixed_shape(&[2, 3]));
        let out = infer_binary(BinaryOp::Less, &ins(&[a.clone(), a.clone()])).unwrap();
        assert_eq!(out[0].dtype, DType::Bool);
        let c = TensorType::new(DType::F32, fixed_shape(&[4]));
        assert!(infer_binary(BinaryOp::Add, &ins(&[a.clone(), c])).is_err());
        let i = TensorType::new(DType::I64, fixed_shape(&[2, 3]));
        assert!(infer_binary(BinaryOp::Add, &ins(&[a, i])).is_err());
    }

    #[test]
    fn bit_ops_need_integers_and_shifts_unsigned() {
        let f = TensorType::new(DType::F32, fixed_shape(&[2, 3]));
        let i = TensorType::new(DType::I32, fixed_shape(&[2, 3]));
        let u = TensorType::new(DType::U8, fixed_shape(&[3]));
        let u2 = TensorType::new(DType::U8, fixed_shape(&[4, 1]));
        let out = infer_binary(BinaryOp::BitwiseXor, &ins(&[i.clone(), i.clone()])).unwrap();
        assert_eq!(out[0], i);
        assert!(infer_binary(BinaryOp::BitwiseAnd, &ins(&[f.clone(), f.clone()])).is_err());
        let out = infer_binary(BinaryOp::BitShiftLeft, &ins(&[u, u2])).unwrap();
        assert_eq!(out[0], TensorType::new(DType::U8, fixed_shape(&[4, 3])));
        assert!(infer_binary(BinaryOp::BitShiftRight, &ins(&[i.clone(), i.clone()])).is_err());
        assert_eq!(
            infer_unary(UnaryOp::BitwiseNot, &ins(std::slice::from_ref(&i))).unwrap()[0],
            i
        );
        assert!(infer_unary(UnaryOp::BitwiseNot, &ins(&[f])).is_err());
    }
}
