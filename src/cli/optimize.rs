//! `mdeploy optimize`: read → clean-up and fusion passes → [prune] → [cluster] → accuracy
//! report → legalize → write, with node counts per op before and after, achieved sparsity,
//! distinct values and gzip sizes.

use super::accuracy::{write_json, AccuracyArgs};
use super::convert::{ConvertArgs, Target};
use super::parse_input_shape;
use super::progress::Progress;
use super::quantize::{self as quant, QuantIo, QuantReport};
use crate::accuracy::Report as AccuracyReport;
use crate::error::{Error, Result};
use crate::ir::{Graph, Shape};
use crate::passes::cluster::{self, ClusterOptions, ClusterReport};
use crate::passes::prune::{self, PruneReport, Scope};
use crate::passes::{self, PassContext, PassStats};
use crate::readers::{self, ReadOptions};
use crate::writers::onnx::OnnxWriter;
use crate::writers::tflite::TfliteWriter;
use crate::writers::Writer;
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PruneScope {
    /// One magnitude threshold over all kernels.
    #[default]
    Global,
    /// Every kernel pruned to the target on its own.
    Layer,
}

#[derive(Args, Debug)]
#[command(
    about = "Fuse and clean up a model, optionally prune and cluster its weights, and report what changed",
    after_help = "Examples:\n  mdeploy optimize net.onnx --fuse\n  mdeploy optimize model.keras --prune 0.5 --to tflite --calibration x.npy --labels y.npy\n  mdeploy optimize net.onnx --cluster 16 --report r.json --tolerance 0.05\n  mdeploy optimize net.onnx --cluster 16 --int8 --to tflite\n\n\
The clean-up and fusion passes (constant folding, identity and dead-code removal, batch-norm\n\
folding, conv bias and pad fusion, transpose sinking) always run; --fuse asks for only them.\n\
Pruning and clustering change kernels of at least 1024 elements (convolution, dense, embedding,\n\
recurrent); biases and small tensors are left alone. With both, clustering keeps pruned zeros.\n\
--int8/--float16 then quantize as `mdeploy quantize` does (weights only).\n\
Without -o the output goes next to the input as NAME_optimized.EXT; without --to it keeps the\n\
input's format when mdeploy writes it, ONNX otherwise.\n\n\
Exit codes: 0 success, 1 failure, 2 usage error, 3 accuracy past --tolerance, 4 unsupported model."
)]
pub struct OptimizeArgs {
    /// Model file or folder (format detected from content).
    pub input: PathBuf,
    /// Output path.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output format (default: the input's when mdeploy writes it, ONNX otherwise).
    #[arg(long = "to", value_enum)]
    pub target: Option<Target>,
    /// Only the fusion and clean-up passes (they always run).
    #[arg(long, conflicts_with_all = ["prune", "cluster", "int8", "float16"])]
    pub fuse: bool,
    /// Magnitude-prune kernels to this sparsity (fraction of zeros, 0 ≤ F < 1).
    #[arg(long, value_name = "F", value_parser = parse_sparsity)]
    pub prune: Option<f64>,
    /// One threshold over all kernels, or each kernel to the target on its own.
    #[arg(long, value_enum, default_value_t = PruneScope::Global, requires = "prune")]
    pub prune_scope: PruneScope,
    /// Cluster each kernel's weights into at most K values (k-means++, fixed seed).
    #[arg(long, value_name = "K", value_parser = parse_clusters)]
    pub cluster: Option<usize>,
    /// Seed of the k-means++ initialization.
    #[arg(long, default_value_t = 0, requires = "cluster")]
    pub cluster_seed: u64,
    /// Then quantize the weights to int8 (as `mdeploy quantize --int8`; clustered kernels keep
    /// at most K levels).
    #[arg(long, conflicts_with = "float16")]
    pub int8: bool,
    /// Then store the weights as float16.
    #[arg(long)]
    pub float16: bool,
    #[command(flatten)]
    pub accuracy: AccuracyArgs,
    /// Write a JSON report here (schemas/optimize-report.schema.json).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Override an input's shape, as NAME:1x224x224x3 (repeatable).
    #[arg(long = "input-shape", value_parser = parse_input_shape)]
    pub input_shapes: Vec<(String, Shape)>,
    /// SavedModel signature (default serving_default).
    #[arg(long)]
    pub signature: Option<String>,
}

