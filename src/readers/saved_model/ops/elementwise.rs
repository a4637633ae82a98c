//! Elementwise TF ops: arithmetic (Add/AddV2, AddN, Sub, Mul, RealDiv, Div, DivNoNan, FloorDiv,
//! FloorMod, TruncateDiv, TruncateMod/Mod, Maximum, Minimum, Pow, SquaredDifference), comparisons
//! and logic, unary math (Sqrt, Rsqrt, Square, Exp, Expm1, Log, Log1p, Neg, Abs, Erf, Erfc, the
//! trigonometric and hyperbolic functions, IsNan, IsInf…), ZerosLike/OnesLike, activations (Relu, Relu6, Elu, Selu, LeakyRelu, Sigmoid, Tanh,
//! Softplus, Softsign), tfjs's Prelu, ClipByValue, Select/SelectV2 and Cast. TF broadcasts numpy-style, as the IR does.

use super::super::tensor::TfNode;
use super::{scalar_like, Handler};
use crate::ir::ops::{Activation, BinaryOp, Cast, UnaryOp};
use crate::ir::{Op, ValueId};
use crate::readers::builder::{unsupported, GraphBuilder, NodeResult};
use crate::readers::tf_common::arith;

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Add" | "AddV2" | "Sub" | "Mul" | "RealDiv" | "Div" | "Maximum" | "Minimum" | "Pow"
        | "SquaredDifference" | "Greater" | "GreaterEqual" | "Less" | "LessEqual" | "Equal"
        | "LogicalAnd" | "LogicalOr" | "Prelu" | "TruncateMod" | "Mod" | "TruncateDiv" => binary,
        "FloorDiv" | "FloorMod" | "AddN" => floor_or_sum,
        "NotEqual" => not_equal,
        "DivNoNan" => div_no_nan,
        "Sqrt" | "Rsqrt" | "Square" | "Exp" | "Log" | "Neg" | "Abs" | "Erf" | "Floor" | "Ceil"
        | "Round" | "Sign" | "Reciprocal" | "Inv" | "Sin" | "Cos" | "Sigmoid" | "Tanh" | "Relu"
        | "Softplus" | "Softsign" | "LogicalNot" | "Tan" | "Asin" | "Acos" | "Atan" | "Sinh"
        | "Cosh" | "Asinh" | "Acosh" | "Atanh" | "IsNan" => unary,
        "Log1p" | "Expm1" | "IsInf" => unary_composed,
        "ZerosLike" | "OnesLike" => filled_like,
        "Erfc" => erfc,
        "Relu6" | "Elu" | "Selu" | "LeakyRelu" => activation,
        "ClipByValue" => clip_by_value,
        "Select" | "SelectV2" => select,
        "Cast" => cast,
        _ => return None,
    })
}

fn binary(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let op = match n.op() {
        "Add" | "AddV2" => BinaryOp::Add,
        "Sub" => BinaryOp::Sub,
        "Mul" => BinaryOp::Mul,
        "RealDiv" => BinaryOp::Div,
        "Div" => {
            // TF integer Div rounds toward -inf; the IR's truncates.
            if !b.g.ty(n.input(0)?).dtype.is_float() {
                return arith::floor_div(b, &n.name, n.input(0)?, n.input(1)?);
            }
            BinaryOp::Div
        }
        "TruncateDiv" => {
            // The IR's integer Div truncates, as TruncateDiv does; floats would need a trunc.
            if b.g.ty(n.input(0)?).dtype.is_float() {
                return unsupported("TruncateDiv of floats");
            }
            BinaryOp::Div
        }
        // C's remainder (the dividend's sign), ONNX's fmod.
        "TruncateMod" | "Mod" => BinaryOp::Fmod,
        "Maximum" => BinaryOp::Max,
        // tfjs's own op (Keras PReLU in a TF.js graph model): x, or alpha·x below zero.
        "Prelu" => BinaryOp::PRelu,
        "Minimum" => BinaryOp::Min,
        "Pow" => BinaryOp::Pow,
        "SquaredDifference" => BinaryOp::SquaredDifference,
        "Greater" => BinaryOp::Greater,
        "GreaterEqual" => BinaryOp::GreaterOrEqual,
        "Less" => BinaryOp::Less,
        "LessEqual" => BinaryOp::LessOrEqual,
        "Equal" => BinaryOp::Equal,
        "LogicalAnd" => BinaryOp::And,
        _ => BinaryOp::Or,
    };
    b.emit(&n.name, Op::Binary(op), vec![n.input(0)?, n.input(1)?])
}

