//! Weight clustering: each kernel (the tensors pruning selects, prune.rs) replaced by at most
//! `k` distinct values, the centroids of a 1-D k-means over its elements (k-means++ seeding
//! from a fixed seed, then Lloyd iterations), so the model compresses well (and a following
//! int8 quantization keeps at most `k` levels per tensor).
//!
//! The iterations run on a 65,536-bin histogram (count and exact sum per bin) of the tensor's
//! range rather than on the elements: linear in the elements, no sorted copy. The last step
//! assigns every element to its nearest centroid and recomputes each centroid as the exact mean
//! of its elements. With `preserve_zeros` (after pruning) exact zeros stay zero and the other
//! elements share `k - 1` centroids. Tensors are clustered in parallel; results do not depend
//! on the thread count (each tensor's seed comes from the seed and the tensor's name).

use super::prune::{kernel_constants, MIN_ELEMENTS};
use crate::ir::{DType, Graph, Tensor};
use crate::parallel;
use bytes::Bytes;

const BINS: usize = 1 << 16;
const MAX_ITERATIONS: usize = 100;

#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub clusters: usize,
    pub seed: u64,
    pub preserve_zeros: bool,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TensorClusters {
    pub name: String,
    pub elements: usize,
    /// Distinct values after clustering (zero included when preserved).
    pub distinct: usize,
    /// Mean |w - centroid(w)| over the elements.
    pub mean_abs_error: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ClusterReport {
    pub clusters: usize,
    pub seed: u64,
    pub preserve_zeros: bool,
    pub skipped_small: usize,
    pub tensors: Vec<TensorClusters>,
}

/// Calls `f(index, value)` for every element of a float tensor (dtype match outside the loop).
fn for_each_value(t: &Tensor, mut f: impl FnMut(usize, f64)) {
    let b = &t.data[..];
    match t.dtype {
        DType::F32 => b
            .chunks_exact(4)
            .enumerate()
            .for_each(|(i, c)| f(i, f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)),
        DType::F16 => b
            .chunks_exact(2)
            .enumerate()
            .for_each(|(i, c)| f(i, half::f16::from_le_bytes([c[0], c[1]]).to_f64())),
        DType::BF16 => b
            .chunks_exact(2)
            .enumerate()
            .for_each(|(i, c)| f(i, half::bf16::from_le_bytes([c[0], c[1]]).to_f64())),
        DType::F64 => b.chunks_exact(8).enumerate().for_each(|(i, c)| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            f(i, f64::from_le_bytes(a))
        }),
        _ => {}
    }
}

/// xorshift64*: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, name: &str) -> Rng {
        // FNV-1a of the name mixed into the seed: per-tensor streams, independent of order.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Rng((seed ^ h).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Uniform in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Non-empty histogram bins: (mean of the elements in it, count), in increasing order.
fn bins(t: &Tensor, skip_zeros: bool) -> Vec<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for_each_value(t, |_, x| {
        if x.is_finite() && !(skip_zeros && x == 0.0) {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    });
    if lo > hi {
        return vec![];
    }
    let width = (hi - lo) / BINS as f64;
    let mut count = vec![0u64; BINS];
    let mut sum = vec![0f64; BINS];
    for_each_value(t, |_, x| {
        if x.is_finite() && !(skip_zeros && x == 0.0) {
            let b = if width > 0.0 {
                (((x - lo) / width) as usize).min(BINS - 1)
            } else {
                0
            };
            count[b] += 1;
            sum[b] += x;
        }
    });
    count
        .iter()
        .zip(&sum)
        .filter(|(c, _)| **c > 0)
        .map(|(&c, &s)| (s / c as f64, c as f64))
        .collect()
}

/// k-means++ seeding then Lloyd iterations on weighted points sorted by position.
fn kmeans(points: &[(f64, f64)], k: usize, rng: &mut Rng) -> Vec<f64> {
    if points.len() <= k {
        return points.iter().map(|p| p.0).collect();
    }
    let mut centers: Vec<f64> = Vec::with_capacity(k);
    let total: f64 = points.iter().map(|p| p.1).sum();
    let pick = |weights: &mut dyn Iterator<Item = f64>, target: f64| -> usize {
        let mut acc = 0.0;
        for (i, w) in weights.enumerate() {
            acc += w;
            if acc > target {
                return i;
            }
        }
        points.len() - 1
    };
    let first = pick(&mut points.iter().map(|p| p.1), rng.next() * total);
    centers.push(points[first].0);
    let mut d2: Vec<f64> = points.iter().map(|p| (p.0 - centers[0]).powi(2)).collect();
    while centers.len() < k {
        let weights: Vec<f64> = points.iter().zip(&d2).map(|(p, d)| p.1 * d).collect();
        let sum: f64 = weights.iter().sum();
        if sum <= 0.0 {
            break; // fewer distinct positions than clusters
        }
        let i = pick(&mut weights.iter().copied(), rng.next() * sum);
        let c = points[i].0;
        centers.push(c);
        for (d, p) in d2.iter_mut().zip(points) {
            *d = d.min((p.0 - c).powi(2));
        }
    }
    centers.sort_by(f64::total_cmp);
    for _ in 0..MAX_ITERATIONS {
        let mut sums = vec![(0.0, 0.0); centers.len()];
        let mut c = 0;
        for &(x, w) in points {
            // Points and centers are both sorted: the nearest center only moves forward.
            while c + 1 < centers.len() && (centers[c + 1] - x).abs() <= (x - centers[c]).abs() {
                c += 1;
            }
            sums[c].0 += x * w;
            sums[c].1 += w;
        }
        let next: Vec<f64> = sums
            .iter()
            .zip(&centers)
            .map(|(&(s, w), &old)| if w > 0.0 { s / w } else { old })
            .collect();
        let moved = next != centers;
        centers = next;
        centers.sort_by(f64::total_cmp);
        if !moved {
            break;
        }
    }
    centers.dedup();
    centers
}

