//! `mdeploy convert`: the flags of the library pipeline ([`mdeploy::pipeline`]), which does the
//! work.

use super::quantize::QuantIo;
use super::{parse_input_file, parse_input_shape, parse_tolerance};
use clap::{Args, ValueEnum};
use mdeploy::error::{Error, Result};
use mdeploy::ir::Shape;
use mdeploy::pipeline::{self, Accuracy, Options, Verify};
use mdeploy::readers::ReadOptions;
use mdeploy::writers::onnx::OPSETS;
use mdeploy::writers::tfjs::{TfjsFormat, WeightQuant};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Onnx,
    Tflite,
    /// A TF.js folder (model.json + weight shards).
    Tfjs,
    /// A SavedModel folder (saved_model.pb + variables/) for TF Serving.
    #[value(name = "saved_model", alias = "saved-model")]
    SavedModel,
}

impl From<Target> for pipeline::Target {
    fn from(t: Target) -> pipeline::Target {
        match t {
            Target::Onnx => pipeline::Target::Onnx,
            Target::Tflite => pipeline::Target::Tflite,
            Target::Tfjs => pipeline::Target::Tfjs,
            Target::SavedModel => pipeline::Target::SavedModel,
        }
    }
}

/// Which TF.js model kind to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum TfjsFormatArg {
    /// A layers model for Keras sources, a graph model otherwise.
    #[default]
    Auto,
    /// A layers model (Keras sources only; fails naming what tfjs-layers lacks).
    Layers,
    /// A graph model (a TF GraphDef in JSON).
    Graph,
}

/// `--shard-size`: bytes per weight shard, or `none` for one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSize(pub Option<u64>);

fn parse_shard_size(s: &str) -> std::result::Result<ShardSize, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(ShardSize(None));
    }
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(ShardSize(Some(n))),
        _ => Err(format!("'{s}' is not a positive number of bytes or 'none'")),
    }
}

/// Layout of a TFLite model's 4-D inputs and outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum IoLayout {
    /// Keep the source's layout (ONNX: NCHW), with transposes only at the boundary.
    #[default]
    Nchw,
    /// Channels-last inputs and outputs: no boundary transposes.
    Nhwc,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("quantized").args(["int8", "float16"]).multiple(false)))]
#[command(
    about = "Convert a model to another format",
    after_help = "Examples:\n  mdeploy convert net.onnx --to onnx -o out.onnx --verify\n  mdeploy convert net.onnx --to onnx --opset 13 --input-shape input:1x3x224x224\n  mdeploy convert net.onnx --to onnx --verify --input input=sample.npy --tolerance 1e-5 --report r.json\n  mdeploy convert model.keras --to tfjs --int8\n  mdeploy convert saved_model/ --to tfjs -o web_model --shard-size none\n\n\
Without -o the output goes next to the input (net.onnx → net_converted.onnx for ONNX → ONNX, net.onnx → net_tfjs/ for TF.js)."
)]
pub struct ConvertArgs {
    /// Model file or folder (format detected from content).
    pub input: PathBuf,
    /// Output format.
    #[arg(long = "to", value_enum)]
    pub target: Target,
    /// Output path.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// ONNX opset to write (13–21); default 17, or later when the model needs it.
    #[arg(long, value_parser = parse_opset)]
    pub opset: Option<i64>,
    /// Store ONNX weights in a `.data` file beside the model (automatic past 2 GiB).
    #[arg(long)]
    pub external_data: bool,
    /// TFLite: layout of 4-D channels-first inputs and outputs (nchw keeps the source's).
    #[arg(long, value_enum, default_value_t = IoLayout::Nchw)]
    pub io_layout: IoLayout,
    /// TF.js: layers model (Keras sources), graph model, or auto (layers for Keras).
    #[arg(long, value_enum, default_value_t = TfjsFormatArg::Auto)]
    pub tfjs_format: TfjsFormatArg,
    /// TF.js: bytes per weight shard (default 4194304), or `none` for a single shard.
    #[arg(long, value_parser = parse_shard_size)]
    pub shard_size: Option<ShardSize>,
    /// TF.js: store float weights as uint16 (affine per tensor), dequantized when loaded.
    #[arg(long, conflicts_with_all = ["int8", "float16"])]
    pub quantize_uint16: bool,
    /// Run source and output on the same inputs and compare them.
    #[arg(long)]
    pub verify: bool,
    /// Largest max-relative error (max|a-b| / max|ref|) accepted: by --verify (default 1e-4),
    /// and by the accuracy report of --int8/--float16 when given (past it: exit 3).
    #[arg(long, value_parser = parse_tolerance)]
    pub tolerance: Option<f64>,
    /// Input data for --verify, as NAME=FILE.npy (repeatable); others get seeded random data.
    #[arg(long = "input", value_parser = parse_input_file)]
    pub inputs: Vec<(String, PathBuf)>,
    /// Override an input's shape, as NAME:1x224x224x3 (repeatable).
    #[arg(long = "input-shape", value_parser = parse_input_shape)]
    pub input_shapes: Vec<(String, Shape)>,
    /// SavedModel or TFLite signature to convert (default serving_default).
    #[arg(long)]
    pub signature: Option<String>,
    /// Seed for the random --verify inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a JSON report of the conversion here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Quantize weights to int8 (see `mdeploy quantize --help`); TF.js stores them as uint8
    /// affine per tensor, dequantized by the loader.
    #[arg(long, conflicts_with = "float16")]
    pub int8: bool,
    /// Store weights as float16 (float32 inputs, outputs and arithmetic).
    #[arg(long)]
    pub float16: bool,
    /// With --int8: calibration samples for a fully integer model (FILE.npy, folder, .npz).
    #[arg(long, requires = "int8")]
    pub calibration: Option<PathBuf>,
    /// With --calibration: element type of the model's inputs and outputs.
    #[arg(long, value_enum, default_value_t = QuantIo::Float, requires = "calibration")]
    pub io: QuantIo,
    /// With --int8/--float16: keep nodes whose name or op matches in float (repeatable).
    #[arg(long, requires = "quantized")]
    pub exclude: Vec<String>,
    /// With --int8/--float16: compare every intermediate value in the accuracy report.
    #[arg(long, requires = "quantized")]
    pub per_layer: bool,
    /// With --calibration: class labels (.npy, one per sample) for top-1 accuracy.
    #[arg(long, requires = "calibration")]
    pub labels: Option<PathBuf>,
    /// With --int8/--float16: skip the accuracy report (it runs both models through tract).
    #[arg(long, requires = "quantized", conflicts_with_all = ["per_layer", "labels", "tolerance"])]
    pub no_accuracy: bool,
}

