//! Keras layer classes → tfjs-layers 4.22 classes: which exist, the config each reads, and the
//! names of its weights. Checked against tfjs-layers' sources (`src/layers/*.ts`: constructor
//! args and `getConfig`, `addWeight` names) and the classes `@tensorflow/tfjs` 4.22 registers.
//!
//! A config is passed through key by key with values rewritten (`common.rs`); tfjs ignores
//! keys it does not read. What tfjs would read differently from Keras is refused with the
//! reason (the writer then falls back to a graph model, or fails with `--tfjs-format layers`):
//! e.g. GRU `reset_after=True` (tfjs's GRUCell throws), transposed convolutions' `groups`,
//! global pooling `keepdims=True` (no such arg), bilinear `UpSampling2D` (tfjs resizes with
//! the legacy asymmetric sampling, Keras with half-pixel centers).

use super::common::{
    activation, activation_name, activation_steps, constraint, dtype, initializer, regularizer,
    From, Plan, Step,
};
use super::rewrites::{self, Facts};
use serde_json::{json, Map, Value};

/// Layer classes tfjs-layers 4.22 registers and this translation covers (models —
/// Functional, Model, Sequential — are handled by the topology walk).
const KNOWN: &[&str] = &[
    "Activation",
    "Add",
    "AlphaDropout",
    "Average",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "BatchNormalization",
    "Bidirectional",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Conv2DTranspose",
    "Conv3D",
    "Conv3DTranspose",
    "Cropping2D",
    "Dense",
    "DepthwiseConv2D",
    "Dot",
    "Dropout",
    "ELU",
    "Embedding",
    "Flatten",
    "GRU",
    "GaussianDropout",
    "GaussianNoise",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "InputLayer",
    "LSTM",
    "LayerNormalization",
    "LeakyReLU",
    "Masking",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "Maximum",
    "Minimum",
    "Multiply",
    "PReLU",
    "Permute",
    "ReLU",
    "RepeatVector",
    "Rescaling",
    "Reshape",
    "SeparableConv2D",
    "SimpleRNN",
    "Softmax",
    "SpatialDropout1D",
    "ThresholdedReLU",
    "TimeDistributed",
    "UpSampling2D",
    "ZeroPadding2D",
];

/// Keys only Keras writes, which tfjs neither reads nor needs (dropped to keep model.json
/// to what tfjs's own `getConfig` would write).
const DROPPED: &[&str] = &[
    "quantization_config",
    "lora_rank",
    "lora_alpha",
    "synchronized",
    "optional",
    "ragged",
    "use_cudnn",
    "zero_output_for_mask",
    "build_config",
    "registered_name",
    "module",
    "backward_layer",
];

type Reason = String;

/// Why tfjs-layers cannot hold this class, if it cannot.
pub fn known(class: &str) -> Result<(), Reason> {
    if KNOWN.contains(&class) {
        return Ok(());
    }
    Err(match class {
        "Lambda" | "TFOpLambda" | "SlicingOpLambda" => {
            format!("tfjs-layers cannot run a {class} layer (Python code)")
        }
        // tfjs has both, but resizes with align_corners (Keras: half-pixel centers).
        "Resizing" | "CenterCrop" => {
            format!(
                "tfjs-layers' {class} samples with aligned corners, Keras with half-pixel centers"
            )
        }
        _ => format!("tfjs-layers 4.22 has no {class} layer"),
    })
}

fn flag(c: &Map<String, Value>, k: &str) -> bool {
    c.get(k).and_then(Value::as_bool).unwrap_or(false)
}

/// An int or a one-element list of ints (`axis: [3]`) as an int.
fn single_axis(c: &mut Map<String, Value>, key: &str) -> Result<(), Reason> {
    if let Some(Value::Array(a)) = c.get(key) {
        if a.len() != 1 {
            return Err(format!("{key} {} spans several axes", json!(a)));
        }
        let v = a[0].clone();
        c.insert(key.into(), v);
    }
    Ok(())
}

fn all_ones(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        Some(Value::Array(a)) => a.iter().all(|x| x.as_u64() == Some(1)),
        _ => false,
    }
}

/// The tfjs config of one (non-model) layer, with its values rewritten. `keras3` picks the
/// dialect where names or semantics differ.
/// (Inside wrappers, where no layers can be added around it.)
pub fn config(class: &str, cfg: &Value, keras3: bool) -> Result<Map<String, Value>, Reason> {
    let mut no_shape = || Err("unknown inside a wrapper".to_string());
    let mut facts = Facts {
        output_shape: &mut no_shape,
        weight_shapes: vec![],
        constants: vec![],
        tensor_inputs: 0,
        kw_inputs: vec![],
        masked: false,
    };
    match translate(class, cfg, keras3, &mut facts)? {
        (c, plan) if plan.is_plain() && plan.class == class => Ok(c),
        (_, plan) => Err(format!(
            "tfjs writes it as {} with layers around it, which cannot go inside a wrapper",
            plan.class
        )),
    }
}

