//! TF.js writer: a folder with `model.json` and weight shards (`group1-shard{i}of{n}.bin`) that
//! `@tensorflow/tfjs` loads with `tf.loadLayersModel` (layers models, Keras sources) or
//! `tf.loadGraphModel` (graph models: a TF GraphDef in JSON).
//!
//! - `weights.rs`: the weights manifest, shards, quantization and the atomic folder write;
//!   [`write_folder`] is the one entry both model kinds use.
//! - `graph/`: the graph model (NHWC, TF op names the tfjs-converter executors run).
//! - `layers/`: the layers model, translated from the Keras source as the reader opened it
//!   (`readers::Model::keras`); it writes through [`write_folder`] with
//!   `format: "layers-model"` and its `modelTopology`. [`LayersWriter`] puts it behind the
//!   [`Writer`] trait for `convert`, which picks it for Keras sources unless `layers::check`
//!   lists layers tfjs-layers lacks (then a graph model, with a warning).

pub mod graph;
pub mod layers;
pub mod weights;

pub use weights::{
    write_folder, FolderOptions, NamedWeight, WeightQuant, DEFAULT_SHARD_SIZE,
    SMALL_WEIGHT_ELEMENTS,
};

use crate::error::{Result, Unsupported};
use crate::formats::keras::KerasSource;
use crate::ir::Graph;
use crate::writers::{WriteReport, Writer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The layers writer behind the [`Writer`] trait. A layers model is the Keras topology, so it
/// is written from the opened Keras source; the graph handed to [`Writer`] is not used (no
/// legalization).
pub struct LayersWriter {
    pub source: Arc<KerasSource>,
    /// The graph the Keras reader built from `source` (layers' output shapes).
    pub shapes: Graph,
    /// The file `source` was read from (for messages).
    pub file: PathBuf,
    pub folder: FolderOptions,
}

impl Writer for LayersWriter {
    fn name(&self) -> &'static str {
        "tfjs"
    }
    fn legalize(&self, _g: &mut Graph) -> Result<()> {
        Ok(())
    }
    fn check(&self, _g: &Graph) -> Vec<Unsupported> {
        layers::check(&self.source, &self.shapes, &self.file)
    }
    fn write(&self, _g: &Graph, out: &Path) -> Result<WriteReport> {
        layers::write(&self.source, &self.shapes, &self.file, out, &self.folder)
    }
}

/// Which kind of TF.js model to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TfjsFormat {
    /// Layers model for Keras sources, graph model otherwise.
    #[default]
    Auto,
    Layers,
    Graph,
}
