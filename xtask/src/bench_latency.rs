//! `cargo xtask bench latency`: how fast the files mdeploy writes run, beside the anchors'.
//! MobileNetV2, EfficientNetB0 and ResNet50 (Keras applications, random weights with seeded
//! batch-norm statistics, exported as SavedModels and built on demand into
//! `.cache/bench/latency/`) are converted by mdeploy to TFLite and ONNX as float, float16,
//! dynamic-range int8 and full int8 (calibrated on the same samples the anchors get), and by
//! the anchors: TFLiteConverter (the same four modes) and tf2onnx followed by onnxruntime's
//! `quantize_dynamic` / `quantize_static` (QDQ, per-channel). Each runtime (LiteRT, onnxruntime;
//! one thread) loads every file of a model once and runs them in alternating rounds, so the
//! files see the same machine load; medians, ratios, accuracy against TensorFlow's float logits on held-out samples and
//! LiteRT's delegate partitions are printed. Figures only, never assertions.

use crate::util;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const MODELS: [(&str, &str); 3] = [
    ("mobilenetv2", "MobileNetV2"),
    ("efficientnetb0", "EfficientNetB0"),
    ("resnet50", "ResNet50"),
];

/// Quantization modes: name and mdeploy's flags (full int8 adds `--calibration`).
const MODES: [(&str, &[&str]); 4] = [
    ("float", &[]),
    ("float16", &["--float16"]),
    ("dynamic", &["--int8"]),
    ("int8", &["--int8"]),
];

/// Runtimes: name for the helper, file extension, label.
const RUNTIMES: [(&str, &str, &str); 2] = [
    ("litert", "tflite", "LiteRT"),
    ("onnxruntime", "onnx", "onnxruntime"),
];

/// What the helper printed for one file.
#[derive(Clone, Default)]
struct Timed {
    median_ms: f64,
    p25_ms: f64,
    p75_ms: f64,
    max_rel: f64,
    /// Held-out samples whose top-1 class is the source's, as `k/n`.
    top1: String,
    pieces: String,
    ops: String,
}

impl Timed {
    /// Half the interquartile range over the median: the run's noise for this file.
    fn noise(&self) -> f64 {
        (self.p75_ms - self.p25_ms) / 2.0 / self.median_ms
    }
}

fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or("")
}

fn parse(text: &str, i: usize) -> Timed {
    let get = |k: &str| field(text, &format!("{i} {k}"));
    let num = |k: &str| get(k).parse::<f64>().unwrap_or(f64::NAN);
    Timed {
        median_ms: num("median_ms"),
        p25_ms: num("p25_ms"),
        p75_ms: num("p75_ms"),
        max_rel: num("max_rel"),
        top1: get("top1").to_string(),
        pieces: get("pieces").to_string(),
        ops: get("ops").to_string(),
    }
}

