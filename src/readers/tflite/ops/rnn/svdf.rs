//! SVDF (the keyword-spotting models' rank-decomposed time-delay layer): inputs `x [batch, in]`,
//! feature weights `[filters, in]`, time weights `[filters, memory]`, an optional bias
//! `[units]` and the state `[batch, memory · filters]`, a variable tensor. LiteRT's kernel
//! shifts each filter's state row left by one, writes the feature projection `x·W_featureᵀ`
//! into the freed newest column, takes each filter's state weighted by its time weights
//! (summed over memory), sums each unit's `rank` consecutive filters, adds the bias and applies
//! the fused activation; the shifted state is written back.
//!
//! The state is zeros when the interpreter starts, and this reads one invocation of a fresh
//! interpreter (like the LSTMs' states): after the shift every column but the newest is zero,
//! so the weighted sum over memory is the projection times the newest column's time weight
//! `W_time[:, memory − 1]`. The state written back is not read by anything in the IR.

use super::super::{fused, Node};
use crate::ir::ops::{BinaryOp, MatMul, Reduce, ReduceKind, Slice, SliceAxis};
use crate::ir::{Dim, Op, ValueId};
use crate::readers::builder::{reshape_to, unsupported, GraphBuilder, NodeError, NodeResult};
use crate::readers::tf_common::apply_fused;

/// The fixed dimensions of a rank-2 operand.
fn dims2(b: &GraphBuilder, v: ValueId, what: &str) -> NodeResult<[usize; 2]> {
    match &b.g.ty(v).shape[..] {
        [Dim::Fixed(r), Dim::Fixed(c)] => Ok([*r as usize, *c as usize]),
        other => Err(NodeError::Invalid(format!(
            "{what} must be a fixed 2-D shape, got {other:?}"
        ))),
    }
}

pub fn svdf(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(n.op.builtin_options_as_svdfoptions(), "SVDFOptions")?;
    let act = fused(o.fused_activation_function())?;
    if n.opt(4).is_some() {
        return unsupported("SVDF state computed in the model (not a zero-initialised variable)");
    }
    let (x, feature, time) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let [filters, _] = dims2(b, feature, "the feature weights")?;
    let [time_filters, memory] = dims2(b, time, "the time weights")?;
    let rank = usize::try_from(o.rank()).unwrap_or(0);
    if rank == 0 || filters % rank != 0 || time_filters != filters || memory == 0 {
        return Err(NodeError::Invalid(format!(
            "rank {} with {filters} feature filters, time weights [{time_filters}, {memory}]",
            o.rank()
        )));
    }
    let name = &n.name;
    let batch = match &b.g.ty(x).shape[..] {
        [batch, _] => batch.clone(),
        other => return Err(NodeError::Invalid(format!("input of rank {}", other.len()))),
    };
    let t = MatMul {
        transpose_a: false,
        transpose_b: true,
    };
    let projected = b.emit1(&format!("{name}/feature"), Op::MatMul(t), vec![x, feature])?;
    let newest = Op::Slice(Slice {
        axes: vec![SliceAxis {
            axis: 1,
            start: memory as i64 - 1,
            end: memory as i64,
            step: 1,
        }],
    });
    let tap = b.emit1(&format!("{name}/newest_tap"), newest, vec![time])?;
    let tap = reshape_to(
        b,
        &format!("{name}/tap"),
        tap,
        vec![Dim::Fixed(filters as u64)],
    )?[0];
    let weighted = b.emit1(
        &format!("{name}/time"),
        Op::Binary(BinaryOp::Mul),
        vec![projected, tap],
    )?;
    let units = filters / rank;
    let grouped = vec![batch, Dim::Fixed(units as u64), Dim::Fixed(rank as u64)];
    let grouped = reshape_to(b, &format!("{name}/ranks"), weighted, grouped)?[0];
    let sum = Op::Reduce(Reduce {
        kind: ReduceKind::Sum,
        axes: vec![2],
        keep_dims: false,
    });
    let mut y = b.emit1(&format!("{name}/units"), sum, vec![grouped])?;
    if let Some(bias) = n.opt(3) {
        y = b.emit1(
            &format!("{name}/bias"),
            Op::Binary(BinaryOp::Add),
            vec![y, bias],
        )?;
    }
    apply_fused(b, name, y, act)
}
