//! `mdeploy quantize`: the convert pipeline with a quantization pass, and the quantization step
//! `convert --int8/--float16` shares with it (same pass, same accuracy report).

use super::convert::{self, ConvertArgs, Target};
use super::parse_input_shape;
use super::progress::Progress;
use crate::error::{Error, Result};
use crate::ir::{Graph, Shape};
use crate::passes::quantize::activations::ActivationStats;
use crate::passes::quantize::{self, Form, Mode, QuantizeOptions, WeightStats};
use crate::readers;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Element type of a fully integer model's inputs and outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantIo {
    /// float32 inputs and outputs (QUANTIZE/DEQUANTIZE at the boundary).
    #[default]
    Float,
    /// int8 inputs and outputs with the calibrated parameters.
    Int8,
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

fn parse_tolerance(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v >= 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a non-negative number")),
    }
}

pub fn run(a: QuantizeArgs, quiet: bool) -> Result<()> {
    let progress = Progress::new(quiet);
    let target = match a.target {
        Some(t) => t,
        None => {
            let format = readers::detect(&a.input)?.name();
            let t = match format {
                "tflite" => Target::Tflite,
                _ => Target::Onnx,
            };
            progress.line(&format!(
                "no --to given: writing {} ({})",
                convert::target_name(t),
                if format == convert::target_name(t) {
                    "the input's format"
                } else {
                    "mdeploy does not write the input's format"
                }
            ));
            t
        }
    };
    progress.finish();
    // Without -o: `net.onnx` → `net_int8.onnx` / `net_float16.onnx` (or .tflite) beside it.
    let output = a.output.or_else(|| {
        let stem = a.input.file_stem()?.to_string_lossy().into_owned();
        let tag = if a.int8 { "int8" } else { "float16" };
        let ext = convert::target_name(target);
        Some(a.input.with_file_name(format!("{stem}_{tag}.{ext}")))
    });
    let args = ConvertArgs {
        int8: a.int8,
        float16: a.float16,
        calibration: a.calibration,
        io: a.io,
        exclude: a.exclude,
        per_layer: a.per_layer,
        labels: a.labels,
        no_accuracy: a.no_accuracy,
        tolerance: a.tolerance,
        report: a.report,
        input_shapes: a.input_shapes,
        ..ConvertArgs::new(a.input, target, output)
    };
    convert::run(args, quiet)
}

/// The quantization a convert run asked for, if any.
/// The IR quantization `--int8`/`--float16` ask for, or `None`. TF.js needs none: its writer
/// stores the weights quantized in the manifest and the loader dequantizes them.
pub fn options(a: &ConvertArgs) -> Option<QuantizeOptions> {
    if a.target == Target::Tfjs {
        return None;
    }
    let mode = match (a.int8, a.float16) {
        (true, _) => Mode::Int8,
        (false, true) => Mode::Float16,
        _ => return None,
    };
    Some(QuantizeOptions {
        mode,
        exclude: a.exclude.clone(),
        form: match a.target {
            Target::Tflite => Form::Tflite,
            _ => Form::Qdq,
        },
    })
}

/// What quantization did, for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QuantReport {
    pub mode: Mode,
    pub full_integer: bool,
    pub io: QuantIo,
    pub weights: WeightStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activations: Option<ActivationStats>,
}

/// Quantizes a graph legalized for its writer: weights, then (with calibration samples)
/// activations. `--io int8` is applied later by [`finish_io`], after the accuracy report (which
/// feeds the source's float inputs to both models).
pub fn apply(
    g: &mut Graph,
    opts: &QuantizeOptions,
    calibration: Option<&std::path::Path>,
    io: QuantIo,
    progress: &Progress,
) -> Result<QuantReport> {
    // Batch norms after convolutions fold into their weights before those are quantized (the
    // TFLite legalization did this already; ONNX keeps them otherwise).
    crate::passes::fuse::fold_batch_norms(g);
    // Constant subgraphs (e.g. a transpose the layout pass put after a source model's own
    // dequantized weights) become constants, so they are quantized as weights.
    crate::passes::cleanup::fold_constants(g);
    g.remove_dead();
    let weights = quantize::quantize_weights(g, opts)
        .map_err(|e| Error::Failed(format!("quantization: {e}")))?;
    g.verify()
        .map_err(|e| Error::Failed(format!("quantization broke the graph: {e}")))?;
    let activations = match calibration {
        Some(path) if opts.mode == Mode::Int8 => {
            progress.step("calibrating");
            let batches = crate::accuracy::batches_of(g, crate::accuracy::load_samples(g, path)?)?;
            let s = quantize::activations::quantize_activations(g, opts, &batches)?;
            g.verify().map_err(|e| {
                Error::Failed(format!("activation quantization broke the graph: {e}"))
            })?;
            progress.line(&format!(
                "full integer: {} activations int8 from {} calibration batches, {} int8 ops, {} int32 biases, {} ops kept float",
                s.activations,
                s.calibration_batches,
                s.int8_nodes,
                s.int32_biases,
                s.float_nodes.len()
            ));
            if !s.unmeasured.is_empty() {
                progress.line(&format!(
                    "note: {} activations stay float: the evaluator could not measure their range ({})",
                    s.unmeasured.len(),
                    s.unmeasured.join(", ")
                ));
            }
            Some(s)
        }
        _ => None,
    };
    progress.line(&format!(
        "quantized {} weight tensors to {} ({} per channel): {} → {} bytes{}",
        weights.tensors,
        match opts.mode {
            Mode::Int8 => "int8",
            Mode::Float16 => "float16",
        },
        weights.per_channel,
        weights.bytes_before,
        weights.bytes_after,
        if weights.excluded_nodes.is_empty() {
            String::new()
        } else {
            format!("; {} nodes kept float", weights.excluded_nodes.len())
        }
    ));
    Ok(QuantReport {
        mode: opts.mode,
        full_integer: activations.is_some(),
        io,
        weights,
        activations,
    })
}

/// `--io int8` on a fully integer graph: int8 inputs and outputs.
pub fn finish_io(g: &mut Graph, report: &QuantReport, progress: &Progress) -> Result<()> {
    if report.full_integer && report.io == QuantIo::Int8 {
        let changed = quantize::activations::int8_io(g)?;
        g.verify()
            .map_err(|e| Error::Failed(format!("--io int8 broke the graph: {e}")))?;
        let all = g.inputs.len() + g.outputs.len();
        if changed < all {
            let float: Vec<&str> = g
                .inputs
                .iter()
                .chain(&g.outputs)
                .filter(|&&v| g.ty(v).dtype != crate::ir::DType::I8)
                .map(|&v| g.value(v).name.as_str())
                .collect();
            progress.line(&format!(
                "note: --io int8: {} stay float (the op next to them has no int8 form here)",
                float.join(", ")
            ));
        }
    }
    Ok(())
}

/// The accuracy report of a quantized graph against its source: on the calibration samples
/// when given, seeded random inputs otherwise (crate::accuracy).
pub fn accuracy(
    a: &ConvertArgs,
    source: &Graph,
    result: &Graph,
) -> Result<crate::accuracy::Report> {
    let opts = crate::accuracy::Options {
        calibration: a.calibration.clone(),
        labels: a.labels.clone(),
        per_layer: a.per_layer,
        seed: a.seed,
    };
    crate::accuracy::compare(source, result, &opts)
}
