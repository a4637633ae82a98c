//! Command-line interface: one file per subcommand. Exit codes: 0 success, 1 failure,
//! 2 usage error, 3 verification past tolerance, 4 unsupported model.

mod accuracy;
mod completions;
mod convert;
mod inspect;
mod man;
mod optimize;
mod progress;
mod quantize;
mod serve;
mod verify;

use clap::{Parser, Subcommand};
use mdeploy::error::Result;
pub use mdeploy::readers::parse_input_shape;
use std::path::PathBuf;

/// The package version, with the git revision and its date when built from a git checkout
/// (set by build.rs).
pub const VERSION: &str = env!("MDEPLOY_VERSION");

#[derive(Parser, Debug)]
#[command(
    name = "mdeploy",
    version = VERSION,
    about = "Convert trained models into what deployment targets load, and check the result numerically.",
    after_help = "Exit codes: 0 success, 1 failure, 2 usage error, 3 verification past tolerance, 4 unsupported model.\n\n\
Examples:\n  mdeploy convert net.onnx --to onnx --opset 17 --verify\n  mdeploy inspect net.onnx\n  mdeploy inspect net.onnx --json > io.json"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// No progress or messages on stderr (errors are still printed).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Nodes a model may expand to, functions inlined and subgraphs included (default 1000000).
    #[arg(
        long,
        global = true,
        env = "MDEPLOY_MAX_NODES",
        value_name = "N",
        help_heading = "Resource limits"
    )]
    pub max_nodes: Option<u64>,
    /// MiB one compressed entry (a .keras archive member, a compressed HDF5 dataset) may inflate to (default 1024).
    #[arg(
        long,
        global = true,
        env = "MDEPLOY_MAX_INFLATE_MB",
        value_name = "MB",
        help_heading = "Resource limits"
    )]
    pub max_inflate_mb: Option<u64>,
    /// MiB one value may take when a model is evaluated (--verify, calibration, accuracy reports) (default 2048).
    #[arg(
        long,
        global = true,
        env = "MDEPLOY_EVAL_MAX_MB",
        value_name = "MB",
        help_heading = "Resource limits"
    )]
    pub eval_max_mb: Option<u64>,
}

impl Cli {
    /// Hands the limits to the library, which reads them from the environment (where a
    /// library user or `mdeploy serve`'s deployment sets them too): one source of truth.
    pub fn apply_limits(&self) {
        for (var, v) in [
            ("MDEPLOY_MAX_NODES", self.max_nodes),
            ("MDEPLOY_MAX_INFLATE_MB", self.max_inflate_mb),
            ("MDEPLOY_EVAL_MAX_MB", self.eval_max_mb),
        ] {
            if let Some(v) = v {
                // Single-threaded still: no other thread reads the environment yet.
                std::env::set_var(var, v.to_string());
            }
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Convert(convert::ConvertArgs),
    Inspect(inspect::InspectArgs),
    Optimize(optimize::OptimizeArgs),
    Quantize(quantize::QuantizeArgs),
    Serve(serve::ServeArgs),
    Verify(verify::VerifyArgs),
    Completions(completions::CompletionsArgs),
    #[command(hide = true)]
    Man(man::ManArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    cli.apply_limits();
    match cli.command {
        Command::Convert(a) => convert::run(a, cli.quiet),
        Command::Inspect(a) => inspect::run(a),
        Command::Optimize(a) => optimize::run(a, cli.quiet),
        Command::Quantize(a) => quantize::run(a, cli.quiet),
        Command::Serve(a) => serve::run(a, cli.quiet),
        Command::Verify(a) => verify::run(a, cli.quiet),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => man::run(a),
    }
}

/// Parses a `--tolerance`: a non-negative number.
pub fn parse_tolerance(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v >= 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a non-negative number")),
    }
}

/// Parses `name=file.npy`.
pub fn parse_input_file(s: &str) -> std::result::Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': expected NAME=FILE.npy"))?;
    Ok((name.to_string(), PathBuf::from(path)))
}

/// Runs the pipeline with progress on stderr; past a tolerance: exit 3 (the output and the
/// report are written).
fn run_pipeline(opts: &mdeploy::pipeline::Options, quiet: bool) -> Result<()> {
    let progress = progress::Progress::new(quiet);
    let report = mdeploy::pipeline::convert(opts, &progress);
    progress.finish();
    report?.check_tolerance()
}
