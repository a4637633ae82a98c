//! Recurrent layers and wrappers: LSTM and GRU as the IR's ONNX-form `Lstm`/`Gru` (time-major
//! between two transposes), SimpleRNN unrolled over its fixed number of steps, Bidirectional
//! (one two-direction op), TimeDistributed (batch and time merged around the inner layer).
//!
//! Quirks: Keras packs LSTM gates `i f c o`, ONNX `i o f c` — the kernels are transposed and
//! reordered once. GRU gates `z r h` agree; `reset_after=True` (the default) is ONNX's
//! `linear_before_reset=1` with the two bias rows as input and recurrent biases.
//! `go_backwards=True` is a forward pass over the time-reversed input (its outputs come in
//! processing order, unlike an ONNX reverse direction's).

use super::super::build::{unsupported, Builder, Call, LResult, LayerError};
use super::{apply_activation, floats};
use crate::ir::ops::{
    BinaryOp, Concat, MatMul, Reshape, Rnn, RnnDirection, RnnInput, Slice, SliceAxis, Split,
    Transpose,
};
use crate::ir::{Dim, Op, Tensor, ValueId};
use serde::Deserialize;
use serde_json::Value;

pub fn handler(class: &str) -> Option<super::Handler> {
    Some(match class {
        "LSTM" | "GRU" => recurrent,
        "SimpleRNN" => simple_rnn,
        "Bidirectional" => bidirectional,
        "TimeDistributed" => time_distributed,
        _ => return None,
    })
}

#[derive(Deserialize, Clone)]
struct RnnConfig {
    units: usize,
    #[serde(default = "tanh")]
    activation: Value,
    #[serde(default = "sigmoid")]
    recurrent_activation: Value,
    #[serde(default = "yes")]
    use_bias: bool,
    #[serde(default)]
    return_sequences: bool,
    #[serde(default)]
    return_state: bool,
    #[serde(default)]
    go_backwards: bool,
    #[serde(default)]
    stateful: bool,
    #[serde(default = "yes")]
    reset_after: bool,
}

fn tanh() -> Value {
    Value::from("tanh")
}
fn sigmoid() -> Value {
    Value::from("sigmoid")
}
fn yes() -> bool {
    true
}

fn onnx_activation(v: &Value, keras3: bool) -> LResult<&'static str> {
    Ok(match v.as_str() {
        Some("sigmoid") => "Sigmoid",
        Some("tanh") => "Tanh",
        Some("relu") => "Relu",
        // ONNX HardSigmoid defaults (0.2, 0.5) are Keras 2's; Keras 3 uses 1/6.
        Some("hard_sigmoid") if !keras3 => "HardSigmoid",
        _ => return unsupported(format!("recurrent activation {v}")),
    })
}

/// ONNX `W`/`R` rows `[gates*H, in]` from a Keras kernel `[in, gates*H]`, gate blocks taken in
/// `order`.
fn gate_rows(k: &Tensor, h: usize, order: &[usize]) -> LResult<Vec<f32>> {
    if k.shape.len() != 2 || k.shape[1] != order.len() * h {
        return Err(format!(
            "kernel of shape {:?} for {} gates of {h}",
            k.shape,
            order.len()
        )
        .into());
    }
    let (rows, cols) = (k.shape[0], k.shape[1]);
    let v = floats(k);
    let mut out = Vec::with_capacity(rows * cols);
    for &g in order {
        for j in g * h..(g + 1) * h {
            out.extend((0..rows).map(|i| v[i * cols + j]));
        }
    }
    Ok(out)
}

fn reorder(v: &[f32], h: usize, order: &[usize]) -> Vec<f32> {
    order
        .iter()
        .flat_map(|&g| v[g * h..(g + 1) * h].iter().copied())
        .collect()
}

/// `W`, `R` and optional `B` of one direction, flat.
type OnnxWeights = (Vec<f32>, Vec<f32>, Option<Vec<f32>>);

