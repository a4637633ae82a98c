//! Listeners and connections: HTTP/1.1 and HTTP/2 (with or without TLS) on every port, gRPC
//! told apart by its content type; and what every request passes before an API sees it — the
//! body size limit, the rate limit, the access log and the request metrics.

use super::metrics::Record;
use super::status::{Code, Status};
use super::Shared;
use crate::error::{failed, Result};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::TlsAcceptor;

pub type Body = BoxBody<Bytes, Infallible>;

/// What a handler reports about the request for metrics and the access log.
#[derive(Default)]
pub struct Facts {
    pub api: &'static str,
    pub model: String,
    pub version: Option<u64>,
    pub queue: Duration,
    pub inference: Duration,
    pub batch: Option<usize>,
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| failed(format!("{}: {e}", cert.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| failed(format!("{}: {e}", cert.display())))?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| failed(format!("{}: {e}", key.display())))?;
    // ring, not aws-lc-rs: it builds with the C compiler alone (no cmake); its lack of
    // post-quantum key exchange is what the deprecation is about.
    #[allow(deprecated)]
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| failed(format!("TLS certificate and key: {e}")))?;
    // gRPC needs HTTP/2, negotiated by ALPN.
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Accepts connections until `stop`, then waits for the open ones to finish their requests.
pub async fn accept(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    tls: Option<TlsAcceptor>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let svc = hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(shared, peer, req).await) }
        });
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        match &tls {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await
                    else {
                        return;
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(tls), svc)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await;
}

async fn handle(shared: Arc<Shared>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    shared.metrics.enter();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let grpc = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/grpc"));
    let mut facts = Facts::default();
    let response = match admit(&shared, peer, &path) {
        Err(s) if grpc => super::grpc::error(&s),
        Err(s) => super::rest::error(&s),
        Ok(()) if grpc => super::grpc::handle(&shared, req, &mut facts).await,
        Ok(()) => super::rest::handle(&shared, req, &mut facts).await,
    };
    let status = if grpc {
        super::grpc::http_equivalent(&response)
    } else {
        response.status().as_u16()
    };
    let total = start.elapsed();
    shared.metrics.leave();
    let api = if facts.api.is_empty() {
        "other"
    } else {
        facts.api
    };
    shared.metrics.record(&Record {
        model: &facts.model,
        version: facts.version,
        api,
        status,
        queue: facts.queue,
        inference: facts.inference,
        total,
        batch: facts.batch,
    });
    if shared.config.access_log {
        let line = serde_json::json!({
            "peer": peer.to_string(),
            "method": method,
            "path": path,
            "api": api,
            "model": facts.model,
            "version": facts.version,
            "status": status,
            "ms": (total.as_secs_f64() * 1e3 * 1000.0).round() / 1000.0,
        });
        // Access lines go to stdout (the server's own log to stderr); a closed stdout is
        // ignored rather than failing the request.
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
    response
}

/// The rate limit, before anything of the request is read. Health probes are never limited.
fn admit(shared: &Shared, peer: SocketAddr, path: &str) -> Result<(), Status> {
    if path.starts_with("/v2/health") || path == "/metrics" {
        return Ok(());
    }
    match &shared.limit {
        Some(l) => l.admit(&peer.ip().to_string()),
        None => Ok(()),
    }
}

/// Reads a request body, refusing one past the size limit.
pub async fn body(shared: &Shared, req: Request<Incoming>) -> Result<Bytes, Status> {
    let max = shared.config.max_body_bytes;
    if let Some(len) = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > max {
            drain(req.into_body(), len - max).await;
            return Err(too_large(max));
        }
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large(max))
        }
        Err(e) => Err(Status::invalid(format!("reading the request body: {e}"))),
    }
}

/// How much of a body past the limit is still read (and dropped), and for how long.
const DRAIN_BYTES: usize = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads and drops a refused body when what is past the limit is small enough: an HTTP/1
/// client that sends its whole body before reading the reply (Python's urllib, requests,
/// tritonclient.http) otherwise meets a connection closed mid-send instead of the 413.
async fn drain(body: Incoming, excess: usize) {
    if excess > DRAIN_BYTES {
        return;
    }
    // Its Content-Length bounds what hyper reads.
    let mut body = body;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}

fn too_large(max: usize) -> Status {
    Status::new(
        Code::TooLarge,
        format!("request body is larger than the limit of {max} bytes (--max-body-mb)"),
    )
}

/// A request header's value as text, if it has one.
pub fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Checks the bearer token when tokens are configured.
pub fn authorize(shared: &Shared, header: Option<&str>, model: Option<&str>) -> Result<(), Status> {
    match &shared.config.tokens {
        Some(t) => t.check(header, model),
        None => Ok(()),
    }
}
