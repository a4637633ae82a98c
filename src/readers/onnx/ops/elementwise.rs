//! Elementwise ONNX ops → `Unary`, `Binary`, `Activation`, `Where`, `Cast`. Variadic Sum, Mean,
//! Max, Min become chains of binary ops. Identity and Dropout (inference) alias their input;
//! Dropout's mask is all kept; OptionalGetElement of a tensor is it too. ML's Binarizer is a Where. Swish and IsInf are written as the comparisons and products they are.
//! BitShift's direction picks the shift op; Shrink, unlike the other activations, takes integers.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::{Activation, BinaryOp, Cast, ConstantOfShape, ShapeOf, UnaryOp};
use crate::ir::{DType, Op, Tensor, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Abs" | "Neg" | "Sqrt" | "Exp" | "Log" | "Reciprocal" | "Erf" | "Floor" | "Ceil"
        | "Round" | "Sign" | "Sin" | "Cos" | "Tan" | "Asin" | "Acos" | "Atan" | "Sinh" | "Cosh"
        | "Asinh" | "Acosh" | "Atanh" | "Sigmoid" | "Tanh" | "Relu" | "Softplus" | "Softsign"
        | "Not" | "IsNaN" | "BitwiseNot" => unary,
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Equal" | "Less" | "Greater" | "LessOrEqual"
        | "GreaterOrEqual" | "And" | "Or" | "Xor" | "Mod" | "PRelu" | "BitShift" | "BitwiseAnd"
        | "BitwiseOr" | "BitwiseXor" => binary,
        "Sum" | "Mean" | "Max" | "Min" => variadic,
        "LeakyRelu" | "Elu" | "Selu" | "Celu" | "HardSigmoid" | "HardSwish" | "Gelu"
        | "ThresholdedRelu" | "Mish" | "Shrink" => activation,
        "Clip" => clip,
        "Where" => where_,
        "Cast" => cast,
        "CastLike" => cast_like,
        "Identity" | "Dropout" => identity,
        "Swish" => swish,
        "OptionalGetElement" => identity,
        "OptionalHasElement" => has_element,
        "ai.onnx.ml:Binarizer" => binarize,
        "IsInf" => is_inf,
        _ => return None,
    })
}

fn unary(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let u = match ctx.node.op_type.as_str() {
        "Abs" => UnaryOp::Abs,
        "Neg" => UnaryOp::Neg,
        "Sqrt" => UnaryOp::Sqrt,
        "Exp" => UnaryOp::Exp,
        "Log" => UnaryOp::Log,
        "Reciprocal" => UnaryOp::Reciprocal,
        "Erf" => UnaryOp::Erf,
        "Floor" => UnaryOp::Floor,
        "Ceil" => UnaryOp::Ceil,
        "Round" => UnaryOp::Round,
        "Sign" => UnaryOp::Sign,
        "Sin" => UnaryOp::Sin,
        "Cos" => UnaryOp::Cos,
        "Tan" => UnaryOp::Tan,
        "Asin" => UnaryOp::Asin,
        "Acos" => UnaryOp::Acos,
        "Atan" => UnaryOp::Atan,
        "Sinh" => UnaryOp::Sinh,
        "Cosh" => UnaryOp::Cosh,
        "Asinh" => UnaryOp::Asinh,
        "Acosh" => UnaryOp::Acosh,
        "Atanh" => UnaryOp::Atanh,
        "Sigmoid" => UnaryOp::Sigmoid,
        "Tanh" => UnaryOp::Tanh,
        "Relu" => UnaryOp::Relu,
        "Softplus" => UnaryOp::Softplus,
        "Softsign" => UnaryOp::Softsign,
        "Not" => UnaryOp::Not,
        "BitwiseNot" => UnaryOp::BitwiseNot,
        _ => UnaryOp::IsNaN,
    };
    imp.emit(&ctx.name, Op::Unary(u), vec![ctx.input(0)?])
}

