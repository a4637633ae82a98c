//! ONNX Attention-23 as the ops of its function body: Q and K scaled by √scale each, `Q·Kᵀ`,
//! softcap `c·tanh(x/c)`, plus the bias (the mask — additive, or boolean as 0/−∞ — and the causal
//! mask offset by the past length), softmax over the keys, `·V`. 3-D inputs are split into
//! heads (`q_num_heads`, `kv_num_heads`) and joined back; grouped-query attention repeats each
//! key/value head for its group; `past_key`/`past_value` are prepended on the sequence axis and
//! are the `present_*` outputs; `qk_matmul_output` is the scores after the matmul (mode 0), the
//! softcap (1), the bias (2) or the softmax (3). `nonpad_kv_seqlen` (opset 24) is refused.
//! RotaryEmbedding-23 is the slices, products and concats of its definition.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::{BinaryOp, Expand, Gather, MatMul, Softmax, UnaryOp};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Attention" => attention,
        "RotaryEmbedding" => rotary_embedding,
        _ => return None,
    })
}

fn fixed(d: &Dim, what: &str) -> NodeResult<usize> {
    d.fixed()
        .map(|n| n as usize)
        .ok_or_else(|| NodeError::Unsupported(format!("a {what} known only at run time")))
}

/// `[B, S, H·D]` as `[B, H, S, D]`, or a 4-D input as it is; returns it and `H`.
fn heads(b: &mut Build, x: ValueId, heads_attr: i64, what: &str) -> NodeResult<(ValueId, usize)> {
    let s = b.shape(x);
    match s.len() {
        4 => Ok((x, fixed(&s[1], what)?)),
        3 if heads_attr > 0 => {
            let h = heads_attr as usize;
            let hd = fixed(&s[2], "hidden size")?;
            if hd % h != 0 {
                return Err(NodeError::Invalid(format!(
                    "{hd} is not a multiple of {h} heads"
                )));
            }
            let split = vec![
                s[0].clone(),
                s[1].clone(),
                Dim::Fixed(h as u64),
                Dim::Fixed((hd / h) as u64),
            ];
            let r = b.reshape(x, split)?;
            Ok((b.transpose(r, vec![0, 2, 1, 3])?, h))
        }
        _ => Err(NodeError::Invalid(format!(
            "{what} must be 3-D (with its head count) or 4-D"
        ))),
    }
}

