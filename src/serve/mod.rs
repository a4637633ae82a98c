//! `mdeploy serve`: models in any format mdeploy reads, served over TensorFlow Serving's REST
//! and gRPC APIs and KServe's Open Inference Protocol v2 (REST and gRPC), from one process.
//!
//! Layout: [`config`] (flags and the model config file), [`repo`] (versions: background
//! loading, warm-up, unloading, the choice of a version per request), [`model`] (one loaded
//! version: an [`crate::eval::Engine`] and its [`signature`]), [`http`] (listeners, TLS, the
//! checks every request passes), [`rest`] and [`grpc`] (the four APIs), [`metrics`],
//! [`auth`]. Inference runs on blocking threads, at most `max_concurrency` at once.

pub mod auth;
mod batch;
pub mod config;
mod grpc;
mod grpc_kserve;
mod grpc_tfs;
mod http;
mod json;
mod metrics;
mod model;
mod repo;
mod rest;
mod rest_kserve;
mod rest_tfs;
mod signature;
mod status;
mod textproto;

pub use batch::BatchConfig;
pub use config::{ModelConfig, Policy, ServeConfig};

use crate::error::{failed, Result};
use crate::ir::Tensor;
use status::{Code, Reply, Status};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the server's log lines go.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// What every request handler shares.
pub(crate) struct Shared {
    repo: repo::Repository,
    metrics: Arc<metrics::Metrics>,
    config: ServeConfig,
    gate: Arc<tokio::sync::Semaphore>,
    limit: Option<auth::RateLimit>,
    log: Log,
}

/// An inference's results and where its time went.
pub(crate) struct Ran {
    outputs: Vec<Tensor>,
    queue: Duration,
    inference: Duration,
    /// The rows of the run this request's rows were part of (dynamic batching).
    batch: Option<usize>,
}

impl Shared {
    /// Checks named request tensors against the version's signature, runs them, and records
    /// where the time went (and the batch they ran in) for the metrics.
    async fn infer(
        &self,
        loaded: &Arc<model::Loaded>,
        given: Vec<(String, Tensor)>,
        facts: &mut http::Facts,
    ) -> Reply<Vec<Tensor>> {
        let inputs = loaded.signature.arrange(given)?;
        let rows = inputs.first().and_then(|t| t.shape.first().copied());
        let ran = self.run(loaded.clone(), inputs).await?;
        facts.queue = ran.queue;
        facts.inference = ran.inference;
        facts.batch = ran.batch.or(rows);
        Ok(ran.outputs)
    }

    /// Runs a version on checked inputs: waits for a free slot (queue time), runs on a blocking
    /// thread, gives up after the request timeout (the run itself finishes in the background).
    async fn run(&self, loaded: Arc<model::Loaded>, inputs: Vec<Tensor>) -> Reply<Ran> {
        if let Some(b) = &loaded.batcher {
            let batched = b.submit(loaded.clone(), inputs);
            return tokio::time::timeout(self.config.request_timeout, batched)
                .await
                .map_err(|_| self.timed_out())?;
        }
        let start = Instant::now();
        let work = async {
            let permit = self
                .gate
                .acquire()
                .await
                .map_err(|_| Status::new(Code::Unavailable, "the server is shutting down"))?;
            let queue = start.elapsed();
            let began = Instant::now();
            let outputs = tokio::task::spawn_blocking(move || loaded.run(&inputs))
                .await
                .map_err(|e| Status::new(Code::Internal, format!("inference failed: {e}")))?
                .map_err(|e| Status::new(Code::InvalidArgument, e.to_string()))?;
            drop(permit);
            Ok(Ran {
                outputs,
                queue,
                inference: began.elapsed(),
                batch: None,
            })
        };
        tokio::time::timeout(self.config.request_timeout, work)
            .await
            .map_err(|_| self.timed_out())?
    }

    fn timed_out(&self) -> Status {
        Status::new(
            Code::DeadlineExceeded,
            format!(
                "no result within the request timeout ({} ms)",
                self.config.request_timeout.as_millis()
            ),
        )
    }
}

/// Serves until SIGTERM or Ctrl-C, then stops accepting, finishes the requests in flight and
/// returns. Logs what it serves on which ports through `log`.
pub fn serve(config: ServeConfig, log: Log) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("starting the server runtime: {e}")))?;
    rt.block_on(run(config, log))
}

async fn run(config: ServeConfig, log: Log) -> Result<()> {
    let metrics = Arc::new(metrics::Metrics::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(config.max_concurrency.max(1)));
    let batching = config.batching.map(|b| (b, gate.clone()));
    let shared = Arc::new(Shared {
        repo: repo::Repository::new(&config.models, batching, metrics.clone(), log.clone()),
        metrics,
        gate,
        limit: config.rate_limit.map(auth::RateLimit::new),
        config,
        log,
    });
    let tls = match &shared.config.tls {
        Some((cert, key)) => Some(http::tls_acceptor(cert, key)?),
        None => None,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut listeners = Vec::new();
    for (port, api) in [
        (shared.config.rest_port, "REST (TF Serving v1, KServe v2)"),
        (shared.config.grpc_port, "gRPC (TF Serving, KServe v2)"),
    ] {
        let Some(port) = port else { continue };
        let addr = std::net::SocketAddr::new(shared.config.host, port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| failed(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener.local_addr().map_err(|e| failed(e.to_string()))?;
        (shared.log)(&format!(
            "{api} on {}{bound}",
            if tls.is_some() { "https://" } else { "http://" }
        ));
        listeners.push(tokio::spawn(http::accept(
            shared.clone(),
            listener,
            tls.clone(),
            stop_rx.clone(),
        )));
    }
    let poller = tokio::spawn(poll_forever(shared.clone(), stop_rx.clone()));
    shutdown_signal().await;
    (shared.log)("shutting down: no new connections; finishing the requests in flight");
    let _ = stop_tx.send(true);
    for l in listeners {
        let _ = l.await;
    }
    poller.abort();
    (shared.log)("stopped");
    Ok(())
}

/// Looks at the model folders at start (twice, a moment apart, so a folder still being copied
/// is not loaded) and then every poll interval, on a blocking thread.
async fn poll_forever(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let settle = shared
        .config
        .poll
        .clamp(Duration::from_millis(20), Duration::from_millis(200));
    let mut looks = 0u64;
    loop {
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || s.repo.poll()).await;
        looks += 1;
        let gap = if looks == 1 {
            settle
        } else if shared.config.poll.is_zero() {
            return;
        } else {
            shared.config.poll
        };
        tokio::select! {
            _ = tokio::time::sleep(gap) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
