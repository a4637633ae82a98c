//! Elementwise builtins: the binary arithmetic (ADD/SUB/MUL/DIV with their fused activations,
//! POW, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE, FLOOR_MOD of integers and floats), comparisons and logic, SELECT, the
//! unary math and the activations (RELU family as clips, LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU,
//! PRELU, GELU, ELU), ADD_N, FLOOR_DIV, CAST, and QUANTIZE/DEQUANTIZE, which on real values are the identity (the
//! importer quantizes what a quantized output tensor holds; a FLOAT16 constant is cast), and
//! DENSIFY (its sparse constant was made dense on read).

use super::{fused, Handler, Node};
use crate::ir::ops::{Activation, BinaryOp, Cast, UnaryOp};
use crate::ir::{DType, Op, ValueId};
use crate::readers::builder::{unsupported, GraphBuilder, NodeError, NodeResult};
use crate::readers::tf_common::{apply_fused, arith, Fused};
use tract_tflite::tflite::BuiltinOperator as B;

pub fn handler(code: B) -> Option<Handler> {
    Some(match code {
        B::ADD | B::SUB | B::MUL | B::DIV => arithmetic,
        B::POW
        | B::MAXIMUM
        | B::MINIMUM
        | B::SQUARED_DIFFERENCE
        | B::FLOOR_MOD
        | B::EQUAL
        | B::NOT_EQUAL
        | B::LESS
        | B::LESS_EQUAL
        | B::GREATER
        | B::GREATER_EQUAL
        | B::LOGICAL_AND
        | B::LOGICAL_OR
        | B::PRELU => binary,
        B::ABS
        | B::NEG
        | B::SQRT
        | B::RSQRT
        | B::EXP
        | B::LOG
        | B::SQUARE
        | B::SIN
        | B::COS
        | B::FLOOR
        | B::CEIL
        | B::ROUND
        | B::SIGN
        | B::LOGISTIC
        | B::TANH
        | B::RELU
        | B::LOGICAL_NOT => unary,
        B::RELU6
        | B::RELU_N1_TO_1
        | B::RELU_0_TO_1
        | B::HARD_SWISH
        | B::LEAKY_RELU
        | B::GELU
        | B::ELU => activation,
        B::SELECT | B::SELECT_V2 => select,
        B::ADD_N => add_n,
        B::FLOOR_DIV => floor_div,
        B::CAST => cast,
        B::QUANTIZE | B::DEQUANTIZE => quantize,
        B::DENSIFY => densify,
        _ => return None,
    })
}

fn arithmetic(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = &n.op;
    let (op, act) = match n.code {
        B::ADD => (
            BinaryOp::Add,
            o.builtin_options_as_add_options()
                .map(|o| o.fused_activation_function()),
        ),
        B::SUB => (
            BinaryOp::Sub,
            o.builtin_options_as_sub_options()
                .map(|o| o.fused_activation_function()),
        ),
        B::MUL => (
            BinaryOp::Mul,
            o.builtin_options_as_mul_options()
                .map(|o| o.fused_activation_function()),
        ),
        _ => (
            BinaryOp::Div,
            o.builtin_options_as_div_options()
                .map(|o| o.fused_activation_function()),
        ),
    };
    let act = act.map_or(Ok(Fused::None), fused)?;
    let (x, y) = (n.input(0)?, n.input(1)?);
    if act == Fused::None {
        return b.emit(&n.name, Op::Binary(op), vec![x, y]);
    }
    let v = b.emit1(&format!("{}/op", n.name), Op::Binary(op), vec![x, y])?;
    apply_fused(b, &n.name, v, act)
}

fn binary(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let (x, y) = (n.input(0)?, n.input(1)?);
    let op = match n.code {
        B::POW => BinaryOp::Pow,
        B::MAXIMUM => BinaryOp::Max,
        B::MINIMUM => BinaryOp::Min,
        B::SQUARED_DIFFERENCE => BinaryOp::SquaredDifference,
        B::FLOOR_MOD => return arith::floor_mod(b, &n.name, x, y),
        B::EQUAL | B::NOT_EQUAL => BinaryOp::Equal,
        B::LESS => BinaryOp::Less,
        B::LESS_EQUAL => BinaryOp::LessOrEqual,
        B::GREATER => BinaryOp::Greater,
        B::GREATER_EQUAL => BinaryOp::GreaterOrEqual,
        B::LOGICAL_AND => BinaryOp::And,
        B::LOGICAL_OR => BinaryOp::Or,
        _ => BinaryOp::PRelu,
    };
    if n.code == B::NOT_EQUAL {
        let eq = b.emit1(&format!("{}/equal", n.name), Op::Binary(op), vec![x, y])?;
        return b.emit(&n.name, Op::Unary(UnaryOp::Not), vec![eq]);
    }
    b.emit(&n.name, Op::Binary(op), vec![x, y])
}