fn attention(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (q, k, v) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    let dt = imp.g.ty(q).dtype;
    if !dt.is_float() {
        return unsupported(format!("Attention on {dt}"));
    }
    if ctx.opt_input(6).is_some() {
        return unsupported("Attention with nonpad_kv_seqlen");
    }
    let three_d = imp.g.ty(q).rank() == 3;
    let mut b = Build::new(imp, &ctx.name);
    let (q, hq) = heads(&mut b, q, ctx.int("q_num_heads", 0), "Q")?;
    let (mut k, hkv) = heads(&mut b, k, ctx.int("kv_num_heads", 0), "K")?;
    let (mut v, _) = heads(&mut b, v, ctx.int("kv_num_heads", 0), "V")?;
    let past = match (ctx.opt_input(4), ctx.opt_input(5)) {
        (Some(pk), Some(pv)) => {
            let past_len = b.shape(pk)[2].clone();
            k = b.concat(vec![pk, k], 2)?;
            v = b.concat(vec![pv, v], 2)?;
            Some(past_len)
        }
        (None, None) => None,
        _ => {
            return Err(NodeError::Invalid(
                "past_key and past_value go together".into(),
            ))
        }
    };
    let (present_k, present_v) = (k, v);
    let qs = b.shape(q);
    let d = fixed(&qs[3], "head size")?;
    let (sq, skv) = (
        fixed(&qs[2], "query length")?,
        fixed(&b.shape(k)[2], "key length")?,
    );
    let past_len = match &past {
        Some(p) => fixed(p, "past length")?,
        None => 0,
    };
    if hkv == 0 || hq % hkv != 0 {
        return Err(NodeError::Invalid(format!(
            "{hq} query heads for {hkv} key/value heads"
        )));
    }
    if hq != hkv {
        k = repeat_heads(&mut b, k, hq / hkv)?;
        v = repeat_heads(&mut b, v, hq / hkv)?;
    }
    let scale = ctx
        .attr("scale")
        .map_or(1.0 / (d as f64).sqrt(), |a| a.f as f64);
    let root = b.scalar("c", dt, scale.sqrt());
    let qs_ = b.bin(BinaryOp::Mul, q, root)?;
    let kt = b.transpose(k, vec![0, 1, 3, 2])?;
    let ks_ = b.bin(BinaryOp::Mul, kt, root)?;
    let scores = b.op("matmul", Op::MatMul(MatMul::default()), vec![qs_, ks_])?;
    let mut stages = vec![scores];
    let softcap = ctx.float("softcap", 0.0) as f64;
    let mut x = scores;
    if softcap > 0.0 {
        let c = b.scalar("c", dt, softcap);
        let div = b.bin(BinaryOp::Div, x, c)?;
        let t = b.un(UnaryOp::Tanh, div)?;
        x = b.bin(BinaryOp::Mul, t, c)?;
    }
    let capped = x;
    let biased = add_bias(&mut b, ctx, x, dt, sq, skv, past_len)?;
    // qk_matmul_output (as the function body numbers its stages): 0 after the matmul, 1 after
    // the softcap, 2 after the bias, 3 after the softmax.
    stages.push(capped);
    stages.push(biased);
    let probs = b.op(
        "softmax",
        Op::Softmax(Softmax {
            axis: 3,
            log: false,
        }),
        vec![biased],
    )?;
    stages.push(probs);
    let mut y = b.op("matmul", Op::MatMul(MatMul::default()), vec![probs, v])?;
    if three_d {
        let t = b.transpose(y, vec![0, 2, 1, 3])?;
        let s = b.shape(t);
        let joined = vec![
            s[0].clone(),
            s[1].clone(),
            Dim::product(&[s[2].clone(), s[3].clone()]),
        ];
        y = b.reshape(t, joined)?;
    }
    let mode = ctx.int("qk_matmul_output_mode", 0);
    let qk = *stages
        .get(mode.clamp(0, 3) as usize)
        .ok_or_else(|| NodeError::Invalid(format!("qk_matmul_output_mode {mode}")))?;
    Ok(vec![y, present_k, present_v, qk])
}

/// Each of the `[B, H, S, D]` heads `rep` times in a row: `[h0, h0, h1, h1, …]`.
fn repeat_heads(b: &mut Build, x: ValueId, rep: usize) -> NodeResult<ValueId> {
    let s = b.shape(x);
    let mut u = s.clone();
    u.insert(2, Dim::Fixed(1));
    let x = b.reshape(x, u.clone())?;
    u[2] = Dim::Fixed(rep as u64);
    let x = b.op("expand", Op::Expand(Expand { shape: u }), vec![x])?;
    let joined = vec![
        s[0].clone(),
        Dim::product(&[s[1].clone(), Dim::Fixed(rep as u64)]),
        s[2].clone(),
        s[3].clone(),
    ];
    b.reshape(x, joined)
}

/// Scores plus the mask (boolean: 0 where true, −∞ elsewhere) and the causal mask (a query at
/// `i` sees keys up to `i + past`).
fn add_bias(
    b: &mut Build,
    ctx: &NodeCtx,
    x: ValueId,
    dt: DType,
    sq: usize,
    skv: usize,
    past: usize,
) -> NodeResult<ValueId> {
    let mut x = x;
    if let Some(m) = ctx.opt_input(3) {
        let bias = match b.imp.g.ty(m).dtype {
            DType::Bool => {
                let zero = b.scalar("c", dt, 0.0);
                let neg = b.scalar("c", dt, f64::NEG_INFINITY);
                b.op("where", Op::Where, vec![m, zero, neg])?
            }
            _ => m,
        };
        x = b.bin(BinaryOp::Add, x, bias)?;
    }
    if ctx.int("is_causal", 0) == 1 {
        let mut v = Vec::with_capacity(sq * skv);
        for i in 0..sq {
            for j in 0..skv {
                v.push(if j <= i + past {
                    0.0
                } else {
                    f64::NEG_INFINITY
                });
            }
        }
        let tri = b.constant("causal", Tensor::from_f64s(dt, vec![sq, skv], &v));
        x = b.bin(BinaryOp::Add, x, tri)?;
    }
    Ok(x)
}

