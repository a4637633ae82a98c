//! TF.js layers model (`"format": "layers-model"`) from a Keras source: the Keras model config
//! rewritten into the dialect tfjs-layers 4.22 reads (`tf.loadLayersModel`), and the layers'
//! weights named as tfjs names them. Works on the opened Keras file (`formats::keras`), not the
//! IR: a layers model *is* the Keras topology, so it keeps layer names, shared layers and nested
//! models. The graph the Keras reader built from the same file gives the layers' output shapes
//! where a rewrite needs them (a layer's first output value has the layer's name).
//!
//! The dialect (tfjs-layers `engine/container.ts` `fromConfig`, `models.ts`):
//! - Functional: `{"class_name": "Model", "config": {"name", "layers": [{"class_name",
//!   "config", "name", "inbound_nodes": [[[layer, node, tensor, {kwargs}], ...], ...]}],
//!   "input_layers": [[layer, node, tensor], ...], "output_layers": [...]}}`. Keras 3's
//!   `{"args": [{"class_name": "__keras_tensor__", ...}], "kwargs"}` nodes become the nested
//!   lists; `input_layers` is always a list of triplets.
//! - A nested model's construction is its node 0 in tfjs (as in tf_keras), so call `k` of a
//!   nested model is node `k + 1`; Keras 3 numbers calls from 0 (see
//!   `formats::keras::config::node_offsets`).
//! - Sequential: `{"class_name": "Sequential", "config": {"name", "layers": [{"class_name",
//!   "config"}]}}`.
//! - Weights are matched by name (`LayersModel.loadWeights`): `layer/kernel`; nested models'
//!   layers keep their own names (no prefix); `TimeDistributed` builds its layer in its own
//!   scope (`td/kernel`); `Bidirectional` names its two RNNs `forward_<rnn>` and
//!   `backward_<rnn>` (`bi/forward_lstm/kernel`).
//!
//! Files: `classes.rs` (which classes tfjs has, their configs and weight names), `common.rs`
//! (dtypes, initializers, activations; `Plan`: layers added around a layer), `rewrites.rs`
//! (layers tfjs lacks or computes differently, written exactly as ones it has),
//! `attention.rs` (MultiHeadAttention head by head). The caller (`convert --to tfjs`) reads the
//! file once (`readers::read_model`), uses [`check`] to choose between this and the graph
//! model, then [`write`].

mod attention;
mod classes;
mod common;
mod rewrites;

use common::{From, Plan, Step};
use rewrites::Facts;

use super::{write_folder, FolderOptions, NamedWeight};
use crate::error::{failed, Error, Result, Unsupported};
use crate::formats::keras::config::{
    arg_constant, node_offsets, parse_call, ArgConstant, CallSpec, LayerSpec, ModelConfig,
    TensorRef,
};
use crate::formats::keras::weights::Weights;
use crate::formats::keras::KerasSource;
use crate::ir::{Dim, Graph, Tensor};
use crate::writers::WriteReport;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// A translated model: `modelTopology` and the weights in manifest order.
pub struct LayersModel {
    pub topology: Value,
    pub weights: Vec<NamedWeight>,
    /// Layers written (nested models' layers included).
    pub layers: usize,
}

/// Everything tfjs-layers cannot hold in a Keras source (empty: a layers model can be written).
/// A source whose config the translation cannot follow (an unexpected weight count, a malformed
/// node) is one item too, so that the caller can fall back to a graph model. `shapes` is the
/// graph the Keras reader built from `src` without input-shape overrides (the topology keeps
/// the config's input shapes, so its layers' shapes must follow them); `file` is where `src`
/// was read from (for messages).
pub fn check(src: &KerasSource, shapes: &Graph, file: &Path) -> Vec<Unsupported> {
    match translate(src, shapes, file) {
        Ok(_) => vec![],
        Err(Error::Unsupported { items, .. }) => items,
        Err(e) => vec![Unsupported {
            op: "layers-model".into(),
            node: file.display().to_string(),
            reason: e.to_string(),
        }],
    }
}

