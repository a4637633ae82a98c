//! Walks a Sequential or Functional config and builds the graph: graph inputs from the input
//! layers, each call of each layer (shared layers and layers called twice give one node set
//! per call), nested models inlined with their layer names as prefixes, and the outputs.

use super::layers;
use crate::error::Unsupported;
use crate::formats::keras::config::{
    dtype_name, node_offsets, parse_call, ArgConstant, CallSpec, LayerSpec, ModelConfig, TensorRef,
};
use crate::formats::keras::weights::Weights;
use crate::ir::{DType, Dim, Graph, Op, Tensor, TensorType, ValueId};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Why a layer could not be converted.
#[derive(Debug)]
pub enum LayerError {
    /// Reported with every other unsupported layer (exit 4).
    Unsupported(String),
    /// A broken file (exit 1).
    Invalid(String),
}

impl From<String> for LayerError {
    fn from(s: String) -> LayerError {
        LayerError::Invalid(s)
    }
}

impl From<&str> for LayerError {
    fn from(s: &str) -> LayerError {
        LayerError::Invalid(s.to_string())
    }
}

pub type LResult<T> = Result<T, LayerError>;

pub fn unsupported<T>(why: impl Into<String>) -> LResult<T> {
    Err(LayerError::Unsupported(why.into()))
}

/// One call of one layer, as the handlers see it.
pub struct Call<'a> {
    pub class: &'a str,
    /// The node name: the layer name, prefixed inside nested models.
    pub name: String,
    pub config: &'a Value,
    pub inputs: Vec<ValueId>,
    pub kwargs: &'a Map<String, Value>,
    /// Tensor keyword arguments (`value`, `key` of attention), resolved.
    pub kw_inputs: Vec<(String, ValueId)>,
    pub weights: Vec<Tensor>,
    /// Constants among the positional arguments (`CallSpec::constants`).
    pub constants: &'a [(usize, ArgConstant)],
    /// The positional arguments as saved (Keras 3, `CallSpec::args`).
    pub args: &'a [Value],
    /// A Keras 3 operation saved as a layer (module `keras.src.ops.*`).
    pub operation: bool,
}

impl Call<'_> {
    /// The layer's config as its typed struct.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> LResult<T> {
        serde_json::from_value(self.config.clone())
            .map_err(|e| LayerError::Invalid(format!("layer config: {e}")))
    }
    pub fn input(&self, i: usize) -> LResult<ValueId> {
        self.inputs
            .get(i)
            .copied()
            .ok_or_else(|| LayerError::Invalid(format!("missing input #{i}")))
    }
    pub fn weight(&self, i: usize) -> LResult<&Tensor> {
        self.weights.get(i).ok_or_else(|| {
            LayerError::Invalid(format!(
                "has {} weights, needs at least {}",
                self.weights.len(),
                i + 1
            ))
        })
    }
    pub fn kw_input(&self, key: &str) -> Option<ValueId> {
        self.kw_inputs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    }
}

pub struct Builder {
    pub g: Graph,
    value_names: HashSet<String>,
    node_names: HashSet<String>,
    pub unsupported: Vec<Unsupported>,
    /// Keras 3 (vs Keras 2 / tf_keras): some defaults differ (hard_sigmoid).
    pub keras3: bool,
    /// Input shape overrides by name.
    pub input_shapes: Vec<(String, Vec<Dim>)>,
    /// Weights read from the file, each layer counted once (Keras `count_params()`).
    pub parameters: usize,
    counted: HashSet<String>,
}

fn unique(set: &mut HashSet<String>, base: &str) -> String {
    let mut name = base.to_string();
    let mut k = 1;
    while !set.insert(name.clone()) {
        name = format!("{base}_{k}");
        k += 1;
    }
    name
}

impl Builder {
    pub fn new(keras3: bool) -> Builder {
        Builder {
            g: Graph::new(),
            value_names: HashSet::new(),
            node_names: HashSet::new(),
            unsupported: Vec::new(),
            keras3,
            input_shapes: Vec::new(),
            parameters: 0,
            counted: HashSet::new(),
        }
    }

    pub fn constant(&mut self, name: &str, t: Tensor) -> ValueId {
        let n = unique(&mut self.value_names, name);
        self.g.add_const(&n, t)
    }

    pub fn const_f32(&mut self, name: &str, shape: Vec<usize>, v: &[f32]) -> ValueId {
        self.constant(name, Tensor::from_f32(shape, v))
    }

