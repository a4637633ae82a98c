//! ONNX integer-arithmetic ops as float arithmetic, for formats with no integer kernels
//! (TF.js): QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger, DynamicQuantizeLinear.
//!
//! The integer products and sums are computed in float32, exact while every partial sum stays
//! below 2^24 (8-bit operands: a few hundred terms; beyond that the float sum rounds, as
//! float accumulation would). Requantization follows onnxruntime: the multiplier
//! `x_scale · w_scale / y_scale` in float32, `round-half-even(acc · multiplier) + y_zero_point`,
//! saturated to the output type. Constant weights have their zero point subtracted once, here.

use crate::ir::ops::{Activation, BinaryOp, Cast, Conv, MatMul, Reduce, ReduceKind, UnaryOp};
use crate::ir::{DType, Graph, Layout, Node, Op, Tensor, ValueId};
use crate::passes::rewrite::Rewriter;

fn qrange(d: DType) -> Option<(f32, f32)> {
    Some(match d {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        _ => return None,
    })
}

struct Lw<'r, 'g> {
    rw: &'r mut Rewriter<'g>,
    base: String,
}

impl Lw<'_, '_> {
    fn op(&mut self, op: Op, ins: Vec<ValueId>) -> Result<ValueId, String> {
        self.rw.op(&self.base, op, ins)
    }
    fn bin(&mut self, b: BinaryOp, x: ValueId, y: ValueId) -> Result<ValueId, String> {
        self.op(Op::Binary(b), vec![x, y])
    }
    fn konst(&mut self, t: Tensor) -> ValueId {
        let name = format!("{}/c", self.base);
        self.rw.konst(&name, t)
    }
    fn cast(&mut self, x: ValueId, to: DType) -> Result<ValueId, String> {
        self.op(Op::Cast(Cast { to }), vec![x])
    }
    fn constant(&self, v: ValueId) -> Option<Tensor> {
        self.rw.g.constant(v).cloned()
    }

    /// `x - zero_point` in float32; a constant `x` is folded (per-axis zero point on `axis`).
    fn centered(
        &mut self,
        x: ValueId,
        zp: Option<ValueId>,
        axis: usize,
    ) -> Result<ValueId, String> {
        // A zero point computed at run time (DynamicQuantizeLinear's) is per tensor.
        if let Some(z) = zp.filter(|&z| self.rw.g.constant(z).is_none()) {
            let xf = self.cast(x, DType::F32)?;
            let zf = self.cast(z, DType::F32)?;
            return self.bin(BinaryOp::Sub, xf, zf);
        }
        let zp_t = match zp {
            Some(z) => Some(self.constant(z).ok_or("zero points must be constants")?),
            None => None,
        };
        let zp_v = zp_t.as_ref().map(|t| t.to_f64s()).unwrap_or_default();
        if let Some(t) = self.constant(x) {
            let v = t.to_f64s();
            let inner: usize = t.shape[axis.min(t.shape.len())..].iter().skip(1).product();
            let out: Vec<f64> = v
                .iter()
                .enumerate()
                .map(|(i, &a)| {
                    let z = match zp_v.len() {
                        0 => 0.0,
                        1 => zp_v[0],
                        n => zp_v[(i / inner.max(1)) % n],
                    };
                    a - z
                })
                .collect();
            return Ok(self.konst(Tensor::from_f64s(DType::F32, t.shape.clone(), &out)));
        }
        let xf = self.cast(x, DType::F32)?;
        if zp_v.iter().all(|&z| z == 0.0) {
            return Ok(xf);
        }
        let rank = self.rw.g.ty(x).rank();
        let z = self.per_axis(&zp_v, axis, rank);
        self.bin(BinaryOp::Sub, xf, z)
    }

    /// A float32 constant of `v` broadcasting along `axis` of a rank-`rank` value.
    fn per_axis(&mut self, v: &[f64], axis: usize, rank: usize) -> ValueId {
        let shape = if v.len() == 1 {
            vec![]
        } else {
            let mut s = vec![1usize; rank.saturating_sub(axis).max(1)];
            s[0] = v.len();
            s
        };
        self.konst(Tensor::from_f64s(DType::F32, shape, v))
    }

    fn scalar_f32(&self, v: ValueId) -> Result<Vec<f32>, String> {
        let t = self.rw.g.constant(v).ok_or("scales must be constants")?;
        Ok(t.to_f64s().into_iter().map(|x| x as f32).collect())
    }

