//! KServe's Open Inference Protocol v2 over REST: server and model metadata, model readiness
//! and `infer` with JSON tensors or the binary tensor extension (what `tritonclient.http` sends
//! by default: a JSON header of `Inference-Header-Content-Length` bytes, then the raw tensors).

use super::http::{self, Body, Facts};
use super::json;
use super::model::Loaded;
use super::repo::Selector;
use super::rest::json as reply;
use super::signature::{from_kserve_dtype, kserve_dtype, Signature, TensorSpec};
use super::status::{Reply, Status};
use super::Shared;
use crate::ir::Tensor;
use bytes::Bytes;
use hyper::Response;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn server_metadata() -> Value {
    json!({
        "name": "mdeploy",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    })
}

fn tensor_metadata(s: &TensorSpec) -> Value {
    json!({ "name": s.name, "datatype": kserve_dtype(s.dtype), "shape": s.dims() })
}

/// The versions of `name` taking traffic, as strings.
pub fn available(shared: &Shared, name: &str) -> Reply<Vec<String>> {
    Ok(shared
        .repo
        .status(name)?
        .iter()
        .filter(|s| s.state == "AVAILABLE")
        .map(|s| s.version.to_string())
        .collect())
}

pub fn model_metadata(shared: &Shared, name: &str, l: &Loaded) -> Reply<Value> {
    Ok(json!({
        "name": name,
        "versions": available(shared, name)?,
        "platform": format!("mdeploy_{}", l.format),
        "inputs": l.signature.inputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
        "outputs": l.signature.outputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
    }))
}

pub fn metadata(
    shared: &Shared,
    name: &str,
    sel: &Selector,
    split_key: Option<&str>,
) -> Reply<Response<Body>> {
    let l = shared.repo.resolve(name, sel, split_key)?;
    Ok(reply(200, &model_metadata(shared, name, &l)?))
}

pub fn ready(shared: &Shared, name: &str, sel: &Selector) -> Reply<Response<Body>> {
    let ready = shared.repo.resolve(name, sel, None).is_ok();
    Ok(reply(
        if ready { 200 } else { 503 },
        &json!({ "name": name, "ready": ready }),
    ))
}

/// Splits a body into its JSON header and the binary tensor data after it.
fn split_body<'a>(body: &'a [u8], header_len: Option<&str>) -> Reply<(&'a [u8], &'a [u8])> {
    match header_len {
        None => Ok((body, &[])),
        Some(n) => {
            let n: usize = n.trim().parse().map_err(|_| {
                Status::invalid(format!("bad Inference-Header-Content-Length '{n}'"))
            })?;
            if n > body.len() {
                return Err(Status::invalid(format!(
                    "Inference-Header-Content-Length {n} is past the body's {} bytes",
                    body.len()
                )));
            }
            Ok(body.split_at(n))
        }
    }
}