/// Writes the layers model of the Keras source `src` into the folder `out` (`shapes` and
/// `file` as for [`check`]).
pub fn write(
    src: &KerasSource,
    shapes: &Graph,
    file: &Path,
    out: &Path,
    opts: &FolderOptions,
) -> Result<WriteReport> {
    let m = translate(src, shapes, file)?;
    let mut model = Map::new();
    model.insert("format".into(), json!("layers-model"));
    model.insert(
        "generatedBy".into(),
        json!(format!("keras {}", if src.keras3 { "3" } else { "2" })),
    );
    model.insert("modelTopology".into(), m.topology);
    let mut report = write_folder(out, model, &m.weights, opts)?;
    report.nodes = m.layers;
    Ok(report)
}

/// The layers model of a Keras source; `Error::Unsupported` lists every layer tfjs-layers
/// cannot hold. `shapes` and `file` as for [`check`].
pub fn translate(src: &KerasSource, shapes: &Graph, file: &Path) -> Result<LayersModel> {
    let file = file.display().to_string();
    let mut t = Translator {
        keras3: src.keras3,
        unsupported: Vec::new(),
        weights: Vec::new(),
        layers: 0,
        graph: shapes,
        shapes: None,
    };
    let model = t
        .model(&src.model, &src.weights, "")
        .map_err(|e| failed(format!("{file}: {e}")))?;
    if !t.unsupported.is_empty() {
        return Err(Error::Unsupported {
            file,
            items: t.unsupported,
        });
    }
    let mut topology = model;
    if let Value::Object(o) = &mut topology {
        o.insert(
            "keras_version".into(),
            json!(format!("tfjs-layers {}", TFJS_LAYERS_VERSION)),
        );
        o.insert("backend".into(), json!("tensor_flow.js"));
    }
    Ok(LayersModel {
        topology,
        weights: t.weights,
        layers: t.layers,
    })
}

/// A call's constants among its arguments: the positional ones (Keras 3; `None` for a tensor,
/// a number otherwise), or tf_keras TFOpLambda's `y` keyword (its second argument).
fn call_constants(call: &CallSpec) -> Vec<(usize, Option<f64>)> {
    let number = |k: &ArgConstant| k.shape.is_empty().then(|| k.values.first().copied())?;
    let mut c: Vec<(usize, Option<f64>)> = (call.constants.iter())
        .map(|(pos, k)| (*pos, number(k)))
        .collect();
    if let Some(y) = call.kwargs.get("y").and_then(arg_constant) {
        c.push((1, number(&y)));
    }
    c
}

/// Whether a call passes a mask (attention layers): a mask tensor or `use_causal_mask=True`.
fn masked(call: &CallSpec) -> bool {
    call.kw_tensors
        .iter()
        .any(|(k, _)| !matches!(k.as_str(), "query" | "value" | "key"))
        || call
            .kwargs
            .iter()
            .any(|(k, v)| k.ends_with("mask") && !v.is_null() && *v != Value::Bool(false))
}

/// The names of a model's layers (step names must not take one).
fn layer_names(cfg: &ModelConfig) -> HashSet<String> {
    cfg.layers.iter().map(LayerSpec::layer_name).collect()
}

/// `{base}{suffix}`, numbered if a layer already has that name.
fn unique(names: &mut HashSet<String>, base: &str, suffix: &str) -> String {
    let mut name = format!("{base}{suffix}");
    let mut k = 1;
    while !names.insert(name.clone()) {
        name = format!("{base}{suffix}_{k}");
        k += 1;
    }
    name
}

/// The tfjs-layers version whose dialect is written (what its own `toJSON` would say).
const TFJS_LAYERS_VERSION: &str = "4.22.0";

struct Translator<'a> {
    /// The source as the Keras reader built it (a layer's output value has the layer's name).
    graph: &'a Graph,
    /// `graph`'s value shapes by name, indexed once a layer's output shape is needed.
    shapes: Option<HashMap<&'a str, &'a [Dim]>>,
    keras3: bool,
    unsupported: Vec<Unsupported>,
    weights: Vec<NamedWeight>,
    layers: usize,
}