/// W, R, B of one direction, in ONNX form (flat, gate-reordered).
fn direction_weights(lstm: bool, cfg: &RnnConfig, w: &[Tensor]) -> LResult<OnnxWeights> {
    let h = cfg.units;
    let order: &[usize] = if lstm { &[0, 3, 1, 2] } else { &[0, 1, 2] };
    let get = |i: usize| {
        w.get(i)
            .ok_or_else(|| LayerError::Invalid(format!("has {} weights, needs {}", w.len(), i + 1)))
    };
    let wk = gate_rows(get(0)?, h, order)?;
    let rk = gate_rows(get(1)?, h, order)?;
    let g = order.len();
    let bias = if cfg.use_bias {
        let bv = floats(get(2)?);
        let mut b = if !lstm && cfg.reset_after {
            if bv.len() != 2 * g * h {
                return Err(
                    format!("GRU bias has {} values, needs {}", bv.len(), 2 * g * h).into(),
                );
            }
            bv
        } else {
            if bv.len() != g * h {
                return Err(format!("bias has {} values, needs {}", bv.len(), g * h).into());
            }
            let mut b = reorder(&bv, h, order);
            b.extend(std::iter::repeat_n(0.0, g * h));
            b
        };
        b.shrink_to_fit();
        Some(b)
    } else {
        None
    };
    Ok((wk, rk, bias))
}

struct RnnOut {
    /// `[B, T, dirs*H]` or `[B, dirs*H]`.
    output: ValueId,
    states: Vec<ValueId>,
}

/// One LSTM/GRU op over `x [B, T, F]`, with `dirs` = 1 or 2 sets of weights.
fn rnn_op(
    b: &mut Builder,
    name: &str,
    lstm: bool,
    cfg: &RnnConfig,
    weights: &[&[Tensor]],
    direction: RnnDirection,
    x: ValueId,
) -> LResult<RnnOut> {
    if cfg.stateful {
        return unsupported("stateful recurrent layer");
    }
    let h = cfg.units;
    let dirs = weights.len();
    let (mut wv, mut rv, mut bv) = (vec![], vec![], Some(vec![]));
    for w in weights {
        let (wk, rk, bias) = direction_weights(lstm, cfg, w)?;
        wv.extend(wk);
        rv.extend(rk);
        bv = bv.zip(bias).map(|(mut a, b)| {
            a.extend(b);
            a
        });
    }
    let g = if lstm { 4 } else { 3 };
    let s = b.shape(x);
    if s.len() != 3 {
        return Err(format!("recurrent input of rank {}", s.len()).into());
    }
    let f = wv.len() / (dirs * g * h);
    let w = b.const_f32(&format!("{name}/W"), vec![dirs, g * h, f], &wv);
    let r = b.const_f32(&format!("{name}/R"), vec![dirs, g * h, h], &rv);
    let xt = b.emit1(
        &format!("{name}/time_major"),
        Op::Transpose(Transpose {
            perm: vec![1, 0, 2],
        }),
        vec![x],
    )?;
    let mut ins = vec![xt, w, r];
    let mut optional = vec![];
    if let Some(bv) = bv {
        ins.push(b.const_f32(&format!("{name}/B"), vec![dirs, 2 * g * h], &bv));
        optional.push(RnnInput::Bias);
    }
    let rec = onnx_activation(&cfg.recurrent_activation, b.keras3)?;
    let act = onnx_activation(&cfg.activation, b.keras3)?;
    let activations: Vec<String> = if rec == "Sigmoid" && act == "Tanh" {
        vec![]
    } else {
        let one: Vec<&str> = if lstm {
            vec![rec, act, act]
        } else {
            vec![rec, act]
        };
        (0..dirs)
            .flat_map(|_| one.iter().map(|s| s.to_string()))
            .collect()
    };
    let op = Rnn {
        direction,
        hidden_size: h,
        activations,
        clip: None,
        linear_before_reset: !lstm && cfg.reset_after,
        input_forget: false,
        cell_clip: None,
        batch_major: false,
        optional,
    };
    let op = if lstm { Op::Lstm(op) } else { Op::Gru(op) };
    let outs = b.emit(name, op, ins)?;
    let (batch, t) = (s[0].clone(), s[1].clone());
    let dh = Dim::Fixed((dirs * h) as u64);
    // Final states [dirs, B, H] → [B, dirs*H].
    let mut states = Vec::new();
    for (i, &st) in outs.iter().enumerate().skip(1) {
        let st = if dirs > 1 {
            b.emit1(
                &format!("{name}/state{i}_t"),
                Op::Transpose(Transpose {
                    perm: vec![1, 0, 2],
                }),
                vec![st],
            )?
        } else {
            st
        };
        let shape = vec![batch.clone(), dh.clone()];
        states.push(b.emit1(
            &format!("{name}/state{i}"),
            Op::Reshape(Reshape { shape }),
            vec![st],
        )?);
    }
    let output = if cfg.return_sequences {
        // Y [T, dirs, B, H] → [B, T, dirs, H] → [B, T, dirs*H].
        let y = b.emit1(
            &format!("{name}/batch_major"),
            Op::Transpose(Transpose {
                perm: vec![2, 0, 1, 3],
            }),
            vec![outs[0]],
        )?;
        let shape = vec![batch.clone(), t.clone(), dh.clone()];
        let y = b.emit1(
            &format!("{name}/sequence"),
            Op::Reshape(Reshape { shape }),
            vec![y],
        )?;
        y
    } else {
        states[0]
    };
    Ok(RnnOut { output, states })
}

