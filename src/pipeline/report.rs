//! What a run did: figures for the caller, the JSON report (`--report`), and the tolerance
//! verdict. `convert`/`quantize` and `optimize` write different JSON shapes (the latter follows
//! `schemas/optimize-report.schema.json`); both are views of one [`Report`].

use super::options::{Job, Options};
use super::quantize::QuantReport;
use super::Observer;
use crate::error::{Error, Result};
use crate::eval::Comparison;
use crate::passes::cluster::ClusterReport;
use crate::passes::prune::{self, PruneReport};
use crate::passes::PassStats;
use crate::writers::WriteReport;
use std::path::{Path, PathBuf};

/// One op's node count before and after the clean-up and weight passes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OpCount {
    pub op: String,
    pub before: usize,
    pub after: usize,
}

/// gzip size of the graph's constants before and after pruning/clustering.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct WeightsGzip {
    pub before: u64,
    pub after: u64,
}

/// Everything a run measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub job: Job,
    pub input: PathBuf,
    /// The reader's name.
    pub format: String,
    /// The writer's name.
    pub target: String,
    pub output: PathBuf,
    /// Every file written.
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    /// gzip size of the written files (the optimize job measures it).
    pub gzip_bytes: Option<u64>,
    pub nodes_in: usize,
    pub nodes_out: usize,
    pub passes: Vec<PassStats>,
    pub verify: Vec<Comparison>,
    /// The verification tolerance used, when verified.
    pub verify_tolerance: Option<f64>,
    pub quantization: Option<QuantReport>,
    pub accuracy: Option<crate::accuracy::Report>,
    pub accuracy_tolerance: Option<f64>,
    /// Node counts per op (the optimize job).
    pub ops: Option<Vec<OpCount>>,
    pub prune: Option<PruneReport>,
    pub cluster: Option<ClusterReport>,
    pub weights_gzip: Option<WeightsGzip>,
}

impl Report {
    pub(super) fn new(
        opts: &Options,
        format: &str,
        writer: &str,
        out: &Path,
        written: WriteReport,
    ) -> Report {
        Report {
            job: opts.job,
            input: opts.input.clone(),
            format: format.into(),
            target: writer.into(),
            output: out.to_path_buf(),
            files: written.files,
            bytes: written.bytes,
            gzip_bytes: None,
            nodes_in: 0,
            nodes_out: written.nodes,
            passes: vec![],
            verify: vec![],
            verify_tolerance: opts.verify.as_ref().map(|v| v.tolerance),
            quantization: None,
            accuracy: None,
            accuracy_tolerance: opts.accuracy.as_ref().and_then(|a| a.tolerance),
            ops: None,
            prune: None,
            cluster: None,
            weights_gzip: None,
        }
    }

    /// The last figures (gzip size of the output for the optimize job), the result line, and
    /// the JSON report when asked for.
    pub(super) fn finish(&mut self, opts: &Options, obs: &dyn Observer) -> Result<()> {
        if self.job == Job::Optimize {
            let gzip = self
                .files
                .iter()
                .map(|f| prune::gzip_len_path(f))
                .sum::<std::result::Result<u64, String>>()
                .map_err(Error::Failed)?;
            self.gzip_bytes = Some(gzip);
            obs.line(&format!(
                "wrote {} ({} bytes, {} gzip-compressed, {} nodes)",
                self.output.display(),
                self.bytes,
                gzip,
                self.nodes_out
            ));
        }
        if let Some(path) = &opts.report {
            self.write_json(path)?;
        }
        Ok(())
    }

