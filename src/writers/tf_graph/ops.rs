//! Each IR op as TF ops that tfjs-converter 4.22's executors run (`operations/op_list/*.ts`),
//! with the attributes their mappers read. The match has no `_` arm: a new IR op must decide
//! here. Ops the channels-last legalization lowers (LayerNorm, Erf's relatives, …) are refused
//! if they still show up, naming the reason.

use super::emit::{a_bool, a_int, a_str, a_type, Dialect, Gx};
use super::nn::{self, Fused};
use super::pool;
use crate::ir::ops::{BinaryOp, PadMode, ReduceKind, ScatterReduction, Slice, UnaryOp};
use crate::ir::{DType, Dim, Node, Op};
use serde_json::json;

fn unary_name(u: UnaryOp) -> Result<&'static str, String> {
    Ok(match u {
        UnaryOp::Abs => "Abs",
        UnaryOp::Neg => "Neg",
        UnaryOp::Sqrt => "Sqrt",
        UnaryOp::Rsqrt => "Rsqrt",
        UnaryOp::Exp => "Exp",
        UnaryOp::Log => "Log",
        UnaryOp::Reciprocal => "Reciprocal",
        UnaryOp::Erf => "Erf",
        UnaryOp::Floor => "Floor",
        UnaryOp::Ceil => "Ceil",
        UnaryOp::Round => "Round",
        UnaryOp::Sign => "Sign",
        UnaryOp::Sin => "Sin",
        UnaryOp::Cos => "Cos",
        UnaryOp::Tan => "Tan",
        UnaryOp::Asin => "Asin",
        UnaryOp::Acos => "Acos",
        UnaryOp::Atan => "Atan",
        UnaryOp::Sinh => "Sinh",
        UnaryOp::Cosh => "Cosh",
        UnaryOp::Asinh => "Asinh",
        UnaryOp::Acosh => "Acosh",
        UnaryOp::Atanh => "Atanh",
        UnaryOp::Sigmoid => "Sigmoid",
        UnaryOp::Tanh => "Tanh",
        UnaryOp::Relu => "Relu",
        UnaryOp::Softplus => "Softplus",
        UnaryOp::Not => "LogicalNot",
        UnaryOp::IsNaN => "IsNan",
        UnaryOp::Square => "Square",
        UnaryOp::Softsign => return Err("Softsign has no TF.js op (legalization lowers it)".into()),
        UnaryOp::BitwiseNot => return Err("bitwise NOT has no TF.js op".into()),
    })
}

fn binary_name(b: BinaryOp, dtype: DType) -> Result<&'static str, String> {
    Ok(match b {
        BinaryOp::Add => "AddV2",
        BinaryOp::Sub => "Sub",
        BinaryOp::Mul => "Mul",
        BinaryOp::Div if dtype.is_float() => "RealDiv",
        BinaryOp::Div => return Err("integer division is written apart".into()),
        BinaryOp::Pow => "Pow",
        BinaryOp::Min => "Minimum",
        BinaryOp::Max => "Maximum",
        BinaryOp::Mod => "FloorMod",
        BinaryOp::PRelu => "Prelu",
        BinaryOp::Equal => "Equal",
        BinaryOp::Less => "Less",
        BinaryOp::Greater => "Greater",
        BinaryOp::LessOrEqual => "LessEqual",
        BinaryOp::GreaterOrEqual => "GreaterEqual",
        BinaryOp::And => "LogicalAnd",
        BinaryOp::Or => "LogicalOr",
        BinaryOp::Xor => "NotEqual",
        BinaryOp::SquaredDifference => "SquaredDifference",
        // `passes::lower` rewrites it through FloorMod before the writer runs.
        BinaryOp::Fmod => return Err("fmod (sign of the dividend) has no TF op".into()),
        BinaryOp::BitShiftLeft
        | BinaryOp::BitShiftRight
        | BinaryOp::BitwiseAnd
        | BinaryOp::BitwiseOr
        | BinaryOp::BitwiseXor => return Err("bitwise operations have no TF.js op".into()),
    })
}

