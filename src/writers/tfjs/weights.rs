//! TF.js weights: the `weightsManifest` of `model.json` and the binary shards it names.
//!
//! Follows what `@tensorflow/tfjs-core` 4.22 reads (`io/io_utils.ts` `decodeWeights`,
//! `io/weights_loader.ts`) and what the Python converter writes (`write_weights.py`,
//! `quantization.py`):
//! - One weight group. The loader concatenates a group's shards in `paths` order and slices
//!   the weights out in `weights` order, so a weight may straddle two shards; every shard but
//!   the last is exactly the shard size.
//! - TF.js weight dtypes are `float32`, `int32` and `bool` only: f16/bf16/f64 are stored as
//!   float32 and integers as int32 (an integer that does not fit is an error naming the weight),
//!   as the Python converter's automatic conversion does.
//! - Quantization applies to float32 weights only (the converter leaves int32 and bool alone):
//!   uint8/uint16 affine per tensor, `value = q * scale + min`, with the range nudged so that
//!   0.0 is exactly representable when the range covers it (TFLite's `NudgeQuantizationRange`,
//!   as `_get_affine_quantization_range` does); a constant tensor gets `scale = 1`, `min` = its
//!   value and all-zero codes. float16 stores IEEE half (round to nearest even). The manifest
//!   entry keeps `dtype: "float32"` and gets `quantization: {dtype, min, scale, original_dtype}`.
//! - Unlike the Python converter, weights under [`SMALL_WEIGHT_ELEMENTS`] stay float32 under every
//!   quantization (biases, per-channel scales: under 4 KB each, and a bias or requantization
//!   multiplier rounded to uint8 or float16 costs accuracy for no size), as TFLite's converter
//!   keeps small constants float.

use crate::error::{failed, Result};
use crate::ir::DType;
use crate::writers::folder::AtomicDir;
use crate::writers::WriteReport;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::Path;

/// Float weights with fewer elements stay float32 when the others are quantized.
pub const SMALL_WEIGHT_ELEMENTS: usize = 1024;

/// The Python converter's default shard size: the largest file every major browser caches.
pub const DEFAULT_SHARD_SIZE: u64 = 4 * 1024 * 1024;

/// How float32 weights are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightQuant {
    #[default]
    None,
    /// uint8 affine per tensor (`--int8`).
    Uint8,
    /// uint16 affine per tensor (`--quantize-uint16`).
    Uint16,
    /// IEEE float16 (`--float16`).
    Float16,
}

/// Options of a TF.js output folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderOptions {
    /// Largest shard in bytes; `None` writes one shard.
    pub shard_size: Option<u64>,
    pub quant: WeightQuant,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            shard_size: Some(DEFAULT_SHARD_SIZE),
            quant: WeightQuant::None,
        }
    }
}

/// A weight as the manifest names it (layers models: `dense/kernel`; graph models: the `Const`
/// node's name). Cloning a [`Tensor`] shares its bytes.
pub use crate::writers::tf_graph::NamedWeight;

/// How one weight is stored.
enum Stored {
    F32,
    I32,
    Bool,
    Affine { bits16: bool, min: f64, scale: f64 },
    Half,
}

struct Planned<'a> {
    weight: &'a NamedWeight,
    stored: Stored,
    bytes: u64,
}

impl Stored {
    fn element_size(&self) -> u64 {
        match self {
            Stored::F32 | Stored::I32 => 4,
            Stored::Bool => 1,
            Stored::Affine { bits16, .. } => 1 + *bits16 as u64,
            Stored::Half => 2,
        }
    }
}

/// uint8/uint16 affine parameters `(min, scale)` as `quantization.py` computes them.
pub fn affine_params(lo: f64, hi: f64, bits16: bool) -> (f64, f64) {
    if lo == hi {
        return (lo, 1.0);
    }
    let qmax = if bits16 { 65535.0 } else { 255.0 };
    let scale = (hi - lo) / qmax;
    if lo <= 0.0 && 0.0 <= hi {
        let zero_point = (-lo / scale).round_ties_even();
        (-zero_point * scale, scale)
    } else {
        (lo, scale)
    }
}

/// The code of `x` under `(min, scale)`, clamped to the nudged range as the converter does.
fn affine_code(x: f64, min: f64, scale: f64, qmax: f64) -> f64 {
    let max = qmax * scale + min;
    ((x.clamp(min, max) - min) / scale)
        .round_ties_even()
        .clamp(0.0, qmax)
}

