//! Grappler's fused ops, which TF.js graph models are full of (tensorflowjs_converter runs the
//! remapper before writing): `_FusedConv2D`, `FusedDepthwiseConv2dNative` and `_FusedMatMul`
//! with `fused_ops = [BiasAdd]` or `[BiasAdd, <activation>]`, the bias as input 2 (and PReLU's
//! alpha as input 3). Each becomes the plain op, an add of the bias and the activation, through
//! the plain ops' own handlers.

use super::super::tensor::TfNode;
use super::{elementwise, nn, Handler};
use crate::ir::ops::{Activation, BinaryOp};
use crate::ir::{Op, ValueId};
use crate::readers::builder::{unsupported, GraphBuilder, NodeResult};
use tract_tensorflow::tfpb::tensorflow::{attr_value, AttrValue, NodeDef};

pub fn handler(op: &str) -> Option<Handler> {
    match op {
        "_FusedConv2D" | "FusedDepthwiseConv2dNative" | "_FusedMatMul" => Some(fused),
        _ => None,
    }
}

/// Activations a fused op may end with (the ones the elementwise handlers take).
const ACTIVATIONS: &[&str] = &[
    "Relu",
    "Relu6",
    "Elu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Prelu",
];

/// Activations only grappler's oneDNN remapper fuses (x86 TensorFlow builds, as
/// tensorflowjs_converter runs it; MobileNetV3's hard swish): no plain TF op has that name.
const ONEDNN_ACTIVATIONS: &[&str] = &["_FusedHardSwish"];

/// `n`'s definition under another op type, for the plain op's handler.
fn as_op(n: &TfNode, op: &str) -> NodeDef {
    let mut def = n.def.clone();
    def.op = op.to_string();
    def
}

fn fused(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let ops = n.strings("fused_ops");
    let act = match ops
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["BiasAdd"] => None,
        ["BiasAdd", a] if ACTIVATIONS.contains(a) || ONEDNN_ACTIVATIONS.contains(a) => {
            Some(a.to_string())
        }
        _ => return unsupported(format!("fused_ops {ops:?}")),
    };
    let plain = match n.op() {
        "_FusedConv2D" => "Conv2D",
        "FusedDepthwiseConv2dNative" => "DepthwiseConv2dNative",
        _ => "MatMul",
    };
    let Some(h) = nn::handler(plain) else {
        return unsupported(format!("no {plain} handler"));
    };
    let def = as_op(n, plain);
    let main = TfNode {
        def: &def,
        name: format!("{}/{plain}", n.name),
        inputs: vec![n.input(0)?, n.input(1)?],
    };
    let y = h(b, &main)?[0];
    let bias_name = if act.is_some() {
        format!("{}/BiasAdd", n.name)
    } else {
        n.name.clone()
    };
    let y = b.emit(&bias_name, Op::Binary(BinaryOp::Add), vec![y, n.input(2)?])?;
    let Some(act) = act else {
        return Ok(y);
    };
    if let Some(out) = onednn_activation(b, n, &act, y[0])? {
        return Ok(out);
    }
    let mut def = as_op(n, &act);
    // LeakyRelu's slope is `leakyrelu_alpha` on the fused op, `alpha` on the plain one.
    if let Some(a) = n.def.attr.get("leakyrelu_alpha") {
        def.attr.insert("alpha".into(), a.clone());
    } else {
        let v = Some(attr_value::Value::F(0.2));
        def.attr.insert("alpha".into(), AttrValue { value: v });
    }
    let Some(h) = elementwise::handler(&act) else {
        return unsupported(format!("no {act} handler"));
    };
    let mut inputs = y;
    if act == "Prelu" {
        inputs.push(n.input(3)?);
    }
    let last = TfNode {
        def: &def,
        name: n.name.clone(),
        inputs,
    };
    h(b, &last)
}

/// The activations of [`ONEDNN_ACTIVATIONS`] applied to `y`; `None` for any other.
fn onednn_activation(
    b: &mut GraphBuilder,
    n: &TfNode,
    act: &str,
    y: ValueId,
) -> NodeResult<Option<Vec<ValueId>>> {
    let a = match act {
        "_FusedHardSwish" => Activation::HardSwish,
        _ => return Ok(None),
    };
    Ok(Some(b.emit(&n.name, Op::Activation(a), vec![y])?))
}
