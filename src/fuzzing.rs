//! The harness the cargo-fuzz targets (`fuzz/`) and the stable replay test
//! (`tests/fuzz_replay.rs`) share: bytes become model files in a scratch folder, then run through
//! what `mdeploy convert` runs on them — read, [`Graph::verify`], the clean-up passes, and every
//! writer's legalization, check and write. Whatever the bytes, each step must return (a graph or
//! an error); a panic, hang or runaway allocation is the bug a fuzzer reports.
//!
//! The structure-aware target starts past the readers: [`ir_graph`] makes a random valid graph
//! from the bytes and [`round_trip`] requires every writer to refuse it by name or write it so
//! that its own reader reads back the same results.

pub mod ir_graph;
pub mod round_trip;

use crate::error::Result;
use crate::ir::Graph;
use crate::passes::{self, PassContext};
use crate::readers::{self, ReadOptions};
use crate::writers::onnx::OnnxWriter;
use crate::writers::tfjs::{self, graph::GraphWriter, FolderOptions};
use crate::writers::tflite::TfliteWriter;
use crate::writers::Writer;
use std::path::{Path, PathBuf};

/// Graphs whose activations declare more elements than this skip the passes and writers: the
/// fold pass materializes what a node computes, and a fuzzer's iteration must stay cheap. (Such
/// inputs are the business of resource limits, tested on their own.)
pub const MAX_DECLARED_ELEMENTS: u64 = 1 << 20;

/// One fuzz target per reader: how its bytes are laid out on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `model.onnx`.
    Onnx,
    /// Framed: `saved_model.pb`, `variables/variables.index`, `variables/variables.data-…`.
    SavedModel,
    /// `model.h5`.
    KerasH5,
    /// `model.keras` (a zip).
    KerasZip,
    /// `model.tflite`.
    Tflite,
    /// Framed: `model.json`, `group1-shard1of1.bin`.
    Tfjs,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::Onnx,
        Target::SavedModel,
        Target::KerasH5,
        Target::KerasZip,
        Target::Tflite,
        Target::Tfjs,
    ];

    /// The fuzz target's name (and its folder under `fuzz/corpus` and `fuzz/regressions`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Onnx => "onnx",
            Target::SavedModel => "saved_model",
            Target::KerasH5 => "keras_h5",
            Target::KerasZip => "keras_zip",
            Target::Tflite => "tflite",
            Target::Tfjs => "tfjs",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The files of a model of this kind, relative to its folder; framed targets split their
    /// bytes over them in this order.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Target::Onnx => &["model.onnx"],
            Target::SavedModel => &[
                "saved_model.pb",
                "variables/variables.index",
                "variables/variables.data-00000-of-00001",
            ],
            Target::KerasH5 => &["model.h5"],
            Target::KerasZip => &["model.keras"],
            Target::Tflite => &["model.tflite"],
            Target::Tfjs => &["model.json", "group1-shard1of1.bin"],
        }
    }

    /// What the reader is given: the single file, or the folder of a framed model.
    fn model_path(self, dir: &Path) -> PathBuf {
        match self.files() {
            [one] => dir.join(one),
            _ => dir.to_path_buf(),
        }
    }

    /// Writes `data` as this target's model files under `dir` (emptied first) and returns
    /// the path to read.
    pub fn materialize(self, data: &[u8], dir: &Path) -> std::io::Result<PathBuf> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        let files = self.files();
        let parts = unframe(data, files.len());
        for (name, part) in files.iter().zip(parts) {
            let p = dir.join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&p, part)?;
        }
        Ok(self.model_path(dir))
    }

    /// The bytes [`materialize`](Target::materialize) turns back into `files` (for seeds).
    pub fn frame_files(self, dir: &Path) -> std::io::Result<Vec<u8>> {
        let parts = self
            .files()
            .iter()
            .map(|f| std::fs::read(dir.join(f)))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(frame(&parts))
    }
}

/// Splits `data` into `n` parts: each but the last is a little-endian u32 length, then that many
/// bytes (fewer when the data ends first); the last part is the rest. Any bytes split somehow,
/// so every mutation is a valid input.
pub fn unframe(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    let mut rest = data;
    for _ in 1..n {
        let (len, tail) = match rest.split_first_chunk::<4>() {
            Some((len, tail)) => (u32::from_le_bytes(*len) as usize, tail),
            None => (0, &[][..]),
        };
        let (part, tail) = tail.split_at(len.min(tail.len()));
        parts.push(part);
        rest = tail;
    }
    if n > 0 {
        parts.push(rest);
    }
    parts
}