fn parse_sparsity(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a fraction in [0, 1)")),
    }
}

fn parse_clusters(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(v) if (2..=65536).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a cluster count in 2..=65536")),
    }
}

/// One op's node count before and after.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OpCount {
    pub op: String,
    pub before: usize,
    pub after: usize,
}

#[derive(serde::Serialize)]
struct Report {
    input: String,
    format: String,
    target: String,
    outputs: Vec<String>,
    bytes: u64,
    gzip_bytes: u64,
    nodes_before: usize,
    nodes_after: usize,
    ops: Vec<OpCount>,
    passes: Vec<PassStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prune: Option<PruneReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weights_gzip: Option<WeightsGzip>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantization: Option<QuantReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<AccuracyReport>,
}

/// gzip size of the graph's constants before and after pruning/clustering.
#[derive(Clone, Copy, Debug, serde::Serialize)]
struct WeightsGzip {
    before: u64,
    after: u64,
}

/// Per-op counts of two graphs, every op of either, sorted by name.
pub fn op_table(before: &Graph, after: &Graph) -> Vec<OpCount> {
    let (b, a) = (passes::op_counts(before), passes::op_counts(after));
    let mut ops: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (op, &n) in &b {
        ops.entry(op).or_default().0 = n;
    }
    for (op, &n) in &a {
        ops.entry(op).or_default().1 = n;
    }
    ops.into_iter()
        .map(|(op, (before, after))| OpCount {
            op: op.to_string(),
            before,
            after,
        })
        .collect()
}

fn op_lines(ops: &[OpCount], before: usize, after: usize) -> Vec<String> {
    let w = ops.iter().map(|o| o.op.len()).max().unwrap_or(2).max(5);
    let mut v = vec![format!("{:<w$} {:>7} {:>7}", "op", "before", "after")];
    for o in ops {
        v.push(format!("{:<w$} {:>7} {:>7}", o.op, o.before, o.after));
    }
    v.push(format!("{:<w$} {:>7} {:>7}", "total", before, after));
    v
}

/// gzip size of every constant's bytes (prune::gzip_len: parallel members).
fn constants_gzip(g: &Graph) -> u64 {
    let parts: Vec<&[u8]> = g
        .values
        .iter()
        .filter_map(|v| v.constant.as_ref().map(|t| &t.data[..]))
        .collect();
    prune::gzip_len(&parts)
}

fn target_for(input_format: &str, asked: Option<Target>) -> Target {
    asked.unwrap_or(match input_format {
        "tflite" => Target::Tflite,
        _ => Target::Onnx,
    })
}

/// Where the output goes without `-o`: `NAME_optimized.EXT` beside the input.
pub fn default_output(input: &Path, target: Target) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let ext = match target {
        Target::Onnx => "onnx",
        Target::Tflite => "tflite",
        Target::Tfjs => return input.with_file_name(format!("{stem}_optimized_tfjs")),
    };
    input.with_file_name(format!("{stem}_optimized.{ext}"))
}

/// Pruning and clustering as asked; prints what they did.
fn transform_weights(
    a: &OptimizeArgs,
    g: &mut Graph,
    progress: &Progress,
) -> Result<(Option<PruneReport>, Option<ClusterReport>)> {
    let pruned = match a.prune {
        Some(s) => {
            progress.step("pruning");
            let scope = match a.prune_scope {
                PruneScope::Global => Scope::Global,
                PruneScope::Layer => Scope::Layer,
            };
            let r = prune::prune(g, s, scope).map_err(Error::Usage)?;
            progress.line(&format!(
                "pruned {} kernels ({} elements) to {:.2}% zeros (target {:.2}%, {:?} scope); {} small kernels left alone",
                r.tensors.len(),
                r.elements,
                r.achieved * 100.0,
                s * 100.0,
                r.scope,
                r.skipped_small
            ));
            Some(r)
        }
        None => None,
    };
    let clustered = match a.cluster {
        Some(k) => {
            progress.step("clustering");
            let opts = ClusterOptions {
                clusters: k,
                seed: a.cluster_seed,
                preserve_zeros: a.prune.is_some(),
            };
            let r = cluster::cluster(g, &opts).map_err(Error::Usage)?;
            let most = r.tensors.iter().map(|t| t.distinct).max().unwrap_or(0);
            progress.line(&format!(
                "clustered {} kernels into at most {k} values (most distinct in one kernel: {most}); {} small kernels left alone",
                r.tensors.len(),
                r.skipped_small
            ));
            Some(r)
        }
        None => None,
    };
    g.verify()
        .map_err(|e| Error::Failed(format!("weight transformation broke the graph: {e}")))?;
    Ok((pruned, clustered))
}

