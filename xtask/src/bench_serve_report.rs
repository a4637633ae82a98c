//! The serving bench's results: parsing the load generator's `key=value` lines, the per-model
//! tables (with mdeploy/FastAPI ratios), the summary table and the `bench.json` records.

use crate::bench_serve::Model;
use std::fmt::Write as _;

/// One load-generator cell: a concurrency and its figures (NaN when absent).
pub struct Cell {
    pub conc: usize,
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
    pub n: f64,
    pub errors: f64,
    pub client_cpu: f64,
    pub server_cpu: f64,
    pub infer_ms: f64,
}

/// One load-generator run: its answer check, the server's memory before and after, its cells.
pub struct LoadRun {
    pub check: String,
    pub rss_ready_mb: f64,
    pub cells: Vec<Cell>,
}

impl LoadRun {
    pub fn parse(text: &str) -> LoadRun {
        let cells = text
            .lines()
            .filter(|l| l.starts_with("cell "))
            .map(|l| Cell {
                conc: value(l, "conc") as usize,
                rps: value(l, "rps"),
                p50: value(l, "p50_ms"),
                p99: value(l, "p99_ms"),
                n: value(l, "n"),
                errors: value(l, "errors"),
                client_cpu: value(l, "client_cpu"),
                server_cpu: value(l, "server_cpu"),
                infer_ms: value(l, "infer_ms"),
            })
            .collect();
        LoadRun {
            check: text
                .lines()
                .find_map(|l| l.strip_prefix("check "))
                .unwrap_or("none")
                .to_string(),
            rss_ready_mb: field(text, "server", "rss_mb"),
            cells,
        }
    }

    fn at(&self, conc: usize) -> Option<&Cell> {
        self.cells.iter().find(|c| c.conc == conc)
    }
}

/// `key=value` in one line, as a number (NaN when absent).
fn value(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `key=value` in the first line of `text` starting with `head `.
pub fn field(text: &str, head: &str, key: &str) -> f64 {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(head))
        .map_or(f64::NAN, |l| value(l, key))
}

pub struct ModelResult {
    pub label: &'static str,
    pub name: &'static str,
    pub weight_mb: f64,
    /// (server and API, run); the first is mdeploy REST, the second FastAPI REST.
    pub rows: Vec<(&'static str, LoadRun)>,
    pub mdeploy_ready_s: f64,
    pub mdeploy_peak_mb: f64,
    pub fastapi_peak_mb: f64,
    pub hotadd_s: f64,
    pub ort_default_ms: f64,
    pub ort_1thread_ms: f64,
}

impl ModelResult {
    pub fn new(m: &Model) -> Self {
        ModelResult {
            label: m.label,
            name: m.name,
            weight_mb: m.weight_mb,
            rows: Vec::new(),
            mdeploy_ready_s: f64::NAN,
            mdeploy_peak_mb: f64::NAN,
            fastapi_peak_mb: f64::NAN,
            hotadd_s: f64::NAN,
            ort_default_ms: f64::NAN,
            ort_1thread_ms: f64::NAN,
        }
    }

