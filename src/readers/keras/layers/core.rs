//! Core layers: Dense, the inference-time identities (Dropout family, noise,
//! ActivityRegularization, Masking is refused), Rescaling, Normalization, Embedding.

use super::super::build::{unsupported, Builder, Call, LResult};
use super::{apply_activation, axis, floats};
use crate::ir::ops::{BinaryOp, Cast, Gather, MatMul};
use crate::ir::{DType, Op, Tensor, ValueId};
use serde::Deserialize;
use serde_json::Value;

pub fn handler(class: &str) -> Option<super::Handler> {
    Some(match class {
        "Dense" => dense,
        "Dropout"
        | "SpatialDropout1D"
        | "SpatialDropout2D"
        | "SpatialDropout3D"
        | "GaussianNoise"
        | "GaussianDropout"
        | "AlphaDropout"
        | "ActivityRegularization" => identity,
        "Rescaling" => rescaling,
        "Normalization" => normalization,
        "Embedding" => embedding,
        _ => return None,
    })
}

fn identity(_: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    Ok(vec![c.input(0)?])
}

#[derive(Deserialize)]
struct DenseConfig {
    #[serde(default = "yes")]
    use_bias: bool,
    #[serde(default)]
    activation: Value,
}

fn yes() -> bool {
    true
}

/// `x @ kernel + bias` on the last axis, then the activation.
pub fn dense_on(
    b: &mut Builder,
    name: &str,
    x: ValueId,
    kernel: &Tensor,
    bias: Option<&Tensor>,
    activation: &Value,
) -> LResult<ValueId> {
    let k = b.constant(&format!("{name}/kernel"), kernel.clone());
    let mut y = b.emit1(name, Op::MatMul(MatMul::default()), vec![x, k])?;
    if let Some(bias) = bias {
        let bv = b.constant(&format!("{name}/bias"), bias.clone());
        y = b.emit1(
            &format!("{name}/bias_add"),
            Op::Binary(BinaryOp::Add),
            vec![y, bv],
        )?;
    }
    apply_activation(b, name, activation, y)
}

fn dense(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let d: DenseConfig = c.parse()?;
    let bias = if d.use_bias { Some(c.weight(1)?) } else { None };
    Ok(vec![dense_on(
        b,
        &c.name,
        c.input(0)?,
        c.weight(0)?,
        bias,
        &d.activation,
    )?])
}

/// A number or a list of numbers.
fn numbers(v: &Value) -> Option<Vec<f32>> {
    match v {
        Value::Number(n) => Some(vec![n.as_f64()? as f32]),
        Value::Array(a) => a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect(),
        _ => None,
    }
}

/// A per-channel (last axis) or scalar constant.
fn channel_const(b: &mut Builder, name: &str, v: &[f32]) -> ValueId {
    let shape = if v.len() == 1 { vec![] } else { vec![v.len()] };
    b.const_f32(name, shape, v)
}

fn rescaling(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let scale = c.config.get("scale").and_then(numbers).unwrap_or(vec![1.0]);
    let offset = c
        .config
        .get("offset")
        .and_then(numbers)
        .unwrap_or(vec![0.0]);
    let s = channel_const(b, &format!("{}/scale", c.name), &scale);
    let mut y = b.emit1(&c.name, Op::Binary(BinaryOp::Mul), vec![x, s])?;
    if offset.iter().any(|&o| o != 0.0) {
        let o = channel_const(b, &format!("{}/offset", c.name), &offset);
        y = b.emit1(
            &format!("{}/add", c.name),
            Op::Binary(BinaryOp::Add),
            vec![y, o],
        )?;
    }
    Ok(vec![y])
}

/// `(x - mean) / max(sqrt(variance), 1e-7)` as one multiply and one add.
fn normalization(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    if c.config.get("invert").and_then(Value::as_bool) == Some(true) {
        return unsupported("Normalization with invert=True");
    }
    let x = c.input(0)?;
    let rank = b.g.ty(x).rank();
    let axes: Vec<i64> = match c.config.get("axis") {
        None | Some(Value::Null) => vec![-1],
        Some(Value::Number(n)) => vec![n.as_i64().unwrap_or(-1)],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_i64).collect(),
        Some(other) => return unsupported(format!("Normalization axis {other}")),
    };
    let axes: Vec<usize> = axes
        .iter()
        .map(|&a| axis(a, rank))
        .collect::<LResult<_>>()?;
    let (mean, var) = match (
        c.config.get("mean").and_then(numbers),
        c.config.get("variance").and_then(numbers),
    ) {
        (Some(m), Some(v)) => (m, v),
        _ => (floats(c.weight(0)?), floats(c.weight(1)?)),
    };
    let shape = b.shape(x);
    let bshape: Vec<usize> = (0..rank)
        .map(|i| {
            if axes.contains(&i) {
                shape[i].fixed().unwrap_or(1) as usize
            } else {
                1
            }
        })
        .collect();
    let n: usize = bshape.iter().product();
    let pick = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i % v.len()] };
    if mean.len() != 1 && mean.len() != n {
        return Err(format!(
            "Normalization mean has {} values for shape {bshape:?}",
            mean.len()
        )
        .into());
    }
    let scale: Vec<f32> = (0..n)
        .map(|i| 1.0 / pick(&var, i).sqrt().max(1e-7))
        .collect();
    let shift: Vec<f32> = (0..n).map(|i| -pick(&mean, i) * scale[i]).collect();
    let s = b.const_f32(&format!("{}/scale", c.name), bshape.clone(), &scale);
    let o = b.const_f32(&format!("{}/shift", c.name), bshape, &shift);
    let y = b.emit1(
        &format!("{}/mul", c.name),
        Op::Binary(BinaryOp::Mul),
        vec![x, s],
    )?;
    Ok(vec![b.emit1(
        &c.name,
        Op::Binary(BinaryOp::Add),
        vec![y, o],
    )?])
}

fn embedding(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    if c.config.get("mask_zero").and_then(Value::as_bool) == Some(true) {
        return unsupported("Embedding with mask_zero=True (the mask changes later layers)");
    }
    let mut x = c.input(0)?;
    if !matches!(b.g.ty(x).dtype, DType::I32 | DType::I64) {
        x = b.emit1(
            &format!("{}/cast", c.name),
            Op::Cast(Cast { to: DType::I64 }),
            vec![x],
        )?;
    }
    let table = b.constant(&format!("{}/embeddings", c.name), c.weight(0)?.clone());
    Ok(vec![b.emit1(
        &c.name,
        Op::Gather(Gather { axis: 0 }),
        vec![table, x],
    )?])
}
