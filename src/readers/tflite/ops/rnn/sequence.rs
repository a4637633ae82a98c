//! UNIDIRECTIONAL_SEQUENCE_RNN and BIDIRECTIONAL_SEQUENCE_RNN: per step
//! `h_t = act(x_t·Wᵀ + b + h_{t−1}·Rᵀ)`, the output of the step and the next step's state (the
//! backward direction runs from the last step to the first and writes each step's output at its
//! own time index). The hidden-state inputs are variable tensors, zeros when the interpreter
//! starts (read as a zero initial state, like LSTM's). The IR has no plain RNN layer, so the
//! steps are unrolled over a fixed sequence length: one MatMul projects every step's input,
//! then per step a MatMul of the state, Add and the activation. A run-time length is refused.

use super::super::{fused, Node};
use crate::ir::ops::{BinaryOp, Concat, MatMul, Split, Transpose};
use crate::ir::{DType, Dim, Op, ValueId};
use crate::readers::builder::{reshape_to, unsupported, GraphBuilder, NodeError, NodeResult};
use crate::readers::tf_common::{apply_fused, Fused};

/// One direction's weights `W [units, in]`, `R [units, units]`, `b [units]` and initial state.
struct Cell {
    w: ValueId,
    r: ValueId,
    bias: ValueId,
    h0: Option<ValueId>,
}

impl Cell {
    /// The cell whose weights are inputs `first..first + 3` and state input `first + 3`.
    fn at(b: &GraphBuilder, n: &Node, first: usize) -> NodeResult<Cell> {
        let cell = Cell {
            w: n.input(first)?,
            r: n.input(first + 1)?,
            bias: n.input(first + 2)?,
            h0: n.opt(first + 3),
        };
        // Hybrid kernels quantize the activations at run time, which float math is not.
        if [cell.w, cell.r]
            .iter()
            .any(|&v| b.g.ty(v).dtype != DType::F32)
        {
            return unsupported(
                "a hybrid sequence RNN (int8 weights, activations quantized at run time)",
            );
        }
        Ok(cell)
    }
}

fn swap() -> Op {
    Op::Transpose(Transpose {
        perm: vec![1, 0, 2],
    })
}

/// Nodes one unrolled step adds at most (two directions, each input, state, sum, activation
/// and reshapes), for the node limit.
const NODES_PER_STEP: u64 = 16;

/// `x` as `[time, batch, in]`, and its fixed number of steps.
fn time_major(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    is_time_major: bool,
) -> NodeResult<(ValueId, usize)> {
    let rank = b.g.ty(x).rank();
    if rank != 3 {
        return Err(NodeError::Invalid(format!("input of rank {rank}")));
    }
    let xt = if is_time_major {
        x
    } else {
        b.emit1(&format!("{name}/time_major"), swap(), vec![x])?
    };
    let steps = &b.g.ty(xt).shape[0];
    // Each step is a handful of nodes: a declared length past the node limit is refused before
    // anything is unrolled (a few bytes of shape can ask for billions of steps).
    if let Some(t) = steps.fixed() {
        let what = format!("a sequence RNN over {t} steps");
        crate::ir::limits::check_fanout(t.saturating_mul(NODES_PER_STEP), &what)?;
    }
    match steps.fixed() {
        Some(t) if t > 0 => Ok((xt, t as usize)),
        _ => unsupported(format!(
            "a sequence RNN over {steps} steps (unrolled only over a fixed, non-empty length)"
        )),
    }
}

