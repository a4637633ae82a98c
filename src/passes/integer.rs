//! ONNX integer-arithmetic ops (QLinearConv-10, QLinearMatMul-10, ConvInteger-10,
//! MatMulInteger-10, DynamicQuantizeLinear-11) as float ops with builtins (IR rewrites, before
//! the layout pass so the float Conv is laid out like any other).
//!
//! Exactness: integer operands minus their zero points are small integers, exact in f32; their
//! products (|·| ≤ 255²) and the accumulated sums are exact while every partial sum stays below
//! 2^24, which is checked at conversion time from the constant weights (the activation side is
//! bounded by its type's range), so the float CONV_2D / FULLY_CONNECTED result is the integer
//! result whatever the summation order. Requantization follows onnxruntime: the multiplier
//! `(x_scale · w_scale) / y_scale` in f32, `acc · multiplier`, ROUND (TFLite's rounds half to
//! even, as ONNX), `+ y_zero_point`, clamp to the type's range, CAST. Quantizing divides by
//! the scale (as onnxruntime and the ONNX reference do), never multiplies by its inverse.
//!
//! Refused (kept, listed with the reason from [`why_not`]): non-constant weights, scales or
//! output zero points; per-channel activation zero points; accumulators that could reach
//! 2^24; integer types other than u8/i8.

use crate::ir::ops::{
    Activation, BinaryOp, Cast, Conv, MatMul, Reduce, ReduceKind, Reshape, UnaryOp,
};
use crate::ir::{DType, Graph, Node, Op, Tensor, ValueId};
use crate::passes::rewrite::Rewriter;

/// Largest accumulator magnitude that f32 holds exactly (every integer up to it).
const EXACT: f64 = 16_777_216.0;

fn qrange(d: DType) -> Option<(f32, f32)> {
    match d {
        DType::U8 => Some((0.0, 255.0)),
        DType::I8 => Some((-128.0, 127.0)),
        _ => None,
    }
}

/// The input `i` if the node has it (optional zero points may be absent).
fn input(n: &Node, i: usize) -> Option<ValueId> {
    n.inputs.get(i).copied()
}

/// Where an integer convolution or matrix product keeps its operands, and what it computes.
struct Slots<'a> {
    x: usize,
    x_zp: usize,
    w: usize,
    w_zp: usize,
    bias: Option<usize>,
    /// The convolution's parameters; `None` for a matrix product.
    conv: Option<&'a Conv>,
    /// QLinear*: requantized to an output scale (the others give the i32 accumulator).
    qlinear: bool,
}

/// The operand slots of an integer convolution or matrix product; `None` for every other op
/// (DynamicQuantizeLinear, the other integer op, has no weights).
fn layout_of(op: &Op) -> Option<Slots<'_>> {
    let slots = |x_zp, w, w_zp, bias, conv, qlinear| Slots {
        x: 0,
        x_zp,
        w,
        w_zp,
        bias,
        conv,
        qlinear,
    };
    Some(match op {
        Op::QLinearConv(c) => slots(2, 3, 5, Some(8), Some(c), true),
        Op::QLinearMatMul => slots(2, 3, 5, None, None, true),
        Op::ConvInteger(c) => slots(2, 1, 3, None, Some(c), false),
        Op::MatMulInteger => slots(2, 1, 3, None, None, false),
        Op::Unary(_)
        | Op::Dynamic(_)
        | Op::If(_)
        | Op::Loop(_)
        | Op::Binary(_)
        | Op::Activation(_)
        | Op::Where
        | Op::Cast(_)
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
        | Op::Gather(_)
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
        | Op::DynamicQuantizeLinear => return None,
    })
}

/// `w - w_zp` as f32 values: per-tensor, or per output channel (axis 0 of a conv kernel, the
/// last axis of a MatMul's right operand).
fn centered(w: &Tensor, zp: Option<&Tensor>, conv: bool) -> Option<Vec<f32>> {
    let wv = w.to_i64s()?;
    let zv = match zp {
        Some(z) => z.to_i64s()?,
        None => vec![0],
    };
    let n = wv.len();
    let (outer, last) = if conv {
        (w.shape[0], 1)
    } else {
        (1, *w.shape.last()?)
    };
    Some(
        wv.iter()
            .enumerate()
            .map(|(k, &v)| {
                let c = if zv.len() == 1 {
                    0
                } else if conv {
                    k / (n / outer.max(1))
                } else {
                    k % last
                };
                (v - zv.get(c).copied().unwrap_or(0)) as f32
            })
            .collect(),
    )
}

