//! `cargo xtask bench`, TFLite section: full-size MobileNetV2 (Keras `.keras` and a Keras 3
//! `model.export` SavedModel, built on demand into `.cache/bench/`) converted by mdeploy and by
//! `tf.lite.TFLiteConverter`; conversion wall time and peak RSS of both tools, and LiteRT
//! latency (one thread, median of several runs) of both outputs on the same input. Needs a Python
//! with TensorFlow (`MDEPLOY_TF_PYTHON`, else `/root/.cache/mdeploy-tfvenv/bin/python`); skipped
//! with the reason when there is none. Figures only.

use crate::bench::{measure, repeat, Measure};
use crate::util;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const LATENCY_RUNS: usize = 30;

/// The TensorFlow Python, if one imports TensorFlow.
pub fn tf_python() -> Result<PathBuf, String> {
    let p = std::env::var_os("MDEPLOY_TF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root/.cache/mdeploy-tfvenv/bin/python"));
    if !p.exists() {
        return Err(format!(
            "no TensorFlow Python at {} (set MDEPLOY_TF_PYTHON)",
            p.display()
        ));
    }
    let ok = Command::new(&p)
        .args(["-c", "import tensorflow, keras"])
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(p)
    } else {
        Err(format!(
            "{} cannot import tensorflow and keras",
            p.display()
        ))
    }
}

struct Latency {
    median_ms: f64,
    min_ms: f64,
    op_total: u64,
    ops: String,
}

/// `key value` lines a helper printed.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or("")
}

fn helper(litert: &Path, script: &Path, args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = Command::new(litert)
        .arg(script)
        .args(args)
        .output()
        .context("running the LiteRT helper")?;
    if !out.status.success() {
        bail!(
            "LiteRT helper {:?}: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// LiteRT latency of `models` (each with the .npy its output is saved to), timed alternately.
fn latencies(
    litert: &Path,
    script: &Path,
    input: &Path,
    models: &[(&Path, &Path)],
) -> Result<Vec<Latency>> {
    let runs = LATENCY_RUNS.to_string();
    let mut args: Vec<&std::ffi::OsStr> = vec!["time".as_ref(), input.as_os_str(), runs.as_ref()];
    for (m, save) in models {
        args.push(m.as_os_str());
        args.push(save.as_os_str());
    }
    let text = helper(litert, script, &args)?;
    Ok((0..models.len())
        .map(|i| {
            let key = |k: &str| format!("{i} {k}");
            let num = |k: &str| field(&text, &key(k)).parse::<f64>().unwrap_or(f64::NAN);
            Latency {
                median_ms: num("median_ms"),
                min_ms: num("min_ms"),
                op_total: field(&text, &key("op_total")).parse().unwrap_or(0),
                ops: field(&text, &key("ops")).to_string(),
            }
        })
        .collect())
}

/// Runs the TFLite section; returns JSON records for `bench.json`.
pub fn run(repo: &Path, mdeploy: &Path, litert: &Path, out_dir: &Path) -> Result<Vec<String>> {
    util::header("TFLite: MobileNetV2 (mdeploy vs TFLiteConverter)");
    let tf = match tf_python() {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: {why}");
            return Ok(vec![]);
        }
    };
    let script = repo.join("xtask/scripts/bench_tflite.py");
    let keras = out_dir.join("mobilenetv2.keras");
    let saved = out_dir.join("mobilenetv2_savedmodel");
    let input = out_dir.join("mobilenetv2_input.npy");
    if !keras.exists() || !saved.join("saved_model.pb").exists() || !input.exists() {
        util::run(
            "build MobileNetV2 (.keras and SavedModel)",
            Command::new(&tf).arg(&script).arg("build").arg(out_dir),
        )?;
    }
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<22} {:<16} {:>9} {:>12} {:>11} {:>11} {:>6} {:>10}",
        "model", "converter", "wall s", "peak RSS MB", "LiteRT ms", "(min ms)", "ops", "max |Δ|"
    );
    let mut json = Vec::new();
    let mut notes = Vec::new();
    for (name, src) in [
        ("MobileNetV2 .keras", &keras),
        ("MobileNetV2 SavedModel", &saved),
    ] {
        let stem = if src == &keras { "keras" } else { "savedmodel" };
        let ours_out = out_dir.join(format!("mnv2_{stem}_mdeploy.tflite"));
        let ref_out = out_dir.join(format!("mnv2_{stem}_tfliteconverter.tflite"));
        let ours = repeat(|| {
            let mut c = Command::new(mdeploy);
            c.arg("convert")
                .arg(src)
                .args(["--to", "tflite", "--quiet", "-o"])
                .arg(&ours_out);
            c
        })?;
        // One TFLiteConverter run per source (each takes 10-20 s and ~1 GB).
        let reference: Measure = measure(
            Command::new(&tf)
                .arg(&script)
                .arg("convert")
                .arg(src)
                .arg(&ref_out)
                .env("TF_CPP_MIN_LOG_LEVEL", "2")
                .stderr(std::process::Stdio::null()),
        )?;
        let (ya, yb) = (
            out_dir.join("y_mdeploy.npy"),
            out_dir.join("y_reference.npy"),
        );
        let mut both = latencies(
            litert,
            &script,
            &input,
            &[(&ours_out, &ya), (&ref_out, &yb)],
        )?
        .into_iter();
        let (Some(a), Some(b)) = (both.next(), both.next()) else {
            bail!("LiteRT timed fewer models than asked");
        };
        let d = helper(
            litert,
            &script,
            &["diff".as_ref(), ya.as_os_str(), yb.as_os_str()],
        )?;
        let diff: f64 = field(&d, "max_abs").parse().unwrap_or(f64::NAN);
        for (tool, m, l, d) in [
            ("mdeploy", ours, &a, Some(diff)),
            ("TFLiteConverter", reference, &b, None),
        ] {
            let _ = writeln!(
                table,
                "{:<22} {:<16} {:>9.2} {:>12.0} {:>11.2} {:>11.2} {:>6} {:>10}",
                name,
                tool,
                m.secs,
                m.rss_mb,
                l.median_ms,
                l.min_ms,
                l.op_total,
                d.map_or("-".to_string(), |d| format!("{d:.2e}"))
            );
            json.push(format!(
                "{{\"model\":\"{name}\",\"converter\":\"{tool}\",\"wall_s\":{:.3},\"peak_rss_mb\":{:.1},\"litert_median_ms\":{:.3},\"litert_min_ms\":{:.3},\"ops\":{}}}",
                m.secs, m.rss_mb, l.median_ms, l.min_ms, l.op_total
            ));
        }
        notes.push(format!("{name}: mdeploy ops {}", a.ops));
        notes.push(format!("{name}: TFLiteConverter ops {}", b.ops));
    }
    println!("\n{table}");
    for n in notes {
        println!("{n}");
    }
    println!(
        "mdeploy wall = best of {} runs (release binary); TFLiteConverter wall = one run of a fresh \
         Python process (includes `import tensorflow`, ~5 s); LiteRT ms = median (and min) of \
         {LATENCY_RUNS} invocations, num_threads=1, after 2 warm-ups, the two files' invocations
         alternating so both see the same machine load; max |Δ| = largest difference \
         between the two files' outputs on the same input",
        crate::bench::RUNS
    );
    Ok(json)
}
