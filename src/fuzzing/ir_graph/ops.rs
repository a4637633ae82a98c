//! The op families the generator draws ([`Builder::draw`]): each picks operands from the pool,
//! attributes its op accepts and constants of fitting shapes, and returns `None` when inference
//! rejects the draw.

use super::Builder;
use crate::ir::ops::*;
use crate::ir::{fixed_shape, KernelLayout, Layout, Op, ValueId};
use arbitrary::Result;

impl Builder<'_, '_> {
    pub(super) fn unary_smooth(&mut self) -> Result<Option<Vec<ValueId>>> {
        use UnaryOp::*;
        let op = *self.u.choose(&[
            Abs, Neg, Exp, Erf, Sin, Cos, Atan, Sinh, Cosh, Asinh, Sigmoid, Tanh, Relu, Softplus,
            Softsign, Square,
        ])?;
        let (x, _) = self.pick()?;
        Ok(self.node(Op::Unary(op), vec![x]))
    }

    /// Rounding and sign jump; asin/acos need [-1, 1], which graph inputs are in.
    pub(super) fn unary_jumpy(&mut self) -> Result<Option<Vec<ValueId>>> {
        use UnaryOp::*;
        let op = *self.u.choose(&[Floor, Ceil, Round, Sign, Asin, Acos])?;
        let (x, _) = self.pick_input()?;
        Ok(self.node(Op::Unary(op), vec![x]))
    }

    pub(super) fn unary_positive(&mut self) -> Result<Option<Vec<ValueId>>> {
        use UnaryOp::*;
        let op = *self.u.choose(&[Sqrt, Rsqrt, Log, Reciprocal])?;
        let (x, _) = self.pick()?;
        let Some(p) = self.positive(x)? else {
            return Ok(None);
        };
        Ok(self.node(Op::Unary(op), vec![p]))
    }

    pub(super) fn unit(&mut self, lo: f32, hi: f32) -> Result<f32> {
        let k = self.u.int_in_range(0..=100u32)?;
        Ok(lo + (hi - lo) * k as f32 / 100.0)
    }

    pub(super) fn activation(&mut self) -> Result<Option<Vec<ValueId>>> {
        let act = match self.u.int_in_range(0..=10)? {
            0 => Activation::LeakyRelu {
                alpha: self.unit(0.01, 0.5)?,
            },
            1 => Activation::Elu {
                alpha: self.unit(0.5, 1.5)?,
            },
            2 => Activation::Selu {
                alpha: 1.673_263_2,
                gamma: 1.050_701,
            },
            3 => Activation::Celu {
                alpha: self.unit(0.5, 1.5)?,
            },
            4 => Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            5 => Activation::HardSwish,
            6 => Activation::Gelu {
                tanh_approx: self.u.arbitrary()?,
            },
            7 => {
                let lo = self.unit(-1.0, 0.0)?;
                let hi = self.unit(0.0, 1.0)?;
                match self.u.int_in_range(0..=2)? {
                    0 => Activation::Clip {
                        min: Some(lo),
                        max: Some(hi),
                    },
                    1 => Activation::Clip {
                        min: Some(lo),
                        max: None,
                    },
                    _ => Activation::Clip {
                        min: None,
                        max: Some(hi),
                    },
                }
            }
            8 => Activation::Mish,
            9 => {
                // Jumps at alpha: on graph inputs only.
                let alpha = self.unit(0.0, 0.5)?;
                let (x, _) = self.pick_input()?;
                return Ok(self.node(
                    Op::Activation(Activation::ThresholdedRelu { alpha }),
                    vec![x],
                ));
            }
            _ => {
                let lambd = self.unit(0.0, 0.5)?;
                let (x, _) = self.pick_input()?;
                return Ok(self.node(
                    Op::Activation(Activation::Shrink { lambd, bias: lambd }),
                    vec![x],
                ));
            }
        };
        let (x, _) = self.pick()?;
        Ok(self.node(Op::Activation(act), vec![x]))
    }

