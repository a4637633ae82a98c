//! `cargo xtask bench`, serving section (`cargo xtask bench serve` runs only this one):
//! `mdeploy serve` (release binary) beside what a user writes instead — FastAPI + onnxruntime
//! under uvicorn, one worker per core (`xtask/scripts/serve_fastapi.py`) — serving the same ONNX
//! files with TF Serving's REST contract, in the same run. Per model: throughput and p50/p99
//! latency at 1, 8 and 32 concurrent clients over REST (both servers) and mdeploy's two gRPC APIs
//! (FastAPI has none), plus mdeploy's batched REST when the binary has `--max-batch-size`; the
//! server's RSS against the weight bytes; the time from a new version folder appearing to its
//! first answer; tract's inference time (mdeploy's own histogram) against onnxruntime's in-process.
//! The load generator, probes and FastAPI server run from a pinned venv the bench installs
//! (`xtask/scripts/serve-requirements.txt`). Each cell is bounded in time and request count.
//! Figures only: no timed assertions.

use crate::bench_serve_report::{self as report, LoadRun, ModelResult};
use crate::util;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seconds per (server, API, concurrency) cell; `MDEPLOY_SERVE_BENCH_SECONDS` overrides.
const CELL_SECONDS: f64 = 4.0;
const MAX_REQUESTS: usize = 5000;
const CONCURRENCY: &str = "1,8,32";
const READY_TIMEOUT: Duration = Duration::from_secs(180);

pub struct Model {
    pub label: &'static str,
    pub name: &'static str,
    pub onnx: PathBuf,
    pub input: PathBuf,
    pub weight_mb: f64,
    /// Client counts measured, comma-separated.
    pub concs: &'static str,
}

struct Ctx {
    mdeploy: PathBuf,
    python: PathBuf,
    load: PathBuf,
    fastapi_dir: PathBuf,
    out_dir: PathBuf,
    seconds: f64,
    cores: usize,
    /// `--max-batch-size` / `--batch-timeout-ms` when this binary has them.
    batching: Option<Vec<&'static str>>,
}

