//! Elementwise ops and reductions: the unary builtins (ABS, NEG, SQRT, RSQRT, EXP, LOG, FLOOR,
//! CEIL, ROUND (half to even, as ONNX), SIGN, SIN, COS, LOGISTIC, TANH, RELU, SQUARE,
//! LOGICAL_NOT), binary ADD/SUB/MUL/DIV (fused activation), POW, MINIMUM, MAXIMUM, FLOOR_MOD
//! (ONNX Mod with fmod=0), PRELU, comparisons, LOGICAL_AND/OR, NOT_EQUAL for bool Xor,
//! SQUARED_DIFFERENCE; activations LEAKY_RELU, ELU (alpha 1), HARD_SWISH, GELU, RELU6,
//! RELU_N1_TO_1, RELU_0_TO_1; SELECT_V2, CAST, MEAN/SUM/REDUCE_MAX/REDUCE_MIN/REDUCE_PROD,
//! ARG_MAX/ARG_MIN (int64 output; keep_dims by a RESHAPE), CUMSUM, QUANTIZE, DEQUANTIZE.
//! Activations and unary ops without a builtin were lowered by legalize; reaching here they are
//! refused.

use super::super::plan::{Cx, Opts};
use crate::ir::ops::{
    Activation, ArgReduce, BinaryOp, CumSum, QuantAxis, Reduce, ReduceKind, UnaryOp,
};
use crate::ir::{DType, QuantParams};
use tract_tflite::tflite::BuiltinOperator as B;

pub fn unary(cx: &mut Cx, u: UnaryOp) -> Result<(), String> {
    let code = match u {
        UnaryOp::Abs => B::ABS,
        UnaryOp::Neg => B::NEG,
        UnaryOp::Sqrt => B::SQRT,
        UnaryOp::Rsqrt => B::RSQRT,
        UnaryOp::Exp => B::EXP,
        UnaryOp::Log => B::LOG,
        UnaryOp::Floor => B::FLOOR,
        UnaryOp::Ceil => B::CEIL,
        UnaryOp::Round => B::ROUND,
        UnaryOp::Sign => B::SIGN,
        UnaryOp::Sin => B::SIN,
        UnaryOp::Cos => B::COS,
        UnaryOp::Sigmoid => B::LOGISTIC,
        UnaryOp::Tanh => B::TANH,
        UnaryOp::Relu => B::RELU,
        UnaryOp::Square => B::SQUARE,
        UnaryOp::Not => B::LOGICAL_NOT,
        UnaryOp::Reciprocal
        | UnaryOp::Erf
        | UnaryOp::Softplus
        | UnaryOp::Softsign
        | UnaryOp::IsNaN
        | UnaryOp::Tan => return Err("lowered by legalize for float inputs only".into()),
        UnaryOp::Asin
        | UnaryOp::Acos
        | UnaryOp::Atan
        | UnaryOp::Sinh
        | UnaryOp::Cosh
        | UnaryOp::Asinh
        | UnaryOp::Acosh
        | UnaryOp::Atanh
        | UnaryOp::BitwiseNot => return Err(format!("no TFLite builtin for {u:?}")),
    };
    cx.unary(code)
}

pub fn binary(cx: &mut Cx, b: BinaryOp) -> Result<(), String> {
    let code = match b {
        BinaryOp::Add => B::ADD,
        BinaryOp::Sub => B::SUB,
        BinaryOp::Mul => B::MUL,
        BinaryOp::Div => B::DIV,
        BinaryOp::Pow => B::POW,
        BinaryOp::Min => B::MINIMUM,
        BinaryOp::Max => B::MAXIMUM,
        BinaryOp::Mod => B::FLOOR_MOD,
        BinaryOp::PRelu => B::PRELU,
        BinaryOp::Equal => B::EQUAL,
        BinaryOp::Less => B::LESS,
        BinaryOp::Greater => B::GREATER,
        BinaryOp::LessOrEqual => B::LESS_EQUAL,
        BinaryOp::GreaterOrEqual => B::GREATER_EQUAL,
        BinaryOp::And => B::LOGICAL_AND,
        BinaryOp::Or => B::LOGICAL_OR,
        BinaryOp::Xor => B::NOT_EQUAL,
        BinaryOp::SquaredDifference => B::SQUARED_DIFFERENCE,
        BinaryOp::Fmod
        | BinaryOp::BitShiftLeft
        | BinaryOp::BitShiftRight
        | BinaryOp::BitwiseAnd
        | BinaryOp::BitwiseOr
        | BinaryOp::BitwiseXor => return Err(format!("no TFLite builtin for {b:?}")),
    };
    if b == BinaryOp::Pow && cx.ty(0)?.dtype != cx.ty(1)?.dtype {
        return Err("POW needs both operands of one type".into());
    }
    if code == B::DIV && !matches!(cx.ty(0)?.dtype, DType::F32 | DType::I32) {
        // LiteRT's DIV kernel takes float32 and int32 (and int8/uint8/int16 quantized, which
        // the int8 folding writes); it fails at run time on anything else.
        if !cx.is_int8() {
            return Err(format!("DIV has no {} kernel in TFLite", cx.ty(0)?.dtype));
        }
    }
    let opts = match code {
        B::ADD | B::SUB | B::MUL | B::DIV => Opts::Arith(cx.act()),
        _ => Opts::None,
    };
    let (x, y, out) = (cx.x(0)?, cx.x(1)?, cx.out(0));
    cx.emit(code, opts, vec![Some(x), Some(y)], vec![out]);
    Ok(())
}