/// Why an integer op cannot be lowered exactly, if it cannot.
pub fn why_not(g: &Graph, n: &Node) -> Option<String> {
    if let Op::DynamicQuantizeLinear = n.op {
        return (g.ty(n.inputs[0]).dtype != DType::F32).then(|| "input must be f32".into());
    }
    let s = layout_of(&n.op)?;
    let (xi, xzi, wi, wzi, bi, conv) = (s.x, s.x_zp, s.w, s.w_zp, s.bias, s.conv.is_some());
    let x_ty = g.ty(n.inputs[xi]).dtype;
    let Some((xlo, xhi)) = qrange(x_ty) else {
        return Some(format!("input type {x_ty} (u8 and i8 are lowered)"));
    };
    let Some(w) = g.constant(n.inputs[wi]) else {
        return Some("the weights must be a constant".into());
    };
    if qrange(w.dtype).is_none() {
        return Some(format!("weights type {} (u8 and i8 are lowered)", w.dtype));
    }
    let wz = input(n, wzi).map(|v| g.constant(v));
    if matches!(wz, Some(None)) {
        return Some("the weights' zero point must be a constant".into());
    }
    if let Some(xz) = input(n, xzi) {
        if g.ty(xz).shape.iter().any(|d| d.fixed() != Some(1)) {
            return Some("per-row input zero points are not lowered".into());
        }
    }
    if s.qlinear {
        let need = [1usize, 4, 6, 7];
        if need
            .iter()
            .any(|&i| input(n, i).and_then(|v| g.constant(v)).is_none())
        {
            return Some("scales and the output zero point must be constants".into());
        }
    }
    // Exactness bound: Σ|w - w_zp| over one output's terms, times the largest |x - x_zp|.
    let Some(c) = centered(w, wz.flatten(), conv) else {
        return Some("weights must be integers".into());
    };
    let xmax = (xhi - xlo) as f64;
    let outputs = if conv {
        w.shape[0]
    } else {
        *w.shape.last().unwrap_or(&1)
    };
    let mut sums = vec![0f64; outputs.max(1)];
    let per = c.len() / outputs.max(1);
    for (k, v) in c.iter().enumerate() {
        let o = if conv {
            k / per.max(1)
        } else {
            k % outputs.max(1)
        };
        sums[o] += v.abs() as f64;
    }
    let bias_max = bi
        .and_then(|b| input(n, b))
        .and_then(|b| g.constant(b))
        .map(|t| t.to_f64s().iter().fold(0f64, |m, v| m.max(v.abs())))
        .unwrap_or(0.0);
    let worst = sums.iter().fold(0f64, |m, &s| m.max(s)) * xmax + bias_max;
    if worst >= EXACT {
        return Some(format!(
            "its integer accumulator can reach {worst:.0}, past 2^24 where f32 stops being \
             exact; TFLite has no integer-only builtin for it"
        ));
    }
    None
}

/// Lowers every integer op that can be lowered exactly; returns whether any changed.
pub fn lower_integer_ops(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        let integer = layout_of(&n.op).is_some() || matches!(n.op, Op::DynamicQuantizeLinear);
        if !integer || why_not(rw.g, &n).is_some() {
            rw.keep(n);
            continue;
        }
        let mut l = L {
            rw: &mut rw,
            base: n.name.clone(),
        };
        l.node(&n)
            .map_err(|e| format!("lowering '{}': {e}", n.name))?;
        changed = true;
    }
    rw.finish();
    Ok(changed)
}

struct L<'r, 'g> {
    rw: &'r mut Rewriter<'g>,
    base: String,
}

