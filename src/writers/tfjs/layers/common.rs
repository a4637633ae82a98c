//! Config values shared by many layer classes, rewritten into what tfjs-layers 4.22 reads:
//! dtypes (Keras 3 policy objects → plain strings), initializers, regularizers, constraints
//! (Keras 3 `{"module", "class_name", "config", "registered_name"}` → `{"class_name",
//! "config"}` with the keys tfjs's class reads; classes tfjs lacks → `null`, which only
//! changes how a layer would be re-initialized or trained, never what it computes) and
//! activation names (tfjs `activations.ts`).
//!
//! tfjs camel-cases every string value it reads (`convertPythonicToTs`), so the names written
//! here are the snake-case ones that become tfjs's identifiers (`hard_sigmoid` → `hardSigmoid`).

use serde_json::{json, Map, Value};

/// A Keras dtype (string or Keras 3 `DTypePolicy` object) as a tfjs dtype: tfjs computes in
/// float32, int32 or bool only.
pub fn dtype(v: &Value) -> Value {
    let name = crate::formats::keras::config::dtype_name(v).unwrap_or_else(|| "float32".into());
    json!(tfjs_dtype(&name))
}

pub fn tfjs_dtype(name: &str) -> &'static str {
    match name {
        "bool" => "bool",
        n if n.starts_with("int") || n.starts_with("uint") => "int32",
        _ => "float32",
    }
}

/// `(class, config)` of a Keras serialized object: a string identifier or an object with
/// `class_name` and `config`.
fn class_and_config(v: &Value) -> Option<(String, Map<String, Value>)> {
    match v {
        Value::String(s) => Some((s.clone(), Map::new())),
        Value::Object(o) => Some((
            o.get("class_name")?.as_str()?.to_string(),
            o.get("config")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        )),
        _ => None,
    }
}

fn pick(cfg: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| {
            let v = cfg.get(*k)?;
            // A Keras 3 seed may be a SeedGenerator object; tfjs takes a number only.
            if *k == "seed" && !v.is_number() {
                return None;
            }
            Some((k.to_string(), v.clone()))
        })
        .collect()
}

fn object(class: &str, config: Map<String, Value>) -> Value {
    json!({"class_name": class, "config": config})
}

/// An initializer tfjs can deserialize, or `null` (tfjs then uses the layer's default).
pub fn initializer(v: &Value) -> Value {
    let Some((class, cfg)) = class_and_config(v) else {
        return Value::Null;
    };
    let class = match class.as_str() {
        "glorot_uniform" | "GlorotUniform" => "GlorotUniform",
        "glorot_normal" | "GlorotNormal" => "GlorotNormal",
        "he_uniform" | "HeUniform" => "HeUniform",
        "he_normal" | "HeNormal" => "HeNormal",
        "lecun_uniform" | "LecunUniform" | "LeCunUniform" => "LeCunUniform",
        "lecun_normal" | "LecunNormal" | "LeCunNormal" => "LeCunNormal",
        "zeros" | "Zeros" => "Zeros",
        "ones" | "Ones" => "Ones",
        "constant" | "Constant" => "Constant",
        "random_uniform" | "RandomUniform" => "RandomUniform",
        "random_normal" | "RandomNormal" => "RandomNormal",
        "truncated_normal" | "TruncatedNormal" => "TruncatedNormal",
        "orthogonal" | "Orthogonal" => "Orthogonal",
        "identity" | "Identity" => "Identity",
        "variance_scaling" | "VarianceScaling" => "VarianceScaling",
        _ => return Value::Null,
    };
    let cfg = match class {
        "Constant" => pick(&cfg, &["value"]),
        "RandomUniform" => pick(&cfg, &["minval", "maxval", "seed"]),
        "RandomNormal" | "TruncatedNormal" => pick(&cfg, &["mean", "stddev", "seed"]),
        "Orthogonal" => pick(&cfg, &["gain", "seed"]),
        "Identity" => pick(&cfg, &["gain"]),
        "VarianceScaling" => {
            let mut c = pick(&cfg, &["scale", "mode", "distribution", "seed"]);
            // tfjs knows normal, uniform and truncated_normal; Keras's untruncated_normal
            // is its plain normal.
            if c.get("distribution").and_then(Value::as_str) == Some("untruncated_normal") {
                c.insert("distribution".into(), json!("normal"));
            }
            c
        }
        "Zeros" | "Ones" => Map::new(),
        _ => pick(&cfg, &["seed"]),
    };
    if class == "Constant" && !cfg.get("value").is_some_and(Value::is_number) {
        return Value::Null;
    }
    object(class, cfg)
}