/// The builtin an activation maps to directly, if any.
pub fn activation_builtin(a: &Activation) -> Option<(tract_tflite::tflite::BuiltinOperator, Opts)> {
    Some(match *a {
        Activation::LeakyRelu { alpha } => (B::LEAKY_RELU, Opts::LeakyRelu(alpha)),
        Activation::Elu { alpha: 1.0 } => (B::ELU, Opts::None),
        Activation::HardSwish => (B::HARD_SWISH, Opts::None),
        Activation::Gelu { tanh_approx } => (
            B::GELU,
            Opts::Gelu {
                approximate: tanh_approx,
            },
        ),
        Activation::Clip { min, max } => match (min, max) {
            (Some(a), Some(b)) if a == 0.0 && b == 6.0 => (B::RELU6, Opts::None),
            (Some(a), Some(b)) if a == -1.0 && b == 1.0 => (B::RELU_N1_TO_1, Opts::None),
            (Some(a), Some(b)) if a == 0.0 && b == 1.0 => (B::RELU_0_TO_1, Opts::None),
            (Some(0.0), None) => (B::RELU, Opts::None),
            _ => return None,
        },
        Activation::Elu { .. }
        | Activation::Selu { .. }
        | Activation::Celu { .. }
        | Activation::HardSigmoid { .. }
        | Activation::ThresholdedRelu { .. }
        | Activation::Mish
        | Activation::Shrink { .. } => return None,
    })
}

pub fn activation(cx: &mut Cx, a: &Activation) -> Result<(), String> {
    let Some((code, opts)) = activation_builtin(a) else {
        return Err(format!("{} is lowered by legalize for f32 only", a.name()));
    };
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(code, opts, vec![Some(x)], vec![y]);
    Ok(())
}

pub fn select(cx: &mut Cx) -> Result<(), String> {
    let (c, a, b, y) = (cx.x(0)?, cx.x(1)?, cx.x(2)?, cx.out(0));
    cx.emit(
        B::SELECT_V2,
        Opts::None,
        vec![Some(c), Some(a), Some(b)],
        vec![y],
    );
    Ok(())
}

pub fn cast(cx: &mut Cx, to: DType) -> Result<(), String> {
    let from = cx.ty(0)?.dtype;
    let (x, y) = (cx.x(0)?, cx.out(0));
    if from == DType::F16 && to == DType::F32 {
        // float16 weights: DEQUANTIZE is TFLite's form (what its converter writes; delegates
        // fold it into the consumer), where CAST from float16 has no kernel.
        cx.emit(B::DEQUANTIZE, Opts::None, vec![Some(x)], vec![y]);
        return Ok(());
    }
    cx.emit(B::CAST, Opts::Cast { from, to }, vec![Some(x)], vec![y]);
    Ok(())
}

