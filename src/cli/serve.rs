//! `mdeploy serve`: serve a model root (TF Serving's `NAME/VERSION/` layout) or one model file
//! over TF Serving's and KServe's REST and gRPC APIs. Every flag can also come from the
//! environment (`MDEPLOY_…`), for containers.

use clap::Args;
use mdeploy::error::{Error, Result};
use mdeploy::serve::{self, config, ModelConfig, ServeConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(
    about = "Serve models over TF Serving's and KServe's REST and gRPC APIs",
    after_help = "MODEL is a folder laid out as TF Serving's (MODEL/NAME/VERSION/ holding a \
SavedModel folder, a TF.js folder, or one .onnx/.h5/.keras/.tflite file), or one model file \
(served as --name, version 1).\n\n\
Endpoints (on both ports; gRPC is told apart by its content type):\n  \
POST /v1/models/NAME[/versions/V|/labels/L]:predict   TF Serving REST\n  \
GET  /v1/models/NAME[/versions/V][/metadata]          status, signature\n  \
POST /v2/models/NAME[/versions/V]/infer               KServe v2 REST\n  \
GET  /v2/health/live, /v2/health/ready                probes\n  \
GET  /metrics, /monitoring/prometheus/metrics         Prometheus\n  \
gRPC tensorflow.serving.PredictionService, tensorflow.serving.ModelService, \
inference.GRPCInferenceService\n\n\
Examples:\n  mdeploy serve /models\n  mdeploy serve model.onnx --name mlp --rest-port 8080 --no-grpc\n  \
mdeploy serve /models --config models.config --auth-tokens tokens.txt --rate-limit 100\n\n\
Exit codes: 0 after a clean shutdown (SIGTERM, Ctrl-C), 1 failure, 2 usage error."
)]
pub struct ServeArgs {
    /// Model root (NAME/VERSION/ folders) or one model file.
    #[arg(env = "MDEPLOY_MODEL")]
    pub model: PathBuf,
    /// The name a single model file is served as (default: the file name's stem).
    #[arg(long, env = "MDEPLOY_NAME")]
    pub name: Option<String>,
    /// TF Serving's model_config_list text file (versions policy, labels; mdeploy adds
    /// traffic_split { version: V weight: W }). Relative base_path values are under MODEL.
    #[arg(long, env = "MDEPLOY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0", env = "MDEPLOY_HOST")]
    pub host: std::net::IpAddr,
    /// REST port (0: any free port, logged at start).
    #[arg(long, default_value_t = 8501, env = "MDEPLOY_REST_PORT")]
    pub rest_port: u16,
    /// gRPC port (0: any free port).
    #[arg(long, default_value_t = 8500, env = "MDEPLOY_GRPC_PORT")]
    pub grpc_port: u16,
    /// Do not open the REST port.
    #[arg(long)]
    pub no_rest: bool,
    /// Do not open the gRPC port.
    #[arg(long)]
    pub no_grpc: bool,
    /// Seconds between looks at the model folders for new and removed versions (0: only at
    /// start).
    #[arg(long, default_value_t = 2.0, env = "MDEPLOY_POLL_SECONDS")]
    pub poll_seconds: f64,
    /// Largest request body, in MiB (413 past it).
    #[arg(long, default_value_t = 64, env = "MDEPLOY_MAX_BODY_MB")]
    pub max_body_mb: usize,
    /// Request timeout in milliseconds (504 / DEADLINE_EXCEEDED past it).
    #[arg(long, default_value_t = 30_000, env = "MDEPLOY_TIMEOUT_MS")]
    pub timeout_ms: u64,
    /// Inference runs at once (default: the number of cores); more requests wait.
    #[arg(long, env = "MDEPLOY_MAX_CONCURRENCY")]
    pub max_concurrency: Option<usize>,
    /// Requests per second per client address (429 past it).
    #[arg(long, env = "MDEPLOY_RATE_LIMIT")]
    pub rate_limit: Option<f64>,
    /// Bearer tokens, one per line: `TOKEN [model,model…]` (401 without one, 403 for a model
    /// the token may not use).
    #[arg(long, env = "MDEPLOY_AUTH_TOKENS")]
    pub auth_tokens: Option<PathBuf>,
    /// TLS certificate chain (PEM); with --tls-key, every port speaks TLS.
    #[arg(long, requires = "tls_key", env = "MDEPLOY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert", env = "MDEPLOY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Dynamic batching: merge concurrent requests to one version into runs of up to this many
    /// rows (models whose inputs and outputs all have a run-time first dimension).
    #[arg(long, env = "MDEPLOY_MAX_BATCH_SIZE")]
    pub max_batch_size: Option<usize>,
    /// With --max-batch-size: how long the first request of a batch waits for others.
    #[arg(
        long,
        default_value_t = 2,
        requires = "max_batch_size",
        env = "MDEPLOY_BATCH_TIMEOUT_MS"
    )]
    pub batch_timeout_ms: u64,
    /// No access log line per request on stdout.
    #[arg(long)]
    pub no_access_log: bool,
}

