//! Op parameter structs and their shape/type inference, one file per family.

mod control;
mod dynamic;
mod elementwise;
mod generate;
mod index;
mod linear;
mod movement;
mod norm;
mod pool;
mod quant;
mod reduce;
mod rnn;

pub use control::*;
pub use dynamic::*;
pub use elementwise::*;
pub use generate::*;
pub use index::*;
pub use linear::*;
pub use movement::*;
pub use norm::*;
pub use pool::*;
pub use quant::*;
pub use reduce::*;
pub use rnn::*;

use super::{DType, Dim, Op, Shape, Tensor, TensorType};

/// What inference sees of a node's inputs: their types and, for constants, their data.
pub struct Inputs<'a> {
    pub types: Vec<&'a TensorType>,
    pub consts: Vec<Option<&'a Tensor>>,
}

impl<'a> Inputs<'a> {
    /// Inputs known only by type (no constant data).
    pub fn of_types(types: &'a [TensorType]) -> Inputs<'a> {
        Inputs {
            types: types.iter().collect(),
            consts: vec![None; types.len()],
        }
    }
    pub fn len(&self) -> usize {
        self.types.len()
    }
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
    pub fn ty(&self, i: usize) -> Result<&'a TensorType, String> {
        self.types
            .get(i)
            .copied()
            .ok_or_else(|| format!("missing input #{i}"))
    }
    pub fn shape(&self, i: usize) -> Result<&'a [Dim], String> {
        Ok(&self.ty(i)?.shape)
    }
    pub fn dtype(&self, i: usize) -> Result<DType, String> {
        Ok(self.ty(i)?.dtype)
    }
    pub fn expect_count(&self, min: usize, max: usize) -> Result<(), String> {
        if self.len() < min || self.len() > max {
            return Err(if min == max {
                format!("expects {min} inputs, has {}", self.len())
            } else {
                format!("expects {min} to {max} inputs, has {}", self.len())
            });
        }
        Ok(())
    }
}

/// A dimension whose size inference cannot know (data-dependent). Graph building gives each
/// one a fresh symbol; verification accepts any dimension where inference says unknown.
pub fn unknown_dim() -> Dim {
    Dim::Sym("?".into())
}

pub fn is_unknown(d: &Dim) -> bool {
    matches!(d, Dim::Sym(s) if s == "?")
}

/// Infers the output types of `op` applied to `inputs`.
pub fn infer(op: &Op, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    match op {
        Op::Unary(u) => elementwise::infer_unary(*u, inputs),
        Op::Binary(b) => elementwise::infer_binary(*b, inputs),
        Op::Activation(_) => elementwise::infer_same(inputs, 1),
        Op::Where => elementwise::infer_where(inputs),
        Op::Dynamic(d) => dynamic::infer_dynamic(d, inputs),
        Op::If(i) => control::infer_if(i, inputs),
        Op::Loop(l) => control::infer_loop(l, inputs),
        Op::Cast(c) => elementwise::infer_cast(c, inputs),
        Op::MatMul(m) => linear::infer_matmul(m, inputs),
        Op::Einsum(e) => linear::infer_einsum(e, inputs),
        Op::Conv(c) => linear::infer_conv(c, inputs, false),
        Op::ConvTranspose(c) => linear::infer_conv_transpose(c, inputs),
        Op::Pool(p) => pool::infer_pool(p, inputs),
        Op::GlobalPool(p) => pool::infer_global_pool(p, inputs),
        Op::BatchNorm(_) => elementwise::infer_same(inputs, 5),
        Op::LayerNorm(n) => norm::infer_layer_norm(n, inputs),
        Op::InstanceNorm(_) => elementwise::infer_same(inputs, 3),
        Op::Softmax(s) => norm::infer_softmax(s, inputs),
        Op::Hardmax(h) => norm::infer_hardmax(h, inputs),
        Op::LpNorm(n) => norm::infer_lp_norm(n, inputs),
        Op::Reshape(r) => movement::infer_reshape(r, inputs),
        Op::Transpose(t) => movement::infer_transpose(t, inputs),
        Op::Concat(c) => movement::infer_concat(c, inputs),
        Op::Split(s) => movement::infer_split(s, inputs),
        Op::Slice(s) => movement::infer_slice(s, inputs),
        Op::Pad(p) => movement::infer_pad(p, inputs),
        Op::Tile(t) => movement::infer_tile(t, inputs),
        Op::Expand(e) => movement::infer_expand(e, inputs),
        Op::DepthToSpace(d) => movement::infer_depth_to_space(d, inputs),
        Op::SpaceToDepth(s) => movement::infer_space_to_depth(s, inputs),
        Op::Resize(r) => movement::infer_resize(r, inputs),
        Op::GridSample(g) => movement::infer_grid_sample(g, inputs),
        Op::Gather(g) => index::infer_gather(g, inputs),
        Op::GatherElements(g) => index::infer_gather_elements(g, inputs),
        Op::GatherNd(g) => index::infer_gather_nd(g, inputs),
        Op::ScatterNd(_) | Op::ScatterElements(_) => elementwise::infer_same(inputs, 3),
        Op::TopK(t) => index::infer_topk(t, inputs),
        Op::ArgReduce(a) => index::infer_arg_reduce(a, inputs),
        Op::CumSum(_) => elementwise::infer_same(inputs, 1),
        Op::NonZero => index::infer_non_zero(inputs),
        Op::OneHot(o) => index::infer_one_hot(o, inputs),
        Op::Trilu(_) => elementwise::infer_same(inputs, 1),
        Op::NonMaxSuppression(n) => index::infer_nms(n, inputs),
        Op::ShapeOf(s) => generate::infer_shape_of(s, inputs),
        Op::ConstantOfShape(c) => generate::infer_constant_of_shape(c, inputs),
        Op::Range => generate::infer_range(inputs),
        Op::Reduce(r) => reduce::infer_reduce(r, inputs),
        Op::Lstm(r) => rnn::infer_rnn(r, inputs, true),
        Op::Gru(r) => rnn::infer_rnn(r, inputs, false),
        Op::QuantizeLinear(q) => quant::infer_quantize(q, inputs),
        Op::DequantizeLinear(q) => quant::infer_dequantize(q, inputs),
        Op::DynamicQuantizeLinear => quant::infer_dynamic_quantize(inputs),
        Op::ConvInteger(c) => quant::infer_conv_integer(c, inputs),
        Op::MatMulInteger => quant::infer_matmul_integer(inputs),
        Op::QLinearConv(c) => quant::infer_qlinear_conv(c, inputs),
        Op::QLinearMatMul => quant::infer_qlinear_matmul(inputs),
    }
}