/// Classes whose `activation` is applied to their output (an RNN's is applied inside the
/// cell), so that layers written after them can compute one tfjs lacks.
const OUTPUT_ACTIVATION: &[&str] = &[
    "Activation",
    "Dense",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "DepthwiseConv2D",
    "SeparableConv2D",
];

/// The tfjs config of one layer and how it is written (`Plan`: the tfjs class, layers added
/// before or after it for what tfjs's class lacks).
pub fn translate(
    class: &str,
    cfg: &Value,
    keras3: bool,
    facts: &mut Facts,
) -> Result<(Map<String, Value>, Plan), Reason> {
    if !rewrites::REWRITTEN.contains(&class) {
        known(class)?;
    }
    let mut steps = Vec::new();
    let src = cfg
        .as_object()
        .ok_or_else(|| format!("config is not an object: {cfg}"))?;
    let mut c = Map::new();
    for (k, v) in src {
        if DROPPED.contains(&k.as_str()) {
            continue;
        }
        let v = match k.as_str() {
            "dtype" => dtype(v),
            "activation" if OUTPUT_ACTIVATION.contains(&class) => match activation(v, keras3) {
                Ok(a) => a,
                Err(why) => {
                    steps = activation_steps(activation_name(v), keras3).ok_or(why)?;
                    json!("linear")
                }
            },
            "activation" | "recurrent_activation" => activation(v, keras3)?,
            "batch_shape" => {
                c.insert("batch_input_shape".into(), v.clone());
                continue;
            }
            k if k.ends_with("_initializer") => initializer(v),
            // tfjs-layers throws when it calls a layer that has an activity regularizer; it
            // only adds a training loss, so it is left out (docs/formats.md).
            "activity_regularizer" => Value::Null,
            k if k.ends_with("_regularizer") => regularizer(v),
            k if k.ends_with("_constraint") => constraint(v),
            _ => v.clone(),
        };
        c.insert(k.clone(), v);
    }
    let mut plan = match rewrites::plan(class, &mut c, facts)? {
        Some(p) => p,
        None => Plan::of(class),
    };
    check_class(&plan.class, &mut c)?;
    if class.starts_with("Global") && flag(&c, "keepdims") {
        // tfjs's global pooling has no keepdims: reshape to the pooled output's shape (the
        // target given in full: tfjs's Reshape infers nothing while the batch is unknown).
        let shape = (facts.output_shape)().map_err(|e| format!("keepdims=True: {e}"))?;
        let target = shape
            .get(1..)
            .unwrap_or_default()
            .iter()
            .map(|d| d.fixed().map(|d| json!(d)))
            .collect::<Option<Vec<_>>>()
            .ok_or("keepdims=True on an output of unknown size")?;
        steps.push(Step::new(
            "Reshape",
            json!({ "target_shape": target }),
            vec![From::Layer],
            "_keepdims",
        ));
    }
    c.remove("keepdims");
    if !steps.is_empty() {
        if !plan.after.is_empty() {
            return Err("needs two sets of added layers".into());
        }
        plan.after = steps;
    }
    Ok((c, plan))
}

/// Per-class rewrites and the semantics tfjs does not share with Keras.
fn check_class(class: &str, c: &mut Map<String, Value>) -> Result<(), Reason> {
    match class {
        "InputLayer" => {
            if flag(c, "sparse") {
                return Err("sparse inputs".into());
            }
            if !c.contains_key("batch_input_shape") {
                return Err("input layer without a shape".into());
            }
            c.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "batch_input_shape" | "dtype" | "sparse" | "name"
                )
            });
        }
        "Conv1D" | "Conv2D" | "Conv3D" | "SeparableConv2D" | "DepthwiseConv2D" => {
            if c.get("padding").and_then(Value::as_str) == Some("causal") {
                return Err("causal padding: tfjs's convolutions do not implement it".into());
            }
            c.remove("groups");
            if class == "SeparableConv2D" {
                // tf_keras writes them (unused); tfjs's SeparableConv2D throws on seeing them.
                for k in [
                    "kernel_initializer",
                    "kernel_regularizer",
                    "kernel_constraint",
                ] {
                    c.remove(k);
                }
            }
        }
        "Conv2DTranspose" | "Conv3DTranspose" => {
            if !matches!(c.get("output_padding"), None | Some(Value::Null)) {
                return Err("output_padding: tfjs's transposed convolution has none".into());
            }
            if !all_ones(c.get("dilation_rate")) {
                return Err("dilated transposed convolution: tfjs ignores dilation_rate".into());
            }
            if c.get("groups").and_then(Value::as_u64).unwrap_or(1) != 1 {
                return Err("grouped convolution (groups > 1)".into());
            }
            c.remove("groups");
        }
        "BatchNormalization" => {
            single_axis(c, "axis")?;
            if flag(c, "renorm") {
                return Err("batch renormalization (renorm=True)".into());
            }
            for k in ["renorm", "renorm_clipping", "renorm_momentum"] {
                c.remove(k);
            }
        }
        "LayerNormalization" => {
            if flag(c, "rms_scaling") {
                return Err("rms_scaling=True: tfjs normalizes by mean and variance".into());
            }
            c.remove("rms_scaling");
        }
        "Softmax" => single_axis(c, "axis")?,
        "ReLU" => {
            c.remove("negative_slope");
            c.remove("threshold");
        }
        // Keras 3 renamed LeakyReLU's `alpha` (tfjs's name) to `negative_slope`.
        "LeakyReLU" => {
            if let Some(v) = c.remove("negative_slope") {
                c.insert("alpha".into(), v);
            }
        }
        "GRU" if flag(c, "reset_after") => {
            return Err("reset_after=True (the Keras default): tfjs's GRUCell refuses it".into());
        }
        "UpSampling2D" if c.get("interpolation").and_then(Value::as_str) == Some("bilinear") => {
            return Err("bilinear upsampling: tfjs samples with legacy asymmetric \
                        coordinates, Keras with half-pixel centers"
                .into());
        }
        "Rescaling"
            if !c.get("scale").is_some_and(Value::is_number)
                || !c.get("offset").is_none_or(Value::is_number) =>
        {
            return Err("per-channel scale or offset: tfjs takes numbers only".into());
        }
        _ => {}
    }
    if matches!(class, "LSTM" | "GRU" | "SimpleRNN") && flag(c, "time_major") {
        return Err("time_major=True".into());
    }
    Ok(())
}

