//! onnxruntime's quantized contrib ops (domain `com.microsoft`) that its quantizer writes
//! (`quantize_static` in QOperator format, `quantize_dynamic`) and its optimizer fuses, read as
//! their standard-op meaning:
//! - QLinearAdd/Mul/Sigmoid/LeakyRelu/Softmax/AveragePool/GlobalAveragePool/Concat and QGemm are
//!   `QuantizeLinear(op(DequantizeLinear(x…)))` — the QDQ form onnxruntime itself fuses back
//!   into integer kernels; their rounding can differ from the fused kernel's by one step;
//! - DynamicQuantizeMatMul is DynamicQuantizeLinear → MatMulInteger → scale (+ bias), the
//!   chain `quantize_dynamic` writes and the optimizer fuses; MatMulIntegerToFloat is the
//!   MatMulInteger → Cast → scale (+ bias) tail of it;
//! - DynamicQuantizeLSTM is an LSTM of the dequantized weights (the source quantizes the
//!   activations at run time too, so it is only defined to within its quantization step).

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::contrib::{float_attr, standard};
use super::Handler;
use crate::ir::ops::{BinaryOp, QuantAxis};
use crate::ir::{DType, Op, Tensor, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "com.microsoft:QLinearAdd" | "com.microsoft:QLinearMul" => qlinear_binary,
        "com.microsoft:QLinearSigmoid" | "com.microsoft:QLinearLeakyRelu" => qlinear_unary,
        "com.microsoft:QLinearAveragePool" | "com.microsoft:QLinearGlobalAveragePool" => {
            qlinear_pool
        }
        "com.microsoft:QLinearConcat" => qlinear_concat,
        "com.microsoft:QLinearSoftmax" => qlinear_softmax,
        "com.microsoft:QGemm" => qgemm,
        "com.microsoft:DynamicQuantizeMatMul" => dynamic_quantize_matmul,
        "com.microsoft:MatMulIntegerToFloat" => matmul_integer_to_float,
        "com.microsoft:DynamicQuantizeLSTM" => dynamic_quantize_lstm,
        _ => return None,
    })
}

pub fn dequantize(
    b: &mut Build,
    x: ValueId,
    scale: ValueId,
    zp: Option<ValueId>,
    axis: usize,
) -> NodeResult<ValueId> {
    let dtype = b.imp.g.ty(x).dtype;
    if b.imp.g.constant(scale).is_none() {
        // A scale computed at run time (DynamicQuantizeLinear's, before QAttention): the
        // formula, which every runtime evaluates (tract types DequantizeLinear by its constant
        // scale only).
        let mut f = b.cast(x, DType::F32)?;
        if let Some(z) = zp {
            let z = b.cast(z, DType::F32)?;
            f = b.bin(BinaryOp::Sub, f, z)?;
        }
        return b.bin(BinaryOp::Mul, f, scale);
    }
    let mut ins = vec![x, scale];
    ins.extend(zp);
    b.op(
        "dequantize",
        Op::DequantizeLinear(QuantAxis { axis, dtype }),
        ins,
    )
}

/// `QuantizeLinear` to `dtype` (the quantized input's type: the zero point may be absent, and
/// a standard QuantizeLinear without one would give uint8).
fn quantize(
    b: &mut Build,
    y: ValueId,
    scale: ValueId,
    zp: Option<ValueId>,
    dtype: DType,
) -> NodeResult<ValueId> {
    let zp = match zp {
        Some(z) => z,
        None => b.constant("zero_point", Tensor::from_f64s(dtype, vec![], &[0.0])),
    };
    let q = QuantAxis { axis: 0, dtype };
    b.op("quantize", Op::QuantizeLinear(q), vec![y, scale, zp])
}

fn first(v: Vec<ValueId>) -> NodeResult<ValueId> {
    v.into_iter()
        .next()
        .ok_or_else(|| NodeError::Invalid("no output".into()))
}

/// `(A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp)`.
fn qlinear_binary(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let a = ctx.input(0)?;
    let dtype = imp.g.ty(a).dtype;
    let mut b = Build::new(imp, &ctx.name);
    let af = dequantize(&mut b, a, ctx.input(1)?, ctx.opt_input(2), 0)?;
    let bf = dequantize(&mut b, ctx.input(3)?, ctx.input(4)?, ctx.opt_input(5), 0)?;
    let op = if ctx.node.op_type == "QLinearAdd" {
        BinaryOp::Add
    } else {
        BinaryOp::Mul
    };
    let y = b.bin(op, af, bf)?;
    Ok(vec![quantize(
        &mut b,
        y,
        ctx.input(6)?,
        ctx.opt_input(7),
        dtype,
    )?])
}