    /// tract's mean inference time at one client (mdeploy's own histogram, REST run).
    fn tract_ms(&self) -> f64 {
        self.rows
            .first()
            .and_then(|(_, r)| r.at(1))
            .map_or(f64::NAN, |c| c.infer_ms)
    }
}

const CONCS: [usize; 3] = [1, 8, 32];

/// Per-model throughput/latency tables, then the memory / hot-add / engine-speed summary.
pub fn tables(results: &[ModelResult], seconds: f64, cores: usize) -> String {
    let mut t = String::new();
    for r in results {
        let _ = writeln!(t, "{} ({:.1} MB of weights)", r.label, r.weight_mb);
        let _ = write!(t, "{:<38}", "server / API");
        for c in CONCS {
            let _ = write!(
                t,
                " | {:>8} {:>8} {:>8}",
                format!("{c} cl req/s"),
                "p50 ms",
                "p99 ms"
            );
        }
        let _ = writeln!(t, " | errors | client CPU");
        for (i, (name, run)) in r.rows.iter().enumerate() {
            let _ = write!(t, "{name:<38}");
            for c in CONCS {
                match run.at(c) {
                    Some(x) => {
                        let _ = write!(t, " | {:>8.1} {:>8.1} {:>8.1}", x.rps, x.p50, x.p99);
                    }
                    None => {
                        let _ = write!(t, " | {:>8} {:>8} {:>8}", "-", "-", "-");
                    }
                }
            }
            let errors: f64 = run.cells.iter().map(|c| c.errors).sum();
            let cpu = run.cells.iter().map(|c| c.client_cpu).fold(0.0, f64::max);
            let _ = writeln!(t, " | {errors:>6} | {cpu:>5.2}");
            if i == 1 {
                ratio_row(&mut t, &r.rows[0].1, run);
            }
        }
        let checks: Vec<String> = r
            .rows
            .iter()
            .map(|(n, run)| format!("{n}: {}", run.check))
            .collect();
        let _ = writeln!(
            t,
            "answers vs onnxruntime in-process: {}\n",
            checks.join("; ")
        );
    }
    summary(&mut t, results, cores);
    let _ = writeln!(
        t,
        "Each cell: C client threads (Python, one keep-alive connection or gRPC channel each) sending \
         the same one-row request back to back for {seconds} s (at most 5000 requests); latency per \
         request at the client. FastAPI: uvicorn --workers {cores}, one onnxruntime session per \
         worker (default options). mdeploy: release build, default --max-concurrency ({cores}). \
         client CPU = the generator's busiest cell in cores (of {cores}); client, servers and \
         other jobs share the machine's {cores} cores."
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let avg: Vec<&str> = load.split_whitespace().take(3).collect();
        let _ = writeln!(t, "load average at the end (1/5/15 min): {}", avg.join(" "));
    }
    t
}

fn ratio_row(t: &mut String, ours: &LoadRun, theirs: &LoadRun) {
    let _ = write!(t, "{:<38}", "  ratio mdeploy / FastAPI");
    for c in CONCS {
        match (ours.at(c), theirs.at(c)) {
            (Some(a), Some(b)) => {
                let _ = write!(
                    t,
                    " | {:>7.2}x {:>7.2}x {:>7.2}x",
                    a.rps / b.rps,
                    a.p50 / b.p50,
                    a.p99 / b.p99
                );
            }
            _ => {
                let _ = write!(t, " | {:>8} {:>8} {:>8}", "-", "-", "-");
            }
        }
    }
    let _ = writeln!(t, " |");
}

fn summary(t: &mut String, results: &[ModelResult], cores: usize) {
    let _ = writeln!(
        t,
        "{:<38} {:>8} {:>8} {:>9} {:>9} {:>8} {:>11} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "model",
        "weights",
        "ready s",
        "RSS MB",
        "peak MB",
        "peak/w",
        "FastAPI MB",
        "new ver s",
        "tract ms",
        "ORT1 ms",
        "ORT ms",
        "tract/ORT1"
    );
    for r in results {
        let rss_ready = r.rows.first().map_or(f64::NAN, |(_, run)| run.rss_ready_mb);
        let tract = r.tract_ms();
        let _ = writeln!(
            t,
            "{:<38} {:>8.1} {:>8.2} {:>9.1} {:>9.1} {:>8.2} {:>11.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.2}x",
            r.label,
            r.weight_mb,
            r.mdeploy_ready_s,
            rss_ready,
            r.mdeploy_peak_mb,
            r.mdeploy_peak_mb / r.weight_mb.max(1e-9),
            r.fastapi_peak_mb,
            r.hotadd_s,
            tract,
            r.ort_1thread_ms,
            r.ort_default_ms,
            tract / r.ort_1thread_ms
        );
    }
    let _ = writeln!(
        t,
        "weights = ONNX file MB; ready s = mdeploy serve start to version 1 loaded and warmed up; \
         RSS MB = mdeploy after its first request; peak MB = mdeploy's peak RSS over every load \
         cell; FastAPI MB = peak RSS summed over uvicorn and its {cores} workers; new ver s = from \
         the version folder NAME/2 appearing (atomic rename, --poll-seconds 0.5) to its first \
         200 answer; tract ms = mdeploy's mean inference time at 1 client (its Prometheus \
         histogram); ORT1 / ORT ms = onnxruntime session.run mean in-process, batch 1, one intra-op \
         thread / default threads."
    );
}

/// One record per cell and one summary per model.
pub fn json(results: &[ModelResult]) -> Vec<String> {
    let num = |x: f64| {
        if x.is_finite() {
            format!("{x:.4}")
        } else {
            "null".into()
        }
    };
    let mut out = Vec::new();
    for r in results {
        for (server, run) in &r.rows {
            for c in &run.cells {
                out.push(format!(
                    "{{\"section\":\"serve\",\"model\":\"{}\",\"server\":\"{server}\",\"clients\":{},\"requests\":{},\"errors\":{},\"rps\":{},\"p50_ms\":{},\"p99_ms\":{},\"client_cpu\":{},\"server_cpu\":{},\"inference_ms\":{}}}",
                    r.name, c.conc, num(c.n), num(c.errors), num(c.rps), num(c.p50), num(c.p99),
                    num(c.client_cpu), num(c.server_cpu), num(c.infer_ms)
                ));
            }
        }
        out.push(format!(
            "{{\"section\":\"serve\",\"model\":\"{}\",\"weights_mb\":{},\"mdeploy_ready_s\":{},\"mdeploy_rss_mb\":{},\"mdeploy_peak_rss_mb\":{},\"fastapi_peak_rss_mb\":{},\"new_version_to_served_s\":{},\"tract_ms\":{},\"ort_1thread_ms\":{},\"ort_default_ms\":{}}}",
            r.name,
            num(r.weight_mb),
            num(r.mdeploy_ready_s),
            num(r.rows.first().map_or(f64::NAN, |(_, run)| run.rss_ready_mb)),
            num(r.mdeploy_peak_mb),
            num(r.fastapi_peak_mb),
            num(r.hotadd_s),
            num(r.tract_ms()),
            num(r.ort_1thread_ms),
            num(r.ort_default_ms)
        ));
    }
    out
}
