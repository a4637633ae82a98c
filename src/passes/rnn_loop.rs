//! LSTM and GRU over a sequence length known only at run time, for the writers that unroll
//! recurrent layers (TFLite, TF.js): a `Loop` over the time steps whose body is the same layer
//! over one step (which `rnn::unroll_rnns` then unrolls when the body is legalized), carrying
//! the states and the output sequence (zeros `[seq, 1, batch, hidden]` written one row per step
//! with ScatterND). Forward and reverse layers without `sequence_lens`; a bidirectional one is
//! first split into a forward and a reverse layer (see [`split_bidirectional`]), so it becomes
//! two loops.

use super::rnn::optional;
use crate::ir::ops::{
    BinaryOp, Body, Concat, Expand, Gather, Loop, Reshape, Rnn, RnnDirection, RnnInput, Scatter,
    ScatterReduction, ShapeOf, Slice, SliceAxis, Transpose,
};
use crate::ir::{DType, Dim, Graph, Node, Op, Tensor, TensorType, ValueId};
use std::collections::HashMap;

/// Rewrites every layer it can, but for those `keep` claims (a writer's builtin for a
/// sequence, or layers a writer has a native op for); returns whether any changed.
pub fn loop_rnns(g: &mut Graph, keep: &dyn Fn(&Graph, &Node) -> bool) -> Result<bool, String> {
    let split = split_bidirectional(g, keep)?;
    if split {
        // The joined outputs nobody reads (often Y_c) go, so `keep` sees the halves' real uses.
        g.remove_dead();
    }
    Ok(loop_directional(g, keep)? || split)
}

/// A bidirectional layer that could loop but for its direction becomes a forward and a reverse
/// layer over the same input, each with its direction's weights (constants cut on their first
/// axis) and initial states (sliced on the direction axis), whose outputs are joined on that
/// axis as the IR's Lstm/Gru defines them: Y `[seq, 2, batch, h]` (batch-major
/// `[batch, seq, 2, h]`), Y_h and Y_c `[2, batch, h]` (`[batch, 2, h]`), forward first.
fn split_bidirectional(
    g: &mut Graph,
    keep: &dyn Fn(&Graph, &Node) -> bool,
) -> Result<bool, String> {
    let mut dead = Vec::new();
    for i in 0..g.nodes.len() {
        let n = g.nodes[i].clone();
        let (r, lstm) = match &n.op {
            Op::Lstm(r) => (r.clone(), true),
            Op::Gru(r) => (r.clone(), false),
            _ => continue,
        };
        let one_way = Rnn {
            direction: RnnDirection::Forward,
            ..r.clone()
        };
        if r.direction != RnnDirection::Bidirectional || !loopable(g, &n, &one_way) || keep(g, &n) {
            continue;
        }
        // A bias or peephole input computed at run time, or activations not listed per
        // direction: the layer stays and is refused with its reason.
        let mut weights = n.inputs.iter().enumerate().skip(1);
        let per = if lstm { 3 } else { 2 };
        if !weights.all(|(k, &v)| is_state(&r, k) || g.constant(v).is_some())
            || ![0, 2 * per].contains(&r.activations.len())
        {
            continue;
        }
        let halves = halves(g, &n, &r, lstm)?;
        let state_axis = if r.batch_major { 1 } else { 0 };
        let y_axis = if r.batch_major { 2 } else { 1 };
        for (k, &out) in n.outputs.iter().enumerate() {
            let axis = if k == 0 { y_axis } else { state_axis };
            g.nodes.push(Node {
                name: format!("{}/joined_{k}", n.name),
                op: Op::Concat(Concat { axis }),
                inputs: vec![halves[0][k], halves[1][k]],
                outputs: vec![out],
            });
        }
        dead.push(i);
    }
    if dead.is_empty() {
        return Ok(false);
    }
    let mut k = 0;
    g.nodes.retain(|_| {
        k += 1;
        !dead.contains(&(k - 1))
    });
    g.sort()?;
    Ok(true)
}

/// Whether node input `k` of a layer is an initial state.
fn is_state(r: &Rnn, k: usize) -> bool {
    k >= 3
        && matches!(
            r.optional.get(k - 3),
            Some(RnnInput::InitialH | RnnInput::InitialC)
        )
}

