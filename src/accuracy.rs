//! The accuracy report of a transformed model (quantized, pruned, clustered): the source graph
//! and the result graph run by tract on the same inputs, compared output by output (max abs /
//! max relative error, cosine, top-1 agreement), optionally against labels (real top-1
//! accuracy) and layer by layer (values of the same name in both graphs).
//!
//! Inputs come from a calibration set (`.npy`, a folder of `.npy`, or `.npz`; samples along
//! axis 0) or are seeded random data matching the input types (symbolic dimensions → 1). The
//! set is run in batches (the input's own fixed batch size, or [`BATCH`] when it is symbolic),
//! and statistics accumulate batch by batch, so memory holds one batch of each graph's values.

use crate::error::{failed, Error, Result};
use crate::eval::{self, Comparison, ErrorStats};
use crate::ir::{Dim, Graph, Op, Tensor, ValueId};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Samples per run when the model's batch dimension is symbolic.
pub const BATCH: usize = 64;
/// Seeded random batches used when no calibration set is given.
pub const RANDOM_BATCHES: usize = 8;

/// What to compare on and how.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `FILE.npy` | `FOLDER` | `FILE.npz`; `None`: seeded random inputs.
    pub calibration: Option<PathBuf>,
    /// Class indices (`.npy`, one per sample) for the first classification output.
    pub labels: Option<PathBuf>,
    /// Also compare every layer output present (by name) in both graphs.
    pub per_layer: bool,
    pub seed: u64,
}

/// One output of the result against the same output of the source.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OutputAccuracy {
    #[serde(flatten)]
    pub error: Comparison,
    /// Fraction of rows (last axis = classes) whose argmax agrees; `None` for outputs that are
    /// not class scores (rank < 2 or a last axis of 1).
    pub top1_agreement: Option<f64>,
}

/// Real accuracy against labels, for the first output whose rows match the labels.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LabelAccuracy {
    pub output: String,
    pub samples: usize,
    pub source_top1: f64,
    pub result_top1: f64,
}

/// One intermediate value, present under the same name in both graphs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerAccuracy {
    /// The op producing it in the result graph.
    pub op: String,
    #[serde(flatten)]
    pub error: Comparison,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// `calibration <path>` or `random (seed N)`.
    pub inputs: String,
    /// Samples compared (rows of the first input summed over batches).
    pub samples: usize,
    pub outputs: Vec<OutputAccuracy>,
    pub labels: Option<LabelAccuracy>,
    pub per_layer: Vec<LayerAccuracy>,
}

impl Report {
    /// The worst max-relative error over the outputs (what `--tolerance` bounds).
    pub fn worst_rel(&self) -> f64 {
        self.outputs
            .iter()
            .map(|o| {
                if o.error.shape_matches {
                    o.error.max_rel
                } else {
                    f64::INFINITY
                }
            })
            .fold(0.0, f64::max)
    }

    /// Human-readable lines for stderr.
    pub fn lines(&self) -> Vec<String> {
        let mut v = vec![format!(
            "accuracy on {} ({} samples):",
            self.inputs, self.samples
        )];
        for o in &self.outputs {
            let e = &o.error;
            let mut s = format!(
                "  {}: max_abs {:.3e}  max_rel {:.3e}  cosine {:.6}",
                e.name, e.max_abs, e.max_rel, e.cosine
            );
            if let Some(t) = o.top1_agreement {
                s.push_str(&format!("  top-1 agreement {:.2}%", t * 100.0));
            }
            if !e.shape_matches {
                s.push_str("  SHAPE DIFFERS");
            }
            v.push(s);
        }
        if let Some(l) = &self.labels {
            v.push(format!(
                "  top-1 accuracy on {} labels ({}): source {:.2}%, result {:.2}%",
                l.samples,
                l.output,
                l.source_top1 * 100.0,
                l.result_top1 * 100.0
            ));
        }
        for l in &self.per_layer {
            let e = &l.error;
            v.push(format!(
                "  layer {} ({}): max_abs {:.3e}  max_rel {:.3e}  cosine {:.6}",
                e.name, l.op, e.max_abs, e.max_rel, e.cosine
            ));
        }
        v
    }
}

