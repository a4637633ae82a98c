//! `cargo xtask bench`, any-to-any section: the two formats mdeploy reads since issue 14, at
//! full size. MobileNetV2 as TFLiteConverter wrote it (the TFLite section's file) and as
//! tensorflowjs_converter wrote it (a graph model of the same SavedModel, built on demand),
//! each converted by mdeploy to every target: wall time (best of the runs) and peak RSS, beside
//! the source's weight bytes. No other tool converts these pairs without TensorFlow, so there is
//! no anchor column. Figures only.

use crate::bench::repeat;
use crate::util;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

const TARGETS: [(&str, &str); 4] = [
    ("onnx", "model.onnx"),
    ("tflite", "model.tflite"),
    ("tfjs", "tfjs"),
    ("saved_model", "saved_model"),
];

/// Bytes under `p` (a file, or a folder's files).
fn size_mb(p: &Path) -> f64 {
    let bytes = if p.is_dir() {
        std::fs::read_dir(p).map_or(0, |entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
    } else {
        std::fs::metadata(p).map_or(0, |m| m.len())
    };
    bytes as f64 / 1e6
}

/// Runs the section; returns JSON records for `bench.json`.
pub fn run(repo: &Path, mdeploy: &Path, out_dir: &Path) -> Result<Vec<String>> {
    util::header("Any to any: MobileNetV2 read from TFLite and TF.js");
    let tf = match crate::bench_tflite::tf_python() {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: {why}");
            return Ok(vec![]);
        }
    };
    let tflite = out_dir.join("mnv2_savedmodel_tfliteconverter.tflite");
    let tfjs = out_dir.join("mobilenetv2_tfjs");
    if !tflite.exists() {
        println!(
            "skipped: {} is made by the TFLite section",
            tflite.display()
        );
        return Ok(vec![]);
    }
    if !tfjs.join("model.json").exists() {
        util::run(
            "tensorflowjs_converter on the MobileNetV2 SavedModel",
            Command::new(&tf)
                .arg(repo.join("xtask/scripts/bench_tflite.py"))
                .arg("tfjs")
                .arg(out_dir.join("mobilenetv2_savedmodel"))
                .arg(&tfjs)
                .env("TF_CPP_MIN_LOG_LEVEL", "3")
                .stderr(std::process::Stdio::null()),
        )?;
    }
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<38} {:<12} {:>9} {:>12} {:>10}",
        "source", "target", "wall s", "peak RSS MB", "RSS/src"
    );
    let mut json = Vec::new();
    for (name, src) in [
        ("MobileNetV2 .tflite (TFLiteConverter)", &tflite),
        ("MobileNetV2 TF.js graph (converter)", &tfjs),
    ] {
        let src_mb = size_mb(src);
        for (target, file) in TARGETS {
            let out = out_dir.join(format!("any_{}_{file}", src_mb as u64));
            let m = repeat(|| {
                let mut c = Command::new(mdeploy);
                c.arg("convert")
                    .arg(src)
                    .args(["--to", target, "--quiet", "-o"])
                    .arg(&out);
                c
            })?;
            let _ = writeln!(
                table,
                "{:<38} {:<12} {:>9.3} {:>12.0} {:>9.1}×",
                name,
                target,
                m.secs,
                m.rss_mb,
                m.rss_mb / src_mb.max(1e-9)
            );
            json.push(format!(
                "{{\"model\":\"{name}\",\"source_mb\":{src_mb:.2},\"target\":\"{target}\",\"wall_s\":{:.4},\"peak_rss_mb\":{:.1}}}",
                m.secs, m.rss_mb
            ));
        }
    }
    println!("\n{table}");
    println!("RSS/src = peak RSS over the source's bytes (the .tflite, or model.json + shards)");
    Ok(json)
}
