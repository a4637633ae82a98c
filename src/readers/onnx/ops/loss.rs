//! Normalizations with more than the plain op's output, and the loss functions, written as the
//! ops their ONNX function bodies use: LayerNormalization with its `Mean`/`InvStdDev` outputs,
//! RMSNormalization-23, NegativeLogLikelihoodLoss-13 and SoftmaxCrossEntropyLoss-13 (with
//! `weight`, `ignore_index` and every `reduction`). `stash_type` 1 computes in float32, as the
//! spec's function bodies do.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::{norm_axis, BinaryOp, Gather, ReduceKind, Reshape, Softmax, UnaryOp};
use crate::ir::{DType, Dim, Op, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "RMSNormalization" => rms_norm,
        "NegativeLogLikelihoodLoss" => nll_loss,
        "SoftmaxCrossEntropyLoss" => softmax_cross_entropy,
        _ => return None,
    })
}

/// The type the normalizations compute in: float32 with `stash_type` 1 (the default).
fn stash(imp: &Importer, ctx: &NodeCtx, x: ValueId) -> NodeResult<DType> {
    let dt = imp.g.ty(x).dtype;
    if !dt.is_float() {
        return unsupported(format!("{} on {dt} tensors", ctx.node.op_type));
    }
    Ok(match ctx.int("stash_type", 1) {
        1 => DType::F32,
        _ => dt,
    })
}

/// `x · (mean(x², axis..) + ε)^-½ · scale`.
fn rms_norm(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, scale) = (ctx.input(0)?, ctx.input(1)?);
    let ty = imp.g.ty(x).clone();
    let u = stash(imp, ctx, x)?;
    let axes: Vec<usize> = (norm_axis(ctx.int("axis", -1), ty.rank())?..ty.rank()).collect();
    let eps = ctx.float("epsilon", 1e-5) as f64;
    let mut b = Build::new(imp, &ctx.name);
    let xu = b.cast(x, u)?;
    let sq = b.bin(BinaryOp::Mul, xu, xu)?;
    let mean = b.reduce(ReduceKind::Mean, sq, axes, true)?;
    let eps = b.scalar("epsilon", u, eps);
    let var = b.bin(BinaryOp::Add, mean, eps)?;
    let inv = b.un(UnaryOp::Rsqrt, var)?;
    let normalized = b.bin(BinaryOp::Mul, xu, inv)?;
    let normalized = b.cast(normalized, ty.dtype)?;
    Ok(vec![b.bin(BinaryOp::Mul, normalized, scale)?])
}

/// LayerNormalization when its `Mean` and `InvStdDev` outputs are used: the function body of
/// the spec, every output from the same statistics.
pub fn layer_norm_with_stats(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, scale) = (ctx.input(0)?, ctx.input(1)?);
    let ty = imp.g.ty(x).clone();
    let u = stash(imp, ctx, x)?;
    let axes: Vec<usize> = (norm_axis(ctx.int("axis", -1), ty.rank())?..ty.rank()).collect();
    let eps = ctx.float("epsilon", 1e-5) as f64;
    let mut b = Build::new(imp, &ctx.name);
    let xu = b.cast(x, u)?;
    let mean = b.reduce(ReduceKind::Mean, xu, axes.clone(), true)?;
    let d = b.bin(BinaryOp::Sub, xu, mean)?;
    let d2 = b.bin(BinaryOp::Mul, d, d)?;
    let var = b.reduce(ReduceKind::Mean, d2, axes, true)?;
    let eps = b.scalar("epsilon", u, eps);
    let var_eps = b.bin(BinaryOp::Add, var, eps)?;
    let std = b.un(UnaryOp::Sqrt, var_eps)?;
    let inv_std = b.un(UnaryOp::Reciprocal, std)?;
    let normalized = b.bin(BinaryOp::Mul, d, inv_std)?;
    let normalized = b.cast(normalized, ty.dtype)?;
    let mut y = b.bin(BinaryOp::Mul, normalized, scale)?;
    if let Some(bias) = ctx.opt_input(2) {
        y = b.bin(BinaryOp::Add, y, bias)?;
    }
    Ok(vec![y, mean, inv_std])
}

