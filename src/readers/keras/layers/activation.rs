//! Activations: the `activation` argument of any layer (a name) and the activation layers
//! Activation, ReLU (max_value, negative_slope, threshold), LeakyReLU, PReLU, ELU, Softmax,
//! ThresholdedReLU. Quirk: `hard_sigmoid` is `relu6(x + 3) / 6` in Keras 3 but
//! `clip(0.2 x + 0.5, 0, 1)` in Keras 2 / tf_keras.

use super::super::build::{unsupported, Builder, Call, LResult};
use super::axis;
use crate::ir::ops::{Activation, BinaryOp, Softmax, UnaryOp};
use crate::ir::{Op, ValueId};
use serde::Deserialize;
use serde_json::Value;

pub fn handler(class: &str) -> Option<super::Handler> {
    Some(match class {
        "Activation" => activation_layer,
        "ReLU" => relu,
        "LeakyReLU" => leaky_relu,
        "PReLU" => prelu,
        "ELU" => elu,
        "Softmax" => softmax,
        "ThresholdedReLU" => thresholded_relu,
        _ => return None,
    })
}

/// The name of an `activation` argument (a string, or a Keras 3 serialized function).
fn activation_name(v: &Value) -> LResult<Option<String>> {
    Ok(match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => match o.get("config") {
            Some(Value::String(s))
                if o.get("module")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.starts_with("keras")) =>
            {
                Some(s.clone())
            }
            _ => return unsupported(format!("custom activation {v}")),
        },
        _ => return unsupported(format!("activation {v}")),
    })
}

/// Applies the activation named by `v` to `x` (identity for `linear`/none).
pub fn apply(b: &mut Builder, node: &str, v: &Value, x: ValueId) -> LResult<ValueId> {
    let Some(name) = activation_name(v)? else {
        return Ok(x);
    };
    apply_named(b, node, &name, x)
}

fn act(b: &mut Builder, node: &str, a: Activation, x: ValueId) -> LResult<ValueId> {
    b.emit1(node, Op::Activation(a), vec![x])
}

fn unary(b: &mut Builder, node: &str, u: UnaryOp, x: ValueId) -> LResult<ValueId> {
    b.emit1(node, Op::Unary(u), vec![x])
}

fn last_axis_softmax(b: &mut Builder, node: &str, x: ValueId, log: bool) -> LResult<ValueId> {
    let rank = b.g.ty(x).rank();
    b.emit1(
        node,
        Op::Softmax(Softmax {
            axis: rank.saturating_sub(1),
            log,
        }),
        vec![x],
    )
}

pub fn apply_named(b: &mut Builder, node: &str, name: &str, x: ValueId) -> LResult<ValueId> {
    let n = format!("{node}/{name}");
    match name {
        "linear" => Ok(x),
        "relu" => unary(b, &n, UnaryOp::Relu, x),
        "relu6" => act(
            b,
            &n,
            Activation::Clip {
                min: Some(0.0),
                max: Some(6.0),
            },
            x,
        ),
        "sigmoid" => unary(b, &n, UnaryOp::Sigmoid, x),
        "hard_sigmoid" if b.keras3 => act(
            b,
            &n,
            Activation::HardSigmoid {
                alpha: 1.0 / 6.0,
                beta: 0.5,
            },
            x,
        ),
        "hard_sigmoid" => act(
            b,
            &n,
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            x,
        ),
        "tanh" => unary(b, &n, UnaryOp::Tanh, x),
        "softmax" => last_axis_softmax(b, &n, x, false),
        "log_softmax" => last_axis_softmax(b, &n, x, true),
        "swish" | "silu" => {
            let s = unary(b, &format!("{n}/sigmoid"), UnaryOp::Sigmoid, x)?;
            b.emit1(&n, Op::Binary(BinaryOp::Mul), vec![x, s])
        }
        "hard_swish" | "hard_silu" => act(b, &n, Activation::HardSwish, x),
        "gelu" => act(b, &n, Activation::Gelu { tanh_approx: false }, x),
        "elu" => act(b, &n, Activation::Elu { alpha: 1.0 }, x),
        "selu" => act(
            b,
            &n,
            Activation::Selu {
                alpha: 1.673_263_2,
                gamma: 1.050_701,
            },
            x,
        ),
        "softplus" => unary(b, &n, UnaryOp::Softplus, x),
        "softsign" => unary(b, &n, UnaryOp::Softsign, x),
        "exponential" => unary(b, &n, UnaryOp::Exp, x),
        "leaky_relu" => act(b, &n, Activation::LeakyRelu { alpha: 0.2 }, x),
        "mish" => act(b, &n, Activation::Mish, x),
        "celu" => act(b, &n, Activation::Celu { alpha: 1.0 }, x),
        "hard_tanh" => act(
            b,
            &n,
            Activation::Clip {
                min: Some(-1.0),
                max: Some(1.0),
            },
            x,
        ),
        "tanh_shrink" => {
            let t = unary(b, &format!("{n}/tanh"), UnaryOp::Tanh, x)?;
            b.emit1(&n, Op::Binary(BinaryOp::Sub), vec![x, t])
        }
        "log_sigmoid" => {
            let neg = unary(b, &format!("{n}/neg"), UnaryOp::Neg, x)?;
            let sp = unary(b, &format!("{n}/softplus"), UnaryOp::Softplus, neg)?;
            unary(b, &n, UnaryOp::Neg, sp)
        }
        other => unsupported(format!("activation '{other}'")),
    }
}

