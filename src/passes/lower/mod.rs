//! Lowering of f32 ops that TFLite builtins and TF.js kernels lack, into ops both have (IR
//! rewrites; shared by the NHWC writers through `passes::nhwc`):
//! LayerNorm / InstanceNorm → MEAN, SUB, MUL, RSQRT…; Erf → the Abramowitz–Stegun 7.1.26
//! polynomial (|error| ≤ 1.5e-7); Reciprocal, Softplus (stable form), Softsign, Tan, Elu (alpha ≠
//! 1), Selu, Celu, HardSigmoid (MUL/ADD/RELU_0_TO_1), ThresholdedRelu, Mish, Shrink
//! (LESS/GREATER/SELECT_V2), Clip with other
//! bounds (MAXIMUM/MINIMUM); ReduceL1/L2/LogSum/LogSumExp/SumSquare (also with axes computed at
//! run time, as Dynamic Sum/Max reductions); LpNormalization; and (`math.rs`) Fmod, fixed-size
//! Trilu, and for TFLite the inverse trigonometric and hyperbolic functions.

use crate::ir::ops::{
    Activation, BinaryOp, Dynamic, LayerNorm, LpNorm, Reduce, ReduceKind, UnaryOp,
};
use crate::ir::{DType, Graph, Node, Op, ValueId};
use crate::passes::decompose::{self, Prims};
use crate::passes::rewrite::Rewriter;

mod math;

struct L<'r, 'g> {
    rw: &'r mut Rewriter<'g>,
    base: String,
    /// Whether the target runs this Clip as one op (else it becomes MAXIMUM/MINIMUM).
    native_clip: &'r dyn Fn(Option<f32>, Option<f32>) -> bool,
    /// Whether the target has the inverse trigonometric and hyperbolic functions (else
    /// `math.rs` composes them).
    native_trig: bool,
}