/// A regularizer as tfjs's one class, `L1L2`, or `null`.
pub fn regularizer(v: &Value) -> Value {
    let Some((class, cfg)) = class_and_config(v) else {
        return Value::Null;
    };
    let num = |k: &str, default: f64| cfg.get(k).and_then(Value::as_f64).unwrap_or(default);
    let (l1, l2) = match class.as_str() {
        "L1L2" | "l1_l2" => (num("l1", 0.0), num("l2", 0.0)),
        "L1" | "l1" => (num("l1", 0.01), 0.0),
        "L2" | "l2" => (0.0, num("l2", 0.01)),
        _ => return Value::Null,
    };
    json!({"class_name": "L1L2", "config": {"l1": l1, "l2": l2}})
}

/// A constraint tfjs has (`MaxNorm`, `MinMaxNorm`, `NonNeg`, `UnitNorm`), or `null`.
pub fn constraint(v: &Value) -> Value {
    let Some((class, cfg)) = class_and_config(v) else {
        return Value::Null;
    };
    match class.as_str() {
        "MaxNorm" | "max_norm" => object("MaxNorm", pick(&cfg, &["max_value", "axis"])),
        "MinMaxNorm" | "min_max_norm" => object(
            "MinMaxNorm",
            pick(&cfg, &["min_value", "max_value", "rate", "axis"]),
        ),
        "NonNeg" | "non_neg" => object("NonNeg", Map::new()),
        "UnitNorm" | "unit_norm" => object("UnitNorm", pick(&cfg, &["axis"])),
        _ => Value::Null,
    }
}

/// Where a layer added around a translated layer takes an input from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// The Keras layer's `i`-th input (of the call being written).
    Input(usize),
    /// The layer's own (first) output.
    Layer,
    /// A step of `Plan::before`.
    Before(usize),
    /// A step of `Plan::after`.
    After(usize),
}

/// A layer written before or after a translated layer to compute what tfjs's version of it
/// lacks (an activation tfjs has no name for, `keepdims`, a 1-D op done in 2-D). Its name is
/// the Keras layer's plus `suffix`.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub class: &'static str,
    pub config: Map<String, Value>,
    pub inputs: Vec<From>,
    pub suffix: String,
    /// Its weights: `(name, tensor)`, written as `<step name>/<name>`.
    pub weights: Vec<(&'static str, crate::ir::Tensor)>,
}

/// How one Keras layer is written: as tfjs class `class` under the Keras layer's name, fed by
/// `inputs` (`None`: the Keras layer's own inputs), with `before` and `after` around it.
/// References to the Keras layer's output name the last `after` step if there is one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub class: String,
    pub before: Vec<Step>,
    pub inputs: Option<Vec<From>>,
    pub after: Vec<Step>,
    /// A grouped convolution's group count (> 1): its kernel is written block-diagonal.
    pub ungroup: usize,
}

impl Plan {
    pub fn of(class: &str) -> Plan {
        Plan {
            class: class.to_string(),
            ..Plan::default()
        }
    }

    pub fn is_plain(&self) -> bool {
        self.before.is_empty()
            && self.after.is_empty()
            && self.inputs.is_none()
            && self.ungroup <= 1
    }

    /// Whether the layers form one chain (what a Sequential model can hold).
    pub fn is_chain(&self) -> bool {
        let chain = |steps: &[Step], first: From, at: fn(usize) -> From| {
            steps
                .iter()
                .enumerate()
                .all(|(i, s)| s.inputs == [if i == 0 { first } else { at(i - 1) }])
        };
        let main_in = match self.before.len() {
            0 => None,
            n => Some(vec![From::Before(n - 1)]),
        };
        chain(&self.before, From::Input(0), From::Before)
            && self.inputs == main_in
            && chain(&self.after, From::Layer, From::After)
    }
}

impl Step {
    pub fn new(
        class: &'static str,
        config: Value,
        inputs: Vec<From>,
        suffix: impl Into<String>,
    ) -> Step {
        Step {
            class,
            config: config.as_object().cloned().unwrap_or_default(),
            inputs,
            suffix: suffix.into(),
            weights: vec![],
        }
    }
}