fn plan<'a>(w: &'a NamedWeight, quant: WeightQuant) -> Result<Planned<'a>> {
    let t = &w.tensor;
    let stored = match t.dtype {
        DType::F32 | DType::F16 | DType::BF16 | DType::F64 => match quant {
            WeightQuant::None => Stored::F32,
            _ if t.len() < SMALL_WEIGHT_ELEMENTS => Stored::F32,
            WeightQuant::Float16 => Stored::Half,
            WeightQuant::Uint8 | WeightQuant::Uint16 => {
                let bits16 = quant == WeightQuant::Uint16;
                let v = t.to_f64s();
                // Stored values are float32: take the range of what would be stored.
                let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
                for &x in &v {
                    let x = x as f32 as f64;
                    if !x.is_finite() {
                        return Err(failed(format!(
                            "weight '{}': {x} cannot be stored as an affine integer",
                            w.name
                        )));
                    }
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
                if v.is_empty() {
                    (lo, hi) = (0.0, 0.0);
                }
                let (min, scale) = affine_params(lo, hi, bits16);
                Stored::Affine { bits16, min, scale }
            }
        },
        DType::Bool => Stored::Bool,
        DType::I8
        | DType::U8
        | DType::I16
        | DType::U16
        | DType::I32
        | DType::U32
        | DType::I64
        | DType::U64 => {
            if t.dtype.size() >= 4 && t.dtype != DType::I32 {
                let vals = t.to_i64s().unwrap_or_default();
                let big = vals
                    .iter()
                    .any(|&x| x < i32::MIN as i64 || x > i32::MAX as i64)
                    || (t.dtype == DType::U64 && t.data.chunks_exact(8).any(|c| c[7] & 0x80 != 0));
                if big {
                    return Err(failed(format!(
                        "weight '{}' ({}): a value does not fit TF.js's int32",
                        w.name, t.dtype
                    )));
                }
            }
            Stored::I32
        }
    };
    let bytes = stored.element_size() * t.len() as u64;
    Ok(Planned {
        weight: w,
        stored,
        bytes,
    })
}

/// Appends the stored bytes of one weight to `out` (cleared first).
fn encode(p: &Planned, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(p.bytes as usize);
    let t = &p.weight.tensor;
    match p.stored {
        Stored::F32 if t.dtype == DType::F32 => out.extend_from_slice(&t.data),
        Stored::F32 => out.extend(
            t.to_f64s()
                .into_iter()
                .flat_map(|x| (x as f32).to_le_bytes()),
        ),
        Stored::I32 if t.dtype == DType::I32 => out.extend_from_slice(&t.data),
        Stored::I32 => out.extend(
            t.to_i64s()
                .unwrap_or_default()
                .into_iter()
                .flat_map(|x| (x as i32).to_le_bytes()),
        ),
        Stored::Bool => out.extend(t.data.iter().map(|&b| (b != 0) as u8)),
        Stored::Half => out.extend(
            t.to_f64s()
                .into_iter()
                .flat_map(|x| half::f16::from_f32(x as f32).to_le_bytes()),
        ),
        Stored::Affine { bits16, min, scale } => {
            let qmax = if bits16 { 65535.0 } else { 255.0 };
            for x in t.to_f64s() {
                let q = affine_code(x as f32 as f64, min, scale, qmax);
                if bits16 {
                    out.extend((q as u16).to_le_bytes());
                } else {
                    out.push(q as u8);
                }
            }
        }
    }
}

fn tfjs_dtype(s: &Stored) -> &'static str {
    match s {
        Stored::I32 => "int32",
        Stored::Bool => "bool",
        Stored::F32 | Stored::Affine { .. } | Stored::Half => "float32",
    }
}

fn manifest_entry(p: &Planned) -> Value {
    let mut e = Map::new();
    e.insert("name".into(), json!(p.weight.name));
    e.insert("shape".into(), json!(p.weight.tensor.shape));
    e.insert("dtype".into(), json!(tfjs_dtype(&p.stored)));
    match p.stored {
        Stored::Affine { bits16, min, scale } => {
            e.insert(
                "quantization".into(),
                json!({
                    "dtype": if bits16 { "uint16" } else { "uint8" },
                    "min": min,
                    "scale": scale,
                    "original_dtype": "float32",
                }),
            );
        }
        Stored::Half => {
            e.insert(
                "quantization".into(),
                json!({"dtype": "float16", "original_dtype": "float32"}),
            );
        }
        Stored::F32 | Stored::I32 | Stored::Bool => {}
    }
    Value::Object(e)
}

/// Shard file names and sizes for `total` bytes: exactly `limit` each but the last.
pub fn shard_sizes(total: u64, limit: Option<u64>) -> Vec<u64> {
    let limit = match limit {
        Some(l) if l > 0 => l,
        _ => total.max(1),
    };
    let n = total.div_ceil(limit);
    (0..n).map(|i| limit.min(total - i * limit)).collect()
}