fn binary_op(op_type: &str, fmod: bool) -> BinaryOp {
    match op_type {
        "Add" | "Sum" => BinaryOp::Add,
        "Sub" => BinaryOp::Sub,
        "Mul" => BinaryOp::Mul,
        "Div" => BinaryOp::Div,
        "Pow" => BinaryOp::Pow,
        "Equal" => BinaryOp::Equal,
        "Less" => BinaryOp::Less,
        "Greater" => BinaryOp::Greater,
        "LessOrEqual" => BinaryOp::LessOrEqual,
        "GreaterOrEqual" => BinaryOp::GreaterOrEqual,
        "And" => BinaryOp::And,
        "Or" => BinaryOp::Or,
        "Xor" => BinaryOp::Xor,
        "Mod" if fmod => BinaryOp::Fmod,
        "Mod" => BinaryOp::Mod,
        "PRelu" => BinaryOp::PRelu,
        "BitwiseAnd" => BinaryOp::BitwiseAnd,
        "BitwiseOr" => BinaryOp::BitwiseOr,
        "BitwiseXor" => BinaryOp::BitwiseXor,
        "Max" => BinaryOp::Max,
        _ => BinaryOp::Min,
    }
}

fn binary(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let b = match ctx.node.op_type.as_str() {
        "BitShift" => match ctx.string("direction", "").as_str() {
            "LEFT" => BinaryOp::BitShiftLeft,
            "RIGHT" => BinaryOp::BitShiftRight,
            d => return unsupported(format!("BitShift direction '{d}'")),
        },
        op => binary_op(op, ctx.int("fmod", 0) == 1),
    };
    let (x, mut y) = (ctx.input(0)?, ctx.input(1)?);
    let (tx, ty) = (imp.g.ty(x).clone(), imp.g.ty(y).clone());
    if b == BinaryOp::Pow && tx.dtype != ty.dtype {
        // ONNX Pow allows a different exponent type; the IR wants one type, so cast the exponent.
        y = imp.emit1(
            &format!("{}/exponent", ctx.name),
            Op::Cast(Cast { to: tx.dtype }),
            vec![y],
        )?;
    }
    if b == BinaryOp::PRelu && ty.rank() > tx.rank() {
        return Err(NodeError::Invalid(
            "PRelu slope has a higher rank than its input".into(),
        ));
    }
    imp.emit(&ctx.name, Op::Binary(b), vec![x, y])
}

/// Sum/Mean/Max/Min of any number of inputs, as a left fold of binary ops.
fn variadic(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let b = binary_op(&ctx.node.op_type, false);
    let b = if ctx.node.op_type == "Mean" {
        BinaryOp::Add
    } else {
        b
    };
    let n = ctx.inputs.len();
    let mut acc = ctx.input(0)?;
    for i in 1..n {
        acc = imp.emit1(
            &format!("{}/{i}", ctx.name),
            Op::Binary(b),
            vec![acc, ctx.input(i)?],
        )?;
    }
    if ctx.node.op_type == "Mean" && n > 1 {
        let dt = imp.g.ty(acc).dtype;
        let k = imp.add_const(
            &format!("{}/count", ctx.name),
            Tensor::from_f64s(dt, vec![], &[n as f64]),
        );
        acc = imp.emit1(
            &format!("{}/mean", ctx.name),
            Op::Binary(BinaryOp::Div),
            vec![acc, k],
        )?;
    }
    Ok(vec![acc])
}

fn activation(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let a = match ctx.node.op_type.as_str() {
        "LeakyRelu" => Activation::LeakyRelu {
            alpha: ctx.float("alpha", 0.01),
        },
        "Elu" => Activation::Elu {
            alpha: ctx.float("alpha", 1.0),
        },
        "Selu" => Activation::Selu {
            alpha: ctx.float("alpha", 1.673_263_2),
            gamma: ctx.float("gamma", 1.050_701),
        },
        "Celu" => Activation::Celu {
            alpha: ctx.float("alpha", 1.0),
        },
        "HardSigmoid" => Activation::HardSigmoid {
            alpha: ctx.float("alpha", 0.2),
            beta: ctx.float("beta", 0.5),
        },
        "HardSwish" => Activation::HardSwish,
        "ThresholdedRelu" => Activation::ThresholdedRelu {
            alpha: ctx.float("alpha", 1.0),
        },
        "Mish" => Activation::Mish,
        "Shrink" => {
            // Numeric types, not only floats: bypasses the float check below.
            let a = Activation::Shrink {
                lambd: ctx.float("lambd", 0.5),
                bias: ctx.float("bias", 0.0),
            };
            return imp.emit(&ctx.name, Op::Activation(a), vec![ctx.input(0)?]);
        }
        _ => match ctx.string("approximate", "none").as_str() {
            "none" => Activation::Gelu { tanh_approx: false },
            "tanh" => Activation::Gelu { tanh_approx: true },
            other => return unsupported(format!("Gelu approximate='{other}'")),
        },
    };
    float_only(imp, ctx)?;
    imp.emit(&ctx.name, Op::Activation(a), vec![ctx.input(0)?])
}

