//! Counters and histograms for Prometheus (`/metrics`, and TF Serving's
//! `/monitoring/prometheus/metrics`): requests by model, version, API and status; queue,
//! inference and total latency; batch sizes; requests in flight; load time and state per
//! version; traffic-split choices.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

#[derive(Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], x: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (c, &b) in self.counts.iter_mut().zip(bounds) {
            if x <= b {
                *c += 1;
            }
        }
        self.sum += x;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (c, b) in self.counts.iter().zip(bounds) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, &'static str, u16), u64>,
    latency: BTreeMap<(String, &'static str), Histogram>,
    batch: BTreeMap<String, Histogram>,
    split: BTreeMap<(String, u64), u64>,
    versions: BTreeMap<(String, u64), (f64, &'static str)>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    in_flight: AtomicI64,
}

/// One request's figures, recorded when it ends.
pub struct Record<'a> {
    pub model: &'a str,
    pub version: Option<u64>,
    pub api: &'static str,
    pub status: u16,
    pub queue: Duration,
    pub inference: Duration,
    pub total: Duration,
    pub batch: Option<usize>,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        // A panic elsewhere while the lock was held leaves counters usable.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g);
    }

    pub fn enter(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }
    pub fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn record(&self, r: &Record) {
        let version = r.version.map_or(String::new(), |v| v.to_string());
        self.with(|m| {
            *m.requests
                .entry((r.model.to_string(), version, r.api, r.status))
                .or_default() += 1;
            if r.version.is_some() {
                for (kind, d) in [
                    ("queue", r.queue),
                    ("inference", r.inference),
                    ("total", r.total),
                ] {
                    m.latency
                        .entry((r.model.to_string(), kind))
                        .or_default()
                        .observe(&BUCKETS, d.as_secs_f64());
                }
            }
            if let Some(b) = r.batch {
                m.batch
                    .entry(r.model.to_string())
                    .or_default()
                    .observe(&BATCH_BUCKETS, b as f64);
            }
        });
    }

    pub fn split_choice(&self, model: &str, version: u64) {
        self.with(|m| *m.split.entry((model.to_string(), version)).or_default() += 1);
    }

    pub fn version_state(&self, model: &str, version: u64, load_secs: f64, state: &'static str) {
        self.with(|m| {
            m.versions
                .insert((model.to_string(), version), (load_secs, state));
        });
    }

    pub fn forget_version(&self, model: &str, version: u64) {
        self.with(|m| {
            m.versions.remove(&(model.to_string(), version));
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        self.with(|m| {
            out.push_str("# HELP mdeploy_requests_total Requests by model, version, API and HTTP status.\n# TYPE mdeploy_requests_total counter\n");
            for ((model, version, api, status), n) in &m.requests {
                let _ = writeln!(
                    out,
                    "mdeploy_requests_total{{model=\"{}\",version=\"{version}\",api=\"{api}\",status=\"{status}\"}} {n}",
                    escape(model)
                );
            }
            for kind in ["queue", "inference", "total"] {
                let name = format!("mdeploy_request_{kind}_seconds");
                let _ = writeln!(out, "# HELP {name} Request {kind} time.\n# TYPE {name} histogram");
                for ((model, k), h) in &m.latency {
                    if *k == kind {
                        h.write(&mut out, &name, &format!("model=\"{}\"", escape(model)), &BUCKETS);
                    }
                }
            }
            out.push_str("# HELP mdeploy_batch_size Tensors' batch size per inference run.\n# TYPE mdeploy_batch_size histogram\n");
            for (model, h) in &m.batch {
                h.write(&mut out, "mdeploy_batch_size", &format!("model=\"{}\"", escape(model)), &BATCH_BUCKETS);
            }
            let _ = writeln!(out, "# HELP mdeploy_requests_in_flight Requests being handled.\n# TYPE mdeploy_requests_in_flight gauge\nmdeploy_requests_in_flight {in_flight}");
            out.push_str("# HELP mdeploy_model_load_seconds Time to read, plan and warm up a version.\n# TYPE mdeploy_model_load_seconds gauge\n");
            for ((model, v), (secs, _)) in &m.versions {
                let _ = writeln!(out, "mdeploy_model_load_seconds{{model=\"{}\",version=\"{v}\"}} {secs}", escape(model));
            }
            out.push_str("# HELP mdeploy_model_state A version's state (1 for the state it is in).\n# TYPE mdeploy_model_state gauge\n");
            for ((model, v), (_, state)) in &m.versions {
                let _ = writeln!(out, "mdeploy_model_state{{model=\"{}\",version=\"{v}\",state=\"{state}\"}} 1", escape(model));
            }
            out.push_str("# HELP mdeploy_traffic_split_total Requests the traffic split sent to each version.\n# TYPE mdeploy_traffic_split_total counter\n");
            for ((model, v), n) in &m.split {
                let _ = writeln!(out, "mdeploy_traffic_split_total{{model=\"{}\",version=\"{v}\"}} {n}", escape(model));
            }
        });
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