fn activation_layer(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let a = c.config.get("activation").cloned().unwrap_or(Value::Null);
    Ok(vec![apply(b, &c.name, &a, c.input(0)?)?])
}

#[derive(Deserialize)]
struct ReluConfig {
    #[serde(default)]
    max_value: Option<f32>,
    #[serde(default)]
    negative_slope: f32,
    #[serde(default)]
    threshold: f32,
}

fn relu(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let r: ReluConfig = c.parse()?;
    let x = c.input(0)?;
    let n = &c.name;
    let y = match (r.negative_slope, r.threshold, r.max_value) {
        (s, t, m) if s == 0.0 && t == 0.0 => match m {
            Some(m) => act(
                b,
                n,
                Activation::Clip {
                    min: Some(0.0),
                    max: Some(m),
                },
                x,
            )?,
            None => unary(b, n, UnaryOp::Relu, x)?,
        },
        (s, 0.0, m) => {
            let l = act(b, n, Activation::LeakyRelu { alpha: s }, x)?;
            match m {
                Some(m) => act(
                    b,
                    &format!("{n}/max"),
                    Activation::Clip {
                        min: None,
                        max: Some(m),
                    },
                    l,
                )?,
                None => l,
            }
        }
        (0.0, t, m) => {
            let y = act(b, n, Activation::ThresholdedRelu { alpha: t }, x)?;
            match m {
                Some(m) => act(
                    b,
                    &format!("{n}/max"),
                    Activation::Clip {
                        min: None,
                        max: Some(m),
                    },
                    y,
                )?,
                None => y,
            }
        }
        _ => return unsupported("ReLU with both a threshold and a negative slope"),
    };
    Ok(vec![y])
}

#[derive(Deserialize)]
struct AlphaConfig {
    /// Keras 3 `negative_slope`, Keras 2 `alpha`.
    #[serde(alias = "negative_slope")]
    alpha: Option<f32>,
    #[serde(default)]
    theta: Option<f32>,
}

/// The layers with one scalar parameter: `alpha` (Keras 3 `negative_slope`) or `theta`, with
/// Keras's default when the config leaves it out.
fn leaky_relu(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let a: AlphaConfig = c.parse()?;
    let alpha = a.alpha.unwrap_or(0.3);
    scalar_activation(b, c, Activation::LeakyRelu { alpha })
}

fn elu(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let a: AlphaConfig = c.parse()?;
    let alpha = a.alpha.unwrap_or(1.0);
    scalar_activation(b, c, Activation::Elu { alpha })
}

fn thresholded_relu(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let a: AlphaConfig = c.parse()?;
    let alpha = a.theta.unwrap_or(1.0);
    scalar_activation(b, c, Activation::ThresholdedRelu { alpha })
}

fn scalar_activation(b: &mut Builder, c: &Call, a: Activation) -> LResult<Vec<ValueId>> {
    Ok(vec![act(b, &c.name, a, c.input(0)?)?])
}

fn prelu(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let slope = b.constant(&format!("{}/alpha", c.name), c.weight(0)?.clone());
    Ok(vec![b.emit1(
        &c.name,
        Op::Binary(BinaryOp::PRelu),
        vec![x, slope],
    )?])
}

fn softmax(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let rank = b.g.ty(x).rank();
    let a = match c.config.get("axis") {
        None | Some(Value::Null) => -1,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(-1),
        Some(Value::Array(v)) if v.len() == 1 => v[0].as_i64().unwrap_or(-1),
        Some(other) => return unsupported(format!("Softmax over several axes {other}")),
    };
    let axis = axis(a, rank)?;
    Ok(vec![b.emit1(
        &c.name,
        Op::Softmax(Softmax { axis, log: false }),
        vec![x],
    )?])
}