/// The forward and reverse layers of bidirectional node `n`, whose inputs other than X and the
/// states are constants; returns their outputs.
fn halves(g: &mut Graph, n: &Node, r: &Rnn, lstm: bool) -> Result<[Vec<ValueId>; 2], String> {
    let per = if lstm { 3 } else { 2 };
    let state_axis = if r.batch_major { 1 } else { 0 };
    let mut outs: [Vec<ValueId>; 2] = [Vec::new(), Vec::new()];
    for (d, direction) in [RnnDirection::Forward, RnnDirection::Reverse]
        .into_iter()
        .enumerate()
    {
        let mut inputs = vec![n.inputs[0]];
        for (k, &v) in n.inputs.iter().enumerate().skip(1) {
            let tag = format!("{}/dir{d}/in{k}", n.name);
            let part = match g.constant(v) {
                _ if is_state(r, k) => {
                    let cut = Op::Slice(Slice {
                        axes: vec![SliceAxis {
                            axis: state_axis,
                            start: d as i64,
                            end: d as i64 + 1,
                            step: 1,
                        }],
                    });
                    g.add_node(&tag, cut, vec![v], &[])?[0]
                }
                Some(t) => {
                    let t = first_axis_row(t, d)?;
                    g.add_const(&tag, t)
                }
                None => return Err(format!("input {k} of '{}' is not a constant", n.name)),
            };
            inputs.push(part);
        }
        // Listed for both directions, forward first (or none: the defaults).
        let activations = r
            .activations
            .get(d * per..(d + 1) * per)
            .map(<[String]>::to_vec)
            .unwrap_or_default();
        let half = Rnn {
            direction,
            activations,
            ..r.clone()
        };
        let op = if lstm { Op::Lstm(half) } else { Op::Gru(half) };
        outs[d] = g.add_node(&format!("{}/dir{d}", n.name), op, inputs, &[])?;
    }
    Ok(outs)
}

/// Row `d` of `t`'s first axis, keeping that axis (the bytes are shared).
fn first_axis_row(t: &Tensor, d: usize) -> Result<Tensor, String> {
    let rows = t.shape.first().copied().unwrap_or(0);
    if rows == 0 || d >= rows {
        return Err(format!(
            "a weight of shape {:?} has no direction {d}",
            t.shape
        ));
    }
    let size = t.data.len() / rows;
    let mut shape = t.shape.clone();
    shape[0] = 1;
    Tensor::new(t.dtype, shape, t.data.slice(d * size..(d + 1) * size))
}

/// Rewrites every forward or reverse layer it can; returns whether any changed.
fn loop_directional(g: &mut Graph, keep: &dyn Fn(&Graph, &Node) -> bool) -> Result<bool, String> {
    let mut replaced: HashMap<ValueId, ValueId> = HashMap::new();
    let mut dead = Vec::new();
    for i in 0..g.nodes.len() {
        let n = g.nodes[i].clone();
        let (r, lstm) = match &n.op {
            Op::Lstm(r) => (r.clone(), true),
            Op::Gru(r) => (r.clone(), false),
            _ => continue,
        };
        if !loopable(g, &n, &r) || keep(g, &n) {
            continue;
        }
        let outs = rewrite(g, &n, &r, lstm).map_err(|e| format!("'{}' as a loop: {e}", n.name))?;
        for (&old, new) in n.outputs.iter().zip(outs) {
            replaced.insert(old, new);
        }
        dead.push(i);
    }
    if dead.is_empty() {
        return Ok(false);
    }
    // Uses of the layer's outputs move to the loop's; graph outputs keep their names.
    for (&old, &new) in &replaced {
        let name = g.value(old).name.clone();
        g.value_mut(old).name = format!("{name}/replaced");
        g.value_mut(new).name = name;
    }
    let mut k = 0;
    g.nodes.retain(|_| {
        k += 1;
        !dead.contains(&(k - 1))
    });
    for n in &mut g.nodes {
        for v in &mut n.inputs {
            if let Some(&r) = replaced.get(v) {
                *v = r;
            }
        }
    }
    for o in &mut g.outputs {
        if let Some(&r) = replaced.get(o) {
            *o = r;
        }
    }
    g.sort()?;
    g.remove_dead();
    Ok(true)
}