/// `group{g}-shard{i}of{n}.bin`, as the Python converter and this writer name shards.
fn is_shard_name(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let Some(rest) = name
        .strip_prefix("group")
        .and_then(|r| r.strip_suffix(".bin"))
    else {
        return false;
    };
    let Some((g, rest)) = rest.split_once("-shard") else {
        return false;
    };
    let Some((i, n)) = rest.split_once("of") else {
        return false;
    };
    digits(g) && digits(i) && digits(n)
}

/// Writes a byte stream into consecutive shard files of the given sizes.
struct ShardWriter<'a> {
    dir: &'a Path,
    names: &'a [String],
    sizes: &'a [u64],
    index: usize,
    left: u64,
    file: Option<std::io::BufWriter<std::fs::File>>,
    /// Shards written, their write-back started, waiting for `sync_all`.
    written: Vec<std::fs::File>,
}

impl ShardWriter<'_> {
    fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.file.is_none() || self.left == 0 {
                self.finish_file()?;
                // The shards were planned from the weights' shapes: bytes beyond them mean a
                // tensor holds more than its shape says (a bug upstream, not worth a panic).
                let (Some(name), Some(&size)) =
                    (self.names.get(self.index), self.sizes.get(self.index))
                else {
                    return Err(failed(format!(
                        "{}: the weights hold more bytes than their shapes declare",
                        self.dir.display()
                    )));
                };
                let path = self.dir.join(name);
                let f = std::fs::File::create(&path).map_err(super::super::io_err(&path))?;
                self.file = Some(std::io::BufWriter::with_capacity(1 << 20, f));
                self.left = size;
                self.index += 1;
            }
            let n = (self.left as usize).min(data.len());
            if let Some(f) = self.file.as_mut() {
                f.write_all(&data[..n])
                    .map_err(|e| failed(format!("{}: {e}", self.dir.display())))?;
            }
            self.left -= n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    /// Closes the shard being written and starts writing it back to the disk; `sync` waits.
    fn finish_file(&mut self) -> Result<()> {
        if let Some(f) = self.file.take() {
            let f = f
                .into_inner()
                .map_err(|e| failed(format!("{}: {}", self.dir.display(), e.error())))?;
            crate::writers::start_writeback(&f);
            self.written.push(f);
            // A bounded number stay open (a model of thousands of shards must not run out of
            // file descriptors): the oldest, whose write-back has had the longest, is waited
            // for first.
            if self.written.len() > PENDING_SHARDS {
                let oldest = self.written.remove(0);
                oldest
                    .sync_all()
                    .map_err(|e| failed(format!("{}: {e}", self.dir.display())))?;
            }
        }
        Ok(())
    }

    /// Closes the last shard and waits until every shard is on the disk. Each shard's
    /// write-back started when it was closed, so the waits overlap the writing of the next
    /// ones instead of following each other.
    fn sync(&mut self) -> Result<()> {
        self.finish_file()?;
        for f in self.written.drain(..) {
            f.sync_all()
                .map_err(|e| failed(format!("{}: {e}", self.dir.display())))?;
        }
        Ok(())
    }
}

/// Shards closed and being written back at once, at most (see `ShardWriter::finish_file`).
const PENDING_SHARDS: usize = 32;

