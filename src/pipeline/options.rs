//! What a pipeline run is asked to do. One [`Options`] describes a `convert`, a `quantize` and
//! an `optimize` alike: they are the same pipeline with other stages switched on.

use crate::passes::cluster::ClusterOptions;
use crate::passes::prune::Scope;
use crate::passes::quantize::Mode;
use crate::readers::ReadOptions;
use crate::writers::tfjs::{TfjsFormat, WeightQuant, DEFAULT_SHARD_SIZE};
use std::path::PathBuf;

/// The format written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Onnx,
    Tflite,
    /// A TF.js folder (model.json + weight shards).
    Tfjs,
    /// A SavedModel folder (saved_model.pb + variables/), as TF Serving loads it.
    SavedModel,
}

impl Target {
    /// Whether the output is a folder (TF.js, SavedModel) rather than one file.
    pub fn is_folder(self) -> bool {
        match self {
            Target::Onnx | Target::Tflite => false,
            Target::Tfjs | Target::SavedModel => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Onnx => "onnx",
            Target::Tflite => "tflite",
            Target::Tfjs => "tfjs",
            Target::SavedModel => "saved_model",
        }
    }
}

/// Which command's conventions a run follows: where the output goes without an explicit path
/// and which report it writes. The stages themselves come from the other options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Job {
    /// `net.onnx` → `net.tflite` (`net_converted.onnx` for the same format); the convert report.
    #[default]
    Convert,
    /// `net.onnx` → `net_int8.onnx` / `net_float16.onnx`; the convert report.
    Quantize,
    /// `net.onnx` → `net_optimized.onnx`; the optimize report (op counts and gzip sizes).
    Optimize,
}

/// Element type of a fully integer model's inputs and outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantIo {
    /// float32 inputs and outputs (QUANTIZE/DEQUANTIZE at the boundary).
    #[default]
    Float,
    /// int8 inputs and outputs with the calibrated parameters.
    Int8,
}

/// Quantization of the IR (ONNX and TFLite outputs; TF.js stores its weights quantized in the
/// manifest instead, see [`TfjsOptions::weights`]).
#[derive(Clone, Debug)]
pub struct Quantize {
    pub mode: Mode,
    /// Node names or op names (`*` wildcards) kept float.
    pub exclude: Vec<String>,
    /// Samples whose measured activation ranges make an int8 model fully integer.
    pub calibration: Option<PathBuf>,
    /// Inputs and outputs of a fully integer model.
    pub io: QuantIo,
}

/// Weight transformations of `optimize`, after the clean-up passes.
#[derive(Clone, Debug, Default)]
pub struct WeightOptions {
    /// Magnitude pruning to this sparsity.
    pub prune: Option<(f64, Scope)>,
    /// k-means clustering of each kernel (`preserve_zeros` is set when pruning too).
    pub cluster: Option<ClusterOptions>,
}

/// The accuracy report: the graph as written against the source, on sample inputs.
#[derive(Clone, Debug, Default)]
pub struct Accuracy {
    pub options: crate::accuracy::Options,
    /// Largest max-relative output error accepted (see [`super::Report::check_tolerance`]).
    pub tolerance: Option<f64>,
    /// Only when the IR was quantized (`convert --int8`: TF.js outputs keep float IR, so there
    /// is nothing to measure). Otherwise always (`optimize`).
    pub only_if_quantized: bool,
}

/// `--verify`: the source and the written output run on the same inputs.
#[derive(Clone, Debug)]
pub struct Verify {
    /// Input files by input name; the others get seeded random data.
    pub inputs: Vec<(String, PathBuf)>,
    pub seed: u64,
    /// Largest max-relative error accepted.
    pub tolerance: f64,
}

impl Default for Verify {
    fn default() -> Verify {
        Verify {
            inputs: vec![],
            seed: 0,
            tolerance: 1e-4,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct OnnxOptions {
    /// Opset to write; `None`: 17, or later when the model needs it.
    pub opset: Option<i64>,
    /// Weights in a `.data` file beside the model (automatic past 2 GiB).
    pub external_data: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct TfliteOptions {
    /// Channels-last 4-D inputs and outputs (no boundary transposes).
    pub nhwc_io: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct TfjsOptions {
    pub format: TfjsFormat,
    /// Bytes per weight shard; `None`: one shard.
    pub shard_size: Option<u64>,
    /// How the manifest stores float weights.
    pub weights: WeightQuant,
}

impl Default for TfjsOptions {
    fn default() -> TfjsOptions {
        TfjsOptions {
            format: TfjsFormat::Auto,
            shard_size: Some(DEFAULT_SHARD_SIZE),
            weights: WeightQuant::None,
        }
    }
}

/// Everything one run does.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub input: PathBuf,
    /// `None`: beside the input, named by [`Job`].
    pub output: Option<PathBuf>,
    /// `None`: the input's format when mdeploy writes it, ONNX otherwise.
    pub target: Option<Target>,
    pub job: Job,
    pub read: ReadOptions,
    pub onnx: OnnxOptions,
    pub tflite: TfliteOptions,
    pub tfjs: TfjsOptions,
    pub weights: WeightOptions,
    pub quantize: Option<Quantize>,
    pub accuracy: Option<Accuracy>,
    pub verify: Option<Verify>,
    /// Write the JSON report here.
    pub report: Option<PathBuf>,
}

impl Options {
    /// A run converting `input` to `target` with every stage at its default.
    pub fn new(input: impl Into<PathBuf>, target: Target) -> Options {
        Options {
            input: input.into(),
            target: Some(target),
            ..Options::default()
        }
    }
}
