//! TF Serving's gRPC services: `PredictionService/Predict` and `GetModelMetadata`,
//! `ModelService/GetModelStatus`, as `tensorflow-serving-api` clients call them.

use super::grpc::decode;
use super::http::{self, Facts};
use super::repo::Selector;
use super::signature::{from_tf_dtype, tf_dtype, Signature, TensorSpec};
use super::status::{Code, Reply, Status};
use super::Shared;
use crate::gen::tf_serving as pb;
use crate::ir::{DType, Tensor};
use bytes::Bytes;
use prost::Message;

/// What every call carries besides its message.
pub struct Call<'a> {
    pub shared: &'a Shared,
    pub auth: Option<&'a str>,
    pub split_key: Option<&'a str>,
}

fn selector(spec: &pb::ModelSpec) -> Selector {
    match &spec.version_choice {
        Some(pb::model_spec::VersionChoice::Version(v)) => Selector::Version(v.value.max(0) as u64),
        Some(pb::model_spec::VersionChoice::VersionLabel(l)) => Selector::Label(l.clone()),
        None => Selector::Any,
    }
}

fn model_spec(
    req: Option<&pb::ModelSpec>,
    cx: &Call,
    facts: &mut Facts,
) -> Reply<(String, Selector)> {
    let spec = req.ok_or_else(|| Status::invalid("Missing ModelSpec"))?;
    facts.model = spec.name.clone();
    http::authorize(cx.shared, cx.auth, Some(&spec.name))?;
    Ok((spec.name.clone(), selector(spec)))
}

fn answered_spec(name: &str, version: u64) -> pb::ModelSpec {
    pb::ModelSpec {
        name: name.to_string(),
        signature_name: "serving_default".into(),
        version_choice: Some(pb::model_spec::VersionChoice::Version(pb::Int64Value {
            value: version as i64,
        })),
    }
}

pub async fn prediction_service(
    cx: &Call<'_>,
    method: &str,
    msg: &[u8],
    facts: &mut Facts,
) -> Reply<Vec<u8>> {
    match method {
        "Predict" => predict(cx, decode(msg)?, facts).await,
        "GetModelMetadata" => metadata(cx, decode(msg)?, facts),
        "Classify" | "Regress" | "MultiInference" => Err(Status::new(
            Code::Unimplemented,
            format!(
                "{method} needs a TensorFlow classification or regression signature; use Predict"
            ),
        )),
        _ => Err(Status::new(
            Code::Unimplemented,
            format!("unknown method PredictionService/{method}"),
        )),
    }
}

pub fn model_service(cx: &Call<'_>, method: &str, msg: &[u8], facts: &mut Facts) -> Reply<Vec<u8>> {
    match method {
        "GetModelStatus" => status(cx, decode(msg)?, facts),
        _ => Err(Status::new(
            Code::Unimplemented,
            format!("unknown method ModelService/{method}"),
        )),
    }
}

async fn predict(cx: &Call<'_>, req: pb::PredictRequest, facts: &mut Facts) -> Reply<Vec<u8>> {
    let (name, sel) = model_spec(req.model_spec.as_ref(), cx, facts)?;
    let signature = req.model_spec.as_ref().map(|s| s.signature_name.as_str());
    super::rest_tfs::check_signature_name(signature)?;
    let loaded = cx.shared.repo.resolve(&name, &sel, cx.split_key)?;
    facts.version = Some(loaded.version);
    let sig = &loaded.signature;
    let wanted: Vec<usize> = if req.output_filter.is_empty() {
        (0..sig.outputs.len()).collect()
    } else {
        req.output_filter
            .iter()
            .map(|o| sig.output(o))
            .collect::<Reply<_>>()?
    };
    let mut given = Vec::new();
    for (k, t) in req.inputs {
        let (_, spec) = sig.input(&k)?;
        given.push((k.clone(), tensor(spec, t)?));
    }
    let outputs = cx.shared.infer(&loaded, given, facts).await?;
    let outputs = wanted
        .into_iter()
        .map(|i| (sig.outputs[i].name.clone(), proto(&outputs[i])))
        .collect();
    Ok(pb::PredictResponse {
        model_spec: Some(answered_spec(&name, loaded.version)),
        outputs,
    }
    .encode_to_vec())
}

/// A request TensorProto as a tensor of its input's type: from `tensor_content` (raw
/// little-endian bytes, kept as a slice of the request), or from the typed `*_val` fields (one
/// value fills the whole shape, as TensorFlow reads it).
fn tensor(spec: &TensorSpec, t: pb::TensorProto) -> Reply<Tensor> {
    let what = format!("input '{}'", spec.name);
    let dtype = from_tf_dtype(t.dtype).ok_or_else(|| {
        Status::invalid(format!(
            "{what}: unsupported dtype {} (DT_STRING and complex types have no mdeploy equivalent)",
            t.dtype
        ))
    })?;
    if dtype != spec.dtype {
        return Err(Status::invalid(format!(
            "{what}: expects type {} but got {}",
            tf_dtype(spec.dtype).1,
            tf_dtype(dtype).1
        )));
    }
    let shape: Vec<usize> = t
        .tensor_shape
        .as_ref()
        .map(|s| s.dim.iter().map(|d| d.size).collect::<Vec<i64>>())
        .map(|d| super::json::dims(&d, &what))
        .transpose()?
        .unwrap_or_default();
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Status::invalid(format!("{what}: shape {shape:?} is too large")))?;
    if !t.tensor_content.is_empty() {
        return Tensor::new(dtype, shape, t.tensor_content)
            .map_err(|e| Status::invalid(format!("{what}: tensor_content: {e}")));
    }
    let values = typed_values(dtype, &t);
    match values.len() / dtype.size() {
        n if n == count => Tensor::new(dtype, shape, Bytes::from(values)).map_err(Status::invalid),
        1 if count <= super::signature::MAX_FILL => Ok(Tensor::filled(dtype, shape, &values)),
        n => Err(Status::invalid(format!(
            "{what}: shape {shape:?} holds {count} values, the tensor has {n}"
        ))),
    }
}

