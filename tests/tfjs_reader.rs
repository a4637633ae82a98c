//! The TF.js reader on `tensorflowjs_converter` output: every fixture read and evaluated against
//! TensorFlow's output (within the fixture's quantization tolerance), with the signature's I/O
//! names; broken folders (truncated or mutated model.json, a shard path leaving the folder, a
//! missing or short shard, an unknown op) refused with an error naming the problem, never a
//! panic.

use crate::common::{repo, tempdir, Fixture};
use mdeploy::readers::{self, ReadOptions};
use std::path::Path;

fn tfjs_fixtures() -> Vec<Fixture> {
    let root = repo().join("fixtures/tfjs");
    let mut v: Vec<Fixture> = std::fs::read_dir(&root)
        .expect("fixtures/tfjs exists")
        .flatten()
        .filter(|e| e.path().join("model/model.json").exists())
        .map(|e| Fixture {
            name: e.file_name().to_string_lossy().into_owned(),
            model: e.path().join("model"),
            dir: e.path(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        v.len() >= 4,
        "expected the TF.js fixtures, found {}",
        v.len()
    );
    v
}

fn meta(f: &Fixture) -> serde_json::Value {
    let meta = std::fs::read_to_string(f.dir.join("meta.json")).unwrap();
    serde_json::from_str(&meta).unwrap()
}

/// The fixture's tolerance: `rel_tolerance` of a quantized source, else 1e-4.
fn tolerance(f: &Fixture) -> f64 {
    meta(f)
        .get("rel_tolerance")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0)
        .max(1e-4)
}

#[test]
fn converter_fixtures_read_and_match_tensorflow() {
    for f in tfjs_fixtures() {
        let g = readers::read(&f.model, &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let m = meta(&f);
        assert_eq!(g.value(g.inputs[0]).name, m["inputs"][0], "{}", f.name);
        assert_eq!(g.value(g.outputs[0]).name, m["outputs"][0], "{}", f.name);
        let got = mdeploy::eval::run(&g, &f.inputs()).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let expected = f.expected();
        assert_eq!(got.len(), expected.len(), "{}", f.name);
        for (a, b) in got.iter().zip(&expected) {
            assert_eq!(a.shape, b.shape, "{}", f.name);
            let (a, b) = (a.to_f64s(), b.to_f64s());
            let scale = b.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
            let err = a
                .iter()
                .zip(&b)
                .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                err / scale <= tolerance(&f),
                "{}: rel {}",
                f.name,
                err / scale
            );
        }
    }
}

/// A copy of the sharded fixture's folder, for damaging.
fn copy_model(to: &Path) {
    let from = repo().join("fixtures/tfjs/graph_sharded/model");
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn read_err(dir: &Path) -> String {
    match readers::read(dir, &ReadOptions::default()) {
        Ok(_) => panic!("{} was read", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn shard_paths_outside_the_folder_are_refused() {
    let dir = tempdir();
    copy_model(dir.path());
    let json = dir.path().join("model.json");
    let text = std::fs::read_to_string(&json).unwrap();
    let model: serde_json::Value = serde_json::from_str(&text).unwrap();
    let paths = model["weightsManifest"][0]["paths"].as_array().unwrap();
    assert!(
        paths.len() >= 3,
        "the fixture has several shards: {paths:?}"
    );
    let (first, last) = (
        paths[0].as_str().unwrap(),
        paths[paths.len() - 1].as_str().unwrap(),
    );
    for bad in [format!("../{first}"), "/etc/hostname".to_string()] {
        std::fs::write(&json, text.replace(first, &bad)).unwrap();
        let e = read_err(dir.path());
        assert!(
            e.contains(&bad) && e.contains("leaves the model's folder"),
            "{e}"
        );
    }
    // A link inside the folder to a file outside it.
    #[cfg(unix)]
    {
        let outside = tempdir();
        let target = outside.path().join(first);
        std::fs::copy(dir.path().join(first), &target).unwrap();
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        std::fs::write(&json, text.replace(first, "link.bin")).unwrap();
        let e = read_err(dir.path());
        assert!(e.contains("leaves the model's folder (a link to "), "{e}");
    }
    // A short shard: the weights past its end are refused by name and byte range.
    std::fs::write(&json, &text).unwrap();
    let last_path = dir.path().join(last);
    let bytes = std::fs::read(&last_path).unwrap();
    std::fs::write(&last_path, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_err(dir.path());
    assert!(e.contains("weight '") && e.contains("shards hold"), "{e}");
    std::fs::remove_file(&last_path).unwrap();
    assert!(read_err(dir.path()).contains(last));
}

#[test]
fn unknown_ops_are_refused_by_name_with_exit_4() {
    let dir = tempdir();
    copy_model(dir.path());
    let json = dir.path().join("model.json");
    let text = std::fs::read_to_string(&json).unwrap();
    std::fs::write(
        &json,
        text.replace("\"op\": \"Softmax\"", "\"op\": \"MyCustomOp\""),
    )
    .unwrap();
    let e = readers::read(dir.path(), &ReadOptions::default()).unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
    assert!(e.to_string().contains("MyCustomOp"), "{e}");
}

#[test]
fn custom_layers_are_refused_by_name_with_exit_4() {
    let dir = tempdir();
    let from = repo().join("fixtures/tfjs/layers_cnn/model");
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let json = dir.path().join("model.json");
    let text = std::fs::read_to_string(&json).unwrap();
    let custom = text.replace(
        "\"class_name\": \"Flatten\"",
        "\"class_name\": \"MyFlatten\"",
    );
    assert_ne!(custom, text, "the fixture has a Flatten layer");
    std::fs::write(&json, custom).unwrap();
    let e = readers::read(dir.path(), &ReadOptions::default()).unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
    assert!(e.to_string().contains("MyFlatten"), "{e}");
}

/// Truncations and byte mutations of model.json give errors (or a model), never a panic.
#[test]
fn truncated_and_mutated_model_json_give_errors_not_panics() {
    let dir = tempdir();
    copy_model(dir.path());
    let json = dir.path().join("model.json");
    let text = std::fs::read(&json).unwrap();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut refused = 0;
    for round in 0..200 {
        let mut bytes = text.clone();
        if round % 2 == 0 {
            bytes.truncate(1 + (next() % (bytes.len() as u64 - 1)) as usize);
        } else {
            for _ in 0..1 + next() % 3 {
                let i = (next() % bytes.len() as u64) as usize;
                bytes[i] = b"0123456789\"{}[],:-ab"[(next() % 20) as usize];
            }
        }
        std::fs::write(&json, &bytes).unwrap();
        let outcome =
            std::panic::catch_unwind(|| readers::read(dir.path(), &ReadOptions::default()));
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!(
                "panicked on round {round}: {}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    assert!(refused >= 100, "refused {refused}");
}

/// What mdeploy's own TF.js graph writer makes (the schema tensorflowjs_converter writes too):
/// every ONNX fixture written as a graph model is read back and run by mdeploy's evaluator
/// against the framework's outputs, or refused with exit 4 naming an op the reader lacks.
#[test]
fn onnx_fixtures_written_as_tfjs_graph_models_read_back_and_match() {
    use mdeploy::writers::tfjs::graph::GraphWriter;
    use mdeploy::writers::Writer;
    let dir = tempdir();
    let (mut matched, mut refused) = (Vec::new(), Vec::new());
    for f in crate::common::onnx_fixtures() {
        let Ok(mut g) = readers::read(&f.model, &ReadOptions::default()) else {
            continue;
        };
        // The TF.js signature lists inputs and outputs sorted by name: matched by name.
        let source = g.clone();
        let w = GraphWriter::default();
        let out = dir.path().join(&f.name);
        if w.legalize(&mut g).and_then(|()| w.write(&g, &out)).is_err() {
            continue;
        }
        let back = match readers::read(&out, &ReadOptions::default()) {
            Ok(b) => b,
            Err(e) => {
                assert_eq!(e.exit_code(), 4, "{}: {e}", f.name);
                refused.push(format!("{}: {e}", f.name));
                continue;
            }
        };
        let got = crate::common::run_by_name(&f.name, &source, &back, &f.inputs());
        f.assert_expected(&format!("{} via TF.js", f.name), &got);
        matched.push(f.name.clone());
    }
    assert!(
        matched.len() >= 48,
        "matched {matched:?}, refused {refused:#?}"
    );
}
