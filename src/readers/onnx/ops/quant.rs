//! ONNX quantization ops, kept in their ONNX form (QDQ and the integer/QLinear operators);
//! blocked quantization (opset 21) is written as its elementwise formula.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::nn::conv_params;
use super::Handler;
use crate::ir::ops::{norm_axis, BinaryOp, Expand, QuantAxis, UnaryOp};
use crate::ir::{DType, Dim, Op, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "QuantizeLinear" | "DequantizeLinear" => qdq,
        "DynamicQuantizeLinear" => dynamic_quantize,
        "ConvInteger" | "QLinearConv" => conv_integer,
        "MatMulInteger" | "QLinearMatMul" => matmul_integer,
        _ => return None,
    })
}

fn qdq(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let scale = ctx.input(1)?;
    if ctx.int("block_size", 0) != 0 {
        return blocked_qdq(imp, ctx, x, scale);
    }
    let rank = imp.g.ty(x).rank();
    let axis = if imp.g.ty(scale).rank() == 0 || rank == 0 {
        0
    } else {
        norm_axis(ctx.int("axis", 1), rank)?
    };
    let mut inputs = vec![x, scale];
    inputs.extend(ctx.opt_input(2));
    let op = if ctx.node.op_type == "QuantizeLinear" {
        let dtype = quantized_type(imp, ctx)?;
        if !matches!(
            dtype,
            DType::U8 | DType::I8 | DType::I16 | DType::U16 | DType::I32
        ) {
            return unsupported(format!("quantization to {dtype}"));
        }
        Op::QuantizeLinear(QuantAxis { axis, dtype })
    } else {
        Op::DequantizeLinear(QuantAxis {
            axis,
            dtype: imp.g.ty(x).dtype,
        })
    };
    imp.emit(&ctx.name, op, inputs)
}

/// Blocked (Dequantize|Quantize)Linear: each of `scale`/`zero_point` repeated `block_size`
/// times along `axis` to x's shape, then the elementwise formula — `(x − zp)·s`, or
/// `saturate(round(x / s) + zp)` rounding halves to even.
fn blocked_qdq(
    imp: &mut Importer,
    ctx: &NodeCtx,
    x: ValueId,
    scale: ValueId,
) -> NodeResult<Vec<ValueId>> {
    let xt = imp.g.ty(x).clone();
    let rank = xt.rank();
    let axis = norm_axis(ctx.int("axis", 1), rank)?;
    let block = ctx.int("block_size", 0);
    if block < 1 || imp.g.ty(scale).rank() != rank {
        return Err(NodeError::Invalid(format!(
            "block_size {block} with a scale of rank {}",
            imp.g.ty(scale).rank()
        )));
    }
    let (Some(k), Some(kb)) = (xt.shape[axis].fixed(), imp.g.ty(scale).shape[axis].fixed()) else {
        return unsupported("blocked quantization along an axis known only at run time");
    };
    if kb * (block as u64) < k {
        return Err(NodeError::Invalid(format!(
            "{kb} blocks of {block} do not cover {k}"
        )));
    }
    let quantize = ctx.node.op_type == "QuantizeLinear";
    let to = if quantize {
        quantized_type(imp, ctx)?
    } else {
        imp.g.ty(scale).dtype
    };
    let (lo, hi) = match (quantize, saturation(to)) {
        (false, _) => (0.0, 0.0),
        (true, Some(r)) => r,
        (true, None) => return unsupported(format!("quantization to {to}")),
    };
    let float = if quantize { xt.dtype } else { to };
    let mut b = Build::new(imp, &ctx.name);
    let widen = |b: &mut Build, v: ValueId| -> NodeResult<ValueId> {
        let t = b.imp.g.ty(v).clone();
        let mut split = t.shape.clone();
        split.insert(axis + 1, Dim::Fixed(1));
        let v = b.reshape(v, split.clone())?;
        split[axis + 1] = Dim::Fixed(block as u64);
        let v = b.op("repeat", Op::Expand(Expand { shape: split }), vec![v])?;
        let mut joined = t.shape.clone();
        joined[axis] = Dim::Fixed(kb * block as u64);
        let v = b.reshape(v, joined)?;
        let v = b.slice(v, axis, 0, k as i64)?;
        b.cast(v, float)
    };
    let s = widen(&mut b, scale)?;
    let zp = match ctx.opt_input(2) {
        Some(z) => Some(widen(&mut b, z)?),
        None => None,
    };
    if !quantize {
        let mut v = b.cast(x, float)?;
        if let Some(z) = zp {
            v = b.bin(BinaryOp::Sub, v, z)?;
        }
        return Ok(vec![b.bin(BinaryOp::Mul, v, s)?]);
    }
    let q = b.bin(BinaryOp::Div, x, s)?;
    let mut q = b.un(UnaryOp::Round, q)?;
    if let Some(z) = zp {
        q = b.bin(BinaryOp::Add, q, z)?;
    }
    let (lo, hi) = (b.scalar("min", float, lo), b.scalar("max", float, hi));
    let q = b.bin(BinaryOp::Max, q, lo)?;
    let q = b.bin(BinaryOp::Min, q, hi)?;
    Ok(vec![b.cast(q, to)?])
}

/// QuantizeLinear's output type: the zero point's, else `output_dtype` (uint8 when absent).
fn quantized_type(imp: &Importer, ctx: &NodeCtx) -> NodeResult<DType> {
    if let Some(zp) = ctx.opt_input(2) {
        return Ok(imp.g.ty(zp).dtype);
    }
    match ctx.int("output_dtype", 0) as i32 {
        0 => Ok(DType::U8),
        t => crate::formats::onnx::dtype_from_onnx(t)
            .ok_or_else(|| NodeError::Unsupported(format!("QuantizeLinear to element type {t}"))),
    }
}

/// The range a quantized type saturates to.
fn saturation(dtype: DType) -> Option<(f64, f64)> {
    Some(match dtype {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        _ => return None,
    })
}

fn dynamic_quantize(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    imp.emit(&ctx.name, Op::DynamicQuantizeLinear, vec![ctx.input(0)?])
}

fn all_inputs(ctx: &NodeCtx, required: usize) -> NodeResult<Vec<ValueId>> {
    let mut v = Vec::new();
    for (i, inp) in ctx.inputs.iter().enumerate() {
        match inp {
            Some(x) => v.push(*x),
            None if i < required => return Err(NodeError::Invalid(format!("missing input #{i}"))),
            // A gap before a present optional input cannot be expressed positionally.
            None if ctx.inputs[i + 1..].iter().any(|x| x.is_some()) => {
                return unsupported("omitted optional zero point")
            }
            None => {}
        }
    }
    Ok(v)
}

fn conv_integer(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    if ctx.node.op_type == "ConvInteger" {
        let c = conv_params(imp, ctx, ctx.input(0)?, ctx.input(1)?, false)?;
        let ins = all_inputs(ctx, 2)?;
        imp.emit(&ctx.name, Op::ConvInteger(c), ins)
    } else {
        let c = conv_params(imp, ctx, ctx.input(0)?, ctx.input(3)?, false)?;
        let ins = all_inputs(ctx, 8)?;
        imp.emit(&ctx.name, Op::QLinearConv(c), ins)
    }
}

fn matmul_integer(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    if ctx.node.op_type == "MatMulInteger" {
        let ins = all_inputs(ctx, 2)?;
        imp.emit(&ctx.name, Op::MatMulInteger, ins)
    } else {
        let ins = all_inputs(ctx, 8)?;
        imp.emit(&ctx.name, Op::QLinearMatMul, ins)
    }
}
