//! The closed set of operations. Writers and passes `match` on [`Op`] without a `_` arm, so a
//! new op makes the compiler list every place that must decide about it
//! (docs/adding-an-op.md).

use super::ops::*;

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    // elementwise.rs
    Unary(UnaryOp),
    Binary(BinaryOp),
    Activation(Activation),
    /// inputs: condition, x, y
    Where,
    Cast(Cast),
    // linear.rs
    /// inputs: a, b (numpy matmul semantics, optionally transposing the last two axes)
    MatMul(MatMul),
    Einsum(Einsum),
    /// inputs: x, kernel, [bias]
    Conv(Conv),
    /// inputs: x, kernel, [bias]
    ConvTranspose(Conv),
    // pool.rs
    Pool(Pool),
    GlobalPool(GlobalPool),
    // norm.rs
    /// inputs: x, scale, bias, mean, variance
    BatchNorm(BatchNorm),
    /// inputs: x, scale, [bias]
    LayerNorm(LayerNorm),
    /// inputs: x, scale, bias
    InstanceNorm(InstanceNorm),
    Softmax(Softmax),
    Hardmax(Hardmax),
    LpNorm(LpNorm),
    // movement.rs
    Reshape(Reshape),
    Transpose(Transpose),
    Concat(Concat),
    Split(Split),
    Slice(Slice),
    Pad(Pad),
    Tile(Tile),
    Expand(Expand),
    DepthToSpace(DepthToSpace),
    SpaceToDepth(SpaceToDepth),
    Resize(Resize),
    /// inputs: data, grid
    GridSample(GridSample),
    // index.rs
    /// inputs: data, indices
    Gather(Gather),
    /// inputs: data, indices
    GatherElements(Gather),
    /// inputs: data, indices
    GatherNd(GatherNd),
    /// inputs: data, indices, updates
    ScatterNd(Scatter),
    /// inputs: data, indices, updates
    ScatterElements(ScatterElements),
    TopK(TopK),
    ArgReduce(ArgReduce),
    CumSum(CumSum),
    /// Indices of the non-zero elements, `[rank, n]` with n known only at run time.
    NonZero,
    OneHot(OneHot),
    Trilu(Trilu),
    /// inputs: boxes, scores; output: selected `[batch, class, box]` indices, `[n, 3]` with n
    /// known only at run time.
    NonMaxSuppression(Nms),
    // generate.rs
    /// The shape of the input as a 1-D i64 tensor (the `start..end` part).
    ShapeOf(ShapeOf),
    /// input: the shape (1-D i64)
    ConstantOfShape(ConstantOfShape),
    /// inputs: start, limit, delta (scalars)
    Range,
    // reduce.rs
    Reduce(Reduce),
    // rnn.rs
    Lstm(Rnn),
    Gru(Rnn),
    // quant.rs
    /// inputs: x, scale, zero_point
    QuantizeLinear(QuantAxis),
    /// inputs: x, scale, [zero_point]
    DequantizeLinear(QuantAxis),
    /// input: x; outputs: y (u8), scale, zero_point
    DynamicQuantizeLinear,
    /// inputs: x, w, [x_zero_point, w_zero_point]
    ConvInteger(Conv),
    /// inputs: a, b, [a_zero_point, b_zero_point]
    MatMulInteger,
    /// inputs: x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, [bias]
    QLinearConv(Conv),
    /// inputs: a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp
    QLinearMatMul,
    // dynamic.rs
    /// An op whose shape-like operands are computed by the graph (all of them inputs).
    Dynamic(Dynamic),
    // control.rs
    /// inputs: cond, captures; runs one of two subgraphs.
    If(If),
    /// inputs: max trip count, cond, carried values, captures; runs its body repeatedly.
    Loop(Loop),
}

impl Op {
    /// The subgraphs the op runs, each with the attribute name ONNX gives it.
    pub fn bodies(&self) -> Vec<(&'static str, &super::Graph)> {
        match self {
            Op::If(i) => vec![
                ("then_branch", &*i.then_branch.0),
                ("else_branch", &*i.else_branch.0),
            ],
            Op::Loop(l) => vec![("body", &*l.body.0)],
            Op::Unary(_)
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
            | Op::DynamicQuantizeLinear
            | Op::ConvInteger(_)
            | Op::MatMulInteger
            | Op::QLinearConv(_)
            | Op::QLinearMatMul
            | Op::Dynamic(_) => vec![],
        }
    }