/// Runs the serving section; returns JSON records for `bench.json`.
pub fn run(
    repo: &Path,
    mdeploy: &Path,
    conformance_python: &Path,
    out_dir: &Path,
) -> Result<Vec<String>> {
    util::header("serving: mdeploy serve vs FastAPI + onnxruntime");
    let scripts = repo.join("xtask").join("scripts");
    let python = crate::python::ensure_venv_at(
        &out_dir.join("serve-venv"),
        &scripts.join("serve-requirements.txt"),
    )?;
    let help = util::output(Command::new(mdeploy).args(["serve", "--help"])).unwrap_or_default();
    let ctx = Ctx {
        mdeploy: mdeploy.to_path_buf(),
        load: scripts.join("serve_load.py"),
        fastapi_dir: scripts.clone(),
        out_dir: out_dir.to_path_buf(),
        seconds: std::env::var("MDEPLOY_SERVE_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(CELL_SECONDS),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        batching: (help.contains("--max-batch-size") && help.contains("--batch-timeout-ms"))
            .then(|| vec!["--max-batch-size", "8", "--batch-timeout-ms", "2"]),
        python,
    };
    let (models, skipped) = models(repo, mdeploy, conformance_python, &ctx)?;
    let mut results = Vec::new();
    for m in &models {
        util::header(&format!("serving: {}", m.label));
        results.push(bench_model(&ctx, m)?);
    }
    println!("\n{}", report::tables(&results, ctx.seconds, ctx.cores));
    for s in skipped {
        println!("skipped: {s}");
    }
    if ctx.batching.is_none() {
        println!("no batched run: this mdeploy has no --max-batch-size/--batch-timeout-ms");
    }
    Ok(report::json(&results))
}

/// Builds (once, into `out_dir`) the models and their one-row inputs; a model whose framework
/// is not installed is skipped with the reason.
fn models(
    repo: &Path,
    mdeploy: &Path,
    conformance_python: &Path,
    ctx: &Ctx,
) -> Result<(Vec<Model>, Vec<String>)> {
    let scripts = repo.join("xtask").join("scripts");
    let mut models = mlps(&scripts, conformance_python, ctx)?;
    let mut skipped = Vec::new();
    match crate::bench_tflite::tf_python() {
        Ok(tf) => models.push(mobilenet(&scripts, &tf, mdeploy, &ctx.out_dir)?),
        Err(why) => skipped.push(format!("MobileNetV2: {why}")),
    }
    match text_model(&scripts, &ctx.out_dir) {
        Ok(m) => models.push(m),
        Err(e) => skipped.push(format!(
            "text model: {e:#} (set MDEPLOY_TORCH_PYTHON to a Python with torch and onnx)"
        )),
    }
    Ok((models, skipped))
}

/// The MLP served at every concurrency is small enough (12.6 MB) for mdeploy to keep one plan;
/// the conversion bench's 106 MB MLP is past the engine's 16 MiB piece size, so every request
/// re-plans it: measured at one client only, to show that cost.
fn mlps(scripts: &Path, conformance_python: &Path, ctx: &Ctx) -> Result<Vec<Model>> {
    let small = (
        "serve_mlp.onnx",
        1024,
        3,
        "MLP 3 x Gemm 1024",
        "mlp",
        CONCURRENCY,
    );
    let big = (
        "big_mlp.onnx",
        2304,
        5,
        "MLP 5 x Gemm 2304 (1 client)",
        "bigmlp",
        "1",
    );
    let mut models = Vec::new();
    for (file, width, layers, label, name, concs) in [small, big] {
        let onnx = ctx.out_dir.join(file);
        if !onnx.exists() {
            util::run(
                "generate an MLP",
                Command::new(conformance_python)
                    .arg(scripts.join("make_big_onnx.py"))
                    .arg(&onnx)
                    .args([width.to_string(), layers.to_string()]),
            )?;
        }
        let input = ctx.out_dir.join(format!("{name}_input.npy"));
        util::run(
            "MLP input row",
            Command::new(&ctx.python).arg("-c").arg(format!(
                "import numpy as np; np.save({:?}, np.random.default_rng(0).standard_normal((1, {width}), dtype=np.float32))",
                input.display().to_string()
            )),
        )?;
        let mut m = model(label, name, onnx, input);
        m.concs = concs;
        models.push(m);
    }
    Ok(models)
}

/// The TFLite section's Keras MobileNetV2 (built with TensorFlow if not yet), converted to ONNX
/// by mdeploy.
fn mobilenet(scripts: &Path, tf: &Path, mdeploy: &Path, dir: &Path) -> Result<Model> {
    let keras = dir.join("mobilenetv2.keras");
    let input = dir.join("mobilenetv2_input.npy");
    if !keras.exists() || !input.exists() {
        util::run(
            "build MobileNetV2",
            Command::new(tf)
                .arg(scripts.join("bench_tflite.py"))
                .arg("build")
                .arg(dir),
        )?;
    }
    let onnx = dir.join("mobilenetv2.onnx");
    util::run(
        "MobileNetV2 .keras -> ONNX (mdeploy)",
        Command::new(mdeploy)
            .arg("convert")
            .arg(&keras)
            .args(["--to", "onnx", "--quiet", "-o"])
            .arg(&onnx),
    )?;
    let label = "MobileNetV2 224x224 (Keras -> ONNX)";
    Ok(model(label, "mobilenetv2", onnx, input))
}

/// The text classifier, exported by PyTorch (`MDEPLOY_TORCH_PYTHON`, else the fixture venv).
fn text_model(scripts: &Path, dir: &Path) -> Result<Model> {
    let torch = std::env::var_os("MDEPLOY_TORCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root/.cache/mdeploy-fixvenv/bin/python"));
    let onnx = dir.join("text_gru.onnx");
    let input = dir.join("text_input.npy");
    if !onnx.exists() || !input.exists() {
        util::run(
            "build the text model (PyTorch)",
            Command::new(&torch)
                .arg(scripts.join("make_text_onnx.py"))
                .arg(&onnx),
        )?;
    }
    let label = "text: Embedding + 2-layer GRU, 64 int64 ids";
    Ok(model(label, "text", onnx, input))
}

