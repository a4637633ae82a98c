//! onnxruntime's contrib `Attention` (what `onnxruntime.transformers`' optimizer fuses BERT
//! self-attention into): `input · weights + bias` split into Q, K and V (`qkv_hidden_sizes`, or
//! three equal parts), the padding mask made additive (`mask_filter_value`, −10000 by default,
//! at masked keys), then the standard Attention-23 with `num_heads` heads, `scale`
//! (1/√head_size by default) and `unidirectional` as its causal flag. Mask forms read: key
//! lengths `[B]` (right padding), and 0/1 masks `[B, S]` or `[B, S, S]`. `past`/`present`,
//! `[2B]` start/end masks, 4-D masks and rotary embeddings are refused.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::contrib::standard;
use super::Handler;
use crate::ir::ops::{BinaryOp, MatMul};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};
use tract_onnx::pb::AttributeProto;

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "com.microsoft:Attention" => attention,
        _ => return None,
    })
}

fn attention(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    if ctx.opt_input(4).is_some() || ctx.node.output.get(1).is_some_and(|o| !o.is_empty()) {
        return unsupported("Attention with past / present state");
    }
    if ctx.int("do_rotary", 0) != 0 {
        return unsupported("Attention with do_rotary");
    }
    let heads = ctx.int("num_heads", 0);
    if heads <= 0 {
        return Err(NodeError::Invalid("num_heads must be positive".into()));
    }
    let x = ctx.input(0)?;
    let xs = imp.g.ty(x).shape.clone();
    let dt = imp.g.ty(x).dtype;
    if xs.len() != 3 || !dt.is_float() {
        return Err(NodeError::Invalid(format!(
            "Attention input must be 3-D float, got {}",
            imp.g.ty(x)
        )));
    }
    let mut b = Build::new(imp, &ctx.name);
    let mut qkv = b.op("qkv", Op::MatMul(MatMul::default()), vec![x, ctx.input(1)?])?;
    if let Some(bias) = ctx.opt_input(2) {
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
    let mut mask = match ctx.opt_input(3) {
        Some(m) => Some(additive_mask(&mut b, m, &xs, dt, filter)?),
        None => None,
    };
    if let Some(extra) = ctx.opt_input(5) {
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
        attrs.push(super::contrib::float_attr("scale", s.f));
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