    /// Adds a node named `name` (made unique); its outputs are named after it.
    pub fn emit(&mut self, name: &str, op: Op, inputs: Vec<ValueId>) -> LResult<Vec<ValueId>> {
        let node = unique(&mut self.node_names, name);
        let n_out = self.g.infer(&op, &inputs)?.len();
        let outs: Vec<String> = (0..n_out)
            .map(|i| {
                let base = if i == 0 {
                    name.to_string()
                } else {
                    format!("{name}:{i}")
                };
                unique(&mut self.value_names, &base)
            })
            .collect();
        Ok(self.g.add_node(&node, op, inputs, &outs)?)
    }

    pub fn emit1(&mut self, name: &str, op: Op, inputs: Vec<ValueId>) -> LResult<ValueId> {
        self.emit(name, op, inputs)?
            .into_iter()
            .next()
            .ok_or_else(|| LayerError::Invalid("op produced no output".into()))
    }

    pub fn shape(&self, v: ValueId) -> Vec<Dim> {
        self.g.ty(v).shape.clone()
    }

    /// Names a layer's output value after the layer (`name`, `name:1`, …) unless it is
    /// shared with something else (an input, a constant, another layer's output).
    fn name_outputs(&mut self, name: &str, outs: &[ValueId], first_new: usize) {
        for (i, &v) in outs.iter().enumerate() {
            if v.0 < first_new || self.g.constant(v).is_some() {
                continue;
            }
            let base = if i == 0 {
                name.to_string()
            } else {
                format!("{name}:{i}")
            };
            let old = self.g.value(v).name.clone();
            if old == base {
                continue;
            }
            // An intermediate value of this call holding the layer's name gives it up.
            if let Some(j) = (first_new..self.g.values.len())
                .find(|&j| self.g.values[j].name == base && !outs.contains(&ValueId(j)))
            {
                let n = unique(&mut self.value_names, &format!("{base}/pre"));
                self.g.values[j].name = n;
                self.value_names.remove(&base);
            }
            self.value_names.remove(&old);
            let n = unique(&mut self.value_names, &base);
            self.g.value_mut(v).name = n;
        }
    }

    fn record(&mut self, class: &str, node: &str, reason: String) {
        self.unsupported.push(Unsupported {
            op: class.to_string(),
            node: node.to_string(),
            reason,
        });
    }
}