fn model(label: &'static str, name: &'static str, onnx: PathBuf, input: PathBuf) -> Model {
    let weight_mb = std::fs::metadata(&onnx).map_or(0.0, |m| m.len() as f64 / 1e6);
    Model {
        label,
        name,
        onnx,
        input,
        weight_mb,
        concs: CONCURRENCY,
    }
}

/// Every server and API for one model.
fn bench_model(ctx: &Ctx, m: &Model) -> Result<ModelResult> {
    let mut r = ModelResult::new(m);
    let root = ctx.out_dir.join("serve-root");
    let _ = std::fs::remove_dir_all(&root);
    let v1 = root.join(m.name).join("1");
    std::fs::create_dir_all(&v1)?;
    std::fs::copy(&m.onnx, v1.join("model.onnx")).context("copying the model into the root")?;

    let server = start_mdeploy(ctx, &root, &[])?;
    r.mdeploy_ready_s = server.ready_secs;
    let grpc = format!("127.0.0.1:{}", server.grpc);
    let rest = format!("127.0.0.1:{}", server.rest);
    let metrics = Some(rest.as_str());
    r.rows.push((
        "mdeploy REST (TF Serving v1)",
        load(ctx, m, "rest", &rest, server.pid, metrics)?,
    ));
    r.rows.push((
        "mdeploy gRPC (TF Serving)",
        load(ctx, m, "tfs-grpc", &grpc, server.pid, metrics)?,
    ));
    r.rows.push((
        "mdeploy gRPC (KServe v2)",
        load(ctx, m, "kserve-grpc", &grpc, server.pid, metrics)?,
    ));
    r.mdeploy_peak_mb = peak_mb(server.pid);
    r.hotadd_s = probe(
        Command::new(&ctx.python)
            .arg(&ctx.load)
            .arg("hotadd")
            .args(model_args(m))
            .arg("--root")
            .arg(&root)
            .args(["--name", m.name, "--addr", &rest]),
        "hotadd seconds",
    )?;
    drop(server);
    // The next server starts from version 1 alone again.
    let _ = std::fs::remove_dir_all(root.join(m.name).join("2"));

    if let Some(flags) = &ctx.batching {
        let s = start_mdeploy(ctx, &root, flags)?;
        let rest = format!("127.0.0.1:{}", s.rest);
        let run = load(ctx, m, "rest", &rest, s.pid, Some(rest.as_str()))?;
        r.rows.push(("mdeploy REST, batching (max 8, 2 ms)", run));
    }

    let fastapi = start_fastapi(ctx, m)?;
    let addr = format!("127.0.0.1:{}", fastapi.rest);
    r.rows.insert(
        1,
        (
            "FastAPI + onnxruntime REST",
            load(ctx, m, "rest", &addr, fastapi.pid, None)?,
        ),
    );
    r.fastapi_peak_mb = peak_mb(fastapi.pid);
    drop(fastapi);

    let ort = Command::new(&ctx.python)
        .arg(&ctx.load)
        .arg("ort")
        .args(model_args(m))
        .output()
        .context("timing onnxruntime")?;
    let text = String::from_utf8_lossy(&ort.stdout);
    r.ort_default_ms = report::field(&text, "ort_default", "mean_ms");
    r.ort_1thread_ms = report::field(&text, "ort_1thread", "mean_ms");
    Ok(r)
}

fn model_args(m: &Model) -> Vec<std::ffi::OsString> {
    vec![
        "--model".into(),
        m.onnx.clone().into(),
        "--input".into(),
        m.input.clone().into(),
    ]
}

