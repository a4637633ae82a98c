//! MultiHeadAttention (self- and cross-attention over one sequence axis; of the masks only
//! `use_causal_mask`): the einsum kernels `[dim, heads, key_dim]` are reshaped (no copy) to
//! matrices, heads split with Reshape/Transpose, `softmax(q k^T / sqrt(key_dim)) v`, heads
//! merged, output projection.

use super::super::build::{unsupported, Builder, Call, LResult};
use crate::ir::ops::{BinaryOp, MatMul, Reshape, Softmax, Transpose};
use crate::ir::{Dim, Op, Tensor, ValueId};
use serde::Deserialize;
use serde_json::Value;

pub fn handler(class: &str) -> Option<super::Handler> {
    Some(match class {
        "MultiHeadAttention" => mha,
        _ => return None,
    })
}

#[derive(Deserialize)]
struct MhaConfig {
    num_heads: usize,
    key_dim: usize,
    #[serde(default)]
    value_dim: Option<usize>,
    #[serde(default = "yes")]
    use_bias: bool,
    #[serde(default)]
    attention_axes: Option<Value>,
}

fn yes() -> bool {
    true
}

/// `x @ W + b` with an einsum kernel `[d, a, b]` flattened to `[d, a*b]`; the result is split
/// into heads `[B, heads, seq, per_head]`.
fn project_heads(
    b: &mut Builder,
    name: &str,
    x: ValueId,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> LResult<ValueId> {
    if w.shape.len() != 3 {
        return Err(format!("{name}: kernel of shape {:?}", w.shape).into());
    }
    let (d, h, k) = (w.shape[0], w.shape[1], w.shape[2]);
    let kv = b.constant(&format!("{name}/kernel"), w.reshaped(vec![d, h * k]));
    let mut y = b.emit1(name, Op::MatMul(MatMul::default()), vec![x, kv])?;
    if let Some(bias) = bias {
        let bv = b.constant(&format!("{name}/bias"), bias.reshaped(vec![h * k]));
        y = b.emit1(
            &format!("{name}/bias_add"),
            Op::Binary(BinaryOp::Add),
            vec![y, bv],
        )?;
    }
    let s = b.shape(y);
    let shape = vec![
        s[0].clone(),
        s[1].clone(),
        Dim::Fixed(h as u64),
        Dim::Fixed(k as u64),
    ];
    let y = b.emit1(
        &format!("{name}/split_heads"),
        Op::Reshape(Reshape { shape }),
        vec![y],
    )?;
    b.emit1(
        &format!("{name}/heads_first"),
        Op::Transpose(Transpose {
            perm: vec![0, 2, 1, 3],
        }),
        vec![y],
    )
}

fn mha(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let cfg: MhaConfig = c.parse()?;
    // Attention over the one sequence axis (Keras stores the default as `[1]` or null).
    let axes_ok = match &cfg.attention_axes {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.len() == 1 && a[0].as_i64().is_some_and(|x| x == 1 || x == -2),
        Some(Value::Number(n)) => n.as_i64().is_some_and(|x| x == 1 || x == -2),
        _ => false,
    };
    if !axes_ok {
        return unsupported(format!(
            "MultiHeadAttention over axes {:?} (only the sequence axis)",
            cfg.attention_axes
        ));
    }
    if c.kw_input("attention_mask").is_some() {
        return unsupported("MultiHeadAttention with an attention mask tensor");
    }
    let causal = c.kwargs.get("use_causal_mask").and_then(Value::as_bool) == Some(true);
    if c.kwargs
        .get("return_attention_scores")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return unsupported("MultiHeadAttention returning its attention scores");
    }
    let query = c.input(0)?;
    let value = c
        .inputs
        .get(1)
        .copied()
        .or(c.kw_input("value"))
        .unwrap_or(query);
    let key = c
        .inputs
        .get(2)
        .copied()
        .or(c.kw_input("key"))
        .unwrap_or(value);
    let w = &c.weights;
    let (wq, bq, wk, bk, wv, bv, wo, bo) = if cfg.use_bias {
        if w.len() < 8 {
            return Err(format!("has {} weights, needs 8", w.len()).into());
        }
        (
            &w[0],
            Some(&w[1]),
            &w[2],
            Some(&w[3]),
            &w[4],
            Some(&w[5]),
            &w[6],
            Some(&w[7]),
        )
    } else {
        if w.len() < 4 {
            return Err(format!("has {} weights, needs 4", w.len()).into());
        }
        (&w[0], None, &w[1], None, &w[2], None, &w[3], None)
    };
    let n = &c.name;
    let q = project_heads(b, &format!("{n}/query"), query, wq, bq)?;
    let scale = b.const_f32(
        &format!("{n}/scale"),
        vec![],
        &[1.0 / (cfg.key_dim as f32).sqrt()],
    );
    let q = b.emit1(
        &format!("{n}/query_scaled"),
        Op::Binary(BinaryOp::Mul),
        vec![q, scale],
    )?;
    let k = project_heads(b, &format!("{n}/key"), key, wk, bk)?;
    let v = project_heads(b, &format!("{n}/value"), value, wv, bv)?;
    let mm_t = MatMul {
        transpose_a: false,
        transpose_b: true,
    };
    let mut scores = b.emit1(&format!("{n}/scores"), Op::MatMul(mm_t), vec![q, k])?;
    if causal {
        scores = causal_mask(b, n, scores)?;
    }
    let probs = b.emit1(
        &format!("{n}/softmax"),
        Op::Softmax(Softmax {
            axis: 3,
            log: false,
        }),
        vec![scores],
    )?;
    let ctx = b.emit1(
        &format!("{n}/context"),
        Op::MatMul(MatMul::default()),
        vec![probs, v],
    )?;
    let ctx = b.emit1(
        &format!("{n}/heads_last"),
        Op::Transpose(Transpose {
            perm: vec![0, 2, 1, 3],
        }),
        vec![ctx],
    )?;
    let s = b.shape(ctx);
    let heads = cfg.num_heads * cfg.value_dim.unwrap_or(cfg.key_dim);
    let shape = vec![s[0].clone(), s[1].clone(), Dim::Fixed(heads as u64)];
    let ctx = b.emit1(
        &format!("{n}/merge_heads"),
        Op::Reshape(Reshape { shape }),
        vec![ctx],
    )?;
    if wo.shape.len() < 3 {
        return Err(format!("output kernel of shape {:?}", wo.shape).into());
    }
    let out_dims = wo.shape[2..].to_vec();
    let out_n: usize = out_dims.iter().product();
    let wo2 = b.constant(
        &format!("{n}/output/kernel"),
        wo.reshaped(vec![heads, out_n]),
    );
    let mut y = b.emit1(n, Op::MatMul(MatMul::default()), vec![ctx, wo2])?;
    if let Some(bo) = bo {
        let bv = b.constant(&format!("{n}/output/bias"), bo.reshaped(vec![out_n]));
        y = b.emit1(
            &format!("{n}/output/bias_add"),
            Op::Binary(BinaryOp::Add),
            vec![y, bv],
        )?;
    }
    if out_dims.len() > 1 {
        let mut shape = b.shape(y)[..2].to_vec();
        shape.extend(out_dims.iter().map(|&d| Dim::Fixed(d as u64)));
        y = b.emit1(
            &format!("{n}/output/reshape"),
            Op::Reshape(Reshape { shape }),
            vec![y],
        )?;
    }
    Ok(vec![y])
}

/// Keras's causal mask on `scores [B, heads, T, S]`: query step i sees key steps j ≤ i. Keras's
/// softmax adds `-1e9` (its large negative number for float32) where the mask is false; the
/// same constant `[T, S]` is added here. Sequence lengths must be fixed.
fn causal_mask(b: &mut Builder, n: &str, scores: ValueId) -> LResult<ValueId> {
    let s = b.shape(scores);
    let (Some(t), Some(k)) = (s[2].fixed(), s[3].fixed()) else {
        return unsupported(
            "use_causal_mask over a sequence whose length is known only at run time",
        );
    };
    let (t, k) = (t as usize, k as usize);
    let adder: Vec<f32> = (0..t * k)
        .map(|i| if i % k <= i / k { 0.0 } else { -1e9 })
        .collect();
    let mask = b.const_f32(&format!("{n}/causal_mask"), vec![t, k], &adder);
    b.emit1(
        &format!("{n}/scores_masked"),
        Op::Binary(BinaryOp::Add),
        vec![scores, mask],
    )
}