fn models(a: &ServeArgs) -> Result<Vec<ModelConfig>> {
    if a.model.is_file() {
        let name = match &a.name {
            Some(n) => n.clone(),
            None => a
                .model
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("model")
                .to_string(),
        };
        let mut m = ModelConfig::new(&name, a.model.clone());
        m.single_file = true;
        return Ok(vec![m]);
    }
    if a.name.is_some() {
        return Err(Error::Usage(
            "--name names a single model file; a model root's folders are the names".into(),
        ));
    }
    match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
            config::parse_model_config(&text, &a.model)
        }
        None => config::models_in_root(&a.model),
    }
}

pub fn run(a: ServeArgs, quiet: bool) -> Result<()> {
    if !a.model.exists() {
        return Err(Error::Usage(format!(
            "{}: no such file or folder",
            a.model.display()
        )));
    }
    if !(a.poll_seconds >= 0.0 && a.poll_seconds.is_finite()) {
        return Err(Error::Usage(
            "--poll-seconds must be a non-negative number".into(),
        ));
    }
    if a.rate_limit.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(Error::Usage(
            "--rate-limit must be a positive number".into(),
        ));
    }
    let mut c = ServeConfig::new(models(&a)?);
    c.host = a.host;
    c.rest_port = (!a.no_rest).then_some(a.rest_port);
    c.grpc_port = (!a.no_grpc).then_some(a.grpc_port);
    if c.rest_port.is_none() && c.grpc_port.is_none() {
        return Err(Error::Usage(
            "--no-rest and --no-grpc leave nothing to serve".into(),
        ));
    }
    c.poll = Duration::from_secs_f64(a.poll_seconds);
    c.max_body_bytes = a.max_body_mb.saturating_mul(1 << 20);
    c.request_timeout = Duration::from_millis(a.timeout_ms.max(1));
    if let Some(n) = a.max_concurrency {
        c.max_concurrency = n.max(1);
    }
    c.rate_limit = a.rate_limit;
    c.tokens = a
        .auth_tokens
        .as_deref()
        .map(serve::auth::Tokens::read)
        .transpose()?;
    c.tls = a.tls_cert.zip(a.tls_key);
    c.access_log = !a.no_access_log;
    c.batching = a.max_batch_size.map(|n| serve::BatchConfig {
        max_batch_size: n.max(1),
        timeout: Duration::from_millis(a.batch_timeout_ms),
    });
    for m in &c.models {
        if !quiet {
            eprintln!(
                "mdeploy serve: model '{}' from {}",
                m.name,
                m.base_path.display()
            );
        }
    }
    let log: serve::Log = Arc::new(move |msg: &str| {
        if !quiet {
            eprintln!("mdeploy serve: {msg}");
        }
    });
    serve::serve(c, log)
}
