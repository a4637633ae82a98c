//! `cargo xtask bench`: wall time and peak RSS of conversions with the release binary, per model
//! and target, with ratios against a reference tool where one is installed. Figures only: no
//! timed assertions. Results also go to `.cache/bench/bench.json`. The TFLite section
//! (MobileNetV2 against TFLiteConverter, conversion and LiteRT latency) is `bench_tflite.rs`, the
//! serving section (`mdeploy serve` against FastAPI + onnxruntime) `bench_serve.rs`;
//! `cargo xtask bench serve` runs only the serving section (results in `bench-serve.json`);
//! `cargo xtask bench floor` only the I/O floor section (`bench_floor.rs`, `bench-floor.json`).

use crate::util;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub const RUNS: usize = 3;

/// Wall seconds, CPU seconds (user + system) and peak resident set size of one child process.
#[derive(Clone, Copy)]
pub struct Measure {
    pub secs: f64,
    pub cpu_secs: f64,
    pub rss_mb: f64,
}

/// Runs `cmd` and reads its peak RSS from `wait4` (what `/usr/bin/time` reports, without needing it).
pub fn measure(cmd: &mut Command) -> Result<Measure> {
    let start = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("spawning the benchmarked command")?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; pid is our own child, reaped exactly once
    // here (the std Child handle is dropped without waiting).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    drop(child);
    if r != pid {
        bail!("wait4 failed for {}", cmd.get_program().to_string_lossy());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("benchmarked command failed: {:?}", cmd);
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Measure {
        secs,
        cpu_secs: tv(usage.ru_utime) + tv(usage.ru_stime),
        rss_mb: usage.ru_maxrss as f64 / 1024.0,
    })
}

/// Best wall time (with that run's CPU time) and highest peak RSS over `RUNS` runs.
pub fn repeat(mut make: impl FnMut() -> Command) -> Result<Measure> {
    let mut best = Measure {
        secs: f64::MAX,
        cpu_secs: 0.0,
        rss_mb: 0.0,
    };
    for _ in 0..RUNS {
        let m = measure(&mut make())?;
        if m.secs < best.secs {
            best.secs = m.secs;
            best.cpu_secs = m.cpu_secs;
        }
        best.rss_mb = best.rss_mb.max(m.rss_mb);
    }
    Ok(best)
}

struct Case {
    name: String,
    model: PathBuf,
    weight_mb: f64,
}

/// The sections `cargo xtask bench SECTION` runs alone.
const SECTIONS: [&str; 4] = ["serve", "any", "latency", "floor"];

fn unknown_section(name: &str) -> util::Exit {
    util::Exit::usage(format!(
        "unknown section '{name}' (try: {})",
        SECTIONS.join(", ")
    ))
}

pub fn run(args: &[String]) -> Result<()> {
    let section = args.first().map(String::as_str);
    if let Some(other) = section.filter(|s| !SECTIONS.contains(s)) {
        return Err(unknown_section(other).into());
    }
    let repo = util::repo_root();
    let out_dir = repo.join(".cache").join("bench");
    std::fs::create_dir_all(&out_dir)?;

    util::header("release build");
    let t = Instant::now();
    util::run(
        "release build",
        util::cargo()
            .current_dir(&repo)
            .args(["build", "--release", "--bin", "mdeploy"]),
    )?;
    let build_secs = t.elapsed().as_secs_f64();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(repo.join("target"), PathBuf::from);
    let mdeploy = target.join("release").join("mdeploy");

    if let Some(name) = section {
        // One section: its figures, and its own JSON file.
        let json = match name {
            // Needs no Python unless the ResNet50 SavedModel is missing (TF builds it then).
            "floor" => crate::bench_floor::run(&repo, &mdeploy, &out_dir)?,
            // Needs the TFLite section's files in .cache/bench (a full bench run makes them).
            "any" => crate::bench_any::run(&repo, &mdeploy, &out_dir)?,
            "serve" => {
                let python = crate::python::ensure_venv(&repo)?;
                crate::bench_serve::run(&repo, &mdeploy, &python, &out_dir)?
            }
            "latency" => {
                let python = crate::python::ensure_venv(&repo)?;
                crate::bench_latency::run(&repo, &mdeploy, &python, &out_dir)?
            }
            other => return Err(unknown_section(other).into()),
        };
        std::fs::write(
            out_dir.join(format!("bench-{name}.json")),
            format!("[{}]\n", json.join(",\n")),
        )?;
        return Ok(());
    }
    let python = crate::python::ensure_venv(&repo)?;
    util::header("models");
    let big = out_dir.join("big_mlp.onnx");
    if !big.exists() {
        util::run(
            "generate the large model",
            Command::new(&python)
                .arg(repo.join("xtask/scripts/make_big_onnx.py"))
                .arg(&big),
        )?;
    }
    let mut cases = Vec::new();
    for name in ["cnn_bn_unfolded", "attention"] {
        let model = repo.join("fixtures/onnx").join(name).join("model.onnx");
        cases.push(Case {
            name: format!("fixture {name}"),
            weight_mb: file_mb(&model),
            model,
        });
    }
    cases.push(Case {
        name: "generated MLP".into(),
        weight_mb: file_mb(&big),
        model: big,
    });

    util::header("ONNX -> ONNX");
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<24} {:>10} {:>10} {:>12} {:>12} {:>14} {:>14}",
        "model", "weights MB", "wall s", "peak RSS MB", "RSS/weights", "ref wall s", "ref RSS MB"
    );
    let mut json = Vec::new();
    for c in &cases {
        let out = out_dir.join("out.onnx");
        let ours = repeat(|| {
            let mut cmd = Command::new(&mdeploy);
            cmd.args(["convert"])
                .arg(&c.model)
                .args(["--to", "onnx", "--quiet", "-o"])
                .arg(&out);
            cmd
        })?;
        let reference = repeat(|| {
            let mut cmd = Command::new(&python);
            cmd.arg(repo.join("xtask/scripts/onnx_roundtrip.py"))
                .arg(&c.model)
                .arg(&out);
            cmd
        })?;
        let _ = writeln!(
            table,
            "{:<24} {:>10.3} {:>10.3} {:>12.1} {:>12.2} {:>14.3} {:>14.1}",
            c.name,
            c.weight_mb,
            ours.secs,
            ours.rss_mb,
            ours.rss_mb / c.weight_mb.max(1e-9),
            reference.secs,
            reference.rss_mb
        );
        json.push(format!(
            "{{\"model\":\"{}\",\"weights_mb\":{:.3},\"wall_s\":{:.4},\"peak_rss_mb\":{:.1},\"ref_wall_s\":{:.4},\"ref_peak_rss_mb\":{:.1}}}",
            c.name, c.weight_mb, ours.secs, ours.rss_mb, reference.secs, reference.rss_mb
        ));
    }
    println!("\n{table}");
    let big_case = cases.last().context("no generated model")?;
    let transforms = transformations(&mdeploy, big_case, &out_dir)?;
    println!("{}", transforms.0);
    json.extend(transforms.1);
    println!("reference = the `onnx` Python package's load + save of the same model (best of {RUNS} runs each)");
    println!("release build (incremental if already built): {build_secs:.1} s");
    json.extend(crate::bench_tflite::run(
        &repo, &mdeploy, &python, &out_dir,
    )?);
    json.extend(crate::bench_any::run(&repo, &mdeploy, &out_dir)?);
    json.extend(crate::bench_latency::run(
        &repo, &mdeploy, &python, &out_dir,
    )?);
    json.extend(crate::bench_floor::run(&repo, &mdeploy, &out_dir)?);
    json.extend(crate::bench_serve::run(&repo, &mdeploy, &python, &out_dir)?);
    std::fs::write(
        out_dir.join("bench.json"),
        format!("[{}]\n", json.join(",\n")),
    )?;
    Ok(())
}

