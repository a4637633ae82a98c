//! ONNX LSTM and GRU (kept whole, ONNX gate layout), and the plain RNN unrolled over its
//! (fixed) sequence length: `h = f(x·Wᵀ + h·Rᵀ + Wb + Rb)` per step and direction, steps past
//! `sequence_lens[b]` keeping the state and giving zeros.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::{
    Activation, BinaryOp, ConstantOfShape, Gather, MatMul, Rnn, RnnDirection, RnnInput, ShapeOf,
    UnaryOp,
};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "LSTM" | "GRU" => rnn,
        "RNN" => simple_rnn,
        _ => return None,
    })
}

fn rnn(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let lstm = ctx.node.op_type == "LSTM";
    let direction = match ctx.string("direction", "forward").as_str() {
        "forward" => RnnDirection::Forward,
        "reverse" => RnnDirection::Reverse,
        "bidirectional" => RnnDirection::Bidirectional,
        d => return Err(NodeError::Invalid(format!("direction '{d}'"))),
    };
    let hidden = ctx.int("hidden_size", 0);
    if hidden <= 0 {
        return Err(NodeError::Invalid("hidden_size must be positive".into()));
    }
    let slots = RnnInput::slots(lstm);
    let mut inputs = vec![ctx.input(0)?, ctx.input(1)?, ctx.input(2)?];
    let mut optional = Vec::new();
    for (k, slot) in slots.iter().enumerate() {
        if let Some(v) = ctx.opt_input(3 + k) {
            inputs.push(v);
            optional.push(*slot);
        }
    }
    let activations = activation_names(ctx);
    if ctx.attr("activation_alpha").is_some() || ctx.attr("activation_beta").is_some() {
        return unsupported("RNN activation_alpha/beta");
    }
    let r = Rnn {
        direction,
        hidden_size: hidden as usize,
        activations,
        clip: ctx.attr("clip").map(|a| a.f),
        linear_before_reset: ctx.int("linear_before_reset", 0) == 1,
        input_forget: ctx.int("input_forget", 0) == 1,
        cell_clip: None,
        batch_major: ctx.int("layout", 0) == 1,
        optional,
    };
    imp.emit(
        &ctx.name,
        if lstm { Op::Lstm(r) } else { Op::Gru(r) },
        inputs,
    )
}

/// The `activations` attribute's names (empty: the op's defaults).
fn activation_names(ctx: &NodeCtx) -> Vec<String> {
    ctx.attr("activations")
        .map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The RNN's per-step activation.
fn rnn_activation(name: &str) -> NodeResult<UnaryOp> {
    Ok(match name {
        "Tanh" => UnaryOp::Tanh,
        "Relu" => UnaryOp::Relu,
        "Sigmoid" => UnaryOp::Sigmoid,
        "Softsign" => UnaryOp::Softsign,
        "Softplus" => UnaryOp::Softplus,
        a => return unsupported(format!("RNN activation '{a}'")),
    })
}

fn simple_rnn(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, w, r) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    let directions: Vec<bool> = match ctx.string("direction", "forward").as_str() {
        "forward" => vec![false],
        "reverse" => vec![true],
        "bidirectional" => vec![false, true],
        d => return Err(NodeError::Invalid(format!("direction '{d}'"))),
    };
    if ctx.attr("activation_alpha").is_some() || ctx.attr("activation_beta").is_some() {
        return unsupported("RNN activation_alpha/beta");
    }
    let names = activation_names(ctx);
    let batch_major = ctx.int("layout", 0) == 1;
    let xt = imp.g.ty(x).clone();
    if xt.rank() != 3 {
        return Err(NodeError::Invalid(format!(
            "RNN input must be rank 3, got {xt}"
        )));
    }
    let time_axis = batch_major as usize;
    let Some(steps) = xt.shape[time_axis].fixed() else {
        return unsupported("RNN over a sequence length known only at run time");
    };
    let mut b = Build::new(imp, &ctx.name);
    // Time-major X: [T, B, I].
    let x = if batch_major {
        b.transpose(x, vec![1, 0, 2])?
    } else {
        x
    };
    let mut ys = vec![];
    let mut finals = vec![];
    for (d, &reverse) in directions.iter().enumerate() {
        let f = rnn_activation(names.get(d).map_or("Tanh", |s| s.as_str()))?;
        let (y, h) = rnn_direction(&mut b, ctx, [x, w, r], d, reverse, steps as usize, f)?;
        ys.push(y);
        finals.push(h);
    }
    let y = b.concat(ys, 1)?; // [T, D, B, H]
    let h = b.concat(finals, 0)?; // [D, B, H]
    if batch_major {
        return Ok(vec![
            b.transpose(y, vec![2, 0, 1, 3])?,
            b.transpose(h, vec![1, 0, 2])?,
        ]);
    }
    Ok(vec![y, h])
}

