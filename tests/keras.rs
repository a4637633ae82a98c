//! Keras fixtures (`fixtures/keras/<name>/model.{h5,keras}` from Keras 3,
//! `fixtures/tf_keras/<name>/model.h5` from tf_keras): read, verified, evaluated against
//! Keras's own outputs; parameter counts against `count_params()`; refusals and corrupt files.

use crate::common::{repo, Fixture};
use mdeploy::readers::{self, ReadOptions};
use std::path::PathBuf;
use std::process::Command;

/// Every Keras model file: one fixture per (folder, model file).
fn keras_fixtures() -> Vec<Fixture> {
    let mut v = Vec::new();
    for source in ["keras", "tf_keras"] {
        let Ok(dirs) = std::fs::read_dir(repo().join("fixtures").join(source)) else {
            continue;
        };
        for d in dirs.flatten() {
            for file in ["model.h5", "model.keras"] {
                let model = d.path().join(file);
                if model.exists() {
                    v.push(Fixture {
                        name: format!("{source}/{}/{file}", d.file_name().to_string_lossy()),
                        dir: d.path(),
                        model,
                    });
                }
            }
        }
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        v.len() >= 20,
        "expected the committed Keras fixtures, found {}",
        v.len()
    );
    v
}

fn meta(f: &Fixture) -> serde_json::Value {
    let text = std::fs::read_to_string(f.dir.join("meta.json")).expect("meta.json");
    serde_json::from_str(&text).expect("meta.json is JSON")
}

#[test]
fn every_keras_fixture_reads_and_matches_keras() {
    let mut failures = Vec::new();
    let fixtures = keras_fixtures();
    for f in &fixtures {
        let result = std::panic::catch_unwind(|| {
            let g = readers::read(&f.model, &ReadOptions::default()).map_err(|e| e.to_string())?;
            g.verify()?;
            let got = mdeploy::eval::run(&g, &f.inputs()).map_err(|e| e.to_string())?;
            let expected = f.expected();
            if got.len() != expected.len() {
                return Err(format!(
                    "{} outputs, Keras has {}",
                    got.len(),
                    expected.len()
                ));
            }
            for (i, (a, e)) in got.iter().zip(&expected).enumerate() {
                let c = mdeploy::eval::compare("", a, e);
                if !c.shape_matches || c.max_rel > 1e-4 {
                    return Err(format!(
                        "output #{i}: shape {:?} vs {:?}, max_rel {:e}",
                        a.shape, e.shape, c.max_rel
                    ));
                }
            }
            Ok::<(), String>(())
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("{}: {e}", f.name)),
            Err(_) => failures.push(format!("{}: panicked", f.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} Keras fixtures fail:\n{}",
        failures.len(),
        fixtures.len(),
        failures.join("\n")
    );
}

#[test]
fn keras_parameter_counts_equal_count_params() {
    for f in keras_fixtures() {
        let want = meta(&f)["count_params"].as_u64().expect("count_params");
        let g = readers::read(&f.model, &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(
            g.source_parameters,
            Some(want as usize),
            "{}: parameter count",
            f.name
        );
    }
}

fn mdeploy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .output()
        .expect("runs mdeploy")
}

#[test]
fn lambda_and_custom_layers_are_refused_by_name() {
    for file in ["keras_lambda.h5", "keras_lambda.keras"] {
        let input = repo().join("fixtures/bad").join(file);
        let dir = crate::common::tempdir();
        let out: PathBuf = dir.path().join("out.onnx");
        let o = mdeploy(&[
            "convert",
            input.to_str().unwrap(),
            "--to",
            "onnx",
            "-o",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(4), "{file}: {err}");
        assert!(
            err.contains("plus_one") && err.contains("Lambda"),
            "{file}: {err}"
        );
        assert!(err.contains("my_scale"), "{file}: {err}");
        assert!(!out.exists(), "{file}: something was written");
    }
}

#[test]
fn corrupt_keras_files_fail_clearly() {
    for file in ["truncated.h5", "truncated.keras"] {
        let input = repo().join("fixtures/bad").join(file);
        let o = mdeploy(&["inspect", input.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{file}: {err}");
        assert!(
            err.contains(file),
            "{file}: the message names the file: {err}"
        );
        assert!(!err.contains("panicked"), "{file}: {err}");
    }
}

#[test]
fn inspect_shows_a_keras_archive() {
    let input = repo().join("fixtures/keras/resnet_block/model.keras");
    let o = mdeploy(&["inspect", input.to_str().unwrap(), "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "keras");
    let f = Fixture {
        name: "resnet_block".into(),
        dir: input.parent().unwrap().to_path_buf(),
        model: input.clone(),
    };
    assert_eq!(v["parameters"], meta(&f)["count_params"]);
}
