//! Signal ops as the ops of their definitions: the Hann, Hamming and Blackman windows
//! (`a0 − a1·cos(2πn/N) + a2·cos(4πn/N)` over `n = Range(0, size)`, so a size computed at run
//! time works), and DFT as one MatMul with a constant matrix of `cos`/`sin` coefficients — the
//! signal axis and the real/imaginary pair moved last, flattened, multiplied, and moved back.
//! That covers forward, inverse, one-sided (rfft) and inverse one-sided (irfft, a real output
//! from the Hermitian half) transforms of any `dft_length`, which must be known at conversion
//! time, as must the axis.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::{norm_axis, BinaryOp, MatMul, UnaryOp};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};
use std::f64::consts::PI;

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "HannWindow" | "HammingWindow" | "BlackmanWindow" => window,
        "DFT" => dft,
        _ => return None,
    })
}

/// Coefficients past this many elements would make the DFT matrix larger than the model
/// justifies (64 MiB of float32); such a transform is refused rather than materialized.
const MAX_DFT_COEFFICIENTS: usize = 1 << 24;

fn window(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let size = ctx.input(0)?;
    let (a0, a1, a2) = match ctx.node.op_type.as_str() {
        "HannWindow" => (0.5, 0.5, 0.0),
        "HammingWindow" => (25.0 / 46.0, 21.0 / 46.0, 0.0),
        _ => (0.42, 0.5, 0.08),
    };
    let code = ctx.int("output_datatype", 1) as i32;
    let out = crate::formats::onnx::dtype_from_onnx(code)
        .ok_or_else(|| NodeError::Unsupported(format!("window of element type {code}")))?;
    let st = imp.g.ty(size).dtype;
    if !st.is_int() || imp.g.ty(size).rank() != 0 {
        return Err(NodeError::Invalid(format!(
            "window size must be an integer scalar, got {}",
            imp.g.ty(size)
        )));
    }
    let mut b = Build::new(imp, &ctx.name);
    let zero = b.scalar("zero", st, 0.0);
    let one = b.scalar("one", st, 1.0);
    let n = b.op("range", Op::Range, vec![zero, size, one])?;
    let n = b.cast(n, DType::F32)?;
    // Periodic windows divide by `size`, symmetric ones by `size − 1`.
    let denom = if ctx.int("periodic", 1) == 1 {
        size
    } else {
        b.bin(BinaryOp::Sub, size, one)?
    };
    let denom = b.cast(denom, DType::F32)?;
    let two_pi = b.scalar("two_pi", DType::F32, 2.0 * PI);
    let angle = b.bin(BinaryOp::Mul, n, two_pi)?;
    let angle = b.bin(BinaryOp::Div, angle, denom)?;
    let cos1 = b.un(UnaryOp::Cos, angle)?;
    let c1 = b.scalar("a1", DType::F32, a1);
    let term1 = b.bin(BinaryOp::Mul, cos1, c1)?;
    let c0 = b.scalar("a0", DType::F32, a0);
    let mut y = b.bin(BinaryOp::Sub, c0, term1)?;
    if a2 != 0.0 {
        let two = b.scalar("two", DType::F32, 2.0);
        let angle2 = b.bin(BinaryOp::Mul, angle, two)?;
        let cos2 = b.un(UnaryOp::Cos, angle2)?;
        let c2 = b.scalar("a2", DType::F32, a2);
        let term2 = b.bin(BinaryOp::Mul, cos2, c2)?;
        y = b.bin(BinaryOp::Add, y, term2)?;
    }
    Ok(vec![b.cast(y, out)?])
}

/// What one DFT computes, with every size fixed.
struct Transform {
    /// Elements along the signal axis in the input, and whether it holds (re, im) pairs.
    n_in: usize,
    complex_in: bool,
    /// The transform length.
    len: usize,
    inverse: bool,
    onesided: bool,
}

impl Transform {
    /// Elements along the signal axis in the output, and whether they are (re, im) pairs:
    /// an inverse one-sided transform gives the real signal.
    fn out(&self) -> (usize, bool) {
        match (self.inverse, self.onesided) {
            (true, true) => (self.len, false),
            (false, true) => (self.len / 2 + 1, true),
            _ => (self.len, true),
        }
    }

    /// The matrix taking `[re… | im…]` of the input to `[re… | im…]` of the output.
    fn matrix(&self) -> Vec<f64> {
        let (m, complex_out) = self.out();
        let (c_in, c_out) = (1 + self.complex_in as usize, 1 + complex_out as usize);
        let cols = c_out * m;
        let mut w = vec![0.0; c_in * self.n_in * cols];
        let l = self.len as f64;
        let sign = if self.inverse { 1.0 } else { -1.0 };
        let scale = if self.inverse { 1.0 / l } else { 1.0 };
        // The input entries that take part: the first `len` (zero padding past the input's
        // end is implicit), and for an irfft only the Hermitian half.
        let used = if self.inverse && self.onesided {
            self.n_in.min(self.len / 2 + 1)
        } else {
            self.n_in.min(self.len)
        };
        for j in 0..used {
            // An irfft counts every bin but DC (and Nyquist, for even lengths) twice.
            let weight = if self.inverse && self.onesided && j != 0 && 2 * j != self.len {
                2.0
            } else {
                1.0
            };
            for k in 0..m {
                let theta = 2.0 * PI * ((j * k) % self.len) as f64 / l;
                let (re, im) = (
                    weight * scale * theta.cos(),
                    weight * scale * sign * theta.sin(),
                );
                w[j * cols + k] = re;
                if complex_out {
                    w[j * cols + m + k] = im;
                }
                if self.complex_in {
                    let row = (self.n_in + j) * cols;
                    w[row + k] = -im;
                    if complex_out {
                        w[row + m + k] = re;
                    }
                }
            }
        }
        w
    }
}

