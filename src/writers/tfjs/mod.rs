//! TF.js writer: a folder with `model.json` and weight shards (`group1-shard{i}of{n}.bin`) that
//! `@tensorflow/tfjs` loads with `tf.loadLayersModel` (layers models, Keras sources) or
//! `tf.loadGraphModel` (graph models: a TF GraphDef in JSON).
//!
//! - `weights.rs`: the weights manifest, shards, quantization and the atomic folder write;
//!   [`write_folder`] is the one entry both model kinds use.
//! - `graph/`: the graph model (NHWC, TF op names the tfjs-converter executors run).
//! - `layers/` (Keras sources; owned by the Keras side): the layers model. It declares itself
//!   here with one `pub mod layers;` line and writes through [`write_folder`] with
//!   `format: "layers-model"` and its `modelTopology`.

pub mod graph;
pub mod layers;
pub mod weights;

pub use weights::{write_folder, FolderOptions, NamedWeight, WeightQuant, DEFAULT_SHARD_SIZE};

/// Which kind of TF.js model to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TfjsFormat {
    /// Layers model for Keras sources, graph model otherwise.
    #[default]
    Auto,
    Layers,
    Graph,
}
