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
