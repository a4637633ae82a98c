//! `cargo xtask bench floor`: each target's conversion of ResNet50 (the latency section's
//! SavedModel: Keras 3 `model.export`, random weights) against the I/O floor measured in the
//! same run: the time to read the model's variables files into memory (`std::fs::read` of each
//! file under `variables/`, page cache warm, best of the runs). Beside it, the time to write
//! as many bytes as the ONNX output into a file and `fsync` it (what any writer's atomic
//! commit costs at least), so what remains of a ratio can be told apart from the write itself.
//! Figures only, never assertions.

use crate::bench::{repeat, RUNS};
use crate::util;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const TARGETS: [(&str, &str); 4] = [
    ("onnx", "model.onnx"),
    ("tflite", "model.tflite"),
    ("tfjs", "tfjs"),
    ("saved_model", "saved_model"),
];

/// Bytes under `p` (a file, or a folder's files, one level of subfolders deep).
fn size_bytes(p: &Path) -> u64 {
    if !p.is_dir() {
        return std::fs::metadata(p).map_or(0, |m| m.len());
    }
    std::fs::read_dir(p).map_or(0, |entries| {
        entries.flatten().map(|e| size_bytes(&e.path())).sum()
    })
}

/// The files of `<model>/variables/`, sorted.
fn variables_files(model: &Path) -> Result<Vec<PathBuf>> {
    let dir = model.join("variables");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Best wall seconds over `RUNS` of reading every file into memory (after one warming read).
fn read_floor(files: &[PathBuf]) -> Result<(f64, u64)> {
    let mut bytes = 0;
    for f in files {
        bytes += util::read(f)?.len() as u64;
    }
    let mut best = f64::MAX;
    for _ in 0..RUNS {
        let t = Instant::now();
        for f in files {
            std::hint::black_box(util::read(f)?);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok((best, bytes))
}

/// Best wall seconds over `RUNS` of writing `len` bytes into a new file, `fsync` and a rename
/// over the previous one: the least an atomic write of an output of that size costs.
fn write_floor(dir: &Path, len: u64) -> Result<f64> {
    let data = vec![0x5au8; len as usize];
    let (tmp, dest) = (dir.join(".write-probe.tmp"), dir.join("write-probe"));
    let mut best = f64::MAX;
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_file(&dest);
    Ok(best)
}

/// Where the measured conversions write: a memory file system (`/dev/shm`) when the machine
/// has one, so that both sides of the ratio are page-cache work (the floor reads from the page
/// cache; a disk's write-back and `fsync` would land on one side only). The same conversions to
/// the disk are printed beside them.
fn memory_dir() -> Option<PathBuf> {
    let dir = Path::new("/dev/shm").join(format!("mdeploy-bench-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok().map(|()| dir)
}

/// The ResNet50 SavedModel, built by the latency section's script when missing.
fn model(repo: &Path, out_dir: &Path) -> Result<Option<PathBuf>> {
    let dir = out_dir.join("latency");
    let model = dir.join("resnet50").join("saved_model");
    if model.join("saved_model.pb").exists() {
        return Ok(Some(model));
    }
    let tf = match crate::bench_tflite::tf_python() {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: no ResNet50 SavedModel and {why}");
            return Ok(None);
        }
    };
    std::fs::create_dir_all(&dir)?;
    util::run(
        "build resnet50",
        Command::new(tf)
            .arg(repo.join("xtask/scripts/bench_latency.py"))
            .arg("build")
            .arg(&dir)
            .arg("resnet50")
            .env("TF_CPP_MIN_LOG_LEVEL", "3"),
    )?;
    Ok(Some(model))
}

/// Runs the section; returns JSON records for `bench.json`.
pub fn run(repo: &Path, mdeploy: &Path, out_dir: &Path) -> Result<Vec<String>> {
    util::header("I/O floor: ResNet50 SavedModel to every target against reading its variables");
    let Some(model) = model(repo, out_dir)? else {
        return Ok(vec![]);
    };
    let work = out_dir.join("floor");
    std::fs::create_dir_all(&work)?;
    let memory = memory_dir();
    let convert = |out: &Path, target: &str| {
        repeat(|| {
            let mut c = Command::new(mdeploy);
            c.arg("convert")
                .arg(&model)
                .args(["--to", target, "--quiet", "-o"])
                .arg(out);
            c
        })
    };
    let mut rows = Vec::new();
    for (target, file) in TARGETS {
        let out = work.join(file);
        let disk = convert(&out, target)?;
        let m = match &memory {
            Some(dir) => convert(&dir.join(file), target)?,
            None => disk,
        };
        rows.push((target, m, disk, size_bytes(&out)));
    }
    if let Some(dir) = &memory {
        let _ = std::fs::remove_dir_all(dir);
    }
    // The floors after the conversions: a child's peak RSS counts from what its parent holds
    // when it forks (Linux keeps the high-water mark across exec), so the benchmark holds no
    // big buffer while it runs them.
    let (read_s, var_bytes) = read_floor(&variables_files(&model)?)?;
    let onnx_bytes = rows.first().map_or(0, |r| r.3);
    let write_s = write_floor(&work, onnx_bytes)?;
    let mb = |b: u64| b as f64 / 1e6;
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<12} {:>8} {:>9} {:>8} {:>8} {:>12} {:>11} {:>13}",
        "target",
        "wall s",
        "× floor",
        "cpu s",
        "disk s",
        "written MB",
        "peak RSS MB",
        "RSS/written"
    );
    let mut json = vec![format!(
        "{{\"section\":\"floor\",\"model\":\"ResNet50\",\"variables_mb\":{:.1},\"read_floor_s\":{read_s:.4},\"write_fsync_s\":{write_s:.4},\"write_mb\":{:.1}}}",
        mb(var_bytes),
        mb(onnx_bytes)
    )];
    for (target, m, disk, written) in &rows {
        let _ = writeln!(
            table,
            "{:<12} {:>8.3} {:>8.2}× {:>8.3} {:>8.3} {:>12.1} {:>11.0} {:>12.2}×",
            target,
            m.secs,
            m.secs / read_s.max(1e-9),
            m.cpu_secs,
            disk.secs,
            mb(*written),
            m.rss_mb,
            m.rss_mb / mb(*written).max(1e-9)
        );
        json.push(format!(
            "{{\"section\":\"floor\",\"model\":\"ResNet50\",\"target\":\"{target}\",\"wall_s\":{:.4},\"cpu_s\":{:.4},\"disk_wall_s\":{:.4},\"floor_ratio\":{:.2},\"written_mb\":{:.1},\"peak_rss_mb\":{:.1}}}",
            m.secs,
            m.cpu_secs,
            disk.secs,
            m.secs / read_s.max(1e-9),
            mb(*written),
            m.rss_mb
        ));
    }
    println!("\n{table}");
    println!(
        "floor = reading the variables files ({:.1} MB) into memory, page cache warm: {read_s:.3} s \
         (best of {RUNS}); writing {:.1} MB (the ONNX output's size) into a file, fsync and \
         rename: {write_s:.3} s, which every target's atomic commit to the disk pays on top. \
         Conversions: best wall of {RUNS} runs (with that run's CPU seconds), highest peak RSS; \
         wall s and × floor write to {}, disk s to {}. written MB = \
         the output's bytes (weights and a graph of under 2 MB); peak RSS counts the pages of \
         the mapped source that were read.",
        mb(var_bytes),
        mb(onnx_bytes),
        memory.as_ref().map_or("the disk (no /dev/shm)".into(), |_| "/dev/shm (tmpfs)".to_string()),
        work.display()
    );
    Ok(json)
}
