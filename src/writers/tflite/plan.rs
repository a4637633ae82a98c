//! The TFLite program a graph becomes, before any flatbuffer is built: a list of builtin
//! operators over tensors, where a tensor is an IR value or an extra tensor the mapping made
//! (operator parameters such as axes and shapes, intermediates of multi-op mappings).
//!
//! Mapping runs per node (`ops/`); a fusion pre-pass first decides which activation nodes fold
//! into the operator before them and which bias Adds fold into FULLY_CONNECTED, so the mapping
//! of a node knows its fused activation, bias and final output up front.

use super::ops;
use crate::error::Unsupported;
use crate::ir::ops::{Activation, BinaryOp, UnaryOp};
use crate::ir::{DType, Graph, Node, Op, QuantParams, Tensor, TensorType, ValueId};
use std::collections::HashMap;
use tract_tflite::tflite::{ActivationFunctionType as Act, BuiltinOperator as B};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TRef {
    Value(ValueId),
    Extra(usize),
}

/// A tensor the mapping added: a constant (with data) or an intermediate.
#[derive(Clone, Debug)]
pub struct Extra {
    pub name: String,
    pub ty: TensorType,
    pub data: Option<Tensor>,
    /// Quantization parameters of an int8 intermediate (a requantized operand).
    pub quant: Option<QuantParams>,
    /// State an operator keeps across invocations (`is_variable`: LiteRT allocates it and
    /// zero-fills it at the start).
    pub variable: bool,
}

/// Builtin options, as plain data (turned into flatbuffer tables when the file is built).
#[derive(Clone, Debug, PartialEq)]
pub enum Opts {
    None,
    Conv {
        same: bool,
        stride: [i32; 2],
        dilation: [i32; 2],
        act: Act,
    },
    Depthwise {
        same: bool,
        stride: [i32; 2],
        dilation: [i32; 2],
        multiplier: i32,
        act: Act,
    },
    /// CONV_3D and CONV_3D_TRANSPOSE (`[d, h, w]` strides and dilations).
    Conv3d {
        same: bool,
        stride: [i32; 3],
        dilation: [i32; 3],
        act: Act,
    },
    TransposeConv {
        same: bool,
        stride: [i32; 2],
        act: Act,
    },
    Pool {
        same: bool,
        stride: [i32; 2],
        filter: [i32; 2],
        act: Act,
    },
    FullyConnected {
        act: Act,
        keep_num_dims: bool,
        /// Hybrid (float input, int8 weights): quantize the input with a zero point.
        asymmetric: bool,
    },
    /// ADD, SUB, MUL, DIV.
    Arith(Act),
    Concat {
        axis: i32,
        act: Act,
    },
    Reshape(Option<Vec<i32>>),
    Softmax,
    Reducer {
        keep_dims: bool,
    },
    StridedSlice {
        begin_mask: i32,
        end_mask: i32,
    },
    Gather {
        axis: i32,
    },
    Split(i32),
    SplitV(i32),
    Resize {
        align_corners: bool,
        half_pixel: bool,
    },
    LeakyRelu(f32),
    Gelu {
        approximate: bool,
    },
    Cast {
        from: DType,
        to: DType,
    },
    /// ARG_MAX / ARG_MIN output type.
    Arg(DType),
    BatchMatMul {
        adj_x: bool,
        adj_y: bool,
    },
    MirrorPad {
        reflect: bool,
    },
    Block(i32),
    Cumsum {
        exclusive: bool,
        reverse: bool,
    },
    Shape,
    /// ONE_HOT: where the new axis goes (non-negative).
    OneHot(i32),
    /// WHILE: the subgraphs of the condition and the body.
    While {
        cond: i32,
        body: i32,
    },
    /// IF: the subgraphs of the two branches.
    If {
        then: i32,
        other: i32,
    },
    /// UNIDIRECTIONAL_SEQUENCE_LSTM (TANH cell activation, no clipping).
    SequenceLstm {
        time_major: bool,
        /// 0: none.
        cell_clip: f32,
    },
    /// RNN (the basic recurrent cell) without activation.
    Rnn,
}

#[derive(Clone, Debug)]
pub struct TOp {
    pub code: B,
    pub opts: Opts,
    /// `None` is an omitted optional input (written as -1).
    pub inputs: Vec<Option<TRef>>,
    pub outputs: Vec<TRef>,
}

/// A subgraph a control-flow operator runs (subgraph `1 + its index` in the file).
pub struct Child {
    pub graph: Graph,
    pub plan: Plan,
}

#[derive(Default)]
pub struct Plan {
    /// Subgraphs WHILE and IF operators run, nested ones included (their own plans have none).
    pub children: Vec<Child>,
    pub ops: Vec<TOp>,
    pub extra: Vec<Extra>,
    /// Quantization parameters of values (from Quantize/DequantizeLinear's constant operands).
    pub quant: HashMap<ValueId, QuantParams>,
}

