//! Readers turn a model file or folder into a typed [`Graph`]. Each recognises its format from
//! content (never from the extension alone).

pub mod builder;
pub mod keras;
pub mod onnx;
pub mod saved_model;
pub mod tf_common;
pub mod tfjs;
pub mod tflite;

use crate::error::{failed, Error, Result};
use crate::formats::keras::KerasSource;
use crate::ir::{Graph, Shape};
use std::path::Path;
use std::sync::Arc;

/// Options every reader understands.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Overrides of input shapes by input name.
    pub input_shapes: Vec<(String, Shape)>,
    /// The signature to read from a SavedModel (default `serving_default`).
    pub signature: Option<String>,
}

/// Parses `name:1x224x224x3` (a dimension may be a symbol such as `batch`).
pub fn parse_input_shape(s: &str) -> std::result::Result<(String, Shape), String> {
    let (name, dims) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}': expected NAME:DIMxDIM…"))?;
    let shape = dims
        .split(['x', ','])
        .filter(|d| !d.is_empty())
        .map(|d| match d.parse::<u64>() {
            Ok(n) => crate::ir::Dim::Fixed(n),
            Err(_) => crate::ir::Dim::Sym(d.to_string()),
        })
        .collect();
    Ok((name.to_string(), shape))
}

/// What a reader read: the graph, and the opened source when a writer can use it as it is.
pub struct Model {
    pub graph: Graph,
    /// The Keras file as opened (config and weights), for writers that keep the Keras
    /// topology (TF.js layers), so that they need not open it again; `None` for other formats.
    pub keras: Option<Arc<KerasSource>>,
}

pub trait Reader {
    /// Short format name (`onnx`, `keras`, `saved_model`).
    fn name(&self) -> &'static str;
    /// Whether `path` holds this format, judged from its content.
    fn probe(&self, path: &Path) -> bool;
    fn read(&self, path: &Path, opts: &ReadOptions) -> Result<Graph>;
    /// The graph and whatever of the opened source writers can use (see [`Model`]).
    fn read_model(&self, path: &Path, opts: &ReadOptions) -> Result<Model> {
        Ok(Model {
            graph: self.read(path, opts)?,
            keras: None,
        })
    }
}

/// Every reader, in probing order.
pub fn all() -> Vec<Box<dyn Reader>> {
    vec![
        Box::new(onnx::OnnxReader),
        Box::new(saved_model::SavedModelReader),
        Box::new(keras::KerasReader),
        Box::new(tflite::TfliteReader),
        Box::new(tfjs::TfjsReader),
    ]
}

/// Finds the reader for `path` or explains why none fits.
pub fn detect(path: &Path) -> Result<Box<dyn Reader>> {
    if !path.exists() {
        return Err(failed(format!(
            "{}: no such file or folder",
            path.display()
        )));
    }
    let readers = all();
    let names: Vec<&str> = readers.iter().map(|r| r.name()).collect();
    if let Some(r) = readers.into_iter().find(|r| r.probe(path)) {
        return Ok(r);
    }
    let what = if path.is_dir() {
        "folder holds no model (a SavedModel folder needs saved_model.pb, a TF.js one model.json)"
    } else {
        "file is not a model"
    };
    Err(failed(format!(
        "{}: this {what} in a format mdeploy reads (formats: {})",
        path.display(),
        names.join(", ")
    )))
}

/// Reads a model of any supported format, verifying the graph it makes.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Graph> {
    let graph = detect(path)?.read(path, opts)?;
    verified(graph, path)
}

/// Like [`read`], keeping the opened source for writers that use it (see [`Model`]).
pub fn read_model(path: &Path, opts: &ReadOptions) -> Result<Model> {
    let model = detect(path)?.read_model(path, opts)?;
    Ok(Model {
        graph: verified(model.graph, path)?,
        keras: model.keras,
    })
}

fn verified(graph: Graph, path: &Path) -> Result<Graph> {
    graph.verify().map_err(|e| {
        Error::Failed(format!(
            "{}: reader produced an invalid graph: {e}",
            path.display()
        ))
    })?;
    Ok(graph)
}
