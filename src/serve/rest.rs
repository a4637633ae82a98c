//! REST routing: TF Serving's `/v1/models/…`, KServe v2's `/v2/…`, the health probes and the
//! metrics. Errors are `{"error": "…"}` with the status's HTTP code, as both APIs answer.

use super::http::{self, Body, Facts};
use super::repo::Selector;
use super::status::{Reply, Status};
use super::Shared;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};

/// The header that makes a traffic split sticky: the same key, the same version.
pub const SPLIT_KEY: &str = "x-mdeploy-split-key";

pub fn json(code: u16, v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(http::full(v.to_string()));
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

pub fn error(s: &Status) -> Response<Body> {
    json(s.code.http(), &serde_json::json!({ "error": s.message }))
}

fn text(code: u16, body: String, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(http::full(body));
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

pub async fn handle(shared: &Shared, req: Request<Incoming>, facts: &mut Facts) -> Response<Body> {
    match route(shared, req, facts).await {
        Ok(r) => r,
        Err(s) => error(&s),
    }
}

async fn route(
    shared: &Shared,
    req: Request<Incoming>,
    facts: &mut Facts,
) -> Reply<Response<Body>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (method.clone(), path.as_str()) {
        (Method::GET, "/v2/health/live") => {
            facts.api = "health";
            return Ok(json(200, &serde_json::json!({ "live": true })));
        }
        (Method::GET, "/v2/health/ready") => {
            facts.api = "health";
            let ready = shared.repo.ready();
            return Ok(json(
                if ready { 200 } else { 503 },
                &serde_json::json!({ "ready": ready }),
            ));
        }
        (Method::GET, "/metrics" | "/monitoring/prometheus/metrics") => {
            facts.api = "metrics";
            return Ok(text(
                200,
                shared.metrics.render(),
                "text/plain; version=0.0.4",
            ));
        }
        _ => {}
    }
    let auth = http::header(&req, "authorization");
    let split_key = http::header(&req, SPLIT_KEY);
    if let Some(rest) = path.strip_prefix("/v1/models/") {
        facts.api = "tfs_rest";
        let (name, sel, action) = tfs_path(rest)?;
        facts.model = name.clone();
        http::authorize(shared, auth.as_deref(), Some(&name))?;
        return match (method.clone(), action) {
            (Method::GET, "") => super::rest_tfs::status(shared, &name, &sel),
            (Method::GET, "metadata") => {
                super::rest_tfs::metadata(shared, &name, &sel, split_key.as_deref(), facts)
            }
            (Method::POST, ":predict") => {
                let loaded = shared.repo.resolve(&name, &sel, split_key.as_deref())?;
                facts.version = Some(loaded.version);
                let body = http::body(shared, req).await?;
                super::rest_tfs::predict(shared, loaded, &body, facts).await
            }
            (Method::POST, ":classify" | ":regress") => Err(Status::new(
                super::status::Code::Unimplemented,
                format!("{action} needs a TensorFlow classification or regression signature; use :predict"),
            )),
            _ => Err(Status::not_found(format!("no such endpoint: {method} {path}"))),
        };
    }
    if path == "/v2" || path == "/v2/" {
        facts.api = "kserve_rest";
        http::authorize(shared, auth.as_deref(), None)?;
        return Ok(json(200, &super::rest_kserve::server_metadata()));
    }
    if let Some(rest) = path.strip_prefix("/v2/models/") {
        facts.api = "kserve_rest";
        let (name, version, action) = kserve_path(rest)?;
        facts.model = name.clone();
        http::authorize(shared, auth.as_deref(), Some(&name))?;
        let sel = version.map_or(Selector::Any, Selector::Version);
        return match (method, action) {
            (Method::GET, "") => {
                super::rest_kserve::metadata(shared, &name, &sel, split_key.as_deref())
            }
            (Method::GET, "ready") => super::rest_kserve::ready(shared, &name, &sel),
            (Method::POST, "infer") => {
                let loaded = shared.repo.resolve(&name, &sel, split_key.as_deref())?;
                facts.version = Some(loaded.version);
                let header_len = req
                    .headers()
                    .get("inference-header-content-length")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = http::body(shared, req).await?;
                super::rest_kserve::infer(shared, loaded, &body, header_len.as_deref(), facts).await
            }
            _ => Err(Status::not_found(format!("no such endpoint: {path}"))),
        };
    }
    Err(Status::not_found(format!(
        "no such endpoint: {method} {path}"
    )))
}

/// `NAME[/versions/V|/labels/L][/metadata|:predict|…]` → (name, selector, action).
fn tfs_path(rest: &str) -> Reply<(String, Selector, &str)> {
    let (head, verb) = match rest.rfind(':') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let parts: Vec<&str> = head.split('/').collect();
    let bad = || Status::not_found(format!("malformed request path: /v1/models/{rest}"));
    let (name, sel, tail) = match parts.as_slice() {
        [name] => (*name, Selector::Any, None),
        [name, "metadata"] => (*name, Selector::Any, Some("metadata")),
        [name, "versions", v, tail @ ..] => {
            let v = v.parse().map_err(|_| bad())?;
            (*name, Selector::Version(v), tail.first().copied())
        }
        [name, "labels", l, tail @ ..] => {
            (*name, Selector::Label(l.to_string()), tail.first().copied())
        }
        _ => return Err(bad()),
    };
    if name.is_empty() {
        return Err(bad());
    }
    let action = match (tail, verb) {
        (None, v) => v,
        (Some("metadata"), "") => "metadata",
        _ => return Err(bad()),
    };
    Ok((name.to_string(), sel, action))
}

/// `NAME[/versions/V][/ready|/infer]` → (name, version, action).
fn kserve_path(rest: &str) -> Reply<(String, Option<u64>, &str)> {
    let parts: Vec<&str> = rest.split('/').collect();
    let bad = || Status::not_found(format!("malformed request path: /v2/models/{rest}"));
    let (name, version, tail) = match parts.as_slice() {
        [name, "versions", v, tail @ ..] => (*name, Some(v.parse().map_err(|_| bad())?), tail),
        [name, tail @ ..] => (*name, None, tail),
        [] => return Err(bad()),
    };
    let action = match tail {
        [] => "",
        [a @ ("ready" | "infer")] => a,
        _ => return Err(bad()),
    };
    if name.is_empty() {
        return Err(bad());
    }
    Ok((name.to_string(), version, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_serving_paths_name_model_version_label_and_verb() {
        let (n, s, a) = tfs_path("m/versions/3:predict").unwrap();
        assert_eq!((n.as_str(), a), ("m", ":predict"));
        assert!(matches!(s, Selector::Version(3)));
        let (_, s, a) = tfs_path("m/labels/canary/metadata").unwrap();
        assert_eq!(a, "metadata");
        assert!(matches!(s, Selector::Label(ref l) if l == "canary"));
        assert!(tfs_path("m/versions/x:predict").is_err());
        assert!(tfs_path("m/bogus/1").is_err());
        let (n, v, a) = kserve_path("m/versions/2/infer").unwrap();
        assert_eq!((n.as_str(), v, a), ("m", Some(2), "infer"));
        assert!(kserve_path("m/other").is_err());
    }
}