/// What the fusion pre-pass decided for one node.
#[derive(Clone, Debug, Default)]
pub struct Fused {
    /// The node's output is written to this value instead (the folded Add's or activation's).
    pub out: Option<ValueId>,
    pub act: Option<Act>,
    /// A constant bias folded in from the Add after a MatMul.
    pub bias: Option<ValueId>,
    /// This node was folded into an earlier one: emit nothing.
    pub skip: bool,
}

/// The fused activation an activation node can become, if any. TANH is not fused: TFLite's
/// kernels clamp with a min/max range and would silently ignore it.
fn fusable_act(op: &Op) -> Option<Act> {
    Some(match op {
        Op::Unary(u) => match u {
            UnaryOp::Relu => Act::RELU,
            UnaryOp::Abs
            | UnaryOp::Neg
            | UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Reciprocal
            | UnaryOp::Erf
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round
            | UnaryOp::Sign
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
            | UnaryOp::Not
            | UnaryOp::IsNaN
            | UnaryOp::Square
            | UnaryOp::BitwiseNot => return None,
        },
        Op::Activation(a) => match a {
            Activation::Clip { min, max } => match (min, max) {
                (Some(a), Some(b)) if *a == 0.0 && *b == 6.0 => Act::RELU6,
                (Some(a), Some(b)) if *a == -1.0 && *b == 1.0 => Act::RELU_N1_TO_1,
                (Some(a), None) if *a == 0.0 => Act::RELU,
                _ => return None,
            },
            Activation::LeakyRelu { .. }
            | Activation::Elu { .. }
            | Activation::Selu { .. }
            | Activation::Celu { .. }
            | Activation::HardSigmoid { .. }
            | Activation::HardSwish
            | Activation::Gelu { .. }
            | Activation::ThresholdedRelu { .. }
            | Activation::Mish
            | Activation::Shrink { .. } => return None,
        },
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
        | Op::Dynamic(_)
        | Op::If(_)
        | Op::Loop(_) => return None,
    })
}

/// Whether node `n`'s TFLite operator takes a fused activation (CONCATENATION does not: its
/// kernel requires none).
fn takes_act(g: &Graph, producers: &HashMap<ValueId, usize>, n: &Node) -> bool {
    let float = n
        .outputs
        .first()
        .is_some_and(|&o| g.ty(o).dtype == DType::F32);
    float
        && match &n.op {
            Op::Conv(_) | Op::Pool(_) => true,
            Op::ConvTranspose(_) => false,
            Op::Binary(b) => match b {
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => true,
                BinaryOp::Pow
                | BinaryOp::Min
                | BinaryOp::Max
                | BinaryOp::Mod
                | BinaryOp::Fmod
                | BinaryOp::PRelu
                | BinaryOp::Equal
                | BinaryOp::Less
                | BinaryOp::Greater
                | BinaryOp::LessOrEqual
                | BinaryOp::GreaterOrEqual
                | BinaryOp::And
                | BinaryOp::Or
                | BinaryOp::Xor
                | BinaryOp::SquaredDifference
                | BinaryOp::BitShiftLeft
                | BinaryOp::BitShiftRight
                | BinaryOp::BitwiseAnd
                | BinaryOp::BitwiseOr
                | BinaryOp::BitwiseXor => false,
            },
            Op::MatMul(_) => ops::nn::fc_weights(g, producers, n).is_some(),
            Op::Unary(_)
            | Op::Activation(_)
            | Op::Where
            | Op::Cast(_)
            | Op::Einsum(_)
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
            | Op::Dynamic(_)
            | Op::If(_)
            | Op::Loop(_) => false,
        }
}