/// Compares `result` with `source` (same inputs and outputs, in order).
pub fn compare(source: &Graph, result: &Graph, opts: &Options) -> Result<Report> {
    if source.inputs.len() != result.inputs.len() || source.outputs.len() != result.outputs.len() {
        return Err(failed(format!(
            "the result has {} inputs and {} outputs, the source {} and {}",
            result.inputs.len(),
            result.outputs.len(),
            source.inputs.len(),
            source.outputs.len()
        )));
    }
    let batches = input_batches(source, opts.calibration.as_deref(), opts.seed)?;
    let inputs = match &opts.calibration {
        Some(p) => format!("calibration {}", p.display()),
        None => format!("random inputs (seed {})", opts.seed),
    };
    let samples = batches
        .iter()
        .map(|b| {
            b.first()
                .and_then(|t| t.shape.first())
                .copied()
                .unwrap_or(1)
        })
        .sum();
    let (src_layers, res_layers, layer_ops) = if opts.per_layer {
        matching_layers(source, result)
    } else {
        (vec![], vec![], vec![])
    };

    let n_out = source.outputs.len();
    let names: Vec<String> = source
        .outputs
        .iter()
        .map(|&o| source.value(o).name.clone())
        .chain(src_layers.iter().map(|&v| source.value(v).name.clone()))
        .collect();
    let mut stats: Vec<ErrorStats> = names.iter().map(|_| ErrorStats::default()).collect();
    let mut agree: Vec<(usize, usize)> = vec![(0, 0); n_out];
    let mut argmax_src: Vec<Vec<usize>> = vec![vec![]; n_out];
    let mut argmax_res: Vec<Vec<usize>> = vec![vec![]; n_out];
    // The source runs on a second thread while the result runs here, so the two evaluations
    // share the cores; each batch's result is compared as soon as the source's values for it
    // are there, and those are dropped once compared. Two evaluations in flight hold two pieces
    // of weights in tract (`eval::pieces`): a large model whose result is not smaller than its
    // source (pruned, clustered) runs its source first instead, keeping peak memory near the
    // weights' own size.
    let (source_bytes, result_bytes) = (source.parameter_stats().1, result.parameter_stats().1);
    let together = source_bytes <= eval::pieces::PIECE_BYTES || 2 * result_bytes <= source_bytes;
    let reference = Reference::new(batches.len());
    let run_source = || {
        let r = eval::run_batches(source, &src_layers, &batches, |i, v| {
            reference.put(i, v);
            Ok(())
        });
        reference.finish();
        r
    };
    let (source_run, result_run) = std::thread::scope(|s| {
        let source_first = (!together).then(run_source);
        let source_thread = together.then(|| s.spawn(run_source));
        let result_run = eval::run_batches(result, &res_layers, &batches, |i, got| {
            let want = reference.take(i)?;
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                stats[k].add(g, w);
                if k < n_out {
                    if let (Some(a), Some(b)) = (argmax_rows(g), argmax_rows(w)) {
                        if a.len() == b.len() {
                            agree[k].0 += a.iter().zip(&b).filter(|(x, y)| x == y).count();
                            agree[k].1 += a.len();
                            argmax_res[k].extend(a);
                            argmax_src[k].extend(b);
                        }
                    }
                }
            }
            Ok(())
        });
        let source_run = match (source_first, source_thread) {
            (Some(r), _) => r,
            (None, Some(t)) => t
                .join()
                .unwrap_or_else(|_| Err(failed("the source model's evaluation crashed"))),
            (None, None) => Err(failed("the source model was not run")),
        };
        (source_run, result_run)
    });
    source_run.map_err(|e| failed(format!("running the source model: {e}")))?;
    result_run.map_err(|e| failed(format!("running the result model: {e}")))?;

    let outputs = (0..n_out)
        .map(|k| OutputAccuracy {
            error: stats[k].finish(&names[k]),
            top1_agreement: (agree[k].1 > 0).then(|| agree[k].0 as f64 / agree[k].1 as f64),
        })
        .collect();
    let per_layer = (n_out..names.len())
        .map(|k| LayerAccuracy {
            op: layer_ops[k - n_out].clone(),
            error: stats[k].finish(&names[k]),
        })
        .collect();
    let labels = match &opts.labels {
        Some(p) => Some(label_accuracy(p, &names, &argmax_src, &argmax_res)?),
        None => None,
    };
    Ok(Report {
        inputs,
        samples,
        outputs,
        labels,
        per_layer,
    })
}

/// The source's values per batch, handed from the thread that computes them to the one that
/// compares the result against them.
struct Reference {
    state: std::sync::Mutex<(Vec<Option<Vec<Tensor>>>, bool)>,
    ready: std::sync::Condvar,
}

