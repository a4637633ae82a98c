//! ONNX reader (opsets 11–21 and the older forms still common in the wild). The file is
//! memory-mapped; initializer bytes stay in the mapping (see `proto.rs`).

mod functions;
pub mod import;
mod ops;
pub mod proto;
mod subgraph;
pub mod tensor;

use super::{ReadOptions, Reader};
use crate::error::{failed, Error, Result};
use crate::formats::onnx as onnx_types;
use crate::ir::mapped::map_file;
use crate::ir::{Dim, Graph, Op, TensorType};
use import::Importer;
use prost::Message;
use std::path::Path;
use tract_onnx::pb;

pub struct OnnxReader;

impl Reader for OnnxReader {
    fn name(&self) -> &'static str {
        "onnx"
    }

    fn probe(&self, path: &Path) -> bool {
        path.is_file() && map_file(path).is_ok_and(|b| proto::looks_like_model(&b))
    }

    fn read(&self, path: &Path, opts: &ReadOptions) -> Result<Graph> {
        let file = path.display().to_string();
        let bytes = map_file(path).map_err(failed)?;
        let stripped = proto::strip_raw_data(&bytes)
            .map_err(|e| failed(format!("{file}: not a valid ONNX model ({e})")))?;
        let model = pb::ModelProto::decode(&stripped.bytes[..])
            .map_err(|e| failed(format!("{file}: not a valid ONNX model ({e})")))?;
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| failed(format!("{file}: the model has no graph")))?;
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(1, |o| o.version);
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut imp = Importer::new(opset);
        imp.functions = functions::collect(&model.functions);
        let in_file = |e: String| failed(format!("{file}: {e}"));

        let mut external = tensor::ExternalFiles::default();
        for (i, init) in graph.initializer.iter().enumerate() {
            if let Some(why) = onnx_types::unsupported_type(init.data_type) {
                imp.refuse_value("initializer", &init.name, why);
                continue;
            }
            let raw = stripped
                .raw_data
                .get(i)
                .cloned()
                .flatten()
                .map(|r| bytes.slice(r));
            let t = tensor::tensor_from_proto(init, raw, dir, &mut external).map_err(in_file)?;
            let id = imp.add_const(&init.name, t);
            imp.bind(&init.name, id);
        }
        for input in &graph.input {
            if imp.lookup(&input.name).is_some() || imp.is_poisoned(&input.name) {
                continue; // an initializer listed as input (IR version < 4)
            }
            if let Some(why) = input_type_code(input).and_then(onnx_types::unsupported_type) {
                imp.refuse_value("input", &input.name, why);
                continue;
            }
            let mut ty = value_type(input, &mut imp.g).map_err(in_file)?;
            if let Some((_, shape)) = opts.input_shapes.iter().find(|(n, _)| *n == input.name) {
                if shape.len() != ty.rank() {
                    return Err(Error::Usage(format!(
                        "input '{}' has rank {}, the override gives {}",
                        input.name,
                        ty.rank(),
                        shape.len()
                    )));
                }
                ty.shape = shape.clone();
            }
            imp.add_input(&input.name, ty);
        }
        imp.import_nodes(&graph.node).map_err(in_file)?;
        if !imp.unsupported.is_empty() {
            return Err(Error::Unsupported {
                file,
                items: imp.b.unsupported,
            });
        }
        let mut g = imp_outputs(&mut imp, graph).map_err(in_file)?;
        g.remove_dead();
        Ok(g)
    }
}

/// Binds the graph outputs, keeping their ONNX names.
fn imp_outputs(imp: &mut Importer, graph: &pb::GraphProto) -> Result<Graph, String> {
    for out in &graph.output {
        let v = imp
            .lookup(&out.name)
            .ok_or_else(|| format!("graph output '{}' is never produced", out.name))?;
        let shared =
            imp.g.inputs.contains(&v) || imp.g.constant(v).is_some() || imp.g.outputs.contains(&v);
        let v = if imp.g.value(v).name == out.name && !imp.g.outputs.contains(&v) {
            v
        } else if shared || imp.g.values.iter().any(|x| x.name == out.name) {
            // The output is an input, a constant or another output under a new name: give it
            // a value of its own (an identity reshape) so both names exist.
            // The value takes the output's own name when no value holds it now: an aliased
            // value renamed to an earlier output's name left it free, though the name
            // registry still counts it taken.
            let shape = imp.g.ty(v).shape.clone();
            let name = imp.unique_name(&out.name);
            let free = !imp.g.values.iter().any(|x| x.name == out.name);
            let value_name = if free { out.name.clone() } else { name.clone() };
            let outs = imp.g.add_node(
                &name,
                Op::Reshape(crate::ir::ops::Reshape { shape }),
                vec![v],
                std::slice::from_ref(&value_name),
            )?;
            outs[0]
        } else {
            imp.g.value_mut(v).name = out.name.clone();
            v
        };
        imp.g.outputs.push(v);
    }
    Ok(std::mem::take(&mut imp.g))
}

fn input_type_code(v: &pb::ValueInfoProto) -> Option<i32> {
    // tract's TypeProto knows only tensor types (other kinds decode as no value).
    let pb::type_proto::Value::TensorType(t) = v.r#type.as_ref()?.value.as_ref()?;
    Some(t.elem_type)
}

/// The declared type of a graph input; `dim_param` becomes a named symbol, a missing
/// dimension a fresh one.
fn value_type(v: &pb::ValueInfoProto, g: &mut Graph) -> Result<TensorType, String> {
    let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!("input '{}' is not a tensor", v.name));
    };
    let dtype = onnx_types::dtype_from_onnx(t.elem_type).ok_or_else(|| {
        format!(
            "input '{}' has unsupported element type {}",
            v.name, t.elem_type
        )
    })?;
    let shape = t.shape.as_ref().ok_or_else(|| {
        format!(
            "input '{}' has no shape (give one with --input-shape)",
            v.name
        )
    })?;
    let dims = shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(n)) if *n >= 0 => {
                Dim::Fixed(*n as u64)
            }
            Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) if !p.is_empty() => {
                Dim::Sym(p.clone())
            }
            _ => g.fresh_symbol(),
        })
        .collect();
    Ok(TensorType::new(dtype, dims))
}