fn unary(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let op = match n.code {
        B::ABS => UnaryOp::Abs,
        B::NEG => UnaryOp::Neg,
        B::SQRT => UnaryOp::Sqrt,
        B::RSQRT => UnaryOp::Rsqrt,
        B::EXP => UnaryOp::Exp,
        B::LOG => UnaryOp::Log,
        B::SQUARE => UnaryOp::Square,
        B::SIN => UnaryOp::Sin,
        B::COS => UnaryOp::Cos,
        B::FLOOR => UnaryOp::Floor,
        B::CEIL => UnaryOp::Ceil,
        B::ROUND => UnaryOp::Round,
        B::SIGN => UnaryOp::Sign,
        B::LOGISTIC => UnaryOp::Sigmoid,
        B::TANH => UnaryOp::Tanh,
        B::RELU => UnaryOp::Relu,
        _ => UnaryOp::Not,
    };
    b.emit(&n.name, Op::Unary(op), vec![n.input(0)?])
}

fn activation(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let clip = |lo: f32, hi: f32| Activation::Clip {
        min: Some(lo),
        max: Some(hi),
    };
    let a = match n.code {
        B::RELU6 => clip(0.0, 6.0),
        B::RELU_N1_TO_1 => clip(-1.0, 1.0),
        B::RELU_0_TO_1 => clip(0.0, 1.0),
        B::HARD_SWISH => Activation::HardSwish,
        B::LEAKY_RELU => Activation::LeakyRelu {
            alpha: n
                .options(
                    n.op.builtin_options_as_leaky_relu_options(),
                    "LeakyReluOptions",
                )?
                .alpha(),
        },
        B::GELU => Activation::Gelu {
            tanh_approx: n
                .op
                .builtin_options_as_gelu_options()
                .is_some_and(|o| o.approximate()),
        },
        _ => Activation::Elu { alpha: 1.0 },
    };
    b.emit(&n.name, Op::Activation(a), vec![n.input(0)?])
}

fn select(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let ins = vec![n.input(0)?, n.input(1)?, n.input(2)?];
    if n.code == B::SELECT && b.g.ty(ins[0]).rank() == 1 && b.g.ty(ins[1]).rank() > 1 {
        // SELECT's rank-1 condition picks whole rows, which broadcasting would not do.
        return unsupported("SELECT with a rank-1 condition over higher-rank values");
    }
    b.emit(&n.name, Op::Where, ins)
}

fn cast(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let to = n
        .out_dtypes
        .first()
        .copied()
        .flatten()
        .ok_or_else(|| NodeError::Unsupported("cast to an unsupported type".into()))?;
    let x = n.input(0)?;
    if b.g.ty(x).dtype == to {
        return Ok(vec![x]);
    }
    b.emit(&n.name, Op::Cast(Cast { to }), vec![x])
}

/// QUANTIZE / DEQUANTIZE on real values: the identity, except a FLOAT16 (or other float)
/// input dequantized to float32, which is a cast (folded away for constants).
fn quantize(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let dt = b.g.ty(x).dtype;
    if n.code == B::DEQUANTIZE && dt.is_float() && dt != DType::F32 {
        return b.emit(&n.name, Op::Cast(Cast { to: DType::F32 }), vec![x]);
    }
    if !dt.is_float() {
        return Err(NodeError::Invalid(format!(
            "{dt} input without quantization parameters"
        )));
    }
    Ok(vec![x])
}

/// DENSIFY of a sparse constant: the constant itself, already made dense when it was read.
fn densify(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    if b.g.constant(x).is_none() {
        return unsupported("DENSIFY of a value computed at run time");
    }
    Ok(vec![x])
}

fn add_n(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let inputs = (0..n.inputs.len())
        .map(|i| n.input(i))
        .collect::<NodeResult<Vec<_>>>()?;
    arith::add_n(b, &n.name, &inputs)
}

/// FLOOR_DIV: the quotient rounded toward negative infinity.
fn floor_div(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    arith::floor_div(b, &n.name, n.input(0)?, n.input(1)?)
}