impl L<'_, '_> {
    fn op(&mut self, tag: &str, op: Op, ins: Vec<ValueId>) -> Result<ValueId, String> {
        self.rw.op(&format!("{}/{tag}", self.base), op, ins)
    }
    fn b(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> Result<ValueId, String> {
        self.op("f", Op::Binary(op), vec![a, b])
    }
    fn f32s(&mut self, tag: &str, shape: Vec<usize>, v: &[f32]) -> ValueId {
        let name = format!("{}/{tag}", self.base);
        self.rw.konst(&name, Tensor::from_f32(shape, v))
    }
    fn cast(&mut self, v: ValueId, to: DType) -> Result<ValueId, String> {
        if self.rw.g.ty(v).dtype == to {
            return Ok(v);
        }
        self.op("cast", Op::Cast(Cast { to }), vec![v])
    }
    fn clip(&mut self, v: ValueId, lo: f32, hi: f32) -> Result<ValueId, String> {
        let op = Op::Activation(Activation::Clip {
            min: Some(lo),
            max: Some(hi),
        });
        self.op("clip", op, vec![v])
    }
    /// An integer tensor minus its (scalar) zero point, as f32.
    fn centered_float(&mut self, v: ValueId, zp: Option<ValueId>) -> Result<ValueId, String> {
        let f = self.cast(v, DType::F32)?;
        let Some(zp) = zp else { return Ok(f) };
        if let Some(t) = self.rw.g.constant(zp) {
            let z = t.to_f64s().first().copied().unwrap_or(0.0) as f32;
            if z == 0.0 {
                return Ok(f);
            }
            let zc = self.f32s("zero_point", vec![], &[z]);
            return self.b(BinaryOp::Sub, f, zc);
        }
        let mut zf = self.cast(zp, DType::F32)?;
        if self.rw.g.ty(zf).rank() > 0 {
            zf = self.op(
                "zero_point",
                Op::Reshape(Reshape { shape: vec![] }),
                vec![zf],
            )?;
        }
        self.b(BinaryOp::Sub, f, zf)
    }
    /// `round(v) + zp`, clamped to `dtype`'s range, written into `out` as `dtype`.
    fn quantize_into(
        &mut self,
        v: ValueId,
        zp: f32,
        dtype: DType,
        out: ValueId,
    ) -> Result<(), String> {
        let (lo, hi) = qrange(dtype).ok_or("output type")?;
        let r = self.op("round", Op::Unary(UnaryOp::Round), vec![v])?;
        let r = if zp != 0.0 {
            let z = self.f32s("y_zero_point", vec![], &[zp]);
            self.b(BinaryOp::Add, r, z)?
        } else {
            r
        };
        let c = self.clip(r, lo, hi)?;
        let q = self.cast(c, dtype)?;
        self.rw.retarget_last(q, out);
        Ok(())
    }

    fn node(&mut self, n: &Node) -> Result<(), String> {
        if let Op::DynamicQuantizeLinear = n.op {
            return self.dynamic_quantize(n);
        }
        let s = layout_of(&n.op).ok_or("not an integer op")?;
        let g = &*self.rw.g;
        let w = g.constant(n.inputs[s.w]).cloned().ok_or("weights")?;
        let wz = input(n, s.w_zp).and_then(|v| g.constant(v)).cloned();
        let wc = centered(&w, wz.as_ref(), s.conv.is_some()).ok_or("weights")?;
        let x = self.centered_float(n.inputs[s.x], input(n, s.x_zp))?;
        let wf = self.f32s("weights", w.shape.clone(), &wc);
        let acc = match s.conv {
            Some(c) => {
                let mut ins = vec![x, wf];
                let bias = s
                    .bias
                    .and_then(|b| input(n, b))
                    .and_then(|b| self.rw.g.constant(b))
                    .cloned();
                if let Some(b) = bias {
                    let bv: Vec<f32> = b.to_f64s().iter().map(|&v| v as f32).collect();
                    ins.push(self.f32s("bias", b.shape.clone(), &bv));
                }
                self.op("conv", Op::Conv(c.clone()), ins)?
            }
            None => self.op("matmul", Op::MatMul(MatMul::default()), vec![x, wf])?,
        };
        let out = n.outputs[0];
        if !s.qlinear {
            let y = self.cast(acc, DType::I32)?;
            self.rw.retarget_last(y, out);
            return Ok(());
        }
        // QLinear*: multiplier (x_scale · w_scale) / y_scale, per tensor or per output channel.
        let c = |i: usize| {
            self.rw
                .g
                .constant(n.inputs[i])
                .map(|t| t.to_f64s())
                .unwrap_or_default()
        };
        let (xs, ws, ys) = (c(1), c(4), c(6));
        let yz = c(7).first().copied().unwrap_or(0.0) as f32;
        let xs = *xs.first().ok_or("x scale")? as f32;
        let ys = *ys.first().ok_or("y scale")? as f32;
        let m: Vec<f32> = ws.iter().map(|&w| (xs * w as f32) / ys).collect();
        let m = if m.len() == 1 || s.conv.is_none() {
            let len = m.len();
            self.f32s("multiplier", vec![len], &m)
        } else {
            // Per output channel of an NCHW result: `[C, 1, 1…]`.
            let rank = self.rw.g.ty(acc).rank();
            let mut shape = vec![1usize; rank - 1];
            shape[0] = m.len();
            self.f32s("multiplier", shape, &m)
        };
        let scaled = self.b(BinaryOp::Mul, acc, m)?;
        let dtype = self.rw.g.ty(out).dtype;
        self.quantize_into(scaled, yz, dtype, out)
    }

    /// ONNX DynamicQuantizeLinear (u8): scale = (max(x, 0) - min(x, 0)) / 255, zero point =
    /// round(clamp(-min / scale, 0, 255)), y = clamp(round(x / scale) + zero point, 0, 255).
    fn dynamic_quantize(&mut self, n: &Node) -> Result<(), String> {
        let x = n.inputs[0];
        let axes: Vec<usize> = (0..self.rw.g.ty(x).rank()).collect();
        let reduce = |kind| {
            Op::Reduce(Reduce {
                kind,
                axes: axes.clone(),
                keep_dims: false,
            })
        };
        let zero = self.f32s("zero", vec![], &[0.0]);
        let (mn, mx) = if axes.is_empty() {
            (x, x)
        } else {
            (
                self.op("min", reduce(ReduceKind::Min), vec![x])?,
                self.op("max", reduce(ReduceKind::Max), vec![x])?,
            )
        };
        let mn = self.b(BinaryOp::Min, mn, zero)?;
        let mx = self.b(BinaryOp::Max, mx, zero)?;
        let range = self.b(BinaryOp::Sub, mx, mn)?;
        let qmax = self.f32s("qmax", vec![], &[255.0]);
        let scale = self.b(BinaryOp::Div, range, qmax)?;
        self.rw.retarget_last(scale, n.outputs[1]);
        let scale = n.outputs[1];
        let ms = self.b(BinaryOp::Div, mn, scale)?;
        let zp = self.op("neg", Op::Unary(UnaryOp::Neg), vec![ms])?;
        let zp = self.clip(zp, 0.0, 255.0)?;
        let zp = self.op("round", Op::Unary(UnaryOp::Round), vec![zp])?;
        let zq = self.cast(zp, DType::U8)?;
        self.rw.retarget_last(zq, n.outputs[2]);
        let xs = self.b(BinaryOp::Div, x, scale)?;
        let r = self.op("round", Op::Unary(UnaryOp::Round), vec![xs])?;
        let r = self.b(BinaryOp::Add, r, zp)?;
        let c = self.clip(r, 0.0, 255.0)?;
        let y = self.cast(c, DType::U8)?;
        self.rw.retarget_last(y, n.outputs[0]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::{Conv, Padding};
    use crate::ir::{fixed_shape, KernelLayout, Layout, TensorType};

    #[test]
    fn the_integer_fixture_lowers_to_the_same_integers() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/onnx/qlinear");
        let mut g = crate::readers::read(&dir.join("model.onnx"), &Default::default()).unwrap();
        let inputs = vec![
            crate::npy::read(&dir.join("input.npy")).unwrap(),
            crate::npy::read(&dir.join("input_1.npy")).unwrap(),
        ];
        let want = crate::eval::run(&g, &inputs).unwrap();
        assert!(lower_integer_ops(&mut g).unwrap());
        g.remove_dead();
        g.verify().unwrap();
        assert!(g.nodes.iter().all(|n| why_not(&g, n).is_none()
            && !matches!(
                n.op,
                Op::QLinearConv(_) | Op::ConvInteger(_) | Op::MatMulInteger
            )));
        let got = crate::eval::run(&g, &inputs).unwrap();
        for (a, b) in got.iter().zip(&want) {
            let c = crate::eval::compare("", a, b);
            assert!(c.shape_matches && c.max_abs == 0.0, "{c:?}");
        }
    }

    #[test]
    fn accumulators_past_2_24_are_refused() {
        let mut g = Graph::new();
        let ty = TensorType::new(DType::U8, fixed_shape(&[1, 512, 3, 3]));
        let x = g.add_input("x", ty);
        let w = vec![255i64; 16 * 512 * 9];
        let w = g.add_const("w", Tensor::from_i64s(DType::U8, vec![16, 512, 3, 3], &w));
        let conv = Conv {
            layout: Layout::Nchw,
            kernel_layout: KernelLayout::Oihw,
            strides: vec![1, 1],
            dilations: vec![1, 1],
            padding: Padding::Explicit(vec![(0, 0); 2]),
            group: 1,
            output_padding: vec![],
        };
        g.outputs = g
            .add_node("ci", Op::ConvInteger(conv), vec![x, w], &[])
            .unwrap();
        let why = why_not(&g, &g.nodes[0]).unwrap();
        assert!(why.contains("past 2^24"), "{why}");
        assert!(!lower_integer_ops(&mut g).unwrap());
    }
}