/// Size of a model file in MB (the weights dominate every benchmarked model).
fn file_mb(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1e6)
}

/// `mdeploy quantize` and `mdeploy optimize` on the generated model: wall and CPU time (CPU/wall
/// near the core count shows the per-tensor work spread over the cores) and peak RSS against
/// the weight bytes. Each runs without the accuracy report (the transformation itself) and with
/// it (both models then also run in tract).
fn transformations(mdeploy: &Path, c: &Case, out_dir: &Path) -> Result<(String, Vec<String>)> {
    let rows: [(&str, &[&str]); 4] = [
        ("quantize --int8", &["quantize", "--int8"]),
        ("quantize --float16", &["quantize", "--float16"]),
        ("optimize --prune 0.5", &["optimize", "--prune", "0.5"]),
        ("optimize --cluster 16", &["optimize", "--cluster", "16"]),
    ];
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{} ({:.1} MB of weights), ONNX -> ONNX, release build, best of {RUNS}:",
        c.name, c.weight_mb
    );
    let _ = writeln!(
        table,
        "{:<24} {:<10} {:>8} {:>8} {:>9} {:>12} {:>12}",
        "command", "accuracy", "wall s", "cpu s", "cpu/wall", "peak RSS MB", "RSS/weights"
    );
    let mut json = Vec::new();
    let out = out_dir.join("transformed.onnx");
    for (name, args) in rows {
        for accuracy in [false, true] {
            let m = repeat(|| {
                let mut cmd = Command::new(mdeploy);
                cmd.arg(args[0])
                    .arg(&c.model)
                    .args(&args[1..])
                    .args(["--to", "onnx", "--quiet", "-o"])
                    .arg(&out);
                if !accuracy {
                    cmd.arg("--no-accuracy");
                }
                cmd
            })?;
            let _ = writeln!(
                table,
                "{:<24} {:<10} {:>8.3} {:>8.3} {:>9.2} {:>12.1} {:>12.2}",
                name,
                if accuracy { "report" } else { "skipped" },
                m.secs,
                m.cpu_secs,
                m.cpu_secs / m.secs.max(1e-9),
                m.rss_mb,
                m.rss_mb / c.weight_mb.max(1e-9)
            );
            json.push(format!(
                "{{\"model\":\"{}\",\"command\":\"{name}\",\"accuracy_report\":{accuracy},\"weights_mb\":{:.3},\"wall_s\":{:.4},\"cpu_s\":{:.4},\"peak_rss_mb\":{:.1}}}",
                c.name, c.weight_mb, m.secs, m.cpu_secs, m.rss_mb
            ));
        }
    }
    // cpu/wall only shows the cores used when nothing else competes for them.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let _ = writeln!(
            table,
            "load average at the end (1/5/15 min): {}; cores: {}",
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
    }
    Ok((table, json))
}
