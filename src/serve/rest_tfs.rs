//! TF Serving's REST API v1: model status, metadata (the signature as a SignatureDef in JSON)
//! and `:predict` with row (`instances`) or columnar (`inputs`) bodies.

use super::http::{Body, Facts};
use super::json;
use super::model::Loaded;
use super::repo::Selector;
use super::rest::json as reply;
use super::signature::{tf_dtype, Signature, TensorSpec};
use super::status::{Reply, Status};
use super::Shared;
use crate::ir::Tensor;
use hyper::Response;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub fn status(shared: &Shared, name: &str, sel: &Selector) -> Reply<Response<Body>> {
    let mut versions = shared.repo.status(name)?;
    match sel {
        Selector::Version(v) => versions.retain(|s| s.version == *v),
        Selector::Label(_) => {
            let l = shared.repo.resolve(name, sel, None)?;
            versions.retain(|s| s.version == l.version);
        }
        Selector::Any => {}
    }
    if versions.is_empty() {
        return Err(Status::not_found(format!(
            "Could not find version {sel:?} of model {name}"
        )));
    }
    let list: Vec<Value> = versions
        .iter()
        .rev()
        .map(|s| {
            json!({
                "version": s.version.to_string(),
                "state": s.state,
                "status": {
                    "error_code": if s.error.is_some() { "UNKNOWN" } else { "OK" },
                    "error_message": s.error.clone().unwrap_or_default(),
                }
            })
        })
        .collect();
    Ok(reply(200, &json!({ "model_version_status": list })))
}

fn tensor_info(s: &TensorSpec) -> Value {
    let dims: Vec<Value> = s
        .dims()
        .iter()
        .map(|d| json!({ "size": d.to_string(), "name": "" }))
        .collect();
    json!({
        "dtype": tf_dtype(s.dtype).1,
        "tensor_shape": { "dim": dims, "unknown_rank": false },
        "name": s.name,
    })
}

/// The signature as TF Serving's metadata JSON names it (`serving_default`).
pub fn signature_def(sig: &Signature) -> Value {
    let map = |specs: &[TensorSpec]| -> Map<String, Value> {
        specs
            .iter()
            .map(|s| (s.name.clone(), tensor_info(s)))
            .collect()
    };
    json!({
        "inputs": map(&sig.inputs),
        "outputs": map(&sig.outputs),
        "method_name": "tensorflow/serving/predict",
    })
}

pub fn metadata(
    shared: &Shared,
    name: &str,
    sel: &Selector,
    split_key: Option<&str>,
    facts: &mut Facts,
) -> Reply<Response<Body>> {
    let l = shared.repo.resolve(name, sel, split_key)?;
    facts.version = Some(l.version);
    Ok(reply(
        200,
        &json!({
            "model_spec": { "name": name, "signature_name": "", "version": l.version.to_string() },
            "metadata": { "signature_def": {
                "signature_def": { "serving_default": signature_def(&l.signature) }
            }}
        }),
    ))
}

/// The signature names a request may ask for: the one mdeploy serves.
pub fn check_signature_name(name: Option<&str>) -> Reply<()> {
    match name {
        None | Some("") | Some("serving_default") => Ok(()),
        Some(other) => Err(Status::invalid(format!(
            "Serving signature name: \"{other}\" not found in signature def (mdeploy serves \
             serving_default)"
        ))),
    }
}

pub async fn predict(
    shared: &Shared,
    loaded: Arc<Loaded>,
    body: &[u8],
    facts: &mut Facts,
) -> Reply<Response<Body>> {
    let req: Value = serde_json::from_slice(body)
        .map_err(|e| Status::invalid(format!("JSON Parse error: {e}")))?;
    let Value::Object(req) = req else {
        return Err(Status::invalid("the request body must be a JSON object"));
    };
    check_signature_name(req.get("signature_name").and_then(Value::as_str))?;
    let sig = &loaded.signature;
    let (given, rows) = match (req.get("instances"), req.get("inputs")) {
        (Some(instances), None) => (instances_to_tensors(sig, instances)?, true),
        (None, Some(inputs)) => (columns_to_tensors(sig, inputs)?, false),
        _ => {
            return Err(Status::invalid(
                "the body must hold exactly one of \"instances\" (row format) or \"inputs\" \
                 (columnar format)",
            ))
        }
    };
    let outputs = shared.infer(&loaded, given, facts).await?;
    let out = if rows {
        json!({ "predictions": predictions(sig, &outputs)? })
    } else if outputs.len() == 1 {
        json!({ "outputs": json::value(&outputs[0]) })
    } else {
        let m: Map<String, Value> = sig
            .outputs
            .iter()
            .zip(&outputs)
            .map(|(s, t)| (s.name.clone(), json::value(t)))
            .collect();
        json!({ "outputs": m })
    };
    Ok(reply(200, &out))
}

