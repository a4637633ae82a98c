//! Keras reader: builds the IR from a Keras `.h5` or `.keras` file, opened and parsed by
//! [`crate::formats::keras`] (shared with the TF.js layers writer, which keeps the Keras
//! topology instead). [`KerasReader::read_model`] hands the opened source on with the graph so
//! that a conversion parses the file once.
//!
//! Keras is channels-last: spatial ops carry `Layout::Nhwc` and `KernelLayout::Hwio` and no
//! transposes are inserted (the writers' layout pass moves them to the boundaries).

mod build;
mod layers;

use super::{Model, ReadOptions, Reader};
use crate::error::{failed, Error, Result};
use crate::formats::keras::{self as format, config::ModelConfig, read_source, KerasSource};
use crate::ir::Graph;
use build::Builder;
use std::path::Path;
use std::sync::Arc;

pub struct KerasReader;

impl Reader for KerasReader {
    fn name(&self) -> &'static str {
        "keras"
    }

    fn probe(&self, path: &Path) -> bool {
        format::probe(path)
    }

    fn read(&self, path: &Path, opts: &ReadOptions) -> Result<Graph> {
        self.read_model(path, opts).map(|m| m.graph)
    }

    /// Opens the file once and builds the graph from it; the source goes with the graph.
    fn read_model(&self, path: &Path, opts: &ReadOptions) -> Result<Model> {
        let source = read_source(path)?;
        let graph = build_graph(&source, path, opts)?;
        Ok(Model {
            graph,
            keras: Some(Arc::new(source)),
        })
    }
}

/// The IR of an opened Keras file. `path` is the file `src` was read from (for messages).
pub fn build_graph(src: &KerasSource, path: &Path, opts: &ReadOptions) -> Result<Graph> {
    let file = path.display().to_string();
    let in_file = |e: String| failed(format!("{file}: {e}"));
    let spec = &src.model;
    let model: ModelConfig = serde_json::from_value(spec.config.clone())
        .map_err(|e| failed(format!("{file}: unexpected model config ({e})")))?;
    let mut b = Builder::new(src.keras3);
    b.input_shapes = opts.input_shapes.clone();
    let outs = build::build_model(&mut b, &spec.class_name, &model, &src.weights, "", None)
        .map_err(|e| {
            if e.starts_with("input '") && e.contains("override") {
                Error::Usage(e)
            } else {
                in_file(e)
            }
        })?;
    if !b.unsupported.is_empty() {
        return Err(Error::Unsupported {
            file,
            items: b.unsupported,
        });
    }
    build::set_outputs(&mut b, outs).map_err(in_file)?;
    let mut g = b.g;
    g.source_parameters = Some(b.parameters);
    g.remove_dead();
    Ok(g)
}
