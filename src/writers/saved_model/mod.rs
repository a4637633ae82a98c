//! SavedModel writer: a folder TF Serving and `tf.saved_model.load` load, holding
//!
//! - `saved_model.pb`: one MetaGraphDef tagged `serve`, a TF1-style graph of standard TF ops
//!   (the GraphDef `writers::tf_graph` builds for TF.js graph models too: NHWC inside, since
//!   TF's CPU kernels run convolutions and pools only in NHWC), `Placeholder` inputs, weights as
//!   resource variables restored by a saver (`variables.rs`), and the `serving_default`
//!   SignatureDef keyed by the source's input and output names (symbolic dims as -1);
//! - `variables/`: the weights as a tensor bundle (`bundle.rs`), so the `.pb` stays small and
//!   models past protobuf's 2 GiB limit can be written.
//!
//! Float weights of more than one element become variables; scalars, integer and boolean
//! constants (shapes, axes, indices) stay `Const` nodes, which is where TF's shape inference
//! and the converters' constant folding look for them. Constants inside loop and branch bodies
//! (functions) stay `Const` too: a function cannot read a graph variable without capturing it.
//! Encoding is deterministic (`encode.rs`): identical inputs give identical bytes.

mod bundle;
mod encode;
mod variables;

use crate::error::{Error, Result, Unsupported};
use crate::formats::tf_json;
use crate::ir::{DType, Graph, Tensor};
use crate::writers::folder::AtomicDir;
use crate::writers::{io_err, tf_graph, WriteReport, Writer};
use std::collections::HashMap;
use std::path::Path;
use tract_tensorflow::tfpb::tensorflow::{
    meta_graph_def::MetaInfoDef, GraphDef, MetaGraphDef, SavedModel, VersionDef,
};
use variables::Variable;

/// The signature key TF Serving and `tf.saved_model.load` use by default.
pub const SIGNATURE_KEY: &str = "serving_default";
const PREDICT_METHOD: &str = "tensorflow/serving/predict";

#[derive(Clone, Debug, Default)]
pub struct SavedModelWriter;

/// Whether a graph constant becomes a variable (see the module comment).
fn is_variable(t: &Tensor) -> bool {
    t.dtype == DType::F32 && t.shape.iter().product::<usize>() > 1
}

/// A constant in the element type the graph gives it (`tf_graph` writes every float as
/// float32 and every integer as int32, as TF.js holds them): converted when it is not.
fn as_graph_dtype(t: &Tensor) -> Result<Tensor, String> {
    match t.dtype {
        DType::F32 | DType::I32 | DType::Bool => Ok(t.clone()),
        DType::F16 | DType::BF16 | DType::F64 => {
            Ok(Tensor::from_f64s(DType::F32, t.shape.clone(), &t.to_f64s()))
        }
        DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::U32 | DType::I64 | DType::U64 => {
            let v = t.to_i64s().unwrap_or_default();
            match v.iter().find(|&&x| i32::try_from(x).is_err()) {
                Some(x) => Err(format!(
                    "holds {x}, outside int32 (the graph's integers are int32)"
                )),
                None if v.len() == t.len() => {
                    Ok(Tensor::from_i64s(DType::I32, t.shape.clone(), &v))
                }
                None => Err(format!("holds {} values that are not integers", t.dtype)),
            }
        }
    }
}

/// Replaces the variable-worthy `Const` nodes of `gd` by variables and adds the saver; returns
/// the variables (in key order) and the saver's parts.
fn lift_variables(
    gd: &mut GraphDef,
    weights: &HashMap<String, Tensor>,
) -> (Vec<Variable>, Option<variables::Saver>) {
    let mut vars = Vec::new();
    let mut renamed = HashMap::new();
    gd.node.retain(|n| {
        let lift = n.op == "Const" && weights.get(&n.name).is_some_and(is_variable);
        if lift {
            vars.push(Variable {
                name: n.name.clone(),
                tensor: weights[&n.name].clone(),
            });
            renamed.insert(n.name.clone(), format!("{}/Read/ReadVariableOp", n.name));
        }
        !lift
    });
    if vars.is_empty() {
        return (vars, None);
    }
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    variables::redirect(&mut gd.node, &renamed);
    let saver = variables::saver(&vars);
    gd.node.extend(saver.nodes.iter().cloned());
    (vars, Some(saver))
}