    /// A second operand for `x`: another value it broadcasts with, or a constant (same shape,
    /// broadcast shape or scalar).
    pub(super) fn partner(&mut self, x_shape: &[usize]) -> Result<ValueId> {
        if self.u.ratio(1, 2)? {
            let fits: Vec<ValueId> = self
                .pool
                .iter()
                .filter(|(_, s)| broadcasts(s, x_shape))
                .map(|(v, _)| *v)
                .collect();
            if !fits.is_empty() {
                return Ok(fits[self.u.choose_index(fits.len())?]);
            }
        }
        let shape = if self.u.ratio(1, 2)? {
            x_shape.to_vec()
        } else {
            self.broadcast_of(x_shape)?
        };
        self.constant(&shape, -1.0, 1.0)
    }

    pub(super) fn binary(&mut self) -> Result<Option<Vec<ValueId>>> {
        use BinaryOp::*;
        let op = *self
            .u
            .choose(&[Add, Sub, Mul, Min, Max, SquaredDifference, PRelu, Div, Pow])?;
        let (x, xs) = self.pick()?;
        let inputs = match op {
            // The slope broadcasts to x (one way only).
            PRelu => {
                let s = self.broadcast_of(&xs)?;
                vec![x, self.constant(&s, -1.0, 1.0)?]
            }
            Div => {
                let y = self.partner(&xs)?;
                let Some(p) = self.positive(y)? else {
                    return Ok(None);
                };
                vec![x, p]
            }
            Pow => {
                let Some(p) = self.positive(x)? else {
                    return Ok(None);
                };
                let s = self.broadcast_of(&xs)?;
                vec![p, self.constant(&s, -2.0, 2.0)?]
            }
            _ => {
                let y = self.partner(&xs)?;
                if self.u.arbitrary()? {
                    vec![y, x]
                } else {
                    vec![x, y]
                }
            }
        };
        Ok(self.node(Op::Binary(op), inputs))
    }

    /// `[.., m, k] @ [k, n]` (a constant, or a value of that shape), maybe transposed.
    pub(super) fn matmul(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (a, s) = self.pick()?;
        if s.is_empty() || (s.len() < 2 && self.u.ratio(1, 2)?) {
            return Ok(None);
        }
        let transpose_a = s.len() >= 2 && self.u.ratio(1, 4)?;
        let k = match (transpose_a, s.len()) {
            (true, n) => s[n - 2],
            (false, n) => s[n - 1],
        };
        let n = self.u.int_in_range(1..=6)?;
        let transpose_b = self.u.ratio(1, 3)?;
        let b_shape = if transpose_b { vec![n, k] } else { vec![k, n] };
        let b = match self.pool.iter().find(|(_, sh)| *sh == b_shape) {
            Some((v, _)) if self.u.ratio(1, 2)? => *v,
            _ => self.constant(&b_shape, -1.0, 1.0)?,
        };
        Ok(self.node(
            Op::MatMul(MatMul {
                transpose_a,
                transpose_b,
            }),
            vec![a, b],
        ))
    }

    /// A 1-D or 2-D NCHW convolution with a valid kernel, stride, dilation, padding and group.
    pub(super) fn conv(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        if !(3..=4).contains(&s.len()) {
            return Ok(None);
        }
        let c = s[1];
        let divisors: Vec<usize> = (1..=c).filter(|g| c % g == 0).collect();
        let group = if self.u.ratio(1, 3)? {
            divisors[self.u.choose_index(divisors.len())?]
        } else {
            1
        };
        let out_c = group * self.u.int_in_range(1..=3)?;
        let (kernel, strides, dilations, padding) = self.window(&s[2..])?;
        let mut k_shape = vec![out_c, c / group];
        k_shape.extend(&kernel);
        let mut inputs = vec![x, self.constant(&k_shape, -1.0, 1.0)?];
        if self.u.arbitrary()? {
            inputs.push(self.constant(&[out_c], -1.0, 1.0)?);
        }
        Ok(self.node(
            Op::Conv(Conv {
                layout: Layout::Nchw,
                kernel_layout: KernelLayout::Oihw,
                strides,
                dilations,
                padding,
                group,
                output_padding: vec![],
            }),
            inputs,
        ))
    }