impl Reference {
    fn new(batches: usize) -> Reference {
        Reference {
            state: std::sync::Mutex::new(((0..batches).map(|_| None).collect(), false)),
            ready: std::sync::Condvar::new(),
        }
    }

    fn put(&self, i: usize, values: Vec<Tensor>) {
        if let Ok(mut s) = self.state.lock() {
            if let Some(slot) = s.0.get_mut(i) {
                *slot = Some(values);
            }
        }
        self.ready.notify_all();
    }

    /// The source has run every batch it will (or failed).
    fn finish(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.1 = true;
        }
        self.ready.notify_all();
    }

    /// Waits for batch `i`'s values and takes them.
    fn take(&self, i: usize) -> Result<Vec<Tensor>> {
        let poisoned = || failed("the source model's evaluation crashed");
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(v) = s.0.get_mut(i).and_then(Option::take) {
                return Ok(v);
            }
            if s.1 {
                return Err(failed("the source model stopped before this batch"));
            }
            s = self.ready.wait(s).map_err(|_| poisoned())?;
        }
    }
}

fn label_accuracy(
    path: &Path,
    names: &[String],
    src: &[Vec<usize>],
    res: &[Vec<usize>],
) -> Result<LabelAccuracy> {
    let t = crate::npy::read(path).map_err(Error::Usage)?;
    let labels = t.to_i64s().ok_or_else(|| {
        Error::Usage(format!(
            "--labels {}: holds {}, class indices must be integers",
            path.display(),
            t.dtype
        ))
    })?;
    let Some(k) = src.iter().position(|a| a.len() == labels.len()) else {
        return Err(Error::Usage(format!(
            "--labels {}: {} labels, but no output has that many rows of class scores",
            path.display(),
            labels.len()
        )));
    };
    let hits = |pred: &[usize]| {
        pred.iter()
            .zip(&labels)
            .filter(|(p, l)| **p as i64 == **l)
            .count() as f64
            / labels.len().max(1) as f64
    };
    Ok(LabelAccuracy {
        output: names[k].clone(),
        samples: labels.len(),
        source_top1: hits(&src[k]),
        result_top1: hits(&res[k]),
    })
}

/// Argmax over the last axis of each row, for class-score outputs.
fn argmax_rows(t: &Tensor) -> Option<Vec<usize>> {
    let classes = *t.shape.last()?;
    if t.shape.len() < 2 || classes < 2 || !t.dtype.is_float() {
        return None;
    }
    let v = t.to_f64s();
    Some(
        v.chunks_exact(classes)
            .map(|row| {
                let mut best = 0;
                for (i, x) in row.iter().enumerate() {
                    if *x > row[best] {
                        best = i;
                    }
                }
                best
            })
            .collect(),
    )
}

/// Whether a node's output is a "layer" output worth reporting: ops with weights and the
/// quantized forms of them.
fn is_layer(op: &Op) -> bool {
    match op {
        Op::Conv(_)
        | Op::ConvTranspose(_)
        | Op::MatMul(_)
        | Op::Einsum(_)
        | Op::Lstm(_)
        | Op::Gru(_)
        | Op::ConvInteger(_)
        | Op::MatMulInteger
        | Op::QLinearConv(_)
        | Op::QLinearMatMul
        | Op::DequantizeLinear(_)
        | Op::BatchNorm(_)
        | Op::LayerNorm(_)
        | Op::Binary(_)
        | Op::Activation(_) => true,
        Op::Unary(_)
        | Op::Dynamic(_)
        | Op::If(_)
        | Op::Loop(_)
        | Op::Where
        | Op::Cast(_)
        | Op::Pool(_)
        | Op::GlobalPool(_)
        | Op::InstanceNorm(_)
        | Op::Softmax(_)
        | Op::Hardmax(_)
        | Op::LpNorm(_)
        | Op::Reshape(_)
        | Op::Transpose(_)
        | Op::Concat(_)
        | Op::Split(_)
        | Op::Slice(_)
        | Op::Pad(_)
        | Op::Tile(_)
        | Op::Expand(_)
        | Op::DepthToSpace(_)
        | Op::SpaceToDepth(_)
        | Op::Resize(_)
        | Op::GridSample(_)
        | Op::Gather(_)
        | Op::GatherElements(_)
        | Op::GatherNd(_)
        | Op::ScatterNd(_)
        | Op::ScatterElements(_)
        | Op::TopK(_)
        | Op::ArgReduce(_)
        | Op::CumSum(_)
        | Op::NonZero
        | Op::OneHot(_)
        | Op::Trilu(_)
        | Op::NonMaxSuppression(_)
        | Op::ShapeOf(_)
        | Op::ConstantOfShape(_)
        | Op::Range
        | Op::Reduce(_)
        | Op::QuantizeLinear(_)
        | Op::DynamicQuantizeLinear => false,
    }
}