/// One direction over the `[time, batch, in]` input: its outputs `[time, batch, units]`.
fn direction(
    b: &mut GraphBuilder,
    name: &str,
    (xt, steps): (ValueId, usize),
    cell: &Cell,
    act: Fused,
    reverse: bool,
) -> NodeResult<ValueId> {
    let mm = || {
        Op::MatMul(MatMul {
            transpose_a: false,
            transpose_b: true,
        })
    };
    let proj = b.emit1(&format!("{name}/input"), mm(), vec![xt, cell.w])?;
    let proj = b.emit1(
        &format!("{name}/bias"),
        Op::Binary(BinaryOp::Add),
        vec![proj, cell.bias],
    )?;
    let step_shape = b.g.ty(proj).shape[1..].to_vec();
    let parts = if steps == 1 {
        vec![proj]
    } else {
        let split = Op::Split(Split {
            axis: 0,
            sizes: vec![1; steps],
        });
        b.emit(&format!("{name}/steps"), split, vec![proj])?
    };
    let order: Vec<usize> = if reverse {
        (0..steps).rev().collect()
    } else {
        (0..steps).collect()
    };
    let mut h = cell.h0;
    let mut outs = vec![None; steps];
    for t in order {
        let tag = format!("{name}/t{t}");
        let part = *parts
            .get(t)
            .ok_or_else(|| NodeError::Invalid("split lost a step".into()))?;
        let mut y = reshape_to(b, &format!("{tag}/x"), part, step_shape.clone())?[0];
        if let Some(hp) = h {
            let hr = b.emit1(&format!("{tag}/state"), mm(), vec![hp, cell.r])?;
            y = b.emit1(
                &format!("{tag}/sum"),
                Op::Binary(BinaryOp::Add),
                vec![y, hr],
            )?;
        }
        let y = apply_fused(b, &format!("{tag}/act"), y, act)?[0];
        let mut row = vec![Dim::Fixed(1)];
        row.extend(step_shape.iter().cloned());
        outs[t] = Some(reshape_to(b, &format!("{tag}/y"), y, row)?[0]);
        h = Some(y);
    }
    let outs: Vec<ValueId> = outs
        .into_iter()
        .collect::<Option<_>>()
        .ok_or_else(|| NodeError::Invalid("a step without output".into()))?;
    if outs.len() == 1 {
        return Ok(outs[0]);
    }
    b.emit1(&format!("{name}/y"), Op::Concat(Concat { axis: 0 }), outs)
}

/// A `[time, batch, …]` result in the operator's layout.
fn out_layout(
    b: &mut GraphBuilder,
    name: &str,
    y: ValueId,
    is_time_major: bool,
) -> NodeResult<ValueId> {
    if is_time_major {
        return Ok(y);
    }
    b.emit1(name, swap(), vec![y])
}

pub fn unidirectional(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_sequence_rnnoptions(),
        "SequenceRNNOptions",
    )?;
    let act = fused(o.fused_activation_function())?;
    let name = &n.name;
    let x = time_major(b, name, n.input(0)?, o.time_major())?;
    let y = direction(
        b,
        &format!("{name}/rnn"),
        x,
        &Cell::at(b, n, 1)?,
        act,
        false,
    )?;
    Ok(vec![out_layout(b, name, y, o.time_major())?])
}

/// Inputs: x, the forward cell (1–4), the backward cell (5–8), and an optional auxiliary input
/// with its weights (9–11, refused). `merge_outputs` joins both directions on the last axis in
/// one output; otherwise each has its own.
pub fn bidirectional(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_bidirectional_sequence_rnnoptions(),
        "BidirectionalSequenceRNNOptions",
    )?;
    if (9..12).any(|i| n.opt(i).is_some()) {
        return unsupported("BIDIRECTIONAL_SEQUENCE_RNN with an auxiliary input");
    }
    let act = fused(o.fused_activation_function())?;
    let name = &n.name;
    let tm = o.time_major();
    let x = time_major(b, name, n.input(0)?, tm)?;
    let fw = direction(b, &format!("{name}/fw"), x, &Cell::at(b, n, 1)?, act, false)?;
    let bw = direction(b, &format!("{name}/bw"), x, &Cell::at(b, n, 5)?, act, true)?;
    if o.merge_outputs() {
        let cat = Op::Concat(Concat { axis: 2 });
        let y = b.emit1(&format!("{name}/merged"), cat, vec![fw, bw])?;
        return Ok(vec![out_layout(b, name, y, tm)?]);
    }
    let fw = out_layout(b, &format!("{name}/fw_out"), fw, tm)?;
    let bw = out_layout(b, &format!("{name}/bw_out"), bw, tm)?;
    Ok(vec![fw, bw])
}
