//! A TF.js layers model (`"format": "layers-model"`): `modelTopology` holds a Keras model
//! config — under `model_config` as tensorflowjs_converter writes it, or the model itself
//! (`class_name`, `config`) as tfjs-layers' `model.save` does — in the Keras 2 dialect
//! (tfjs-layers, tf_keras) or Keras 3's, told by `keras_version`. The weights are named
//! `<layer>/<weight>` (Keras 2, tfjs-layers) or by their `.keras` storage path
//! `layers/<layer>/vars/<i>` (Keras 3), in `layer.weights` order; grouped by layer they are what
//! the Keras reader's `.h5` weight table holds, so the Keras layer table builds the graph.

use crate::formats::keras::config::LayerSpec;
use crate::formats::keras::weights::Weights;
use crate::formats::keras::KerasSource;
use crate::ir::Tensor;
use serde_json::Value;
use std::collections::HashMap;

/// The Keras source a layers model describes; `order` is the manifest's weight names in order.
pub fn source(
    topology: &Value,
    order: &[String],
    weights: &HashMap<String, Tensor>,
) -> Result<KerasSource, String> {
    let config = topology.get("model_config").unwrap_or(topology);
    let model: LayerSpec = serde_json::from_value(config.clone())
        .map_err(|e| format!("the layers model config is not a Keras model config ({e})"))?;
    if !model.is_model() {
        return Err(format!(
            "modelTopology holds a {} layer, not a model",
            model.class_name
        ));
    }
    let version = topology
        .get("keras_version")
        .or_else(|| config.get("keras_version"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut by_layer: HashMap<String, Vec<(String, Tensor)>> = HashMap::new();
    for name in order {
        let Some(t) = weights.get(name) else { continue };
        let layer = layer_of(name);
        by_layer
            .entry(layer.to_string())
            .or_default()
            .push((name.clone(), t.clone()));
    }
    Ok(KerasSource {
        model,
        weights: Weights::Legacy(by_layer),
        keras3: version.starts_with('3'),
    })
}

/// The top-level layer a weight belongs to: the first path component, after the `layers/`
/// prefix of a Keras 3 storage path.
fn layer_of(name: &str) -> &str {
    let rest = name.strip_prefix("layers/").unwrap_or(name);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn weights_group_by_their_layer_in_both_dialects() {
        assert_eq!(super::layer_of("conv2d/kernel"), "conv2d");
        assert_eq!(super::layer_of("layers/conv2d/vars/0"), "conv2d");
        assert_eq!(super::layer_of("layers/inner/layers/dense/vars/1"), "inner");
        assert_eq!(super::layer_of("lstm/lstm_cell/kernel"), "lstm");
    }
}
