//! Elementwise IR ops → ONNX: unary and binary ops, bit ops, parametric activations (HardSwish
//! before opset 14, Gelu before 20 and Mish before 18 as their decompositions).

use super::super::emit::{attr_f, attr_i, attr_s, Emitter};
use super::{simple, R};
use crate::ir::ops::{Activation, BinaryOp, UnaryOp};
use crate::ir::DType;

/// The lowest opset [`unary`] can write `u` in.
pub fn unary_min_opset(u: UnaryOp) -> i64 {
    match u {
        UnaryOp::BitwiseNot => 18,
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
        | UnaryOp::IsNaN
        | UnaryOp::Square => 13,
    }
}

/// The lowest opset [`binary`] can write `b` in.
pub fn binary_min_opset(b: BinaryOp) -> i64 {
    match b {
        BinaryOp::BitwiseAnd | BinaryOp::BitwiseOr | BinaryOp::BitwiseXor => 18,
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
        | BinaryOp::SquaredDifference
        | BinaryOp::BitShiftLeft
        | BinaryOp::BitShiftRight => 13,
    }
}

/// The lowest opset [`activation`] can write `a` in: the ones newer than 13 (HardSwish, Mish,
/// Gelu) are decomposed there.
pub fn activation_min_opset(a: &Activation) -> i64 {
    match a {
        Activation::LeakyRelu { .. }
        | Activation::Elu { .. }
        | Activation::Selu { .. }
        | Activation::Celu { .. }
        | Activation::HardSigmoid { .. }
        | Activation::HardSwish
        | Activation::Gelu { .. }
        | Activation::Clip { .. }
        | Activation::ThresholdedRelu { .. }
        | Activation::Mish
        | Activation::Shrink { .. } => 13,
    }
}

pub fn unary(
    em: &mut Emitter,
    u: UnaryOp,
    name: &str,
    ins: Vec<String>,
    outs: Vec<String>,
    dtype: DType,
) -> R {
    let op = match u {
        UnaryOp::Abs => "Abs",
        UnaryOp::Neg => "Neg",
        UnaryOp::Sqrt => "Sqrt",
        UnaryOp::Rsqrt => {
            let s = em.tmp("Sqrt", name, ins, vec![]);
            return simple(em, "Reciprocal", name, vec![s], outs);
        }
        UnaryOp::Square => {
            return simple(em, "Mul", name, vec![ins[0].clone(), ins[0].clone()], outs)
        }
        UnaryOp::Exp => "Exp",
        UnaryOp::Log => "Log",
        UnaryOp::Reciprocal => "Reciprocal",
        UnaryOp::Erf => "Erf",
        UnaryOp::Floor => "Floor",
        UnaryOp::Ceil => "Ceil",
        UnaryOp::Round => "Round",
        UnaryOp::Sign => "Sign",
        UnaryOp::Sin => "Sin",
        UnaryOp::Cos => "Cos",
        UnaryOp::Tan => "Tan",
        UnaryOp::Asin => "Asin",
        UnaryOp::Acos => "Acos",
        UnaryOp::Atan => "Atan",
        UnaryOp::Sinh => "Sinh",
        UnaryOp::Cosh => "Cosh",
        UnaryOp::Asinh => "Asinh",
        UnaryOp::Acosh => "Acosh",
        UnaryOp::Atanh => "Atanh",
        UnaryOp::Sigmoid => "Sigmoid",
        UnaryOp::Tanh => "Tanh",
        UnaryOp::Relu => "Relu",
        UnaryOp::Softplus => "Softplus",
        UnaryOp::Softsign => "Softsign",
        UnaryOp::Not => "Not",
        UnaryOp::IsNaN => "IsNaN",
        UnaryOp::BitwiseNot => "BitwiseNot",
    };
    let _ = dtype;
    simple(em, op, name, ins, outs)
}

pub fn binary(em: &mut Emitter, b: BinaryOp, name: &str, ins: Vec<String>, outs: Vec<String>) -> R {
    let (op, attrs) = match b {
        BinaryOp::Add => ("Add", vec![]),
        BinaryOp::Sub => ("Sub", vec![]),
        BinaryOp::Mul => ("Mul", vec![]),
        BinaryOp::Div => ("Div", vec![]),
        BinaryOp::Pow => ("Pow", vec![]),
        BinaryOp::Min => ("Min", vec![]),
        BinaryOp::Max => ("Max", vec![]),
        BinaryOp::Mod => ("Mod", vec![]),
        BinaryOp::Fmod => ("Mod", vec![attr_i("fmod", 1)]),
        BinaryOp::PRelu => ("PRelu", vec![]),
        BinaryOp::Equal => ("Equal", vec![]),
        BinaryOp::Less => ("Less", vec![]),
        BinaryOp::Greater => ("Greater", vec![]),
        BinaryOp::LessOrEqual => ("LessOrEqual", vec![]),
        BinaryOp::GreaterOrEqual => ("GreaterOrEqual", vec![]),
        BinaryOp::And => ("And", vec![]),
        BinaryOp::Or => ("Or", vec![]),
        BinaryOp::Xor => ("Xor", vec![]),
        BinaryOp::SquaredDifference => {
            let d = em.tmp("Sub", name, ins, vec![]);
            return simple(em, "Mul", name, vec![d.clone(), d], outs);
        }
        BinaryOp::BitShiftLeft => ("BitShift", vec![attr_s("direction", "LEFT")]),
        BinaryOp::BitShiftRight => ("BitShift", vec![attr_s("direction", "RIGHT")]),
        BinaryOp::BitwiseAnd => ("BitwiseAnd", vec![]),
        BinaryOp::BitwiseOr => ("BitwiseOr", vec![]),
        BinaryOp::BitwiseXor => ("BitwiseXor", vec![]),
    };
    em.node(op, name, ins, outs, attrs);
    Ok(())
}

