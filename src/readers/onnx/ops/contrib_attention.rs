//! onnxruntime's contrib `Attention` (what `onnxruntime.transformers`' optimizer fuses BERT
//! self-attention into): `input · weights + bias` split into Q, K and V (`qkv_hidden_sizes`, or
//! three equal parts), the padding mask made additive (`mask_filter_value`, −10000 by default,
//! at masked keys), then the standard Attention-23 with `num_heads` heads, `scale`
//! (1/√head_size by default) and `unidirectional` as its causal flag. Mask forms read: key
//! lengths `[B]` (right padding), and 0/1 masks `[B, S]` or `[B, S, S]`. `past`/`present`,
//! `[2B]` start/end masks, 4-D masks and rotary embeddings are refused.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::contrib::{float_attr, standard};
use super::contrib_quant::dequantize;
use super::Handler;
use crate::ir::ops::{BinaryOp, Gather, MatMul, ReduceKind};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};
use tract_onnx::pb::AttributeProto;

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "com.microsoft:Attention" => attention,
        "com.microsoft:QAttention" => qattention,
        "com.microsoft:EmbedLayerNormalization" | "com.microsoft:QEmbedLayerNormalization" => {
            embed_layer_norm
        }
        _ => return None,
    })
}

/// `(input, weights, bias, mask_index, past, attention_bias, past_sequence_length)`.
fn attention(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let xt = imp.g.ty(x).clone();
    if !xt.dtype.is_float() {
        return Err(NodeError::Invalid(format!("Attention input {xt}")));
    }
    let qkv = Build::new(imp, &ctx.name).op(
        "qkv",
        Op::MatMul(MatMul::default()),
        vec![x, ctx.input(1)?],
    )?;
    let operands = Operands {
        x_shape: xt.shape,
        qkv,
        bias: ctx.opt_input(2),
        mask: ctx.opt_input(3),
        past: ctx.opt_input(4),
        extra: ctx.opt_input(5),
    };
    attend(imp, ctx, operands)
}

/// QAttention (`quantize_dynamic` of Attention): `(input, weight, bias, input_scale,
/// weight_scale, mask_index, input_zero_point, weight_zero_point, past)`. The projection is the
/// integer product onnxruntime computes, `MatMulInteger` scaled by `input_scale · weight_scale`:
/// a dequantized weight before a float MatMul would be fused by onnxruntime into a weight-only
/// kernel that quantizes the activations its own way.
fn qattention(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (xq, wq) = (ctx.input(0)?, ctx.input(1)?);
    let mut b = Build::new(imp, &ctx.name);
    let mut ins = vec![xq, wq];
    match (ctx.opt_input(6), ctx.opt_input(7)) {
        (Some(xz), wz) => {
            ins.push(xz);
            ins.extend(wz);
        }
        (None, Some(wz)) => {
            let dt = b.imp.g.ty(xq).dtype;
            ins.push(b.constant("input_zero_point", Tensor::from_f64s(dt, vec![], &[0.0])));
            ins.push(wz);
        }
        (None, None) => {}
    }
    let p = b.op("qkv_integer", Op::MatMulInteger, ins)?;
    let p = b.cast(p, DType::F32)?;
    let s = b.bin(BinaryOp::Mul, ctx.input(3)?, ctx.input(4)?)?;
    let qkv = b.bin(BinaryOp::Mul, p, s)?;
    let operands = Operands {
        x_shape: b.shape(xq),
        qkv,
        bias: ctx.opt_input(2),
        mask: ctx.opt_input(5),
        past: ctx.opt_input(8),
        extra: None,
    };
    attend(imp, ctx, operands)
}

/// The unbiased projection `input · weights` (`[B, S, Q|K|V]`, float) and the other operands.
struct Operands {
    x_shape: Vec<Dim>,
    qkv: ValueId,
    bias: Option<ValueId>,
    mask: Option<ValueId>,
    past: Option<ValueId>,
    extra: Option<ValueId>,
}

