//! The accuracy flags of `optimize` (`#[command(flatten)]`): the pipeline's accuracy stage.

use clap::Args;
use mdeploy::accuracy;
use mdeploy::pipeline::Accuracy;
use std::path::PathBuf;

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
    /// The pipeline's accuracy stage (always on unless `--no-accuracy`).
    pub fn pipeline(&self) -> Option<Accuracy> {
        (!self.no_accuracy).then(|| Accuracy {
            options: accuracy::Options {
                calibration: self.calibration.clone(),
                labels: self.labels.clone(),
                per_layer: self.per_layer,
                seed: self.seed,
            },
            tolerance: self.tolerance,
            only_if_quantized: false,
        })
    }
}