/// Decides fusions: bias Adds into FULLY_CONNECTED, activations into the op before them.
pub fn fusions(g: &Graph, producers: &HashMap<ValueId, usize>) -> Vec<Fused> {
    let mut f = vec![Fused::default(); g.nodes.len()];
    let uses = g.use_counts();
    let is_output: Vec<bool> = {
        let mut o = vec![false; g.values.len()];
        for &v in &g.outputs {
            o[v.0] = true;
        }
        o
    };
    // Single consumer of each value (when it has exactly one use).
    let mut consumer: HashMap<ValueId, usize> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for &v in &n.inputs {
            consumer.insert(v, i);
        }
    }
    let sole_user = |v: ValueId| -> Option<usize> {
        (uses[v.0] == 1 && !is_output[v.0])
            .then(|| consumer.get(&v).copied())
            .flatten()
    };
    for i in 0..g.nodes.len() {
        if f[i].skip || !takes_act(g, producers, &g.nodes[i]) || g.nodes[i].outputs.len() != 1 {
            continue;
        }
        let mut out = g.nodes[i].outputs[0];
        if let Op::MatMul(_) = g.nodes[i].op {
            if let Some(a) = sole_user(out) {
                let an = &g.nodes[a];
                let out_c = g.ty(out).shape.last().cloned();
                if let (Op::Binary(BinaryOp::Add), Some(&b)) = (&an.op, an.inputs.get(1)) {
                    // A constant bias, or a dequantized one (quantized models).
                    let bt = g.ty(b);
                    let bias_ok = an.inputs[0] == out
                        && (g.constant(b).is_some() || ops::nn::dequantized_const(g, producers, b))
                        && bt.dtype == DType::F32
                        && bt.rank() == 1
                        && out_c.as_ref() == bt.shape.first();
                    if bias_ok && g.ty(an.outputs[0]) == g.ty(out) {
                        f[i].bias = Some(b);
                        f[a].skip = true;
                        out = an.outputs[0];
                        f[i].out = Some(out);
                    }
                }
            }
        }
        if let Some(a) = sole_user(out) {
            if let Some(act) = fusable_act(&g.nodes[a].op) {
                f[i].act = Some(act);
                f[a].skip = true;
                f[i].out = Some(g.nodes[a].outputs[0]);
            }
        }
    }
    f
}

/// Per-node mapping context.
pub struct Cx<'a> {
    pub g: &'a Graph,
    pub node: &'a Node,
    /// The node's index in the graph.
    pub index: usize,
    pub fused: &'a Fused,
    pub plan: &'a mut Plan,
    pub producers: &'a HashMap<ValueId, usize>,
    /// Quantized forms: what int8 nodes read and write instead of the float values.
    pub fold: &'a super::quant::Folding,
}

