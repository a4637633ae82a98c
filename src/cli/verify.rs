//! `mdeploy verify SOURCE OUTPUT`: checks a converted model against its source — one mdeploy
//! wrote earlier, or one another tool wrote — the way `convert --verify` does: the output read
//! back by mdeploy's reader of its format, both run by tract on the same inputs.

use super::{parse_input_file, parse_tolerance, progress::Progress};
use clap::Args;
use mdeploy::error::{Error, Result};
use mdeploy::pipeline::{self, Verify};
use mdeploy::readers::ReadOptions;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    about = "Check a converted model against its source on the same inputs",
    after_help = "Exit codes: 0 within tolerance, 3 past it (or shapes differ), 1 failure.\n\n\
Examples:\n  mdeploy verify net.onnx net.tflite\n  mdeploy verify saved_model/ model.tflite --input x=sample.npy --tolerance 1e-3\n  mdeploy verify model.keras web_model/"
)]
pub struct VerifyArgs {
    /// The source model (file or folder).
    pub source: PathBuf,
    /// The converted model (file or folder), with the source's input and output names.
    pub output: PathBuf,
    /// Largest max-relative error accepted (default 1e-4).
    #[arg(long, value_parser = parse_tolerance, default_value_t = 1e-4)]
    pub tolerance: f64,
    /// Input data as NAME=FILE.npy (repeatable); others get seeded random data.
    #[arg(long = "input", value_parser = parse_input_file)]
    pub inputs: Vec<(String, PathBuf)>,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(a: VerifyArgs, quiet: bool) -> Result<()> {
    let progress = Progress::new(quiet);
    let source = pipeline::load(&a.source, &ReadOptions::default())?;
    let v = Verify {
        inputs: a.inputs,
        seed: a.seed,
        tolerance: a.tolerance,
    };
    let comparisons = pipeline::verify_output(&source.graph, &a.output, &v, &progress)?;
    progress.finish();
    let failed: Vec<&str> = comparisons
        .iter()
        .filter(|c| !(c.shape_matches && c.max_rel <= a.tolerance))
        .map(|c| c.name.as_str())
        .collect();
    if comparisons.is_empty() {
        return Err(Error::Failed("nothing was compared".into()));
    }
    if !failed.is_empty() {
        return Err(Error::Verification(format!(
            "{} differs from {} past the tolerance {:e} in {}",
            a.output.display(),
            a.source.display(),
            a.tolerance,
            failed.join(", ")
        )));
    }
    progress.line(&format!(
        "{} matches {} ({} output(s), tolerance {:e})",
        a.output.display(),
        a.source.display(),
        comparisons.len(),
        a.tolerance
    ));
    Ok(())
}