/// Normalizes a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(format!("axis {axis} out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// Numpy-style broadcast of two shapes.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Shape, String> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            &a[i + a.len() - rank]
        } else {
            &Dim::Fixed(1)
        };
        let db = if i + b.len() >= rank {
            &b[i + b.len() - rank]
        } else {
            &Dim::Fixed(1)
        };
        out.push(broadcast_dim(da, db).ok_or_else(|| {
            format!(
                "shapes {} and {} do not broadcast",
                super::shape_text(a),
                super::shape_text(b)
            )
        })?);
    }
    Ok(out)
}

fn broadcast_dim(a: &Dim, b: &Dim) -> Option<Dim> {
    Some(match (a, b) {
        (x, y) if x == y => x.clone(),
        (Dim::Fixed(1), y) => y.clone(),
        (x, Dim::Fixed(1)) => x.clone(),
        (Dim::Fixed(_), Dim::Fixed(_)) => return None,
        // A symbol meeting a fixed size > 1 must be that size at run time (or 1).
        (Dim::Sym(_), Dim::Fixed(n)) | (Dim::Fixed(n), Dim::Sym(_)) => Dim::Fixed(*n),
        (Dim::Sym(_), Dim::Sym(_)) => unknown_dim(),
    })
}

/// Checks a window's sizes: every kernel size, stride and dilation at least 1.
pub fn check_window(
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
) -> Result<(), String> {
    if kernel
        .iter()
        .chain(strides)
        .chain(dilations)
        .any(|&v| v == 0)
    {
        return Err(format!("kernel {kernel:?}, strides {strides:?} and dilations {dilations:?} must all be at least 1"));
    }
    Ok(())
}

/// Output size of a windowed op along one axis (conv, pool).
pub fn window_out(
    input: &Dim,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad: (usize, usize),
    ceil: bool,
) -> Result<Dim, String> {
    let eff = dilation * (kernel - 1) + 1;
    let Some(n) = input.fixed() else {
        return Ok(symbolic_window_out(input, eff, stride, pad, ceil));
    };
    let total = n as usize + pad.0 + pad.1;
    if total < eff {
        return Err(format!("window {eff} larger than padded input {total}"));
    }
    let span = total - eff;
    let mut out = span / stride + 1;
    if ceil && !span.is_multiple_of(stride) {
        out += 1;
        // The last window must start inside the input or left padding.
        if (out - 1) * stride >= n as usize + pad.0 {
            out -= 1;
        }
    }
    Ok(Dim::Fixed(out as u64))
}

/// A window's output size over a symbolic input `n`: when the stride divides `n` (`n = s·q`,
/// always for stride 1), the size is `q + c` with `c` depending only on the kernel and pads, so
/// `c = 0` (a "same"-style window: a 1×1 or 3×3 stride-1 convolution, a stride-2 one with pad 1)
/// gives exactly `q`. Any other size is unknown.
fn symbolic_window_out(
    input: &Dim,
    eff: usize,
    stride: usize,
    pad: (usize, usize),
    ceil: bool,
) -> Dim {
    let (s, rest) = (stride as i64, (pad.0 + pad.1) as i64 - eff as i64);
    let c = if ceil {
        rest.div_euclid(s) + i64::from(rest.rem_euclid(s) != 0)
    } else {
        rest.div_euclid(s)
    } + 1;
    match input.divide(&Dim::Fixed(stride as u64)) {
        Some(q) if c == 0 => q,
        _ => unknown_dim(),
    }
}

/// Product of fixed dims; `None` when one is symbolic or the product overflows.
pub fn dim_product(dims: &[Dim]) -> Option<u64> {
    dims.iter()
        .try_fold(1u64, |acc, d| acc.checked_mul(d.fixed()?))
}