pub fn activation(
    em: &mut Emitter,
    a: &Activation,
    name: &str,
    ins: Vec<String>,
    outs: Vec<String>,
    dtype: DType,
) -> R {
    let x = ins[0].clone();
    match *a {
        Activation::LeakyRelu { alpha } => {
            em.node("LeakyRelu", name, ins, outs, vec![attr_f("alpha", alpha)])
        }
        Activation::Elu { alpha } => em.node("Elu", name, ins, outs, vec![attr_f("alpha", alpha)]),
        Activation::Selu { alpha, gamma } => em.node(
            "Selu",
            name,
            ins,
            outs,
            vec![attr_f("alpha", alpha), attr_f("gamma", gamma)],
        ),
        Activation::Celu { alpha } => {
            em.node("Celu", name, ins, outs, vec![attr_f("alpha", alpha)])
        }
        Activation::HardSigmoid { alpha, beta } => em.node(
            "HardSigmoid",
            name,
            ins,
            outs,
            vec![attr_f("alpha", alpha), attr_f("beta", beta)],
        ),
        Activation::HardSwish if em.opset >= 14 => em.node("HardSwish", name, ins, outs, vec![]),
        Activation::HardSwish => {
            let h = em.tmp(
                "HardSigmoid",
                name,
                vec![x.clone()],
                vec![attr_f("alpha", 1.0 / 6.0), attr_f("beta", 0.5)],
            );
            em.node("Mul", name, vec![x, h], outs, vec![]);
        }
        Activation::Gelu { tanh_approx } if em.opset >= 20 => {
            let mode = if tanh_approx { "tanh" } else { "none" };
            em.node("Gelu", name, ins, outs, vec![attr_s("approximate", mode)]);
        }
        Activation::Gelu { tanh_approx } => gelu_decomposed(em, name, x, outs, dtype, tanh_approx),
        Activation::Clip { min, max } => {
            let lo = min.map_or(String::new(), |v| {
                em.scalar(&format!("{name}/min"), dtype, v as f64)
            });
            let hi = max.map_or(String::new(), |v| {
                em.scalar(&format!("{name}/max"), dtype, v as f64)
            });
            let mut inputs = vec![x, lo, hi];
            while inputs.last().is_some_and(|s| s.is_empty()) {
                inputs.pop();
            }
            em.node("Clip", name, inputs, outs, vec![]);
        }
        Activation::ThresholdedRelu { alpha } => em.node(
            "ThresholdedRelu",
            name,
            ins,
            outs,
            vec![attr_f("alpha", alpha)],
        ),
        Activation::Mish if em.opset >= 18 => em.node("Mish", name, ins, outs, vec![]),
        Activation::Mish => {
            let sp = em.tmp("Softplus", name, vec![x.clone()], vec![]);
            let t = em.tmp("Tanh", name, vec![sp], vec![]);
            em.node("Mul", name, vec![x, t], outs, vec![]);
        }
        Activation::Shrink { lambd, bias } => em.node(
            "Shrink",
            name,
            ins,
            outs,
            vec![attr_f("lambd", lambd), attr_f("bias", bias)],
        ),
    }
    Ok(())
}

/// GELU before opset 20: `0.5·x·(1 + erf(x/√2))`, or the tanh form
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
fn gelu_decomposed(
    em: &mut Emitter,
    name: &str,
    x: String,
    outs: Vec<String>,
    dtype: DType,
    tanh: bool,
) {
    let inner = if tanh {
        let c3 = em.scalar(&format!("{name}/c"), dtype, 0.044715);
        let k = em.scalar(
            &format!("{name}/k"),
            dtype,
            (2.0 / std::f64::consts::PI).sqrt(),
        );
        let x2 = em.tmp("Mul", name, vec![x.clone(), x.clone()], vec![]);
        let x3 = em.tmp("Mul", name, vec![x2, x.clone()], vec![]);
        let t = em.tmp("Mul", name, vec![x3, c3], vec![]);
        let s = em.tmp("Add", name, vec![x.clone(), t], vec![]);
        let u = em.tmp("Mul", name, vec![s, k], vec![]);
        em.tmp("Tanh", name, vec![u], vec![])
    } else {
        let r = em.scalar(
            &format!("{name}/rsqrt2"),
            dtype,
            std::f64::consts::FRAC_1_SQRT_2,
        );
        let u = em.tmp("Mul", name, vec![x.clone(), r], vec![]);
        em.tmp("Erf", name, vec![u], vec![])
    };
    let one = em.scalar(&format!("{name}/one"), dtype, 1.0);
    let half = em.scalar(&format!("{name}/half"), dtype, 0.5);
    let p = em.tmp("Add", name, vec![inner, one], vec![]);
    let hx = em.tmp("Mul", name, vec![x, half], vec![]);
    em.node("Mul", name, vec![hx, p], outs, vec![]);
}
