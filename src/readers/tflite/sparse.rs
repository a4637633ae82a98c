//! Sparse constants (TFLiteConverter's `EXPERIMENTAL_SPARSITY`: DENSIFY before a convolution,
//! sparse FULLY_CONNECTED weights) made dense on read, following the format of
//! `tensorflow/lite/kernels/internal/utils/sparsity_format_converter.cc`: the dimensions are
//! walked in `traversal_order` (the original ones, then block dimensions, each blocking the
//! original dimension `block_map` names); a DENSE level holds `dense_size` entries, a
//! SPARSE_CSR level the `array_indices` between `array_segments[p]` and `array_segments[p + 1]`
//! of its parent position p. The stored values are the non-zeros in that walk's order.

use crate::ir::{DType, Tensor};
use tract_tflite::tflite::{self as tfl, DimensionType, SparseIndexVector};

/// One level of the walk: a dense count, or CSR segments and indices.
enum Level {
    Dense(usize),
    Csr(Vec<usize>, Vec<usize>),
}

struct Walk<'a> {
    levels: Vec<Level>,
    /// Original dimension of each level, and the block size it multiplies that dimension's
    /// index by first (1 for an original dimension).
    dims: Vec<(usize, Option<usize>)>,
    shape: &'a [usize],
    values: &'a [u8],
    elem: usize,
    next: usize,
    out: Vec<u8>,
}

const MAX_LEVELS: usize = 12;
/// A sparse file's dense constants are allocated on read: a bound keeps a lying shape from
/// asking for more.
const MAX_BYTES: usize = 1 << 30;

/// The dense tensor of `shape` that `values` (the stored non-zeros) and the tensor's sparsity
/// parameters describe.
pub fn densify(
    sp: &tfl::SparsityParameters,
    dt: DType,
    shape: Vec<usize>,
    values: &[u8],
    what: &str,
) -> Result<Tensor, String> {
    let bad = |why: &str| format!("{what}: sparsity parameters: {why}");
    let order: Vec<usize> = ints(sp.traversal_order().map(|v| v.iter().collect()))?;
    let block_map: Vec<usize> = ints(sp.block_map().map(|v| v.iter().collect()))?;
    let meta = sp.dim_metadata().ok_or_else(|| bad("no dim_metadata"))?;
    let rank = shape.len();
    if order.len() != rank + block_map.len()
        || meta.len() != order.len()
        || order.len() > MAX_LEVELS
    {
        return Err(bad("traversal_order, block_map and dim_metadata disagree"));
    }
    let mut levels = Vec::with_capacity(order.len());
    for m in meta.iter() {
        levels.push(if m.format() == DimensionType::SPARSE_CSR {
            let seg = index_vector(m.array_segments_type(), &m, true)
                .ok_or_else(|| bad("bad array_segments"))?;
            let idx = index_vector(m.array_indices_type(), &m, false)
                .ok_or_else(|| bad("bad array_indices"))?;
            Level::Csr(seg, idx)
        } else {
            Level::Dense(usize::try_from(m.dense_size()).map_err(|_| bad("negative dense_size"))?)
        });
    }
    // Block sizes: the dense size of each block level.
    let mut dims = Vec::with_capacity(order.len());
    for (level, &o) in order.iter().enumerate() {
        if o < rank {
            dims.push((o, None));
            continue;
        }
        let orig = *block_map
            .get(o - rank)
            .ok_or_else(|| bad("traversal_order out of range"))?;
        let size = match &levels[level] {
            Level::Dense(n) => *n,
            Level::Csr(..) => return Err(bad("a sparse block dimension")),
        };
        if orig >= rank || size == 0 {
            return Err(bad("block_map out of range"));
        }
        dims.push((orig, Some(size)));
    }
    // Each original dimension once, before its blocks; a dense level walks exactly the
    // dimension's size (over its blocks), so the walk visits no more than the dense tensor.
    let mut seen = vec![false; rank];
    for (level, &(d, block)) in dims.iter().enumerate() {
        match block {
            None if seen[d] => return Err(bad("traversal_order repeats a dimension")),
            None => seen[d] = true,
            Some(_) if !seen[d] => return Err(bad("a block dimension before its dimension")),
            Some(_) => continue,
        }
        let blocks: usize = dims
            .iter()
            .filter(|&&(e, b)| e == d && b.is_some())
            .map(|&(_, b)| b.unwrap_or(1))
            .product();
        if blocks == 0 || !shape[d].is_multiple_of(blocks) {
            return Err(bad("a block size that does not divide its dimension"));
        }
        if let Level::Dense(n) = levels[level] {
            if n != shape[d] / blocks {
                return Err(bad("a dense_size that is not its dimension's"));
            }
        }
    }
    let elem = dt.size();
    let count: usize = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n.saturating_mul(elem) <= MAX_BYTES)
        .ok_or_else(|| bad("dense size past 1 GiB"))?;
    let mut w = Walk {
        levels,
        dims,
        shape: &shape,
        values,
        elem,
        next: 0,
        out: vec![0; count.checked_mul(elem).ok_or_else(|| bad("too large"))?],
    };
    let mut at = vec![0usize; order.len()];
    w.populate(&mut at, 0, 0).map_err(|e| bad(&e))?;
    if w.next * elem != values.len() {
        return Err(bad(&format!(
            "{} values stored, {} walked",
            values.len() / elem.max(1),
            w.next
        )));
    }
    Tensor::new(dt, shape.clone(), w.out.into()).map_err(|e| format!("{what}: {e}"))
}