/// Emits one IR node; `fused` is set for a convolution/MatMul that absorbs its followers.
pub fn emit(gx: &mut Gx, n: &Node, fused: Option<&Fused>) -> Result<(), String> {
    let g = gx.g;
    let out_ty = g.ty(n.outputs[0]).clone();
    let dt = out_ty.dtype;
    let in_dt = g
        .ty(n.inputs.first().copied().unwrap_or(n.outputs[0]))
        .dtype;
    let t = |d: DType| ("T", a_type(d));
    let y = match &n.op {
        Op::Unary(u) => {
            let op = unary_name(*u)?;
            let x = gx.r(n.inputs[0])?;
            gx.node("", op, vec![x], vec![t(in_dt)])
        }
        Op::Binary(BinaryOp::Div) if !in_dt.is_float() => {
            // ONNX integer division truncates; TF.js's FloorDiv floors. They differ by one
            // when the remainder is non-zero and the signs differ.
            let a = gx.r(n.inputs[0])?;
            let b = gx.r(n.inputs[1])?;
            let ti = || t(DType::I32);
            let q = gx.node("floor", "FloorDiv", vec![a.clone(), b.clone()], vec![ti()]);
            let r = gx.node("rem", "FloorMod", vec![a.clone(), b.clone()], vec![ti()]);
            let zero = gx.int("zero", 0)?;
            let inexact = gx.node("inexact", "NotEqual", vec![r, zero.clone()], vec![ti()]);
            let sa = gx.node("sign_a", "Sign", vec![a], vec![ti()]);
            let sb = gx.node("sign_b", "Sign", vec![b], vec![ti()]);
            let ss = gx.node("signs", "Mul", vec![sa, sb], vec![ti()]);
            let neg = gx.node("negative", "Less", vec![ss, zero], vec![ti()]);
            let fix = gx.node("fix", "LogicalAnd", vec![inexact, neg], vec![]);
            let one = gx.node(
                "one",
                "Cast",
                vec![fix],
                vec![("SrcT", a_type(DType::Bool)), ("DstT", a_type(DType::I32))],
            );
            gx.node("", "AddV2", vec![q, one], vec![ti()])
        }
        Op::Binary(BinaryOp::PRelu) if gx.dialect == Dialect::Tf => {
            // TF has no Prelu op (TF.js's is its own): relu(x) - slope * relu(-x).
            let x = gx.r(n.inputs[0])?;
            let slope = gx.r(n.inputs[1])?;
            let pos = gx.node("pos", "Relu", vec![x.clone()], vec![t(in_dt)]);
            let neg_x = gx.node("neg_x", "Neg", vec![x], vec![t(in_dt)]);
            let neg = gx.node("neg", "Relu", vec![neg_x], vec![t(in_dt)]);
            let scaled = gx.node("scaled", "Mul", vec![slope, neg], vec![t(in_dt)]);
            gx.node("", "Sub", vec![pos, scaled], vec![t(in_dt)])
        }
        Op::Binary(b) => {
            let op = binary_name(*b, in_dt)?;
            let a = gx.r(n.inputs[0])?;
            let c = gx.r(n.inputs[1])?;
            gx.node("", op, vec![a, c], vec![t(in_dt)])
        }
        Op::Activation(a) => super::activation::activation(gx, n, a)?,
        Op::Where => {
            let ins = inputs(gx, n)?;
            gx.node("", "SelectV2", ins, vec![t(dt)])
        }
        Op::Cast(c) => {
            let x = gx.r(n.inputs[0])?;
            gx.node(
                "",
                "Cast",
                vec![x],
                vec![
                    ("SrcT", a_type(in_dt)),
                    ("DstT", a_type(c.to)),
                    ("Truncate", a_bool(false)),
                ],
            )
        }
        Op::MatMul(m) => return nn::matmul(gx, n, m.transpose_a, m.transpose_b, fused),
        Op::Einsum(e) => {
            let lhs = e.equation.split("->").next().unwrap_or("");
            let repeated = lhs.split(',').any(|term| {
                let letters: Vec<char> = term.chars().filter(|c| c.is_alphabetic()).collect();
                (1..letters.len()).any(|i| letters[..i].contains(&letters[i]))
            });
            if n.inputs.len() > 2 || e.equation.contains("...") || repeated {
                return Err(
                    "TF.js Einsum takes one or two operands, no ellipsis and no index repeated \
                     within an operand"
                        .into(),
                );
            }
            let ins = inputs(gx, n)?;
            gx.node(
                "",
                "Einsum",
                ins,
                vec![
                    ("equation", a_str(&e.equation)),
                    ("N", a_int(n.inputs.len() as i64)),
                    t(dt),
                ],
            )
        }
        Op::Conv(c) => return nn::conv(gx, n, c, fused),
        Op::ConvTranspose(c) => return nn::conv_transpose(gx, n, c),
        Op::Pool(p) => return pool::pool(gx, n, p),
        Op::GlobalPool(p) => {
            let rank = g.ty(n.inputs[0]).rank();
            let axes: Vec<i64> = p.layout.spatial_axes(rank).map(|a| a as i64).collect();
            match p.kind {
                crate::ir::ops::PoolKind::Avg => reduce(gx, n, "Mean", &axes, true)?,
                crate::ir::ops::PoolKind::Max => reduce(gx, n, "Max", &axes, true)?,
                crate::ir::ops::PoolKind::L2 => {
                    // sqrt(sum of squares) over the spatial axes.
                    let x = gx.r(n.inputs[0])?;
                    let sq = gx.node("square", "Square", vec![x], vec![t(in_dt)]);
                    let ax = gx.ints("axes", &axes)?;
                    let sum = gx.node(
                        "sum",
                        "Sum",
                        vec![sq, ax],
                        vec![
                            t(in_dt),
                            ("keep_dims", a_bool(true)),
                            ("Tidx", a_type(DType::I32)),
                        ],
                    );
                    gx.node("", "Sqrt", vec![sum], vec![t(in_dt)])
                }
            }
        }
        Op::BatchNorm(_) => {
            return Err("batch norm not folded into a convolution or lowered".into())
        }
        Op::LayerNorm(_) | Op::InstanceNorm(_) | Op::LpNorm(_) => {
            return Err("normalization not lowered by legalization".into())
        }
        Op::Softmax(s) => {
            if s.axis + 1 != g.ty(n.inputs[0]).rank() {
                return Err("softmax over an inner axis (legalization moves it last)".into());
            }
            let x = gx.r(n.inputs[0])?;
            gx.node(
                "",
                if s.log { "LogSoftmax" } else { "Softmax" },
                vec![x],
                vec![t(dt)],
            )
        }
        Op::Hardmax(h) => {
            // OneHot(ArgMax(x)) along the axis: both take the first of equal maxima, as ONNX.
            let shape = &g.ty(n.inputs[0]).shape;
            let depth = shape[h.axis]
                .fixed()
                .ok_or("the Hardmax axis must have a fixed size")?;
            let x = gx.r(n.inputs[0])?;
            let axis = gx.int("axis", h.axis as i64)?;
            let idx = gx.node(
                "argmax",
                "ArgMax",
                vec![x, axis],
                vec![t(in_dt), ("output_type", a_type(DType::I32))],
            );
            let depth = gx.int("depth", depth as i64)?;
            let on = gx.konst(
                &format!("{}/on", gx.base),
                crate::ir::Tensor::from_f64s(dt, vec![], &[1.0]),
            )?;
            let off = gx.konst(
                &format!("{}/off", gx.base),
                crate::ir::Tensor::from_f64s(dt, vec![], &[0.0]),
            )?;
            gx.node(
                "",
                "OneHot",
                vec![idx, depth, on, off],
                vec![("axis", a_int(h.axis as i64)), t(dt)],
            )
        }
        Op::Reshape(r) => {
            let x = gx.r(n.inputs[0])?;
            let shape = gx.dims("shape", &r.shape, &[n.inputs[0]], true)?;
            gx.node(
                "",
                "Reshape",
                vec![x, shape],
                vec![t(dt), ("Tshape", a_type(DType::I32))],
            )
        }
        Op::Transpose(p) => {
            let x = gx.r(n.inputs[0])?;
            let perm: Vec<i64> = p.perm.iter().map(|&a| a as i64).collect();
            let perm = gx.ints("perm", &perm)?;
            gx.node(
                "",
                "Transpose",
                vec![x, perm],
                vec![t(dt), ("Tperm", a_type(DType::I32))],
            )
        }
        Op::Concat(c) => {
            let mut ins = inputs(gx, n)?;
            let count = ins.len() as i64;
            ins.push(gx.int("axis", c.axis as i64)?);
            gx.node(
                "",
                "ConcatV2",
                ins,
                vec![t(dt), ("N", a_int(count)), ("Tidx", a_type(DType::I32))],
            )
        }
        Op::Split(s) => {
            let x = gx.r(n.inputs[0])?;
            let sizes: Vec<i64> = s.sizes.iter().map(|&v| v as i64).collect();
            let sizes = gx.ints("sizes", &sizes)?;
            let axis = gx.int("axis", s.axis as i64)?;
            let y = gx.node(
                "",
                "SplitV",
                vec![x, sizes, axis],
                vec![
                    t(dt),
                    ("num_split", a_int(s.sizes.len() as i64)),
                    ("Tlen", a_type(DType::I32)),
                ],
            );
            for (i, &o) in n.outputs.iter().enumerate() {
                gx.bind(
                    o,
                    if i == 0 {
                        y.clone()
                    } else {
                        format!("{y}:{i}")
                    },
                );
            }
            return Ok(());
        }
        Op::Slice(s) => strided_slice(gx, n, s)?,
        Op::Pad(p) => pad(gx, n, p)?,
        Op::Tile(tl) => {
            let x = gx.r(n.inputs[0])?;
            let reps: Vec<i64> = tl.repeats.iter().map(|&v| v as i64).collect();
            let reps = gx.ints("multiples", &reps)?;
            gx.node("", "Tile", vec![x, reps], vec![t(dt)])
        }
        Op::Expand(_) => {
            let x = gx.r(n.inputs[0])?;
            let shape = gx.dims("shape", &out_ty.shape, &[n.inputs[0]], false)?;
            gx.node("", "BroadcastTo", vec![x, shape], vec![t(dt)])
        }
        Op::DepthToSpace(d) => {
            if d.mode != crate::ir::ops::DepthToSpaceMode::Dcr
                || d.layout != crate::ir::Layout::Nhwc
            {
                return Err(
                    "only NHWC DCR depth-to-space is a TF op (legalization spells out CRD)".into(),
                );
            }
            let x = gx.r(n.inputs[0])?;
            gx.node(
                "",
                "DepthToSpace",
                vec![x],
                vec![
                    t(dt),
                    ("block_size", a_int(d.block as i64)),
                    ("data_format", a_str("NHWC")),
                ],
            )
        }
        Op::SpaceToDepth(s) => space_to_depth(gx, n, s.block, s.layout)?,
        Op::Resize(r) => return super::resize::resize(gx, n, r),
        Op::GridSample(_) => return Err("GridSample has no TF.js op".into()),
        Op::Gather(ga) => {
            let x = gx.r(n.inputs[0])?;
            let idx = gather_indices(gx, n, ga.axis)?;
            let axis = gx.int("axis", ga.axis as i64)?;
            gx.node(
                "",
                "GatherV2",
                vec![x, idx, axis],
                vec![("batch_dims", a_int(0)), ("Tparams", a_type(dt))],
            )
        }
        Op::GatherElements(ga) => super::index::gather_elements(gx, n, ga.axis)?,
        Op::GatherNd(gn) => {
            if gn.batch_dims != 0 {
                return Err("GatherNd with batch dimensions has no TF.js form".into());
            }
            let ins = inputs(gx, n)?;
            gx.node("", "GatherNd", ins, vec![("Tparams", a_type(dt))])
        }
        Op::ScatterNd(s) => match s.reduction {
            ScatterReduction::None => super::index::scatter_nd(gx, n)?,
            ScatterReduction::Add => super::index::scatter_nd_sum(gx, n)?,
            _ => return Err("ScatterND with a min, max or mul reduction has no TF op".into()),
        },
        Op::ScatterElements(se) => {
            if se.reduction != ScatterReduction::None {
                return Err("ScatterElements with a reduction has no TF.js form".into());
            }
            super::index::scatter_elements(gx, n, se.axis)?
        }
        Op::TopK(k) => {
            let rank = g.ty(n.inputs[0]).rank();
            if k.axis + 1 != rank || !k.largest {
                return Err(
                    "TF.js TopKV2 takes the largest values along the last axis only".into(),
                );
            }
            let x = gx.r(n.inputs[0])?;
            let kk = gx.int("k", k.k as i64)?;
            let y = gx.node(
                "",
                "TopKV2",
                vec![x, kk],
                vec![t(in_dt), ("sorted", a_bool(true))],
            );
            gx.bind(n.outputs[0], y.clone());
            if let Some(&i) = n.outputs.get(1) {
                gx.bind(i, format!("{y}:1"));
            }
            return Ok(());
        }
        Op::ArgReduce(a) => {
            if a.select_last {
                return Err("arg max/min selecting the last index has no TF.js op".into());
            }
            let x = gx.r(n.inputs[0])?;
            let axis = gx.int("axis", a.axis as i64)?;
            let op = if a.max { "ArgMax" } else { "ArgMin" };
            let y = gx.node(
                if a.keep_dims { "arg" } else { "" },
                op,
                vec![x, axis.clone()],
                vec![t(in_dt), ("output_type", a_type(DType::I32))],
            );
            if a.keep_dims {
                gx.node("", "ExpandDims", vec![y, axis], vec![t(DType::I32)])
            } else {
                y
            }
        }
        Op::CumSum(c) => {
            let x = gx.r(n.inputs[0])?;
            let axis = gx.int("axis", c.axis as i64)?;
            gx.node(
                "",
                "Cumsum",
                vec![x, axis],
                vec![
                    t(dt),
                    ("exclusive", a_bool(c.exclusive)),
                    ("reverse", a_bool(c.reverse)),
                ],
            )
        }
        Op::NonZero => {
            let x = gx.r(n.inputs[0])?;
            let mut w = gx.node("where", "Where", vec![x], vec![t(in_dt)]);
            if gx.dialect == Dialect::Tf {
                // TF's Where gives int64 coordinates; every integer here is int32 (TF.js's
                // Where already gives int32).
                w = gx.node(
                    "where_i32",
                    "Cast",
                    vec![w],
                    vec![
                        ("SrcT", json!({ "type": "DT_INT64" })),
                        ("DstT", a_type(DType::I32)),
                        ("Truncate", a_bool(false)),
                    ],
                );
            }
            let perm = gx.ints("perm", &[1, 0])?;
            gx.node("", "Transpose", vec![w, perm], vec![t(DType::I32)])
        }
        Op::OneHot(o) => {
            let values = g
                .constant(n.inputs[1])
                .ok_or("OneHot values must be constant")?;
            let v = values.to_f64s();
            if v.len() != 2 {
                return Err("OneHot values must hold [off, on]".into());
            }
            let idx = gx.r(n.inputs[0])?;
            let idx = wrap_negative(gx, idx, o.depth as i64)?;
            let depth = gx.int("depth", o.depth as i64)?;
            let on = gx.konst(
                &format!("{}/on", gx.base),
                crate::ir::Tensor::from_f64s(values.dtype, vec![], &v[1..]),
            )?;
            let off = gx.konst(
                &format!("{}/off", gx.base),
                crate::ir::Tensor::from_f64s(values.dtype, vec![], &v[..1]),
            )?;
            // TF.js's oneHot ignores `axis` and appends the new axis last: a Transpose moves
            // it where the IR puts it. TF needs TI (its default is int64; indices are int32).
            let out_rank = g.ty(n.inputs[0]).rank() + 1;
            let axis = crate::ir::ops::norm_axis(o.axis, out_rank)?;
            let last = axis + 1 == out_rank;
            let attrs = vec![("axis", a_int(-1)), t(dt), ("TI", a_type(DType::I32))];
            let inputs = vec![idx, depth, on, off];
            let y = gx.node(if last { "" } else { "last" }, "OneHot", inputs, attrs);
            if last {
                y
            } else {
                let mut perm: Vec<i64> = (0..out_rank as i64 - 1).collect();
                perm.insert(axis, out_rank as i64 - 1);
                let perm = gx.ints("perm", &perm)?;
                gx.node("", "Transpose", vec![y, perm], vec![t(dt)])
            }
        }
        Op::Trilu(tr) => {
            if tr.k != 0 {
                return Err("Trilu with k != 0 has no TF.js form".into());
            }
            let x = gx.r(n.inputs[0])?;
            let (lo, hi) = if tr.upper { (0, -1) } else { (-1, 0) };
            let lo = gx.int("num_lower", lo)?;
            let hi = gx.int("num_upper", hi)?;
            gx.node("", "MatrixBandPart", vec![x, lo, hi], vec![t(dt)])
        }
        Op::NonMaxSuppression(s) => super::select::nms(gx, n, s)?,
        Op::ShapeOf(s) => {
            let x = gx.r(n.inputs[0])?;
            let rank = g.ty(n.inputs[0]).rank();
            let full = s.start == 0 && s.end == rank;
            let y = gx.node(
                if full { "" } else { "shape" },
                "Shape",
                vec![x],
                vec![t(in_dt), ("out_type", a_type(DType::I32))],
            );
            if full {
                y
            } else {
                let b = gx.ints("begin", &[s.start as i64])?;
                let e = gx.ints("size", &[(s.end - s.start) as i64])?;
                gx.node("", "Slice", vec![y, b, e], vec![t(DType::I32)])
            }
        }
        Op::ConstantOfShape(c) => {
            let shape = gx.r(n.inputs[0])?;
            let v = c.value.reshaped(vec![]);
            let v = gx.konst(&format!("{}/value", gx.base), v)?;
            gx.node("", "Fill", vec![shape, v], vec![t(dt)])
        }
        Op::Range => {
            let ins = inputs(gx, n)?;
            gx.node("", "Range", ins, vec![("Tidx", a_type(dt))])
        }
        Op::Reduce(r) => {
            let op = match r.kind {
                ReduceKind::Mean => "Mean",
                ReduceKind::Sum => "Sum",
                ReduceKind::Max => "Max",
                ReduceKind::Min => "Min",
                ReduceKind::Prod => "Prod",
                ReduceKind::L1
                | ReduceKind::L2
                | ReduceKind::LogSum
                | ReduceKind::LogSumExp
                | ReduceKind::SumSquare => {
                    return Err("reduction not lowered by legalization".into())
                }
            };
            let axes: Vec<i64> = r.axes.iter().map(|&a| a as i64).collect();
            reduce(gx, n, op, &axes, r.keep_dims)?
        }
        Op::Lstm(r) | Op::Gru(r) => {
            // Legalization unrolled every recurrent layer it could; say why not this one.
            let lstm = matches!(n.op, Op::Lstm(_));
            return Err(crate::passes::rnn::why_not(g, n, r, lstm)
                .unwrap_or_else(|| "recurrent layer not unrolled".into()));
        }
        Op::QuantizeLinear(q) => super::quant::quantize(gx, n, q)?,
        Op::DequantizeLinear(q) => super::quant::dequantize(gx, n, q)?,
        Op::DynamicQuantizeLinear
        | Op::ConvInteger(_)
        | Op::MatMulInteger
        | Op::QLinearConv(_)
        | Op::QLinearMatMul => {
            return Err(crate::passes::integer::why_not(g, n)
                .unwrap_or_else(|| "integer op not lowered to float ops".into()))
        }
        Op::If(i) => return super::control::emit_if(gx, n, i),
        Op::Loop(l) => return super::control::emit_loop(gx, n, l),
        Op::Dynamic(d) => return super::dynamic::emit(gx, n, d),
    };
    gx.bind(n.outputs[0], y);
    Ok(())
}

