//! TF.js reader: a folder holding `model.json`, or that file, as `tensorflowjs_converter` (and
//! mdeploy's own TF.js writer) write it.
//!
//! Graph models (`"format": "graph-model"`) hold TF's `GraphDef` in JSON (`graph.rs`), frozen:
//! every variable is a `Const` whose values are the weight of the same name in the shards
//! (`weights.rs`). The GraphDef goes through the SavedModel reader's graph import, so the TF ops
//! accepted are the ones it accepts; the `signature` block's keys name the inputs and outputs.
//! Layers models (`"format": "layers-model"`) hold a Keras model config and go through the
//! Keras reader's layer table (`layers.rs`); the opened source goes on with the graph, as the
//! Keras reader's does, for writers that keep the Keras topology.

mod layers;
mod weights;

use super::{Model, ReadOptions, Reader};
use crate::error::{failed, Result};
use crate::ir::mapped::map_file;
use crate::ir::Graph;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct TfjsReader;

/// `model.json` for `path` (the folder or the file itself).
fn model_json(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("model.json")
    } else {
        path.to_path_buf()
    }
}

/// Whether the JSON text looks like a TF.js model: an object with `modelTopology` and
/// `weightsManifest`, or with a TF.js `format`.
fn looks_like_tfjs(v: &Value) -> bool {
    let format = v.get("format").and_then(Value::as_str);
    (v.get("modelTopology").is_some() && v.get("weightsManifest").is_some())
        || matches!(format, Some("graph-model" | "layers-model"))
}

impl Reader for TfjsReader {
    fn name(&self) -> &'static str {
        "tfjs"
    }

    /// A JSON object shaped like a TF.js model; the first non-blank byte must be `{` so that
    /// other files are not parsed at all.
    fn probe(&self, path: &Path) -> bool {
        let file = model_json(path);
        if !file.is_file() {
            return false;
        }
        let Ok(bytes) = map_file(&file) else {
            return false;
        };
        let starts_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        starts_json && serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| looks_like_tfjs(&v))
    }

    fn read(&self, path: &Path, opts: &ReadOptions) -> Result<Graph> {
        self.read_model(path, opts).map(|m| m.graph)
    }

    fn read_model(&self, path: &Path, opts: &ReadOptions) -> Result<Model> {
        let file = model_json(path);
        let name = file.display().to_string();
        let in_file = |e: String| failed(format!("{name}: {e}"));
        let bytes = map_file(&file).map_err(failed)?;
        let model: Value = serde_json::from_slice(&bytes)
            .map_err(|e| in_file(format!("not a valid TF.js model.json ({e})")))?;
        if !model.is_object() {
            return Err(in_file("not a TF.js model.json (not a JSON object)".into()));
        }
        let format = model.get("format").and_then(Value::as_str);
        let topology = model
            .get("modelTopology")
            .ok_or_else(|| in_file("no modelTopology".into()))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let manifest = model
            .get("weightsManifest")
            .ok_or_else(|| in_file("no weightsManifest".into()))?;
        let (weights, order) = weights::load(dir, manifest).map_err(in_file)?;
        let is_layers =
            format == Some("layers-model") || (format.is_none() && topology.get("node").is_none());
        if is_layers {
            let src = layers::source(topology, &order, &weights).map_err(in_file)?;
            let graph = super::keras::build_graph(&src, &file, opts)?;
            return Ok(Model {
                graph,
                keras: Some(Arc::new(src)),
            });
        }
        let gd = crate::formats::tf_json::graph_def(topology, &weights).map_err(in_file)?;
        let sig = model
            .get("signature")
            .ok_or_else(|| in_file("graph model has no signature block (inputs/outputs)".into()))
            .and_then(|s| crate::formats::tf_json::signature(s).map_err(in_file))?;
        if sig.inputs.is_empty() || sig.outputs.is_empty() {
            return Err(in_file(
                "the signature names no inputs or no outputs".into(),
            ));
        }
        let graph = super::saved_model::import_frozen(&gd, &sig, opts, &name)?;
        Ok(Model { graph, keras: None })
    }
}