/// The SavedModel proto of a legalized graph, and its variables; or every node it cannot
/// express.
/// `checking`: only what cannot be written matters (see `tf_graph::build_as`).
fn build(g: &Graph, checking: bool) -> Result<(SavedModel, Vec<Variable>), Vec<Unsupported>> {
    let built = tf_graph::build_as(g, tf_graph::Dialect::Tf, checking)?;
    let as_problem = |reason: String| {
        vec![Unsupported {
            op: "Graph".into(),
            node: String::new(),
            reason,
        }]
    };
    let mut weights = HashMap::new();
    let mut problems = Vec::new();
    for w in &built.weights {
        match as_graph_dtype(&w.tensor) {
            Ok(t) => {
                weights.insert(w.name.clone(), t);
            }
            Err(reason) => problems.push(Unsupported {
                op: "Const".into(),
                node: w.name.clone(),
                reason,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Constants that become variables are not copied into their Const nodes first.
    let lifted = |name: &str| weights.get(name).is_some_and(is_variable);
    let mut gd =
        tf_json::graph_def_except(&built.topology, &weights, &lifted).map_err(as_problem)?;
    gd.versions = Some(VersionDef {
        producer: tf_graph::PRODUCER as i32,
        ..Default::default()
    });
    let (vars, saver) = lift_variables(&mut gd, &weights);
    let mut sig = tf_json::signature(&built.signature).map_err(as_problem)?;
    sig.method_name = PREDICT_METHOD.into();
    let mut mg = MetaGraphDef {
        meta_info_def: Some(MetaInfoDef {
            tags: vec!["serve".into()],
            ..Default::default()
        }),
        graph_def: Some(gd),
        ..Default::default()
    };
    mg.signature_def.insert(SIGNATURE_KEY.into(), sig);
    if let Some(s) = saver {
        mg.saver_def = Some(s.saver_def);
        mg.collection_def.insert("variables".into(), s.collection);
    }
    let sm = SavedModel {
        saved_model_schema_version: 1,
        meta_graphs: vec![mg],
    };
    Ok((sm, vars))
}

/// What a SavedModel folder written here holds (an existing folder holding anything else is
/// not replaced).
fn owned(name: &str) -> bool {
    matches!(name, "saved_model.pb" | "variables")
}

impl Writer for SavedModelWriter {
    fn name(&self) -> &'static str {
        "saved_model"
    }

    fn legalize(&self, g: &mut Graph) -> Result<()> {
        // TF Serving runs float graphs: a quantized source's weights are written as the float
        // values they stand for (variables like any other), not as integers and arithmetic.
        crate::passes::dequantize::fold_weight_dequantization(g);
        tf_graph::legalize(g, "SavedModel")
    }

    fn check(&self, g: &Graph) -> Vec<Unsupported> {
        build(g, true).err().unwrap_or_default()
    }

    fn write(&self, g: &Graph, out: &Path) -> Result<WriteReport> {
        let (sm, vars) = build(g, false).map_err(|items| Error::Unsupported {
            file: out.display().to_string(),
            items,
        })?;
        let nodes = sm
            .meta_graphs
            .first()
            .and_then(|m| m.graph_def.as_ref())
            .map_or(0, |gd| gd.node.len());
        let pb = encode::saved_model(&sm);
        let dir = AtomicDir::create(out, "SavedModel", &owned)?;
        let pb_path = dir.path().join("saved_model.pb");
        std::fs::write(&pb_path, &pb).map_err(io_err(&pb_path))?;
        let mut files = vec![out.join("saved_model.pb")];
        let mut bytes = pb.len() as u64;
        if !vars.is_empty() {
            let vdir = dir.path().join("variables");
            std::fs::create_dir(&vdir).map_err(io_err(&vdir))?;
            bytes += bundle::write(&vdir, &vars)?;
            let out_vars = out.join("variables");
            files.push(out_vars.join("variables.data-00000-of-00001"));
            files.push(out_vars.join("variables.index"));
        }
        dir.commit()?;
        Ok(WriteReport {
            files,
            bytes,
            nodes,
        })
    }
}