fn inputs(gx: &mut Gx, n: &Node) -> Result<Vec<String>, String> {
    n.inputs.iter().map(|&v| gx.r(v)).collect()
}

fn reduce(gx: &mut Gx, n: &Node, op: &str, axes: &[i64], keep: bool) -> Result<String, String> {
    let x = gx.r(n.inputs[0])?;
    if axes.is_empty() {
        let dt = gx.g.ty(n.inputs[0]).dtype;
        return Ok(gx.node("", "Identity", vec![x], vec![("T", a_type(dt))]));
    }
    let dt = gx.g.ty(n.inputs[0]).dtype;
    let axes = gx.ints("axes", axes)?;
    Ok(gx.node(
        "",
        op,
        vec![x, axes],
        vec![
            ("T", a_type(dt)),
            ("keep_dims", a_bool(keep)),
            ("Tidx", a_type(DType::I32)),
        ],
    ))
}

/// Gather indices: constant negative indices are made positive (TF does not wrap them).
fn gather_indices(gx: &mut Gx, n: &Node, axis: usize) -> Result<String, String> {
    let g = gx.g;
    let Some(t) = g.constant(n.inputs[1]) else {
        // Run-time indices: ONNX counts negative ones from the end, TF does not.
        let dim = g.ty(n.inputs[0]).shape[axis].fixed();
        let idx = gx.r(n.inputs[1])?;
        return match dim {
            Some(d) if g.ty(n.inputs[1]).dtype.is_int() => wrap_negative(gx, idx, d as i64),
            _ => Ok(idx),
        };
    };
    let v = t.to_i64s().ok_or("indices must be integers")?;
    if v.iter().all(|&i| i >= 0) {
        return gx.r(n.inputs[1]);
    }
    let dim = g.ty(n.inputs[0]).shape[axis]
        .fixed()
        .ok_or("negative indices into a dimension of unknown size")? as i64;
    let fixed: Vec<i64> = v.iter().map(|&i| if i < 0 { i + dim } else { i }).collect();
    gx.ints_shaped("indices", &fixed, t.shape.clone())
}

