//! A TF GraphDef built from the IR legalized to NHWC (the shared `passes::nhwc` rewrites), in
//! protobuf's JSON mapping: the TF.js graph model's `modelTopology` (`writers::tfjs::graph`),
//! and, turned into protos by `formats::tf_json`, the SavedModel writer's graph. Both formats
//! run the same TF ops, so both share this builder and its [`legalize`].
//!
//! - `Placeholder` per graph input (source order, `-1` for symbolic dims), `Const` per constant
//!   (values in the weights manifest under the node's name: that is where tfjs-converter looks
//!   them up), one node or a few per IR node (ops.rs, nn.rs), an `Identity` per output named
//!   after the source's output.
//! - `signature`: `inputs`/`outputs` keyed by the source's names, each `{name: "node:0", dtype,
//!   tensorShape}`, so `model.execute({source_name: x})` works and outputs come back by name.
//!   `model.inputs` lists them in the JSON object's key order (sorted); the Placeholders and
//!   Identities stand in the source's order in `modelTopology.node`.
//! - Integers are int32 and floats float32 (TF.js has no other numeric dtypes): int64 constants
//!   outside int32 are refused, f16/f64 values are computed in float32.

mod activation;
mod control;
mod conv3d;
mod dynamic;
mod emit;
mod index;
mod nn;
mod ops;
mod outputs;
mod pool;
mod quant;
mod resize;
mod select;

use crate::error::{Result, Unsupported};
use crate::ir::{Graph, Tensor};
use crate::passes::nhwc;
pub use emit::Dialect;
use emit::{a_type, shape_json, tf_dtype, Gx};
use serde_json::{json, Map, Value};

/// A constant of the graph: a `Const` node named `name` whose value is `tensor`.
#[derive(Clone, Debug)]
pub struct NamedWeight {
    pub name: String,
    pub tensor: Tensor,
}

/// The GraphDef `versions.producer` written: TF 2.x's graph version (TF.js reads only that
/// `versions` exists; TF checks that its kernels are at least as new).
pub const PRODUCER: i64 = 1882;

/// Clips TF.js runs as one op (`activation::activation`: Relu for `[0, ∞)`, Relu6,
/// ClipByValue for two bounds); others become Maximum/Minimum.
fn native_clip(min: Option<f32>, max: Option<f32>) -> bool {
    match (min, max) {
        (Some(lo), None) => lo == 0.0,
        (Some(_), Some(_)) => true,
        (None, _) => false,
    }
}

/// A graph model's nodes, constants and signature.
pub struct Built {
    pub topology: Value,
    pub signature: Value,
    pub weights: Vec<NamedWeight>,
    pub nodes: usize,
}

/// Builds the GraphDef of a legalized graph in `dialect`, or lists every node it cannot express.
pub fn build(g: &Graph, dialect: Dialect) -> Result<Built, Vec<Unsupported>> {
    build_as(g, dialect, false)
}

/// Every node [`build`] cannot express, without moving any weight (a writer's `check`).
pub fn check(g: &Graph, dialect: Dialect) -> Vec<Unsupported> {
    build_as(g, dialect, true).err().unwrap_or_default()
}

/// [`build`]; `checking` as [`Gx::checking`]: the result only says what cannot be written.
pub fn build_as(g: &Graph, dialect: Dialect, checking: bool) -> Result<Built, Vec<Unsupported>> {
    let mut gx = Gx::new(g, dialect);
    gx.checking = checking;
    let mut problems = Vec::new();
    let mut sig_in = Map::new();
    for &v in &g.inputs {
        let value = g.value(v);
        let name = gx.fresh(&value.name);
        gx.named_node(
            name.clone(),
            "Placeholder",
            vec![],
            vec![
                ("dtype", a_type(value.ty.dtype)),
                ("shape", json!({ "shape": shape_json(&value.ty.shape) })),
            ],
        );
        gx.bind(v, name.clone());
        sig_in.insert(value.name.clone(), tensor_info(&name, g, v));
    }
    // Output names are taken before any op node can take them.
    let out_names: Vec<String> = g
        .outputs
        .iter()
        .map(|&v| gx.fresh(&g.value(v).name))
        .collect();
    let (plan, absorbed) = nn::fuse_plan(g, dialect);
    for (i, n) in g.nodes.iter().enumerate() {
        if absorbed.contains(&i) {
            continue;
        }
        gx.base = emit::sanitize(&n.name);
        if let Err(reason) = ops::emit(&mut gx, n, plan.get(&i)) {
            problems.push(Unsupported {
                op: n.op.name(),
                node: n.name.clone(),
                reason,
            });
            // Later users of these values report their own problems, not this one.
            for &o in &n.outputs {
                if !gx.is_bound(o) {
                    gx.bind(o, format!("{}/unsupported", gx.base));
                }
            }
        }
    }
    let mut sig_out = Map::new();
    for (&v, name) in g.outputs.iter().zip(out_names) {
        gx.base = name.clone();
        match gx.r(v) {
            Ok(x) => {
                let dt = g.ty(v).dtype;
                gx.named_node(name.clone(), "Identity", vec![x], vec![("T", a_type(dt))]);
                sig_out.insert(g.value(v).name.clone(), tensor_info(&name, g, v));
            }
            Err(reason) => problems.push(Unsupported {
                op: "Output".into(),
                node: g.value(v).name.clone(),
                reason,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let nodes = gx.nodes.len();
    Ok(Built {
        topology: json!({
            "node": gx.nodes,
            "library": library(std::mem::take(&mut gx.functions)),
            "versions": { "producer": PRODUCER },
        }),
        signature: json!({ "inputs": sig_in, "outputs": sig_out }),
        weights: gx.weights,
        nodes,
    })
}

/// `library` of the GraphDef: the functions control flow calls (none: an empty object, as before).
fn library(functions: Vec<Value>) -> Value {
    match functions.is_empty() {
        true => json!({}),
        false => json!({ "function": functions }),
    }
}

pub fn tensor_info(node: &str, g: &Graph, v: crate::ir::ValueId) -> Value {
    let ty = g.ty(v);
    json!({
        "name": format!("{node}:0"),
        "dtype": tf_dtype(ty.dtype),
        "tensorShape": shape_json(&ty.shape),
    })
}

/// Rewrites `g` into the form [`build`] writes: NHWC, integer ops and recurrent layers lowered,
/// loop and branch bodies likewise. `what` names the target in messages.
pub fn legalize(g: &mut Graph, what: &str) -> Result<()> {
    let fail = |e: String| crate::error::failed(format!("{what} legalization: {e}"));
    // The same lowerings as TFLite's, in the same places (see its legalize): integer ops
    // before the layout pass, recurrent layers (a TF graph runs them as While loops) after
    // it. Batch norms that arrive as arithmetic fold into their convolutions in `prepare`.
    g.remove_dead();
    crate::passes::integer::lower_integer_ops(g).map_err(fail)?;
    crate::passes::cleanup::fold_constants(g);
    nhwc::prepare(g, false, nhwc::TF_KERNELS).map_err(fail)?;
    crate::passes::rnn_loop::loop_rnns(g, &|_, _| false).map_err(fail)?;
    crate::passes::loop_scan::carry_collected(g).map_err(fail)?;
    crate::passes::rnn::unroll_rnns(g).map_err(fail)?;
    nhwc::finish(g, &native_clip, true).map_err(fail)?;
    crate::passes::layout::hwio_kernels(g);
    // Loop and branch bodies become functions written the same way.
    crate::passes::for_each_body(g, &mut |body| legalize(body, what))
}
