//! Constant folding, for readers while they build a graph and for the clean-up pass after
//! rewrites: ops whose inputs are all constants become constants, so that
//! shape arithmetic (Shape → Gather → Concat → Reshape) and weight preprocessing vanish from
//! the graph. Data movement is done on raw element bytes (exact for every type); arithmetic
//! runs in i64 for integer types and f64 for floats. Large tensors are folded only by ops that
//! move data (reshape shares the bytes; transpose copies them once).

use crate::ir::ops::{BinaryOp, ReduceKind, UnaryOp};
use crate::ir::strided::{broadcast_strides, for_each_offset, gather_bytes, strides};
use crate::ir::{shape_fixed, DType, Op, Tensor, TensorType};
use bytes::Bytes;

/// Folding arithmetic is for shape math and small constants, not for weight tensors.
const MAX_COMPUTE_ELEMENTS: usize = 1 << 16;
const MAX_MOVE_ELEMENTS: usize = 1 << 26;

pub fn fold_from_types(op: &Op, inputs: &[&TensorType]) -> Option<Vec<Tensor>> {
    match op {
        Op::ShapeOf(s) => {
            let dims = shape_fixed(&inputs.first()?.shape)?;
            let v: Vec<i64> = dims[s.start..s.end].iter().map(|&d| d as i64).collect();
            Some(vec![Tensor::from_i64(vec![v.len()], &v)])
        }
        _ => None,
    }
}