/// `(X, X_scale, X_zp, Y_scale, Y_zp)` around a standard op of the same attributes.
fn around(
    imp: &mut Importer,
    ctx: &NodeCtx,
    op_type: &str,
    drop: &[&str],
) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let dtype = imp.g.ty(x).dtype;
    let xf = dequantize(
        &mut Build::new(imp, &ctx.name),
        x,
        ctx.input(1)?,
        ctx.opt_input(2),
        0,
    )?;
    let y = first(standard(
        imp,
        ctx,
        op_type,
        vec![Some(xf)],
        drop,
        vec![],
        "op",
    )?)?;
    let mut b = Build::new(imp, &ctx.name);
    Ok(vec![quantize(
        &mut b,
        y,
        ctx.input(3)?,
        ctx.opt_input(4),
        dtype,
    )?])
}

fn qlinear_unary(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    match ctx.node.op_type.as_str() {
        "QLinearSigmoid" => around(imp, ctx, "Sigmoid", &[]),
        _ => around(imp, ctx, "LeakyRelu", &[]),
    }
}

fn qlinear_pool(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    if ctx.int("channels_last", 0) != 0 {
        return unsupported(format!("{} with channels_last", ctx.node.op_type));
    }
    match ctx.node.op_type.as_str() {
        "QLinearAveragePool" => around(imp, ctx, "AveragePool", &["channels_last"]),
        _ => around(imp, ctx, "GlobalAveragePool", &["channels_last"]),
    }
}

/// QLinearSoftmax: Softmax along `axis` as the ONNX `opset` attribute defines it. Before 13
/// Softmax flattened the axes from `axis` on; the one case both agree on is the last axis.
fn qlinear_softmax(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let rank = imp.g.ty(ctx.input(0)?).rank() as i64;
    let opset = ctx.int("opset", 13);
    let axis = ctx.int("axis", if opset < 13 { 1 } else { -1 });
    if opset < 13 && axis != rank - 1 && axis != -1 {
        return unsupported(format!(
            "QLinearSoftmax of opset {opset} over axis {axis} of a rank-{rank} input"
        ));
    }
    // The axis written out: the standard handler would default it by the model's opset.
    let axis_attr = tract_onnx::pb::AttributeProto {
        name: "axis".into(),
        i: axis,
        ..Default::default()
    };
    let x = ctx.input(0)?;
    let dtype = imp.g.ty(x).dtype;
    let mut b = Build::new(imp, &ctx.name);
    let xf = dequantize(&mut b, x, ctx.input(1)?, ctx.opt_input(2), 0)?;
    let drop = ["opset", "axis"];
    let y = first(standard(
        imp,
        ctx,
        "Softmax",
        vec![Some(xf)],
        &drop,
        vec![axis_attr],
        "op",
    )?)?;
    let mut b = Build::new(imp, &ctx.name);
    Ok(vec![quantize(
        &mut b,
        y,
        ctx.input(3)?,
        ctx.opt_input(4),
        dtype,
    )?])
}

/// `(Y_scale, Y_zp, (X, X_scale, X_zp)…)`.
fn qlinear_concat(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let n = ctx.inputs.len().saturating_sub(2);
    if n == 0 || !n.is_multiple_of(3) {
        return Err(NodeError::Invalid(format!(
            "QLinearConcat with {} inputs",
            ctx.inputs.len()
        )));
    }
    let x0 = ctx.input(2)?;
    let dtype = imp.g.ty(x0).dtype;
    let mut parts = Vec::new();
    let mut b = Build::new(imp, &ctx.name);
    for i in (2..ctx.inputs.len()).step_by(3) {
        let x = ctx.input(i)?;
        parts.push(Some(dequantize(
            &mut b,
            x,
            ctx.input(i + 1)?,
            ctx.opt_input(i + 2),
            0,
        )?));
    }
    let y = first(standard(imp, ctx, "Concat", parts, &[], vec![], "op")?)?;
    let mut b = Build::new(imp, &ctx.name);
    Ok(vec![quantize(
        &mut b,
        y,
        ctx.input(0)?,
        ctx.opt_input(1),
        dtype,
    )?])
}

