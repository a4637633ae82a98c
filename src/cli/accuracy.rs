//! The accuracy flags shared by `quantize` and `optimize` (`#[command(flatten)]` them), and the
//! one place that runs the comparison, prints it and applies `--tolerance` (exit 3).

use super::progress::Progress;
use crate::accuracy::{self, Report};
use crate::error::{Error, Result};
use crate::ir::Graph;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone, Default)]
pub struct AccuracyArgs {
    /// Sample inputs (samples along axis 0): FILE.npy (single-input models), a FOLDER with
    /// NAME.npy per input (or .npy files joined in name order for one input), or FILE.npz.
    /// Without it: seeded random inputs (symbolic dimensions = 1).
    #[arg(long, value_name = "FILE|FOLDER")]
    pub calibration: Option<PathBuf>,
    /// Class labels (.npy of integers, one per sample) for real top-1 accuracy of the first
    /// classification output, source and result.
    #[arg(long, value_name = "FILE.npy", requires = "calibration")]
    pub labels: Option<PathBuf>,
    /// Also report the error of every layer output present in both models.
    #[arg(long)]
    pub per_layer: bool,
    /// Fail with exit code 3 when an output's max-relative error (max|a-b| / max|source|)
    /// exceeds this (the output is still written).
    #[arg(long, value_parser = super::parse_tolerance)]
    pub tolerance: Option<f64>,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skip the accuracy comparison (it runs both models through tract).
    #[arg(long, conflicts_with_all = ["labels", "per_layer", "tolerance"])]
    pub no_accuracy: bool,
}

impl AccuracyArgs {
    pub fn options(&self) -> accuracy::Options {
        accuracy::Options {
            calibration: self.calibration.clone(),
            labels: self.labels.clone(),
            per_layer: self.per_layer,
            seed: self.seed,
        }
    }

    /// Runs the comparison (unless `--no-accuracy`) and prints it.
    pub fn compare(
        &self,
        progress: &Progress,
        source: &Graph,
        result: &Graph,
    ) -> Result<Option<Report>> {
        if self.no_accuracy {
            return Ok(None);
        }
        progress.step("comparing accuracy");
        let r = accuracy::compare(source, result, &self.options())?;
        for line in r.lines() {
            progress.line(&line);
        }
        Ok(Some(r))
    }

    /// After the output and the report are written: exit 3 past `--tolerance`.
    pub fn enforce(&self, report: Option<&Report>, out: &Path) -> Result<()> {
        let (Some(tol), Some(r)) = (self.tolerance, report) else {
            return Ok(());
        };
        let worst = r.worst_rel();
        if worst > tol {
            let names: Vec<&str> = r
                .outputs
                .iter()
                .filter(|o| !o.error.shape_matches || o.error.max_rel > tol)
                .map(|o| o.error.name.as_str())
                .collect();
            return Err(Error::Verification(format!(
                "accuracy past tolerance for {}: max_rel {worst:.3e} > {tol:e}; the output was written to {}",
                names.join(", "),
                out.display()
            )));
        }
        Ok(())
    }
}

/// Writes a serializable report as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| Error::Failed(e.to_string()))?;
    let mut f = crate::writers::AtomicFile::create(path)?;
    std::io::Write::write_all(f.writer(), &json).map_err(crate::writers::io_err(path))?;
    f.commit()
}