fn not_equal(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let eq = b.emit1(
        &format!("{}/eq", n.name),
        Op::Binary(BinaryOp::Equal),
        vec![n.input(0)?, n.input(1)?],
    )?;
    b.emit(&n.name, Op::Unary(UnaryOp::Not), vec![eq])
}

/// `y == 0 ? 0 : x / y`.
fn div_no_nan(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let (x, y) = (n.input(0)?, n.input(1)?);
    let zero = scalar_like(b, y, &format!("{}/zero", n.name), 0.0);
    let one = scalar_like(b, y, &format!("{}/one", n.name), 1.0);
    let is_zero = b.emit1(
        &format!("{}/is_zero", n.name),
        Op::Binary(BinaryOp::Equal),
        vec![y, zero],
    )?;
    // Divide by 1 where y is 0 so no inf/nan is ever computed.
    let safe = b.emit1(
        &format!("{}/safe", n.name),
        Op::Where,
        vec![is_zero, one, y],
    )?;
    let q = b.emit1(
        &format!("{}/div", n.name),
        Op::Binary(BinaryOp::Div),
        vec![x, safe],
    )?;
    b.emit(&n.name, Op::Where, vec![is_zero, zero, q])
}

fn unary(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let op = match n.op() {
        "Sqrt" => UnaryOp::Sqrt,
        "Rsqrt" => UnaryOp::Rsqrt,
        "Square" => UnaryOp::Square,
        "Exp" => UnaryOp::Exp,
        "Log" => UnaryOp::Log,
        "Neg" => UnaryOp::Neg,
        "Abs" => UnaryOp::Abs,
        "Erf" => UnaryOp::Erf,
        "Floor" => UnaryOp::Floor,
        "Ceil" => UnaryOp::Ceil,
        "Round" => UnaryOp::Round,
        "Sign" => UnaryOp::Sign,
        "Reciprocal" | "Inv" => UnaryOp::Reciprocal,
        "Sin" => UnaryOp::Sin,
        "Cos" => UnaryOp::Cos,
        "Sigmoid" => UnaryOp::Sigmoid,
        "Tanh" => UnaryOp::Tanh,
        "Relu" => UnaryOp::Relu,
        "Softplus" => UnaryOp::Softplus,
        "Softsign" => UnaryOp::Softsign,
        "Tan" => UnaryOp::Tan,
        "Asin" => UnaryOp::Asin,
        "Acos" => UnaryOp::Acos,
        "Atan" => UnaryOp::Atan,
        "Sinh" => UnaryOp::Sinh,
        "Cosh" => UnaryOp::Cosh,
        "Asinh" => UnaryOp::Asinh,
        "Acosh" => UnaryOp::Acosh,
        "Atanh" => UnaryOp::Atanh,
        "IsNan" => UnaryOp::IsNaN,
        _ => UnaryOp::Not,
    };
    b.emit(&n.name, Op::Unary(op), vec![n.input(0)?])
}

/// FloorDiv and FloorMod (rounding toward negative infinity) and AddN, as TFLite's.
fn floor_or_sum(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    match n.op() {
        "AddN" => arith::add_n(b, &n.name, &n.inputs),
        "FloorDiv" => arith::floor_div(b, &n.name, n.input(0)?, n.input(1)?),
        _ => arith::floor_mod(b, &n.name, n.input(0)?, n.input(1)?),
    }
}

