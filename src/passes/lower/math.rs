//! Lowerings of math that TFLite has no builtin for and TF.js only partly: the remainder with the
//! dividend's sign (ONNX `Mod fmod=1`, TF's TruncateMod; every dtype, exact), Trilu with fixed
//! matrix sizes (TF's MatrixBandPart: a constant mask), and — for TFLite only, TF.js has kernels —
//! the inverse trigonometric and the hyperbolic functions as compositions of EXP, LOG, SQRT,
//! DIV and a polynomial arctangent.

use super::L;
use crate::ir::ops::{BinaryOp, Trilu, UnaryOp};
use crate::ir::{DType, Op, Tensor, ValueId};
use std::f64::consts::{FRAC_PI_2, FRAC_PI_6};

/// The most mask entries a Trilu lowers to (a 4096 × 4096 matrix).
const MAX_MASK: usize = 1 << 24;

impl L<'_, '_> {
    /// A scalar constant of `dtype`.
    fn typed(&mut self, dtype: DType, v: f64) -> ValueId {
        let base = format!("{}/c", self.base);
        self.rw.konst(&base, Tensor::from_f64s(dtype, vec![], &[v]))
    }

    /// `x - trunc(x / y)·y` from the floor remainder `r = x mod y` (the divisor's sign): where
    /// `r ≠ 0` and its sign differs from `x`'s, the truncated remainder is `r - y`. Exact for
    /// integers, which a form through division would not be.
    pub(super) fn fmod(&mut self, x: ValueId, y: ValueId) -> Result<ValueId, String> {
        let dtype = self.rw.g.ty(x).dtype;
        let zero = self.typed(dtype, 0.0);
        let r = self.b(BinaryOp::Mod, x, y)?;
        let r_zero = self.b(BinaryOp::Equal, r, zero)?;
        let r_nonzero = self.u(UnaryOp::Not, r_zero)?;
        let r_neg = self.b(BinaryOp::Less, r, zero)?;
        let x_neg = self.b(BinaryOp::Less, x, zero)?;
        let signs_differ = self.b(BinaryOp::Xor, r_neg, x_neg)?;
        let adjust = self.b(BinaryOp::And, r_nonzero, signs_differ)?;
        let shifted = self.b(BinaryOp::Sub, r, y)?;
        self.rw.op(&self.base, Op::Where, vec![adjust, shifted, r])
    }

    /// Trilu as `Where(mask, x, 0)` with the constant mask of the kept `j - i` band; `None` when
    /// the matrix sizes are not fixed (the writers' run-time forms take those).
    pub(super) fn trilu(&mut self, t: &Trilu, x: ValueId) -> Result<Option<ValueId>, String> {
        let ty = self.rw.g.ty(x).clone();
        let dims = &ty.shape;
        let [.., m, n] = dims.as_slice() else {
            return Err("Trilu needs a matrix (rank ≥ 2)".into());
        };
        let (Some(m), Some(n)) = (m.fixed(), n.fixed()) else {
            return Ok(None);
        };
        let (m, n) = (m as usize, n as usize);
        if m.saturating_mul(n) > MAX_MASK {
            return Err(format!(
                "Trilu of a {m}×{n} matrix: past {MAX_MASK} mask entries"
            ));
        }
        let keep = |i: usize, j: usize| {
            let d = j as i64 - i as i64;
            if t.upper {
                d >= t.k
            } else {
                d <= t.k
            }
        };
        let mask: Vec<f64> = (0..m * n)
            .map(|e| keep(e / n, e % n) as u8 as f64)
            .collect();
        let base = format!("{}/mask", self.base);
        let mask = self
            .rw
            .konst(&base, Tensor::from_f64s(DType::Bool, vec![m, n], &mask));
        let zero = self.typed(ty.dtype, 0.0);
        self.rw
            .op(&self.base, Op::Where, vec![mask, x, zero])
            .map(Some)
    }

    /// sinh (`op` Sub) or cosh (`op` Add): `(eˣ ∓ e⁻ˣ) / 2`.
    pub(super) fn sinh_cosh(&mut self, x: ValueId, op: BinaryOp) -> Result<ValueId, String> {
        let e = self.u(UnaryOp::Exp, x)?;
        let nx = self.u(UnaryOp::Neg, x)?;
        let en = self.u(UnaryOp::Exp, nx)?;
        let s = self.b(op, e, en)?;
        let half = self.c(0.5);
        self.b(BinaryOp::Mul, s, half)
    }

    /// sign(x)·log(|x| + √(x² + 1)): the odd form keeps large negative x finite.
    pub(super) fn asinh(&mut self, x: ValueId) -> Result<ValueId, String> {
        let a = self.u(UnaryOp::Abs, x)?;
        let r = self.hypot_one(a, 1.0)?;
        let s = self.b(BinaryOp::Add, a, r)?;
        let l = self.u(UnaryOp::Log, s)?;
        let sg = self.u(UnaryOp::Sign, x)?;
        self.b(BinaryOp::Mul, sg, l)
    }

