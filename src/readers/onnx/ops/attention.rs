//! ONNX Attention-23 as the ops of its function body: Q and K scaled by √scale each, `Q·Kᵀ`,
//! softcap `c·tanh(x/c)`, plus the bias (the mask — additive, or boolean as 0/−∞ — and the causal
//! mask offset by the past length), softmax over the keys, `·V`. 3-D inputs are split into
//! heads (`q_num_heads`, `kv_num_heads`) and joined back; grouped-query attention repeats each
//! key/value head for its group; `past_key`/`past_value` are prepended on the sequence axis and
//! are the `present_*` outputs; `qk_matmul_output` is the scores after the matmul (mode 0), the
//! softcap (1), the bias (2) or the softmax (3). `nonpad_kv_seqlen` (opset 24) is refused.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::{BinaryOp, Expand, MatMul, Softmax, UnaryOp};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Attention" => attention,
        _ => return None,
    })
}

fn fixed(d: &Dim, what: &str) -> NodeResult<usize> {
    d.fixed().map(|n| n as usize).ok_or_else(|| {
        NodeError::Unsupported(format!("Attention with a {what} known only at run time"))
    })
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
