//! Magnitude pruning: the smallest-magnitude weights of convolution, dense, embedding and
//! recurrent kernels set to zero until a target sparsity is reached, over all kernels together
//! (`Global`, one threshold) or kernel by kernel (`Layer`). Biases and tensors under
//! [`MIN_ELEMENTS`] are left alone: they hold a negligible share of the bytes and much of the
//! sensitivity (first convolutions, small classifier heads).
//!
//! The threshold is found exactly without sorting or copying the weights: a radix select over
//! the bit patterns of |w| (non-negative IEEE floats order like their bits), one 65,536-bin
//! histogram of the high 16 bits, then one of the low 16 bits inside the chosen bin. Every
//! kernel is read twice and written once; kernels are processed in parallel.

use crate::ir::{DType, Graph, Op, Tensor, ValueId};
use crate::parallel;
use bytes::Bytes;

/// Kernels smaller than this are not pruned or clustered.
pub const MIN_ELEMENTS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One magnitude threshold over every prunable kernel.
    Global,
    /// Each kernel pruned to the target sparsity on its own.
    Layer,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TensorSparsity {
    pub name: String,
    pub elements: usize,
    pub zeros_before: usize,
    pub zeros_after: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PruneReport {
    pub target: f64,
    pub scope: Scope,
    /// Zeros / elements over the pruned kernels after pruning.
    pub achieved: f64,
    pub elements: usize,
    pub zeros: usize,
    /// Kernels left alone because they are smaller than [`MIN_ELEMENTS`].
    pub skipped_small: usize,
    pub tensors: Vec<TensorSparsity>,
}

/// Whether input `i` of `n` is a kernel (weights pruning and clustering may change), given the
/// constant's rank. Biases, normalization parameters and shape operands are not.
fn kernel_input(op: &Op, i: usize, rank: usize) -> bool {
    match op {
        Op::Conv(_) | Op::ConvTranspose(_) => i == 1,
        Op::MatMul(_) => rank >= 2,
        Op::Einsum(_) => rank >= 2,
        Op::Gather(_) => i == 0 && rank == 2,
        Op::Lstm(_) | Op::Gru(_) => i == 1 || i == 2,
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Activation(_)
        | Op::Where
        | Op::Cast(_)
        | Op::Pool(_)
        | Op::GlobalPool(_)
        | Op::BatchNorm(_)
        | Op::LayerNorm(_)
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
        | Op::DequantizeLinear(_)
        | Op::DynamicQuantizeLinear
        | Op::ConvInteger(_)
        | Op::MatMulInteger
        | Op::QLinearConv(_)
        | Op::QLinearMatMul
        | Op::Dynamic(_)
        | Op::If(_)
        | Op::Loop(_) => false,
    }
}

/// Float constants every use of which is a kernel input, with at least `min_elements`
/// elements; and how many kernels were skipped as too small.
pub fn kernel_constants(g: &Graph, min_elements: usize) -> (Vec<ValueId>, usize) {
    let mut kernel_uses = vec![0usize; g.values.len()];
    let mut other_uses = vec![0usize; g.values.len()];
    for n in &g.nodes {
        for (i, &v) in n.inputs.iter().enumerate() {
            match g.constant(v) {
                Some(t) if kernel_input(&n.op, i, t.shape.len()) => kernel_uses[v.0] += 1,
                _ => other_uses[v.0] += 1,
            }
        }
    }
    for &o in &g.outputs {
        other_uses[o.0] += 1;
    }
    let mut small = 0;
    let mut out = Vec::new();
    for (i, v) in g.values.iter().enumerate() {
        let Some(t) = &v.constant else { continue };
        if kernel_uses[i] == 0 || other_uses[i] > 0 || !t.dtype.is_float() || v.quant.is_some() {
            continue;
        }
        if t.len() < min_elements {
            small += 1;
        } else {
            out.push(ValueId(i));
        }
    }
    (out, small)
}

/// Calls `f(index, key)` for every element, `key` = the bits of `|x|` as an f32 (ordered like
/// the magnitudes). The dtype match sits outside the loops.
pub(crate) fn for_each_key(t: &Tensor, mut f: impl FnMut(usize, u32)) {
    let b = &t.data[..];
    const ABS: u32 = 0x7fff_ffff;
    match t.dtype {
        DType::F32 => b
            .chunks_exact(4)
            .enumerate()
            .for_each(|(i, c)| f(i, u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & ABS)),
        DType::F16 => b.chunks_exact(2).enumerate().for_each(|(i, c)| {
            f(
                i,
                half::f16::from_le_bytes([c[0], c[1]]).to_f32().to_bits() & ABS,
            )
        }),
        DType::BF16 => b.chunks_exact(2).enumerate().for_each(|(i, c)| {
            f(
                i,
                half::bf16::from_le_bytes([c[0], c[1]]).to_f32().to_bits() & ABS,
            )
        }),
        DType::F64 => b.chunks_exact(8).enumerate().for_each(|(i, c)| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            f(i, (f64::from_le_bytes(a) as f32).to_bits() & ABS)
        }),
        _ => {}
    }
}