/// `loss[n, d…] = -input[n, target[n, d…], d…] · weight[target]`, 0 where the target is
/// `ignore_index`; `mean` divides the sum by the summed weights of the targets counted.
fn nll_loss(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let input = ctx.input(0)?;
    Ok(vec![nll(imp, ctx, input)?])
}

/// `NegativeLogLikelihoodLoss(LogSoftmax(scores, axis 1), labels)`, and the log-probabilities as
/// the second output.
fn softmax_cross_entropy(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let scores = ctx.input(0)?;
    if imp.g.ty(scores).rank() < 2 {
        return Err(NodeError::Invalid("scores must be [N, C, …]".into()));
    }
    let log_prob = imp.emit1(
        &format!("{}/log_prob", ctx.name),
        Op::Softmax(Softmax { axis: 1, log: true }),
        vec![scores],
    )?;
    Ok(vec![nll(imp, ctx, log_prob)?, log_prob])
}

fn nll(imp: &mut Importer, ctx: &NodeCtx, input: ValueId) -> NodeResult<ValueId> {
    let target = ctx.input(1)?;
    let (it, tt) = (imp.g.ty(input).clone(), imp.g.ty(target).clone());
    if it.rank() < 2 || tt.rank() + 1 != it.rank() || !tt.dtype.is_int() {
        return Err(NodeError::Invalid(format!(
            "input {it} and target {tt} are not [N, C, d…] and [N, d…] integers"
        )));
    }
    let reduction = ctx.string("reduction", "mean");
    if !matches!(reduction.as_str(), "none" | "sum" | "mean") {
        return unsupported(format!("reduction '{reduction}'"));
    }
    let ignore = ctx.attr("ignore_index").map(|a| a.i);
    let mut b = Build::new(imp, &ctx.name);
    // Ignored targets pick class 0 (any valid index) and get weight 0.
    let (safe, kept) = match ignore {
        Some(i) => {
            let ii = b.scalar("ignore_index", tt.dtype, i as f64);
            let is_ignored = b.bin(BinaryOp::Equal, target, ii)?;
            let zero = b.scalar("zero_index", tt.dtype, 0.0);
            let safe = b.op("safe_target", Op::Where, vec![is_ignored, zero, target])?;
            let kept = b.un(UnaryOp::Not, is_ignored)?;
            (safe, Some(b.cast(kept, it.dtype)?))
        }
        None => (target, None),
    };
    let mut unsq_shape = tt.shape.clone();
    unsq_shape.insert(1, Dim::Fixed(1));
    let index = b.op(
        "index",
        Op::Reshape(Reshape { shape: unsq_shape }),
        vec![safe],
    )?;
    let picked = b.op(
        "picked",
        Op::GatherElements(Gather { axis: 1 }),
        vec![input, index],
    )?;
    let picked = b.op(
        "squeeze",
        Op::Reshape(Reshape {
            shape: tt.shape.clone(),
        }),
        vec![picked],
    )?;
    let mut weight = match ctx.opt_input(2) {
        Some(w) => Some(b.op(
            "class_weight",
            Op::Gather(Gather { axis: 0 }),
            vec![w, safe],
        )?),
        None => None,
    };
    if let Some(k) = kept {
        weight = Some(match weight {
            Some(w) => b.bin(BinaryOp::Mul, w, k)?,
            None => k,
        });
    }
    let neg = b.un(UnaryOp::Neg, picked)?;
    let loss = match weight {
        Some(w) => b.bin(BinaryOp::Mul, neg, w)?,
        None => neg,
    };
    let all: Vec<usize> = (0..tt.rank()).collect();
    match reduction.as_str() {
        "none" => Ok(loss),
        "sum" => b.reduce(ReduceKind::Sum, loss, all, false),
        _ => {
            let total = b.reduce(ReduceKind::Sum, loss, all.clone(), false)?;
            let count = match weight {
                Some(w) => b.reduce(ReduceKind::Sum, w, all, false)?,
                None => {
                    let n = tt.shape.iter().map(Dim::fixed).product::<Option<u64>>();
                    let Some(n) = n else {
                        return unsupported("mean loss over a target of run-time size");
                    };
                    b.scalar("count", it.dtype, n as f64)
                }
            };
            b.bin(BinaryOp::Div, total, count)
        }
    }
}