fn dft(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let ty = imp.g.ty(x).clone();
    let rank = ty.rank();
    if !ty.dtype.is_float() || rank < 2 {
        return Err(NodeError::Invalid(format!(
            "DFT input must be float with a signal axis and a last axis of 1 or 2, got {ty}"
        )));
    }
    let complex_in = match ty.shape[rank - 1].fixed() {
        Some(1) => false,
        Some(2) => true,
        _ => {
            return Err(NodeError::Invalid(format!(
                "DFT input's last axis must be 1 or 2, got {ty}"
            )))
        }
    };
    let axis = dft_axis(imp, ctx, rank)?;
    let n_in = ty.shape[axis]
        .fixed()
        .ok_or_else(|| NodeError::Unsupported("DFT over an axis known only at run time".into()))?
        as usize;
    let (inverse, onesided) = (ctx.int("inverse", 0) == 1, ctx.int("onesided", 0) == 1);
    let len = match ctx.opt_input(1) {
        Some(l) => match imp.const_ints(l).as_deref() {
            Some([v]) if *v > 0 => *v as usize,
            Some(_) => {
                return Err(NodeError::Invalid(
                    "dft_length must be one positive integer".into(),
                ))
            }
            None => return unsupported("DFT with dft_length computed at run time"),
        },
        None if inverse && onesided => 2 * n_in.saturating_sub(1),
        None => n_in,
    };
    if len == 0 {
        return Err(NodeError::Invalid("DFT of length 0".into()));
    }
    let t = Transform {
        n_in,
        complex_in,
        len,
        inverse,
        onesided,
    };
    let (m, complex_out) = t.out();
    let (c_in, c_out) = (1 + complex_in as usize, 1 + complex_out as usize);
    if c_in * n_in * c_out * m > MAX_DFT_COEFFICIENTS {
        return unsupported(format!(
            "DFT of length {len} (its {}×{} coefficient matrix is too large)",
            c_in * n_in,
            c_out * m
        ));
    }
    // [others…, pair, signal] → [others…, pair·signal] · W → back.
    let others: Vec<usize> = (0..rank - 1).filter(|&i| i != axis).collect();
    let mut perm = others.clone();
    perm.extend([rank - 1, axis]);
    let mut back = vec![0; rank];
    for (i, &p) in perm.iter().enumerate() {
        back[p] = i;
    }
    let mut lead: Vec<Dim> = others.iter().map(|&i| ty.shape[i].clone()).collect();
    if lead.is_empty() {
        lead.push(Dim::Fixed(1));
    }
    let with = |last: Vec<usize>| -> Vec<Dim> {
        lead.iter()
            .cloned()
            .chain(last.into_iter().map(|d| Dim::Fixed(d as u64)))
            .collect()
    };
    let mut b = Build::new(imp, &ctx.name);
    let moved = b.transpose(x, perm)?;
    let flat = b.reshape(moved, with(vec![c_in * n_in]))?;
    let w = Tensor::from_f64s(ty.dtype, vec![c_in * n_in, c_out * m], &t.matrix());
    let w = b.constant("coefficients", w);
    let y = b.op("matmul", Op::MatMul(MatMul::default()), vec![flat, w])?;
    let mut out_shape: Vec<Dim> = others.iter().map(|&i| ty.shape[i].clone()).collect();
    out_shape.extend([Dim::Fixed(c_out as u64), Dim::Fixed(m as u64)]);
    let y = b.reshape(y, out_shape)?;
    Ok(vec![b.transpose(y, back)?])
}

/// The signal axis: an attribute up to opset 19 (default 1), an input from opset 20 (default
/// −2), which must then be a constant. The last axis holds the (re, im) pair and is not one.
fn dft_axis(imp: &Importer, ctx: &NodeCtx, rank: usize) -> NodeResult<usize> {
    let axis = if imp.opset < 20 {
        ctx.int("axis", 1)
    } else {
        match ctx.opt_input(2) {
            Some(a) => match imp.const_ints(a).as_deref() {
                Some([v]) => *v,
                Some(_) => return Err(NodeError::Invalid("DFT axis must be a scalar".into())),
                None => return unsupported("DFT with an axis computed at run time"),
            },
            None => -2,
        }
    };
    let a = norm_axis(axis, rank)?;
    if a == rank - 1 {
        return Err(NodeError::Invalid(
            "DFT axis cannot be the last (re, im) axis".into(),
        ));
    }
    Ok(a)
}
