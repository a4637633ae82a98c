//! Elementwise IR ops → ONNX: unary and binary ops, bit ops, parametric activations (HardSwish
//! before opset 14, Gelu before 20 and Mish before 18 as their decompositions; Gelu's and Mish's
//! are the shared ones of `passes::decompose`).

use super::super::emit::{attr_f, attr_i, attr_s, Emitter};
use super::{simple, R};
use crate::ir::ops::{Activation, BinaryOp, UnaryOp};
use crate::ir::DType;
use crate::passes::decompose::{self, Prims, RESULT};

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
        Activation::Gelu { tanh_approx } => {
            let mut p = OnnxPrims::new(em, name, dtype, outs);
            decompose::gelu(&mut p, x, tanh_approx)?;
        }
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
            decompose::mish(&mut OnnxPrims::new(em, name, dtype, outs), x)?;
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

/// Decompositions as ONNX nodes of node `name`: steps are named after their op type like the
/// writer's other intermediate values, constants after their step; the result goes to `outs`.
struct OnnxPrims<'e, 'g> {
    em: &'e mut Emitter<'g>,
    name: &'e str,
    dtype: DType,
    outs: Option<Vec<String>>,
}

impl<'e, 'g> OnnxPrims<'e, 'g> {
    fn new(em: &'e mut Emitter<'g>, name: &'e str, dtype: DType, outs: Vec<String>) -> Self {
        OnnxPrims {
            em,
            name,
            dtype,
            outs: Some(outs),
        }
    }

    fn emit(&mut self, tag: &str, op: &str, ins: Vec<String>) -> Result<String, String> {
        if tag != RESULT {
            return Ok(self.em.tmp(op, self.name, ins, vec![]));
        }
        let outs = self.outs.take().ok_or("a decomposition with two results")?;
        let out = outs.first().cloned().unwrap_or_default();
        self.em.node(op, self.name, ins, outs, vec![]);
        Ok(out)
    }
}

impl Prims for OnnxPrims<'_, '_> {
    type Value = String;
    fn constant(&mut self, tag: &str, v: f64) -> Result<String, String> {
        Ok(self
            .em
            .scalar(&format!("{}/{tag}", self.name), self.dtype, v))
    }
    fn unary(&mut self, tag: &str, op: decompose::Unary, x: String) -> Result<String, String> {
        match op {
            decompose::Unary::Square => self.emit(tag, "Mul", vec![x.clone(), x]),
            decompose::Unary::Tanh => self.emit(tag, "Tanh", vec![x]),
            decompose::Unary::Erf => self.emit(tag, "Erf", vec![x]),
            decompose::Unary::Softplus => self.emit(tag, "Softplus", vec![x]),
        }
    }
    fn binary(
        &mut self,
        tag: &str,
        op: decompose::Binary,
        a: String,
        b: String,
    ) -> Result<String, String> {
        match op {
            decompose::Binary::Add => self.emit(tag, "Add", vec![a, b]),
            decompose::Binary::Mul => self.emit(tag, "Mul", vec![a, b]),
        }
    }
}