fn typed_values(dtype: DType, t: &pb::TensorProto) -> Vec<u8> {
    let mut out = Vec::new();
    match dtype {
        DType::F32 => t.float_val.iter().for_each(|x| out.extend(x.to_le_bytes())),
        DType::F64 => t
            .double_val
            .iter()
            .for_each(|x| out.extend(x.to_le_bytes())),
        DType::I64 => t.int64_val.iter().for_each(|x| out.extend(x.to_le_bytes())),
        DType::U64 => t
            .uint64_val
            .iter()
            .for_each(|x| out.extend(x.to_le_bytes())),
        DType::U32 => t
            .uint32_val
            .iter()
            .for_each(|x| out.extend(x.to_le_bytes())),
        DType::I32 => t.int_val.iter().for_each(|x| out.extend(x.to_le_bytes())),
        DType::I16 | DType::U16 => t
            .int_val
            .iter()
            .for_each(|&x| out.extend((x as u16).to_le_bytes())),
        DType::I8 | DType::U8 => t.int_val.iter().for_each(|&x| out.push(x as u8)),
        DType::F16 | DType::BF16 => t
            .half_val
            .iter()
            .for_each(|&x| out.extend((x as u16).to_le_bytes())),
        DType::Bool => t.bool_val.iter().for_each(|&x| out.push(x as u8)),
    }
    out
}

fn shape_proto(dims: impl Iterator<Item = i64>) -> pb::TensorShapeProto {
    pb::TensorShapeProto {
        dim: dims
            .map(|size| pb::tensor_shape_proto::Dim {
                size,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

/// An output as a TensorProto with `tensor_content` (what `tf.make_ndarray` reads).
fn proto(t: &Tensor) -> pb::TensorProto {
    pb::TensorProto {
        dtype: tf_dtype(t.dtype).0,
        tensor_shape: Some(shape_proto(t.shape.iter().map(|&d| d as i64))),
        tensor_content: t.data.clone(),
        ..Default::default()
    }
}

fn signature_def(sig: &Signature) -> pb::SignatureDef {
    let info = |specs: &[TensorSpec]| {
        specs
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    pb::TensorInfo {
                        name: s.name.clone(),
                        dtype: tf_dtype(s.dtype).0,
                        tensor_shape: Some(shape_proto(s.dims().into_iter())),
                    },
                )
            })
            .collect()
    };
    pb::SignatureDef {
        inputs: info(&sig.inputs),
        outputs: info(&sig.outputs),
        method_name: "tensorflow/serving/predict".into(),
    }
}

fn metadata(cx: &Call<'_>, req: pb::GetModelMetadataRequest, facts: &mut Facts) -> Reply<Vec<u8>> {
    let (name, sel) = model_spec(req.model_spec.as_ref(), cx, facts)?;
    if req.metadata_field.iter().any(|f| f != "signature_def") || req.metadata_field.is_empty() {
        return Err(Status::invalid(
            "metadata_field must name signature_def, the only metadata mdeploy serves",
        ));
    }
    let loaded = cx.shared.repo.resolve(&name, &sel, cx.split_key)?;
    facts.version = Some(loaded.version);
    let map = pb::SignatureDefMap {
        signature_def: [(
            "serving_default".to_string(),
            signature_def(&loaded.signature),
        )]
        .into_iter()
        .collect(),
    };
    let any = pb::Any {
        type_url: "type.googleapis.com/tensorflow.serving.SignatureDefMap".into(),
        value: map.encode_to_vec().into(),
    };
    Ok(pb::GetModelMetadataResponse {
        model_spec: Some(answered_spec(&name, loaded.version)),
        metadata: [("signature_def".to_string(), any)].into_iter().collect(),
    }
    .encode_to_vec())
}

fn status(cx: &Call<'_>, req: pb::GetModelStatusRequest, facts: &mut Facts) -> Reply<Vec<u8>> {
    let (name, sel) = model_spec(req.model_spec.as_ref(), cx, facts)?;
    let mut versions = cx.shared.repo.status(&name)?;
    match &sel {
        Selector::Version(v) => versions.retain(|s| s.version == *v),
        Selector::Label(_) => {
            let l = cx.shared.repo.resolve(&name, &sel, None)?;
            versions.retain(|s| s.version == l.version);
        }
        Selector::Any => {}
    }
    if versions.is_empty() {
        return Err(Status::not_found(format!(
            "Could not find version {sel:?} of model {name}"
        )));
    }
    let state = |s: &str| match s {
        "AVAILABLE" => pb::model_version_status::State::Available,
        "LOADING" => pb::model_version_status::State::Loading,
        _ => pb::model_version_status::State::End,
    };
    Ok(pb::GetModelStatusResponse {
        model_version_status: versions
            .iter()
            .rev()
            .map(|s| pb::ModelVersionStatus {
                version: s.version as i64,
                state: state(s.state) as i32,
                status: Some(pb::StatusProto {
                    error_code: if s.error.is_some() { 2 } else { 0 },
                    error_message: s.error.clone().unwrap_or_default(),
                }),
            })
            .collect(),
    }
    .encode_to_vec())
}