/// `(A, A_scale, A_zp, B, B_scale, B_zp, C, Y_scale, Y_zp)`: Gemm of the dequantized operands
/// plus the int32 bias `C` scaled by `A_scale·B_scale`; quantized when `Y_scale` is given,
/// else float. A per-column `B_scale` runs along B's N axis.
fn qgemm(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let a = ctx.input(0)?;
    let dtype = imp.g.ty(a).dtype;
    let (bq, bs) = (ctx.input(3)?, ctx.input(4)?);
    let b_axis = usize::from(ctx.int("transB", 0) == 0);
    let mut b = Build::new(imp, &ctx.name);
    let (a_s, a_zp) = (ctx.input(1)?, ctx.opt_input(2));
    let af = dequantize(&mut b, a, a_s, a_zp, 0)?;
    let bf = dequantize(&mut b, bq, bs, ctx.opt_input(5), b_axis)?;
    let cf = match ctx.opt_input(6) {
        Some(c) => Some(match constant_bias(&b, c, a_s, bs) {
            // A float bias constant, as Gemm's C is in a float model (the writers' integer
            // lowerings know a bias operand; an int32 constant scaled at run time is not one).
            Some(t) => b.constant("bias", t),
            None => {
                let c = b.cast(c, DType::F32)?;
                let s = b.bin(BinaryOp::Mul, a_s, bs)?;
                b.bin(BinaryOp::Mul, c, s)?
            }
        }),
        None => None,
    };
    let beta = float_attr("beta", 1.0);
    let inputs = vec![Some(af), Some(bf), cf];
    let y = first(standard(
        imp,
        ctx,
        "Gemm",
        inputs,
        &["beta"],
        vec![beta],
        "op",
    )?)?;
    match ctx.opt_input(7) {
        Some(ys) => {
            let mut b = Build::new(imp, &ctx.name);
            Ok(vec![quantize(&mut b, y, ys, ctx.opt_input(8), dtype)?])
        }
        None => Ok(vec![y]),
    }
}

/// `C · A_scale · B_scale` when all three are constants (B_scale one value or one per column).
fn constant_bias(b: &Build, c: ValueId, a_s: ValueId, bs: ValueId) -> Option<Tensor> {
    let g = &b.imp.g;
    let (c, a, s) = (g.constant(c)?, g.constant(a_s)?, g.constant(bs)?);
    let a = *a.to_f64s().first()?;
    let s = s.to_f64s();
    let v: Vec<f64> = c
        .to_f64s()
        .iter()
        .enumerate()
        .map(|(i, &x)| Some(x * a * *s.get(if s.len() == 1 { 0 } else { i })?))
        .collect::<Option<_>>()?;
    Some(Tensor::from_f64s(DType::F32, c.shape.clone(), &v))
}

/// `Cast(int32 product) · scale (+ bias)`.
fn scale_and_bias(
    b: &mut Build,
    product: ValueId,
    scale: ValueId,
    bias: Option<ValueId>,
) -> NodeResult<ValueId> {
    let f = b.cast(product, DType::F32)?;
    let y = b.bin(BinaryOp::Mul, f, scale)?;
    match bias {
        Some(bias) => b.bin(BinaryOp::Add, y, bias),
        None => Ok(y),
    }
}

/// `(A, B, b_scale, b_zero_point, bias)`.
fn dynamic_quantize_matmul(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let mut b = Build::new(imp, &ctx.name);
    let q = b
        .imp
        .emit(
            &format!("{}/quantize_a", ctx.name),
            Op::DynamicQuantizeLinear,
            vec![ctx.input(0)?],
        )?
        .into_iter()
        .collect::<Vec<_>>();
    let [aq, a_s, a_zp] = q.as_slice() else {
        return Err(NodeError::Invalid(
            "DynamicQuantizeLinear gave no 3 outputs".into(),
        ));
    };
    let mut ins = vec![*aq, ctx.input(1)?, *a_zp];
    ins.extend(ctx.opt_input(3));
    let p = b.op("matmul_integer", Op::MatMulInteger, ins)?;
    let s = b.bin(BinaryOp::Mul, *a_s, ctx.input(2)?)?;
    Ok(vec![scale_and_bias(&mut b, p, s, ctx.opt_input(4))?])
}