fn recurrent(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let cfg: RnnConfig = c.parse()?;
    let lstm = c.class == "LSTM";
    let mut x = c.input(0)?;
    if cfg.go_backwards {
        // A forward pass over the reversed sequence is exactly Keras's go_backwards (outputs
        // in processing order); tract 0.23's reverse-direction GRU disagrees with onnxruntime.
        let sl = Slice {
            axes: vec![SliceAxis {
                axis: 1,
                start: -1,
                end: i64::MIN,
                step: -1,
            }],
        };
        x = b.emit1(&format!("{}/reverse_time", c.name), Op::Slice(sl), vec![x])?;
    }
    let out = rnn_op(
        b,
        &c.name,
        lstm,
        &cfg,
        &[&c.weights],
        RnnDirection::Forward,
        x,
    )?;
    let mut v = vec![out.output];
    if cfg.return_state {
        v.extend(out.states);
    }
    Ok(v)
}

#[derive(Deserialize)]
struct Wrapped {
    class_name: String,
    config: Value,
}

fn bidirectional(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let inner: Wrapped =
        serde_json::from_value(c.config.get("layer").cloned().unwrap_or(Value::Null))
            .map_err(|e| LayerError::Invalid(format!("Bidirectional layer: {e}")))?;
    // Keras' `merge_mode=None` returns the two directions as two outputs.
    let merge = match c.config.get("merge_mode") {
        Some(Value::Null) => "none",
        Some(v) => v.as_str().unwrap_or("?"),
        None => "concat",
    };
    if !matches!(inner.class_name.as_str(), "LSTM" | "GRU") {
        return unsupported(format!("Bidirectional around {}", inner.class_name));
    }
    let cfg: RnnConfig = serde_json::from_value(inner.config)
        .map_err(|e| LayerError::Invalid(format!("Bidirectional layer: {e}")))?;
    if cfg.go_backwards || cfg.return_state {
        return unsupported("Bidirectional with go_backwards or return_state");
    }
    let combine = match merge {
        "concat" | "none" => None,
        "sum" => Some((BinaryOp::Add, false)),
        "ave" => Some((BinaryOp::Add, true)),
        "mul" => Some((BinaryOp::Mul, false)),
        other => return unsupported(format!("Bidirectional merge_mode '{other}'")),
    };
    let lstm = inner.class_name == "LSTM";
    let half = c.weights.len() / 2;
    let (fw, bw) = c.weights.split_at(half);
    let out = rnn_op(
        b,
        &c.name,
        lstm,
        &cfg,
        &[fw, bw],
        RnnDirection::Bidirectional,
        c.input(0)?,
    )?;
    if merge == "concat" {
        return Ok(vec![out.output]);
    }
    // The op's output is the two directions side by side on the last axis, each time step's
    // backward output already aligned with its forward one (as Keras aligns them before
    // merging).
    let rank = b.g.ty(out.output).rank();
    let split = Split {
        axis: rank - 1,
        sizes: vec![cfg.units; 2],
    };
    let halves = b.emit(
        &format!("{}/directions", c.name),
        Op::Split(split),
        vec![out.output],
    )?;
    let Some((op, average)) = combine else {
        return Ok(halves);
    };
    let merged = b.emit1(&format!("{}/merge", c.name), Op::Binary(op), halves)?;
    if !average {
        return Ok(vec![merged]);
    }
    let dtype = b.g.ty(merged).dtype;
    let half = b.constant(
        &format!("{}/half", c.name),
        Tensor::from_f64s(dtype, vec![], &[0.5]),
    );
    Ok(vec![b.emit1(
        &c.name,
        Op::Binary(BinaryOp::Mul),
        vec![merged, half],
    )?])
}

