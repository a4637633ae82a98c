//! `mdeploy optimize`: the flags of the library pipeline with its weight stages (pruning,
//! clustering) and the optimize report (node counts per op before and after, achieved
//! sparsity, distinct values and gzip sizes).

use super::accuracy::AccuracyArgs;
use super::convert::Target;
use super::parse_input_shape;
use super::quantize::{quantize_options, QuantIo};
use clap::{Args, ValueEnum};
use mdeploy::error::Result;
use mdeploy::ir::Shape;
use mdeploy::passes::cluster::ClusterOptions;
use mdeploy::passes::prune::Scope;
use mdeploy::pipeline::{self, Options, WeightOptions};
use mdeploy::readers::ReadOptions;
use std::path::PathBuf;

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
    /// SavedModel or TFLite signature (default serving_default).
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

pub fn run(a: OptimizeArgs, quiet: bool) -> Result<()> {
    let scope = match a.prune_scope {
        PruneScope::Global => Scope::Global,
        PruneScope::Layer => Scope::Layer,
    };
    let opts = Options {
        input: a.input,
        output: a.output,
        target: a.target.map(Into::into),
        job: pipeline::Job::Optimize,
        read: ReadOptions {
            input_shapes: a.input_shapes,
            signature: a.signature,
        },
        weights: WeightOptions {
            prune: a.prune.map(|s| (s, scope)),
            cluster: a.cluster.map(|clusters| ClusterOptions {
                clusters,
                seed: a.cluster_seed,
                // The pipeline keeps pruned zeros when it prunes too.
                preserve_zeros: false,
            }),
        },
        // Weights only: --calibration here is the accuracy report's sample set.
        quantize: quantize_options(a.int8, a.float16, &[], None, QuantIo::Float),
        accuracy: a.accuracy.pipeline(),
        report: a.report,
        ..Options::default()
    };
    super::run_pipeline(&opts, quiet)
}