fn loopable(g: &Graph, n: &Node, r: &Rnn) -> bool {
    let x = g.ty(n.inputs[0]);
    let seq = if r.batch_major {
        &x.shape[1]
    } else {
        &x.shape[0]
    };
    let consts = [1, 2].iter().all(|&k| g.constant(n.inputs[k]).is_some());
    !seq.is_fixed()
        && consts
        && r.direction != RnnDirection::Bidirectional
        && !r.optional.contains(&RnnInput::SequenceLens)
        && x.dtype == DType::F32
}

/// The layer as a Loop; returns the values standing for its outputs (Y, Y_h[, Y_c]).
fn rewrite(g: &mut Graph, n: &Node, r: &Rnn, lstm: bool) -> Result<Vec<ValueId>, String> {
    let name = format!("{}/loop", n.name);
    let h = r.hidden_size as u64;
    // Time-major input [T, B, I].
    let mut xs = n.inputs[0];
    if r.batch_major {
        let t = Op::Transpose(Transpose {
            perm: vec![1, 0, 2],
        });
        xs = g.add_node(&format!("{name}/x"), t, vec![xs], &[])?[0];
    }
    let xt = g.ty(xs).clone();
    let (seq, batch) = (xt.shape[0].clone(), xt.shape[1].clone());
    let zero = g.add_const(&format!("{name}/zero"), Tensor::scalar_f32(0.0));
    let state_shape = vec![Dim::Fixed(1), batch.clone(), Dim::Fixed(h)];
    let state = |g: &mut Graph, which: RnnInput, tag: &str| -> Result<ValueId, String> {
        match optional(r, n, which) {
            Some(v) if r.batch_major => {
                let t = Op::Transpose(Transpose {
                    perm: vec![1, 0, 2],
                });
                Ok(g.add_node(&format!("{name}/{tag}"), t, vec![v], &[])?[0])
            }
            Some(v) => Ok(v),
            None => {
                let e = Op::Expand(Expand {
                    shape: state_shape.clone(),
                });
                Ok(g.add_node(&format!("{name}/{tag}"), e, vec![zero], &[])?[0])
            }
        }
    };
    let h0 = state(g, RnnInput::InitialH, "h0")?;
    let c0 = if lstm {
        Some(state(g, RnnInput::InitialC, "c0")?)
    } else {
        None
    };
    let list_shape = vec![seq.clone(), Dim::Fixed(1), batch.clone(), Dim::Fixed(h)];
    let list0 = g.add_node(
        &format!("{name}/y0"),
        Op::Expand(Expand {
            shape: list_shape.clone(),
        }),
        vec![zero],
        &[],
    )?[0];
    let trip = g.add_node(
        &format!("{name}/steps"),
        Op::ShapeOf(ShapeOf { start: 0, end: 1 }),
        vec![xs],
        &[],
    )?[0];
    let always = g.add_const(
        &format!("{name}/always"),
        Tensor::from_f64s(DType::Bool, vec![], &[1.0]),
    );
    let body = body(g, n, r, lstm, &xt, &state_shape, &list_shape)?;
    let mut inputs = vec![trip, always, h0];
    inputs.extend(c0);
    inputs.push(list0);
    inputs.push(xs);
    let carried = if lstm { 3 } else { 2 };
    let op = Op::Loop(Loop {
        body: Body::new(body),
        carried,
    });
    let outs = g.add_node(&name, op, inputs, &[])?;
    let (h_t, c_t, y) = match lstm {
        true => (outs[0], Some(outs[1]), outs[2]),
        false => (outs[0], None, outs[1]),
    };
    let mut result = vec![y, h_t];
    result.extend(c_t);
    if r.batch_major {
        let perms = [vec![2, 0, 1, 3], vec![1, 0, 2], vec![1, 0, 2]];
        for (k, v) in result.iter_mut().enumerate() {
            let t = Op::Transpose(Transpose {
                perm: perms[k].clone(),
            });
            *v = g.add_node(&format!("{name}/out{k}"), t, vec![*v], &[])?[0];
        }
    }
    Ok(result.into_iter().take(n.outputs.len()).collect())
}