fn float_only(imp: &Importer, ctx: &NodeCtx) -> NodeResult<()> {
    let dt = imp.g.ty(ctx.input(0)?).dtype;
    if !dt.is_float() {
        return unsupported(format!("{} on {dt} tensors", ctx.node.op_type));
    }
    Ok(())
}

fn clip(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let at_run_time = |i: usize| {
        ctx.opt_input(i)
            .is_some_and(|v| imp.g.constant(v).is_none())
    };
    if imp.opset >= 11 && (at_run_time(1) || at_run_time(2)) {
        // Bounds computed by the graph: `min(max(x, lo), hi)`, as the operator defines it.
        let mut v = x;
        for (i, op) in [(1, BinaryOp::Max), (2, BinaryOp::Min)] {
            if let Some(b) = ctx.opt_input(i) {
                v = imp.emit1(&format!("{}/{op:?}", ctx.name), Op::Binary(op), vec![v, b])?;
            }
        }
        return Ok(vec![v]);
    }
    let bound = |imp: &Importer, attr: &str, i: usize| -> NodeResult<Option<f32>> {
        if imp.opset < 11 {
            return Ok(ctx.attr(attr).map(|a| a.f));
        }
        match ctx.opt_input(i) {
            None => Ok(None),
            Some(v) => match imp.const_floats(v) {
                Some(f) if f.len() == 1 => Ok(Some(f[0] as f32)),
                _ => unsupported("Clip bounds computed at run time"),
            },
        }
    };
    let (min, max) = (bound(imp, "min", 1)?, bound(imp, "max", 2)?);
    let dt = imp.g.ty(x).dtype;
    if !dt.is_float() {
        // Integer clip: min/max against constants keeps the exact integer semantics.
        let mut v = x;
        for (b, op) in [(min, BinaryOp::Max), (max, BinaryOp::Min)] {
            if let Some(b) = b {
                let c = imp.add_const(
                    &format!("{}/bound", ctx.name),
                    Tensor::from_f64s(dt, vec![], &[b as f64]),
                );
                v = imp.emit1(&format!("{}/{op:?}", ctx.name), Op::Binary(op), vec![v, c])?;
            }
        }
        return Ok(vec![v]);
    }
    imp.emit(
        &ctx.name,
        Op::Activation(Activation::Clip { min, max }),
        vec![x],
    )
}

fn where_(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    imp.emit(
        &ctx.name,
        Op::Where,
        vec![ctx.input(0)?, ctx.input(1)?, ctx.input(2)?],
    )
}

fn cast(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let code = ctx.int("to", 1) as i32;
    let Some(to) = crate::formats::onnx::dtype_from_onnx(code) else {
        return unsupported(format!("Cast to element type {code}"));
    };
    cast_to(imp, ctx, to)
}

fn cast_like(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let to = imp.g.ty(ctx.input(1)?).dtype;
    cast_to(imp, ctx, to)
}

fn cast_to(imp: &mut Importer, ctx: &NodeCtx, to: DType) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    if imp.g.ty(x).dtype == to {
        return Ok(vec![x]);
    }
    imp.emit(&ctx.name, Op::Cast(Cast { to }), vec![x])
}