/// One direction: every step's state as `[T, 1, B, H]` in time order, and the last one as
/// `[1, B, H]`.
fn rnn_direction(
    b: &mut Build,
    ctx: &NodeCtx,
    [x, w, r]: [ValueId; 3],
    d: usize,
    reverse: bool,
    steps: usize,
    f: UnaryOp,
) -> NodeResult<(ValueId, ValueId)> {
    let dt = b.imp.g.ty(x).dtype;
    let pick = |b: &mut Build, v: ValueId| -> NodeResult<ValueId> {
        let i = b.constant(
            "direction",
            Tensor::from_i64s(DType::I64, vec![], &[d as i64]),
        );
        b.op("direction", Op::Gather(Gather { axis: 0 }), vec![v, i])
    };
    let wd = pick(b, w)?; // [H, I]
    let rd = pick(b, r)?; // [H, H]
    let hidden = b.shape(wd)[0].clone();
    let mm = MatMul {
        transpose_a: false,
        transpose_b: true,
    };
    let mut xw = b.op("input_proj", Op::MatMul(mm), vec![x, wd])?; // [T, B, H]
    if let Some(bias) = ctx.opt_input(3) {
        let bd = pick(b, bias)?; // [2H]
        let n = ctx.int("hidden_size", 0);
        let (wb, rb) = (b.slice(bd, 0, 0, n)?, b.slice(bd, 0, n, 2 * n)?);
        let sum = b.bin(BinaryOp::Add, wb, rb)?;
        xw = b.bin(BinaryOp::Add, xw, sum)?;
    }
    let batch = b.shape(x)[1].clone();
    let mut h = match ctx.opt_input(5) {
        Some(h0) => pick(b, h0)?,
        None => {
            let first = b.slice(xw, 0, 0, 1)?;
            let shape = b.op(
                "shape",
                Op::ShapeOf(ShapeOf { start: 0, end: 3 }),
                vec![first],
            )?;
            let value = Tensor::from_f64s(dt, vec![], &[0.0]);
            let z = b.op(
                "zeros",
                Op::ConstantOfShape(ConstantOfShape { value }),
                vec![shape],
            )?;
            b.reshape(z, vec![batch.clone(), hidden.clone()])?
        }
    };
    let lens = match ctx.opt_input(4) {
        Some(l) => {
            let l = b.cast(l, DType::I64)?;
            Some(b.reshape(l, vec![batch.clone(), Dim::Fixed(1)])?)
        }
        None => None,
    };
    let clip = ctx.attr("clip").map(|a| a.f);
    let mut outs = vec![None; steps];
    let order: Vec<usize> = if reverse {
        (0..steps).rev().collect()
    } else {
        (0..steps).collect()
    };
    for t in order {
        let xt = b.slice(xw, 0, t as i64, t as i64 + 1)?;
        let xt = b.reshape(xt, vec![batch.clone(), hidden.clone()])?;
        let hr = b.op("recurrent", Op::MatMul(mm), vec![h, rd])?;
        let mut pre = b.bin(BinaryOp::Add, xt, hr)?;
        if let Some(c) = clip {
            let a = Activation::Clip {
                min: Some(-c),
                max: Some(c),
            };
            pre = b.op("clip", Op::Activation(a), vec![pre])?;
        }
        let mut next = b.un(f, pre)?;
        let mut y = next;
        if let Some(l) = lens {
            let tt = b.scalar("step", DType::I64, t as f64);
            let live = b.bin(BinaryOp::Less, tt, l)?; // [B, 1]
            next = b.op("keep", Op::Where, vec![live, next, h])?;
            let zero = b.scalar("zero", dt, 0.0);
            y = b.op("mask", Op::Where, vec![live, y, zero])?;
        }
        h = next;
        outs[t] = Some(b.reshape(
            y,
            vec![Dim::Fixed(1), Dim::Fixed(1), batch.clone(), hidden.clone()],
        )?);
    }
    let outs: Vec<ValueId> = outs.into_iter().flatten().collect();
    let y = b.concat(outs, 0)?;
    let last = b.reshape(h, vec![Dim::Fixed(1), batch, hidden])?;
    Ok((y, last))
}