/// `log1p(x) = log(1 + x)`, `expm1(x) = exp(x) - 1` (as the converters write them: exact but
/// for |x| near float epsilon), `isinf(x) = |x| == inf`.
fn unary_composed(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let part = |what: &str| format!("{}/{what}", n.name);
    match n.op() {
        "Log1p" => {
            let one = scalar_like(b, x, &part("one"), 1.0);
            let s = b.emit1(&part("add"), Op::Binary(BinaryOp::Add), vec![x, one])?;
            b.emit(&n.name, Op::Unary(UnaryOp::Log), vec![s])
        }
        "Expm1" => {
            let one = scalar_like(b, x, &part("one"), 1.0);
            let e = b.emit1(&part("exp"), Op::Unary(UnaryOp::Exp), vec![x])?;
            b.emit(&n.name, Op::Binary(BinaryOp::Sub), vec![e, one])
        }
        _ => {
            let inf = scalar_like(b, x, &part("inf"), f64::INFINITY);
            let a = b.emit1(&part("abs"), Op::Unary(UnaryOp::Abs), vec![x])?;
            b.emit(&n.name, Op::Binary(BinaryOp::Equal), vec![a, inf])
        }
    }
}

/// ZerosLike / OnesLike: a fill of `x`'s shape and type (never `x · 0`, which keeps NaNs).
fn filled_like(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let t = b.g.ty(x).clone();
    let v = if n.op() == "OnesLike" { 1.0 } else { 0.0 };
    let value = crate::ir::Tensor::from_f64s(t.dtype, vec![1], &[v]);
    let shape = b.emit1(
        &format!("{}/shape", n.name),
        Op::ShapeOf(crate::ir::ops::ShapeOf {
            start: 0,
            end: t.rank(),
        }),
        vec![x],
    )?;
    let fill = crate::ir::ops::ConstantOfShape { value };
    b.emit(&n.name, Op::ConstantOfShape(fill), vec![shape])
}

/// `erfc(x) = 1 - erf(x)` (Keras 3's exact GELU uses it).
fn erfc(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let erf = b.emit1(&format!("{}/erf", n.name), Op::Unary(UnaryOp::Erf), vec![x])?;
    let one = scalar_like(b, x, &format!("{}/one", n.name), 1.0);
    b.emit(&n.name, Op::Binary(BinaryOp::Sub), vec![one, erf])
}

fn activation(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let a = match n.op() {
        "Relu6" => Activation::Clip {
            min: Some(0.0),
            max: Some(6.0),
        },
        "Elu" => Activation::Elu { alpha: 1.0 },
        "Selu" => Activation::Selu {
            alpha: 1.673_263_2,
            gamma: 1.050_701,
        },
        _ => Activation::LeakyRelu {
            alpha: n.float("alpha", 0.2),
        },
    };
    b.emit(&n.name, Op::Activation(a), vec![n.input(0)?])
}

/// ClipByValue(x, lo, hi): a Clip activation when both bounds are constant scalars, else
/// Maximum then Minimum (the bounds broadcast).
fn clip_by_value(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let (x, lo, hi) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let scalar = |v: ValueId| {
        b.g.constant(v)
            .filter(|t| t.len() == 1)
            .and_then(|t| t.to_f64s().first().map(|&f| f as f32))
    };
    if let (Some(min), Some(max)) = (scalar(lo), scalar(hi)) {
        let clip = Activation::Clip {
            min: Some(min),
            max: Some(max),
        };
        return b.emit(&n.name, Op::Activation(clip), vec![x]);
    }
    let floor = format!("{}/max", n.name);
    let m = b.emit(&floor, Op::Binary(BinaryOp::Max), vec![x, lo])?[0];
    b.emit(&n.name, Op::Binary(BinaryOp::Min), vec![m, hi])
}

fn select(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let (c, x, y) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let (cr, xr) = (b.g.ty(c).rank(), b.g.ty(x).rank());
    // v1 Select with a vector condition picks whole rows: align it to the first axis.
    let c = if n.op() == "Select" && cr == 1 && xr > 1 {
        let mut shape = b.g.ty(c).shape.clone();
        shape.extend(std::iter::repeat_n(crate::ir::Dim::Fixed(1), xr - 1));
        crate::readers::builder::reshape_to(b, &format!("{}/cond", n.name), c, shape)?[0]
    } else {
        c
    };
    b.emit(&n.name, Op::Where, vec![c, x, y])
}

fn cast(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let to = n.ir_dtype("DstT", b.g.ty(x).dtype)?;
    if to == b.g.ty(x).dtype {
        return Ok(vec![x]);
    }
    b.emit(&n.name, Op::Cast(Cast { to }), vec![x])
}