/// One load-generator run (every concurrency) against one server and API.
fn load(
    ctx: &Ctx,
    m: &Model,
    proto: &str,
    addr: &str,
    pid: u32,
    metrics: Option<&str>,
) -> Result<LoadRun> {
    let mut cmd = Command::new(&ctx.python);
    cmd.arg(&ctx.load)
        .arg("run")
        .args(model_args(m))
        .args([
            "--name", m.name, "--proto", proto, "--addr", addr, "--conc", m.concs,
        ])
        .args(["--seconds", &ctx.seconds.to_string()])
        .args(["--max-requests", &MAX_REQUESTS.to_string()])
        .args(["--server-pid", &pid.to_string()]);
    if let Some(a) = metrics {
        cmd.args(["--metrics", a]);
    }
    eprintln!("    {proto} on {addr}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("running the load generator")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprint!("{text}");
    if !out.status.success() {
        bail!("load generator failed ({proto}, {}):\n{text}", m.name);
    }
    Ok(LoadRun::parse(&text))
}

/// Runs a probe and returns the number after `key=` in its output.
fn probe(cmd: &mut Command, key: &str) -> Result<f64> {
    let out = cmd.output().context("running a probe")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (head, k) = key.split_once(' ').unwrap_or((key, ""));
    Ok(report::field(&text, head, k))
}

/// Peak RSS (VmHWM) of a process and its descendants, in MB.
fn peak_mb(pid: u32) -> f64 {
    let mut todo = vec![pid];
    let mut total_kb = 0.0;
    while let Some(p) = todo.pop() {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/status")) {
            total_kb += s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
        todo.extend(children(p));
    }
    total_kb / 1024.0
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![];
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// A server the bench started; SIGTERM (then SIGKILL after 10 s) when dropped, so uvicorn
/// stops its workers and mdeploy drains.
struct Server {
    child: Child,
    pid: u32,
    rest: u16,
    grpc: u16,
    ready_secs: f64,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid, which it keeps until we reap it below.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mdeploy serve ROOT` on free ports; ready when version 1 is serving (loaded and warmed up).
fn start_mdeploy(ctx: &Ctx, root: &Path, extra: &[&str]) -> Result<Server> {
    let start = Instant::now();
    let mut child = Command::new(&ctx.mdeploy)
        .arg("serve")
        .arg(root)
        .args([
            "--rest-port",
            "0",
            "--grpc-port",
            "0",
            "--host",
            "127.0.0.1",
        ])
        .args(["--no-access-log", "--poll-seconds", "0.5"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting mdeploy serve")?;
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    if let Some(err) = child.stderr.take() {
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
    }
    let pid = child.id();
    let mut server = Server {
        child,
        pid,
        rest: 0,
        grpc: 0,
        ready_secs: 0.0,
    };
    let port = |lines: &[String], tag: &str| {
        lines.iter().find_map(|l| {
            let (_, addr) = l.split_once(tag)?;
            addr.rsplit(':').next()?.trim().parse::<u16>().ok()
        })
    };
    while start.elapsed() < READY_TIMEOUT {
        let lines = log.lock().map(|l| l.clone()).unwrap_or_default();
        if lines.iter().any(|l| l.contains("version 1: serving")) {
            server.rest = port(&lines, "REST (").context("no REST port in the log")?;
            server.grpc = port(&lines, "gRPC (").context("no gRPC port in the log")?;
            server.ready_secs = start.elapsed().as_secs_f64();
            return Ok(server);
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("mdeploy serve exited with {status}:\n{}", lines.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("mdeploy serve was not ready in {READY_TIMEOUT:?}")
}

/// uvicorn with one worker per core on a free port; ready when the status endpoint answers.
fn start_fastapi(ctx: &Ctx, m: &Model) -> Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let start = Instant::now();
    let child = Command::new(&ctx.python)
        .args(["-m", "uvicorn", "serve_fastapi:app", "--app-dir"])
        .arg(&ctx.fastapi_dir)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--workers", &ctx.cores.to_string()])
        .args(["--no-access-log", "--log-level", "warning"])
        .env("MODEL_PATH", &m.onnx)
        .env("MODEL_NAME", m.name)
        .stdout(Stdio::null())
        .spawn()
        .context("starting uvicorn")?;
    let pid = child.id();
    let mut server = Server {
        child,
        pid,
        rest: port,
        grpc: 0,
        ready_secs: 0.0,
    };
    // Every worker loads its own session; wait until the workers have all started too.
    while start.elapsed() < READY_TIMEOUT {
        if http_status(port, &format!("/v1/models/{}", m.name)) == Some(200)
            && children(pid).len() >= ctx.cores
        {
            server.ready_secs = start.elapsed().as_secs_f64();
            return Ok(server);
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("uvicorn exited with {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the FastAPI server was not ready in {READY_TIMEOUT:?}")
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
