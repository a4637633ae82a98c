//! TF's real FFTs (TFLite RFFT2D, what the converter writes for `tf.signal.rfft`, `rfft2d` and
//! `stft`) without a complex dtype in the IR: a complex value is a pair of f32 values (real and
//! imaginary parts), each DFT a MatMul with constant cosine and sine matrices. The matrices hold
//! the cropping or zero-padding of the input to the FFT length (rows past it are zero, rows it
//! lacks are absent), so no Slice or Pad is needed. A DFT matrix is `n × len` entries; lengths
//! whose matrices would pass [`MAX_DFT_ENTRIES`] are refused by name (an audio front end's 256 to
//! 2048 points are far below it).

use crate::ir::ops::{BinaryOp, MatMul, Transpose, UnaryOp};
use crate::ir::{DType, Op, Tensor, ValueId};
use crate::readers::builder::{unsupported, GraphBuilder, NodeResult};
use std::f64::consts::PI;

/// A complex value as its real and imaginary parts (f32, same shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Complex {
    pub re: ValueId,
    pub im: ValueId,
}

/// Entries of one DFT matrix at most (16 MiB of f32).
pub const MAX_DFT_ENTRIES: usize = 1 << 22;

/// RFFT2D: the 2-D DFT of the innermost two axes of real `x`, cropped or zero-padded to
/// `[len_h, len_w]`; the result has `len_w / 2 + 1` bins on the last axis (the others are their
/// conjugates). `len_h = 1` (what `tf.signal.rfft` and `stft` give) is the 1-D real DFT of
/// the first row.
pub fn rfft2d(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    len: [usize; 2],
) -> NodeResult<Complex> {
    let rank = b.g.ty(x).rank();
    if rank < 2 {
        return unsupported(format!(
            "RFFT2D of a rank-{rank} input (needs at least 2 axes)"
        ));
    }
    if len.contains(&0) {
        return unsupported("RFFT2D with an FFT length of 0");
    }
    let rows = rfft_last(b, &format!("{name}/rfft"), x, len[1])?;
    dft_rows(b, name, rows, len[0])
}

/// The size of axis `axis` of `v`, which the DFT matrix needs at import time.
fn fixed_axis(b: &GraphBuilder, v: ValueId, axis: usize) -> NodeResult<usize> {
    let shape = &b.g.ty(v).shape;
    match shape.get(axis).and_then(|d| d.fixed()) {
        Some(n) => usize::try_from(n).or_else(|_| unsupported("FFT axis too large")),
        None => unsupported("FFT over an axis whose size is known only at run time"),
    }
}

/// `[n, cols]` cos and sin matrices of `cos(2π·i·j / len)`, row i < min(n, len) (later rows are
/// the cropped input: zero). `i·j` is reduced mod `len` first so the angle stays exact.
fn dft_matrices(n: usize, cols: usize, len: usize) -> NodeResult<(Vec<f64>, Vec<f64>)> {
    let entries = n.checked_mul(cols).filter(|&e| e <= MAX_DFT_ENTRIES);
    let Some(entries) = entries else {
        return unsupported(format!(
            "FFT of length {len} over {n} samples: its DFT matrix would pass {MAX_DFT_ENTRIES} \
             entries"
        ));
    };
    let (mut c, mut s) = (vec![0.0; entries], vec![0.0; entries]);
    for i in 0..n.min(len) {
        for j in 0..cols {
            let k = (i as u128 * j as u128 % len as u128) as f64;
            let a = 2.0 * PI * k / len as f64;
            c[i * cols + j] = a.cos();
            s[i * cols + j] = a.sin();
        }
    }
    Ok((c, s))
}

fn constant(b: &mut GraphBuilder, name: &str, shape: [usize; 2], v: &[f64]) -> ValueId {
    b.add_const(name, Tensor::from_f64s(DType::F32, shape.to_vec(), v))
}