/// The graph input for an InputLayer config.
fn add_input(b: &mut Builder, spec: &LayerSpec, name: &str) -> Result<ValueId, String> {
    let c = &spec.config;
    let shape = c
        .get("batch_shape")
        .or_else(|| c.get("batch_input_shape"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("input layer '{name}' has no batch_shape"))?;
    let mut dims = Vec::with_capacity(shape.len());
    for (i, d) in shape.iter().enumerate() {
        dims.push(match d.as_u64() {
            Some(n) => Dim::Fixed(n),
            None if i == 0 => Dim::Sym("batch".into()),
            None => b.g.fresh_symbol(),
        });
    }
    if let Some((_, s)) = b.input_shapes.iter().find(|(n, _)| n == name) {
        if s.len() != dims.len() {
            return Err(format!(
                "input '{name}' has rank {}, the override gives {}",
                dims.len(),
                s.len()
            ));
        }
        dims = s.clone();
    }
    let dt = c
        .get("dtype")
        .and_then(dtype_name)
        .unwrap_or("float32".into());
    let dtype = input_dtype(&dt).ok_or_else(|| format!("input '{name}' has dtype {dt}"))?;
    let n = unique(&mut b.value_names, name);
    Ok(b.g.add_input(&n, TensorType::new(dtype, dims)))
}

pub fn input_dtype(s: &str) -> Option<DType> {
    Some(match s {
        "float32" => DType::F32,
        "float16" => DType::F16,
        "float64" => DType::F64,
        "bfloat16" => DType::BF16,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "int16" => DType::I16,
        "int32" => DType::I32,
        "int64" => DType::I64,
        "bool" => DType::Bool,
        _ => return None,
    })
}

/// Builds a model's layers. `given` binds its inputs (a nested model); `None` makes graph
/// inputs. Returns the model's outputs.
pub fn build_model(
    b: &mut Builder,
    class: &str,
    cfg: &ModelConfig,
    weights: &Weights,
    prefix: &str,
    given: Option<&[ValueId]>,
) -> Result<Vec<ValueId>, String> {
    if class == "Sequential" {
        build_sequential(b, cfg, weights, prefix, given)
    } else {
        build_functional(b, cfg, weights, prefix, given)
    }
}

fn build_sequential(
    b: &mut Builder,
    cfg: &ModelConfig,
    weights: &Weights,
    prefix: &str,
    given: Option<&[ValueId]>,
) -> Result<Vec<ValueId>, String> {
    let mut layers = cfg.layers.iter().peekable();
    let mut x = match given {
        Some([v]) => Some(*v),
        Some(v) => return Err(format!("a Sequential model called with {} inputs", v.len())),
        None => None,
    };
    if let Some(first) = layers.peek() {
        if first.class_name == "InputLayer" {
            if x.is_none() {
                x = Some(add_input(b, first, &first.layer_name())?);
            }
            layers.next();
        } else if x.is_none() {
            // Keras 2: the first layer carries `batch_input_shape`.
            let name = format!("{}_input", first.layer_name());
            x = Some(add_input(b, first, &name)?);
        }
    }
    let mut x = vec![x.ok_or("empty Sequential model")?];
    let mut poisoned = false;
    for spec in layers {
        if poisoned {
            // After an unsupported layer: still report every other one.
            if let Err(why) = layers::known(&spec.class_name, spec) {
                let node = format!("{prefix}{}", spec.layer_name());
                b.record(&spec.class_name, &node, why);
            }
            continue;
        }
        let call = CallSpec::default();
        match run_layer(b, spec, &call, x.clone(), vec![], weights, prefix)? {
            Some(outs) => x = outs,
            None => poisoned = true,
        }
    }
    Ok(if poisoned { vec![] } else { x })
}

fn build_functional(
    b: &mut Builder,
    cfg: &ModelConfig,
    weights: &Weights,
    prefix: &str,
    given: Option<&[ValueId]>,
) -> Result<Vec<ValueId>, String> {
    let (inputs, outputs) = cfg.io_refs()?;
    let by_name: HashMap<String, &LayerSpec> =
        cfg.layers.iter().map(|l| (l.layer_name(), l)).collect();
    let mut values: HashMap<TensorRef, ValueId> = HashMap::new();
    if let Some(g) = given {
        if g.len() != inputs.len() {
            return Err(format!(
                "nested model called with {} inputs, has {}",
                g.len(),
                inputs.len()
            ));
        }
    }
    for (i, r) in inputs.iter().enumerate() {
        let spec = by_name
            .get(&r.layer)
            .ok_or_else(|| format!("input layer '{}' is not in the model", r.layer))?;
        let v = match given {
            Some(g) => g[i],
            None => add_input(b, spec, &r.layer)?,
        };
        values.insert(r.clone(), v);
    }
    // Every (layer, call) still to run; a pass runs those whose inputs exist.
    let mut pending: Vec<(&LayerSpec, usize, CallSpec)> = Vec::new();
    for spec in &cfg.layers {
        if spec.class_name == "InputLayer" {
            continue;
        }
        for (k, node) in spec.inbound_nodes.iter().enumerate() {
            let call =
                parse_call(node).map_err(|e| format!("layer '{}': {e}", spec.layer_name()))?;
            pending.push((spec, k, call));
        }
    }
    let offsets = node_offsets(
        b.keras3,
        cfg,
        pending
            .iter()
            .flat_map(|(_, _, c)| c.inputs.iter().chain(c.kw_tensors.iter().map(|(_, r)| r))),
        false,
    );
    let out_offsets = node_offsets(b.keras3, cfg, outputs.iter(), true);
    let mut poisoned: HashSet<String> = HashSet::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for (spec, k, call) in pending {
            let name = spec.layer_name();
            let needed = call
                .inputs
                .iter()
                .chain(call.kw_tensors.iter().map(|(_, r)| r));
            if needed.clone().any(|r| poisoned.contains(&r.layer)) {
                // Downstream of an unsupported layer: still report this one if unknown too.
                if let Err(why) = layers::known(&spec.class_name, spec) {
                    b.record(&spec.class_name, &format!("{prefix}{name}"), why);
                }
                poisoned.insert(name);
                continue;
            }
            let found: Option<Vec<ValueId>> = call
                .inputs
                .iter()
                .map(|r| lookup(&values, &offsets, r))
                .collect();
            let kw: Option<Vec<(String, ValueId)>> = call
                .kw_tensors
                .iter()
                .map(|(key, r)| lookup(&values, &offsets, r).map(|v| (key.clone(), v)))
                .collect();
            let (Some(ins), Some(kw)) = (found, kw) else {
                rest.push((spec, k, call));
                continue;
            };
            match run_layer(b, spec, &call, ins, kw, weights, prefix)? {
                Some(outs) => {
                    for (t, v) in outs.into_iter().enumerate() {
                        let r = TensorRef {
                            layer: name.clone(),
                            node: k,
                            tensor: t,
                        };
                        values.insert(r, v);
                    }
                }
                None => {
                    poisoned.insert(name);
                }
            }
        }
        pending = rest;
        if pending.len() == before {
            let (spec, _, call) = &pending[0];
            return Err(format!(
                "layer '{}' waits for inputs no layer produces ({:?})",
                spec.layer_name(),
                call.inputs.iter().map(|r| &r.layer).collect::<Vec<_>>()
            ));
        }
    }
    if !b.unsupported.is_empty() {
        return Ok(vec![]);
    }
    outputs
        .iter()
        .map(|r| {
            lookup(&values, &out_offsets, r)
                .ok_or_else(|| format!("output '{}' is never produced", r.layer))
        })
        .collect()
}