    /// Writes the `--report` JSON of this run's job.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let outputs: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        let input = self.input.display().to_string();
        match self.job {
            Job::Convert | Job::Quantize => write_json(
                path,
                &ConvertJson {
                    input,
                    format: &self.format,
                    target: &self.target,
                    outputs,
                    bytes: self.bytes,
                    nodes_in: self.nodes_in,
                    nodes_out: self.nodes_out,
                    passes: &self.passes,
                    verify: &self.verify,
                    quantization: self.quantization.as_ref(),
                    accuracy: self.accuracy.as_ref(),
                },
            ),
            Job::Optimize => write_json(
                path,
                &OptimizeJson {
                    input,
                    format: &self.format,
                    target: &self.target,
                    outputs,
                    bytes: self.bytes,
                    gzip_bytes: self.gzip_bytes.unwrap_or(0),
                    nodes_before: self.nodes_in,
                    nodes_after: self.ops.iter().flatten().map(|o| o.after).sum(),
                    ops: self.ops.as_deref().unwrap_or_default(),
                    passes: &self.passes,
                    prune: self.prune.as_ref(),
                    cluster: self.cluster.as_ref(),
                    weights_gzip: self.weights_gzip,
                    quantization: self.quantization.as_ref(),
                    accuracy: self.accuracy.as_ref(),
                },
            ),
        }
    }

    /// `Err(Error::Verification)` (exit 3) when a verified output or an accuracy-reported output
    /// is past its tolerance; the message names each such output and where the output was
    /// written (it is written all the same).
    pub fn check_tolerance(&self) -> Result<()> {
        if let Some(t) = self.verify_tolerance {
            let failed: Vec<&str> = self
                .verify
                .iter()
                .filter(|c| !within(c, t))
                .map(|c| c.name.as_str())
                .collect();
            if !failed.is_empty() {
                return Err(Error::Verification(format!(
                    "verification failed for {} (tolerance {t:e}); the output was written to {}",
                    failed.join(", "),
                    self.output.display()
                )));
            }
        }
        let (Some(t), Some(r)) = (self.accuracy_tolerance, &self.accuracy) else {
            return Ok(());
        };
        let failed: Vec<&str> = r
            .outputs
            .iter()
            .filter(|o| !within(&o.error, t))
            .map(|o| o.error.name.as_str())
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        Err(Error::Verification(format!(
            "accuracy past tolerance for {}: max_rel {:.3e} > {t:e}; the output was written to {}",
            failed.join(", "),
            r.worst_rel(),
            self.output.display()
        )))
    }
}

/// The `convert` and `quantize` report (field order is the JSON's).
#[derive(serde::Serialize)]
struct ConvertJson<'a> {
    input: String,
    format: &'a str,
    target: &'a str,
    outputs: Vec<String>,
    bytes: u64,
    nodes_in: usize,
    nodes_out: usize,
    passes: &'a [PassStats],
    verify: &'a [Comparison],
    #[serde(skip_serializing_if = "Option::is_none")]
    quantization: Option<&'a QuantReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<&'a crate::accuracy::Report>,
}

/// The `optimize` report (schemas/optimize-report.schema.json).
#[derive(serde::Serialize)]
struct OptimizeJson<'a> {
    input: String,
    format: &'a str,
    target: &'a str,
    outputs: Vec<String>,
    bytes: u64,
    gzip_bytes: u64,
    nodes_before: usize,
    nodes_after: usize,
    ops: &'a [OpCount],
    passes: &'a [PassStats],
    #[serde(skip_serializing_if = "Option::is_none")]
    prune: Option<&'a PruneReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a ClusterReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weights_gzip: Option<WeightsGzip>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantization: Option<&'a QuantReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<&'a crate::accuracy::Report>,
}

/// Whether a comparison holds: same shape, max relative error within `tolerance`.
pub(super) fn within(c: &Comparison, tolerance: f64) -> bool {
    c.shape_matches && c.max_rel <= tolerance
}

/// Writes a serializable report as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| Error::Failed(e.to_string()))?;
    let mut f = crate::writers::AtomicFile::create(path)?;
    std::io::Write::write_all(f.writer(), &json).map_err(crate::writers::io_err(path))?;
    f.commit()
}