/// An instance or input value that names its inputs (an object other than `{"b64": …}`).
fn named(v: &Value) -> Option<&Map<String, Value>> {
    match v {
        Value::Object(o) if !(o.len() == 1 && o.contains_key("b64")) => Some(o),
        _ => None,
    }
}

fn instances_to_tensors(sig: &Signature, instances: &Value) -> Reply<Vec<(String, Tensor)>> {
    let Value::Array(list) = instances else {
        return Err(Status::invalid("\"instances\" must be a list"));
    };
    if list.is_empty() {
        return Err(Status::invalid("\"instances\" is empty"));
    }
    let mut parts: Vec<Vec<Tensor>> = vec![Vec::new(); sig.inputs.len()];
    for (i, inst) in list.iter().enumerate() {
        match named(inst) {
            Some(o) => {
                if o.len() != sig.inputs.len() {
                    return Err(Status::invalid(format!(
                        "instance {i} names {} input(s), the model has {}",
                        o.len(),
                        sig.inputs.len()
                    )));
                }
                for (k, v) in o {
                    let (slot, spec) = sig.input(k)?;
                    parts[slot].push(json::tensor(
                        v,
                        spec.dtype,
                        &format!("instance {i}, input '{k}'"),
                    )?);
                }
            }
            None if sig.inputs.len() == 1 => {
                let spec = &sig.inputs[0];
                parts[0].push(json::tensor(inst, spec.dtype, &format!("instance {i}"))?);
            }
            None => {
                return Err(Status::invalid(format!(
                    "the model has {} inputs: each instance must be an object naming them",
                    sig.inputs.len()
                )))
            }
        }
    }
    sig.inputs
        .iter()
        .zip(parts)
        .map(|(spec, p)| Ok((spec.name.clone(), json::stack(&p, spec.dtype, &spec.name)?)))
        .collect()
}

fn columns_to_tensors(sig: &Signature, inputs: &Value) -> Reply<Vec<(String, Tensor)>> {
    match named(inputs) {
        Some(o) => o
            .iter()
            .map(|(k, v)| {
                let (_, spec) = sig.input(k)?;
                Ok((
                    k.clone(),
                    json::tensor(v, spec.dtype, &format!("input '{k}'"))?,
                ))
            })
            .collect(),
        None if sig.inputs.len() == 1 => {
            let spec = &sig.inputs[0];
            Ok(vec![(
                spec.name.clone(),
                json::tensor(inputs, spec.dtype, "inputs")?,
            )])
        }
        None => Err(Status::invalid(format!(
            "the model has {} inputs: \"inputs\" must be an object naming them",
            sig.inputs.len()
        ))),
    }
}

/// Row format: one prediction per row of the outputs (all must share their first dimension).
fn predictions(sig: &Signature, outputs: &[Tensor]) -> Reply<Value> {
    if let [only] = outputs {
        return Ok(Value::Array(json::rows(only)));
    }
    let n = outputs.first().and_then(|t| t.shape.first().copied());
    if outputs.iter().any(|t| t.shape.first().copied() != n) {
        return Err(Status::invalid(
            "the outputs differ in their first dimension, so they cannot be given as rows; \
             use the columnar format (\"inputs\")",
        ));
    }
    let columns: Vec<Vec<Value>> = outputs.iter().map(json::rows).collect();
    let n = n.unwrap_or(0);
    Ok(Value::Array(
        (0..n)
            .map(|i| {
                let m: Map<String, Value> = sig
                    .outputs
                    .iter()
                    .zip(&columns)
                    .map(|(s, c)| (s.name.clone(), c[i].clone()))
                    .collect();
                Value::Object(m)
            })
            .collect(),
    ))
}