/// An activation tfjs has no name for, as layers tfjs has (the layer itself then computes
/// `linear`): `leaky_relu` (slope 0.2, the function's default in both Keras versions),
/// Keras 3's `hard_sigmoid` = relu6(x + 3) / 6 = min(max(x / 6 + 0.5, 0), 1) as Rescaling +
/// ReLU(max_value=1), and `hard_silu` / `hard_swish` = x · hard_sigmoid(x) with a Multiply.
pub fn activation_steps(name: &str, keras3: bool) -> Option<Vec<Step>> {
    let hard_sigmoid = |from: From| {
        vec![
            Step::new(
                "Rescaling",
                json!({"scale": 1.0 / 6.0, "offset": 0.5}),
                vec![from],
                "_hs_scale",
            ),
            Step::new(
                "ReLU",
                json!({"max_value": 1.0}),
                vec![From::After(0)],
                "_hs_clip",
            ),
        ]
    };
    Some(match name {
        "leaky_relu" => vec![Step::new(
            "LeakyReLU",
            json!({"alpha": 0.2}),
            vec![From::Layer],
            "_leaky_relu",
        )],
        "hard_sigmoid" if keras3 => hard_sigmoid(From::Layer),
        "hard_silu" | "hard_swish" => {
            let mut s = hard_sigmoid(From::Layer);
            s.push(Step::new(
                "Multiply",
                json!({}),
                vec![From::Layer, From::After(1)],
                "_hard_silu",
            ));
            s
        }
        _ => return None,
    })
}

/// The activation's name in a config value (a string, or a serialized function object).
pub fn activation_name(v: &Value) -> &str {
    match v {
        Value::Null => "linear",
        Value::String(s) => s.as_str(),
        Value::Object(o) => o
            .get("config")
            .and_then(|c| c.get("name"))
            .or(o.get("class_name"))
            .and_then(Value::as_str)
            .unwrap_or(""),
        _ => "",
    }
}

/// A Keras activation name as the snake-case name tfjs camel-cases into one of its own, or why
/// tfjs cannot compute it.
pub fn activation(v: &Value, keras3: bool) -> Result<Value, String> {
    let name = activation_name(v);
    let out = match name {
        "linear" | "relu" | "relu6" | "elu" | "selu" | "sigmoid" | "tanh" | "softmax"
        | "softplus" | "softsign" | "swish" | "mish" | "gelu" | "log_softmax" => name,
        // The same function under Keras 3's name.
        "silu" => "swish",
        // tf_keras's hard_sigmoid is tfjs's (clip(0.2x + 0.5)); Keras 3's is relu6(x + 3) / 6.
        "hard_sigmoid" if !keras3 => "hard_sigmoid",
        "hard_sigmoid" => {
            return Err(
                "Keras 3's hard_sigmoid (relu6(x + 3) / 6) differs from tfjs's \
                        hardSigmoid (clip(0.2x + 0.5, 0, 1))"
                    .into(),
            )
        }
        "" => return Err(format!("activation {v} is not a named Keras activation")),
        other => return Err(format!("tfjs-layers has no '{other}' activation")),
    };
    Ok(json!(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras3_objects_become_tfjs_objects() {
        let k3 = json!({"module": "keras.initializers", "class_name": "GlorotUniform",
            "config": {"seed": null, "input_axes": null}, "registered_name": null});
        assert_eq!(
            initializer(&k3),
            json!({"class_name": "GlorotUniform", "config": {}})
        );
        assert_eq!(
            initializer(&json!("lecun_normal"))["class_name"],
            "LeCunNormal"
        );
        assert_eq!(initializer(&json!({"class_name": "STFT"})), Value::Null);
        assert_eq!(
            regularizer(&json!({"class_name": "L2", "config": {"l2": 0.5}})),
            json!({"class_name": "L1L2", "config": {"l1": 0.0, "l2": 0.5}})
        );
        let policy = json!({"module": "keras", "class_name": "DTypePolicy",
            "config": {"name": "mixed_float16"}});
        assert_eq!(dtype(&policy), json!("float32"));
        assert_eq!(dtype(&json!("int64")), json!("int32"));
    }

    #[test]
    fn activations_by_dialect() {
        assert_eq!(activation(&json!("silu"), true).unwrap(), json!("swish"));
        assert!(activation(&json!("hard_sigmoid"), false).is_ok());
        assert!(activation(&json!("hard_sigmoid"), true).is_err());
        assert!(activation(&json!("exponential"), false).is_err());
    }
}