impl Cx<'_> {
    pub fn name(&self) -> &str {
        &self.node.name
    }
    pub fn input(&self, i: usize) -> Result<ValueId, String> {
        self.node
            .inputs
            .get(i)
            .copied()
            .ok_or_else(|| format!("missing input #{i}"))
    }
    pub fn x(&self, i: usize) -> Result<TRef, String> {
        Ok(TRef::Value(self.fold.read(self.index, self.input(i)?)))
    }
    /// Any value this node reads (e.g. a fused bias), in its int8 form when folded.
    pub fn read(&self, v: ValueId) -> TRef {
        TRef::Value(self.fold.read(self.index, v))
    }
    /// The quantization parameters of a tensor this node reads or writes.
    pub fn quant_of(&self, r: TRef) -> Option<&QuantParams> {
        match r {
            TRef::Value(v) => self.plan.quant.get(&v).or(self.g.value(v).quant.as_ref()),
            TRef::Extra(k) => self.plan.extra[k].quant.as_ref(),
        }
    }

    /// `x` requantized (int8 QUANTIZE, int8 → int8) to `want` when its parameters differ: for
    /// int8 kernels that need equal input and output parameters (CONCATENATION).
    pub fn requantized(&mut self, x: TRef, want: &QuantParams, tag: &str) -> TRef {
        if self.quant_of(x) == Some(want) {
            return x;
        }
        let ty = match x {
            TRef::Value(v) => self.g.ty(v).clone(),
            TRef::Extra(k) => self.plan.extra[k].ty.clone(),
        };
        let t = self.temp(tag, ty);
        if let TRef::Extra(k) = t {
            self.plan.extra[k].quant = Some(want.clone());
        }
        self.emit(B::QUANTIZE, Opts::None, vec![Some(x)], vec![t]);
        t
    }

    /// Whether this node is written as a hybrid builtin (float activations, int8 weights).
    pub fn is_hybrid(&self) -> bool {
        self.fold.hybrid.get(self.index).copied().unwrap_or(false)
    }

    /// Whether this node is written as an int8 builtin.
    pub fn is_int8(&self) -> bool {
        self.fold.int8.get(self.index).copied().unwrap_or(false)
    }
    pub fn ty(&self, i: usize) -> Result<&TensorType, String> {
        Ok(self.g.ty(self.input(i)?))
    }
    pub fn konst_in(&self, i: usize) -> Option<&Tensor> {
        self.node.inputs.get(i).and_then(|&v| self.g.constant(v))
    }
    /// Output `i`, after fusion (the fused Add's or activation's value for output 0).
    pub fn out_value(&self, i: usize) -> ValueId {
        match (i, self.fused.out) {
            (0, Some(v)) => v,
            _ => self.node.outputs[i],
        }
    }
    pub fn out(&self, i: usize) -> TRef {
        TRef::Value(self.fold.write(self.out_value(i)))
    }
    pub fn out_ty(&self, i: usize) -> &TensorType {
        self.g.ty(self.out_value(i))
    }
    pub fn act(&self) -> Act {
        self.fused.act.unwrap_or(Act::NONE)
    }

    pub fn konst(&mut self, tag: &str, t: Tensor) -> TRef {
        let name = format!("{}/{tag}", self.node.name);
        self.plan.extra.push(Extra {
            name,
            ty: t.ty(),
            data: Some(t),
            quant: None,
            variable: false,
        });
        TRef::Extra(self.plan.extra.len() - 1)
    }
    pub fn i32s(&mut self, tag: &str, shape: Vec<usize>, v: &[i32]) -> TRef {
        let t = Tensor::from_i64s(
            DType::I32,
            shape,
            &v.iter().map(|&x| x as i64).collect::<Vec<_>>(),
        );
        self.konst(tag, t)
    }
    /// The zero bias of a convolution whose source has none: float, or for an int8 kernel int32
    /// with the scales runtimes expect of a bias (input scale × weight scale per output channel,
    /// zero point 0) — XNNPACK refuses an int8 convolution whose bias lacks them.
    pub fn zero_bias(&mut self, out_c: usize) -> TRef {
        if !self.is_int8() {
            return self.f32s("bias", vec![out_c], &vec![0.0; out_c]);
        }
        let first_scale = |cx: &Self, i: usize| {
            cx.x(i)
                .ok()
                .and_then(|r| cx.quant_of(r))
                .map(|q| q.scale.clone())
        };
        let (s_x, s_w) = (first_scale(self, 0), first_scale(self, 1));
        let t = self.i32s("bias", vec![out_c], &vec![0; out_c]);
        if let (Some(s_x), Some(s_w), TRef::Extra(k)) = (s_x, s_w, t) {
            let per_tensor = s_w.len() == 1;
            if let (Some(&s_x), true) = (s_x.first(), per_tensor || s_w.len() == out_c) {
                let scale: Vec<f32> = (0..out_c)
                    .map(|c| s_x * s_w[if per_tensor { 0 } else { c }])
                    .collect();
                self.plan.extra[k].quant = Some(QuantParams {
                    scale,
                    zero_point: vec![0; out_c],
                    axis: Some(0),
                });
            }
        }
        t
    }
    pub fn i32_vec(&mut self, tag: &str, v: &[i32]) -> TRef {
        self.i32s(tag, vec![v.len()], v)
    }
    pub fn f32s(&mut self, tag: &str, shape: Vec<usize>, v: &[f32]) -> TRef {
        self.konst(tag, Tensor::from_f32(shape, v))
    }
    pub fn temp(&mut self, tag: &str, ty: TensorType) -> TRef {
        let name = format!("{}/{tag}", self.node.name);
        self.plan.extra.push(Extra {
            name,
            ty,
            data: None,
            quant: None,
            variable: false,
        });
        TRef::Extra(self.plan.extra.len() - 1)
    }
    /// A zero-initialized state tensor the runtime keeps (the recurrent state of a sequence op).
    pub fn variable(&mut self, tag: &str, ty: TensorType) -> TRef {
        let t = self.temp(tag, ty);
        if let TRef::Extra(k) = t {
            self.plan.extra[k].variable = true;
        }
        t
    }
    pub fn emit(&mut self, code: B, opts: Opts, inputs: Vec<Option<TRef>>, outputs: Vec<TRef>) {
        self.plan.ops.push(TOp {
            code,
            opts,
            inputs,
            outputs,
        });
    }
    /// One-input, one-output op without options.
    pub fn unary(&mut self, code: B) -> Result<(), String> {
        let (x, y) = (self.x(0)?, self.out(0));
        self.emit(code, Opts::None, vec![Some(x)], vec![y]);
        Ok(())
    }
}

/// Maps every node; returns the plan or every node that cannot be expressed.
pub fn build(g: &Graph) -> Result<Plan, Vec<Unsupported>> {
    let producers = g.producers();
    let fused = fusions(g, &producers);
    let fold = super::quant::fold(g, &fused);
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    for (index, (n, f)) in g.nodes.iter().zip(&fused).enumerate() {
        if f.skip || fold.skip[index] {
            continue;
        }
        let mark = (plan.ops.len(), plan.extra.len());
        let mut cx = Cx {
            g,
            node: n,
            index,
            fused: f,
            plan: &mut plan,
            producers: &producers,
            fold: &fold,
        };
        if let Err(reason) = ops::map(&mut cx) {
            plan.ops.truncate(mark.0);
            plan.extra.truncate(mark.1);
            problems.push(Unsupported {
                op: n.op.name(),
                node: n.name.clone(),
                reason,
            });
        }
    }
    for &v in g.inputs.iter().chain(&g.outputs) {
        if let Err(reason) = super::serialize::tensor_type(g.ty(v).dtype) {
            problems.push(Unsupported {
                op: "graph I/O".into(),
                node: g.value(v).name.clone(),
                reason,
            });
        }
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}
