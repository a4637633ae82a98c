//! onnxruntime's float contrib ops (domain `com.microsoft`) that its own graph optimizer and
//! transformer optimizer write into the models they save, read as the standard ops they fuse:
//! FusedConv/FusedGemm (Conv/Gemm, `+ Z`, then the activation), FusedMatMul (a scaled MatMul
//! with transposes), Gelu, FastGelu and BiasGelu (GELU, exact or tanh, of `x + bias`),
//! QuickGelu (`x·σ(αx)`), BiasAdd, SkipLayerNormalization (LayerNormalization of
//! `input + skip + bias`) and the contrib LayerNormalization. Each is handed to the standard
//! op's handler as a rewritten node, so attributes mean what they mean there.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::{BinaryOp, Transpose, UnaryOp};
use crate::ir::{Op, ValueId};
use tract_onnx::pb::{AttributeProto, NodeProto};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "com.microsoft:FusedConv" => fused_conv,
        "com.microsoft:FusedGemm" => fused_gemm,
        "com.microsoft:FusedMatMul" => fused_matmul,
        "com.microsoft:Gelu" | "com.microsoft:BiasGelu" | "com.microsoft:FastGelu" => gelu,
        "com.microsoft:QuickGelu" => quick_gelu,
        "com.microsoft:BiasAdd" => bias_add,
        "com.microsoft:SkipLayerNormalization" => skip_layer_norm,
        "com.microsoft:LayerNormalization" => contrib_layer_norm,
        _ => return None,
    })
}

/// Runs the standard op `op_type` on `inputs` with the node's attributes but `drop`, as a node
/// named `<node>/<suffix>` (or the node's own name when `suffix` is empty).
pub fn standard(
    imp: &mut Importer,
    ctx: &NodeCtx,
    op_type: &str,
    inputs: Vec<Option<ValueId>>,
    drop: &[&str],
    extra: Vec<AttributeProto>,
    suffix: &str,
) -> NodeResult<Vec<ValueId>> {
    let mut node: NodeProto = ctx.node.clone();
    node.op_type = op_type.to_string();
    node.domain = String::new();
    node.attribute.retain(|a| !drop.contains(&a.name.as_str()));
    node.attribute.extend(extra);
    node.input = inputs
        .iter()
        .enumerate()
        .map(|(i, v)| v.map_or(String::new(), |_| format!("{}:{i}", ctx.name)))
        .collect();
    node.output.truncate(1);
    let Some(h) = super::handler(op_type) else {
        return unsupported(format!("no converter for {op_type}"));
    };
    let name = if suffix.is_empty() {
        ctx.name.clone()
    } else {
        format!("{}/{suffix}", ctx.name)
    };
    let sub = NodeCtx {
        node: &node,
        inputs,
        name,
    };
    h(imp, &sub)
}

pub fn float_attr(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        f,
        ..Default::default()
    }
}