/// RotaryEmbedding-23: the first `rotary_embedding_dim` features of each head rotated by the
/// angle pairs in `cos_cache`/`sin_cache` (gathered by `position_ids` when given), as halves
/// (`[x1, x2]`) or interleaved pairs (`x1 = x[0::2]`, `x2 = x[1::2]`):
/// `[x1·cos − x2·sin, x1·sin + x2·cos]`. 4-D inputs are `[B, H, S, D]`, 3-D ones `[B, S, H·D]`.
fn rotary_embedding(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, cos, sin) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    let ty = imp.g.ty(x).clone();
    let mut b = Build::new(imp, &ctx.name);
    // Work on [B, H, S, D] or [B, S, H, D]; the caches broadcast over H at `head_axis`.
    let (x4, head_axis) = match ty.rank() {
        4 => (x, 1),
        3 => {
            let heads = ctx.int("num_heads", 0);
            let hidden = fixed(&ty.shape[2], "hidden size")?;
            if heads <= 0 || hidden % heads as usize != 0 {
                return Err(NodeError::Invalid(format!(
                    "RotaryEmbedding num_heads {heads} does not divide the hidden size {hidden}"
                )));
            }
            let mut s = ty.shape.clone();
            s[2] = Dim::Fixed(heads as u64);
            s.push(Dim::Fixed(hidden as u64 / heads as u64));
            (b.reshape(x, s)?, 2)
        }
        _ => return Err(NodeError::Invalid(format!("RotaryEmbedding input {ty}"))),
    };
    let head = fixed(&b.shape(x4)[3], "head size")?;
    let rot = match ctx.int("rotary_embedding_dim", 0) {
        0 => head,
        r if r > 0 && (r as usize) <= head && r % 2 == 0 => r as usize,
        r => {
            return Err(NodeError::Invalid(format!(
                "rotary_embedding_dim {r} for heads of {head}"
            )))
        }
    };
    let interleaved = ctx.int("interleaved", 0) == 1;
    let mut caches = vec![];
    for c in [cos, sin] {
        let c = match ctx.opt_input(3) {
            Some(ids) => b.op("gather", Op::Gather(Gather { axis: 0 }), vec![c, ids])?,
            None => c,
        };
        // [B, S, rot/2] → a size-1 head axis, and a pair axis when interleaved.
        let mut s = b.shape(c);
        s.insert(head_axis, Dim::Fixed(1));
        if interleaved {
            s.push(Dim::Fixed(1));
        }
        caches.push(b.reshape(c, s)?);
    }
    let rotated = b.slice(x4, 3, 0, rot as i64)?;
    let (x1, x2, pairs) = if interleaved {
        let mut s = b.shape(rotated);
        s[3] = Dim::Fixed(rot as u64 / 2);
        s.push(Dim::Fixed(2));
        let pairs = b.reshape(rotated, s)?;
        (b.slice(pairs, 4, 0, 1)?, b.slice(pairs, 4, 1, 2)?, true)
    } else {
        let half = rot as i64 / 2;
        (
            b.slice(rotated, 3, 0, half)?,
            b.slice(rotated, 3, half, rot as i64)?,
            false,
        )
    };
    let (c, s) = (caches[0], caches[1]);
    let x1c = b.bin(BinaryOp::Mul, x1, c)?;
    let x2s = b.bin(BinaryOp::Mul, x2, s)?;
    let real = b.bin(BinaryOp::Sub, x1c, x2s)?;
    let x1s = b.bin(BinaryOp::Mul, x1, s)?;
    let x2c = b.bin(BinaryOp::Mul, x2, c)?;
    let imag = b.bin(BinaryOp::Add, x1s, x2c)?;
    let mut y = if pairs {
        let joined = b.concat(vec![real, imag], 4)?;
        let shape = b.shape(rotated);
        b.reshape(joined, shape)?
    } else {
        b.concat(vec![real, imag], 3)?
    };
    if rot < head {
        let rest = b.slice(x4, 3, rot as i64, head as i64)?;
        y = b.concat(vec![y, rest], 3)?;
    }
    if ty.rank() == 3 {
        y = b.reshape(y, ty.shape.clone())?;
    }
    Ok(vec![y])
}
