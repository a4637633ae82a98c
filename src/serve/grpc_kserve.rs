//! KServe's Open Inference Protocol v2 over gRPC (`inference.GRPCInferenceService`): health,
//! server and model metadata, model readiness and `ModelInfer` with typed `contents` or
//! `raw_input_contents`; outputs go back as `raw_output_contents`.

use super::grpc::decode;
use super::grpc_tfs::Call;
use super::http::{self, Facts};
use super::repo::Selector;
use super::signature::{from_kserve_dtype, kserve_dtype, TensorSpec};
use super::status::{Code, Reply, Status};
use crate::gen::kserve as pb;
use crate::ir::{DType, Tensor};
use bytes::Bytes;
use prost::Message;

pub async fn call(cx: &Call<'_>, method: &str, msg: &[u8], facts: &mut Facts) -> Reply<Vec<u8>> {
    match method {
        "ServerLive" => Ok(pb::ServerLiveResponse { live: true }.encode_to_vec()),
        "ServerReady" => Ok(pb::ServerReadyResponse {
            ready: cx.shared.repo.ready(),
        }
        .encode_to_vec()),
        "ServerMetadata" => {
            http::authorize(cx.shared, cx.auth, None)?;
            Ok(pb::ServerMetadataResponse {
                name: "mdeploy".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                extensions: vec!["binary_tensor_data".into()],
            }
            .encode_to_vec())
        }
        "ModelReady" => {
            let req: pb::ModelReadyRequest = decode(msg)?;
            let sel = selector(cx, &req.name, &req.version, facts)?;
            let ready = cx.shared.repo.resolve(&req.name, &sel, None).is_ok();
            Ok(pb::ModelReadyResponse { ready }.encode_to_vec())
        }
        "ModelMetadata" => {
            let req: pb::ModelMetadataRequest = decode(msg)?;
            let sel = selector(cx, &req.name, &req.version, facts)?;
            let l = cx.shared.repo.resolve(&req.name, &sel, cx.split_key)?;
            let meta = |s: &TensorSpec| pb::model_metadata_response::TensorMetadata {
                name: s.name.clone(),
                datatype: kserve_dtype(s.dtype).into(),
                shape: s.dims(),
            };
            Ok(pb::ModelMetadataResponse {
                name: req.name.clone(),
                versions: super::rest_kserve::available(cx.shared, &req.name)?,
                platform: format!("mdeploy_{}", l.format),
                inputs: l.signature.inputs.iter().map(meta).collect(),
                outputs: l.signature.outputs.iter().map(meta).collect(),
            }
            .encode_to_vec())
        }
        "ModelInfer" => infer(cx, decode(msg)?, facts).await,
        _ => Err(Status::new(
            Code::Unimplemented,
            format!("GRPCInferenceService/{method} is not served by mdeploy"),
        )),
    }
}

fn selector(cx: &Call<'_>, name: &str, version: &str, facts: &mut Facts) -> Reply<Selector> {
    facts.model = name.to_string();
    http::authorize(cx.shared, cx.auth, Some(name))?;
    if version.is_empty() {
        return Ok(Selector::Any);
    }
    version
        .parse()
        .map(Selector::Version)
        .map_err(|_| Status::invalid(format!("bad model version '{version}'")))
}

async fn infer(cx: &Call<'_>, req: pb::ModelInferRequest, facts: &mut Facts) -> Reply<Vec<u8>> {
    let sel = selector(cx, &req.model_name, &req.model_version, facts)?;
    let loaded = cx
        .shared
        .repo
        .resolve(&req.model_name, &sel, cx.split_key)?;
    facts.version = Some(loaded.version);
    let sig = &loaded.signature;
    if !req.raw_input_contents.is_empty() && req.raw_input_contents.len() != req.inputs.len() {
        return Err(Status::invalid(format!(
            "{} inputs but {} raw_input_contents",
            req.inputs.len(),
            req.raw_input_contents.len()
        )));
    }
    let mut given = Vec::new();
    for (i, input) in req.inputs.iter().enumerate() {
        let what = format!("input '{}'", input.name);
        let (_, spec) = sig.input(&input.name)?;
        let dtype = from_kserve_dtype(&input.datatype).ok_or_else(|| {
            Status::invalid(format!("{what}: unsupported datatype '{}'", input.datatype))
        })?;
        if dtype != spec.dtype {
            return Err(Status::invalid(format!(
                "{what}: datatype {}, the model expects {}",
                input.datatype,
                kserve_dtype(spec.dtype)
            )));
        }
        let shape = super::json::dims(&input.shape, &what)?;
        let data = match req.raw_input_contents.get(i) {
            Some(raw) => raw.clone(),
            None => contents(dtype, input.contents.as_ref()),
        };
        let t =
            Tensor::new(dtype, shape, data).map_err(|e| Status::invalid(format!("{what}: {e}")))?;
        given.push((input.name.clone(), t));
    }
    let wanted: Vec<usize> = if req.outputs.is_empty() {
        (0..sig.outputs.len()).collect()
    } else {
        req.outputs
            .iter()
            .map(|o| sig.output(&o.name))
            .collect::<Reply<_>>()?
    };
    let outputs = cx.shared.infer(&loaded, given, facts).await?;
    let mut resp = pb::ModelInferResponse {
        model_name: req.model_name.clone(),
        model_version: loaded.version.to_string(),
        id: req.id.clone(),
        ..Default::default()
    };
    for i in wanted {
        let t = &outputs[i];
        resp.outputs
            .push(pb::model_infer_response::InferOutputTensor {
                name: sig.outputs[i].name.clone(),
                datatype: kserve_dtype(t.dtype).into(),
                shape: t.shape.iter().map(|&d| d as i64).collect(),
                ..Default::default()
            });
        resp.raw_output_contents.push(t.data.clone());
    }
    Ok(resp.encode_to_vec())
}

/// Typed `contents` as little-endian bytes of `dtype` (a count mismatch is caught by
/// [`Tensor::new`]).
fn contents(dtype: DType, c: Option<&pb::InferTensorContents>) -> Bytes {
    let Some(c) = c else {
        return Bytes::new();
    };
    let mut out = Vec::new();
    match dtype {
        DType::F32 => c
            .fp32_contents
            .iter()
            .for_each(|x| out.extend(x.to_le_bytes())),
        DType::F64 => c
            .fp64_contents
            .iter()
            .for_each(|x| out.extend(x.to_le_bytes())),
        DType::I64 => c
            .int64_contents
            .iter()
            .for_each(|x| out.extend(x.to_le_bytes())),
        DType::U64 => c
            .uint64_contents
            .iter()
            .for_each(|x| out.extend(x.to_le_bytes())),
        DType::I32 => c
            .int_contents
            .iter()
            .for_each(|x| out.extend(x.to_le_bytes())),
        DType::U32 => c
            .uint_contents
            .iter()
            .for_each(|x| out.extend(x.to_le_bytes())),
        DType::I16 => c
            .int_contents
            .iter()
            .for_each(|&x| out.extend((x as i16).to_le_bytes())),
        DType::U16 => c
            .uint_contents
            .iter()
            .for_each(|&x| out.extend((x as u16).to_le_bytes())),
        DType::I8 => c.int_contents.iter().for_each(|&x| out.push(x as u8)),
        DType::U8 => c.uint_contents.iter().for_each(|&x| out.push(x as u8)),
        DType::Bool => c.bool_contents.iter().for_each(|&x| out.push(x as u8)),
        // KServe has no typed field for half floats: they come as raw contents.
        DType::F16 | DType::BF16 => {}
    }
    Bytes::from(out)
}