/// Float intermediate values of the same name, type and shape in both graphs, produced in the
/// result by a layer op (after fusion a layer's output keeps the name of the last fused node's
/// output, so a folded conv+BN is compared with the source's BN output).
fn matching_layers(source: &Graph, result: &Graph) -> (Vec<ValueId>, Vec<ValueId>, Vec<String>) {
    let by_name: HashMap<&str, ValueId> = source
        .nodes
        .iter()
        .flat_map(|n| n.outputs.iter())
        .map(|&v| (source.value(v).name.as_str(), v))
        .collect();
    let mut src = Vec::new();
    let mut res = Vec::new();
    let mut ops = Vec::new();
    for n in &result.nodes {
        if !is_layer(&n.op) {
            continue;
        }
        for &v in &n.outputs {
            let val = result.value(v);
            let Some(&s) = by_name.get(val.name.as_str()) else {
                continue;
            };
            let plain = |g: &Graph, id: ValueId| {
                !g.outputs.contains(&id) && g.value(id).ty.dtype.is_float()
            };
            if plain(result, v) && plain(source, s) && source.ty(s) == &val.ty {
                src.push(s);
                res.push(v);
                ops.push(n.op.name());
            }
        }
    }
    (src, res, ops)
}

/// Splits samples (one tensor per input, samples along axis 0) into the batches the model
/// runs: its own fixed batch size (a remainder that does not fill one is left out), or
/// [`BATCH`] when the batch dimension is symbolic.
pub fn batches_of(g: &Graph, samples: Vec<Tensor>) -> Result<Vec<Vec<Tensor>>> {
    let n = samples
        .first()
        .and_then(|t| t.shape.first())
        .copied()
        .unwrap_or(0);
    let fixed = g
        .inputs
        .first()
        .and_then(|&i| g.ty(i).shape.first().cloned());
    let size = match fixed {
        Some(Dim::Fixed(b)) => b as usize,
        _ => BATCH,
    }
    .max(1);
    if n == 0 || (matches!(fixed, Some(Dim::Fixed(_))) && n < size) {
        return Err(Error::Usage(format!(
            "the calibration set has {n} samples; the model takes batches of {size}"
        )));
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = size.min(n - start);
        if len < size && matches!(fixed, Some(Dim::Fixed(_))) {
            break;
        }
        out.push(samples.iter().map(|t| rows(t, start, len)).collect());
        start += len;
    }
    Ok(out)
}

/// Rows `start..start + len` of a tensor (along axis 0).
fn rows(t: &Tensor, start: usize, len: usize) -> Tensor {
    // A scalar input has no sample axis: every batch gets it whole.
    if t.shape.is_empty() {
        return t.clone();
    }
    let row: usize = t.shape[1..].iter().product::<usize>() * t.dtype.size();
    let mut shape = t.shape.clone();
    shape[0] = len;
    Tensor {
        dtype: t.dtype,
        shape,
        data: t.data.slice(start * row..(start + len) * row),
    }
}

/// Reads a calibration set: one tensor per graph input (samples along axis 0), from a `.npy`
/// (single-input models), a folder (`<input name>.npy` per input; for a single input, every
/// `.npy` in it, joined in file-name order) or an `.npz` (entries named after the inputs, or
/// `arr_0`, `arr_1`… in input order).
pub fn load_samples(g: &Graph, path: &Path) -> Result<Vec<Tensor>> {
    let names: Vec<String> = g.inputs.iter().map(|&i| g.value(i).name.clone()).collect();
    let usage = |m: String| Error::Usage(format!("--calibration {}: {m}", path.display()));
    let tensors = if path.is_dir() {
        from_folder(path, &names).map_err(usage)?
    } else {
        let bytes = std::fs::read(path).map_err(|e| usage(e.to_string()))?;
        if bytes.starts_with(b"PK") {
            from_npz(&bytes, &names).map_err(usage)?
        } else if names.len() == 1 {
            vec![crate::npy::parse(&bytes).map_err(usage)?]
        } else {
            return Err(usage(format!(
                "one .npy for a model with {} inputs ({}); give a folder or an .npz with one array per input",
                names.len(),
                names.join(", ")
            )));
        }
    };
    let mut n_samples = None;
    for (t, &i) in tensors.iter().zip(&g.inputs) {
        let ty = g.ty(i);
        let name = &g.value(i).name;
        if t.dtype != ty.dtype || t.shape.len() != ty.rank() {
            return Err(usage(format!(
                "input '{name}' is {ty}, the data is {}{:?}",
                t.dtype, t.shape
            )));
        }
        for (k, (d, &s)) in ty.shape.iter().zip(&t.shape).enumerate().skip(1) {
            if let Dim::Fixed(f) = d {
                if *f as usize != s {
                    return Err(usage(format!(
                        "input '{name}' is {ty}, the data is {:?} (axis {k} differs)",
                        t.shape
                    )));
                }
            }
        }
        let n = t.shape.first().copied().unwrap_or(1);
        if *n_samples.get_or_insert(n) != n {
            return Err(usage("the inputs hold different numbers of samples".into()));
        }
    }
    Ok(tensors)
}

