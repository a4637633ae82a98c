//! Strided element walks over constant tensors: transposition, broadcasting and gathers on raw
//! element bytes (exact for every element type). Used by import-time folding and by passes that
//! relayout weights (each such relayout is the one allowed copy of those bytes).

use super::Tensor;
use bytes::Bytes;

pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Visits every index of `shape` in row-major order, giving the flat offset in a tensor with
/// `in_strides` (0 for broadcast axes).
pub fn for_each_offset(shape: &[usize], in_strides: &[usize], mut f: impl FnMut(usize)) {
    let n: usize = shape.iter().product();
    let mut idx = vec![0usize; shape.len()];
    let mut off = 0usize;
    for _ in 0..n {
        f(off);
        for ax in (0..shape.len()).rev() {
            idx[ax] += 1;
            off = off.wrapping_add(in_strides[ax]);
            if idx[ax] < shape[ax] {
                break;
            }
            off = off.wrapping_sub(in_strides[ax].wrapping_mul(shape[ax]));
            idx[ax] = 0;
        }
    }
}

/// Strides to read `shape_in` broadcast to `shape_out` (right-aligned).
pub fn broadcast_strides(shape_in: &[usize], shape_out: &[usize]) -> Vec<usize> {
    let s = strides(shape_in);
    let lead = shape_out.len() - shape_in.len();
    (0..shape_out.len())
        .map(|ax| {
            if ax < lead || shape_in[ax - lead] == 1 {
                0
            } else {
                s[ax - lead]
            }
        })
        .collect()
}

pub fn gather_bytes(t: &Tensor, out_shape: &[usize], in_strides: &[usize]) -> Bytes {
    let es = t.dtype.size();
    let mut out = Vec::with_capacity(out_shape.iter().product::<usize>() * es);
    for_each_offset(out_shape, in_strides, |o| {
        out.extend_from_slice(&t.data[o * es..(o + 1) * es])
    });
    Bytes::from(out)
}

impl Tensor {
    /// The tensor with its axes permuted (`out.shape[i] = self.shape[perm[i]]`); copies the bytes.
    pub fn transposed(&self, perm: &[usize]) -> Tensor {
        let out_shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let es = self.dtype.size();
        let data = match es {
            1 => permute::<1>(&self.data, &self.shape, perm),
            2 => permute::<2>(&self.data, &self.shape, perm),
            4 => permute::<4>(&self.data, &self.shape, perm),
            8 => permute::<8>(&self.data, &self.shape, perm),
            _ => {
                let s = strides(&self.shape);
                let in_strides: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
                gather_bytes(self, &out_shape, &in_strides).to_vec()
            }
        };
        Tensor {
            dtype: self.dtype,
            data: Bytes::from(data),
            shape: out_shape,
        }
    }
}

/// `shape` and `perm` with size-1 axes dropped and every run of input axes that stays adjacent
/// in the output merged into one axis: the same permutation on the fewest axes (a kernel's
/// HWIO → OHWI is a 2-D transpose of `[H·W·I, O]`).
fn simplify(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let kept: Vec<usize> = perm.iter().copied().filter(|&p| shape[p] > 1).collect();
    // Groups of input axes, in output order: each a run `first..=last` of consecutive axes.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for &p in &kept {
        match groups.last_mut() {
            Some((_, last)) if next_kept(shape, *last) == Some(p) => *last = p,
            _ => groups.push((p, p)),
        }
    }
    let mut by_input: Vec<usize> = (0..groups.len()).collect();
    by_input.sort_by_key(|&g| groups[g].0);
    let in_shape = by_input
        .iter()
        .map(|&g| (groups[g].0..=groups[g].1).map(|a| shape[a]).product())
        .collect();
    let mut new_perm = vec![0; groups.len()];
    for (new_axis, &g) in by_input.iter().enumerate() {
        new_perm[g] = new_axis;
    }
    (in_shape, new_perm)
}

/// The next input axis after `a` whose size is not 1.
fn next_kept(shape: &[usize], a: usize) -> Option<usize> {
    (a + 1..shape.len()).find(|&b| shape[b] > 1)
}

/// Side of the square tiles a 2-D transpose copies at a time: 32 × 32 elements of 4 bytes,
/// source rows and destination rows together, stay in L1.
const TILE: usize = 32;

