//! `mdeploy convert`: read → passes → legalize → check → write → (verify).

use super::progress::Progress;
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
    /// TF.js: store float weights as uint8 (affine per tensor), dequantized when loaded.
    #[arg(long, conflicts_with_all = ["float16", "quantize_uint16"])]
    pub int8: bool,
    /// TF.js: store float weights as float16, widened when loaded.
    #[arg(long, conflicts_with = "quantize_uint16")]
    pub float16: bool,
    /// TF.js: store float weights as uint16 (affine per tensor), dequantized when loaded.
    #[arg(long)]
    pub quantize_uint16: bool,
    /// Run source and output on the same inputs and compare them.
    #[arg(long)]
    pub verify: bool,
    /// Largest max-relative error (max|a-b| / max|ref|) --verify accepts.
    #[arg(long, default_value_t = 1e-4, value_parser = parse_tolerance)]
    pub tolerance: f64,
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
    if let Err(e) = eval::decode_tflite_file(out) {
        progress.line(&format!(
            "note: tract-tflite cannot decode the file ({e}); LiteRT may still load it"
        ));
    }
    Ok(Some(eval::run(g, inputs)?))
}

/// The TF.js folder options from the flags; the TF.js-only flags are refused elsewhere.
fn tfjs_options(a: &ConvertArgs) -> Result<FolderOptions> {
    let tfjs_only = [
        (a.int8, "--int8"),
        (a.float16, "--float16"),
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
    passes::run_to_fixed_point(&mut g, &[&passes::DeadCode], &mut ctx, 4)?;
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
    writer.legalize(&mut g)?;
    g.verify().map_err(|e| {
        Error::Failed(format!(
            "legalizing for {} broke the graph: {e}",
            writer.name()
        ))
    })?;
    let problems = writer.check(&g);
    if !problems.is_empty() {
        return Err(Error::Unsupported {
            file: a.input.display().to_string(),
            items: problems,
        });
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
    if a.verify {
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
            let ok = c.shape_matches && c.max_rel <= a.tolerance;
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
        };
        let json = serde_json::to_vec_pretty(&r).map_err(|e| Error::Failed(e.to_string()))?;
        let mut f = crate::writers::AtomicFile::create(path)?;
        std::io::Write::write_all(f.writer(), &json).map_err(crate::writers::io_err(path))?;
        f.commit()?;
    }
    if !failed.is_empty() {
        return Err(Error::Verification(format!(
            "verification failed for {} (tolerance {:e}); the output was written to {}",
            failed.join(", "),
            a.tolerance,
            out.display()
        )));
    }
    Ok(())
}