    /// `saturate(round(acc · m) + y_zero_point)` (input 7 of `n`) cast to `n`'s output type,
    /// written into `n`'s output.
    fn requantize(
        &mut self,
        acc: ValueId,
        m: &[f32],
        m_axis: usize,
        n: &Node,
    ) -> Result<(), String> {
        let zp = n.inputs.get(7).copied();
        let (out, name) = (n.outputs[0], n.name.as_str());
        let dtype = self.rw.g.ty(out).dtype;
        let (lo, hi) = qrange(dtype).ok_or("unsupported quantized type")?;
        let rank = self.rw.g.ty(acc).rank();
        let mv: Vec<f64> = m.iter().map(|&x| x as f64).collect();
        let mc = self.per_axis(&mv, m_axis, rank);
        let scaled = self.bin(BinaryOp::Mul, acc, mc)?;
        let mut r = self.op(Op::Unary(UnaryOp::Round), vec![scaled])?;
        if let Some(z) = zp {
            let zv = self
                .constant(z)
                .ok_or("zero points must be constants")?
                .to_f64s();
            if zv.iter().any(|&x| x != 0.0) {
                let zc = self.per_axis(&zv, m_axis, rank);
                r = self.bin(BinaryOp::Add, r, zc)?;
            }
        }
        let c = self.op(
            Op::Activation(Activation::Clip {
                min: Some(lo),
                max: Some(hi),
            }),
            vec![r],
        )?;
        self.rw
            .op_into(name, Op::Cast(Cast { to: dtype }), vec![c], out);
        Ok(())
    }
}

/// `x_scale · w_scale / y_scale` per output channel, in float32 as onnxruntime computes it.
fn multiplier(xs: &[f32], ws: &[f32], ys: &[f32]) -> Vec<f32> {
    let n = ws.len().max(xs.len());
    (0..n)
        .map(|i| xs[i.min(xs.len() - 1)] * ws[i.min(ws.len() - 1)] / ys[0])
        .collect()
}

fn conv_channel_axis(c: &Conv, rank: usize) -> usize {
    if c.layout == Layout::Nhwc {
        rank - 1
    } else {
        1
    }
}

