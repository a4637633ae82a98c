//! Fixture discovery and comparison helpers shared by the integration tests.

use mdeploy::ir::Tensor;
use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture folder with its model and the source framework's inputs and outputs.
pub struct Fixture {
    pub name: String,
    pub dir: PathBuf,
    pub model: PathBuf,
}

impl Fixture {
    /// `input.npy`, `input_1.npy`, … in graph input order.
    pub fn inputs(&self) -> Vec<Tensor> {
        numbered(&self.dir, "input")
    }
    /// `expected.npy`, `expected_1.npy`, … in graph output order.
    pub fn expected(&self) -> Vec<Tensor> {
        numbered(&self.dir, "expected")
    }
    /// Asserts `got` matches the expected outputs within the fixture's tolerance: 1e-4, or
    /// `meta.json`'s `rel_tolerance` for a source defined only to within its quantization
    /// (onnxruntime's DynamicQuantizeLSTM quantizes activations at run time).
    pub fn assert_expected(&self, what: &str, got: &[Tensor]) {
        let meta: serde_json::Value = std::fs::read_to_string(self.dir.join("meta.json"))
            .ok()
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default();
        let tol = meta
            .get("rel_tolerance")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
            .max(1e-4);
        assert_matches_within(what, got, &self.expected(), tol);
    }
}

fn numbered(dir: &Path, stem: &str) -> Vec<Tensor> {
    let mut out = Vec::new();
    for i in 0.. {
        let name = if i == 0 {
            format!("{stem}.npy")
        } else {
            format!("{stem}_{i}.npy")
        };
        let p = dir.join(name);
        if !p.exists() {
            break;
        }
        out.push(mdeploy::npy::read(&p).unwrap_or_else(|e| panic!("{e}")));
    }
    out
}

/// Every ONNX fixture, sorted by name.
pub fn onnx_fixtures() -> Vec<Fixture> {
    let root = repo().join("fixtures/onnx");
    let mut v: Vec<Fixture> = std::fs::read_dir(&root)
        .expect("fixtures/onnx exists")
        .flatten()
        .filter(|e| e.path().join("model.onnx").exists())
        .map(|e| Fixture {
            name: e.file_name().to_string_lossy().into_owned(),
            model: e.path().join("model.onnx"),
            dir: e.path(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        v.len() >= 10,
        "expected the committed ONNX fixtures, found {}",
        v.len()
    );
    v
}

/// Asserts every output matches the framework's expected output (rel ≤ 1e-4, exact shapes).
pub fn assert_matches(what: &str, got: &[Tensor], expected: &[Tensor]) {
    assert_matches_within(what, got, expected, 1e-4)
}

pub fn assert_matches_within(what: &str, got: &[Tensor], expected: &[Tensor], tol: f64) {
    assert_eq!(got.len(), expected.len(), "{what}: output count");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let c = mdeploy::eval::compare(&format!("#{i}"), g, e);
        assert!(
            c.shape_matches,
            "{what}: output #{i} shape {:?} vs expected {:?}",
            g.shape, e.shape
        );
        assert!(
            c.max_rel <= tol,
            "{what}: output #{i} max_rel {:e} (max_abs {:e})",
            c.max_rel,
            c.max_abs
        );
    }
}

/// A fresh folder under the system's temp folder, removed with everything in it when dropped.
/// (Not the `tempfile` crate: a dev-dependency would change the features of the product's own
/// dependencies, and `cargo test` would then compile tract a second time after `cargo run`.)
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mdeploy-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    TempDir(dir)
}

/// Whether `conformance/known-failures.txt` lists the case `id` (`onnx/<name>:tflite`): a
/// conversion the project knows it cannot do yet, which tests then expect refused by name
/// instead of written.
pub fn known_failure(id: &str) -> bool {
    let list = std::fs::read_to_string(repo().join("conformance/known-failures.txt"))
        .expect("conformance/known-failures.txt exists");
    list.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .any(|l| l.split_whitespace().next() == Some(id))
}

/// Runs `back` (a model read back from a written file whose signature may order its inputs and
/// outputs otherwise, e.g. sorted by name) on `inputs` given in `source`'s input order, and
/// returns its outputs in `source`'s output order, matched by name.
pub fn run_by_name(
    what: &str,
    source: &mdeploy::ir::Graph,
    back: &mdeploy::ir::Graph,
    inputs: &[Tensor],
) -> Vec<Tensor> {
    let position = |g: &mdeploy::ir::Graph, ids: &[mdeploy::ir::ValueId], name: &str| {
        ids.iter()
            .position(|&v| g.value(v).name == name)
            .unwrap_or_else(|| panic!("{what}: no '{name}'"))
    };
    let fed: Vec<Tensor> = back
        .inputs
        .iter()
        .map(|&v| inputs[position(source, &source.inputs, &back.value(v).name)].clone())
        .collect();
    let got = mdeploy::eval::run(back, &fed).unwrap_or_else(|e| panic!("{what}: {e}"));
    source
        .outputs
        .iter()
        .map(|&v| got[position(back, &back.outputs, &source.value(v).name)].clone())
        .collect()
}

/// What a run of the binary did: exit code, stderr, and its peak resident memory.
pub struct Measured {
    pub code: Option<i32>,
    pub stderr: String,
    pub peak_mb: f64,
}

/// Runs the mdeploy binary with `args` and extra environment `env`, its data segment capped
/// at `cap_mb` (`RLIMIT_DATA`: past it allocation fails and the run dies, so memory is bounded
/// even where the sampling below would miss a short peak), and measures its peak RSS.
///
/// The peak is the child's own `VmHWM` from `/proc/<pid>/status`, sampled every millisecond
/// until it exits. Not `ru_maxrss` from `wait4`: Linux carries the high-water mark of the
/// process image an `exec` replaces into the new one, and `Command` spawns by `vfork`, whose
/// image is this test process, so `ru_maxrss` would report the test binary's own peak.
pub fn run_measured(args: &[&str], env: &[(&str, &str)], cap_mb: u64) -> Measured {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let cap = cap_mb << 20;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mdeploy"));
    cmd.args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches nothing of the parent's.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: cap as libc::rlim_t,
                rlim_max: cap as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_DATA, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawns");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_file) {
            let hwm = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak_kb = peak_kb.max(hwm.unwrap_or(0));
        }
        if let Some(st) = child.try_wait().expect("waits") {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    Measured {
        code: status.code(),
        stderr: reader.join().unwrap_or_default(),
        peak_mb: peak_kb as f64 / 1024.0,
    }
}