/// `i < 0 ? i + size : i` on int32 indices (values below `-size` stay negative, out of range,
/// as ONNX leaves them).
fn wrap_negative(gx: &mut Gx, idx: String, size: i64) -> Result<String, String> {
    let t = ("T", a_type(DType::I32));
    let zero = gx.int("zero", 0)?;
    let size = gx.int("size", size)?;
    let neg = gx.node("negative", "Less", vec![idx.clone(), zero], vec![t.clone()]);
    let wrapped = gx.node("wrapped", "AddV2", vec![idx.clone(), size], vec![t.clone()]);
    Ok(gx.node("indices", "SelectV2", vec![neg, wrapped, idx], vec![t]))
}

fn strided_slice(gx: &mut Gx, n: &Node, s: &Slice) -> Result<String, String> {
    let g = gx.g;
    let shape = g.ty(n.inputs[0]).shape.clone();
    let rank = shape.len();
    let (mut begin, mut end, mut strides) = (vec![0i64; rank], vec![0i64; rank], vec![1i64; rank]);
    let (mut begin_mask, mut end_mask) = (0i64, 0i64);
    let clamp32 = |v: i64| v.clamp(i32::MIN as i64 + 1, i32::MAX as i64);
    let mut sliced = vec![false; rank];
    for a in &s.axes {
        sliced[a.axis] = true;
        strides[a.axis] = a.step;
        match shape[a.axis].fixed() {
            Some(d) => {
                let d = d as i64;
                let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
                if a.step > 0 {
                    begin[a.axis] = norm(a.start).clamp(0, d);
                    end[a.axis] = norm(a.end).clamp(0, d);
                } else {
                    let b = norm(a.start).clamp(-1, d - 1);
                    let e = norm(a.end).clamp(-1, d - 1);
                    if b < 0 {
                        // Empty: begin 0, end 0.
                        begin[a.axis] = 0;
                        end[a.axis] = 0;
                    } else {
                        begin[a.axis] = b;
                        if e < 0 {
                            end_mask |= 1 << a.axis;
                        } else {
                            end[a.axis] = e;
                        }
                    }
                }
            }
            None => {
                begin[a.axis] = clamp32(a.start);
                if (a.step > 0 && a.end >= i32::MAX as i64)
                    || (a.step < 0 && a.end <= i32::MIN as i64)
                {
                    end_mask |= 1 << a.axis;
                } else {
                    end[a.axis] = clamp32(a.end);
                }
            }
        }
    }
    for (ax, &done) in sliced.iter().enumerate() {
        if !done {
            begin_mask |= 1 << ax;
            end_mask |= 1 << ax;
        }
    }
    let x = gx.r(n.inputs[0])?;
    let b = gx.ints("begin", &begin)?;
    let e = gx.ints("end", &end)?;
    let st = gx.ints("strides", &strides)?;
    let dt = g.ty(n.inputs[0]).dtype;
    Ok(gx.node(
        "",
        "StridedSlice",
        vec![x, b, e, st],
        vec![
            ("T", a_type(dt)),
            ("Index", a_type(DType::I32)),
            ("begin_mask", a_int(begin_mask)),
            ("end_mask", a_int(end_mask)),
            ("ellipsis_mask", a_int(0)),
            ("new_axis_mask", a_int(0)),
            ("shrink_axis_mask", a_int(0)),
        ],
    ))
}

