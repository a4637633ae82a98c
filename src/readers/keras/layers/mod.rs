//! Keras layer handlers, one file per family. `run` dispatches on the class name; `known` says
//! whether a class has a handler (to report layers downstream of an unsupported one).

mod activation;
mod applications;
mod attention;
mod conv;
mod core;
mod merge;
mod norm;
mod operations;
mod pool;
mod rnn;
mod shape;

pub use activation::apply as apply_activation;

use super::build::{unsupported, Builder, Call, LResult, LayerError};
use crate::formats::keras::config::LayerSpec;
use crate::ir::{Tensor, ValueId};
use serde_json::Value;

type Handler = fn(&mut Builder, &Call) -> LResult<Vec<ValueId>>;

fn handler(class: &str) -> Option<Handler> {
    activation::handler(class)
        .or_else(|| core::handler(class))
        .or_else(|| conv::handler(class))
        .or_else(|| pool::handler(class))
        .or_else(|| norm::handler(class))
        .or_else(|| merge::handler(class))
        .or_else(|| shape::handler(class))
        .or_else(|| rnn::handler(class))
        .or_else(|| attention::handler(class))
        .or_else(|| applications::handler(class))
}

/// The handler of a call: a Keras 3 operation's own first (its class may share a layer's
/// name with other arguments: `Reshape`'s `newshape`), then the layers'.
fn handler_of(class: &str, operation: bool) -> Option<Handler> {
    operation
        .then(|| operations::handler(class))
        .flatten()
        .or_else(|| handler(class))
}

/// Why a layer class cannot be converted at all, if so.
pub fn known(class: &str, spec: &LayerSpec) -> Result<(), String> {
    if handler_of(class, spec.is_operation()).is_some() || spec.is_model() {
        return Ok(());
    }
    Err(why_unknown(class, spec.is_operation()))
}

fn why_unknown(class: &str, operation: bool) -> String {
    if operation {
        return format!("the Keras operation {class} (saved as a layer) is not read yet");
    }
    match class {
        "Lambda" => {
            "a Lambda layer's code is not in the file; rewrite it with built-in layers".into()
        }
        "TFOpLambda" | "SlicingOpLambda" => {
            "a TensorFlow function called on a Keras tensor (tf_keras TFOpLambda) is not supported"
                .into()
        }
        _ => "not a built-in Keras layer (a custom class: its code is not in the file)".into(),
    }
}

pub fn run(b: &mut Builder, call: &Call) -> LResult<Vec<ValueId>> {
    match handler_of(call.class, call.operation) {
        Some(h) => h(b, call),
        None => unsupported(why_unknown(call.class, call.operation)),
    }
}

/// An int or a list of ints, as `n` values (`kernel_size: 3` or `[3, 3]`).
pub fn ints(v: &Value, n: usize, what: &str) -> LResult<Vec<usize>> {
    match v {
        Value::Number(x) => x
            .as_u64()
            .map(|x| vec![x as usize; n])
            .ok_or_else(|| LayerError::Invalid(format!("{what}: {v}"))),
        Value::Array(a) if a.len() == n => a
            .iter()
            .map(|x| {
                x.as_u64()
                    .map(|x| x as usize)
                    .ok_or_else(|| LayerError::Invalid(format!("{what}: {v}")))
            })
            .collect(),
        _ => Err(LayerError::Invalid(format!(
            "{what}: expected {n} ints, got {v}"
        ))),
    }
}

/// A Keras axis (negative counts from the end) as an index into a tensor of `rank`.
pub fn axis(a: i64, rank: usize) -> LResult<usize> {
    crate::ir::ops::norm_axis(a, rank).map_err(LayerError::Invalid)
}

/// `data_format`: channels_last (the default) or channels_first.
pub fn layout_of(c: &Value) -> LResult<crate::ir::Layout> {
    match c.get("data_format").and_then(Value::as_str) {
        None | Some("channels_last") => Ok(crate::ir::Layout::Nhwc),
        Some("channels_first") => Ok(crate::ir::Layout::Nchw),
        Some(other) => Err(LayerError::Invalid(format!("data_format {other}"))),
    }
}

/// A constant permuted by `perm` (one copy: weight reordering).
pub fn permuted(t: &Tensor, perm: &[usize]) -> Tensor {
    let esz = t.dtype.size();
    let rank = t.shape.len();
    let out_shape: Vec<usize> = perm.iter().map(|&p| t.shape[p]).collect();
    let mut in_strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * t.shape[i + 1];
    }
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let n = t.len();
    let mut out = Vec::with_capacity(n * esz);
    let mut idx = vec![0usize; rank];
    for _ in 0..n {
        let off: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&t.data[off * esz..(off + 1) * esz]);
        for ax in (0..rank).rev() {
            idx[ax] += 1;
            if idx[ax] < out_shape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    Tensor {
        dtype: t.dtype,
        shape: out_shape,
        data: bytes::Bytes::from(out),
    }
}

/// f32 elements of a float weight.
pub fn floats(t: &Tensor) -> Vec<f32> {
    t.to_f64s().into_iter().map(|x| x as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_swaps_axes() {
        let t = Tensor::from_f32(vec![2, 3], &[0., 1., 2., 3., 4., 5.]);
        let p = permuted(&t, &[1, 0]);
        assert_eq!(p.shape, vec![3, 2]);
        assert_eq!(floats(&p), vec![0., 3., 1., 4., 2., 5.]);
    }
}