const BINS: usize = 1 << 16;

/// Histogram of the high (`bin == None`) or, inside high bin `bin`, the low 16 bits of the keys.
fn histogram(t: &Tensor, bin: Option<u32>) -> Vec<u64> {
    let mut h = vec![0u64; BINS];
    match bin {
        None => for_each_key(t, |_, k| h[(k >> 16) as usize] += 1),
        Some(b) => for_each_key(t, |_, k| {
            if k >> 16 == b {
                h[(k & 0xffff) as usize] += 1
            }
        }),
    }
    h
}

/// Index of the first bin where the running count reaches `k` (1-based), and the count before it.
fn crossing(h: &[u64], k: u64) -> (usize, u64) {
    let mut before = 0;
    for (i, &c) in h.iter().enumerate() {
        if before + c >= k {
            return (i, before);
        }
        before += c;
    }
    (h.len() - 1, before)
}

/// The key of the `k`-th smallest magnitude (1-based) over `tensors`, `k >= 1`.
fn kth_key(tensors: &[&Tensor], k: u64) -> u32 {
    let merge = |hs: Vec<Vec<u64>>| {
        hs.into_iter().fold(vec![0u64; BINS], |mut a, h| {
            a.iter_mut().zip(h).for_each(|(x, y)| *x += y);
            a
        })
    };
    let high = merge(parallel::map(tensors, |t| t.len(), |t| histogram(t, None)));
    let (hi, before) = crossing(&high, k);
    let low = merge(parallel::map(
        tensors,
        |t| t.len(),
        |t| histogram(t, Some(hi as u32)),
    ));
    let (lo, _) = crossing(&low, k - before);
    ((hi as u32) << 16) | lo as u32
}

/// `t` with every element whose magnitude key is `<= threshold` set to zero; and the zero
/// counts before and after.
fn zero_below(t: &Tensor, threshold: Option<u32>) -> (Tensor, usize, usize) {
    let size = t.dtype.size();
    let mut data = t.data.to_vec();
    let (mut before, mut after) = (0, 0);
    for_each_key(t, |i, k| {
        if k == 0 {
            before += 1;
        }
        if threshold.is_some_and(|th| k <= th) {
            data[i * size..(i + 1) * size].fill(0);
            after += 1;
        } else if k == 0 {
            after += 1;
        }
    });
    let out = Tensor {
        dtype: t.dtype,
        shape: t.shape.clone(),
        data: Bytes::from(data),
    };
    (out, before, after)
}