/// Ops whose folding only moves elements (so large tensors fold: reshape shares the bytes,
/// the others copy them once); every other op computes, and folds small tensors only.
fn moves_data(op: &Op) -> bool {
    match op {
        Op::Reshape(_)
        | Op::Transpose(_)
        | Op::Concat(_)
        | Op::Gather(_)
        | Op::Slice(_)
        | Op::Cast(_) => true,
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Activation(_)
        | Op::Where
        | Op::MatMul(_)
        | Op::Einsum(_)
        | Op::Conv(_)
        | Op::ConvTranspose(_)
        | Op::Pool(_)
        | Op::GlobalPool(_)
        | Op::BatchNorm(_)
        | Op::LayerNorm(_)
        | Op::InstanceNorm(_)
        | Op::Softmax(_)
        | Op::Hardmax(_)
        | Op::LpNorm(_)
        | Op::Split(_)
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
        | Op::Lstm(_)
        | Op::Gru(_)
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

pub fn fold(op: &Op, inputs: &[&Tensor], out_types: &[TensorType]) -> Option<Vec<Tensor>> {
    let out_shape = shape_fixed(&out_types.first()?.shape)?;
    let n_out = out_shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    let limit = if moves_data(op) {
        MAX_MOVE_ELEMENTS
    } else {
        MAX_COMPUTE_ELEMENTS
    };
    if n_out > limit {
        return None;
    }
    let one = |t: Tensor| Some(vec![t]);
    match op {
        Op::Reshape(_) => one(inputs[0].reshaped(out_shape)),
        Op::ShapeOf(s) => {
            let v: Vec<i64> = inputs[0].shape[s.start..s.end]
                .iter()
                .map(|&d| d as i64)
                .collect();
            one(Tensor::from_i64(vec![v.len()], &v))
        }
        Op::Cast(c) => one(cast(inputs[0], c.to, out_shape)),
        Op::Transpose(t) => one(inputs[0].transposed(&t.perm)),
        Op::Concat(c) => one(concat(inputs, c.axis, out_shape)),
        Op::Gather(g) => gather(inputs[0], inputs[1], g.axis, out_shape).map(|t| vec![t]),
        Op::Slice(s) => one(slice(inputs[0], s, out_shape)),
        Op::Unary(u) => unary(*u, inputs[0]).map(|t| vec![t]),
        Op::Binary(b) => {
            binary(*b, inputs[0], inputs[1], &out_types[0].dtype, out_shape).map(|t| vec![t])
        }
        Op::Where => where_(inputs, out_shape).map(|t| vec![t]),
        Op::ConstantOfShape(c) => one(Tensor::filled(
            c.value.dtype,
            out_shape,
            &c.value.data[..c.value.dtype.size()],
        )),
        Op::Range => {
            let (a, d) = (inputs[0].to_f64s(), inputs[2].to_f64s());
            let v: Vec<f64> = (0..n_out).map(|i| a[0] + i as f64 * d[0]).collect();
            if inputs[0].dtype.is_int() {
                let ai = inputs[0].to_i64s()?[0];
                let di = inputs[2].to_i64s()?[0];
                let v: Vec<i64> = (0..n_out as i64).map(|i| ai + i * di).collect();
                return one(Tensor::from_i64s(inputs[0].dtype, out_shape, &v));
            }
            one(Tensor::from_f64s(inputs[0].dtype, out_shape, &v))
        }
        Op::Expand(_) => one(expand(inputs[0], out_shape)),
        Op::Tile(_) => one(tile(inputs[0], out_shape)),
        Op::Reduce(r) if inputs[0].dtype.is_int() && r.axes.len() == inputs[0].shape.len() => {
            let v = inputs[0].to_i64s()?;
            let x = match r.kind {
                ReduceKind::Prod => v.iter().product(),
                ReduceKind::Sum => v.iter().sum(),
                ReduceKind::Max => *v.iter().max()?,
                ReduceKind::Min => *v.iter().min()?,
                ReduceKind::Mean
                | ReduceKind::L1
                | ReduceKind::L2
                | ReduceKind::LogSum
                | ReduceKind::LogSumExp
                | ReduceKind::SumSquare => return None,
            };
            one(Tensor::from_i64s(inputs[0].dtype, out_shape, &[x]))
        }
        Op::Activation(_)
        | Op::MatMul(_)
        | Op::Einsum(_)
        | Op::Conv(_)
        | Op::ConvTranspose(_)
        | Op::Pool(_)
        | Op::GlobalPool(_)
        | Op::BatchNorm(_)
        | Op::LayerNorm(_)
        | Op::InstanceNorm(_)
        | Op::Softmax(_)
        | Op::Hardmax(_)
        | Op::LpNorm(_)
        | Op::Split(_)
        | Op::Pad(_)
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
        | Op::Reduce(_)
        | Op::Lstm(_)
        | Op::Gru(_)
        | Op::QuantizeLinear(_)
        | Op::DequantizeLinear(_)
        | Op::DynamicQuantizeLinear
        | Op::ConvInteger(_)
        | Op::MatMulInteger
        | Op::QLinearConv(_)
        | Op::QLinearMatMul
        | Op::Dynamic(_)
        | Op::If(_)
        | Op::Loop(_) => None,
    }
}

fn expand(t: &Tensor, out_shape: Vec<usize>) -> Tensor {
    let data = gather_bytes(t, &out_shape, &broadcast_strides(&t.shape, &out_shape));
    Tensor {
        dtype: t.dtype,
        shape: out_shape,
        data,
    }
}

/// Tile = read index modulo the input size on each axis.
fn tile(t: &Tensor, out_shape: Vec<usize>) -> Tensor {
    let es = t.dtype.size();
    let s = strides(&t.shape);
    let n: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(n * es);
    let os = strides(&out_shape);
    for flat in 0..n {
        let off: usize = (0..out_shape.len())
            .map(|ax| ((flat / os[ax]) % out_shape[ax]) % t.shape[ax] * s[ax])
            .sum();
        out.extend_from_slice(&t.data[off * es..(off + 1) * es]);
    }
    Tensor {
        dtype: t.dtype,
        shape: out_shape,
        data: Bytes::from(out),
    }
}

fn concat(inputs: &[&Tensor], axis: usize, out_shape: Vec<usize>) -> Tensor {
    let es = inputs[0].dtype.size();
    let outer: usize = out_shape[..axis].iter().product();
    let mut out = Vec::with_capacity(out_shape.iter().product::<usize>() * es);
    for o in 0..outer {
        for t in inputs {
            let chunk = t.shape[axis..].iter().product::<usize>() * es;
            out.extend_from_slice(&t.data[o * chunk..(o + 1) * chunk]);
        }
    }
    Tensor {
        dtype: inputs[0].dtype,
        shape: out_shape,
        data: Bytes::from(out),
    }
}

fn gather(t: &Tensor, idx: &Tensor, axis: usize, out_shape: Vec<usize>) -> Option<Tensor> {
    let es = t.dtype.size();
    let n = t.shape[axis] as i64;
    let outer: usize = t.shape[..axis].iter().product();
    let inner: usize = t.shape[axis + 1..].iter().product::<usize>() * es;
    let mut out = Vec::with_capacity(out_shape.iter().product::<usize>() * es);
    let indices = idx.to_i64s()?;
    for o in 0..outer {
        for &i in &indices {
            let i = if i < 0 { i + n } else { i };
            if i < 0 || i >= n {
                return None;
            }
            let start = (o * n as usize + i as usize) * inner;
            out.extend_from_slice(&t.data[start..start + inner]);
        }
    }
    Some(Tensor {
        dtype: t.dtype,
        shape: out_shape,
        data: Bytes::from(out),
    })
}

fn slice(t: &Tensor, s: &crate::ir::ops::Slice, out_shape: Vec<usize>) -> Tensor {
    let st = strides(&t.shape);
    let mut base = 0usize;
    let mut in_strides = st.clone();
    for a in &s.axes {
        let n = t.shape[a.axis] as i64;
        let norm = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
        let start = if a.step > 0 {
            norm(a.start).clamp(0, n)
        } else {
            norm(a.start).clamp(-1, n - 1)
        };
        if out_shape[a.axis] > 0 {
            base += start as usize * st[a.axis];
        }
        in_strides[a.axis] = (st[a.axis] as i64).wrapping_mul(a.step) as usize;
    }
    // Negative steps wrap as usize arithmetic; offsets stay in range because the walk does.
    let es = t.dtype.size();
    let mut out = Vec::with_capacity(out_shape.iter().product::<usize>() * es);
    for_each_offset(&out_shape, &in_strides, |o| {
        let off = base.wrapping_add(o);
        out.extend_from_slice(&t.data[off * es..(off + 1) * es]);
    });
    Tensor {
        dtype: t.dtype,
        shape: out_shape,
        data: Bytes::from(out),
    }
}

fn cast(t: &Tensor, to: DType, shape: Vec<usize>) -> Tensor {
    if t.dtype.is_float() && to.is_int()
        || t.dtype.is_float() && to == DType::Bool
        || !t.dtype.is_int() && !to.is_int()
    {
        Tensor::from_f64s(to, shape, &t.to_f64s())
    } else if let Some(v) = t.to_i64s() {
        Tensor::from_i64s(to, shape, &v)
    } else {
        Tensor::from_f64s(to, shape, &t.to_f64s())
    }
}

fn unary(u: UnaryOp, t: &Tensor) -> Option<Tensor> {
    if t.dtype.is_int() || t.dtype == DType::Bool {
        let v = t.to_i64s()?;
        let f = |x: i64| -> Option<i64> {
            Some(match u {
                UnaryOp::Neg => -x,
                UnaryOp::Abs => x.abs(),
                UnaryOp::Sign => x.signum(),
                UnaryOp::Not => (x == 0) as i64,
                UnaryOp::BitwiseNot => !x,
                UnaryOp::Relu => x.max(0),
                UnaryOp::Sqrt
                | UnaryOp::Rsqrt
                | UnaryOp::Exp
                | UnaryOp::Log
                | UnaryOp::Reciprocal
                | UnaryOp::Erf
                | UnaryOp::Floor
                | UnaryOp::Ceil
                | UnaryOp::Round
                | UnaryOp::Sin
                | UnaryOp::Cos
                | UnaryOp::Tan
                | UnaryOp::Asin
                | UnaryOp::Acos
                | UnaryOp::Atan
                | UnaryOp::Sinh
                | UnaryOp::Cosh
                | UnaryOp::Asinh
                | UnaryOp::Acosh
                | UnaryOp::Atanh
                | UnaryOp::Sigmoid
                | UnaryOp::Tanh
                | UnaryOp::Softplus
                | UnaryOp::Softsign
                | UnaryOp::IsNaN
                | UnaryOp::Square => return None,
            })
        };
        let r: Option<Vec<i64>> = v.into_iter().map(f).collect();
        return Some(Tensor::from_i64s(t.dtype, t.shape.clone(), &r?));
    }
    let f = |x: f64| -> Option<f64> {
        Some(match u {
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Rsqrt => 1.0 / x.sqrt(),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Reciprocal => 1.0 / x,
            UnaryOp::Floor => x.floor(),
            UnaryOp::Ceil => x.ceil(),
            UnaryOp::Relu => x.max(0.0),
            UnaryOp::Asin => x.asin(),
            UnaryOp::Acos => x.acos(),
            UnaryOp::Sinh => x.sinh(),
            UnaryOp::Cosh => x.cosh(),
            UnaryOp::Asinh => x.asinh(),
            UnaryOp::Acosh => x.acosh(),
            UnaryOp::Atanh => x.atanh(),
            UnaryOp::Sign => {
                if x == 0.0 {
                    0.0
                } else {
                    x.signum()
                }
            }
            UnaryOp::Erf
            | UnaryOp::Round
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Tan
            | UnaryOp::Atan
            | UnaryOp::Sigmoid
            | UnaryOp::Tanh
            | UnaryOp::Softplus
            | UnaryOp::Softsign
            | UnaryOp::Not
            | UnaryOp::IsNaN
            | UnaryOp::Square
            | UnaryOp::BitwiseNot => return None,
        })
    };
    let r: Option<Vec<f64>> = t.to_f64s().into_iter().map(f).collect();
    Some(Tensor::from_f64s(t.dtype, t.shape.clone(), &r?))
}

fn binary(
    b: BinaryOp,
    x: &Tensor,
    y: &Tensor,
    out_dtype: &DType,
    out_shape: Vec<usize>,
) -> Option<Tensor> {
    let sx = broadcast_strides(&x.shape, &out_shape);
    let sy = broadcast_strides(&y.shape, &out_shape);
    let mut ox = Vec::new();
    let mut oy = Vec::new();
    for_each_offset(&out_shape, &sx, |o| ox.push(o));
    for_each_offset(&out_shape, &sy, |o| oy.push(o));
    if x.dtype.is_int() || x.dtype == DType::Bool {
        let (a, c) = (x.to_i64s()?, y.to_i64s()?);
        // Shifts are on unsigned types (u64 is held bit-cast in the i64); the result is
        // truncated to the type's width when stored.
        let bits = x.dtype.size() as i64 * 8;
        let shift = |p: i64, q: i64, left: bool| -> Option<i64> {
            if !(0..bits).contains(&q) {
                return None;
            }
            Some(if left {
                ((p as u64) << q) as i64
            } else {
                ((p as u64) >> q) as i64
            })
        };
        let r: Option<Vec<i64>> = ox
            .iter()
            .zip(&oy)
            .map(|(&i, &j)| {
                let (p, q) = (a[i], c[j]);
                Some(match b {
                    BinaryOp::Add => p.wrapping_add(q),
                    BinaryOp::Sub => p.wrapping_sub(q),
                    BinaryOp::Mul => p.wrapping_mul(q),
                    BinaryOp::Div => p.checked_div(q)?,
                    BinaryOp::Mod => {
                        p.checked_rem_euclid(q)
                            .map(|r| if q < 0 && r != 0 { r + q } else { r })?
                    }
                    BinaryOp::Fmod => p.checked_rem(q)?,
                    BinaryOp::Min => p.min(q),
                    BinaryOp::Max => p.max(q),
                    BinaryOp::Equal => (p == q) as i64,
                    BinaryOp::Less => (p < q) as i64,
                    BinaryOp::Greater => (p > q) as i64,
                    BinaryOp::LessOrEqual => (p <= q) as i64,
                    BinaryOp::GreaterOrEqual => (p >= q) as i64,
                    BinaryOp::And => (p != 0 && q != 0) as i64,
                    BinaryOp::Or => (p != 0 || q != 0) as i64,
                    BinaryOp::Xor => ((p != 0) != (q != 0)) as i64,
                    BinaryOp::BitwiseAnd => p & q,
                    BinaryOp::BitwiseOr => p | q,
                    BinaryOp::BitwiseXor => p ^ q,
                    BinaryOp::BitShiftLeft => shift(p, q, true)?,
                    BinaryOp::BitShiftRight => shift(p, q, false)?,
                    BinaryOp::Pow | BinaryOp::PRelu | BinaryOp::SquaredDifference => return None,
                })
            })
            .collect();
        return Some(Tensor::from_i64s(*out_dtype, out_shape, &r?));
    }
    let (a, c) = (x.to_f64s(), y.to_f64s());
    let r: Option<Vec<f64>> = ox
        .iter()
        .zip(&oy)
        .map(|(&i, &j)| {
            let (p, q) = (a[i], c[j]);
            Some(match b {
                BinaryOp::Add => p + q,
                BinaryOp::Sub => p - q,
                BinaryOp::Mul => p * q,
                BinaryOp::Div => p / q,
                BinaryOp::Pow => p.powf(q),
                BinaryOp::Min => p.min(q),
                BinaryOp::Max => p.max(q),
                BinaryOp::Equal => (p == q) as i64 as f64,
                BinaryOp::Less => (p < q) as i64 as f64,
                BinaryOp::Greater => (p > q) as i64 as f64,
                BinaryOp::LessOrEqual => (p <= q) as i64 as f64,
                BinaryOp::GreaterOrEqual => (p >= q) as i64 as f64,
                BinaryOp::Mod
                | BinaryOp::Fmod
                | BinaryOp::PRelu
                | BinaryOp::And
                | BinaryOp::Or
                | BinaryOp::Xor
                | BinaryOp::SquaredDifference
                | BinaryOp::BitShiftLeft
                | BinaryOp::BitShiftRight
                | BinaryOp::BitwiseAnd
                | BinaryOp::BitwiseOr
                | BinaryOp::BitwiseXor => return None,
            })
        })
        .collect();
    // f32 arithmetic must round like the runtime would: compute in f64, store as f32.
    Some(Tensor::from_f64s(*out_dtype, out_shape, &r?))
}

fn where_(inputs: &[&Tensor], out_shape: Vec<usize>) -> Option<Tensor> {
    let (c, x, y) = (inputs[0], inputs[1], inputs[2]);
    let es = x.dtype.size();
    let mut offs: [Vec<usize>; 3] = Default::default();
    for (k, t) in [c, x, y].iter().enumerate() {
        for_each_offset(&out_shape, &broadcast_strides(&t.shape, &out_shape), |o| {
            offs[k].push(o)
        });
    }
    let mut out = Vec::with_capacity(offs[0].len() * es);
    for ((&oc, &ox), &oy) in offs[0].iter().zip(&offs[1]).zip(&offs[2]) {
        let src = if c.data[oc] != 0 { (x, ox) } else { (y, oy) };
        out.extend_from_slice(&src.0.data[src.1 * es..(src.1 + 1) * es]);
    }
    Some(Tensor {
        dtype: x.dtype,
        shape: out_shape,
        data: Bytes::from(out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::{Slice, SliceAxis, Transpose};
    use crate::ir::{fixed_shape, Dim};

    fn ty(dtype: DType, s: &[usize]) -> TensorType {
        TensorType::new(dtype, fixed_shape(s))
    }

    #[test]
    fn transpose_and_slice_move_elements() {
        let t = Tensor::from_i64(vec![2, 3], &[0, 1, 2, 3, 4, 5]);
        let r = fold(
            &Op::Transpose(Transpose { perm: vec![1, 0] }),
            &[&t],
            &[ty(DType::I64, &[3, 2])],
        )
        .unwrap();
        assert_eq!(r[0].to_i64s().unwrap(), vec![0, 3, 1, 4, 2, 5]);
        let s = Slice {
            axes: vec![SliceAxis {
                axis: 1,
                start: -1,
                end: i64::MIN,
                step: -2,
            }],
        };
        let r = fold(&Op::Slice(s), &[&t], &[ty(DType::I64, &[2, 2])]).unwrap();
        assert_eq!(r[0].to_i64s().unwrap(), vec![2, 0, 5, 3]);
    }

    #[test]
    fn bit_ops_fold_within_the_type_width() {
        let x = Tensor::from_i64s(DType::U8, vec![3], &[0b1010, 200, 1]);
        let s = Tensor::from_i64s(DType::U8, vec![3], &[1, 1, 8]);
        let t = ty(DType::U8, &[3]);
        let left = fold(
            &Op::Binary(BinaryOp::BitShiftLeft),
            &[&x, &s],
            std::slice::from_ref(&t),
        );
        // A shift by the full width is not folded (left to the runtime).
        assert!(left.is_none());
        let s = Tensor::from_i64s(DType::U8, vec![3], &[1, 1, 7]);
        let r = fold(
            &Op::Binary(BinaryOp::BitShiftLeft),
            &[&x, &s],
            std::slice::from_ref(&t),
        )
        .unwrap();
        assert_eq!(r[0].to_i64s().unwrap(), vec![0b10100, 144, 128]);
        let r = fold(
            &Op::Binary(BinaryOp::BitShiftRight),
            &[&x, &s],
            std::slice::from_ref(&t),
        )
        .unwrap();
        assert_eq!(r[0].to_i64s().unwrap(), vec![0b101, 100, 0]);
        let big = Tensor::from_i64s(DType::U64, vec![1], &[-1]);
        let one = Tensor::from_i64s(DType::U64, vec![1], &[1]);
        let r = fold(
            &Op::Binary(BinaryOp::BitShiftRight),
            &[&big, &one],
            &[ty(DType::U64, &[1])],
        )
        .unwrap();
        assert_eq!(r[0].to_i64s().unwrap(), vec![i64::MAX]);
        let r = fold(&Op::Unary(UnaryOp::BitwiseNot), &[&x], &[t]).unwrap();
        assert_eq!(r[0].to_i64s().unwrap(), vec![245, 55, 254]);
        let a = Tensor::from_f32(vec![2], &[0.5, 2.0]);
        let r = fold(&Op::Unary(UnaryOp::Acosh), &[&a], &[ty(DType::F32, &[2])]).unwrap();
        assert!(r[0].to_f64s()[0].is_nan());
        assert!((r[0].to_f64s()[1] - 2f64.acosh()).abs() < 1e-6);
    }

    #[test]
    fn integer_division_truncates_and_large_values_stay_exact() {
        let a = Tensor::from_i64(vec![2], &[7, i64::MAX]);
        let b = Tensor::from_i64(vec![1], &[2]);
        let r = fold(
            &Op::Binary(BinaryOp::Div),
            &[&a, &b],
            &[ty(DType::I64, &[2])],
        )
        .unwrap();
        assert_eq!(r[0].to_i64s().unwrap(), vec![3, i64::MAX / 2]);
        let s = TensorType::new(DType::F32, vec![Dim::Sym("b".into()), Dim::Fixed(3)]);
        assert!(fold_from_types(
            &Op::ShapeOf(crate::ir::ops::ShapeOf { start: 0, end: 2 }),
            &[&s]
        )
        .is_none());
    }
}
