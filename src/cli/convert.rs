//! `mdeploy convert`: read → passes → legalize → check → write → (verify).

use super::progress::Progress;
use super::quantize::{self as quant, QuantIo};
use super::{load_inputs, parse_input_file, parse_input_shape};
use crate::error::{Error, Result};
use crate::eval::{self, Comparison};
use crate::ir::Shape;
use crate::passes::{self, PassContext};
use crate::readers::{self, ReadOptions};
use crate::writers::onnx::{ExternalData, OnnxWriter, OPSETS};
use crate::writers::tfjs::{self, FolderOptions, TfjsFormat, WeightQuant};
use crate::writers::tflite::TfliteWriter;
use crate::writers::Writer;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Onnx,
    Tflite,
    /// A TF.js folder (model.json + weight shards).
    Tfjs,
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
    /// SavedModel signature to convert (default serving_default).
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

impl ConvertArgs {
    /// Arguments with every option at its default.
    pub fn new(input: PathBuf, target: Target, output: Option<PathBuf>) -> ConvertArgs {
        ConvertArgs {
            input,
            target,
            output,
            opset: None,
            external_data: false,
            io_layout: IoLayout::Nchw,
            tfjs_format: TfjsFormatArg::Auto,
            shard_size: None,
            quantize_uint16: false,
            verify: false,
            tolerance: None,
            inputs: vec![],
            input_shapes: vec![],
            signature: None,
            seed: 0,
            report: None,
            int8: false,
            float16: false,
            calibration: None,
            io: QuantIo::Float,
            exclude: vec![],
            per_layer: false,
            labels: None,
            no_accuracy: false,
        }
    }
}

pub fn target_name(t: Target) -> &'static str {
    match t {
        Target::Onnx => "onnx",
        Target::Tflite => "tflite",
        Target::Tfjs => "tfjs",
    }
}

fn parse_tolerance(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v >= 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a non-negative number")),
    }
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

#[derive(serde::Serialize)]
struct Report {
    input: String,
    format: String,
    target: String,
    outputs: Vec<String>,
    bytes: u64,
    nodes_in: usize,
    nodes_out: usize,
    passes: Vec<passes::PassStats>,
    verify: Vec<Comparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantization: Option<quant::QuantReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<crate::accuracy::Report>,
}

/// Where the output goes without `-o`.
pub fn default_output(input: &Path, target: Target) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let ext = match target {
        Target::Onnx => "onnx",
        Target::Tflite => "tflite",
        // A folder: `net.onnx` → `net_tfjs/`, `saved_model/` → `saved_model_tfjs/`.
        Target::Tfjs => return input.with_file_name(format!("{stem}_tfjs")),
    };
    let candidate = input.with_file_name(format!("{stem}.{ext}"));
    if candidate == input {
        input.with_file_name(format!("{stem}_converted.{ext}"))
    } else {
        candidate
    }
}

/// What `--verify` compares for a TFLite output: the graph exactly as serialized (after every
/// TFLite rewrite: layout, folding, lowering), run by tract through ONNX. tract-tflite is only
/// asked to decode the file: its TFLite kernels disagree with LiteRT on valid files (e.g. the
/// cnn_bn fixture), so its numbers are no reference. The conformance tier runs every fixture's
/// .tflite in LiteRT itself.
fn tflite_outputs(
    progress: &Progress,
    out: &Path,
    inputs: &[crate::ir::Tensor],
    io: IoLayout,
    g: &crate::ir::Graph,
) -> Result<Option<Vec<crate::ir::Tensor>>> {
    if io == IoLayout::Nhwc && g.inputs.iter().any(|&i| g.ty(i).rank() == 4) {
        progress.line("verification is not available for --io-layout nhwc outputs; skipped");
        return Ok(None);
    }
    if let eval::Decoded::NotChecked(why) = eval::decode_tflite_file(out)? {
        progress.line(&format!(
            "not checked: tract-tflite (the TFLite decoder used to re-read the file) {why}; \
             the graph as written is verified"
        ));
    }
    Ok(Some(eval::run(g, inputs)?))
}