/// Writes `model.json` and the weight shards into the folder `out`, atomically (a temporary
/// folder beside it, then a rename). `model` holds the format-specific fields (`format`,
/// `modelTopology`, `signature`, `generatedBy`, …); this adds `weightsManifest` and
/// `convertedBy`, and `generatedBy` when absent. Keys are written sorted (serde_json's map), so
/// the same arguments give byte-identical folders. The report's `bytes` counts model.json and
/// the shards; `nodes` is 0 (the caller knows its node or layer count).
///
/// Used by both the layers writer (`layers/`) and the graph writer (`graph/`): give the
/// weights in the order the model reads them (layers models: the order of the layers' weights;
/// graph models: any, each named after its `Const` node). Names must be unique.
pub fn write_folder(
    out: &Path,
    mut model: Map<String, Value>,
    weights: &[NamedWeight],
    opts: &FolderOptions,
) -> Result<WriteReport> {
    let mut seen = std::collections::HashSet::new();
    for w in weights {
        if !seen.insert(w.name.as_str()) {
            return Err(failed(format!(
                "{}: two weights are named '{}'",
                out.display(),
                w.name
            )));
        }
    }
    let planned = weights
        .iter()
        .map(|w| plan(w, opts.quant))
        .collect::<Result<Vec<_>>>()?;
    let total: u64 = planned.iter().map(|p| p.bytes).sum();
    let sizes = shard_sizes(total, opts.shard_size);
    let names: Vec<String> = (0..sizes.len())
        .map(|i| format!("group1-shard{}of{}.bin", i + 1, sizes.len()))
        .collect();
    let manifest = json!([{
        "paths": names,
        "weights": planned.iter().map(manifest_entry).collect::<Vec<_>>(),
    }]);
    model.insert("weightsManifest".into(), manifest);
    model.insert(
        "convertedBy".into(),
        json!(format!("mdeploy {}", env!("CARGO_PKG_VERSION"))),
    );
    model
        .entry("generatedBy")
        .or_insert_with(|| json!("mdeploy"));
    let text = serde_json::to_vec(&Value::Object(model))
        .map_err(|e| failed(format!("{}: model.json: {e}", out.display())))?;

    let dir = AtomicDir::create(out, "TF.js", &|name| {
        name == "model.json" || is_shard_name(name)
    })?;
    let mut shards = ShardWriter {
        dir: dir.path(),
        names: &names,
        sizes: &sizes,
        index: 0,
        left: 0,
        file: None,
        written: Vec::new(),
    };
    let mut buf = Vec::new();
    for p in &planned {
        let t = &p.weight.tensor;
        match p.stored {
            // Stored as they are: straight from the (shared, often mapped) tensor bytes.
            Stored::F32 if t.dtype == DType::F32 => shards.write(&t.data)?,
            Stored::I32 if t.dtype == DType::I32 => shards.write(&t.data)?,
            _ => {
                encode(p, &mut buf);
                shards.write(&buf)?;
            }
        }
    }
    shards.sync()?;
    let json_path = dir.path().join("model.json");
    let mut f = std::fs::File::create(&json_path).map_err(super::super::io_err(&json_path))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(super::super::io_err(&json_path))?;
    dir.commit()?;
    let mut files = vec![out.join("model.json")];
    files.extend(names.iter().map(|n| out.join(n)));
    Ok(WriteReport {
        files,
        bytes: text.len() as u64 + total,
        nodes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Tensor;

    #[test]
    fn shards_split_exactly_at_the_limit() {
        assert_eq!(shard_sizes(2500, Some(1000)), vec![1000, 1000, 500]);
        assert_eq!(shard_sizes(2000, Some(1000)), vec![1000, 1000]);
        assert_eq!(shard_sizes(2500, None), vec![2500]);
        assert!(shard_sizes(0, Some(1000)).is_empty());
    }

    #[test]
    fn only_tfjs_files_count_as_a_previous_output() {
        assert!(is_shard_name("group1-shard1of1.bin"));
        assert!(is_shard_name("group12-shard3of40.bin"));
        assert!(!is_shard_name("group1-shard1of.bin"));
        assert!(!is_shard_name("index.html"));
        let dir = std::env::temp_dir().join(format!("mdeploy-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "keep").unwrap();
        assert!(
            AtomicDir::create(&dir, "TF.js", &|n| n == "model.json" || is_shard_name(n)).is_err()
        );
        assert!(dir.join("index.html").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn affine_range_keeps_zero_exact() {
        let (min, scale) = affine_params(-0.1, 1.2, false);
        let zero = affine_code(0.0, min, scale, 255.0);
        assert_eq!(zero * scale + min, 0.0);
        assert!((scale - 1.3 / 255.0).abs() < 1e-12);
        // A range not covering zero is kept as is.
        assert_eq!(affine_params(0.5, 1.5, false), (0.5, 1.0 / 255.0));
        // A constant tensor: all codes zero, value in min.
        assert_eq!(affine_params(0.25, 0.25, true), (0.25, 1.0));
    }

    #[test]
    fn codes_stay_within_half_a_step() {
        let n = SMALL_WEIGHT_ELEMENTS + 100;
        let v: Vec<f32> = (0..n).map(|i| (i as f32 - 370.0) * 0.0013).collect();
        let w = NamedWeight {
            name: "w".into(),
            tensor: Tensor::from_f32(vec![n], &v),
        };
        let p = plan(&w, WeightQuant::Uint8).unwrap();
        let Stored::Affine { min, scale, .. } = p.stored else {
            panic!("not affine")
        };
        let mut out = Vec::new();
        encode(&p, &mut out);
        assert_eq!(out.len(), n);
        // A small weight (a bias) stays float32.
        let small = NamedWeight {
            name: "b".into(),
            tensor: Tensor::from_f32(vec![100], &v[..100]),
        };
        assert!(matches!(
            plan(&small, WeightQuant::Uint8).unwrap().stored,
            Stored::F32
        ));
        for (q, x) in out.iter().zip(&v) {
            let back = *q as f64 * scale + min;
            assert!(
                (back - *x as f64).abs() <= scale * 0.5 + 1e-9,
                "{x} -> {back}"
            );
        }
    }
}