fn pad(gx: &mut Gx, n: &Node, p: &crate::ir::ops::Pad) -> Result<String, String> {
    if p.pads.iter().any(|&(b, e)| b < 0 || e < 0) {
        return Err("negative padding (cropping) is not written".into());
    }
    let dt = gx.g.ty(n.inputs[0]).dtype;
    let flat: Vec<i64> = p.pads.iter().flat_map(|&(b, e)| [b, e]).collect();
    let x = gx.r(n.inputs[0])?;
    let pads = gx.ints_shaped("paddings", &flat, vec![p.pads.len(), 2])?;
    let t = ("T", a_type(dt));
    Ok(match p.mode {
        PadMode::Constant if p.value == 0.0 => gx.node("", "Pad", vec![x, pads], vec![t]),
        PadMode::Constant => {
            let v = crate::ir::Tensor::from_f64s(dt, vec![], &[p.value]);
            let v = gx.konst(&format!("{}/value", gx.base), v)?;
            gx.node("", "PadV2", vec![x, pads, v], vec![t])
        }
        PadMode::Reflect => gx.node(
            "",
            "MirrorPad",
            vec![x, pads],
            vec![t, ("mode", a_str("REFLECT"))],
        ),
        // Edge padding by one is symmetric mirroring.
        PadMode::Edge if p.pads.iter().all(|&(b, e)| b <= 1 && e <= 1) => gx.node(
            "",
            "MirrorPad",
            vec![x, pads],
            vec![t, ("mode", a_str("SYMMETRIC"))],
        ),
        PadMode::Edge => return Err("edge padding wider than 1 has no TF.js op".into()),
        PadMode::Wrap => return Err("wrap padding has no TF.js op".into()),
    })
}