pub fn run(a: OptimizeArgs, quiet: bool) -> Result<()> {
    let progress = Progress::new(quiet);
    progress.step("reading");
    let reader = readers::detect(&a.input)?;
    let target = target_for(reader.name(), a.target);
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| default_output(&a.input, target));
    if out.exists() && out.canonicalize().ok() == a.input.canonicalize().ok() {
        return Err(Error::Usage(format!(
            "{}: output would overwrite the input",
            out.display()
        )));
    }
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

    progress.step("fusing and cleaning up");
    let mut g = source.clone();
    let mut ctx = PassContext::default();
    passes::cleanup(&mut g, &mut ctx)?;
    let weighty = a.prune.is_some() || a.cluster.is_some();
    let gz_before = weighty.then(|| constants_gzip(&g));
    let (pruned, clustered) = transform_weights(&a, &mut g, &progress)?;
    let weights_gzip = gz_before.map(|before| WeightsGzip {
        before,
        after: constants_gzip(&g),
    });
    if let Some(w) = weights_gzip {
        progress.line(&format!(
            "weights gzip-compressed: {} → {} bytes",
            w.before, w.after
        ));
    }
    let ops = op_table(&source, &g);
    for line in op_lines(&ops, source.nodes.len(), g.nodes.len()) {
        progress.line(&line);
    }

    let writer: Box<dyn Writer> = match target {
        Target::Onnx => Box::new(OnnxWriter::default()),
        Target::Tflite => Box::new(TfliteWriter { nhwc_io: false }),
        // Pruned or clustered weights live in the IR, so TF.js gets a graph model; it stores
        // --int8/--float16 weights quantized in its manifest (the loader dequantizes them).
        Target::Tfjs => Box::new(crate::writers::tfjs::graph::GraphWriter {
            folder: crate::writers::tfjs::FolderOptions {
                shard_size: Some(crate::writers::tfjs::DEFAULT_SHARD_SIZE),
                quant: if a.int8 {
                    crate::writers::tfjs::WeightQuant::Uint8
                } else if a.float16 {
                    crate::writers::tfjs::WeightQuant::Float16
                } else {
                    crate::writers::tfjs::WeightQuant::None
                },
            },
            generated_by: None,
        }),
    };
    writer.legalize_verified(&mut g)?;
    // The quantization `mdeploy quantize` does, on the legalized graph (its contract).
    let quant_args = ConvertArgs {
        int8: a.int8,
        float16: a.float16,
        ..ConvertArgs::new(a.input.clone(), target, Some(out.clone()))
    };
    let quantization = match quant::options(&quant_args) {
        Some(q) => Some(quant::apply(&mut g, &q, None, QuantIo::Float, &progress)?),
        None => None,
    };
    // The graph exactly as it is written, against the source.
    let accuracy = a.accuracy.compare(&progress, &source, &g)?;
    writer.ensure_writable(&g, &a.input)?;
    progress.step("writing");
    let written = writer.write(&g, &out)?;
    let nodes_before = source.nodes.len();
    // The graphs (and the input's mapping) go before the written files are mapped to be sized.
    drop((g, source));
    let gzip_bytes = written
        .files
        .iter()
        .map(|f| prune::gzip_len_path(f))
        .sum::<std::result::Result<u64, String>>()
        .map_err(Error::Failed)?;
    progress.line(&format!(
        "wrote {} ({} bytes, {} gzip-compressed, {} nodes)",
        out.display(),
        written.bytes,
        gzip_bytes,
        written.nodes
    ));
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
            gzip_bytes,
            nodes_before,
            nodes_after: ops.iter().map(|o| o.after).sum(),
            ops,
            passes: ctx.stats,
            prune: pruned,
            cluster: clustered,
            weights_gzip,
            quantization,
            accuracy: accuracy.clone(),
        };
        write_json(path, &r)?;
    }
    a.accuracy.enforce(accuracy.as_ref(), &out)
}