/// `(A, B, a_scale, b_scale, a_zero_point, b_zero_point, bias)`.
fn matmul_integer_to_float(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let a = ctx.input(0)?;
    let mut b = Build::new(imp, &ctx.name);
    let mut ins = vec![a, ctx.input(1)?];
    match (ctx.opt_input(4), ctx.opt_input(5)) {
        (Some(az), bz) => {
            ins.push(az);
            ins.extend(bz);
        }
        (None, Some(bz)) => {
            let dt = b.imp.g.ty(a).dtype;
            ins.push(b.constant("a_zero_point", Tensor::from_f64s(dt, vec![], &[0.0])));
            ins.push(bz);
        }
        (None, None) => {}
    }
    let p = b.op("matmul_integer", Op::MatMulInteger, ins)?;
    let s = b.bin(BinaryOp::Mul, ctx.input(2)?, ctx.input(3)?)?;
    Ok(vec![scale_and_bias(&mut b, p, s, ctx.opt_input(6))?])
}

/// `(X, W, R, B, sequence_lens, initial_h, initial_c, P, W_scale, W_zp, R_scale, R_zp)`, W and
/// R quantized in the layout `[directions, input or hidden, 4·hidden]` (the transpose of
/// LSTM's), scales per direction or per direction and gate row.
fn dynamic_quantize_lstm(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let w = dequantized_weight(imp, ctx, 1, 8, "W")?;
    let r = dequantized_weight(imp, ctx, 2, 10, "R")?;
    let mut inputs = vec![Some(ctx.input(0)?), Some(w), Some(r)];
    inputs.extend((3..8).map(|i| ctx.opt_input(i)));
    while inputs.last() == Some(&None) {
        inputs.pop();
    }
    let mut node = ctx.node.clone();
    node.op_type = "LSTM".into();
    node.domain = String::new();
    node.input.truncate(inputs.len());
    let sub = NodeCtx {
        node: &node,
        inputs,
        name: ctx.name.clone(),
    };
    match super::handler("LSTM") {
        Some(h) => h(imp, &sub),
        None => unsupported("no converter for LSTM"),
    }
}

/// A constant quantized weight `[D, K, G]` dequantized and transposed to `[D, G, K]`.
fn dequantized_weight(
    imp: &mut Importer,
    ctx: &NodeCtx,
    at: usize,
    scale_at: usize,
    what: &str,
) -> NodeResult<ValueId> {
    let constant = |i: usize| -> NodeResult<Tensor> {
        let v = ctx.input(i)?;
        imp.g
            .constant(v)
            .cloned()
            .ok_or_else(|| NodeError::Unsupported(format!("{what} computed at run time")))
    };
    let (q, s) = (constant(at)?, constant(scale_at)?);
    let zp = match ctx.opt_input(scale_at + 1) {
        Some(_) => Some(constant(scale_at + 1)?),
        None => None,
    };
    let [d, k, g] = q.shape[..] else {
        return Err(NodeError::Invalid(format!("{what} of shape {:?}", q.shape)));
    };
    let (qv, sv) = (q.to_f64s(), s.to_f64s());
    let zv = zp.map(|z| z.to_f64s()).unwrap_or_else(|| vec![0.0]);
    // A scale (and zero point) per direction, or per direction and output column.
    let pick = |v: &[f64], di: usize, gi: usize| -> Option<f64> {
        match v.len() {
            1 => v.first().copied(),
            n if n == d => v.get(di).copied(),
            n if n == d * g => v.get(di * g + gi).copied(),
            _ => None,
        }
    };
    let mut out = vec![0f64; d * g * k];
    for di in 0..d {
        for gi in 0..g {
            let (Some(sc), Some(z)) = (pick(&sv, di, gi), pick(&zv, di, gi)) else {
                return Err(NodeError::Invalid(format!(
                    "{what} scale of {} values for shape {:?}",
                    sv.len(),
                    q.shape
                )));
            };
            for ki in 0..k {
                out[(di * g + gi) * k + ki] = (qv[(di * k + ki) * g + gi] - z) * sc;
            }
        }
    }
    let t = Tensor::from_f64s(DType::F32, vec![d, g, k], &out);
    Ok(imp.add_const(&format!("{}/{what}", ctx.name), t))
}