impl Translator<'_> {
    /// The static shape of layer `node`'s first output (its IR value has the layer's name).
    fn output_shape(&mut self, node: &str) -> Result<Vec<Dim>, String> {
        let graph = self.graph;
        let shapes = self.shapes.get_or_insert_with(|| {
            // Later values win, as they always have when names repeat.
            (graph.values.iter())
                .map(|v| (v.name.as_str(), v.ty.shape.as_slice()))
                .collect()
        });
        shapes
            .get(node)
            .map(|s| s.to_vec())
            .ok_or_else(|| format!("its output shape is unknown (no value '{node}')"))
    }

    fn refuse(&mut self, class: &str, node: &str, reason: String) {
        self.unsupported.push(Unsupported {
            op: class.to_string(),
            node: node.to_string(),
            reason,
        });
    }

    /// A Functional or Sequential model (top level or nested) as `{"class_name", "config"}`.
    /// `path` names where it is for messages (`outer/inner/`).
    fn model(&mut self, spec: &LayerSpec, weights: &Weights, path: &str) -> Result<Value, String> {
        let cfg: ModelConfig = serde_json::from_value(spec.config.clone())
            .map_err(|e| format!("model '{path}': unexpected model config ({e})"))?;
        let name = spec.layer_name();
        if spec.class_name == "Sequential" {
            let layers = self.sequential_layers(&cfg, weights, path)?;
            return Ok(json!({"class_name": "Sequential",
                "config": {"name": name, "layers": layers}}));
        }
        let call_refs: Vec<(&LayerSpec, Vec<CallSpec>)> = cfg
            .layers
            .iter()
            .map(|l| {
                let calls = l
                    .inbound_nodes
                    .iter()
                    .map(parse_call)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("layer '{path}{}': {e}", l.layer_name()))?;
                Ok((l, calls))
            })
            .collect::<Result<_, String>>()?;
        let offsets = node_offsets(
            self.keras3,
            &cfg,
            call_refs
                .iter()
                .flat_map(|(_, cs)| cs.iter())
                .flat_map(|c| c.inputs.iter().chain(c.kw_tensors.iter().map(|(_, r)| r))),
            false,
        );
        let (inputs, outputs) = cfg.io_refs()?;
        let out_offsets = node_offsets(self.keras3, &cfg, outputs.iter(), true);
        let models: HashMap<String, bool> = cfg
            .layers
            .iter()
            .map(|l| (l.layer_name(), l.is_model()))
            .collect();
        // Each layer's plan; references to a layer with layers after it name the last one.
        let mut names = layer_names(&cfg);
        let mut translated = Vec::with_capacity(call_refs.len());
        let mut redirect: HashMap<String, String> = HashMap::new();
        for (l, calls) in &call_refs {
            // Every call with the same positional numbers, or none (for `Facts::constants`).
            let call = calls.first().filter(|c| {
                calls
                    .iter()
                    .all(|o| o.constants == c.constants && o.inputs.len() == c.inputs.len())
            });
            let (config, plan) = self.layer(l, weights, path, call)?;
            let lname = l.layer_name();
            let before: Vec<String> = plan
                .before
                .iter()
                .map(|s| unique(&mut names, &lname, &s.suffix))
                .collect();
            let after: Vec<String> = plan
                .after
                .iter()
                .map(|s| unique(&mut names, &lname, &s.suffix))
                .collect();
            if let Some(last) = after.last() {
                redirect.insert(lname, last.clone());
            }
            self.push_step_weights(&plan, &before, &after);
            translated.push((config, plan, before, after));
        }
        // tfjs numbers a nested model's calls from 1 (its construction is node 0).
        let tfjs_ref = |r: &TensorRef, offsets: &HashMap<String, usize>| -> Value {
            let node = if models.get(&r.layer).copied().unwrap_or(false) {
                (r.node + 1).saturating_sub(offsets.get(&r.layer).copied().unwrap_or(0))
            } else {
                r.node
            };
            let layer = match redirect.get(&r.layer) {
                Some(last) if r.tensor == 0 => last,
                _ => &r.layer,
            };
            json!([layer, node, r.tensor])
        };
        let mut layers = Vec::with_capacity(cfg.layers.len());
        for ((l, calls), (config, plan, before, after)) in call_refs.iter().zip(translated) {
            let lname = l.layer_name();
            // Per call: the inbound entries of the Keras layer's inputs.
            let mut call_inputs = Vec::with_capacity(calls.len());
            for call in calls {
                if !call.kw_tensors.is_empty() && classes::known(&l.class_name).is_ok() {
                    self.refuse(
                        &l.class_name,
                        &format!("{path}{lname}"),
                        "tensors passed as keyword arguments (tfjs-layers passes positional \
                         inputs only)"
                            .into(),
                    );
                }
                let kwargs: Map<String, Value> = call
                    .kwargs
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                // Positional inputs, then tensors passed by keyword (`Facts::kw_inputs`).
                let entries: Vec<Value> = call
                    .inputs
                    .iter()
                    .chain(call.kw_tensors.iter().map(|(_, r)| r))
                    .map(|r| {
                        let mut e = tfjs_ref(r, &offsets);
                        if let Value::Array(a) = &mut e {
                            a.push(Value::Object(kwargs.clone()));
                        }
                        e
                    })
                    .collect();
                call_inputs.push(entries);
            }
            let entry = |f: &From, k: usize| -> Value {
                let named = |n: &str| json!([n, k, 0, {}]);
                match f {
                    From::Input(i) => call_inputs[k].get(*i).cloned().unwrap_or(Value::Null),
                    From::Layer => named(&lname),
                    From::Before(j) => named(&before[*j]),
                    From::After(j) => named(&after[*j]),
                }
            };
            let nodes_of = |ins: &[From]| -> Vec<Value> {
                (0..calls.len())
                    .map(|k| Value::Array(ins.iter().map(|f| entry(f, k)).collect()))
                    .collect()
            };
            let step = |s: &Step, sname: &str| {
                let mut c = s.config.clone();
                c.insert("name".into(), json!(sname));
                json!({"class_name": s.class, "config": c, "name": sname,
                    "inbound_nodes": nodes_of(&s.inputs)})
            };
            layers.extend(plan.before.iter().zip(&before).map(|(s, n)| step(s, n)));
            let nodes: Vec<Value> = match &plan.inputs {
                Some(ins) => nodes_of(ins),
                None => call_inputs.iter().cloned().map(Value::Array).collect(),
            };
            layers.push(
                json!({"class_name": plan.class, "config": config, "name": lname,
                "inbound_nodes": nodes}),
            );
            layers.extend(plan.after.iter().zip(&after).map(|(s, n)| step(s, n)));
        }
        let no_offsets = HashMap::new();
        let input_layers: Vec<Value> = inputs.iter().map(|r| tfjs_ref(r, &no_offsets)).collect();
        let output_layers: Vec<Value> = outputs.iter().map(|r| tfjs_ref(r, &out_offsets)).collect();
        Ok(
            json!({"class_name": "Model", "config": {"name": name, "layers": layers,
            "input_layers": input_layers, "output_layers": output_layers}}),
        )
    }

    /// A Sequential model's layers; layers added around a layer must form a chain.
    fn sequential_layers(
        &mut self,
        cfg: &ModelConfig,
        weights: &Weights,
        path: &str,
    ) -> Result<Vec<Value>, String> {
        let mut names = layer_names(cfg);
        let mut layers = Vec::with_capacity(cfg.layers.len());
        for l in &cfg.layers {
            let lname = l.layer_name();
            let (config, plan) = self.layer(l, weights, path, None)?;
            if !plan.is_chain() {
                self.refuse(
                    &l.class_name,
                    &format!("{path}{lname}"),
                    "tfjs needs a branch of layers for it, which a Sequential model cannot hold"
                        .into(),
                );
                continue;
            }
            let mut step = |s: &Step| {
                let mut c = s.config.clone();
                c.insert("name".into(), json!(unique(&mut names, &lname, &s.suffix)));
                json!({"class_name": s.class, "config": c})
            };
            let before: Vec<Value> = plan.before.iter().map(&mut step).collect();
            let after: Vec<Value> = plan.after.iter().map(&mut step).collect();
            let name_of = |v: &Value| v["config"]["name"].as_str().unwrap_or("").to_string();
            let (bn, an): (Vec<String>, Vec<String>) = (
                before.iter().map(name_of).collect(),
                after.iter().map(name_of).collect(),
            );
            self.push_step_weights(&plan, &bn, &an);
            layers.extend(before);
            layers.push(json!({"class_name": plan.class, "config": config}));
            layers.extend(after);
        }
        Ok(layers)
    }

    /// One entry of a model's `layers`: its tfjs config and plan, its weights recorded. An
    /// unsupported layer is recorded and written as it was (nothing is written then).
    fn layer(
        &mut self,
        l: &LayerSpec,
        weights: &Weights,
        path: &str,
        call: Option<&CallSpec>,
    ) -> Result<(Value, Plan), String> {
        let name = l.layer_name();
        let node = format!("{path}{name}");
        if l.is_model() {
            let inner = weights.nested(&name)?;
            let m = self.model(l, &inner, &format!("{node}/"))?;
            let class = m["class_name"].as_str().unwrap_or("Model");
            return Ok((m["config"].clone(), Plan::of(class)));
        }
        self.layers += 1;
        match self.layer_config(&l.class_name, &l.config, (&name, &node), weights, call) {
            Ok(Ok((config, plan))) => Ok((Value::Object(config), plan)),
            Ok(Err(reason)) => {
                self.refuse(&l.class_name, &node, reason);
                Ok((l.config.clone(), Plan::of(&l.class_name)))
            }
            Err(e) => Err(format!("layer '{node}' ({}): {e}", l.class_name)),
        }
    }

    /// The tfjs config and plan of a layer (`Ok(Err(reason))`: tfjs cannot hold it), its
    /// weights appended in tfjs's names. `node` is `name` with its models' prefix.
    #[allow(clippy::type_complexity)]
    fn layer_config(
        &mut self,
        class: &str,
        cfg: &Value,
        (name, node): (&str, &str),
        weights: &Weights,
        call: Option<&CallSpec>,
    ) -> Result<Result<(Map<String, Value>, Plan), String>, String> {
        let mut tensors = weights.layer(name)?;
        let keras3 = self.keras3;
        let translated = {
            let mut shape = || self.output_shape(node);
            let mut facts = Facts {
                output_shape: &mut shape,
                weight_shapes: tensors.iter().map(|t| t.shape.clone()).collect(),
                constants: call.map(call_constants).unwrap_or_default(),
                tensor_inputs: call.map_or(0, |c| c.inputs.len()),
                kw_inputs: call
                    .map(|c| c.kw_tensors.iter().map(|(k, _)| k.clone()).collect())
                    .unwrap_or_default(),
                masked: call.is_some_and(masked),
            };
            if class == "MultiHeadAttention" {
                let mut c = cfg.as_object().cloned().unwrap_or_default();
                match attention::plan(&mut c, &facts, &tensors) {
                    Ok((plan, main)) => Ok((c, plan, Some(main))),
                    Err(why) => Err(why),
                }
            } else {
                classes::translate(class, cfg, keras3, &mut facts).map(|(c, p)| (c, p, None))
            }
        };
        let (mut config, plan, replaced) = match translated {
            Ok(c) => c,
            Err(why) => return Ok(Err(why)),
        };
        if let Some(main) = replaced {
            tensors = main;
        }
        if plan.ungroup > 1 {
            let kernel = tensors
                .first_mut()
                .ok_or("a grouped convolution without a kernel")?;
            *kernel = match rewrites::ungrouped_kernel(kernel, plan.ungroup) {
                Ok(k) => k,
                Err(why) => return Ok(Err(why)),
            };
        }
        if class == "Normalization" {
            tensors = match rewrites::normalization_weights(&tensors) {
                Ok(t) => t,
                Err(why) => return Ok(Err(why)),
            };
        }
        let names: Vec<String> = match plan.class.as_str() {
            "TimeDistributed" | "Bidirectional" => {
                let inner = match self.wrapped(class, cfg, &mut config)? {
                    Ok(inner) => inner,
                    Err(why) => return Ok(Err(why)),
                };
                inner.into_iter().map(|n| format!("{name}/{n}")).collect()
            }
            c => classes::weight_names(c, &config)
                .into_iter()
                .map(|n| format!("{name}/{n}"))
                .collect(),
        };
        if names.len() != tensors.len() {
            return Err(format!(
                "the file holds {} weights, tfjs-layers expects {} ({})",
                tensors.len(),
                names.len(),
                names.join(", ")
            ));
        }
        self.push_weights(names, tensors);
        Ok(Ok((config, plan)))
    }

    /// The weights of the layers a plan adds, named after them.
    fn push_step_weights(&mut self, plan: &Plan, before: &[String], after: &[String]) {
        let steps = plan
            .before
            .iter()
            .zip(before)
            .chain(plan.after.iter().zip(after));
        for (s, name) in steps {
            for (w, t) in &s.weights {
                self.weights.push(NamedWeight {
                    name: format!("{name}/{w}"),
                    tensor: t.clone(),
                });
            }
        }
    }

    fn push_weights(&mut self, names: Vec<String>, tensors: Vec<Tensor>) {
        self.weights.extend(
            names
                .into_iter()
                .zip(tensors)
                .map(|(name, tensor)| NamedWeight { name, tensor }),
        );
    }

    /// A wrapper's inner layer: its config rewritten in place, and its weight names relative
    /// to the wrapper's scope.
    fn wrapped(
        &mut self,
        class: &str,
        source: &Value,
        config: &mut Map<String, Value>,
    ) -> Result<Result<Vec<String>, String>, String> {
        let inner: LayerSpec = serde_json::from_value(
            config
                .get("layer")
                .cloned()
                .ok_or("a wrapper without its `layer`")?,
        )
        .map_err(|e| format!("wrapped layer: {e}"))?;
        if inner.is_model() {
            return Ok(Err(format!(
                "a model inside {class} (tfjs-layers names its weights differently)"
            )));
        }
        if class == "Bidirectional"
            && !matches!(inner.class_name.as_str(), "LSTM" | "GRU" | "SimpleRNN")
        {
            return Ok(Err(format!("Bidirectional around a {}", inner.class_name)));
        }
        let inner_cfg = match classes::config(&inner.class_name, &inner.config, self.keras3) {
            Ok(c) => c,
            Err(why) => return Ok(Err(format!("its {} layer: {why}", inner.class_name))),
        };
        let names = classes::weight_names(&inner.class_name, &inner_cfg);
        let inner_name = inner.layer_name();
        config.insert(
            "layer".into(),
            json!({"class_name": inner.class_name, "config": inner_cfg}),
        );
        if class == "TimeDistributed" {
            return Ok(Ok(names.into_iter().map(String::from).collect()));
        }
        // tfjs clones the forward layer into the backward one (go_backwards flipped); Keras
        // may describe a backward layer of its own.
        if let Some(b) = source.get("backward_layer").and_then(|b| b.get("config")) {
            let fwd = &inner.config;
            for k in [
                "units",
                "activation",
                "recurrent_activation",
                "use_bias",
                "return_sequences",
            ] {
                if b.get(k) != fwd.get(k) {
                    return Ok(Err(format!(
                        "a backward layer whose `{k}` differs from the forward layer's"
                    )));
                }
            }
        }
        let both = ["forward", "backward"]
            .iter()
            .flat_map(|dir| {
                let inner_name = &inner_name;
                names.iter().map(move |n| format!("{dir}_{inner_name}/{n}"))
            })
            .collect();
        Ok(Ok(both))
    }
}