fn attend(imp: &mut Importer, ctx: &NodeCtx, o: Operands) -> NodeResult<Vec<ValueId>> {
    if o.past.is_some() || ctx.node.output.get(1).is_some_and(|o| !o.is_empty()) {
        return unsupported("Attention with past / present state");
    }
    if ctx.int("do_rotary", 0) != 0 {
        return unsupported("Attention with do_rotary");
    }
    let heads = ctx.int("num_heads", 0);
    if heads <= 0 {
        return Err(NodeError::Invalid("num_heads must be positive".into()));
    }
    let xs = o.x_shape;
    let dt = imp.g.ty(o.qkv).dtype;
    if xs.len() != 3 {
        return Err(NodeError::Invalid(format!(
            "Attention input must be 3-D, got {xs:?}"
        )));
    }
    let mut b = Build::new(imp, &ctx.name);
    let mut qkv = o.qkv;
    if let Some(bias) = o.bias {
        qkv = b.bin(BinaryOp::Add, qkv, bias)?;
    }
    let Some(total) = b.shape(qkv)[2].fixed() else {
        return unsupported("Attention weights of a width known only at run time");
    };
    let sizes: Vec<i64> = match ctx.ints("qkv_hidden_sizes") {
        Some(s) if s.len() == 3 => s,
        Some(s) => return Err(NodeError::Invalid(format!("qkv_hidden_sizes {s:?}"))),
        None if total.is_multiple_of(3) => vec![total as i64 / 3; 3],
        None => {
            return Err(NodeError::Invalid(format!(
                "{total} columns are not Q, K, V"
            )))
        }
    };
    if sizes.iter().sum::<i64>() != total as i64 || sizes[1] != sizes[0] {
        return Err(NodeError::Invalid(format!(
            "qkv_hidden_sizes {sizes:?} for {total} columns"
        )));
    }
    let q = b.slice(qkv, 2, 0, sizes[0])?;
    let k = b.slice(qkv, 2, sizes[0], sizes[0] + sizes[1])?;
    let v = b.slice(qkv, 2, sizes[0] + sizes[1], total as i64)?;
    let filter = ctx.float("mask_filter_value", -10000.0) as f64;
    let mut mask = match o.mask {
        Some(m) => Some(additive_mask(&mut b, m, &xs, dt, filter)?),
        None => None,
    };
    if let Some(extra) = o.extra {
        mask = Some(match mask {
            Some(m) => b.bin(BinaryOp::Add, m, extra)?,
            None => extra,
        });
    }
    let ints = |name: &str, i: i64| AttributeProto {
        name: name.into(),
        i,
        ..Default::default()
    };
    let mut attrs = vec![
        ints("q_num_heads", heads),
        ints("kv_num_heads", heads),
        ints("is_causal", ctx.int("unidirectional", 0)),
    ];
    if let Some(s) = ctx.attr("scale") {
        attrs.push(float_attr("scale", s.f));
    }
    let drop: Vec<&str> = ctx.node.attribute.iter().map(|a| a.name.as_str()).collect();
    let inputs = vec![Some(q), Some(k), Some(v), mask];
    let out = standard(imp, ctx, "Attention", inputs, &drop, attrs, "attention")?;
    Ok(out.into_iter().take(1).collect())
}

/// The mask as scores to add, `[B, 1, 1|S, S]`: `filter` at masked keys, 0 elsewhere.
fn additive_mask(
    b: &mut Build,
    m: ValueId,
    xs: &[Dim],
    dt: DType,
    filter: f64,
) -> NodeResult<ValueId> {
    let ms = b.shape(m);
    let zero = b.scalar("zero", dt, 0.0);
    let fill = b.scalar("mask_filter_value", dt, filter);
    let (batch, seq) = (xs[0].clone(), xs[1].clone());
    match ms.len() {
        // Key lengths: key j of batch b is masked when j >= len[b].
        1 if ms[0] == batch => {
            let Some(s) = seq.fixed() else {
                return unsupported("an Attention mask index over a length known only at run time");
            };
            let idt = b.imp.g.ty(m).dtype;
            let pos: Vec<f64> = (0..s).map(|j| j as f64).collect();
            let pos = b.constant(
                "positions",
                Tensor::from_f64s(idt, vec![1, s as usize], &pos),
            );
            let len = b.reshape(m, vec![batch.clone(), Dim::Fixed(1)])?;
            let past_end = b.bin(BinaryOp::GreaterOrEqual, pos, len)?;
            let add = b.op("mask", Op::Where, vec![past_end, fill, zero])?;
            b.reshape(add, vec![batch, Dim::Fixed(1), Dim::Fixed(1), seq])
        }
        // 0/1 masks over the keys (`[B, S]`) or per query (`[B, S, S]`).
        2 | 3 => {
            let mf = b.cast(m, dt)?;
            let one = b.scalar("one", dt, 1.0);
            let off = b.bin(BinaryOp::Sub, one, mf)?;
            let add = b.bin(BinaryOp::Mul, off, fill)?;
            let mut shape = ms.clone();
            shape.insert(1, Dim::Fixed(1));
            if ms.len() == 2 {
                shape.insert(1, Dim::Fixed(1));
            }
            b.reshape(add, shape)
        }
        _ => unsupported(format!(
            "an Attention mask_index of shape {ms:?} (start/end positions or 4-D)"
        )),
    }
}

