//! A TF.js layers model (`"format": "layers-model"`): `modelTopology` holds a Keras model
//! config — under `model_config` as tensorflowjs_converter writes it, or the model itself
//! (`class_name`, `config`) as tfjs-layers' `model.save` does — in the Keras 2 dialect
//! (tfjs-layers, tf_keras) or Keras 3's, told by `keras_version`. The weights are named
//! `<layer>/<weight>` in `layer.weights` order; grouped by their first path component they are
//! what the Keras reader's `.h5` weight table holds, so the Keras layer table builds the graph.

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
        let layer = name.split('/').next().unwrap_or(name);
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