    /// Kernel, strides, dilations and padding for a window over `spatial` (each pad smaller
    /// than its kernel, as ONNX asks).
    #[allow(clippy::type_complexity)]
    pub(super) fn window(
        &mut self,
        spatial: &[usize],
    ) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>, Padding)> {
        let (mut kernel, mut strides, mut dilations, mut pads) = (vec![], vec![], vec![], vec![]);
        for &n in spatial {
            let k = self.u.int_in_range(1..=3)?;
            kernel.push(k);
            // Stride 1 over a dimension of 1: tract's strided-unit-axis bug (module header).
            strides.push(if n == 1 {
                1
            } else {
                self.u.int_in_range(1..=2)?
            });
            dilations.push(if self.u.ratio(1, 4)? { 2 } else { 1 });
            let p = k - 1;
            pads.push((self.u.int_in_range(0..=p)?, self.u.int_in_range(0..=p)?));
        }
        let padding = match self.u.int_in_range(0..=3)? {
            0 => Padding::SameUpper,
            1 => Padding::Explicit(vec![(0, 0); spatial.len()]),
            _ => Padding::Explicit(pads),
        };
        Ok((kernel, strides, dilations, padding))
    }

    pub(super) fn pool_op(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        if !(3..=4).contains(&s.len()) {
            return Ok(None);
        }
        let kind = *self.u.choose(&[PoolKind::Max, PoolKind::Avg])?;
        if self.u.ratio(1, 4)? {
            return Ok(self.node(
                Op::GlobalPool(GlobalPool {
                    kind,
                    layout: Layout::Nchw,
                }),
                vec![x],
            ));
        }
        let (kernel, strides, mut dilations, padding) = self.window(&s[2..])?;
        // Dilated average pooling is not in ONNX.
        if kind == PoolKind::Avg {
            dilations.iter_mut().for_each(|d| *d = 1);
        }
        let count_include_pad = self.u.arbitrary()?;
        Ok(self.node(
            Op::Pool(Pool {
                kind,
                layout: Layout::Nchw,
                kernel,
                strides,
                dilations,
                padding,
                ceil_mode: false,
                count_include_pad,
            }),
            vec![x],
        ))
    }

    pub(super) fn batch_norm(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        if s.len() < 2 {
            return Ok(None);
        }
        let c = [s[1]];
        let scale = self.constant(&c, -1.0, 1.0)?;
        let bias = self.constant(&c, -1.0, 1.0)?;
        let mean = self.constant(&c, -1.0, 1.0)?;
        let var = self.constant(&c, 0.1, 1.0)?;
        Ok(self.node(
            Op::BatchNorm(BatchNorm {
                epsilon: 1e-5,
                layout: Layout::Nchw,
            }),
            vec![x, scale, bias, mean, var],
        ))
    }

    pub(super) fn softmax_or_layer_norm(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        let axis = self.u.choose_index(s.len())?;
        if self.u.arbitrary()? {
            let log = self.u.arbitrary()?;
            return Ok(self.node(Op::Softmax(Softmax { axis, log }), vec![x]));
        }
        let mut inputs = vec![x, self.constant(&s[axis..], -1.0, 1.0)?];
        if self.u.arbitrary()? {
            inputs.push(self.constant(&s[axis..], -1.0, 1.0)?);
        }
        Ok(self.node(
            Op::LayerNorm(LayerNorm {
                axis,
                epsilon: 1e-5,
            }),
            inputs,
        ))
    }

    /// To another factorization of the element count, rank 1–4.
    pub(super) fn reshape(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        let mut left: usize = s.iter().product();
        let rank = self.u.int_in_range(1..=4)?;
        let mut shape = Vec::new();
        for _ in 1..rank {
            let divisors: Vec<usize> = (1..=left.min(8))
                .filter(|&d| left.is_multiple_of(d))
                .collect();
            let d = divisors[self.u.choose_index(divisors.len())?];
            shape.push(d);
            left /= d;
        }
        shape.push(left);
        let at = self.u.choose_index(shape.len())?;
        shape.rotate_left(at);
        Ok(self.node(
            Op::Reshape(Reshape {
                shape: fixed_shape(&shape),
            }),
            vec![x],
        ))
    }

    pub(super) fn permutation(&mut self, n: usize) -> Result<Vec<usize>> {
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.u.int_in_range(0..=i)?;
            perm.swap(i, j);
        }
        Ok(perm)
    }

    pub(super) fn transpose(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        let perm = self.permutation(s.len())?;
        Ok(self.node(Op::Transpose(Transpose { perm }), vec![x]))
    }

    /// With values or constants of the same shape but along `axis`.
    pub(super) fn concat(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        let axis = self.u.choose_index(s.len())?;
        let mut inputs = vec![x];
        for _ in 0..self.u.int_in_range(1..=2)? {
            let same: Vec<ValueId> = self
                .pool
                .iter()
                .filter(|(_, t)| {
                    t.len() == s.len()
                        && t.iter()
                            .zip(&s)
                            .enumerate()
                            .all(|(i, (a, b))| i == axis || a == b)
                })
                .map(|(v, _)| *v)
                .collect();
            let v = if self.u.arbitrary()? {
                same[self.u.choose_index(same.len())?]
            } else {
                let mut t = s.clone();
                t[axis] = self.u.int_in_range(1..=4)?;
                self.constant(&t, -1.0, 1.0)?
            };
            inputs.insert(self.u.choose_index(inputs.len() + 1)?, v);
        }
        Ok(self.node(Op::Concat(Concat { axis }), inputs))
    }

    pub(super) fn split(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        let axis = self.u.choose_index(s.len())?;
        if s[axis] < 2 {
            return Ok(None);
        }
        let first = self.u.int_in_range(1..=s[axis] - 1)?;
        let mut sizes = vec![first];
        let rest = s[axis] - first;
        if rest >= 2 && self.u.arbitrary()? {
            let second = self.u.int_in_range(1..=rest - 1)?;
            sizes.extend([second, rest - second]);
        } else {
            sizes.push(rest);
        }
        Ok(self.node(Op::Split(Split { axis, sizes }), vec![x]))
    }

    pub(super) fn slice(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        let mut axes = Vec::new();
        for (axis, &n) in s.iter().enumerate() {
            if !self.u.ratio(1, 2)? {
                continue;
            }
            let n = n as i64;
            let step = *self.u.choose(&[1i64, 1, 2, -1])?;
            // Step 1 over a dimension of 1: tract's strided-unit-axis bug (module header).
            let step = if n == 1 { 1 } else { step };
            let a = self.u.int_in_range(0..=n - 1)?;
            let b = self.u.int_in_range(0..=n - 1)?;
            let (start, end) = if step > 0 {
                (a.min(b), a.max(b) + 1)
            } else {
                (a.max(b), a.min(b) - 1)
            };
            // An end past the dimension (clamped) is how frameworks say "to the end".
            let end = match end {
                e if e >= n && self.u.arbitrary()? => i64::MAX,
                -1 if self.u.arbitrary()? => i64::MIN,
                -1 => -n - 1,
                e => e,
            };
            axes.push(SliceAxis {
                axis,
                start,
                end,
                step,
            });
        }
        if axes.is_empty() {
            return Ok(None);
        }
        Ok(self.node(Op::Slice(Slice { axes }), vec![x]))
    }

    pub(super) fn pad(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        let mode = *self
            .u
            .choose(&[PadMode::Constant, PadMode::Reflect, PadMode::Edge])?;
        let mut pads = Vec::new();
        for &n in &s {
            // Reflect needs pads smaller than the dimension.
            let most = if mode == PadMode::Reflect { n - 1 } else { 2 }.min(2) as i64;
            pads.push((
                self.u.int_in_range(0..=most)?,
                self.u.int_in_range(0..=most)?,
            ));
        }
        let value = if mode == PadMode::Constant {
            f64::from(self.unit(-1.0, 1.0)?)
        } else {
            0.0
        };
        Ok(self.node(Op::Pad(Pad { mode, pads, value }), vec![x]))
    }

    pub(super) fn tile(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        let repeats = (0..s.len())
            .map(|_| self.u.int_in_range(1..=3))
            .collect::<Result<_>>()?;
        Ok(self.node(Op::Tile(Tile { repeats }), vec![x]))
    }

    /// Ones grown to 2–4 and maybe new leading dimensions.
    pub(super) fn expand(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        let mut shape = Vec::new();
        for _ in 0..self.u.int_in_range(0..=(4 - s.len().min(4)))? {
            shape.push(self.u.int_in_range(1..=3)?);
        }
        for &d in &s {
            shape.push(if d == 1 {
                self.u.int_in_range(1..=4)?
            } else {
                d
            });
        }
        Ok(self.node(
            Op::Expand(Expand {
                shape: fixed_shape(&shape),
            }),
            vec![x],
        ))
    }

    /// Constant indices (negative ones too) of rank 0–2.
    pub(super) fn gather(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        let axis = self.u.choose_index(s.len())?;
        let n = s[axis] as i64;
        let ishape: Vec<usize> = match self.u.int_in_range(0..=2)? {
            0 => vec![],
            1 => vec![self.u.int_in_range(1..=4)?],
            _ => vec![self.u.int_in_range(1..=3)?, self.u.int_in_range(1..=3)?],
        };
        let count: usize = ishape.iter().product();
        let idx = (0..count)
            .map(|_| self.u.int_in_range(-n..=n - 1))
            .collect::<Result<Vec<_>>>()?;
        let i = self.i64_constant(&ishape, &idx);
        Ok(self.node(Op::Gather(Gather { axis }), vec![x, i]))
    }

    pub(super) fn reduce(&mut self) -> Result<Option<Vec<ValueId>>> {
        use ReduceKind::*;
        let (x, s) = self.pick()?;
        let kind = *self
            .u
            .choose(&[Mean, Sum, Max, Min, Prod, L1, L2, LogSumExp, SumSquare])?;
        let mut axes = Vec::new();
        for a in 0..s.len() {
            if self.u.ratio(1, 2)? {
                axes.push(a);
            }
        }
        if axes.is_empty() {
            axes.push(self.u.choose_index(s.len())?);
        }
        let keep_dims = self.u.arbitrary()?;
        Ok(self.node(
            Op::Reduce(Reduce {
                kind,
                axes,
                keep_dims,
            }),
            vec![x],
        ))
    }

    /// NCHW spatial up-sampling by 2 or 3 (or halving even sizes): nearest or linear.
    pub(super) fn resize(&mut self) -> Result<Option<Vec<ValueId>>> {
        let (x, s) = self.pick()?;
        if s.len() != 4 {
            return Ok(None);
        }
        let f = *self.u.choose(&[2.0f32, 3.0, 0.5])?;
        if f < 1.0 && (s[2] % 2 != 0 || s[3] % 2 != 0) {
            return Ok(None);
        }
        let linear = self.u.arbitrary()?;
        let (mode, coord, nearest) = if linear {
            let coord = *self.u.choose(&[
                CoordTransform::HalfPixel,
                CoordTransform::AlignCorners,
                CoordTransform::Asymmetric,
            ])?;
            (ResizeMode::Linear, coord, NearestRounding::RoundPreferFloor)
        } else {
            (
                ResizeMode::Nearest,
                CoordTransform::Asymmetric,
                NearestRounding::Floor,
            )
        };
        Ok(self.node(
            Op::Resize(Resize {
                mode,
                coord,
                nearest,
                cubic_coeff_a: -0.75,
                exclude_outside: false,
                extrapolation_value: 0.0,
                layout: Layout::Nchw,
                scales: vec![1.0, 1.0, f, f],
                sizes: None,
            }),
            vec![x],
        ))
    }

    /// `Where(a < b, x, y)` with `a`, `b` graph inputs or constants (comparisons jump).
    pub(super) fn where_op(&mut self) -> Result<Option<Vec<ValueId>>> {
        use BinaryOp::*;
        let (a, s) = self.pick_input()?;
        let bs = self.broadcast_of(&s)?;
        let b = self.constant(&bs, -1.0, 1.0)?;
        let cmp = *self
            .u
            .choose(&[Less, Greater, LessOrEqual, GreaterOrEqual])?;
        let Some(c) = self.node(Op::Binary(cmp), vec![a, b]) else {
            return Ok(None);
        };
        let (x, xs) = self.pick()?;
        let y = self.partner(&xs)?;
        Ok(self.node(Op::Where, vec![c[0], x, y]))
    }
}

/// Whether `small` broadcasts to `big` numpy-style without growing it.
fn broadcasts(small: &[usize], big: &[usize]) -> bool {
    small.len() <= big.len()
        && small
            .iter()
            .rev()
            .zip(big.iter().rev())
            .all(|(&a, &b)| a == b || a == 1)
}