/// NHWC space-to-depth as reshape `[N, H/b, b, W/b, b, C]`, transpose `[0, 1, 3, 2, 4, 5]`,
/// reshape `[N, H/b, W/b, b·b·C]` (TF.js has no SpaceToDepth kernel).
fn space_to_depth(
    gx: &mut Gx,
    n: &Node,
    block: usize,
    layout: crate::ir::Layout,
) -> Result<String, String> {
    let g = gx.g;
    let s = g.ty(n.inputs[0]).shape.clone();
    if layout != crate::ir::Layout::Nhwc || s.len() != 4 {
        return Err("only NHWC space-to-depth is written".into());
    }
    let fixed = |d: &Dim| {
        d.fixed()
            .ok_or("height, width and channels must be fixed".to_string())
    };
    let (h, w, c) = (
        fixed(&s[1])? as i64,
        fixed(&s[2])? as i64,
        fixed(&s[3])? as i64,
    );
    let b = block as i64;
    let dt = g.ty(n.inputs[0]).dtype;
    let x = gx.r(n.inputs[0])?;
    let batch = s[0].fixed().map_or(-1, |v| v as i64);
    let s1 = gx.ints("blocks", &[batch, h / b, b, w / b, b, c])?;
    let r = gx.node("blocks", "Reshape", vec![x, s1], vec![("T", a_type(dt))]);
    let perm = gx.ints("perm", &[0, 1, 3, 2, 4, 5])?;
    let tr = gx.node("move", "Transpose", vec![r, perm], vec![("T", a_type(dt))]);
    let s2 = gx.ints("shape", &[batch, h / b, w / b, b * b * c])?;
    Ok(gx.node("", "Reshape", vec![tr, s2], vec![("T", a_type(dt))]))
}