/// Prunes `g`'s kernels to `sparsity` (0 ≤ sparsity < 1).
pub fn prune(g: &mut Graph, sparsity: f64, scope: Scope) -> Result<PruneReport, String> {
    if !(0.0..1.0).contains(&sparsity) {
        return Err(format!("sparsity {sparsity} is outside [0, 1)"));
    }
    let (ids, skipped_small) = kernel_constants(g, MIN_ELEMENTS);
    let tensors: Vec<&Tensor> = ids.iter().filter_map(|&v| g.constant(v)).collect();
    let target = |n: usize| (sparsity * n as f64).floor() as u64;
    let global = match scope {
        Scope::Global => {
            let total: usize = tensors.iter().map(|t| t.len()).sum();
            let k = target(total);
            (k > 0).then(|| kth_key(&tensors, k))
        }
        Scope::Layer => None,
    };
    let done = parallel::map(
        &tensors,
        |t| t.len(),
        |t| {
            let threshold = match scope {
                Scope::Global => global,
                Scope::Layer => {
                    let k = target(t.len());
                    (k > 0).then(|| kth_key(&[t], k))
                }
            };
            let done = zero_below(t, threshold);
            // The source is read: its file pages need not stay resident next to the result.
            crate::ir::mapped::release_pages(&t.data);
            done
        },
    );
    let mut report = PruneReport {
        target: sparsity,
        scope,
        achieved: 0.0,
        elements: 0,
        zeros: 0,
        skipped_small,
        tensors: Vec::with_capacity(ids.len()),
    };
    for (&id, (t, before, after)) in ids.iter().zip(done) {
        report.elements += t.len();
        report.zeros += after;
        report.tensors.push(TensorSparsity {
            name: g.value(id).name.clone(),
            elements: t.len(),
            zeros_before: before,
            zeros_after: after,
        });
        g.value_mut(id).constant = Some(t);
    }
    report.achieved = report.zeros as f64 / report.elements.max(1) as f64;
    Ok(report)
}

/// Counts the bytes written to it.
struct Count(u64);

impl std::io::Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Size of the gzip members that gzip size figures are made of: large enough that splitting
/// costs a fraction of a percent of compression, small enough to keep every core busy.
pub const GZIP_MEMBER: usize = 8 << 20;

/// The gzip (level 6, gzip's default) size of one member holding `bytes`.
fn gzip_member_len(bytes: &[u8]) -> u64 {
    let mut e = flate2::write::GzEncoder::new(Count(0), flate2::Compression::default());
    // Writing into a counter cannot fail.
    let _ = std::io::Write::write_all(&mut e, bytes);
    e.finish().map_or(0, |c| c.0)
}

/// The gzip size of several byte strings, each compressed as independent members of at most
/// [`GZIP_MEMBER`] bytes (what `pigz --independent` writes; `gunzip` reads it as one file), the
/// members compressed in parallel.
pub fn gzip_len(parts: &[&[u8]]) -> u64 {
    let members: Vec<&[u8]> = parts.iter().flat_map(|p| p.chunks(GZIP_MEMBER)).collect();
    parallel::map(
        &members,
        |m| m.len(),
        |m| {
            let n = gzip_member_len(m);
            crate::ir::mapped::release_pages(m);
            n
        },
    )
    .into_iter()
    .sum()
}

/// The gzip size (as [`gzip_len`]) of a file, or of every file of a folder.
pub fn gzip_len_path(path: &std::path::Path) -> Result<u64, String> {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let maps = files
        .iter()
        .map(|f| crate::ir::mapped::map_file(f))
        .collect::<Result<Vec<_>, _>>()?;
    let parts: Vec<&[u8]> = maps.iter().map(|m| &m[..]).collect();
    Ok(gzip_len(&parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_sizes_are_real_gzip() {
        use std::io::Read;
        let data: Vec<u8> = (0..(GZIP_MEMBER * 2 + 1000))
            .map(|i| (i % 251) as u8)
            .collect();
        let n = gzip_len(&[&data]);
        // The members concatenated decode to the input.
        let mut all = Vec::new();
        for m in data.chunks(GZIP_MEMBER) {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut e, m).unwrap();
            all.extend(e.finish().unwrap());
        }
        assert_eq!(n, all.len() as u64);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&all[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn kth_key_is_exact() {
        let v: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 5000) as f32 - 2500.5)
            .collect();
        let t = Tensor::from_f32(vec![50, 100], &v);
        let mut mags: Vec<f32> = v.iter().map(|x| x.abs()).collect();
        mags.sort_by(f32::total_cmp);
        for k in [1u64, 2, 100, 2500, 4999, 5000] {
            let key = kth_key(&[&t], k);
            assert_eq!(f32::from_bits(key), mags[k as usize - 1], "k = {k}");
        }
    }
}
