//! TensorFlow SavedModel reader: a folder with `saved_model.pb` (a `SavedModel` proto: meta
//! graphs with signatures, the graph, its function library and the object graph) and
//! `variables/` (the checkpoint bundle).
//!
//! A signature (`--signature`, default `serving_default`) names placeholders and output tensors
//! of the outer graph; the calls between them are inlined (`functions.rs`), captured variables are
//! matched through the object graph (`objects.rs`) and read from the bundle (`bundle.rs`) as
//! constants sharing the memory-mapped shards. Signature keys become the graph's input and
//! output names, in sorted key order.

mod bundle;
mod functions;
mod objects;
mod ops;
mod tensor;

use super::{ReadOptions, Reader};
use crate::error::{failed, Error, Result};
use crate::ir::mapped::map_file;
use crate::ir::ops::Reshape;
use crate::ir::{Dim, Op, TensorType};
use functions::{Bound, Importer, Scope};
use prost::Message;
use std::path::{Path, PathBuf};
use tract_tensorflow::tfpb::tensorflow::{
    tensor_info, GraphDef, MetaGraphDef, SavedModel, SignatureDef, TensorInfo,
};

pub const DEFAULT_SIGNATURE: &str = "serving_default";

pub struct SavedModelReader;

/// The SavedModel folder for `path` (the folder itself or its `saved_model.pb`).
fn model_dir(path: &Path) -> PathBuf {
    if path.is_file() {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    }
}

impl Reader for SavedModelReader {
    fn name(&self) -> &'static str {
        "saved_model"
    }

    /// A folder holding `saved_model.pb`, or that file itself, whose bytes start like a
    /// `SavedModel` (field 1 varint schema version or field 2 meta graphs).
    fn probe(&self, path: &Path) -> bool {
        let pb = if path.is_dir() {
            path.join("saved_model.pb")
        } else if path.file_name().is_some_and(|n| n == "saved_model.pb") {
            path.to_path_buf()
        } else {
            return false;
        };
        pb.is_file() && map_file(&pb).is_ok_and(|b| b.is_empty() || b[0] == 0x08 || b[0] == 0x12)
    }

    fn read(&self, path: &Path, opts: &ReadOptions) -> Result<crate::ir::Graph> {
        let dir = model_dir(path);
        let pb_path = dir.join("saved_model.pb");
        let file = dir.display().to_string();
        if !pb_path.is_file() {
            let hint = if dir.join("saved_model.pbtxt").is_file() {
                " (saved_model.pbtxt, the text form, is not supported)"
            } else {
                ""
            };
            return Err(failed(format!(
                "{file}: not a SavedModel: no saved_model.pb in the folder{hint}"
            )));
        }
        let bytes = map_file(&pb_path).map_err(failed)?;
        let sm = SavedModel::decode(&bytes[..]).map_err(|e| {
            failed(format!(
                "{}: not a valid SavedModel ({e})",
                pb_path.display()
            ))
        })?;
        let mg = pick_meta_graph(&sm).ok_or_else(|| {
            failed(format!(
                "{}: the SavedModel has no meta graph",
                pb_path.display()
            ))
        })?;
        let sig_name = opts.signature.as_deref().unwrap_or(DEFAULT_SIGNATURE);
        let sig = pick_signature(mg, sig_name, &file)?;
        let in_file = |e: String| failed(format!("{file}: {e}"));
        let bundle = bundle::Bundle::open(&dir).map_err(failed)?;
        let mut bundle = bundle;
        let ckpt_graph = match bundle.as_mut() {
            Some(b) if b.contains(bundle::OBJECT_GRAPH_KEY) => {
                Some(b.scalar_string(bundle::OBJECT_GRAPH_KEY).map_err(in_file)?)
            }
            _ => None,
        };
        let objects = objects::Objects::new(mg.object_graph_def.clone(), ckpt_graph.as_deref())
            .map_err(in_file)?;
        let graph_def = mg
            .graph_def
            .as_ref()
            .ok_or_else(|| in_file("no graph".into()))?;
        import_signature(graph_def, sig, bundle, objects, opts, &file)
    }
}

/// A frozen graph (every variable already a `Const`, as TF.js graph models store it) imported
/// through `sig`, whose keys name the graph's inputs and outputs.
pub(crate) fn import_frozen(
    graph_def: &GraphDef,
    sig: &SignatureDef,
    opts: &ReadOptions,
    file: &str,
) -> Result<crate::ir::Graph> {
    let objects = objects::Objects::new(None, None).map_err(failed)?;
    import_signature(graph_def, sig, None, objects, opts, file)
}