    pub(super) fn acosh(&mut self, x: ValueId) -> Result<ValueId, String> {
        let r = self.hypot_one(x, -1.0)?;
        let s = self.b(BinaryOp::Add, x, r)?;
        self.u(UnaryOp::Log, s)
    }

    pub(super) fn atanh(&mut self, x: ValueId) -> Result<ValueId, String> {
        let one = self.c(1.0);
        let p = self.b(BinaryOp::Add, one, x)?;
        let q = self.b(BinaryOp::Sub, one, x)?;
        let d = self.b(BinaryOp::Div, p, q)?;
        let l = self.u(UnaryOp::Log, d)?;
        let half = self.c(0.5);
        self.b(BinaryOp::Mul, l, half)
    }

    /// acos(x) = π/2 − asin(x).
    pub(super) fn acos(&mut self, x: ValueId) -> Result<ValueId, String> {
        let s = self.asin(x)?;
        let half_pi = self.c(FRAC_PI_2 as f32);
        self.b(BinaryOp::Sub, half_pi, s)
    }

    /// `√(x² + c)`.
    fn hypot_one(&mut self, x: ValueId, c: f32) -> Result<ValueId, String> {
        let sq = self.u(UnaryOp::Square, x)?;
        let c = self.c(c);
        let s = self.b(BinaryOp::Add, sq, c)?;
        self.u(UnaryOp::Sqrt, s)
    }

    /// asin(x) = atan(x / √(1 − x²)): ±1 gives ±∞ and atan(±∞) = ±π/2; |x| > 1 gives NaN.
    pub(super) fn asin(&mut self, x: ValueId) -> Result<ValueId, String> {
        let sq = self.u(UnaryOp::Square, x)?;
        let one = self.c(1.0);
        let d = self.b(BinaryOp::Sub, one, sq)?;
        let r = self.u(UnaryOp::Sqrt, d)?;
        let q = self.b(BinaryOp::Div, x, r)?;
        self.atan(q)
    }

    /// atan(x) to float32 precision: `|x|` folded into [0, 1] by `atan(a) = π/2 - atan(1/a)`,
    /// then into [0, tan(π/12)] by `atan(t) = π/6 + atan((t - 1/√3) / (1 + t/√3))`, where the
    /// odd Taylor series to u¹¹ is within 5e-8; the sign of x put back last.
    pub(super) fn atan(&mut self, x: ValueId) -> Result<ValueId, String> {
        let a = self.u(UnaryOp::Abs, x)?;
        let one = self.c(1.0);
        let big = self.b(BinaryOp::Greater, a, one)?;
        let inv = self.b(BinaryOp::Div, one, a)?;
        let t = self.rw.op(&self.base, Op::Where, vec![big, inv, a])?;
        let tan15 = self.c((FRAC_PI_6 / 2.0).tan() as f32);
        let far = self.b(BinaryOp::Greater, t, tan15)?;
        let k = self.c(1.0 / 3f32.sqrt());
        let num = self.b(BinaryOp::Sub, t, k)?;
        let tk = self.b(BinaryOp::Mul, t, k)?;
        let den = self.b(BinaryOp::Add, tk, one)?;
        let moved = self.b(BinaryOp::Div, num, den)?;
        let u = self.rw.op(&self.base, Op::Where, vec![far, moved, t])?;
        let s = self.u(UnaryOp::Square, u)?;
        // u·(1 - s/3 + s²/5 - s³/7 + s⁴/9 - s⁵/11), Horner in s.
        let mut p = self.c(-1.0 / 11.0);
        for coef in [1.0 / 9.0, -1.0 / 7.0, 1.0 / 5.0, -1.0 / 3.0, 1.0] {
            let ps = self.b(BinaryOp::Mul, p, s)?;
            let c = self.c(coef as f32);
            p = self.b(BinaryOp::Add, ps, c)?;
        }
        let series = self.b(BinaryOp::Mul, p, u)?;
        let sixth = self.c(FRAC_PI_6 as f32);
        let zero = self.c(0.0);
        let offset = self.rw.op(&self.base, Op::Where, vec![far, sixth, zero])?;
        let r = self.b(BinaryOp::Add, series, offset)?;
        let half_pi = self.c(FRAC_PI_2 as f32);
        let flipped = self.b(BinaryOp::Sub, half_pi, r)?;
        let folded = self.rw.op(&self.base, Op::Where, vec![big, flipped, r])?;
        let sg = self.u(UnaryOp::Sign, x)?;
        self.b(BinaryOp::Mul, sg, folded)
    }
}