/// The tensors of a v2 request's `inputs`, raw bytes taken in order from `binary`.
fn inputs(sig: &Signature, req: &Value, mut binary: &[u8]) -> Reply<Vec<(String, Tensor)>> {
    let list = req
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| Status::invalid("the request has no \"inputs\" list"))?;
    let mut out = Vec::new();
    for i in list {
        let name = i
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| Status::invalid("an input without \"name\""))?;
        let what = format!("input '{name}'");
        let (_, spec) = sig.input(name)?;
        let dt = i.get("datatype").and_then(Value::as_str).unwrap_or("");
        let dtype = from_kserve_dtype(dt)
            .ok_or_else(|| Status::invalid(format!("{what}: unsupported datatype '{dt}'")))?;
        if dtype != spec.dtype {
            return Err(Status::invalid(format!(
                "{what}: datatype {dt}, the model expects {}",
                kserve_dtype(spec.dtype)
            )));
        }
        let shape: Vec<i64> = i
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| Status::invalid(format!("{what}: no \"shape\"")))?
            .iter()
            .map(|d| {
                d.as_i64()
                    .ok_or_else(|| Status::invalid(format!("{what}: bad shape")))
            })
            .collect::<Reply<_>>()?;
        let binary_size = i
            .get("parameters")
            .and_then(|p| p.get("binary_data_size"))
            .and_then(Value::as_u64);
        let t = match (binary_size, i.get("data")) {
            (Some(n), _) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > binary.len() {
                    return Err(Status::invalid(format!(
                        "{what}: binary_data_size {n} is past the {} bytes left in the body",
                        binary.len()
                    )));
                }
                let (mine, rest) = binary.split_at(n);
                binary = rest;
                let dims = json::dims(&shape, &what)?;
                Tensor::new(dtype, dims, Bytes::copy_from_slice(mine))
                    .map_err(|e| Status::invalid(format!("{what}: {e}")))?
            }
            (None, Some(data)) => json::tensor_with_shape(data, dtype, &shape, &what)?,
            (None, None) => return Err(Status::invalid(format!("{what}: no \"data\""))),
        };
        out.push((name.to_string(), t));
    }
    if !binary.is_empty() {
        return Err(Status::invalid(format!(
            "{} bytes of binary data are left after the inputs",
            binary.len()
        )));
    }
    Ok(out)
}

/// The outputs asked for (all, in the model's order, when none are named), each with whether it
/// goes back as binary.
fn wanted_outputs(sig: &Signature, req: &Value) -> Reply<Vec<(usize, bool)>> {
    let all_binary = req
        .get("parameters")
        .and_then(|p| p.get("binary_data_output"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match req.get("outputs").and_then(Value::as_array) {
        None => Ok((0..sig.outputs.len()).map(|i| (i, all_binary)).collect()),
        Some(list) => list
            .iter()
            .map(|o| {
                let name = o
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Status::invalid("a requested output without \"name\""))?;
                let binary = o
                    .get("parameters")
                    .and_then(|p| p.get("binary_data"))
                    .and_then(Value::as_bool)
                    .unwrap_or(all_binary);
                Ok((sig.output(name)?, binary))
            })
            .collect(),
    }
}

pub async fn infer(
    shared: &Shared,
    loaded: Arc<Loaded>,
    body: &[u8],
    header_len: Option<&str>,
    facts: &mut Facts,
) -> Reply<Response<Body>> {
    let (head, binary) = split_body(body, header_len)?;
    let req: Value = serde_json::from_slice(head)
        .map_err(|e| Status::invalid(format!("the request's JSON: {e}")))?;
    let sig = &loaded.signature;
    let given = inputs(sig, &req, binary)?;
    let wanted = wanted_outputs(sig, &req)?;
    let results = shared.infer(&loaded, given, facts).await?;
    let mut outputs = Vec::new();
    let mut raw: Vec<u8> = Vec::new();
    for &(i, binary) in &wanted {
        let (spec, t) = (&sig.outputs[i], &results[i]);
        let mut o = json!({
            "name": spec.name,
            "datatype": kserve_dtype(t.dtype),
            "shape": t.shape,
        });
        if binary {
            o["parameters"] = json!({ "binary_data_size": t.data.len() });
            raw.extend_from_slice(&t.data);
        } else {
            o["data"] = json::flat(t);
        }
        outputs.push(o);
    }
    let mut resp = json!({
        "model_name": facts.model,
        "model_version": loaded.version.to_string(),
        "outputs": outputs,
    });
    if let Some(id) = req.get("id") {
        resp["id"] = id.clone();
    }
    if wanted.iter().all(|(_, b)| !b) {
        return Ok(reply(200, &resp));
    }
    let head = resp.to_string();
    let len = head.len();
    let mut body = head.into_bytes();
    body.extend_from_slice(&raw);
    let mut r = Response::new(http::full(body));
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/octet-stream"),
    );
    r.headers_mut().insert(
        "inference-header-content-length",
        hyper::header::HeaderValue::from(len),
    );
    Ok(r)
}