fn runs() -> usize {
    std::env::var("MDEPLOY_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
}

/// The model's SavedModel, samples and the anchors' files, made when missing.
fn prepare(tf: &Path, ort: &Path, script: &Path, dir: &Path, name: &str) -> Result<()> {
    let quiet = |c: &mut Command| {
        c.env("TF_CPP_MIN_LOG_LEVEL", "3");
    };
    let model_dir = dir.join(name);
    for (step, python, done) in [
        ("build", tf, "reference.npy"),
        ("held_out", tf, "eval_reference.npy"),
        ("tf_anchors", tf, "anchor_float.onnx"),
        ("ort_anchors", ort, "anchor_int8.onnx"),
    ] {
        if model_dir.join(done).exists() {
            continue;
        }
        let mut c = Command::new(python);
        c.arg(script).arg(step).arg(dir).arg(name);
        quiet(&mut c);
        util::run(&format!("{step} {name}"), &mut c)?;
    }
    Ok(())
}

/// mdeploy's four files for one runtime, written afresh.
fn convert(mdeploy: &Path, model_dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (mode, flags) in MODES {
        let out = model_dir.join(format!("mdeploy_{mode}.{ext}"));
        let mut c = Command::new(mdeploy);
        c.arg("convert")
            .arg(model_dir.join("saved_model"))
            .args(["--to", ext, "--quiet"])
            .args(flags);
        if mode == "int8" {
            c.arg("--calibration").arg(model_dir.join("calib.npy"));
        }
        c.arg("-o").arg(&out);
        util::run(&format!("mdeploy {mode} {}", out.display()), &mut c)?;
        files.push(out);
    }
    Ok(files)
}

/// Times `files` together; one record per file.
fn time(
    ort: &Path,
    script: &Path,
    runtime: &str,
    dir: &Path,
    files: &[PathBuf],
) -> Result<Vec<Timed>> {
    let out = Command::new(ort)
        .arg(script)
        .args(["time", runtime])
        .arg(dir.join("input.npy"))
        .arg(runs().to_string())
        .args(files)
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .context("running the latency helper")?;
    if !out.status.success() {
        bail!(
            "latency helper ({runtime}, {}): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok((0..files.len()).map(|i| parse(&text, i)).collect())
}

fn accuracy(t: &Timed) -> String {
    format!("{:.1e} ({})", t.max_rel, t.top1)
}

/// Runs the section; returns JSON records for `bench.json`.
pub fn run(repo: &Path, mdeploy: &Path, ort: &Path, out_dir: &Path) -> Result<Vec<String>> {
    util::header("Latency: mdeploy's outputs beside the anchors' (LiteRT, onnxruntime)");
    let tf = match crate::bench_tflite::tf_python() {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: {why}");
            return Ok(vec![]);
        }
    };
    let script = repo.join("xtask/scripts/bench_latency.py");
    let dir = out_dir.join("latency");
    std::fs::create_dir_all(&dir)?;
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| model | runtime | mode | mdeploy ms | anchor ms | ratio | mdeploy max-rel | anchor max-rel | pieces mdeploy / anchor |"
    );
    let _ = writeln!(table, "|---|---|---|---:|---:|---:|---:|---:|---|");
    let mut json = Vec::new();
    let mut notes = Vec::new();
    let mut worst_noise: f64 = 0.0;
    for (name, label) in MODELS {
        prepare(&tf, ort, &script, &dir, name)?;
        let model_dir = dir.join(name);
        for (runtime, ext, rt_label) in RUNTIMES {
            let ours = convert(mdeploy, &model_dir, ext)?;
            let anchors: Vec<PathBuf> = MODES
                .iter()
                .map(|(mode, _)| model_dir.join(format!("anchor_{mode}.{ext}")))
                .filter(|p| p.exists())
                .collect();
            let mut files = ours.clone();
            files.extend(anchors.iter().cloned());
            let timed = time(ort, &script, runtime, &model_dir, &files)?;
            worst_noise = timed.iter().map(Timed::noise).fold(worst_noise, f64::max);
            for (k, (mode, _)) in MODES.iter().enumerate() {
                let a = &timed[k];
                let anchor_path = model_dir.join(format!("anchor_{mode}.{ext}"));
                let b = anchors
                    .iter()
                    .position(|p| *p == anchor_path)
                    .map(|j| timed[ours.len() + j].clone());
                let (b_ms, ratio, b_acc, b_pieces) = match &b {
                    Some(b) => (
                        format!("{:.2}", b.median_ms),
                        format!("{:.2}×", a.median_ms / b.median_ms),
                        accuracy(b),
                        b.pieces.clone(),
                    ),
                    None => ("—".into(), "—".into(), "—".into(), "—".into()),
                };
                let _ = writeln!(
                    table,
                    "| {label} | {rt_label} | {mode} | {:.2} | {b_ms} | {ratio} | {} | {b_acc} | {} / {b_pieces} |",
                    a.median_ms,
                    accuracy(a),
                    a.pieces
                );
                json.push(format!(
                    "{{\"model\":\"{label}\",\"runtime\":\"{rt_label}\",\"mode\":\"{mode}\",\"mdeploy_ms\":{:.3},\"anchor_ms\":{},\"mdeploy_max_rel\":{:.3e},\"mdeploy_top1\":\"{}\"}}",
                    a.median_ms,
                    b.as_ref().map_or("null".into(), |b| format!("{:.3}", b.median_ms)),
                    a.max_rel,
                    a.top1
                ));
                notes.push(format!("{label} {rt_label} {mode}: mdeploy {}", a.ops));
                if let Some(b) = &b {
                    notes.push(format!("{label} {rt_label} {mode}: anchor {}", b.ops));
                }
            }
            let _ = writeln!(
                table,
                "| {label} | {rt_label} | int8 / float (mdeploy) | {:.2}× | | | | | |",
                timed[3].median_ms / timed[0].median_ms
            );
        }
    }
    println!("\n{table}");
    for n in notes {
        println!("{n}");
    }
    println!(
        "ms = median of {} rounds after 2 warm-ups, one thread pinned to one core, every file of a model and runtime \
         loaded in one process and run once per round; noise (half the interquartile range over \
         the median, worst file) {:.1}%; max-rel = largest |y − TensorFlow's float logits| over max \
         |logits| over 8 held-out samples (neither timed nor used for calibration), with the \
         samples whose top-1 class is TensorFlow's; pieces = LiteRT XNNPACK partitions / the \
         model's ops, onnxruntime nodes after its graph optimization; anchors: TFLiteConverter (float, float16, dynamic, full int8 with the same \
         calibration samples), tf2onnx (float) + onnxruntime quantize_dynamic / quantize_static \
         (QDQ, per-channel, int8)",
        runs(),
        100.0 * worst_noise
    );
    Ok(json)
}