fn matmul(b: &mut GraphBuilder, name: &str, x: ValueId, m: ValueId) -> NodeResult<ValueId> {
    b.emit1(name, Op::MatMul(MatMul::default()), vec![x, m])
}

fn binary(
    b: &mut GraphBuilder,
    name: &str,
    op: BinaryOp,
    x: ValueId,
    y: ValueId,
) -> NodeResult<ValueId> {
    b.emit1(name, Op::Binary(op), vec![x, y])
}

/// The real DFT of the last axis of real `x` (cropped or padded to `len`): `len / 2 + 1` bins,
/// `Σ x[n]·cos(2πkn/len)` and `−Σ x[n]·sin(2πkn/len)`.
fn rfft_last(b: &mut GraphBuilder, name: &str, x: ValueId, len: usize) -> NodeResult<Complex> {
    let rank = b.g.ty(x).rank();
    let n = fixed_axis(b, x, rank - 1)?;
    let bins = len / 2 + 1;
    let (c, s) = dft_matrices(n, bins, len)?;
    let neg: Vec<f64> = s.iter().map(|v| -v).collect();
    let cm = constant(b, &format!("{name}/cos"), [n, bins], &c);
    let sm = constant(b, &format!("{name}/minus_sin"), [n, bins], &neg);
    Ok(Complex {
        re: matmul(b, &format!("{name}/real"), x, cm)?,
        im: matmul(b, &format!("{name}/imag"), x, sm)?,
    })
}

/// The complex DFT of axis −2 of `z` (cropped or padded to `len`): with `E = C − iS`,
/// `E·(A + iB) = (C·A + S·B) + i(C·B − S·A)`, computed on the transposed parts so the
/// matrices multiply from the right. One row and `len = 1` is the identity.
fn dft_rows(b: &mut GraphBuilder, name: &str, z: Complex, len: usize) -> NodeResult<Complex> {
    let rank = b.g.ty(z.re).rank();
    let n = fixed_axis(b, z.re, rank - 2)?;
    if n == 1 && len == 1 {
        return Ok(z);
    }
    let (c, s) = dft_matrices(n, len, len)?;
    let cm = constant(b, &format!("{name}/rows_cos"), [n, len], &c);
    let sm = constant(b, &format!("{name}/rows_sin"), [n, len], &s);
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.swap(rank - 1, rank - 2);
    let t = Op::Transpose(Transpose { perm });
    let at = b.emit1(&format!("{name}/real_t"), t.clone(), vec![z.re])?;
    let bt = b.emit1(&format!("{name}/imag_t"), t.clone(), vec![z.im])?;
    let ac = matmul(b, &format!("{name}/real_cos"), at, cm)?;
    let bs = matmul(b, &format!("{name}/imag_sin"), bt, sm)?;
    let bc = matmul(b, &format!("{name}/imag_cos"), bt, cm)?;
    let as_ = matmul(b, &format!("{name}/real_sin"), at, sm)?;
    let re = binary(b, &format!("{name}/real_sum"), BinaryOp::Add, ac, bs)?;
    let im = binary(b, &format!("{name}/imag_sum"), BinaryOp::Sub, bc, as_)?;
    Ok(Complex {
        re: b.emit1(&format!("{name}/real"), t.clone(), vec![re])?,
        im: b.emit1(&format!("{name}/imag"), t, vec![im])?,
    })
}

/// `|z|`: `sqrt(re² + im²)` (TF's ComplexAbs / TFLite COMPLEX_ABS).
pub fn abs(b: &mut GraphBuilder, name: &str, z: Complex) -> NodeResult<ValueId> {
    let rr = binary(b, &format!("{name}/re2"), BinaryOp::Mul, z.re, z.re)?;
    let ii = binary(b, &format!("{name}/im2"), BinaryOp::Mul, z.im, z.im)?;
    let sum = binary(b, &format!("{name}/sum"), BinaryOp::Add, rr, ii)?;
    b.emit1(name, Op::Unary(UnaryOp::Sqrt), vec![sum])
}
