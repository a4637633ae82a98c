//! Activations as TF ops: LeakyRelu, Elu, Relu6/Relu/ClipByValue natively; HardSwish, GELU
//! (erf or tanh form) and Shrink as short compositions. The others (Selu, Celu, HardSigmoid,
//! ThresholdedRelu, Mish, Elu with alpha ≠ 1, one-sided Clips) are lowered by legalization.

use super::emit::{a_float, a_type, Gx};
use crate::ir::ops::Activation;
use crate::ir::Node;

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
            // 0.5 · x · (1 + erf(x / √2)), or with tanh(√(2/π) · (x + 0.044715 · x³)).
            let inner = if tanh_approx {
                let x2 = gx.node("x2", "Square", vec![x.clone()], vec![t()]);
                let x3 = gx.node("x3", "Mul", vec![x2, x.clone()], vec![t()]);
                let c = gx.float("c", 0.044715)?;
                let cx3 = gx.node("cx3", "Mul", vec![x3, c], vec![t()]);
                let s = gx.node("sum", "AddV2", vec![x.clone(), cx3], vec![t()]);
                let k = gx.float("k", (2.0f64 / std::f64::consts::PI).sqrt() as f32)?;
                let ks = gx.node("scaled", "Mul", vec![s, k], vec![t()]);
                gx.node("tanh", "Tanh", vec![ks], vec![t()])
            } else {
                let k = gx.float("k", std::f32::consts::FRAC_1_SQRT_2)?;
                let xs = gx.node("scaled", "Mul", vec![x.clone(), k], vec![t()]);
                gx.node("erf", "Erf", vec![xs], vec![t()])
            };
            let one = gx.float("one", 1.0)?;
            let p = gx.node("one_plus", "AddV2", vec![inner, one], vec![t()]);
            let half = gx.float("half", 0.5)?;
            let hx = gx.node("half_x", "Mul", vec![x, half], vec![t()]);
            gx.node("", "Mul", vec![hx, p], vec![t()])
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
