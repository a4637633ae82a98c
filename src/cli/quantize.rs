//! `mdeploy quantize`: the flags of the library pipeline with its quantization stage on (the
//! same stage `convert --int8/--float16` switches on).

use super::convert::Target;
use super::{parse_input_shape, parse_tolerance};
use clap::{Args, ValueEnum};
use mdeploy::error::Result;
use mdeploy::ir::Shape;
use mdeploy::passes::quantize::Mode;
use mdeploy::pipeline::{self, Accuracy, Options};
use mdeploy::readers::ReadOptions;
use std::path::PathBuf;

/// Element type of a fully integer model's inputs and outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum QuantIo {
    /// float32 inputs and outputs (QUANTIZE/DEQUANTIZE at the boundary).
    #[default]
    Float,
    /// int8 inputs and outputs with the calibrated parameters.
    Int8,
}

impl From<QuantIo> for pipeline::QuantIo {
    fn from(io: QuantIo) -> pipeline::QuantIo {
        match io {
            QuantIo::Float => pipeline::QuantIo::Float,
            QuantIo::Int8 => pipeline::QuantIo::Int8,
        }
    }
}

#[derive(Args, Debug)]
#[command(
    about = "Quantize a model (int8 or float16) and report the accuracy change",
    after_help = "Examples:\n  mdeploy quantize net.onnx --int8 -o net_int8.onnx\n  mdeploy quantize model.keras --int8 --calibration samples.npy --to tflite --io int8\n  mdeploy quantize net.onnx --float16 --report r.json --tolerance 1e-2\n  mdeploy quantize net.onnx --int8 --exclude 'head/*' --per-layer\n\n\
Without -o the output goes beside the input: net.onnx → net_int8.onnx (net_float16.onnx).\n\
Without --calibration, --int8 quantizes weights only (dynamic range: int8 weights, float\n\
activations). With it, the model is fully integer: activation ranges come from running the\n\
float model on the samples. Without --to the output keeps the input's format when mdeploy\n\
writes it, ONNX otherwise.\n\n\
Exit codes: 0 success, 1 failure, 2 usage error, 3 accuracy past --tolerance, 4 unsupported model."
)]
pub struct QuantizeArgs {
    /// Model file or folder (format detected from content).
    pub input: PathBuf,
    /// int8 weights (and activations with --calibration).
    #[arg(long, required_unless_present = "float16", conflicts_with = "float16")]
    pub int8: bool,
    /// float16 weights, float32 inputs, outputs and arithmetic.
    #[arg(long)]
    pub float16: bool,
    /// Calibration samples: FILE.npy (one input), a folder of NAME.npy (one per input), or .npz.
    #[arg(long, requires = "int8")]
    pub calibration: Option<PathBuf>,
    /// Input/output element type of a fully integer model.
    #[arg(long, value_enum, default_value_t = QuantIo::Float, requires = "calibration")]
    pub io: QuantIo,
    /// Keep nodes whose name or op matches in float (`*` wildcards; repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Compare every intermediate value too, not only the outputs.
    #[arg(long)]
    pub per_layer: bool,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// With --calibration: class labels (.npy, one per sample) for top-1 accuracy.
    #[arg(long, requires = "calibration")]
    pub labels: Option<PathBuf>,
    /// Skip the accuracy report (it runs both models through tract).
    #[arg(long, conflicts_with_all = ["per_layer", "labels", "tolerance"])]
    pub no_accuracy: bool,
    /// Largest max-relative output error (max|a-b| / max|ref|) accepted; past it, exit 3.
    #[arg(long, value_parser = parse_tolerance)]
    pub tolerance: Option<f64>,
    /// Output path.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output format (default: the input's, when mdeploy writes it; ONNX otherwise).
    #[arg(long = "to", value_enum)]
    pub target: Option<Target>,
    /// Override an input's shape, as NAME:1x224x224x3 (repeatable).
    #[arg(long = "input-shape", value_parser = parse_input_shape)]
    pub input_shapes: Vec<(String, Shape)>,
}

/// The pipeline's quantization stage from the flags `quantize` and `convert` share.
pub fn quantize_options(
    int8: bool,
    float16: bool,
    exclude: &[String],
    calibration: Option<&PathBuf>,
    io: QuantIo,
) -> Option<pipeline::Quantize> {
    let mode = match (int8, float16) {
        (true, _) => Mode::Int8,
        (false, true) => Mode::Float16,
        _ => return None,
    };
    Some(pipeline::Quantize {
        mode,
        exclude: exclude.to_vec(),
        calibration: calibration.cloned(),
        io: io.into(),
    })
}

pub fn run(a: QuantizeArgs, quiet: bool) -> Result<()> {
    let opts = Options {
        input: a.input,
        output: a.output,
        target: a.target.map(Into::into),
        job: pipeline::Job::Quantize,
        read: ReadOptions {
            input_shapes: a.input_shapes,
            signature: None,
        },
        quantize: quantize_options(a.int8, a.float16, &a.exclude, a.calibration.as_ref(), a.io),
        accuracy: (!a.no_accuracy).then_some(Accuracy {
            options: mdeploy::accuracy::Options {
                calibration: a.calibration,
                labels: a.labels,
                per_layer: a.per_layer,
                seed: 0,
            },
            tolerance: a.tolerance,
            only_if_quantized: true,
        }),
        report: a.report,
        ..Options::default()
    };
    super::run_pipeline(&opts, quiet)
}