fn parse_opset(s: &str) -> std::result::Result<i64, String> {
    let v: i64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !OPSETS.contains(&v) {
        return Err(format!(
            "opset {v} is outside {}–{}",
            OPSETS.start(),
            OPSETS.end()
        ));
    }
    Ok(v)
}

/// Flags that only mean something for one target are refused for the others.
fn refuse_foreign_flags(a: &ConvertArgs) -> Result<()> {
    let tfjs_only = [
        (a.quantize_uint16, "--quantize-uint16"),
        (a.shard_size.is_some(), "--shard-size"),
        (a.tfjs_format != TfjsFormatArg::Auto, "--tfjs-format"),
    ];
    if a.target != Target::Tfjs {
        if let Some((_, flag)) = tfjs_only.iter().find(|(set, _)| *set) {
            return Err(Error::Usage(format!(
                "{flag} applies to --to tfjs only (not yet to {:?} outputs)",
                a.target
            )));
        }
    }
    Ok(())
}

/// The pipeline options of a `convert` (and, through it, `quantize`) command line.
pub fn options(a: &ConvertArgs) -> Result<Options> {
    refuse_foreign_flags(a)?;
    let quantize = super::quantize::quantize_options(
        a.int8,
        a.float16,
        &a.exclude,
        a.calibration.as_ref(),
        a.io,
    );
    let accuracy = (quantize.is_some() && !a.no_accuracy).then(|| Accuracy {
        options: mdeploy::accuracy::Options {
            calibration: a.calibration.clone(),
            labels: a.labels.clone(),
            per_layer: a.per_layer,
            seed: a.seed,
        },
        tolerance: a.tolerance,
        only_if_quantized: true,
    });
    Ok(Options {
        input: a.input.clone(),
        output: a.output.clone(),
        target: Some(a.target.into()),
        job: pipeline::Job::Convert,
        read: ReadOptions {
            input_shapes: a.input_shapes.clone(),
            signature: a.signature.clone(),
        },
        onnx: pipeline::OnnxOptions {
            opset: a.opset,
            external_data: a.external_data,
        },
        tflite: pipeline::TfliteOptions {
            nhwc_io: a.io_layout == IoLayout::Nhwc,
        },
        tfjs: pipeline::TfjsOptions {
            format: match a.tfjs_format {
                TfjsFormatArg::Auto => TfjsFormat::Auto,
                TfjsFormatArg::Layers => TfjsFormat::Layers,
                TfjsFormatArg::Graph => TfjsFormat::Graph,
            },
            shard_size: a
                .shard_size
                .map_or(Some(mdeploy::writers::tfjs::DEFAULT_SHARD_SIZE), |s| s.0),
            weights: if a.quantize_uint16 {
                WeightQuant::Uint16
            } else {
                WeightQuant::None
            },
        },
        weights: Default::default(),
        quantize,
        accuracy,
        verify: a.verify.then(|| Verify {
            inputs: a.inputs.clone(),
            seed: a.seed,
            tolerance: a.tolerance.unwrap_or(1e-4),
        }),
        report: a.report.clone(),
    })
}

pub fn run(a: ConvertArgs, quiet: bool) -> Result<()> {
    let opts = options(&a)?;
    super::run_pipeline(&opts, quiet)
}