pub fn reduce(cx: &mut Cx, r: &Reduce) -> Result<(), String> {
    let code = match r.kind {
        ReduceKind::Mean => B::MEAN,
        ReduceKind::Sum => B::SUM,
        ReduceKind::Max => B::REDUCE_MAX,
        ReduceKind::Min => B::REDUCE_MIN,
        ReduceKind::Prod => B::REDUCE_PROD,
        ReduceKind::L1
        | ReduceKind::L2
        | ReduceKind::LogSum
        | ReduceKind::LogSumExp
        | ReduceKind::SumSquare => {
            return Err(format!("Reduce{:?} is lowered by legalize", r.kind))
        }
    };
    let axes: Vec<i32> = r.axes.iter().map(|&a| a as i32).collect();
    let axes = cx.i32_vec("axes", &axes);
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(
        code,
        Opts::Reducer {
            keep_dims: r.keep_dims,
        },
        vec![Some(x), Some(axes)],
        vec![y],
    );
    Ok(())
}

pub fn arg_reduce(cx: &mut Cx, a: &ArgReduce) -> Result<(), String> {
    if a.select_last {
        return Err("ARG_MAX/ARG_MIN take the first extremum (select_last_index)".into());
    }
    let code = if a.max { B::ARG_MAX } else { B::ARG_MIN };
    let axis = cx.i32_vec("axis", &[a.axis as i32]);
    let out_ty = cx.out_ty(0).clone();
    let (x, y) = (cx.x(0)?, cx.out(0));
    if !a.keep_dims {
        cx.emit(
            code,
            Opts::Arg(out_ty.dtype),
            vec![Some(x), Some(axis)],
            vec![y],
        );
        return Ok(());
    }
    let mut reduced = out_ty.clone();
    reduced.shape.remove(a.axis);
    let tmp = cx.temp("reduced", reduced);
    cx.emit(
        code,
        Opts::Arg(out_ty.dtype),
        vec![Some(x), Some(axis)],
        vec![tmp],
    );
    let x_id = cx.input(0)?;
    let shape = cx.dims_operand("shape", &out_ty.shape, &[x_id], true)?;
    cx.emit(
        B::RESHAPE,
        Opts::Reshape(None),
        vec![Some(tmp), Some(shape)],
        vec![y],
    );
    Ok(())
}

pub fn cumsum(cx: &mut Cx, c: &CumSum) -> Result<(), String> {
    let axis = cx.i32s("axis", vec![], &[c.axis as i32]);
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(
        B::CUMSUM,
        Opts::Cumsum {
            exclusive: c.exclusive,
            reverse: c.reverse,
        },
        vec![Some(x), Some(axis)],
        vec![y],
    );
    Ok(())
}

/// Quantization parameters from constant scale / zero-point operands.
fn params(cx: &Cx, q: &QuantAxis) -> Result<QuantParams, String> {
    let scale = cx
        .konst_in(1)
        .ok_or("the scale must be a constant")?
        .to_f64s();
    let zp = match cx.konst_in(2) {
        Some(t) => t
            .to_i64s()
            .ok_or("the zero point must be an integer constant")?,
        None if cx.node.inputs.len() > 2 => return Err("the zero point must be a constant".into()),
        None => vec![0; scale.len()],
    };
    if scale.len() != zp.len() {
        return Err("scale and zero point differ in length".into());
    }
    Ok(QuantParams {
        scale: scale.iter().map(|&s| s as f32).collect(),
        zero_point: zp,
        axis: (scale.len() > 1).then_some(q.axis),
    })
}

fn set_quant(cx: &mut Cx, v: crate::ir::ValueId, p: QuantParams) -> Result<(), String> {
    match cx.plan.quant.get(&v) {
        Some(old) if *old != p => Err(format!(
            "value '{}' is quantized two ways; a TFLite tensor has one set of parameters",
            cx.g.value(v).name
        )),
        _ => {
            cx.plan.quant.insert(v, p);
            Ok(())
        }
    }
}

pub fn quantize(cx: &mut Cx, q: &QuantAxis) -> Result<(), String> {
    if !matches!(q.dtype, DType::I8 | DType::U8 | DType::I16) {
        return Err(format!("QUANTIZE to {}", q.dtype));
    }
    let p = params(cx, q)?;
    let out = cx.out_value(0);
    set_quant(cx, out, p)?;
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(B::QUANTIZE, Opts::None, vec![Some(x)], vec![y]);
    Ok(())
}

pub fn dequantize(cx: &mut Cx, q: &QuantAxis) -> Result<(), String> {
    let p = params(cx, q)?;
    let x = cx.input(0)?;
    set_quant(cx, x, p)?;
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(B::DEQUANTIZE, Opts::None, vec![Some(x)], vec![y]);
    Ok(())
}
