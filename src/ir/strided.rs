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
        let s = strides(&self.shape);
        let out_shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let in_strides: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
        Tensor {
            dtype: self.dtype,
            data: gather_bytes(self, &out_shape, &in_strides),
            shape: out_shape,
        }
    }
}