fn file_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn from_folder(dir: &Path, names: &[String]) -> Result<Vec<Tensor>, String> {
    let per_input: Vec<PathBuf> = names
        .iter()
        .map(|n| dir.join(format!("{}.npy", file_key(n))))
        .collect();
    if per_input.iter().all(|p| p.is_file()) {
        return per_input.iter().map(|p| crate::npy::read(p)).collect();
    }
    if names.len() != 1 {
        let want: Vec<String> = names
            .iter()
            .map(|n| format!("{}.npy", file_key(n)))
            .collect();
        return Err(format!("expected one file per input: {}", want.join(", ")));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err("no .npy files in the folder".into());
    }
    let parts = files
        .iter()
        .map(|p| crate::npy::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![concat_rows(&parts)?])
}

/// Joins tensors of equal trailing shape along axis 0.
fn concat_rows(parts: &[Tensor]) -> Result<Tensor, String> {
    let first = &parts[0];
    let mut n = 0;
    let mut data = Vec::new();
    for t in parts {
        if t.dtype != first.dtype || t.shape.get(1..) != first.shape.get(1..) || t.shape.is_empty()
        {
            return Err(format!(
                "the files hold {}{:?} and {}{:?}: they must differ only in their first axis",
                first.dtype, first.shape, t.dtype, t.shape
            ));
        }
        n += t.shape[0];
        data.extend_from_slice(&t.data);
    }
    let mut shape = first.shape.clone();
    shape[0] = n;
    Tensor::new(first.dtype, shape, Bytes::from(data))
}

/// `.npz` (numpy's zip of `.npy` entries, stored or deflated).
fn from_npz(bytes: &[u8], names: &[String]) -> Result<Vec<Tensor>, String> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable .npz: {e}"))?;
    let entries: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a readable .npz: {e}"))?;
    let mut read = |entry: &str| -> Result<Tensor, String> {
        let mut f = zip.by_name(entry).map_err(|e| format!("{entry}: {e}"))?;
        let mut b = Vec::new();
        f.read_to_end(&mut b).map_err(|e| format!("{entry}: {e}"))?;
        crate::npy::parse(&b).map_err(|e| format!("{entry}: {e}"))
    };
    let by_name: Vec<String> = names
        .iter()
        .map(|n| format!("{}.npy", file_key(n)))
        .collect();
    let positional: Vec<String> = (0..names.len()).map(|i| format!("arr_{i}.npy")).collect();
    let chosen = if by_name.iter().all(|e| entries.contains(e)) {
        by_name
    } else if positional.iter().all(|e| entries.contains(e)) {
        positional
    } else if names.len() == 1 && entries.len() == 1 {
        entries.clone()
    } else {
        return Err(format!(
            "entries {} name none of the inputs ({})",
            entries.join(", "),
            names.join(", ")
        ));
    };
    chosen.iter().map(|e| read(e)).collect()
}

/// Seeded random samples matching a graph's inputs, for callers that need sample data without
/// a calibration set (symbolic dimensions → 1).
pub fn random_batches(g: &Graph, seed: u64) -> Vec<Vec<Tensor>> {
    (0..RANDOM_BATCHES as u64)
        .map(|i| eval::random_inputs(g, seed.wrapping_add(i), 1))
        .collect()
}

/// The batches [`compare`] runs: the calibration set split into batches, or seeded random ones.
pub fn input_batches(g: &Graph, calibration: Option<&Path>, seed: u64) -> Result<Vec<Vec<Tensor>>> {
    match calibration {
        Some(p) => batches_of(g, load_samples(g, p)?),
        None => Ok(random_batches(g, seed)),
    }
}