/// SimpleRNN unrolled: `h_t = act(x_t W + h_{t-1} U + b)`.
fn simple_rnn(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let cfg: RnnConfig = c.parse()?;
    if cfg.stateful {
        return unsupported("stateful recurrent layer");
    }
    let x = c.input(0)?;
    let s = b.shape(x);
    let steps = s.get(1).and_then(Dim::fixed).ok_or_else(|| {
        LayerError::Unsupported("SimpleRNN over a sequence of unknown length".into())
    })? as i64;
    let n = &c.name;
    let w = b.constant(&format!("{n}/kernel"), c.weight(0)?.clone());
    let u = b.constant(&format!("{n}/recurrent_kernel"), c.weight(1)?.clone());
    let bias = if cfg.use_bias {
        Some(b.constant(&format!("{n}/bias"), c.weight(2)?.clone()))
    } else {
        None
    };
    let (batch, h) = (s[0].clone(), Dim::Fixed(cfg.units as u64));
    let mut state: Option<ValueId> = None;
    let mut seq = Vec::new();
    let order: Vec<i64> = if cfg.go_backwards {
        (0..steps).rev().collect()
    } else {
        (0..steps).collect()
    };
    for (i, t) in order.into_iter().enumerate() {
        let sl = Slice {
            axes: vec![SliceAxis {
                axis: 1,
                start: t,
                end: t + 1,
                step: 1,
            }],
        };
        let xt = b.emit1(&format!("{n}/x{i}"), Op::Slice(sl), vec![x])?;
        let shape = vec![batch.clone(), s[2].clone()];
        let xt = b.emit1(
            &format!("{n}/x{i}/flat"),
            Op::Reshape(Reshape { shape }),
            vec![xt],
        )?;
        let mut z = b.emit1(
            &format!("{n}/xw{i}"),
            Op::MatMul(MatMul::default()),
            vec![xt, w],
        )?;
        if let Some(hp) = state {
            let hu = b.emit1(
                &format!("{n}/hu{i}"),
                Op::MatMul(MatMul::default()),
                vec![hp, u],
            )?;
            z = b.emit1(
                &format!("{n}/sum{i}"),
                Op::Binary(BinaryOp::Add),
                vec![z, hu],
            )?;
        }
        if let Some(bias) = bias {
            z = b.emit1(
                &format!("{n}/bias{i}"),
                Op::Binary(BinaryOp::Add),
                vec![z, bias],
            )?;
        }
        let ht = apply_activation(b, &format!("{n}/h{i}"), &cfg.activation, z)?;
        state = Some(ht);
        if cfg.return_sequences {
            let shape = vec![batch.clone(), Dim::Fixed(1), h.clone()];
            seq.push(b.emit1(
                &format!("{n}/h{i}/step"),
                Op::Reshape(Reshape { shape }),
                vec![ht],
            )?);
        }
    }
    let last = state.ok_or("SimpleRNN over an empty sequence")?;
    let out = if cfg.return_sequences {
        b.emit1(n, Op::Concat(Concat { axis: 1 }), seq)?
    } else {
        last
    };
    let mut v = vec![out];
    if cfg.return_state {
        v.push(last);
    }
    Ok(v)
}

/// The inner layer on `[B*T, ...]`, reshaped back to `[B, T, ...]`.
fn time_distributed(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let inner: Wrapped =
        serde_json::from_value(c.config.get("layer").cloned().unwrap_or(Value::Null))
            .map_err(|e| LayerError::Invalid(format!("TimeDistributed layer: {e}")))?;
    let x = c.input(0)?;
    let s = b.shape(x);
    if s.len() < 3 {
        return Err(format!("TimeDistributed over a rank-{} input", s.len()).into());
    }
    let mut merged = vec![Dim::product(&s[..2])];
    merged.extend(s[2..].iter().cloned());
    let xm = b.emit1(
        &format!("{}/merge_time", c.name),
        Op::Reshape(Reshape { shape: merged }),
        vec![x],
    )?;
    let call = Call {
        class: &inner.class_name,
        name: format!(
            "{}/{}",
            c.name,
            inner
                .config
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("layer")
        ),
        config: &inner.config,
        inputs: vec![xm],
        kwargs: c.kwargs,
        kw_inputs: vec![],
        weights: c.weights.clone(),
        constants: &[],
        args: &[],
        operation: false,
    };
    let outs = super::run(b, &call)?;
    let y = *outs.first().ok_or("TimeDistributed layer gave no output")?;
    let ys = b.shape(y);
    let mut shape = vec![s[0].clone(), s[1].clone()];
    shape.extend(ys[1..].iter().cloned());
    Ok(vec![b.emit1(
        &c.name,
        Op::Reshape(Reshape { shape }),
        vec![y],
    )?])
}