fn string_attr(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// The fused `activation` (MLAS's set) applied to `y` as its standard op.
fn fused_activation(imp: &mut Importer, ctx: &NodeCtx, y: ValueId) -> NodeResult<ValueId> {
    let act = ctx.string("activation", "");
    // FusedConv lists the parameters in `activation_params`; FusedGemm names them
    // `activation_alpha` and `activation_beta`.
    let params = match ctx.attr("activation_params") {
        Some(a) => a.floats.clone(),
        None => ["activation_alpha", "activation_beta"]
            .iter()
            .map_while(|n| ctx.attr(n).map(|a| a.f))
            .collect(),
    };
    let param = |i: usize| {
        params.get(i).copied().ok_or_else(|| {
            NodeError::Invalid(format!("activation {act} without activation_params[{i}]"))
        })
    };
    let (op_type, attrs) = match act.as_str() {
        "" => return Ok(y),
        "Relu" | "Tanh" | "Sigmoid" => (act.as_str(), vec![]),
        "LeakyRelu" => ("LeakyRelu", vec![float_attr("alpha", param(0)?)]),
        "HardSigmoid" => (
            "HardSigmoid",
            vec![
                float_attr("alpha", param(0)?),
                float_attr("beta", param(1)?),
            ],
        ),
        "Clip" => {
            let mut b = Build::new(imp, &ctx.name);
            let dt = b.imp.g.ty(y).dtype;
            let lo = b.scalar("clip_min", dt, param(0)? as f64);
            let hi = b.scalar("clip_max", dt, param(1)? as f64);
            let y = b.bin(BinaryOp::Max, y, lo)?;
            return b.bin(BinaryOp::Min, y, hi);
        }
        other => return unsupported(format!("fused activation {other}")),
    };
    let drop_all: Vec<&str> = ctx.node.attribute.iter().map(|a| a.name.as_str()).collect();
    let out = standard(
        imp,
        ctx,
        op_type,
        vec![Some(y)],
        &drop_all,
        attrs,
        "activation",
    )?;
    out.into_iter()
        .next()
        .ok_or_else(|| NodeError::Invalid("activation gave no output".into()))
}

const FUSED: [&str; 5] = [
    "activation",
    "activation_params",
    "activation_alpha",
    "activation_beta",
    "activation_gamma",
];

/// `activation(op(X, W, B) + Z)`.
fn fused(imp: &mut Importer, ctx: &NodeCtx, op_type: &str) -> NodeResult<Vec<ValueId>> {
    let inputs = (0..3).map(|i| ctx.opt_input(i)).collect();
    let mut y = first(standard(imp, ctx, op_type, inputs, &FUSED, vec![], "op")?)?;
    if let Some(z) = ctx.opt_input(3) {
        y = Build::new(imp, &ctx.name).bin(BinaryOp::Add, y, z)?;
    }
    Ok(vec![fused_activation(imp, ctx, y)?])
}

fn first(v: Vec<ValueId>) -> NodeResult<ValueId> {
    v.into_iter()
        .next()
        .ok_or_else(|| NodeError::Invalid("no output".into()))
}

fn fused_conv(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    fused(imp, ctx, "Conv")
}

fn fused_gemm(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    fused(imp, ctx, "Gemm")
}

/// `alpha · op(A) · op(B)`, op a transpose of the last two axes when `transA`/`transB`.
/// `transBatchA/B` (batch axes moved in with the matrix ones) are refused.
fn fused_matmul(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    if ctx.int("transBatchA", 0) != 0 || ctx.int("transBatchB", 0) != 0 {
        return unsupported("FusedMatMul with transBatchA/transBatchB");
    }
    let mut b = Build::new(imp, &ctx.name);
    let operand = |b: &mut Build, i: usize, flag: &str| -> NodeResult<ValueId> {
        let x = ctx.input(i)?;
        let r = b.imp.g.ty(x).rank();
        if ctx.int(flag, 0) == 0 || r < 2 {
            return Ok(x);
        }
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        b.op("transpose", Op::Transpose(Transpose { perm }), vec![x])
    };
    let a = operand(&mut b, 0, "transA")?;
    let w = operand(&mut b, 1, "transB")?;
    let mut y = b.op(
        "matmul",
        Op::MatMul(crate::ir::ops::MatMul::default()),
        vec![a, w],
    )?;
    let alpha = ctx.float("alpha", 1.0);
    if alpha != 1.0 {
        let dt = b.imp.g.ty(y).dtype;
        let k = b.scalar("alpha", dt, alpha as f64);
        y = b.bin(BinaryOp::Mul, y, k)?;
    }
    Ok(vec![y])
}

/// GELU of `x + bias` (bias optional for FastGelu, required for BiasGelu, absent for Gelu);
/// FastGelu is the tanh approximation.
fn gelu(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let mut x = ctx.input(0)?;
    if let Some(bias) = ctx.opt_input(1) {
        x = Build::new(imp, &ctx.name).bin(BinaryOp::Add, x, bias)?;
    }
    let approx = if ctx.node.op_type == "FastGelu" {
        "tanh"
    } else {
        "none"
    };
    let drop_all: Vec<&str> = ctx.node.attribute.iter().map(|a| a.name.as_str()).collect();
    let attrs = vec![string_attr("approximate", approx)];
    standard(imp, ctx, "Gelu", vec![Some(x)], &drop_all, attrs, "")
}

fn quick_gelu(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let alpha = ctx.float("alpha", 1.702);
    let mut b = Build::new(imp, &ctx.name);
    let dt = b.imp.g.ty(x).dtype;
    let k = b.scalar("alpha", dt, alpha as f64);
    let ax = b.bin(BinaryOp::Mul, x, k)?;
    let s = b.un(UnaryOp::Sigmoid, ax)?;
    Ok(vec![b.bin(BinaryOp::Mul, x, s)?])
}

/// `X + bias + skip`.
fn bias_add(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let mut b = Build::new(imp, &ctx.name);
    let y = b.bin(BinaryOp::Add, ctx.input(0)?, ctx.input(1)?)?;
    Ok(vec![b.bin(BinaryOp::Add, y, ctx.input(2)?)?])
}

/// LayerNormalization over the last axis of `input + skip (+ bias)`, `epsilon` default 1e-12;
/// the fourth output is that sum. The mean and inverse-deviation outputs are refused.
fn skip_layer_norm(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let used = |i: usize| ctx.node.output.get(i).is_some_and(|o| !o.is_empty());
    if used(1) || used(2) {
        return unsupported("SkipLayerNormalization mean / inv_std_var outputs");
    }
    let mut b = Build::new(imp, &ctx.name);
    let mut sum = b.bin(BinaryOp::Add, ctx.input(0)?, ctx.input(1)?)?;
    if let Some(bias) = ctx.opt_input(4) {
        sum = b.bin(BinaryOp::Add, sum, bias)?;
    }
    let eps = float_attr("epsilon", ctx.float("epsilon", 1e-12));
    let inputs = vec![Some(sum), Some(ctx.input(2)?), ctx.opt_input(3)];
    let y = first(standard(
        imp,
        ctx,
        "LayerNormalization",
        inputs,
        &["epsilon"],
        vec![eps],
        "",
    )?)?;
    // Outputs bind by position; 1 and 2 are refused above when used, so any value holds them.
    Ok(vec![y, y, y, sum])
}

/// The contrib LayerNormalization (ORT's fusion target before opset 17) is the standard one;
/// only its mean / inverse-deviation outputs differ in type rules, and the standard handler
/// takes those too.
fn contrib_layer_norm(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let inputs = ctx.inputs.clone();
    let mut node = ctx.node.clone();
    node.domain = String::new();
    let sub = NodeCtx {
        node: &node,
        inputs,
        name: ctx.name.clone(),
    };
    match super::handler("LayerNormalization") {
        Some(h) => h(imp, &sub),
        None => unsupported("no converter for LayerNormalization"),
    }
}