fn encode(dtype: DType, x: f64, out: &mut [u8]) {
    match dtype {
        DType::F32 => out.copy_from_slice(&(x as f32).to_le_bytes()),
        DType::F16 => out.copy_from_slice(&half::f16::from_f64(x).to_le_bytes()),
        DType::BF16 => out.copy_from_slice(&half::bf16::from_f64(x).to_le_bytes()),
        DType::F64 => out.copy_from_slice(&x.to_le_bytes()),
        _ => {}
    }
}

/// Clusters one tensor; returns the new tensor, distinct values and mean |error|.
fn cluster_tensor(t: &Tensor, name: &str, opts: &ClusterOptions) -> (Tensor, usize, f64) {
    let keep_zeros = opts.preserve_zeros;
    let k = if keep_zeros {
        opts.clusters.saturating_sub(1).max(1)
    } else {
        opts.clusters.max(1)
    };
    let mut rng = Rng::new(opts.seed, name);
    let centers = kmeans(&bins(t, keep_zeros), k, &mut rng);
    if centers.is_empty() {
        return (t.clone(), 1, 0.0);
    }
    let mids: Vec<f64> = centers.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    let nearest = |x: f64| mids.partition_point(|&m| m < x);
    let kept = |x: f64| !x.is_finite() || (keep_zeros && x == 0.0);
    // Exact means of the final assignment.
    let mut sums = vec![(0.0f64, 0usize); centers.len()];
    for_each_value(t, |_, x| {
        if !kept(x) {
            let c = nearest(x);
            sums[c].0 += x;
            sums[c].1 += 1;
        }
    });
    let means: Vec<f64> = sums
        .iter()
        .zip(&centers)
        .map(|(&(s, n), &c)| if n > 0 { s / n as f64 } else { c })
        .collect();
    let size = t.dtype.size();
    let mut data = t.data.to_vec();
    let mut err = 0.0;
    let mut used = vec![false; centers.len()];
    let mut zero = false;
    for_each_value(t, |i, x| {
        if kept(x) {
            zero |= x == 0.0;
            return;
        }
        let c = nearest(x);
        used[c] = true;
        encode(t.dtype, means[c], &mut data[i * size..(i + 1) * size]);
        err += (x - means[c]).abs();
    });
    // Centroids equal after rounding to the dtype count once.
    let mut values: Vec<Vec<u8>> = used
        .iter()
        .zip(&means)
        .filter(|(u, _)| **u)
        .map(|(_, &m)| {
            let mut b = vec![0u8; size];
            encode(t.dtype, m, &mut b);
            b
        })
        .collect();
    values.sort();
    values.dedup();
    let distinct =
        values.len() + usize::from(zero && !values.iter().any(|v| v.iter().all(|&b| b == 0)));
    let out = Tensor {
        dtype: t.dtype,
        shape: t.shape.clone(),
        data: Bytes::from(data),
    };
    (out, distinct, err / t.len().max(1) as f64)
}

/// Clusters every kernel of `g` (at least [`MIN_ELEMENTS`] elements) into at most
/// `opts.clusters` values.
pub fn cluster(g: &mut Graph, opts: &ClusterOptions) -> Result<ClusterReport, String> {
    if opts.clusters < 2 {
        return Err(format!("{} clusters: at least 2 are needed", opts.clusters));
    }
    let (ids, skipped_small) = kernel_constants(g, MIN_ELEMENTS);
    let jobs: Vec<(&Tensor, &str)> = ids
        .iter()
        .filter_map(|&v| Some((g.constant(v)?, g.value(v).name.as_str())))
        .collect();
    let done = parallel::map(
        &jobs,
        |j| j.0.len(),
        |(t, name)| {
            let done = cluster_tensor(t, name, opts);
            // The source is read: its file pages need not stay resident next to the result.
            crate::ir::mapped::release_pages(&t.data);
            done
        },
    );
    let mut tensors = Vec::with_capacity(ids.len());
    for (&id, (t, distinct, err)) in ids.iter().zip(done) {
        tensors.push(TensorClusters {
            name: g.value(id).name.clone(),
            elements: t.len(),
            distinct,
            mean_abs_error: err,
        });
        g.value_mut(id).constant = Some(t);
    }
    Ok(ClusterReport {
        clusters: opts.clusters,
        seed: opts.seed,
        preserve_zeros: opts.preserve_zeros,
        skipped_small,
        tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_separated_groups_exactly() {
        // Three tight groups: three clusters find their means.
        let v: Vec<f32> = (0..3000)
            .map(|i| [-1.0f32, 0.5, 2.0][i % 3] + (i % 7) as f32 * 1e-3)
            .collect();
        let t = Tensor::from_f32(vec![3000], &v);
        let opts = ClusterOptions {
            clusters: 3,
            seed: 1,
            preserve_zeros: false,
        };
        let (out, distinct, err) = cluster_tensor(&t, "w", &opts);
        assert_eq!(distinct, 3);
        assert!(err < 4e-3, "{err}");
        let mut vals = out.to_f64s();
        vals.sort_by(f64::total_cmp);
        vals.dedup();
        assert_eq!(vals.len(), 3);
        assert!((vals[0] + 1.0).abs() < 4e-3 && (vals[2] - 2.0).abs() < 4e-3);
    }
}
