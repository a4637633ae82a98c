//! Activations as TF ops: LeakyRelu, Elu, Relu6/Relu/ClipByValue natively; HardSwish and Shrink
//! as short compositions, GELU (erf or tanh form) as the shared one of `passes::decompose`. The
//! others (Selu, Celu, HardSigmoid, ThresholdedRelu, Mish, Elu with alpha ≠ 1, one-sided Clips)
//! are lowered by legalization.

use super::emit::{a_float, a_type, Gx};
use crate::ir::ops::Activation;
use crate::ir::{DType, Node};
use crate::passes::decompose::{self, Prims};

pub fn activation(gx: &mut Gx, n: &Node, a: &Activation) -> Result<String, String> {
    let x = gx.r(n.inputs[0])?;
    let dt = gx.g.ty(n.inputs[0]).dtype;
    let t = || ("T", a_type(dt));
    Ok(match *a {
        Activation::LeakyRelu { alpha } => gx.node(
            "",
            "LeakyRelu",
            vec![x],
            vec![t(), ("alpha", a_float(alpha))],
        ),
        Activation::Elu { alpha: 1.0 } => gx.node("", "Elu", vec![x], vec![t()]),
        Activation::Clip {
            min: Some(lo),
            max: Some(hi),
        } if lo == 0.0 && hi == 6.0 => gx.node("", "Relu6", vec![x], vec![t()]),
        Activation::Clip {
            min: Some(0.0),
            max: None,
        } => gx.node("", "Relu", vec![x], vec![t()]),
        Activation::Clip {
            min: Some(lo),
            max: Some(hi),
        } => {
            let lo = gx.float("min", lo)?;
            let hi = gx.float("max", hi)?;
            gx.node("", "ClipByValue", vec![x, lo, hi], vec![t()])
        }
        Activation::HardSwish => {
            // x · relu6(x + 3) / 6
            let three = gx.float("three", 3.0)?;
            let s = gx.node("plus3", "AddV2", vec![x.clone(), three], vec![t()]);
            let r = gx.node("relu6", "Relu6", vec![s], vec![t()]);
            let m = gx.node("times_x", "Mul", vec![x, r], vec![t()]);
            let sixth = gx.float("sixth", 1.0 / 6.0)?;
            gx.node("", "Mul", vec![m, sixth], vec![t()])
        }
        Activation::Gelu { tanh_approx } => {
            decompose::gelu(&mut TfPrims { gx, dt }, x, tanh_approx)?
        }
        Activation::Elu { .. }
        | Activation::Selu { .. }
        | Activation::Celu { .. }
        | Activation::HardSigmoid { .. }
        | Activation::ThresholdedRelu { .. }
        | Activation::Mish
        | Activation::Clip { .. } => {
            return Err(format!("{} not lowered by legalization", a.name()))
        }
        Activation::Shrink { lambd, bias } => {
            // x < -λ: x + bias; x > λ: x - bias; else 0.
            let lo = gx.float("neg_lambd", -lambd)?;
            let hi = gx.float("lambd", lambd)?;
            let b = gx.float("bias", bias)?;
            let zero = gx.float("zero", 0.0)?;
            let below = gx.node("below", "Less", vec![x.clone(), lo], vec![t()]);
            let above = gx.node("above", "Greater", vec![x.clone(), hi], vec![t()]);
            let plus = gx.node("plus", "AddV2", vec![x.clone(), b.clone()], vec![t()]);
            let minus = gx.node("minus", "Sub", vec![x, b], vec![t()]);
            let upper = gx.node("upper", "SelectV2", vec![above, minus, zero], vec![t()]);
            gx.node("", "SelectV2", vec![below, plus, upper], vec![t()])
        }
    })
}

/// Decompositions as TF ops of the node being written: steps and constants are named after
/// their step, the result after the node.
struct TfPrims<'a, 'g> {
    gx: &'a mut Gx<'g>,
    dt: DType,
}

impl TfPrims<'_, '_> {
    fn node(&mut self, tag: &str, op: &str, ins: Vec<String>) -> String {
        self.gx.node(tag, op, ins, vec![("T", a_type(self.dt))])
    }
}

impl Prims for TfPrims<'_, '_> {
    type Value = String;
    fn constant(&mut self, tag: &str, v: f64) -> Result<String, String> {
        // GELU's 1/√2 has always been `k` in graph models (ONNX calls it `rsqrt2`); kept so the
        // models stay byte-identical.
        let tag = if tag == "rsqrt2" { "k" } else { tag };
        self.gx.float(tag, v as f32)
    }
    fn unary(&mut self, tag: &str, op: decompose::Unary, x: String) -> Result<String, String> {
        let op = match op {
            decompose::Unary::Square => "Square",
            decompose::Unary::Tanh => "Tanh",
            decompose::Unary::Erf => "Erf",
            decompose::Unary::Softplus => "Softplus",
        };
        Ok(self.node(tag, op, vec![x]))
    }
    fn binary(
        &mut self,
        tag: &str,
        op: decompose::Binary,
        a: String,
        b: String,
    ) -> Result<String, String> {
        let op = match op {
            decompose::Binary::Add => "AddV2",
            decompose::Binary::Mul => "Mul",
        };
        Ok(self.node(tag, op, vec![a, b]))
    }
}