impl L<'_, '_> {
    fn b(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> Result<ValueId, String> {
        self.rw.op(&self.base, Op::Binary(op), vec![a, b])
    }
    fn u(&mut self, op: UnaryOp, a: ValueId) -> Result<ValueId, String> {
        self.rw.op(&self.base, Op::Unary(op), vec![a])
    }
    fn c(&mut self, v: f32) -> ValueId {
        let base = format!("{}/c", self.base);
        self.rw.f32(&base, v)
    }
    fn mean(&mut self, x: ValueId, axes: &[usize]) -> Result<ValueId, String> {
        self.reduce(ReduceKind::Mean, x, axes, true)
    }
    fn reduce(
        &mut self,
        kind: ReduceKind,
        x: ValueId,
        axes: &[usize],
        keep_dims: bool,
    ) -> Result<ValueId, String> {
        self.rw.op(
            &self.base,
            Op::Reduce(Reduce {
                kind,
                axes: axes.to_vec(),
                keep_dims,
            }),
            vec![x],
        )
    }
    fn clip(&mut self, x: ValueId, min: Option<f32>, max: Option<f32>) -> Result<ValueId, String> {
        self.rw.op(
            &self.base,
            Op::Activation(Activation::Clip { min, max }),
            vec![x],
        )
    }
    /// `(x - mean) / sqrt(var + eps)` over `axes`.
    fn normalize(&mut self, x: ValueId, axes: &[usize], eps: f32) -> Result<ValueId, String> {
        let m = self.mean(x, axes)?;
        let d = self.b(BinaryOp::Sub, x, m)?;
        let sq = self.b(BinaryOp::Mul, d, d)?;
        let var = self.mean(sq, axes)?;
        let e = self.c(eps);
        let ve = self.b(BinaryOp::Add, var, e)?;
        let r = self.u(UnaryOp::Rsqrt, ve)?;
        self.b(BinaryOp::Mul, d, r)
    }
    fn erf(&mut self, x: ValueId) -> Result<ValueId, String> {
        const P: f32 = 0.327_591_1;
        const A: [f32; 5] = [
            0.254_829_6,
            -0.284_496_74,
            1.421_413_7,
            -1.453_152,
            1.061_405_4,
        ];
        let ax = self.u(UnaryOp::Abs, x)?;
        let p = self.c(P);
        let pa = self.b(BinaryOp::Mul, ax, p)?;
        let one = self.c(1.0);
        let den = self.b(BinaryOp::Add, pa, one)?;
        let t = self.b(BinaryOp::Div, one, den)?;
        let a5 = self.c(A[4]);
        let mut poly = self.b(BinaryOp::Mul, t, a5)?;
        for &a in A[..4].iter().rev() {
            let ac = self.c(a);
            let s = self.b(BinaryOp::Add, poly, ac)?;
            poly = self.b(BinaryOp::Mul, s, t)?;
        }
        let x2 = self.b(BinaryOp::Mul, x, x)?;
        let nx2 = self.u(UnaryOp::Neg, x2)?;
        let e = self.u(UnaryOp::Exp, nx2)?;
        let pe = self.b(BinaryOp::Mul, poly, e)?;
        let y = self.b(BinaryOp::Sub, one, pe)?;
        let sg = self.u(UnaryOp::Sign, x)?;
        self.b(BinaryOp::Mul, sg, y)
    }
    /// `max(x, 0) + log(1 + exp(-|x|))`.
    fn softplus(&mut self, x: ValueId) -> Result<ValueId, String> {
        let r = self.u(UnaryOp::Relu, x)?;
        let ax = self.u(UnaryOp::Abs, x)?;
        let n = self.u(UnaryOp::Neg, ax)?;
        let e = self.u(UnaryOp::Exp, n)?;
        let one = self.c(1.0);
        let s = self.b(BinaryOp::Add, e, one)?;
        let l = self.u(UnaryOp::Log, s)?;
        self.b(BinaryOp::Add, r, l)
    }
    /// `alpha * (exp(min(x, 0)) - 1)`, the negative part of ELU.
    fn elu_neg(&mut self, x: ValueId, alpha: f32) -> Result<ValueId, String> {
        let z = self.c(0.0);
        let mn = self.b(BinaryOp::Min, x, z)?;
        let e = self.u(UnaryOp::Exp, mn)?;
        let one = self.c(1.0);
        let em1 = self.b(BinaryOp::Sub, e, one)?;
        let a = self.c(alpha);
        self.b(BinaryOp::Mul, em1, a)
    }
    fn elu(&mut self, x: ValueId, alpha: f32) -> Result<ValueId, String> {
        let r = self.u(UnaryOp::Relu, x)?;
        let n = self.elu_neg(x, alpha)?;
        self.b(BinaryOp::Add, r, n)
    }
}

/// Decompositions built from already-lowered primitives (Erf and Softplus in their lowered
/// forms).
impl Prims for L<'_, '_> {
    type Value = ValueId;
    fn constant(&mut self, _: &str, v: f64) -> Result<ValueId, String> {
        Ok(self.c(v as f32))
    }
    fn unary(&mut self, _: &str, op: decompose::Unary, x: ValueId) -> Result<ValueId, String> {
        match op {
            decompose::Unary::Square => self.u(UnaryOp::Square, x),
            decompose::Unary::Tanh => self.u(UnaryOp::Tanh, x),
            decompose::Unary::Erf => self.erf(x),
            decompose::Unary::Softplus => self.softplus(x),
        }
    }
    fn binary(
        &mut self,
        _: &str,
        op: decompose::Binary,
        a: ValueId,
        b: ValueId,
    ) -> Result<ValueId, String> {
        match op {
            decompose::Binary::Add => self.b(BinaryOp::Add, a, b),
            decompose::Binary::Mul => self.b(BinaryOp::Mul, a, b),
        }
    }
}

/// The replacement of one node, ending in a value of the node's output type; `None` keeps it.
fn lower_node(l: &mut L, g_node: &Node) -> Result<Option<ValueId>, String> {
    let x = g_node.inputs[0];
    let rank = l.rw.g.ty(x).rank();
    Ok(Some(match &g_node.op {
        Op::LayerNorm(LayerNorm { axis, epsilon }) => {
            let axes: Vec<usize> = (*axis..rank).collect();
            let nx = l.normalize(x, &axes, *epsilon)?;
            let scaled = l.b(BinaryOp::Mul, nx, g_node.inputs[1])?;
            match g_node.inputs.get(2) {
                Some(&b) => l.b(BinaryOp::Add, scaled, b)?,
                None => scaled,
            }
        }
        Op::InstanceNorm(n) => {
            let axes: Vec<usize> = n.layout.spatial_axes(rank).collect();
            let nx = l.normalize(x, &axes, n.epsilon)?;
            let c_axis = n.layout.channel_axis(rank);
            let mut shape = vec![1usize; rank - c_axis];
            let mut reshape = |l: &mut L, v: ValueId| -> Result<ValueId, String> {
                let t =
                    l.rw.g
                        .constant(v)
                        .cloned()
                        .ok_or("scale and bias must be constants")?;
                shape[0] = t.len();
                let base = format!("{}/param", l.base);
                Ok(l.rw.konst(&base, t.reshaped(shape.clone())))
            };
            let s = reshape(l, g_node.inputs[1])?;
            let b = reshape(l, g_node.inputs[2])?;
            let m = l.b(BinaryOp::Mul, nx, s)?;
            l.b(BinaryOp::Add, m, b)?
        }
        Op::Unary(u) => return lower_unary(l, *u, x),
        Op::Binary(BinaryOp::Fmod) => l.fmod(x, g_node.inputs[1])?,
        Op::Trilu(t) => return l.trilu(t, x),
        Op::Activation(a) => return lower_activation(l, a, x),
        Op::Reduce(r) => return lower_reduce(l, r, x),
        Op::Dynamic(Dynamic::Reduce {
            kind,
            keep_dims,
            noop_with_empty_axes,
        }) => {
            let r = DynReduce {
                axes: g_node.inputs[1],
                keep_dims: *keep_dims,
                noop: *noop_with_empty_axes,
            };
            return lower_dynamic_reduce(l, *kind, r, x);
        }
        Op::LpNorm(LpNorm { axis, p }) => {
            let n = if *p == 1 {
                let a = l.u(UnaryOp::Abs, x)?;
                l.reduce(ReduceKind::Sum, a, &[*axis], true)?
            } else {
                let s = l.u(UnaryOp::Square, x)?;
                let s = l.reduce(ReduceKind::Sum, s, &[*axis], true)?;
                l.u(UnaryOp::Sqrt, s)?
            };
            let tiny = l.c(f32::MIN_POSITIVE);
            let n = l.b(BinaryOp::Max, n, tiny)?;
            l.b(BinaryOp::Div, x, n)?
        }
        Op::Binary(_)
        | Op::Where
        | Op::Cast(_)
        | Op::MatMul(_)
        | Op::Einsum(_)
        | Op::Conv(_)
        | Op::ConvTranspose(_)
        | Op::Pool(_)
        | Op::GlobalPool(_)
        | Op::BatchNorm(_)
        | Op::Softmax(_)
        | Op::Hardmax(_)
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
        | Op::NonMaxSuppression(_)
        | Op::ShapeOf(_)
        | Op::ConstantOfShape(_)
        | Op::Range
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
        | Op::Loop(_) => return Ok(None),
    }))
}

/// A reduction whose axes are a run-time operand.
#[derive(Clone, Copy)]
struct DynReduce {
    axes: ValueId,
    keep_dims: bool,
    noop: bool,
}

impl L<'_, '_> {
    fn dyn_reduce(
        &mut self,
        kind: ReduceKind,
        x: ValueId,
        r: DynReduce,
    ) -> Result<ValueId, String> {
        let op = Op::Dynamic(Dynamic::Reduce {
            kind,
            keep_dims: r.keep_dims,
            noop_with_empty_axes: r.noop,
        });
        self.rw.op(&self.base, op, vec![x, r.axes])
    }
}

/// `lower_reduce` for axes computed at run time (the same formulas on Dynamic reductions).
fn lower_dynamic_reduce(
    l: &mut L,
    kind: ReduceKind,
    r: DynReduce,
    x: ValueId,
) -> Result<Option<ValueId>, String> {
    // Empty axes with `noop` return the input unchanged, whatever the kind.
    let empty = l.rw.g.ty(r.axes).shape.first() == Some(&crate::ir::Dim::Fixed(0));
    if empty && r.noop {
        return Ok(None);
    }
    Ok(Some(match kind {
        ReduceKind::L1 => {
            let a = l.u(UnaryOp::Abs, x)?;
            l.dyn_reduce(ReduceKind::Sum, a, r)?
        }
        ReduceKind::L2 => {
            let s = l.u(UnaryOp::Square, x)?;
            let s = l.dyn_reduce(ReduceKind::Sum, s, r)?;
            l.u(UnaryOp::Sqrt, s)?
        }
        ReduceKind::SumSquare => {
            let s = l.u(UnaryOp::Square, x)?;
            l.dyn_reduce(ReduceKind::Sum, s, r)?
        }
        ReduceKind::LogSum => {
            let s = l.dyn_reduce(ReduceKind::Sum, x, r)?;
            l.u(UnaryOp::Log, s)?
        }
        ReduceKind::LogSumExp => {
            let keep = DynReduce {
                keep_dims: true,
                ..r
            };
            let m = l.dyn_reduce(ReduceKind::Max, x, keep)?;
            let d = l.b(BinaryOp::Sub, x, m)?;
            let e = l.u(UnaryOp::Exp, d)?;
            let s = l.dyn_reduce(ReduceKind::Sum, e, r)?;
            let lg = l.u(UnaryOp::Log, s)?;
            let m = match r.keep_dims {
                true => m,
                false => l.dyn_reduce(ReduceKind::Max, x, r)?,
            };
            l.b(BinaryOp::Add, lg, m)?
        }
        ReduceKind::Mean
        | ReduceKind::Sum
        | ReduceKind::Max
        | ReduceKind::Min
        | ReduceKind::Prod => return Ok(None),
    }))
}

fn lower_unary(l: &mut L, u: UnaryOp, x: ValueId) -> Result<Option<ValueId>, String> {
    Ok(Some(match u {
        UnaryOp::Erf => l.erf(x)?,
        UnaryOp::Reciprocal => {
            let one = l.c(1.0);
            l.b(BinaryOp::Div, one, x)?
        }
        UnaryOp::Softplus => l.softplus(x)?,
        UnaryOp::Softsign => {
            let a = l.u(UnaryOp::Abs, x)?;
            let one = l.c(1.0);
            let d = l.b(BinaryOp::Add, a, one)?;
            l.b(BinaryOp::Div, x, d)?
        }
        UnaryOp::Tan => {
            let s = l.u(UnaryOp::Sin, x)?;
            let c = l.u(UnaryOp::Cos, x)?;
            l.b(BinaryOp::Div, s, c)?
        }
        // TFLite has none of these (`math.rs`); TF.js and TF have them all.
        UnaryOp::Sinh if !l.native_trig => l.sinh_cosh(x, BinaryOp::Sub)?,
        UnaryOp::Cosh if !l.native_trig => l.sinh_cosh(x, BinaryOp::Add)?,
        UnaryOp::Asinh if !l.native_trig => l.asinh(x)?,
        UnaryOp::Acosh if !l.native_trig => l.acosh(x)?,
        UnaryOp::Atanh if !l.native_trig => l.atanh(x)?,
        UnaryOp::Atan if !l.native_trig => l.atan(x)?,
        UnaryOp::Asin if !l.native_trig => l.asin(x)?,
        UnaryOp::Acos if !l.native_trig => l.acos(x)?,
        UnaryOp::IsNaN => {
            l.rw.op(&l.base, Op::Binary(BinaryOp::Equal), vec![x, x])
                .and_then(|eq| l.u(UnaryOp::Not, eq))?
        }
        UnaryOp::Abs
        | UnaryOp::Neg
        | UnaryOp::Sqrt
        | UnaryOp::Rsqrt
        | UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Floor
        | UnaryOp::Ceil
        | UnaryOp::Round
        | UnaryOp::Sign
        | UnaryOp::Sin
        | UnaryOp::Cos
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
        | UnaryOp::Relu
        | UnaryOp::Not
        | UnaryOp::Square
        | UnaryOp::BitwiseNot => return Ok(None),
    }))
}

fn lower_activation(l: &mut L, a: &Activation, x: ValueId) -> Result<Option<ValueId>, String> {
    Ok(Some(match *a {
        Activation::Elu { alpha } if alpha != 1.0 => l.elu(x, alpha)?,
        Activation::Selu { alpha, gamma } => {
            let e = l.elu(x, alpha)?;
            let gm = l.c(gamma);
            l.b(BinaryOp::Mul, e, gm)?
        }
        Activation::Celu { alpha } => {
            let inv = l.c(1.0 / alpha);
            let xs = l.b(BinaryOp::Mul, x, inv)?;
            let n = l.elu_neg(xs, alpha)?;
            let r = l.u(UnaryOp::Relu, x)?;
            l.b(BinaryOp::Add, r, n)?
        }
        Activation::HardSigmoid { alpha, beta } => {
            let a = l.c(alpha);
            let m = l.b(BinaryOp::Mul, x, a)?;
            let b = l.c(beta);
            let s = l.b(BinaryOp::Add, m, b)?;
            l.clip(s, Some(0.0), Some(1.0))?
        }
        Activation::ThresholdedRelu { alpha } => {
            let a = l.c(alpha);
            let gt = l.b(BinaryOp::Greater, x, a)?;
            let z = l.c(0.0);
            l.rw.op(&l.base, Op::Where, vec![gt, x, z])?
        }
        Activation::Mish => decompose::mish(l, x)?,
        Activation::Shrink { lambd, bias } => {
            // x < -λ: x + bias; x > λ: x - bias; else 0.
            let (lo, hi, b, z) = (l.c(-lambd), l.c(lambd), l.c(bias), l.c(0.0));
            let below = l.b(BinaryOp::Less, x, lo)?;
            let above = l.b(BinaryOp::Greater, x, hi)?;
            let plus = l.b(BinaryOp::Add, x, b)?;
            let minus = l.b(BinaryOp::Sub, x, b)?;
            let upper = l.rw.op(&l.base, Op::Where, vec![above, minus, z])?;
            l.rw.op(&l.base, Op::Where, vec![below, plus, upper])?
        }
        Activation::Clip { min, max } if !(l.native_clip)(min, max) => {
            let mut v = x;
            if let Some(lo) = min {
                let c = l.c(lo);
                v = l.b(BinaryOp::Max, v, c)?;
            }
            if let Some(hi) = max {
                let c = l.c(hi);
                v = l.b(BinaryOp::Min, v, c)?;
            }
            if v == x {
                return Ok(None);
            }
            v
        }
        Activation::LeakyRelu { .. }
        | Activation::Elu { .. }
        | Activation::HardSwish
        | Activation::Gelu { .. }
        | Activation::Clip { .. } => return Ok(None),
    }))
}

fn lower_reduce(l: &mut L, r: &Reduce, x: ValueId) -> Result<Option<ValueId>, String> {
    let (axes, keep) = (&r.axes, r.keep_dims);
    Ok(Some(match r.kind {
        ReduceKind::L1 => {
            let a = l.u(UnaryOp::Abs, x)?;
            l.reduce(ReduceKind::Sum, a, axes, keep)?
        }
        ReduceKind::L2 => {
            let s = l.u(UnaryOp::Square, x)?;
            let s = l.reduce(ReduceKind::Sum, s, axes, keep)?;
            l.u(UnaryOp::Sqrt, s)?
        }
        ReduceKind::SumSquare => {
            let s = l.u(UnaryOp::Square, x)?;
            l.reduce(ReduceKind::Sum, s, axes, keep)?
        }
        ReduceKind::LogSum => {
            let s = l.reduce(ReduceKind::Sum, x, axes, keep)?;
            l.u(UnaryOp::Log, s)?
        }
        ReduceKind::LogSumExp => {
            let m = l.reduce(ReduceKind::Max, x, axes, true)?;
            let d = l.b(BinaryOp::Sub, x, m)?;
            let e = l.u(UnaryOp::Exp, d)?;
            let s = l.reduce(ReduceKind::Sum, e, axes, keep)?;
            let lg = l.u(UnaryOp::Log, s)?;
            let m = if keep {
                m
            } else {
                l.reduce(ReduceKind::Max, x, axes, false)?
            };
            l.b(BinaryOp::Add, lg, m)?
        }
        ReduceKind::Mean
        | ReduceKind::Sum
        | ReduceKind::Max
        | ReduceKind::Min
        | ReduceKind::Prod => return Ok(None),
    }))
}

/// Lowers every f32 node listed in the header; Clips that `native_clip` accepts stay. Returns
/// whether anything changed.
pub fn lower(
    g: &mut Graph,
    native_clip: &dyn Fn(Option<f32>, Option<f32>) -> bool,
    native_trig: bool,
) -> Result<bool, String> {
    lower_some(g, native_clip, native_trig, &|_| true)
}

/// Lowers the f32 Celu nodes only: evaluation's workaround for tract 0.23, whose Celu computes
/// `max(0, x) + min(0, exp(x / alpha) - 1)` — without the factor alpha on the negative part
/// (off by 0.28 at alpha 0.64; found by the `ir_graph` fuzz check).
pub fn lower_celu(g: &mut Graph) -> Result<bool, String> {
    lower_some(g, &|_, _| true, true, &|op| {
        matches!(op, Op::Activation(Activation::Celu { .. }))
    })
}

fn lower_some(
    g: &mut Graph,
    native_clip: &dyn Fn(Option<f32>, Option<f32>) -> bool,
    native_trig: bool,
    wanted: &dyn Fn(&Op) -> bool,
) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        let in_dtype = n.inputs.first().map(|&x| rw.g.ty(x).dtype);
        // The composite reductions with run-time axes make no constants, so any float type
        // lowers (TF.js computes every float in float32; TFLite then refuses the reduction of a
        // type it has no kernel for, naming it).
        let float_dynamic_reduce = matches!(n.op, Op::Dynamic(Dynamic::Reduce { .. }))
            && in_dtype.is_some_and(DType::is_float);
        // These make constants of the input's own type.
        let any_dtype = matches!(n.op, Op::Binary(BinaryOp::Fmod) | Op::Trilu(_));
        if !(in_dtype == Some(DType::F32) || float_dynamic_reduce || any_dtype)
            || n.outputs.len() != 1
            || !wanted(&n.op)
        {
            rw.keep(n);
            continue;
        }
        let mut l = L {
            rw: &mut rw,
            base: n.name.clone(),
            native_clip,
            native_trig,
        };
        match lower_node(&mut l, &n)? {
            Some(v) => {
                // Re-point the last node at the original output value.
                let out = n.outputs[0];
                rw.retarget_last(v, out);
                changed = true;
            }
            None => rw.keep(n),
        }
    }
    rw.finish();
    Ok(changed)
}
