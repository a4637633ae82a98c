//! Layers that `keras.applications` models define themselves and save with the model: part of
//! Keras, so read here rather than refused as user code. ConvNeXt's `LayerScale` (a learned
//! per-channel scale) and `StochasticDepth` (drop-path: the identity at inference; only saved
//! when `drop_path_rate > 0`), and InceptionResNetV2's `CustomScaleLayer`
//! (`inputs[0] + inputs[1] * scale`).

use super::super::build::{Builder, Call, LResult, LayerError};
use crate::ir::ops::BinaryOp;
use crate::ir::{Op, Tensor, ValueId};
use serde_json::Value;

pub fn handler(class: &str) -> Option<super::Handler> {
    Some(match class {
        // tf_keras registers them under the package "Custom" in some versions.
        "LayerScale" | "Custom>LayerScale" => layer_scale,
        "StochasticDepth" | "Custom>StochasticDepth" => stochastic_depth,
        "CustomScaleLayer" | "Custom>CustomScaleLayer" => custom_scale,
        _ => return None,
    })
}

/// `x * gamma`, gamma of shape [projection_dim] on the last (channel) axis.
fn layer_scale(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let gamma = b.constant(&format!("{}/gamma", c.name), c.weight(0)?.clone());
    Ok(vec![b.emit1(
        &c.name,
        Op::Binary(BinaryOp::Mul),
        vec![x, gamma],
    )?])
}

/// Drops whole residual branches only while training.
fn stochastic_depth(_: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    Ok(vec![c.input(0)?])
}

fn custom_scale(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    if c.inputs.len() != 2 {
        return Err(format!("CustomScaleLayer of {} inputs", c.inputs.len()).into());
    }
    let scale = c
        .config
        .get("scale")
        .and_then(Value::as_f64)
        .ok_or_else(|| LayerError::Invalid("CustomScaleLayer without a numeric scale".into()))?;
    let (x, branch) = (c.inputs[0], c.inputs[1]);
    let dtype = b.g.ty(x).dtype;
    let k = b.constant(
        &format!("{}/scale", c.name),
        Tensor::from_f64s(dtype, vec![], &[scale]),
    );
    let scaled = b.emit1(
        &format!("{}/mul", c.name),
        Op::Binary(BinaryOp::Mul),
        vec![branch, k],
    )?;
    Ok(vec![b.emit1(
        &c.name,
        Op::Binary(BinaryOp::Add),
        vec![x, scaled],
    )?])
}
