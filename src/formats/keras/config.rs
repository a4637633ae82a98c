//! Keras model configs (`model_config` / `config.json`) as typed structs, in both dialects:
//! Keras 2 / tf_keras (`batch_input_shape`, `inbound_nodes: [[[layer, node, tensor, kwargs]]]`,
//! plain dtype strings) and Keras 3 (`batch_shape`, `inbound_nodes: [{"args": [...], "kwargs":
//! {...}}]` holding `__keras_tensor__` objects, dtype policies as objects). Layer parameters
//! stay JSON here; each layer handler parses its own typed struct.

use crate::ir::ops::BinaryOp;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A model or layer entry: `{"class_name": ..., "config": {...}, ...}`.
#[derive(Clone, Debug, Deserialize)]
pub struct LayerSpec {
    pub class_name: String,
    /// Keras 3: the Python module of the class (`keras.src.ops.numpy` for an operation on
    /// Keras tensors saved as a layer).
    #[serde(default)]
    pub module: Option<String>,
    #[serde(default)]
    pub config: Value,
    /// Functional models name each layer entry; Sequential ones only in `config.name`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub inbound_nodes: Vec<Value>,
}

impl LayerSpec {
    /// A Keras 3 operation on Keras tensors (`ops.matmul(a, b)`, `x[:, 0]`) saved as a layer.
    pub fn is_operation(&self) -> bool {
        self.module
            .as_deref()
            .is_some_and(|m| m.starts_with("keras.src.ops"))
    }

    pub fn layer_name(&self) -> String {
        self.name
            .clone()
            .or_else(|| {
                self.config
                    .get("name")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .unwrap_or_else(|| self.class_name.to_lowercase())
    }

    /// Whether this entry is a model used as a layer.
    pub fn is_model(&self) -> bool {
        matches!(
            self.class_name.as_str(),
            "Functional" | "Sequential" | "Model"
        ) && self.config.get("layers").is_some()
    }
}

/// The `config` of a Functional or Sequential model.
#[derive(Clone, Debug, Deserialize)]
pub struct ModelConfig {
    pub layers: Vec<LayerSpec>,
    #[serde(default)]
    pub input_layers: Option<Value>,
    #[serde(default)]
    pub output_layers: Option<Value>,
}

impl ModelConfig {
    /// The model's `(inputs, outputs)` references, from `input_layers` and `output_layers`.
    pub fn io_refs(&self) -> Result<(Vec<TensorRef>, Vec<TensorRef>), String> {
        let refs = |v: &Option<Value>, what: &str| {
            parse_refs(v.as_ref().ok_or(format!("model without {what}"))?)
        };
        Ok((
            refs(&self.input_layers, "input_layers")?,
            refs(&self.output_layers, "output_layers")?,
        ))
    }
}

/// `(layer, node index, tensor index)`: one output of one call of a layer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorRef {
    pub layer: String,
    pub node: usize,
    pub tensor: usize,
}

/// One call of a layer: its positional tensor inputs and its keyword arguments (tensor
/// keyword arguments resolved to refs in `kw_tensors`).
#[derive(Clone, Debug, Default)]
pub struct CallSpec {
    pub inputs: Vec<TensorRef>,
    pub kwargs: Map<String, Value>,
    pub kw_tensors: Vec<(String, TensorRef)>,
    /// Constants among the positional arguments, by position: a Keras 3 operation applied to a
    /// tensor and a constant (`x + 3.0` is an `Add` "layer" called with `[x, 3.0]`; `x + w`
    /// with `w` an array carries `w` inline as a `__tensor__` object).
    pub constants: Vec<(usize, ArgConstant)>,
    /// Keras 3: the positional arguments as saved (an operation's non-tensor arguments, such
    /// as `GetItem`'s key).
    pub args: Vec<Value>,
}

/// A constant positional argument: a number (shape `[]`) or an inline tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct ArgConstant {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

/// A number, nested lists of numbers (rectangular; tf_keras writes a NumPy argument so), or
/// Keras 3's `{"class_name": "__tensor__", "config": {"value": [[...]], ...}}` (a backend
/// tensor; `__numpy__` for a NumPy array, the same layout); `None` for
/// anything else (a list holding Keras tensors among them).
pub fn arg_constant(v: &Value) -> Option<ArgConstant> {
    let value = match v {
        Value::Object(o)
            if matches!(
                o.get("class_name").and_then(Value::as_str),
                Some("__tensor__" | "__numpy__")
            ) =>
        {
            o.get("config")?.get("value")?
        }
        _ => v,
    };
    let mut shape = Vec::new();
    let mut first = value;
    while let Value::Array(a) = first {
        shape.push(a.len());
        first = a.first()?;
    }
    let mut values = Vec::new();
    flatten_rectangular(value, &shape, &mut values)?;
    Some(ArgConstant { shape, values })
}

/// Appends `v`'s numbers row-major; `None` unless every list at depth d has `shape[d]` items.
fn flatten_rectangular(v: &Value, shape: &[usize], out: &mut Vec<f64>) -> Option<()> {
    match (v, shape.split_first()) {
        (Value::Array(a), Some((&n, rest))) if a.len() == n => {
            a.iter().try_for_each(|x| flatten_rectangular(x, rest, out))
        }
        (_, None) => {
            out.push(v.as_f64()?);
            Some(())
        }
        _ => None,
    }
}

fn as_ref_triplet(v: &Value) -> Option<TensorRef> {
    let a = v.as_array()?;
    if a.len() < 3 {
        return None;
    }
    Some(TensorRef {
        layer: a[0].as_str()?.to_string(),
        node: a[1].as_u64()? as usize,
        tensor: a[2].as_u64()? as usize,
    })
}

/// `input_layers` / `output_layers`: one `[name, node, tensor]` or a list of them (or a dict
/// of them, Keras 3 dict inputs, in key order).
pub fn parse_refs(v: &Value) -> Result<Vec<TensorRef>, String> {
    if let Some(r) = as_ref_triplet(v) {
        return Ok(vec![r]);
    }
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => return Err(format!("unexpected layer reference {v}")),
    };
    items
        .into_iter()
        .map(|x| as_ref_triplet(x).ok_or_else(|| format!("unexpected layer reference {x}")))
        .collect()
}