/// The TF.js folder options from the flags; the TF.js-only flags are refused elsewhere.
fn tfjs_options(a: &ConvertArgs) -> Result<FolderOptions> {
    let tfjs_only = [
        (a.quantize_uint16, "--quantize-uint16"),
        (a.shard_size.is_some(), "--shard-size"),
        (a.tfjs_format != TfjsFormatArg::Auto, "--tfjs-format"),
    ];
    if a.target == Target::Tfjs && a.calibration.is_some() {
        return Err(Error::Usage(
            "--calibration: TF.js models keep float activations (their weights are quantized in \
             the manifest); full-integer int8 is for --to onnx and --to tflite"
                .into(),
        ));
    }
    if a.target != Target::Tfjs {
        if let Some((_, flag)) = tfjs_only.iter().find(|(set, _)| *set) {
            return Err(Error::Usage(format!(
                "{flag} applies to --to tfjs only (not yet to {:?} outputs)",
                a.target
            )));
        }
    }
    let quant = if a.int8 {
        WeightQuant::Uint8
    } else if a.float16 {
        WeightQuant::Float16
    } else if a.quantize_uint16 {
        WeightQuant::Uint16
    } else {
        WeightQuant::None
    };
    Ok(FolderOptions {
        shard_size: a.shard_size.map_or(Some(tfjs::DEFAULT_SHARD_SIZE), |s| s.0),
        quant,
    })
}