/// The names tfjs gives a layer's weights (its `addWeight` names, in `layer.weights` order:
/// trainable then not), which is also the order Keras stores them in.
pub fn weight_names(class: &str, c: &Map<String, Value>) -> Vec<&'static str> {
    let bias = c.get("use_bias").and_then(Value::as_bool).unwrap_or(true);
    let with_bias = |mut v: Vec<&'static str>| {
        if bias {
            v.push("bias");
        }
        v
    };
    match class {
        "Dense" | "Conv1D" | "Conv2D" | "Conv3D" | "Conv2DTranspose" | "Conv3DTranspose" => {
            with_bias(vec!["kernel"])
        }
        "DepthwiseConv2D" => with_bias(vec!["depthwise_kernel"]),
        "SeparableConv2D" => with_bias(vec!["depthwise_kernel", "pointwise_kernel"]),
        "LSTM" | "GRU" | "SimpleRNN" => with_bias(vec!["kernel", "recurrent_kernel"]),
        "Embedding" => vec!["embeddings"],
        "PReLU" => vec!["alpha"],
        "BatchNormalization" | "LayerNormalization" => {
            let mut v = Vec::new();
            if c.get("scale").and_then(Value::as_bool).unwrap_or(true) {
                v.push("gamma");
            }
            if c.get("center").and_then(Value::as_bool).unwrap_or(true) {
                v.push("beta");
            }
            if class == "BatchNormalization" {
                v.extend(["moving_mean", "moving_variance"]);
            }
            v
        }
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras3_config_becomes_tfjs_config() {
        let k3 = json!({"name": "d", "units": 3, "activation": "silu", "use_bias": false,
            "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}},
            "lora_rank": null, "quantization_config": null});
        let c = config("Dense", &k3, true).unwrap();
        assert_eq!(c["activation"], "swish");
        assert_eq!(c["dtype"], "float32");
        assert!(!c.contains_key("lora_rank"));
        assert_eq!(weight_names("Dense", &c), vec!["kernel"]);
        let inp = json!({"batch_shape": [null, 4], "dtype": "float32", "sparse": false,
            "ragged": false, "name": "x", "optional": false});
        let c = config("InputLayer", &inp, true).unwrap();
        assert_eq!(c["batch_input_shape"], json!([null, 4]));
        assert!(!c.contains_key("batch_shape") && !c.contains_key("optional"));
        let lr = config("LeakyReLU", &json!({"negative_slope": 0.1}), true).unwrap();
        assert_eq!(lr["alpha"], json!(0.1));
    }

    #[test]
    fn refuses_what_tfjs_computes_differently() {
        assert!(config("GRU", &json!({"units": 2, "reset_after": true}), true).is_err());
        assert!(config("Conv2D", &json!({"groups": 2}), true).is_err());
        assert!(config("Conv2DTranspose", &json!({"groups": 2}), true).is_err());
        assert!(config("GlobalAveragePooling2D", &json!({"keepdims": true}), true).is_err());
        assert!(config("MultiHeadAttention", &json!({}), true)
            .unwrap_err()
            .contains("MultiHeadAttention"));
        let bn = config(
            "BatchNormalization",
            &json!({"axis": [3], "scale": false}),
            false,
        )
        .unwrap();
        assert_eq!(bn["axis"], json!(3));
        assert_eq!(
            weight_names("BatchNormalization", &bn),
            vec!["beta", "moving_mean", "moving_variance"]
        );
    }
}