/// Imports what `sig`'s outputs depend on, its inputs becoming the graph's inputs.
fn import_signature(
    graph_def: &GraphDef,
    sig: &SignatureDef,
    bundle: Option<bundle::Bundle>,
    objects: objects::Objects,
    opts: &ReadOptions,
    file: &str,
) -> Result<crate::ir::Graph> {
    let file = file.to_string();
    let in_file = |e: String| failed(format!("{file}: {e}"));
    let functions = graph_def
        .library
        .as_ref()
        .map_or(&[][..], |l| &l.function[..]);
    let mut imp = Importer::new(functions, bundle, objects);
    let mut scope = Scope::graph(&graph_def.node);

    let mut input_keys: Vec<&String> = sig.inputs.keys().collect();
    input_keys.sort();
    for key in input_keys {
        let info = &sig.inputs[key];
        let mut ty = input_type(key, info, &mut imp.b.g).map_err(in_file)?;
        if let Some((_, shape)) = opts.input_shapes.iter().find(|(n, _)| n == key) {
            if shape.len() != ty.rank() {
                return Err(Error::Usage(format!(
                    "input '{key}' has rank {}, the override gives {}",
                    ty.rank(),
                    shape.len()
                )));
            }
            ty.shape = shape.clone();
        }
        let v = imp.b.add_input(key, ty);
        let name = tensor_name(key, info).map_err(in_file)?;
        let node = name.split(':').next().unwrap_or(name);
        scope.done.insert(node.to_string(), vec![Bound::T(v)]);
    }

    let mut output_keys: Vec<&String> = sig.outputs.keys().collect();
    output_keys.sort();
    let refs: Vec<String> = output_keys
        .iter()
        .map(|k| tensor_name(k, &sig.outputs[*k]).map(str::to_string))
        .collect::<std::result::Result<_, _>>()
        .map_err(in_file)?;
    let resolved = imp.resolve(&mut scope, &refs);
    // A corrupt shard explains whatever went wrong with the values read from it: its checksum
    // error comes first.
    imp.check_variables().map_err(in_file)?;
    let bound = resolved.map_err(in_file)?;
    if !imp.b.unsupported.is_empty() {
        return Err(Error::Unsupported {
            file,
            items: std::mem::take(&mut imp.b.unsupported),
        });
    }
    for (key, b) in output_keys.iter().zip(bound) {
        let Bound::T(v) = b else {
            return Err(in_file(format!(
                "output '{key}' is a resource handle, not a tensor"
            )));
        };
        bind_output(&mut imp, key, v).map_err(in_file)?;
    }
    let mut g = std::mem::take(&mut imp.b.g);
    g.remove_dead();
    Ok(g)
}

/// The meta graph tagged `serve`, else the first.
fn pick_meta_graph(sm: &SavedModel) -> Option<&MetaGraphDef> {
    sm.meta_graphs
        .iter()
        .find(|m| {
            m.meta_info_def
                .as_ref()
                .is_some_and(|i| i.tags.iter().any(|t| t == "serve"))
        })
        .or_else(|| sm.meta_graphs.first())
}

fn pick_signature<'a>(mg: &'a MetaGraphDef, name: &str, file: &str) -> Result<&'a SignatureDef> {
    if let Some(s) = mg.signature_def.get(name) {
        return Ok(s);
    }
    let mut names: Vec<&String> = mg
        .signature_def
        .keys()
        .filter(|k| !k.starts_with("__"))
        .collect();
    names.sort();
    let list = names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::Usage(format!(
        "{file}: no signature '{name}' (signatures: {})",
        if list.is_empty() { "none" } else { &list }
    )))
}

/// The graph tensor a signature entry names (sparse and composite tensors are refused).
fn tensor_name<'a>(key: &str, info: &'a TensorInfo) -> std::result::Result<&'a str, String> {
    match &info.encoding {
        Some(tensor_info::Encoding::Name(n)) => Ok(n),
        _ => Err(format!(
            "signature entry '{key}' is a sparse or composite tensor, which is not supported"
        )),
    }
}

/// A signature input's type: unknown dimensions become symbols (`batch` for the first axis).
fn input_type(
    key: &str,
    info: &TensorInfo,
    g: &mut crate::ir::Graph,
) -> std::result::Result<TensorType, String> {
    let dtype = bundle::dtype_from_tf(info.dtype).ok_or_else(|| {
        format!(
            "input '{key}' has element type {}, which is not supported",
            bundle::tf_dtype_name(info.dtype)
        )
    })?;
    let shape = info
        .tensor_shape
        .as_ref()
        .filter(|s| !s.unknown_rank)
        .ok_or_else(|| {
            format!("input '{key}' has no known rank (give its shape with --input-shape)")
        })?;
    let dims = shape
        .dim
        .iter()
        .enumerate()
        .map(|(i, d)| match u64::try_from(d.size) {
            Ok(n) => Dim::Fixed(n),
            Err(_) if i == 0 => Dim::Sym("batch".into()),
            Err(_) => g.fresh_symbol(),
        })
        .collect();
    Ok(TensorType::new(dtype, dims))
}

/// Makes `v` the graph output named `key`, giving it its own value when it is an input, a
/// constant or already an output.
fn bind_output(
    imp: &mut Importer,
    key: &str,
    v: crate::ir::ValueId,
) -> std::result::Result<(), String> {
    let g = &imp.b.g;
    let shared = g.inputs.contains(&v) || g.constant(v).is_some() || g.outputs.contains(&v);
    let v = if shared {
        let shape = g.ty(v).shape.clone();
        let name = imp.b.unique_name(&format!("{key}/identity"));
        imp.b.g.add_node(
            &name,
            Op::Reshape(Reshape { shape }),
            vec![v],
            std::slice::from_ref(&name),
        )?[0]
    } else {
        v
    };
    if imp.b.g.value(v).name != key {
        // The key may already name another value: rename that one.
        if let Some(other) = imp.b.g.values.iter().position(|x| x.name == key) {
            let fresh = imp.b.unique_name(&format!("{key}_"));
            imp.b.g.values[other].name = fresh;
        }
        imp.b.claim_name(key);
        imp.b.g.value_mut(v).name = key.to_string();
    }
    imp.b.g.outputs.push(v);
    Ok(())
}