fn identity(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    // Dropout at inference is the identity; its optional mask output is not produced.
    if ctx.node.op_type == "Dropout" {
        let training = match ctx.opt_input(2) {
            None => ctx.int("is_test", 1) == 0 && imp.opset < 7,
            Some(t) => imp
                .const_ints(t)
                .is_none_or(|v| v.first().copied().unwrap_or(0) != 0),
        };
        if training {
            return unsupported("Dropout in training mode (random at run time)");
        }
    }
    let x = ctx.input(0)?;
    if ctx.node.op_type == "Dropout" && ctx.node.output.get(1).is_some_and(|o| !o.is_empty()) {
        return Ok(vec![x, inference_mask(imp, ctx, x)?]);
    }
    Ok(vec![x])
}

/// Dropout's mask at inference: every element kept (`true`; ones of the input's type before
/// opset 10, where the mask had that type).
fn inference_mask(imp: &mut Importer, ctx: &NodeCtx, x: ValueId) -> NodeResult<ValueId> {
    let ty = imp.g.ty(x).clone();
    let dtype = if imp.opset < 10 {
        ty.dtype
    } else {
        DType::Bool
    };
    let mut b = Build::new(imp, &ctx.name);
    let shape = Op::ShapeOf(ShapeOf {
        start: 0,
        end: ty.rank(),
    });
    let shape = b.op("shape", shape, vec![x])?;
    let value = Tensor::from_f64s(dtype, vec![], &[1.0]);
    b.op(
        "mask",
        Op::ConstantOfShape(ConstantOfShape { value }),
        vec![shape],
    )
}

/// OptionalHasElement: the IR's values are plain tensors, so an input present is an element.
fn has_element(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let present = ctx.opt_input(0).is_some();
    let t = Tensor::from_f64s(DType::Bool, vec![], &[present as u8 as f64]);
    Ok(vec![imp.add_const(&ctx.name, t)])
}

/// ai.onnx.ml Binarizer: 1 where `x > threshold`, else 0, in x's type.
fn binarize(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let dt = imp.g.ty(x).dtype;
    let mut b = Build::new(imp, &ctx.name);
    let t = b.scalar("threshold", dt, ctx.float("threshold", 0.0) as f64);
    let above = b.bin(BinaryOp::Greater, x, t)?;
    let (one, zero) = (b.scalar("one", dt, 1.0), b.scalar("zero", dt, 0.0));
    Ok(vec![b.op("select", Op::Where, vec![above, one, zero])?])
}

/// `x · sigmoid(alpha · x)` (Swish-24; SiLU when alpha is 1).
fn swish(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let alpha = ctx.float("alpha", 1.0);
    let dt = imp.g.ty(x).dtype;
    let mut b = Build::new(imp, &ctx.name);
    let scaled = if alpha == 1.0 {
        x
    } else {
        let a = b.scalar("alpha", dt, alpha as f64);
        b.bin(BinaryOp::Mul, x, a)?
    };
    let gate = b.un(UnaryOp::Sigmoid, scaled)?;
    Ok(vec![b.bin(BinaryOp::Mul, x, gate)?])
}

/// `x == +inf` and/or `x == -inf`, as `detect_positive` / `detect_negative` ask.
fn is_inf(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let dt = imp.g.ty(x).dtype;
    if !dt.is_float() {
        return unsupported(format!("IsInf on {dt} tensors"));
    }
    let (pos, neg) = (
        ctx.int("detect_positive", 1) != 0,
        ctx.int("detect_negative", 1) != 0,
    );
    let mut b = Build::new(imp, &ctx.name);
    let mut hits = vec![];
    for (on, v) in [(pos, f64::INFINITY), (neg, f64::NEG_INFINITY)] {
        if on {
            let inf = b.scalar("inf", dt, v);
            hits.push(b.bin(BinaryOp::Equal, x, inf)?);
        }
    }
    Ok(vec![match hits[..] {
        [a, c] => b.bin(BinaryOp::Or, a, c)?,
        [a] => a,
        _ => {
            // Neither sign detected: all false, shaped like x.
            let never = b.scalar("nan", dt, f64::NAN);
            b.bin(BinaryOp::Equal, x, never)?
        }
    }])
}