/// Keras 3 `__keras_tensor__` objects found in `v`, depth first.
fn keras_tensors(v: &Value, out: &mut Vec<TensorRef>) {
    match v {
        Value::Object(o)
            if o.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") =>
        {
            if let Some(r) = o
                .get("config")
                .and_then(|c| c.get("keras_history"))
                .and_then(as_ref_triplet)
            {
                out.push(r);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keras_tensors(x, out)),
        Value::Object(o) => o.values().for_each(|x| keras_tensors(x, out)),
        _ => {}
    }
}

/// Parses one entry of `inbound_nodes` in either dialect.
pub fn parse_call(node: &Value) -> Result<CallSpec, String> {
    match node {
        // Keras 3: {"args": [...], "kwargs": {...}}
        Value::Object(o) => {
            let mut call = CallSpec::default();
            if let Some(args) = o.get("args") {
                keras_tensors(args, &mut call.inputs);
                if let Value::Array(a) = args {
                    call.args = a.clone();
                }
                if let Value::Array(a) = args {
                    call.constants = a
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| Some((i, arg_constant(v)?)))
                        .collect();
                }
            }
            if let Some(Value::Object(kw)) = o.get("kwargs") {
                for (k, v) in kw {
                    let mut t = Vec::new();
                    keras_tensors(v, &mut t);
                    match t.into_iter().next() {
                        Some(r) => call.kw_tensors.push((k.clone(), r)),
                        None => {
                            call.kwargs.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            Ok(call)
        }
        // tf_keras TFOpLambda: one entry, not wrapped in a list: [layer, node, tensor, {kwargs}].
        Value::Array(entry) if entry.first().is_some_and(Value::is_string) => {
            parse_call(&Value::Array(vec![node.clone()]))
        }
        // Keras 2: [[layer, node, tensor, {kwargs}], ...]
        Value::Array(entries) => {
            let mut call = CallSpec::default();
            for (i, e) in entries.iter().enumerate() {
                let r = as_ref_triplet(e)
                    .ok_or_else(|| format!("unexpected inbound node entry {e}"))?;
                call.inputs.push(r);
                if i == 0 {
                    if let Some(Value::Object(kw)) = e.as_array().and_then(|a| a.get(3)) {
                        for (k, v) in kw {
                            match as_ref_triplet(v) {
                                Some(r) if v.as_array().is_some_and(|a| a[0].is_string()) => {
                                    call.kw_tensors.push((k.clone(), r))
                                }
                                _ => {
                                    call.kwargs.insert(k.clone(), v.clone());
                                }
                            }
                        }
                    }
                }
            }
            Ok(call)
        }
        other => Err(format!("unexpected inbound node {other}")),
    }
}

/// A dtype given as a string (`"float32"`) or a Keras 3 policy object
/// (`{"class_name": "DTypePolicy", "config": {"name": "float32"}}`).
pub fn dtype_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("config")
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .map(String::from),
        _ => None,
    }
}

/// How far the node indices of references to each nested model are shifted. A nested model's
/// own construction counts as its node 0 where Keras numbers its calls: tf_keras shifts every
/// reference by one, Keras 3 only `output_layers` (a nested Functional's; a Sequential's
/// depends on how it was built). What the references show wins (node 0 used: no shift; an
/// index past the calls: shifted); otherwise the dialect decides.
pub fn node_offsets<'r>(
    keras3: bool,
    cfg: &ModelConfig,
    refs: impl Iterator<Item = &'r TensorRef>,
    outputs: bool,
) -> HashMap<String, usize> {
    let mut used: HashMap<&str, Vec<usize>> = HashMap::new();
    for r in refs {
        used.entry(r.layer.as_str()).or_default().push(r.node);
    }
    let mut out = HashMap::new();
    for spec in cfg.layers.iter().filter(|s| s.is_model()) {
        let name = spec.layer_name();
        let nodes = used.get(name.as_str()).cloned().unwrap_or_default();
        let calls = spec.inbound_nodes.len();
        let default = match (keras3, outputs) {
            (false, _) => 1,
            (true, false) => 0,
            (true, true) => usize::from(spec.class_name != "Sequential"),
        };
        let offset = if nodes.contains(&0) {
            0
        } else if nodes.iter().any(|&n| n >= calls) {
            1
        } else {
            default
        };
        out.insert(name, offset);
    }
    out
}

/// The binary op of a tf_keras `TFOpLambda` function applied to a tensor and a number `y`.
pub fn tf_op_lambda_op(function: &str) -> Option<BinaryOp> {
    Some(match function {
        "__operators__.add" | "math.add" => BinaryOp::Add,
        "__operators__.sub" | "math.subtract" => BinaryOp::Sub,
        "__operators__.mul" | "math.multiply" => BinaryOp::Mul,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_inbound_node_dialects() {
        let k3 = json!({"args": [[
            {"class_name": "__keras_tensor__", "config": {"keras_history": ["a", 0, 0]}},
            {"class_name": "__keras_tensor__", "config": {"keras_history": ["b", 1, 2]}}]],
            "kwargs": {"mask": null}});
        let c = parse_call(&k3).unwrap();
        assert_eq!(c.inputs.len(), 2);
        assert_eq!(
            c.inputs[1],
            TensorRef {
                layer: "b".into(),
                node: 1,
                tensor: 2
            }
        );
        let k3_op = json!({"args": [
            {"class_name": "__keras_tensor__", "config": {"keras_history": ["a", 0, 0]}}, 3.0],
            "kwargs": {}});
        let c = parse_call(&k3_op).unwrap();
        let three = ArgConstant {
            shape: vec![],
            values: vec![3.0],
        };
        assert_eq!((c.inputs.len(), c.constants.clone()), (1, vec![(1, three)]));
        let k3_tensor = json!({"args": [
            {"class_name": "__keras_tensor__", "config": {"keras_history": ["a", 0, 0]}},
            {"class_name": "__tensor__", "config": {"value": [[1, 2, 3], [4, 5, 6]], "dtype": "float32"}}],
            "kwargs": {}});
        let c = parse_call(&k3_tensor).unwrap();
        let (pos, k) = &c.constants[0];
        assert_eq!((*pos, k.shape.clone()), (1, vec![2, 3]));
        assert_eq!(k.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let ragged = json!({"class_name": "__tensor__", "config": {"value": [[1, 2], [3]]}});
        assert_eq!(arg_constant(&ragged), None);
        let flat = json!(["conv", 0, 0, {"y": 3.0, "name": null}]);
        let c = parse_call(&flat).unwrap();
        assert_eq!(c.inputs[0].layer, "conv");
        assert_eq!(c.kwargs["y"], json!(3.0));
        let k2 = json!([["td", 0, 0, {"value": ["td", 0, 0]}]]);
        let c = parse_call(&k2).unwrap();
        assert_eq!(c.inputs.len(), 1);
        assert_eq!(c.kw_tensors[0].0, "value");
    }

    #[test]
    fn refs_single_or_list() {
        assert_eq!(parse_refs(&json!(["x", 0, 0])).unwrap().len(), 1);
        assert_eq!(
            parse_refs(&json!([["x", 0, 0], ["y", 1, 0]]))
                .unwrap()
                .len(),
            2
        );
        assert!(parse_refs(&json!("x")).is_err());
    }
}
