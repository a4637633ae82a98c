//! One loaded version of a model: its engine (one tract plan per input shapes, shared by every
//! request), its signature, and what loading it cost.

use super::signature::Signature;
use crate::error::{failed, Result};
use crate::eval::Engine;
use crate::ir::Tensor;
use crate::readers::{self, ReadOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Loaded {
    pub version: u64,
    pub path: PathBuf,
    pub format: &'static str,
    pub signature: Signature,
    pub engine: Engine,
    pub load_time: Duration,
    pub weight_bytes: usize,
    /// Set when dynamic batching is on and the model allows it.
    pub batcher: Option<super::batch::Batcher>,
}

/// The model inside a version folder: the folder itself when a reader takes it (a SavedModel,
/// a TF.js folder), else the one file in it that a reader takes (`model.onnx`, `model.keras`,
/// …). Hidden files and files still being written by convention (`*.tmp`, `*.part`) are not
/// looked at.
pub fn model_in(dir: &Path) -> Result<PathBuf> {
    if readers::detect(dir).is_ok() {
        return Ok(dir.to_path_buf());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            !name.starts_with('.') && !name.ends_with(".tmp") && !name.ends_with(".part")
        })
        .filter(|p| readers::detect(p).is_ok())
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(failed(format!(
            "{}: holds no model in a format mdeploy reads",
            dir.display()
        ))),
        _ => Err(failed(format!(
            "{}: holds {} models ({}); a version folder holds one",
            dir.display(),
            found.len(),
            found
                .iter()
                .filter_map(|p| p.file_name()?.to_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Reads, plans and warms up one version: the warm-up run (at the signature's shapes, run-time
/// dimensions 1) must succeed before the version takes traffic.
pub fn load(version: u64, path: &Path) -> Result<Loaded> {
    let start = Instant::now();
    let model = model_in(path)?;
    let reader = readers::detect(&model)?;
    let graph = readers::read_model(&model, &ReadOptions::default())?.graph;
    let weight_bytes = graph
        .values
        .iter()
        .filter_map(|v| v.constant.as_ref())
        .map(|t| t.data.len())
        .sum();
    let signature = Signature::of(&graph);
    let warm = warm_up_inputs(&graph);
    let engine = Engine::new(&graph)?;
    drop(graph);
    warm_up(&engine, &warm)
        .map_err(|e| failed(format!("{}: warm-up run failed: {e}", model.display())))?;
    Ok(Loaded {
        version,
        path: model,
        format: reader.name(),
        signature,
        engine,
        load_time: start.elapsed(),
        weight_bytes,
        batcher: None,
    })
}

/// Sizes of the run-time dimensions the warm-up tries in turn: some models cannot run at 1 (a
/// U-Net's pooling and upsampling need sizes its depth divides), as `--verify` also finds.
const WARM_SIZES: [usize; 3] = [1, 16, 32];

/// Random inputs per warm-up size (one set when every input dimension is fixed).
fn warm_up_inputs(g: &crate::ir::Graph) -> Vec<Vec<Tensor>> {
    let dynamic = g
        .inputs
        .iter()
        .any(|&v| g.ty(v).shape.iter().any(|d| d.fixed().is_none()));
    let sizes = if dynamic {
        &WARM_SIZES[..]
    } else {
        &WARM_SIZES[..1]
    };
    sizes
        .iter()
        .map(|&n| crate::eval::random_inputs(g, 0, n))
        .collect()
}

/// Succeeds once one input set runs; else the first set's error.
fn warm_up(engine: &Engine, sets: &[Vec<Tensor>]) -> Result<()> {
    let mut first = None;
    for inputs in sets {
        match engine.run(inputs) {
            Ok(_) => return Ok(()),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    first.map_or(Ok(()), Err)
}

impl Loaded {
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.engine.run(inputs)
    }
}
