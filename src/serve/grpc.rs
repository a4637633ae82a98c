//! gRPC over HTTP/2 without a framework: the length-prefixed message framing, the status in
//! trailers, and routing by method path to TF Serving's and KServe's services. Messages are
//! the prost types generated from `schemas/tf_serving.proto` and `schemas/kserve.proto`.

use super::http::{self, Body, Facts};
use super::status::{Code, Reply, Status};
use super::Shared;
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Request, Response};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// One message, then the trailers with the status.
struct GrpcBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl hyper::body::Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        if let Some(t) = self.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(t))));
        }
        Poll::Ready(None)
    }
}

fn grpc_headers(r: &mut Response<Body>) {
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
}

/// gRPC's percent-encoding of `grpc-message`.
fn encode_message(m: &str) -> String {
    let mut out = String::with_capacity(m.len());
    for b in m.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A trailers-only response carrying an error status.
pub fn error(s: &Status) -> Response<Body> {
    let mut r = Response::new(http::full(Bytes::new()));
    grpc_headers(&mut r);
    let h = r.headers_mut();
    h.insert("grpc-status", HeaderValue::from(s.code.grpc()));
    if let Ok(v) = HeaderValue::from_str(&encode_message(&s.message)) {
        h.insert("grpc-message", v);
    }
    r
}

fn ok(message: Vec<u8>) -> Response<Body> {
    let mut frame = BytesMut::with_capacity(message.len() + 5);
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.extend_from_slice(&message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = GrpcBody {
        data: Some(frame.freeze()),
        trailers: Some(trailers),
    };
    let mut r = Response::new(body.boxed());
    grpc_headers(&mut r);
    r
}

/// The HTTP status a gRPC response stands for (for metrics and the access log).
pub fn http_equivalent(r: &Response<Body>) -> u16 {
    let code = r
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    const CODES: [Code; 10] = [
        Code::InvalidArgument,
        Code::NotFound,
        Code::Unavailable,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::DeadlineExceeded,
        Code::Unimplemented,
        Code::Internal,
        Code::TooLarge,
    ];
    if code == 0 {
        return 200;
    }
    CODES
        .iter()
        .find(|c| c.grpc() == code)
        .map_or(500, |c| c.http())
}

/// The one message of a unary call's body.
fn unframe(body: &[u8]) -> Reply<&[u8]> {
    if body.len() < 5 {
        return Err(Status::invalid(
            "gRPC body shorter than its 5-byte frame header",
        ));
    }
    if body[0] != 0 {
        return Err(Status::new(
            Code::Unimplemented,
            "compressed gRPC messages are not accepted (grpc-encoding: identity)",
        ));
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let rest = &body[5..];
    if rest.len() != len {
        return Err(Status::invalid(format!(
            "gRPC frame says {len} bytes, the body holds {}",
            rest.len()
        )));
    }
    Ok(rest)
}

pub fn decode<M: prost::Message + Default>(b: &[u8]) -> Reply<M> {
    M::decode(b).map_err(|e| Status::invalid(format!("malformed request message: {e}")))
}

pub async fn handle(shared: &Shared, req: Request<Incoming>, facts: &mut Facts) -> Response<Body> {
    match call(shared, req, facts).await {
        Ok(m) => ok(m),
        Err(s) => error(&s),
    }
}

async fn call(shared: &Shared, req: Request<Incoming>, facts: &mut Facts) -> Reply<Vec<u8>> {
    let path = req.uri().path().to_string();
    let auth = http::header(&req, "authorization");
    let split_key = http::header(&req, super::rest::SPLIT_KEY);
    let body = http::body(shared, req).await?;
    let msg = unframe(&body)?;
    let cx = super::grpc_tfs::Call {
        shared,
        auth: auth.as_deref(),
        split_key: split_key.as_deref(),
    };
    if let Some(method) = path.strip_prefix("/tensorflow.serving.PredictionService/") {
        facts.api = "tfs_grpc";
        return super::grpc_tfs::prediction_service(&cx, method, msg, facts).await;
    }
    if let Some(method) = path.strip_prefix("/tensorflow.serving.ModelService/") {
        facts.api = "tfs_grpc";
        return super::grpc_tfs::model_service(&cx, method, msg, facts);
    }
    if let Some(method) = path.strip_prefix("/inference.GRPCInferenceService/") {
        facts.api = "kserve_grpc";
        return super::grpc_kserve::call(&cx, method, msg, facts).await;
    }
    Err(Status::new(
        Code::Unimplemented,
        format!("unknown gRPC method {path}"),
    ))
}