fn ints(v: Option<Vec<i32>>) -> Result<Vec<usize>, String> {
    v.unwrap_or_default()
        .into_iter()
        .map(|x| usize::try_from(x).map_err(|_| format!("negative sparsity index {x}")))
        .collect()
}

fn index_vector(
    t: SparseIndexVector,
    m: &tfl::DimensionMetadata,
    segments: bool,
) -> Option<Vec<usize>> {
    let (a, b, c) = if segments {
        (
            m.array_segments_as_int_32_vector(),
            m.array_segments_as_uint_16_vector(),
            m.array_segments_as_uint_8_vector(),
        )
    } else {
        (
            m.array_indices_as_int_32_vector(),
            m.array_indices_as_uint_16_vector(),
            m.array_indices_as_uint_8_vector(),
        )
    };
    match t {
        SparseIndexVector::Int32Vector => a?
            .values()?
            .iter()
            .map(|x| usize::try_from(x).ok())
            .collect(),
        SparseIndexVector::Uint16Vector => Some(b?.values()?.iter().map(usize::from).collect()),
        SparseIndexVector::Uint8Vector => Some(c?.values()?.iter().map(usize::from).collect()),
        _ => None,
    }
}

impl Walk<'_> {
    fn populate(&mut self, at: &mut [usize], level: usize, prev: usize) -> Result<(), String> {
        if level == at.len() {
            return self.place(at);
        }
        match &self.levels[level] {
            Level::Dense(n) => {
                let n = *n;
                for i in 0..n {
                    at[level] = i;
                    let p = prev
                        .checked_mul(n)
                        .and_then(|p| p.checked_add(i))
                        .ok_or("index overflow")?;
                    self.populate(at, level + 1, p)?;
                }
            }
            Level::Csr(seg, idx) => {
                let (Some(&lo), Some(&hi)) = (seg.get(prev), seg.get(prev + 1)) else {
                    return Err(format!("array_segments has no entry {}", prev + 1));
                };
                if lo > hi || hi > idx.len() {
                    return Err("array_segments out of order or past array_indices".into());
                }
                let picked: Vec<usize> = idx[lo..hi].to_vec();
                for (k, i) in picked.into_iter().enumerate() {
                    at[level] = i;
                    self.populate(at, level + 1, lo + k)?;
                }
            }
        }
        Ok(())
    }

    /// Writes the next stored value at the dense position the walk indices `at` name.
    fn place(&mut self, at: &[usize]) -> Result<(), String> {
        let mut pos = vec![0usize; self.shape.len()];
        for (&(d, block), &i) in self.dims.iter().zip(at) {
            pos[d] = match block {
                None => i,
                Some(b) => pos[d].saturating_mul(b).saturating_add(i),
            };
        }
        let mut flat = 0usize;
        for (&p, &n) in pos.iter().zip(self.shape) {
            if p >= n {
                return Err(format!("index {p} past dimension {n}"));
            }
            flat = flat * n + p;
        }
        let e = self.elem;
        let src = self.next * e;
        let v = self
            .values
            .get(src..src + e)
            .ok_or("fewer values stored than walked")?;
        self.out[flat * e..flat * e + e].copy_from_slice(v);
        self.next += 1;
        Ok(())
    }
}
