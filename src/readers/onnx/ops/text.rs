//! TfIdfVectorizer over integer tokens, vectorized per n-gram length and skip: for n-grams of
//! length `n` taken every `skip + 1` tokens, token `j` of every window is compared with token
//! `j` of every pool n-gram (`[B, windows, pool]`), the matches of a window AND-ed and summed
//! over windows. Unigrams are counted once (skips do not apply to them). The counts, in pool
//! order, go to their `ngram_indexes` columns by a one-hot MatMul, then become TF, IDF
//! (`min(count, 1)·weight`) or TFIDF (`count·weight`). String pools are refused.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::{BinaryOp, MatMul, ReduceKind};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "TfIdfVectorizer" => tfidf,
        _ => return None,
    })
}

/// The attributes, checked.
struct Spec {
    min_n: usize,
    max_n: usize,
    max_skip: usize,
    /// Pool n-grams of each length, in pool order.
    grams: Vec<Vec<Vec<i64>>>,
    indexes: Vec<i64>,
    weights: Option<Vec<f32>>,
    mode: String,
}

fn spec(ctx: &NodeCtx) -> NodeResult<Spec> {
    if ctx
        .attr("pool_strings")
        .is_some_and(|a| !a.strings.is_empty())
    {
        return unsupported("TfIdfVectorizer over strings");
    }
    let bad = |m: &str| NodeError::Invalid(format!("TfIdfVectorizer: {m}"));
    let (min_n, max_n) = (ctx.int("min_gram_length", 0), ctx.int("max_gram_length", 0));
    let max_skip = ctx.int("max_skip_count", 0);
    if min_n < 1 || max_n < min_n || max_skip < 0 {
        return Err(bad("gram lengths or skip count out of range"));
    }
    let pool = ctx.ints("pool_int64s").unwrap_or_default();
    let counts = ctx
        .ints("ngram_counts")
        .ok_or_else(|| bad("no ngram_counts"))?;
    let indexes = ctx
        .ints("ngram_indexes")
        .ok_or_else(|| bad("no ngram_indexes"))?;
    if counts.len() != max_n as usize || indexes.iter().any(|&i| i < 0) {
        return Err(bad("ngram_counts must have one start per length"));
    }
    let mut grams = vec![];
    for (k, &start) in counts.iter().enumerate() {
        let end = counts.get(k + 1).copied().unwrap_or(pool.len() as i64);
        let n = k + 1;
        if start < 0
            || end < start
            || end as usize > pool.len()
            || !((end - start) as usize).is_multiple_of(n)
        {
            return Err(bad("ngram_counts do not split the pool"));
        }
        let block = &pool[start as usize..end as usize];
        grams.push(block.chunks(n).map(|c| c.to_vec()).collect::<Vec<_>>());
    }
    let total: usize = grams.iter().map(|g| g.len()).sum();
    if indexes.len() != total {
        return Err(bad("ngram_indexes must name a column per pool n-gram"));
    }
    Ok(Spec {
        min_n: min_n as usize,
        max_n: max_n as usize,
        max_skip: max_skip as usize,
        grams,
        indexes,
        weights: ctx.attr("weights").map(|a| a.floats.clone()),
        mode: ctx.string("mode", "TF"),
    })
}

