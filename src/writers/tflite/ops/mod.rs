//! IR node → TFLite builtin operators, by family. Every `Op` is decided here (no `_` arm):
//! either it maps to builtins, or the reason it cannot is returned and listed by `check`.
//! Ops that TFLite has no builtin for are lowered earlier, in `legalize.rs`, as IR rewrites;
//! what reaches this point unlowered (non-constant parameters, unsupported attributes) is refused.

pub mod conv3d;
pub mod dynamic;
pub mod elementwise;
pub mod movement;
pub mod nn;
pub mod recurrent;
pub mod scatter;
pub mod select;

use super::plan::Cx;
use crate::ir::Op;

pub fn map(cx: &mut Cx) -> Result<(), String> {
    let op = cx.node.op.clone();
    match &op {
        Op::Unary(u) => elementwise::unary(cx, *u),
        Op::Binary(b) => elementwise::binary(cx, *b),
        Op::Activation(a) => elementwise::activation(cx, a),
        Op::Where => elementwise::select(cx),
        Op::Cast(c) => elementwise::cast(cx, c.to),
        Op::MatMul(m) => nn::matmul(cx, m),
        Op::Conv(c) => nn::conv(cx, c),
        Op::ConvTranspose(c) => nn::conv_transpose(cx, c),
        Op::Pool(p) => nn::pool(cx, p),
        Op::GlobalPool(p) => nn::global_pool(cx, p),
        Op::Softmax(s) => nn::softmax(cx, s),
        Op::Resize(r) => nn::resize(cx, r),
        Op::DepthToSpace(d) => nn::depth_to_space(cx, d),
        Op::SpaceToDepth(s) => nn::space_to_depth(cx, s),
        Op::Reduce(r) => elementwise::reduce(cx, r),
        Op::ArgReduce(a) => elementwise::arg_reduce(cx, a),
        Op::CumSum(c) => elementwise::cumsum(cx, c),
        Op::Reshape(r) => movement::reshape(cx, r),
        Op::Transpose(t) => movement::transpose(cx, t),
        Op::Concat(c) => movement::concat(cx, c),
        Op::Split(s) => movement::split(cx, s),
        Op::Slice(s) => movement::slice(cx, s),
        Op::Pad(p) => movement::pad(cx, p),
        Op::Tile(t) => movement::tile(cx, t),
        Op::Expand(e) => movement::expand(cx, e),
        Op::Gather(g) => movement::gather(cx, g),
        Op::GatherNd(g) => movement::gather_nd(cx, g),
        Op::TopK(t) => movement::topk(cx, t),
        Op::ShapeOf(s) => movement::shape_of(cx, s),
        Op::ConstantOfShape(c) => movement::constant_of_shape(cx, c),
        Op::Range => movement::range(cx),
        Op::QuantizeLinear(q) => elementwise::quantize(cx, q),
        Op::DequantizeLinear(q) => elementwise::dequantize(cx, q),
        Op::BatchNorm(_) | Op::LayerNorm(_) | Op::InstanceNorm(_) | Op::LpNorm(_) => {
            Err("normalization parameters must be constants to be lowered for TFLite".into())
        }
        Op::Lstm(r) if recurrent::fits(cx.g, cx.node) => recurrent::sequence_lstm(cx, r),
        Op::Lstm(r) | Op::Gru(r) => {
            let lstm = matches!(op, Op::Lstm(_));
            Err(crate::passes::rnn::why_not(cx.g, cx.node, r, lstm)
                .unwrap_or_else(|| "recurrent layer not unrolled".into()))
        }
        Op::Einsum(e) => {
            let shapes: Vec<_> = cx.node.inputs.iter().map(|&v| &cx.g.ty(v).shape).collect();
            Err(crate::passes::einsum::check(&e.equation, &shapes)
                .err()
                .unwrap_or_else(|| {
                    format!("einsum '{}' was not lowered to BATCH_MATMUL", e.equation)
                }))
        }
        Op::Hardmax(_) => Err("no TFLite builtin (one-hot of ARG_MAX is not lowered)".into()),
        Op::GridSample(_) => Err("no TFLite builtin for grid sampling".into()),
        Op::ScatterNd(s) => scatter::scatter_nd(cx, s),
        Op::GatherElements(g) => Err(element_refusal(cx, g.axis, None)),
        Op::ScatterElements(s) => Err(element_refusal(cx, s.axis, Some(s.reduction))),
        Op::NonZero => select::non_zero(cx),
        Op::OneHot(o) => dynamic::one_hot(cx, o.axis, Some(o.depth)),
        Op::Trilu(_) => Err("no TFLite builtin for Trilu".into()),
        Op::NonMaxSuppression(s) => select::nms(cx, s),
        Op::DynamicQuantizeLinear
        | Op::ConvInteger(_)
        | Op::MatMulInteger
        | Op::QLinearConv(_)
        | Op::QLinearMatMul => Err(crate::passes::integer::why_not(cx.g, cx.node)
            .unwrap_or_else(|| "integer op not lowered to float builtins".into())),
        Op::If(i) => super::control::if_(cx, i),
        Op::Loop(l) => super::control::while_loop(cx, l),
        Op::Dynamic(d) => dynamic::dynamic(cx, d),
    }
}

/// Why a GatherElements/ScatterElements node was not rewritten to GATHER_ND/SCATTER_ND.
fn element_refusal(
    cx: &Cx,
    axis: usize,
    scatter: Option<crate::ir::ops::ScatterReduction>,
) -> String {
    let (data, idx) = (cx.node.inputs[0], cx.node.inputs[1]);
    super::indexing::why_not(cx.g, data, idx, axis, scatter)
        .unwrap_or_else(|| "not rewritten to GATHER_ND/SCATTER_ND".into())
}

/// `v` as i32 if it fits.
pub fn i32_of(v: i64, what: &str) -> Result<i32, String> {
    i32::try_from(v).map_err(|_| format!("{what} {v} does not fit in int32"))
}