pub fn run(a: ConvertArgs, quiet: bool) -> Result<()> {
    let progress = Progress::new(quiet);
    let folder = tfjs_options(&a)?;
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| default_output(&a.input, a.target));
    if out.exists() && out.canonicalize().ok() == a.input.canonicalize().ok() {
        return Err(Error::Usage(format!(
            "{}: output would overwrite the input",
            out.display()
        )));
    }
    progress.step("reading");
    let reader = readers::detect(&a.input)?;
    let opts = ReadOptions {
        input_shapes: a.input_shapes.clone(),
        signature: a.signature.clone(),
    };
    let source = reader.read(&a.input, &opts)?;
    source.verify().map_err(|e| {
        Error::Failed(format!(
            "{}: reader produced an invalid graph: {e}",
            a.input.display()
        ))
    })?;
    let nodes_in = source.nodes.len();

    progress.step("transforming");
    let mut g = source.clone();
    let mut ctx = PassContext::default();
    // The clean-up and fusion passes run before every writer (what `mdeploy optimize` reports).
    passes::cleanup(&mut g, &mut ctx)?;
    // A TF.js layers model is written from the Keras file (nothing to verify through tract).
    let mut layers = false;
    let writer: Box<dyn Writer> = match a.target {
        Target::Onnx => Box::new(OnnxWriter {
            opset: a.opset,
            external: if a.external_data {
                ExternalData::Always
            } else {
                ExternalData::Auto
            },
        }),
        Target::Tflite => Box::new(TfliteWriter {
            nhwc_io: a.io_layout == IoLayout::Nhwc,
        }),
        Target::Tfjs => {
            let format = match a.tfjs_format {
                TfjsFormatArg::Auto => TfjsFormat::Auto,
                TfjsFormatArg::Layers => TfjsFormat::Layers,
                TfjsFormatArg::Graph => TfjsFormat::Graph,
            };
            if format == TfjsFormat::Layers && reader.name() != "keras" {
                return Err(Error::Usage(format!(
                    "--tfjs-format layers needs a Keras source; {} is {}",
                    a.input.display(),
                    reader.name()
                )));
            }
            let keras = reader.name() == "keras";
            let lacking = if keras && format != TfjsFormat::Graph {
                tfjs::layers::check(&a.input)?
            } else {
                vec![]
            };
            if format == TfjsFormat::Layers && !lacking.is_empty() {
                return Err(Error::Unsupported {
                    file: a.input.display().to_string(),
                    items: lacking,
                });
            }
            if keras && format != TfjsFormat::Graph && !lacking.is_empty() && !quiet {
                eprintln!(
                    "warning: tfjs-layers cannot hold this model, writing a graph model instead:"
                );
                for u in &lacking {
                    eprintln!("  {u}");
                }
            }
            layers = keras && format != TfjsFormat::Graph && lacking.is_empty();
            if layers {
                Box::new(tfjs::LayersWriter {
                    input: a.input.clone(),
                    folder,
                })
            } else {
                Box::new(tfjs::graph::GraphWriter {
                    folder,
                    generated_by: Some(reader.name().to_string()),
                })
            }
        }
    };
    writer.legalize_verified(&mut g)?;
    let quant_opts = quant::options(&a);
    if quant_opts.is_some() {
        // A model the writer refuses is refused before calibration and evaluation run.
        writer.ensure_writable(&g, &a.input)?;
    }
    let quantized = match &quant_opts {
        Some(q) => Some(quant::apply(
            &mut g,
            q,
            a.calibration.as_deref(),
            a.io,
            &progress,
        )?),
        None => None,
    };
    // Everything the writer cannot express is listed before any evaluation or writing.
    writer.ensure_writable(&g, &a.input)?;
    // A quantized output always gets the accuracy report (the quantized graph exactly as
    // written, against the source); --tolerance bounds it only when given.
    let accuracy = match &quantized {
        // The source's samples do not fit a model whose 4-D inputs were made NHWC.
        Some(_)
            if a.io_layout == IoLayout::Nhwc
                && g.inputs.iter().any(|&i| g.ty(i).rank() == 4)
                && !a.no_accuracy =>
        {
            if a.tolerance.is_some() {
                return Err(Error::Usage(
                    "--tolerance needs the accuracy report, which --io-layout nhwc outputs do not \
                     have (the source's inputs are channels-first)"
                        .into(),
                ));
            }
            progress.line("note: no accuracy report for --io-layout nhwc outputs");
            None
        }
        Some(_) if !a.no_accuracy => {
            progress.step("comparing accuracy");
            match quant::accuracy(&a, &source, &g) {
                Ok(r) => {
                    for line in r.lines() {
                        progress.line(&line);
                    }
                    Some(r)
                }
                // Without --tolerance the report is information: the output is still written.
                Err(e) if a.tolerance.is_none() => {
                    progress.line(&format!("note: no accuracy report: {e}"));
                    None
                }
                Err(e) => return Err(e),
            }
        }
        _ => None,
    };
    if let Some(q) = &quantized {
        quant::finish_io(&mut g, q, &progress)?;
        if q.full_integer {
            writer.ensure_writable(&g, &a.input)?;
        }
    }
    progress.step("writing");
    let written = writer.write(&g, &out)?;
    progress.line(&format!(
        "wrote {} ({} bytes, {} nodes) from {} ({} nodes)",
        out.display(),
        written.bytes,
        written.nodes,
        a.input.display(),
        nodes_in
    ));

    let mut comparisons = Vec::new();
    let mut failed = Vec::new();
    let tolerance = a.tolerance.unwrap_or(1e-4);
    if let (Some(t), Some(r)) = (a.tolerance, &accuracy) {
        for o in &r.outputs {
            if !o.error.shape_matches || o.error.max_rel > t {
                failed.push(o.error.name.clone());
            }
        }
    }
    if a.verify && quantized.is_none() {
        progress.step("verifying");
        let inputs = load_inputs(&source, &a.inputs, a.seed)?;
        let expected = eval::run(&source, &inputs)?;
        let got = match a.target {
            Target::Onnx => Some(eval::run_onnx_file(&out, &inputs)?),
            Target::Tflite => tflite_outputs(&progress, &out, &inputs, a.io_layout, &g)?,
            // The graph exactly as written (after the NHWC rewrites), run by tract: TF.js
            // itself runs in the conformance tier (Node).
            Target::Tfjs if layers => {
                progress.line("verification is not available for TF.js layers models; skipped");
                None
            }
            Target::Tfjs => Some(eval::run(&g, &inputs)?),
        };
        let skipped = got.is_none();
        let got = got.unwrap_or_default();
        if !skipped && got.len() != expected.len() {
            return Err(Error::Verification(format!(
                "output has {} results, source {}",
                got.len(),
                expected.len()
            )));
        }
        for (i, (g_out, e_out)) in got.iter().zip(&expected).enumerate() {
            let name = &source.value(source.outputs[i]).name;
            let c = eval::compare(name, g_out, e_out);
            let ok = c.shape_matches && c.max_rel <= tolerance;
            progress.line(&format!(
                "verify {name}: max_abs {:.3e}  max_rel {:.3e}  cosine {:.6}  {}",
                c.max_abs,
                c.max_rel,
                c.cosine,
                if ok { "ok" } else { "FAIL" }
            ));
            if !ok {
                failed.push(name.clone());
            }
            comparisons.push(c);
        }
    }
    progress.finish();
    if let Some(path) = &a.report {
        let r = Report {
            input: a.input.display().to_string(),
            format: reader.name().into(),
            target: writer.name().into(),
            outputs: written
                .files
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            bytes: written.bytes,
            nodes_in,
            nodes_out: written.nodes,
            passes: ctx.stats,
            verify: comparisons,
            quantization: quantized,
            accuracy,
        };
        super::accuracy::write_json(path, &r)?;
    }
    if !failed.is_empty() {
        return Err(Error::Verification(format!(
            "verification failed for {} (tolerance {:e}); the output was written to {}",
            failed.join(", "),
            tolerance,
            out.display()
        )));
    }
    Ok(())
}
