//! Untrusted paths and outputs (docs/robustness.md): files a model names stay inside its
//! folder; `-o` never replaces a directory, the input or a file the input reads; a run killed
//! mid-write leaves the previous output intact, and its temporaries are swept by the next run.

use crate::common::{repo, tempdir};
use crate::resources::{info, model, node, save, tensor};
use std::path::Path;
use std::process::{Command, Output};
use tract_onnx::pb::StringStringEntryProto;

fn mdeploy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .output()
        .expect("runs")
}

fn refused(args: &[&str], code: i32, needle: &str) {
    let o = mdeploy(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: lacks '{needle}': {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `model.onnx` in `dir` whose weight `w: f32[4]` lives at external `location`.
fn external_model(dir: &Path, location: &str) -> String {
    let mut w = tensor("w", 1, &[4], vec![]);
    w.data_location = Some(1);
    w.external_data = [("location", location), ("offset", "0"), ("length", "16")]
        .iter()
        .map(|(k, v)| StringStringEntryProto {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect();
    let mut m = model(vec![node("Add", &["x", "w"], &["y"])], vec![w], vec![]);
    m.graph.as_mut().unwrap().input = vec![info("x", 1, &[4])];
    save(dir, "model.onnx", &m)
}

#[test]
fn onnx_external_data_cannot_leave_the_model_folder() {
    let root = tempdir();
    let (dir, outside) = (root.path().join("m"), root.path().join("secret.bin"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(&outside, [0u8; 16]).unwrap();
    std::fs::write(dir.join("w.bin"), [0u8; 16]).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link.bin")).unwrap();
    let out = root.path().join("out.onnx");
    let out = out.to_str().unwrap();
    let abs = outside.display().to_string();
    for loc in ["../secret.bin", abs.as_str(), "link.bin"] {
        let input = external_model(&dir, loc);
        let needle = format!("external data location '{loc}' leaves the model's folder");
        refused(&["convert", &input, "--to", "onnx", "-o", out], 1, &needle);
        assert!(!Path::new(out).exists());
    }
    // The same model with its data inside converts.
    let input = external_model(&dir, "w.bin");
    let o = mdeploy(&["convert", &input, "--to", "onnx", "-o", out]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn tfjs_shard_paths_cannot_leave_the_model_folder() {
    let root = tempdir();
    let dir = root.path().join("m");
    std::fs::create_dir(&dir).unwrap();
    let src = repo().join("fixtures/tfjs/graph_cnn/model");
    let shard = std::fs::read(src.join("group1-shard1of1.bin")).unwrap();
    let json = std::fs::read_to_string(src.join("model.json")).unwrap();
    let outside = root.path().join("secret.bin");
    std::fs::write(&outside, &shard).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link.bin")).unwrap();
    let out = root.path().join("out.onnx");
    let abs = outside.display().to_string();
    for p in ["../secret.bin", abs.as_str(), "link.bin"] {
        let named = json.replace("\"group1-shard1of1.bin\"", &format!("\"{p}\""));
        assert_ne!(named, json);
        std::fs::write(dir.join("model.json"), named).unwrap();
        let needle = format!("shard path '{p}' leaves the model's folder");
        let args = ["convert", dir.to_str().unwrap(), "--to", "onnx"];
        refused(
            &[&args[..], &["-o", out.to_str().unwrap()]].concat(),
            1,
            &needle,
        );
    }
}

#[test]
fn keras_archive_entries_cannot_leave_the_archive() {
    use std::io::Write;
    let root = tempdir();
    for name in ["../evil.txt", "/etc/evil.txt"] {
        let p = root.path().join("m.keras");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        z.start_file("config.json", opts).unwrap();
        z.write_all(b"{}").unwrap();
        z.start_file(name, opts).unwrap();
        z.write_all(b"x").unwrap();
        z.finish().unwrap();
        let needle = format!("archive entry '{name}' has an absolute path or '..'");
        let out = root.path().join("out.onnx");
        let args = ["convert", p.to_str().unwrap(), "--to", "onnx"];
        refused(
            &[&args[..], &["-o", out.to_str().unwrap()]].concat(),
            1,
            &needle,
        );
    }
}

/// `-o` at a folder (single-file target), at the input, at a file the input reads: usage
/// errors (exit 2) naming the path, with nothing changed.
#[test]
fn outputs_never_replace_folders_inputs_or_files_being_read() {
    let root = tempdir();
    let dir = root.path().join("m");
    std::fs::create_dir(&dir).unwrap();
    let data: Vec<u8> = [1f32, 2., 3., 4.]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(dir.join("w.bin"), &data).unwrap();
    let input = external_model(&dir, "w.bin");
    let before = std::fs::read(&input).unwrap();
    let folder = root.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let w = dir.join("w.bin").display().to_string();
    let cases = [
        (
            folder.display().to_string(),
            "onnx",
            "is a folder; this target writes a file",
        ),
        (input.clone(), "onnx", "output would overwrite the input"),
        (input.clone(), "tflite", "output would overwrite the input"),
        (w.clone(), "tflite", "which the input model reads"),
    ];
    for (out, to, needle) in &cases {
        refused(&["convert", &input, "--to", to, "-o", out], 2, needle);
    }
    assert_eq!(std::fs::read(&input).unwrap(), before);
    // An ONNX output `w` may take `w.data` beside it: the input's weights there are kept too.
    let sidecar_owner = dir.join("w").display().to_string();
    std::fs::rename(dir.join("w.bin"), dir.join("w.data")).unwrap();
    let input = external_model(&dir, "w.data");
    refused(
        &["convert", &input, "--to", "onnx", "-o", &sidecar_owner],
        2,
        "which the input model reads",
    );
    assert_eq!(std::fs::read(dir.join("w.data")).unwrap(), data);
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0);
}

/// A model whose output takes measurable time to write: `Add(x, w)` with `w` of `n` floats.
fn weighty_model(dir: &Path, name: &str, n: usize) -> String {
    let raw: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let w = tensor("w", 1, &[n as i64], raw);
    let mut m = model(vec![node("Add", &["x", "w"], &["y"])], vec![w], vec![]);
    m.graph.as_mut().unwrap().input = vec![info("x", 1, &[n as i64])];
    save(dir, name, &m)
}

/// The output's bytes: a file's, or a folder's files by name.
fn snapshot(out: &Path) -> Vec<(String, Vec<u8>)> {
    if out.is_file() {
        return vec![(String::new(), std::fs::read(out).unwrap())];
    }
    let mut files: Vec<_> = std::fs::read_dir(out)
        .map(|d| {
            d.map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Temporaries beside `out` (`.NAME.tmp-PID…`).
fn temporaries(out: &Path) -> Vec<String> {
    let prefix = format!(".{}.tmp-", out.file_name().unwrap().to_string_lossy());
    std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Kills a conversion of a 48 MB model with SIGKILL at fractions of its duration: every time
/// the output is the previous one or the complete new one, never a mix; the next run removes
/// whatever temporaries the killed ones left.
fn killed_runs_leave_the_previous_output(to: &str, out_name: &str) {
    let root = tempdir();
    let small = weighty_model(root.path(), "small.onnx", 4);
    let big = weighty_model(root.path(), "big.onnx", 12 << 20);
    let out = root.path().join(out_name);
    let out_s = out.to_str().unwrap();
    let convert = |input: &str, o: &str| {
        let s = std::time::Instant::now();
        let r = mdeploy(&["convert", input, "--to", to, "-o", o]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        s.elapsed()
    };
    let reference = root.path().join(format!("ref-{out_name}"));
    let took = convert(&big, reference.to_str().unwrap());
    let new = snapshot(&reference);
    convert(&small, out_s);
    let previous = snapshot(&out);
    let mut killed_mid_write = 0;
    for tenth in 1..=9 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
            .args(["convert", &big, "--to", to, "-o", out_s])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(took * tenth / 10);
        child.kill().unwrap(); // SIGKILL: no clean-up runs
        child.wait().unwrap();
        let now = snapshot(&out);
        assert!(
            now == previous || now == new,
            "{to}: a mixed output after {tenth}/10"
        );
        if now == new {
            // Finished before the kill: restore the previous output for the next round.
            convert(&small, out_s);
        } else if !temporaries(&out).is_empty() {
            killed_mid_write += 1;
        }
    }
    eprintln!("{to}: {killed_mid_write} of 9 kills left temporaries (run took {took:?})");
    convert(&big, out_s);
    assert_eq!(snapshot(&out), new);
    assert_eq!(
        temporaries(&out),
        Vec::<String>::new(),
        "{to}: stale temporaries kept"
    );
}

#[test]
fn a_killed_single_file_write_leaves_the_previous_output_and_no_temporaries() {
    killed_runs_leave_the_previous_output("onnx", "out.onnx");
}

#[test]
fn a_killed_folder_write_leaves_the_previous_output_and_no_temporaries() {
    killed_runs_leave_the_previous_output("tfjs", "out_tfjs");
}
