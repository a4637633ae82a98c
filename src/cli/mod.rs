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

use crate::error::{Error, Result};
use crate::ir::{Dim, Shape, Tensor};
use clap::{Parser, Subcommand};
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

/// Parses `name:1x224x224x3` (a dimension may be a symbol such as `batch`).
pub fn parse_input_shape(s: &str) -> std::result::Result<(String, Shape), String> {
    let (name, dims) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}': expected NAME:DIMxDIM…"))?;
    let shape = dims
        .split(['x', ','])
        .filter(|d| !d.is_empty())
        .map(|d| match d.parse::<u64>() {
            Ok(n) => Dim::Fixed(n),
            Err(_) => Dim::Sym(d.to_string()),
        })
        .collect();
    Ok((name.to_string(), shape))
}

/// Parses `name=file.npy`.
pub fn parse_input_file(s: &str) -> std::result::Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': expected NAME=FILE.npy"))?;
    Ok((name.to_string(), PathBuf::from(path)))
}

/// Loads `--input` files in graph input order; inputs without a file get seeded random data.
pub fn load_inputs(
    g: &crate::ir::Graph,
    files: &[(String, PathBuf)],
    seed: u64,
) -> Result<Vec<Tensor>> {
    let mut inputs = crate::eval::random_inputs(g, seed, 2);
    for (name, path) in files {
        let Some(i) = g.inputs.iter().position(|&v| g.value(v).name == *name) else {
            let names: Vec<&str> = g.inputs.iter().map(|&v| g.value(v).name.as_str()).collect();
            return Err(Error::Usage(format!(
                "--input {name}: the model's inputs are {}",
                names.join(", ")
            )));
        };
        let t = crate::npy::read(path).map_err(Error::Failed)?;
        if t.dtype != g.ty(g.inputs[i]).dtype {
            return Err(Error::Usage(format!(
                "--input {name}: file holds {}, the input is {}",
                t.dtype,
                g.ty(g.inputs[i])
            )));
        }
        inputs[i] = t;
    }
    Ok(inputs)
}