fn lower_node(l: &mut Lw, n: &Node) -> Result<bool, String> {
    let input = |i: usize| n.inputs.get(i).copied();
    match &n.op {
        Op::ConvInteger(c) => {
            let x = l.centered(n.inputs[0], input(2), 0)?;
            let w = l.centered(n.inputs[1], input(3), 0)?;
            let acc = l.op(Op::Conv(c.clone()), vec![x, w])?;
            l.rw.op_into(
                &n.name,
                Op::Cast(Cast { to: DType::I32 }),
                vec![acc],
                n.outputs[0],
            );
        }
        Op::MatMulInteger => {
            let rank_b = l.rw.g.ty(n.inputs[1]).rank();
            let a = l.centered(n.inputs[0], input(2), 0)?;
            let b = l.centered(n.inputs[1], input(3), rank_b.saturating_sub(1))?;
            let acc = l.op(
                Op::MatMul(MatMul {
                    transpose_a: false,
                    transpose_b: false,
                }),
                vec![a, b],
            )?;
            l.rw.op_into(
                &n.name,
                Op::Cast(Cast { to: DType::I32 }),
                vec![acc],
                n.outputs[0],
            );
        }
        Op::QLinearConv(c) => {
            let x = l.centered(n.inputs[0], input(2), 0)?;
            let w = l.centered(n.inputs[3], input(5), 0)?;
            let mut ins = vec![x, w];
            if let Some(b) = input(8) {
                let t = l.constant(b).ok_or("the bias must be constant")?;
                let bt = Tensor::from_f64s(DType::F32, t.shape.clone(), &t.to_f64s());
                ins.push(l.konst(bt));
            }
            let acc = l.op(Op::Conv(c.clone()), ins)?;
            let m = multiplier(
                &l.scalar_f32(n.inputs[1])?,
                &l.scalar_f32(n.inputs[4])?,
                &l.scalar_f32(n.inputs[6])?,
            );
            let rank = l.rw.g.ty(acc).rank();
            l.requantize(acc, &m, conv_channel_axis(c, rank), n)?;
        }
        Op::QLinearMatMul => {
            let xs = l.scalar_f32(n.inputs[1])?;
            if xs.len() != 1 {
                return Err("a per-row scale of the first operand is not lowered".into());
            }
            let rank_b = l.rw.g.ty(n.inputs[3]).rank();
            let a = l.centered(n.inputs[0], input(2), 0)?;
            let b = l.centered(n.inputs[3], input(5), rank_b.saturating_sub(1))?;
            let acc = l.op(
                Op::MatMul(MatMul {
                    transpose_a: false,
                    transpose_b: false,
                }),
                vec![a, b],
            )?;
            let m = multiplier(
                &xs,
                &l.scalar_f32(n.inputs[4])?,
                &l.scalar_f32(n.inputs[6])?,
            );
            let rank = l.rw.g.ty(acc).rank();
            l.requantize(acc, &m, rank - 1, n)?;
        }
        Op::DynamicQuantizeLinear => {
            // scale = (max(x, 0) - min(x, 0)) / 255; zp = round(clip(-min / scale, 0, 255));
            // y = clip(round(x / scale) + zp, 0, 255).
            let x = n.inputs[0];
            let rank = l.rw.g.ty(x).rank();
            let all: Vec<usize> = (0..rank).collect();
            let reduce = |kind| {
                Op::Reduce(Reduce {
                    kind,
                    axes: all.clone(),
                    keep_dims: false,
                })
            };
            let zero = l.konst(Tensor::scalar_f32(0.0));
            let mn = l.op(reduce(ReduceKind::Min), vec![x])?;
            let mn = l.bin(BinaryOp::Min, mn, zero)?;
            let mx = l.op(reduce(ReduceKind::Max), vec![x])?;
            let mx = l.bin(BinaryOp::Max, mx, zero)?;
            let span = l.bin(BinaryOp::Sub, mx, mn)?;
            let q = l.konst(Tensor::scalar_f32(255.0));
            let scale_name = l.rw.names.fresh(&format!("{}/scale", n.name));
            l.rw.op_into(
                &scale_name,
                Op::Binary(BinaryOp::Div),
                vec![span, q],
                n.outputs[1],
            );
            let scale = n.outputs[1];
            let neg = l.op(Op::Unary(UnaryOp::Neg), vec![mn])?;
            let zf = l.bin(BinaryOp::Div, neg, scale)?;
            let zf = l.op(
                Op::Activation(Activation::Clip {
                    min: Some(0.0),
                    max: Some(255.0),
                }),
                vec![zf],
            )?;
            let zf = l.op(Op::Unary(UnaryOp::Round), vec![zf])?;
            let zp_name = l.rw.names.fresh(&format!("{}/zero_point", n.name));
            l.rw.op_into(
                &zp_name,
                Op::Cast(Cast { to: DType::U8 }),
                vec![zf],
                n.outputs[2],
            );
            let xs = l.bin(BinaryOp::Div, x, scale)?;
            let r = l.op(Op::Unary(UnaryOp::Round), vec![xs])?;
            let r = l.bin(BinaryOp::Add, r, zf)?;
            let c = l.op(
                Op::Activation(Activation::Clip {
                    min: Some(0.0),
                    max: Some(255.0),
                }),
                vec![r],
            )?;
            l.rw.op_into(
                &n.name,
                Op::Cast(Cast { to: DType::U8 }),
                vec![c],
                n.outputs[0],
            );
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Lowers every integer-arithmetic node it can; nodes it cannot (non-constant scales or zero
/// points) stay for the writer to report. Returns whether anything changed.
pub fn lower_integer_ops(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        if !matches!(
            n.op,
            Op::ConvInteger(_)
                | Op::MatMulInteger
                | Op::QLinearConv(_)
                | Op::QLinearMatMul
                | Op::DynamicQuantizeLinear
        ) || !lowerable(rw.g, &n)
        {
            rw.keep(n);
            continue;
        }
        let mut l = Lw {
            rw: &mut rw,
            base: n.name.clone(),
        };
        lower_node(&mut l, &n)?;
        changed = true;
    }
    rw.finish();
    Ok(changed)
}

/// Scales and zero points (and QLinear biases) must be constants.
fn lowerable(g: &Graph, n: &Node) -> bool {
    let consts: &[usize] = match &n.op {
        // Their zero points may be computed (per tensor) at run time.
        Op::ConvInteger(_) | Op::MatMulInteger => {
            return n.inputs[2..].iter().all(|&v| {
                g.constant(v).is_some() || crate::ir::ops::dim_product(&g.ty(v).shape) == Some(1)
            })
        }
        Op::QLinearConv(_) => &[1, 2, 4, 5, 6, 7, 8],
        Op::QLinearMatMul => &[1, 2, 4, 5, 6, 7],
        _ => &[],
    };
    let ok = consts
        .iter()
        .all(|&i| n.inputs.get(i).is_none_or(|&v| g.constant(v).is_some()));
    let out_ok = match &n.op {
        Op::QLinearConv(_) | Op::QLinearMatMul => qrange(g.ty(n.outputs[0]).dtype).is_some(),
        _ => true,
    };
    let a_scale_ok = match &n.op {
        Op::QLinearMatMul => g.constant(n.inputs[1]).is_some_and(|t| t.len() == 1),
        _ => true,
    };
    ok && out_ok && a_scale_ok
}