/// A tensor by reference, nested models' node indices shifted (see `node_offsets`).
fn lookup(
    values: &HashMap<TensorRef, ValueId>,
    offsets: &HashMap<String, usize>,
    r: &TensorRef,
) -> Option<ValueId> {
    let shift = offsets.get(&r.layer).copied().unwrap_or(0);
    let node = r.node.checked_sub(shift)?;
    values.get(&TensorRef { node, ..r.clone() }).copied()
}

/// Runs one call of one layer. `Ok(None)`: the layer is unsupported (recorded).
fn run_layer(
    b: &mut Builder,
    spec: &LayerSpec,
    call: &CallSpec,
    inputs: Vec<ValueId>,
    kw_inputs: Vec<(String, ValueId)>,
    weights: &Weights,
    prefix: &str,
) -> Result<Option<Vec<ValueId>>, String> {
    let layer = spec.layer_name();
    let node = format!("{prefix}{layer}");
    if spec.is_model() {
        let cfg: ModelConfig = serde_json::from_value(spec.config.clone())
            .map_err(|e| format!("nested model '{node}': {e}"))?;
        let inner = weights.nested(&layer)?;
        let outs = build_model(
            b,
            &spec.class_name,
            &cfg,
            &inner,
            &format!("{node}/"),
            Some(&inputs),
        )?;
        return Ok((!outs.is_empty()).then_some(outs));
    }
    let w = weights
        .layer(&layer)
        .map_err(|e| format!("layer '{node}': {e}"))?;
    if b.counted.insert(node.clone()) {
        b.parameters += w.iter().map(|t| t.len()).sum::<usize>();
    }
    let c = Call {
        class: &spec.class_name,
        name: node.clone(),
        config: &spec.config,
        inputs,
        kwargs: &call.kwargs,
        kw_inputs,
        weights: w,
        constants: &call.constants,
        args: &call.args,
        operation: spec.is_operation(),
    };
    let first_new = b.g.values.len();
    match layers::run(b, &c) {
        Ok(outs) => {
            b.name_outputs(&node, &outs, first_new);
            Ok(Some(outs))
        }
        Err(LayerError::Unsupported(why)) => {
            b.record(&spec.class_name, &node, why);
            Ok(None)
        }
        Err(LayerError::Invalid(e)) => Err(format!("layer '{node}' ({}): {e}", spec.class_name)),
    }
}

/// Makes `outs` the graph outputs, named after their layers; a value that is an input or
/// already an output gets an identity node of its own.
pub fn set_outputs(b: &mut Builder, outs: Vec<ValueId>) -> Result<(), String> {
    for v in outs {
        let shared =
            b.g.inputs.contains(&v) || b.g.outputs.contains(&v) || b.g.constant(v).is_some();
        let v = if shared {
            let shape = b.g.ty(v).shape.clone();
            let name = format!("{}_out", b.g.value(v).name);
            b.emit1(
                &name,
                Op::Reshape(crate::ir::ops::Reshape { shape }),
                vec![v],
            )
            .map_err(|e| format!("{e:?}"))?
        } else {
            v
        };
        b.g.outputs.push(v);
    }
    Ok(())
}
