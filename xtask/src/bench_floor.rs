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

/// Peak anonymous memory (MB) of one run of `cmd`: the process's `RssAnon` sampled every half
/// millisecond. It is the memory beyond the mapped files (the source's pages, the binary),
/// which `wait4`'s peak RSS counts too. A sample may miss a short peak by a little.
fn anon_peak_mb(cmd: &mut Command) -> Result<f64> {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("spawning the benchmarked command")?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let anon = text
                .lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak_kb = peak_kb.max(anon.unwrap_or(0));
        }
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "benchmarked command failed: {cmd:?}");
            return Ok(peak_kb as f64 / 1024.0);
        }
        std::thread::sleep(std::time::Duration::from_micros(500));
    }
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
    let command = |out: &Path, target: &str| {
        let mut c = Command::new(mdeploy);
        c.arg("convert")
            .arg(&model)
            .args(["--to", target, "--quiet", "-o"])
            .arg(out);
        c
    };
    let convert = |out: &Path, target: &str| repeat(|| command(out, target));
    let mut rows = Vec::new();
    for (target, file) in TARGETS {
        let out = work.join(file);
        let disk = convert(&out, target)?;
        let fast = memory.as_ref().map_or(out.clone(), |dir| dir.join(file));
        let m = match &memory {
            Some(_) => convert(&fast, target)?,
            None => disk,
        };
        let anon = anon_peak_mb(&mut command(&fast, target))?;
        rows.push((target, m, disk, anon, size_bytes(&out)));
    }
    if let Some(dir) = &memory {
        let _ = std::fs::remove_dir_all(dir);
    }
    // The floors after the conversions: a child's peak RSS counts from what its parent holds
    // when it forks (Linux keeps the high-water mark across exec), so the benchmark holds no
    // big buffer while it runs them.
    let (read_s, var_bytes) = read_floor(&variables_files(&model)?)?;
    let onnx_bytes = rows.first().map_or(0, |r| r.4);
    let write_s = write_floor(&work, onnx_bytes)?;
    let mb = |b: u64| b as f64 / 1e6;
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<12} {:>8} {:>9} {:>8} {:>8} {:>11} {:>12} {:>13} {:>13}",
        "target",
        "wall s",
        "× floor",
        "cpu s",
        "disk s",
        "written MB",
        "peak RSS MB",
        "RSS/written",
        "anon/written"
    );
    let mut json = vec![format!(
        "{{\"section\":\"floor\",\"model\":\"ResNet50\",\"variables_mb\":{:.1},\"read_floor_s\":{read_s:.4},\"write_fsync_s\":{write_s:.4},\"write_mb\":{:.1}}}",
        mb(var_bytes),
        mb(onnx_bytes)
    )];
    for (target, m, disk, anon, written) in &rows {
        let _ = writeln!(
            table,
            "{:<12} {:>8.3} {:>8.2}× {:>8.3} {:>8.3} {:>11.1} {:>12.0} {:>12.2}× {:>12.2}×",
            target,
            m.secs,
            m.secs / read_s.max(1e-9),
            m.cpu_secs,
            disk.secs,
            mb(*written),
            m.rss_mb,
            m.rss_mb / mb(*written).max(1e-9),
            anon / mb(*written).max(1e-9)
        );
        json.push(format!(
            "{{\"section\":\"floor\",\"model\":\"ResNet50\",\"target\":\"{target}\",\"wall_s\":{:.4},\"cpu_s\":{:.4},\"disk_wall_s\":{:.4},\"floor_ratio\":{:.2},\"written_mb\":{:.1},\"peak_rss_mb\":{:.1},\"peak_anon_mb\":{anon:.1}}}",
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
         the mapped source that were read; anon = peak anonymous memory (RssAnon sampled every \
         0.5 ms in one more run), the memory beyond the mapped files.",
        mb(var_bytes),
        mb(onnx_bytes),
        memory.as_ref().map_or("the disk (no /dev/shm)".into(), |_| "/dev/shm (tmpfs)".to_string()),
        work.display()
    );
    Ok(json)
}