/// EmbedLayerNormalization: `(input_ids, segment_ids, word_embedding, position_embedding,
/// segment_embedding, gamma, beta, mask, position_ids)` → LayerNormalization (epsilon 1e-12 by
/// default) of the summed embeddings (positions `0..S` without `position_ids`), the mask's
/// key lengths `ReduceSum(mask, 1)` and the sum. QEmbedLayerNormalization (`quantize_dynamic`)
/// has the five tables quantized, their scales at 8..12 and zero points at 13..17, and no
/// position_ids.
fn embed_layer_norm(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let quantized = ctx.node.op_type == "QEmbedLayerNormalization";
    let mut b = Build::new(imp, &ctx.name);
    let table = |b: &mut Build, i: usize| -> NodeResult<Option<ValueId>> {
        let Some(t) = ctx.opt_input(i) else {
            return Ok(None);
        };
        if !quantized {
            return Ok(Some(t));
        }
        let scale = ctx.input(i + 6)?;
        let zp = ctx.opt_input(i + 11);
        // Constant tables are dequantized once: a lookup table read as float.
        if let Some(f) = dequantized_constant(b, t, scale, zp) {
            return Ok(Some(b.constant("table", f)));
        }
        Ok(Some(dequantize(b, t, scale, zp, 0)?))
    };
    let (word, pos) = (table(&mut b, 2)?, table(&mut b, 3)?);
    let (seg, gamma, beta) = (table(&mut b, 4)?, table(&mut b, 5)?, table(&mut b, 6)?);
    let (Some(word), Some(pos), Some(gamma)) = (word, pos, gamma) else {
        return Err(NodeError::Invalid(
            "missing embedding table or gamma".into(),
        ));
    };
    let ids = ctx.input(0)?;
    let ids_shape = b.shape(ids);
    let gather = |b: &mut Build, t: ValueId, i: ValueId| {
        b.op("gather", Op::Gather(Gather { axis: 0 }), vec![t, i])
    };
    let mut sum = gather(&mut b, word, ids)?;
    // QEmbedLayerNormalization has no position_ids: its inputs from 8 on are the scales.
    let position_ids = if quantized { None } else { ctx.opt_input(8) };
    let positions = match position_ids {
        Some(p) => gather(&mut b, pos, p)?,
        None => {
            let Some(s) = ids_shape.get(1).and_then(Dim::fixed) else {
                return unsupported("EmbedLayerNormalization positions over a run-time length");
            };
            b.slice(pos, 0, 0, s as i64)?
        }
    };
    sum = b.bin(BinaryOp::Add, sum, positions)?;
    if let (Some(seg), Some(seg_ids)) = (seg, ctx.opt_input(1)) {
        let s = gather(&mut b, seg, seg_ids)?;
        sum = b.bin(BinaryOp::Add, sum, s)?;
    }
    let mask_index = match ctx.opt_input(7) {
        Some(m) => {
            let m = b.cast(m, DType::I32)?;
            b.reduce(ReduceKind::Sum, m, vec![1], false)?
        }
        // No mask: onnxruntime writes zeros.
        None => {
            let Some(n) = ids_shape.first().and_then(Dim::fixed) else {
                return unsupported("EmbedLayerNormalization without a mask over a run-time batch");
            };
            let zeros = vec![0.0; n as usize];
            b.constant(
                "mask_index",
                Tensor::from_f64s(DType::I32, vec![n as usize], &zeros),
            )
        }
    };
    let eps = float_attr("epsilon", ctx.float("epsilon", 1e-12));
    let drop: Vec<&str> = ctx.node.attribute.iter().map(|a| a.name.as_str()).collect();
    let inputs = vec![Some(sum), Some(gamma), beta];
    let y = standard(imp, ctx, "LayerNormalization", inputs, &drop, vec![eps], "")?;
    let y = y
        .into_iter()
        .next()
        .ok_or_else(|| NodeError::Invalid("no output".into()))?;
    Ok(vec![y, mask_index, sum])
}

/// `(q − zero_point) · scale` of a constant with one constant scale and zero point.
fn dequantized_constant(
    b: &Build,
    q: ValueId,
    scale: ValueId,
    zp: Option<ValueId>,
) -> Option<Tensor> {
    let g = &b.imp.g;
    let q = g.constant(q)?;
    let s = *g
        .constant(scale)?
        .to_f64s()
        .first()
        .filter(|_| g.ty(scale).rank() == 0)?;
    let z = match zp {
        Some(z) => *g.constant(z)?.to_f64s().first()?,
        None => 0.0,
    };
    let v: Vec<f64> = q.to_f64s().iter().map(|&x| (x - z) * s).collect();
    Some(Tensor::from_f64s(DType::F32, q.shape.clone(), &v))
}