    /// The subgraphs the op runs, to change (a body shared with another op is copied first).
    pub fn bodies_mut(&mut self) -> Vec<&mut super::Graph> {
        use std::sync::Arc;
        match self {
            Op::If(i) => vec![
                Arc::make_mut(&mut i.then_branch.0),
                Arc::make_mut(&mut i.else_branch.0),
            ],
            Op::Loop(l) => vec![Arc::make_mut(&mut l.body.0)],
            Op::Unary(_)
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
            | Op::DynamicQuantizeLinear
            | Op::ConvInteger(_)
            | Op::MatMulInteger
            | Op::QLinearConv(_)
            | Op::QLinearMatMul
            | Op::Dynamic(_) => vec![],
        }
    }

    /// Short stable name used in the text form, histograms and error messages.
    pub fn name(&self) -> String {
        match self {
            Op::Unary(u) => format!("{u:?}"),
            Op::Binary(b) => format!("{b:?}"),
            Op::Activation(a) => a.name().to_string(),
            Op::Where => "Where".into(),
            Op::Cast(_) => "Cast".into(),
            Op::MatMul(_) => "MatMul".into(),
            Op::Einsum(_) => "Einsum".into(),
            Op::Conv(_) => "Conv".into(),
            Op::ConvTranspose(_) => "ConvTranspose".into(),
            Op::Pool(p) => format!("{:?}Pool", p.kind),
            Op::GlobalPool(p) => format!("Global{:?}Pool", p.kind),
            Op::BatchNorm(_) => "BatchNorm".into(),
            Op::LayerNorm(_) => "LayerNorm".into(),
            Op::InstanceNorm(_) => "InstanceNorm".into(),
            Op::Softmax(s) => if s.log { "LogSoftmax" } else { "Softmax" }.into(),
            Op::Hardmax(_) => "Hardmax".into(),
            Op::LpNorm(_) => "LpNorm".into(),
            Op::Reshape(_) => "Reshape".into(),
            Op::Transpose(_) => "Transpose".into(),
            Op::Concat(_) => "Concat".into(),
            Op::Split(_) => "Split".into(),
            Op::Slice(_) => "Slice".into(),
            Op::Pad(_) => "Pad".into(),
            Op::Tile(_) => "Tile".into(),
            Op::Expand(_) => "Expand".into(),
            Op::DepthToSpace(_) => "DepthToSpace".into(),
            Op::SpaceToDepth(_) => "SpaceToDepth".into(),
            Op::Resize(_) => "Resize".into(),
            Op::GridSample(_) => "GridSample".into(),
            Op::Gather(_) => "Gather".into(),
            Op::GatherElements(_) => "GatherElements".into(),
            Op::GatherNd(_) => "GatherNd".into(),
            Op::ScatterNd(_) => "ScatterNd".into(),
            Op::ScatterElements(_) => "ScatterElements".into(),
            Op::TopK(_) => "TopK".into(),
            Op::ArgReduce(a) => if a.max { "ArgMax" } else { "ArgMin" }.into(),
            Op::CumSum(_) => "CumSum".into(),
            Op::NonZero => "NonZero".into(),
            Op::OneHot(_) => "OneHot".into(),
            Op::Trilu(_) => "Trilu".into(),
            Op::NonMaxSuppression(_) => "NonMaxSuppression".into(),
            Op::ShapeOf(_) => "ShapeOf".into(),
            Op::ConstantOfShape(_) => "ConstantOfShape".into(),
            Op::Range => "Range".into(),
            Op::Reduce(r) => format!("Reduce{:?}", r.kind),
            Op::Lstm(_) => "Lstm".into(),
            Op::Gru(_) => "Gru".into(),
            Op::QuantizeLinear(_) => "QuantizeLinear".into(),
            Op::DequantizeLinear(_) => "DequantizeLinear".into(),
            Op::DynamicQuantizeLinear => "DynamicQuantizeLinear".into(),
            Op::ConvInteger(_) => "ConvInteger".into(),
            Op::MatMulInteger => "MatMulInteger".into(),
            Op::QLinearConv(_) => "QLinearConv".into(),
            Op::QLinearMatMul => "QLinearMatMul".into(),
            Op::Dynamic(d) => d.name().into(),
            Op::If(_) => "If".into(),
            Op::Loop(_) => "Loop".into(),
        }
    }
}