/// The elements of `data` (row-major over `shape`, `N` bytes each) in the order `perm` gives:
/// runs that stay contiguous are copied whole; otherwise the input's innermost axis and the
/// output's innermost axis are transposed tile by tile, once for each index of the others.
fn permute<const N: usize>(data: &[u8], shape: &[usize], perm: &[usize]) -> Vec<u8> {
    let (src, _) = data.as_chunks::<N>();
    let (shape, perm) = simplify(shape, perm);
    let m = shape.len();
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return data.to_vec();
    }
    let in_str = strides(&shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let out_str = strides(&out_shape);
    let mut out = vec![[0u8; N]; src.len()];
    if perm[m - 1] == m - 1 {
        // The innermost axis stays innermost: whole rows move.
        let run = shape[m - 1];
        let outer: Vec<(usize, usize, usize)> = (0..m - 1)
            .map(|i| (out_shape[i], in_str[perm[i]], out_str[i]))
            .collect();
        for_each_pair(&outer, |i0, o0| {
            out[o0..o0 + run].copy_from_slice(&src[i0..i0 + run]);
        });
        return out.into_flattened();
    }
    // Input axis read contiguously (b) and the one written contiguously (a), at output axis j.
    let (a, b) = (perm[m - 1], m - 1);
    let j = perm.iter().position(|&p| p == b).unwrap_or(0);
    let (na, nb, sa, sj) = (shape[a], shape[b], in_str[a], out_str[j]);
    // Every other output axis: (size, input stride, output stride).
    let outer: Vec<(usize, usize, usize)> = (0..m - 1)
        .filter(|&i| i != j)
        .map(|i| (out_shape[i], in_str[perm[i]], out_str[i]))
        .collect();
    for_each_pair(&outer, |i0, o0| {
        for xb in (0..nb).step_by(TILE) {
            for ya in (0..na).step_by(TILE) {
                for x in xb..(xb + TILE).min(nb) {
                    let (row_in, row_out) = (i0 + x, o0 + x * sj);
                    for y in ya..(ya + TILE).min(na) {
                        out[row_out + y] = src[row_in + y * sa];
                    }
                }
            }
        }
    });
    out.into_flattened()
}

/// Visits every index of the axes `(size, input stride, output stride)` in row-major order,
/// giving both flat offsets.
fn for_each_pair(axes: &[(usize, usize, usize)], mut f: impl FnMut(usize, usize)) {
    let n: usize = axes.iter().map(|a| a.0).product();
    let mut idx = vec![0usize; axes.len()];
    let (mut i, mut o) = (0usize, 0usize);
    for _ in 0..n {
        f(i, o);
        for (ax, &(size, si, so)) in axes.iter().enumerate().rev() {
            idx[ax] += 1;
            i += si;
            o += so;
            if idx[ax] < size {
                break;
            }
            i -= si * size;
            o -= so * size;
            idx[ax] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    /// The blocked transpose against the element-by-element walk, over shapes with size-1
    /// axes, mergeable runs, and sides that are not multiples of the tile.
    #[test]
    fn blocked_transpose_matches_the_walk() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[3, 3, 64, 70], &[3, 0, 1, 2]),
            (&[3, 3, 64, 70], &[3, 2, 0, 1]),
            (&[70, 33, 3, 3], &[0, 2, 3, 1]),
            (&[1, 5, 1, 37], &[3, 1, 0, 2]),
            (&[2, 3, 4, 5, 6], &[4, 1, 3, 0, 2]),
            (&[40, 50], &[1, 0]),
            (&[4, 5, 6], &[0, 1, 2]),
            (&[4, 5, 6], &[1, 0, 2]),
            (&[7], &[0]),
            (&[], &[]),
        ];
        for &(shape, perm) in cases {
            for dtype in [DType::U8, DType::F16, DType::F32, DType::F64] {
                let n: usize = shape.iter().product::<usize>() * dtype.size();
                let data: Vec<u8> = (0..n).map(|i| (i * 7 + i / 251) as u8).collect();
                let t = Tensor::new(dtype, shape.to_vec(), Bytes::from(data)).unwrap();
                let s = strides(shape);
                let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
                let in_strides: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
                let want = gather_bytes(&t, &out_shape, &in_strides);
                let got = t.transposed(perm);
                assert_eq!(got.shape, out_shape, "{shape:?} {perm:?}");
                assert_eq!(got.data, want, "{shape:?} {perm:?} {dtype}");
            }
        }
    }
}