fn tfidf(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let s = spec(ctx)?;
    let x = ctx.input(0)?;
    let xt = imp.g.ty(x).clone();
    if !xt.dtype.is_int() || !(1..=2).contains(&xt.rank()) {
        return Err(NodeError::Invalid(format!(
            "TfIdfVectorizer input must be [C] or [B, C] integers, got {xt}"
        )));
    }
    let Some(c) = xt.shape[xt.rank() - 1].fixed().map(|c| c as usize) else {
        return unsupported("TfIdfVectorizer over a length known only at run time");
    };
    let mut b = Build::new(imp, &ctx.name);
    let batch = if xt.rank() == 2 {
        xt.shape[0].clone()
    } else {
        Dim::Fixed(1)
    };
    let x = b.cast(x, DType::I64)?;
    let x = b.reshape(x, vec![batch.clone(), Dim::Fixed(c as u64), Dim::Fixed(1)])?;
    let mut blocks = vec![];
    for (k, grams) in s.grams.iter().enumerate() {
        let n = k + 1;
        if grams.is_empty() {
            continue;
        }
        let counted = (s.min_n..=s.max_n).contains(&n);
        let skips = if n == 1 { 0 } else { s.max_skip };
        let mut sum = None;
        for skip in 0..=skips {
            let span = (n - 1) * (skip + 1);
            if !counted || span >= c {
                continue;
            }
            let hits = gram_hits(&mut b, x, grams, n, skip, c - span)?;
            sum = Some(match sum {
                Some(acc) => b.bin(BinaryOp::Add, acc, hits)?,
                None => hits,
            });
        }
        let g = grams.len();
        blocks.push(match sum {
            Some(v) => v,
            None => {
                // Never counted: zeros of [B, g], shaped by broadcasting a window's compare.
                let zeros = b.constant(
                    "none",
                    Tensor::from_f64s(DType::F32, vec![1, g], &vec![0.0; g]),
                );
                let first = b.slice(x, 1, 0, 1)?;
                let first = b.reshape(first, vec![batch.clone(), Dim::Fixed(1)])?;
                let first = b.cast(first, DType::F32)?;
                let zero = b.scalar("zero", DType::F32, 0.0);
                let z = b.bin(BinaryOp::Mul, first, zero)?;
                b.bin(BinaryOp::Add, z, zeros)?
            }
        });
    }
    let counts = b.concat(blocks, 1)?; // [B, pool n-grams]
    let columns = s.indexes.iter().max().map_or(0, |&m| m as usize + 1);
    let mut onehot = vec![0.0; s.indexes.len() * columns];
    for (k, &i) in s.indexes.iter().enumerate() {
        onehot[k * columns + i as usize] = 1.0;
    }
    let onehot = b.constant(
        "columns",
        Tensor::from_f64s(DType::F32, vec![s.indexes.len(), columns], &onehot),
    );
    let mut y = b.op(
        "to_columns",
        Op::MatMul(MatMul::default()),
        vec![counts, onehot],
    )?;
    y = weigh(&mut b, &s, y, columns)?;
    if xt.rank() == 1 {
        y = b.reshape(y, vec![Dim::Fixed(columns as u64)])?;
    }
    Ok(vec![y])
}

/// `[B, g]` counts of the pool's `n`-grams among the `windows` windows of one skip.
fn gram_hits(
    b: &mut Build,
    x: ValueId,
    grams: &[Vec<i64>],
    n: usize,
    skip: usize,
    windows: usize,
) -> NodeResult<ValueId> {
    let g = grams.len();
    let mut all = None;
    for j in 0..n {
        let start = (j * (skip + 1)) as i64;
        let tokens = b.slice(x, 1, start, start + windows as i64)?; // [B, windows, 1]
        let column: Vec<i64> = grams.iter().map(|gram| gram[j]).collect();
        let column = b.constant(
            "pool",
            Tensor::from_i64s(DType::I64, vec![1, 1, g], &column),
        );
        let eq = b.bin(BinaryOp::Equal, tokens, column)?; // [B, windows, g]
        all = Some(match all {
            Some(acc) => b.bin(BinaryOp::And, acc, eq)?,
            None => eq,
        });
    }
    let all = all.ok_or_else(|| NodeError::Invalid("an n-gram of length 0".into()))?;
    let all = b.cast(all, DType::F32)?;
    b.reduce(ReduceKind::Sum, all, vec![1], false)
}

fn weigh(b: &mut Build, s: &Spec, y: ValueId, columns: usize) -> NodeResult<ValueId> {
    let weights = |b: &mut Build| -> NodeResult<ValueId> {
        let w = s.weights.clone().unwrap_or_else(|| vec![1.0; columns]);
        if w.len() < columns {
            return Err(NodeError::Invalid(
                "TfIdfVectorizer: fewer weights than columns".into(),
            ));
        }
        let w: Vec<f64> = w[..columns].iter().map(|&v| v as f64).collect();
        Ok(b.constant("weights", Tensor::from_f64s(DType::F32, vec![columns], &w)))
    };
    match s.mode.as_str() {
        "TF" => Ok(y),
        "IDF" => {
            let one = b.scalar("one", DType::F32, 1.0);
            let seen = b.bin(BinaryOp::Min, y, one)?;
            let w = weights(b)?;
            b.bin(BinaryOp::Mul, seen, w)
        }
        "TFIDF" => {
            let w = weights(b)?;
            b.bin(BinaryOp::Mul, y, w)
        }
        m => Err(NodeError::Invalid(format!("TfIdfVectorizer mode '{m}'"))),
    }
}