/// One step: `(iteration, cond, h, [c,] y, x) → (true, h', [c',] y with row t written)`.
fn body(
    g: &Graph,
    n: &Node,
    r: &Rnn,
    lstm: bool,
    xt: &TensorType,
    state_shape: &[Dim],
    list_shape: &[Dim],
) -> Result<Graph, String> {
    let mut b = Graph::new();
    b.continue_symbols(g);
    let f32s = |s: &[Dim]| TensorType::new(DType::F32, s.to_vec());
    let iter = b.add_input("iteration", TensorType::new(DType::I64, vec![]));
    b.add_input("condition", TensorType::new(DType::Bool, vec![]));
    let h = b.add_input("h", f32s(state_shape));
    let c = if lstm {
        Some(b.add_input("c", f32s(state_shape)))
    } else {
        None
    };
    let list = b.add_input("y", f32s(list_shape));
    let xs = b.add_input("x", xt.clone());
    let at = match r.direction {
        RnnDirection::Reverse => {
            let len = b.add_node(
                "len",
                Op::ShapeOf(ShapeOf { start: 0, end: 1 }),
                vec![xs],
                &[],
            )?[0];
            let len = b.add_node(
                "len_scalar",
                Op::Reshape(Reshape { shape: vec![] }),
                vec![len],
                &[],
            )?[0];
            let one = b.add_const("one", Tensor::scalar_i64(1));
            let last = b.add_node("last", Op::Binary(BinaryOp::Sub), vec![len, one], &[])?[0];
            b.add_node("index", Op::Binary(BinaryOp::Sub), vec![last, iter], &[])?[0]
        }
        RnnDirection::Forward | RnnDirection::Bidirectional => iter,
    };
    let x_t = b.add_node("x_t", Op::Gather(Gather { axis: 0 }), vec![xs, at], &[])?[0];
    let mut step_x = xt.shape.clone();
    step_x[0] = Dim::Fixed(1);
    let x1 = b.add_node(
        "x_step",
        Op::Reshape(Reshape { shape: step_x }),
        vec![x_t],
        &[],
    )?[0];
    // The layer over one step, its constants copied in, its states from the loop.
    let mut ins = vec![x1];
    let mut optional_in = Vec::new();
    for (k, &v) in n.inputs.iter().enumerate().skip(1) {
        let which = (k >= 3).then(|| r.optional[k - 3]);
        // The states come from the loop (and sequence_lens is never here: see `loopable`).
        if matches!(
            which,
            Some(RnnInput::InitialH | RnnInput::InitialC | RnnInput::SequenceLens)
        ) {
            continue;
        }
        let t = g
            .constant(v)
            .cloned()
            .ok_or("a recurrent weight that is not a constant")?;
        ins.push(b.add_const(&format!("w{k}"), t));
        optional_in.extend(which);
    }
    // ONNX order: B, [sequence_lens,] initial_h, initial_c, P.
    let mut ordered = Vec::new();
    let mut inputs = ins[..3].to_vec();
    let extra: Vec<(RnnInput, ValueId)> = optional_in
        .iter()
        .copied()
        .zip(ins[3..].iter().copied())
        .collect();
    let take = |which: RnnInput| extra.iter().find(|(w, _)| *w == which).map(|(_, v)| *v);
    if let Some(bias) = take(RnnInput::Bias) {
        ordered.push(RnnInput::Bias);
        inputs.push(bias);
    }
    ordered.push(RnnInput::InitialH);
    inputs.push(h);
    if let Some(c) = c {
        ordered.push(RnnInput::InitialC);
        inputs.push(c);
    }
    if let Some(p) = take(RnnInput::Peepholes) {
        ordered.push(RnnInput::Peepholes);
        inputs.push(p);
    }
    let step = Rnn {
        direction: RnnDirection::Forward,
        optional: ordered,
        batch_major: false,
        ..r.clone()
    };
    let op = if lstm { Op::Lstm(step) } else { Op::Gru(step) };
    let outs = b.add_node("step", op, inputs, &[])?;
    let idx = b.add_node(
        "at",
        Op::Reshape(Reshape {
            shape: vec![Dim::Fixed(1), Dim::Fixed(1)],
        }),
        vec![at],
        &[],
    )?[0];
    let scatter = Op::ScatterNd(Scatter {
        reduction: ScatterReduction::None,
    });
    let list2 = b.add_node("write", scatter, vec![list, idx, outs[0]], &[])?[0];
    let cond = b.add_const("true", Tensor::from_f64s(DType::Bool, vec![], &[1.0]));
    let mut outputs = vec![cond, outs[1]];
    if lstm {
        outputs.push(outs[2]);
    }
    outputs.push(list2);
    b.outputs = outputs;
    b.verify()?;
    Ok(b)
}
