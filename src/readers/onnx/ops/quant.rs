//! ONNX quantization ops, kept in their ONNX form (QDQ and the integer/QLinear operators).

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::nn::conv_params;
use super::Handler;
use crate::ir::ops::{norm_axis, QuantAxis};
use crate::ir::{DType, Op, ValueId};

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
        return unsupported("blocked quantization");
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
        let dtype = match ctx.opt_input(2) {
            Some(zp) => imp.g.ty(zp).dtype,
            None => match ctx.int("output_dtype", 0) {
                0 | 2 => DType::U8,
                3 => DType::I8,
                t => return unsupported(format!("QuantizeLinear to element type {t}")),
            },
        };
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