/// The inverse of [`unframe`].
pub fn frame(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(p);
    }
    out
}

/// A scratch folder for one process, reused by every iteration (removed on drop).
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// `tag` keeps concurrent users (fuzz targets, test threads) apart.
    pub fn new(tag: &str) -> std::io::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("mdeploy-fuzz-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Runs `data` as `target` through [`exercise`].
    pub fn run(&self, target: Target, data: &[u8]) -> Result<Outcome> {
        let model = target
            .materialize(data, &self.dir.join("in"))
            .map_err(crate::writers::io_err(&self.dir))?;
        exercise(&model, &self.dir.join("out"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How far a model that was read got.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Nodes of the graph the reader made.
    pub nodes: usize,
    /// Skipped passes and writers: the graph declares more than [`MAX_DECLARED_ELEMENTS`].
    pub too_large: bool,
    /// Writers that wrote a file (the others refused by name or failed with an error).
    pub written: Vec<&'static str>,
}

/// Reads `model`, verifies and cleans up its graph and hands it to every writer (each writes
/// under `out`). `Err` only when the reader refused the model; a writer's or pass's refusal is
/// an acceptable answer, recorded by its absence from [`Outcome::written`].
pub fn exercise(model: &Path, out: &Path) -> Result<Outcome> {
    let m = readers::read_model(model, &ReadOptions::default())?;
    let mut outcome = Outcome {
        nodes: m.graph.nodes.len(),
        ..Outcome::default()
    };
    if declared_elements(&m.graph) > MAX_DECLARED_ELEMENTS {
        outcome.too_large = true;
        return Ok(outcome);
    }
    let mut g = m.graph.clone();
    if passes::cleanup(&mut g, &mut PassContext::default()).is_err() {
        return Ok(outcome);
    }
    let mut writers: Vec<Box<dyn Writer>> = vec![
        Box::new(OnnxWriter::default()),
        Box::new(TfliteWriter { nhwc_io: false }),
        Box::new(GraphWriter {
            folder: FolderOptions::default(),
            generated_by: None,
        }),
    ];
    if let Some(source) = m.keras {
        let shapes = m.graph.clone();
        if tfjs::layers::check(&source, &shapes, model).is_empty() {
            writers.push(Box::new(tfjs::LayersWriter {
                source,
                shapes,
                file: model.to_path_buf(),
                folder: FolderOptions::default(),
            }));
        }
    }
    let _ = std::fs::remove_dir_all(out);
    let _ = std::fs::create_dir_all(out);
    for (i, w) in writers.iter().enumerate() {
        if write_one(
            w.as_ref(),
            &g,
            model,
            &out.join(format!("{i}-{}", w.name())),
        )
        .is_ok()
        {
            outcome.written.push(w.name());
        }
    }
    Ok(outcome)
}

/// What `convert` does with one writer: legalize (verified), check, write.
fn write_one(w: &dyn Writer, g: &Graph, model: &Path, out: &Path) -> Result<()> {
    let mut g = g.clone();
    w.legalize_verified(&mut g)?;
    w.ensure_writable(&g, model)?;
    w.write(&g, out)?;
    Ok(())
}

/// Elements the graph's values (activations and constants) declare with fixed dimensions,
/// saturating; symbolic dimensions count as one.
pub fn declared_elements(g: &Graph) -> u64 {
    g.values.iter().fold(0u64, |acc, v| {
        let n =
            v.ty.shape
                .iter()
                .fold(1u64, |n, d| n.saturating_mul(d.fixed().unwrap_or(1)));
        acc.saturating_add(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips_and_accepts_any_bytes() {
        let parts = vec![b"abc".to_vec(), vec![], b"rest".to_vec()];
        let framed = frame(&parts);
        assert_eq!(
            unframe(&framed, 3),
            vec![&b"abc"[..], &b""[..], &b"rest"[..]]
        );
        // A length past the end takes what there is; missing parts are empty.
        assert_eq!(
            unframe(&[9, 0, 0, 0, 1, 2], 3),
            vec![&[1u8, 2][..], &[][..], &[][..]]
        );
        assert_eq!(unframe(&[1], 2), vec![&[0u8; 0][..], &[][..]]);
    }
}
