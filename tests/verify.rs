//! `mdeploy verify SOURCE OUTPUT` (and so `convert --verify`, which compares the same way): an
//! output with one weight changed is caught for every target, an intact one passes.

use crate::common::{repo, tempdir};
use std::path::Path;
use std::process::Command;

fn mdeploy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .output()
        .expect("runs")
}

/// The bytes of the first element of the bias closest to the source's first output: walking
/// back from the output through nodes without weights, the first 1-D float weight met. (A
/// bias element always reaches the output; a kernel element can multiply a unit that a ReLU
/// keeps at zero for every input, and changing it changes nothing.)
fn last_bias(source: &Path) -> [u8; 4] {
    let g = mdeploy::pipeline::load(source, &Default::default())
        .unwrap()
        .graph;
    let producers = g.producers();
    let mut v = g.outputs[0];
    for _ in 0..g.nodes.len() {
        let node = &g.nodes[producers[&v]];
        let bias = node.inputs.iter().find_map(|&i| {
            let t = g.value(i).constant.as_ref()?;
            (t.dtype == mdeploy::ir::DType::F32 && t.shape.len() == 1 && t.data.len() >= 4)
                .then_some(t)
        });
        if let Some(t) = bias {
            return [t.data[0], t.data[1], t.data[2], t.data[3]];
        }
        v = *node
            .inputs
            .iter()
            .find(|&&i| g.value(i).constant.is_none())
            .expect("an input");
    }
    panic!("no bias before the first output");
}

/// Changes the first occurrence of `pattern` in the files of `out` (a file or a folder's
/// files) to another float; false when it occurs nowhere.
fn corrupt(out: &Path, pattern: [u8; 4]) -> bool {
    // A folder's files, those of its subfolders too (a SavedModel's variables/).
    let mut files = Vec::new();
    let mut todo = vec![out.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            files.push(p);
        }
    }
    files.sort();
    for f in files {
        let mut bytes = std::fs::read(&f).unwrap();
        if let Some(i) = bytes.windows(4).position(|w| w == pattern) {
            let v = f32::from_le_bytes(pattern);
            bytes[i..i + 4].copy_from_slice(&(v * 3.0 + 1.0).to_le_bytes());
            std::fs::write(&f, bytes).unwrap();
            return true;
        }
    }
    false
}

fn check(source: &str, target: &str, extra: &[&str]) {
    let source = repo().join(source);
    let dir = tempdir();
    let out = dir.path().join(format!("out.{target}"));
    let (s, o) = (source.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec!["convert", s, "--to", target, "-o", o, "--verify", "-q"];
    args.extend(extra);
    let c = mdeploy(&args);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let ok = mdeploy(&["verify", s, o]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        corrupt(&out, last_bias(&source)),
        "{target}: the weight is not in the output"
    );
    let bad = mdeploy(&["verify", s, o]);
    let err = String::from_utf8_lossy(&bad.stderr);
    if target == "saved_model" {
        // A SavedModel's variables carry a crc32c each: the changed byte is refused on read,
        // before any comparison (a writer computing a wrong weight would write its checksum
        // too; that case is the other targets').
        assert_eq!(bad.status.code(), Some(1), "{target}: {err}");
        assert!(err.contains("checksum mismatch"), "{target}: {err}");
        return;
    }
    assert_eq!(bad.status.code(), Some(3), "{target}: {err}");
    assert!(
        err.contains("FAIL") && err.contains("past the tolerance"),
        "{target}: {err}"
    );
}

#[test]
fn a_changed_weight_is_caught_in_onnx_tflite_tfjs_graph_and_saved_model_outputs() {
    for target in ["onnx", "tflite", "tfjs", "saved_model"] {
        check("fixtures/onnx/mlp/model.onnx", target, &[]);
    }
}

#[test]
fn a_changed_weight_is_caught_in_a_tfjs_layers_model() {
    check(
        "fixtures/keras/dense_mlp/model.keras",
        "tfjs",
        &["--tfjs-format", "layers"],
    );
}

#[test]
fn outputs_that_cannot_be_compared_are_refused_not_passed() {
    let dir = tempdir();
    let mlp = repo().join("fixtures/onnx/mlp/model.onnx");
    let other = repo().join("fixtures/onnx/dynamic_batch/model.onnx");
    let o = mdeploy(&["verify", mlp.to_str().unwrap(), other.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing was compared"));
    let missing = dir.path().join("nothing.onnx");
    let o = mdeploy(&["verify", mlp.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
}
