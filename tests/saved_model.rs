//! TensorFlow SavedModels: every fixture read, verified and evaluated against TensorFlow's own
//! output with the signature's I/O names; signatures; broken folders and unsupported ops as
//! clear errors with the documented exit codes.

use crate::common::{assert_matches, repo, Fixture};
use mdeploy::readers::{self, ReadOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn saved_model_fixtures() -> Vec<Fixture> {
    let root = repo().join("fixtures/saved_model");
    let mut v: Vec<Fixture> = std::fs::read_dir(&root)
        .expect("fixtures/saved_model exists")
        .flatten()
        .filter(|e| e.path().join("model/saved_model.pb").exists())
        .map(|e| Fixture {
            name: e.file_name().to_string_lossy().into_owned(),
            model: e.path().join("model"),
            dir: e.path(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        v.len() >= 8,
        "expected the SavedModel fixtures, found {}",
        v.len()
    );
    v
}

#[derive(serde::Deserialize)]
struct Meta {
    inputs: Vec<String>,
    outputs: Vec<String>,
}

fn meta(dir: &Path) -> Meta {
    let text = std::fs::read_to_string(dir.join("meta.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_saved_model_fixture_reads_and_matches_tensorflow() {
    for f in saved_model_fixtures() {
        let g = readers::read(&f.model, &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        g.verify().unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let m = meta(&f.dir);
        let ins: Vec<&str> = g.inputs.iter().map(|&v| g.value(v).name.as_str()).collect();
        let outs: Vec<&str> = g
            .outputs
            .iter()
            .map(|&v| g.value(v).name.as_str())
            .collect();
        assert_eq!(ins, m.inputs, "{}: input names", f.name);
        assert_eq!(outs, m.outputs, "{}: output names", f.name);
        let got = mdeploy::eval::run(&g, &f.inputs()).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_matches(&f.name, &got, &f.expected());
    }
}

#[test]
fn the_batch_stays_a_symbol_and_shape_arithmetic_folds() {
    let g = readers::read(
        &repo().join("fixtures/saved_model/keras_dynamic_export/model"),
        &ReadOptions::default(),
    )
    .unwrap();
    let ops: Vec<String> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert!(!ops.iter().any(|n| n == "ShapeOf"), "{ops:?}");
    assert_eq!(
        g.ty(g.outputs[0]).shape[0],
        mdeploy::ir::Dim::Sym("batch".into())
    );
}

#[test]
fn a_second_signature_is_chosen_by_name() {
    let dir = repo().join("fixtures/saved_model/module_two_signatures");
    let opts = ReadOptions {
        signature: Some("combine".into()),
        ..Default::default()
    };
    let g = readers::read(&dir.join("model"), &opts).unwrap();
    let ins: Vec<&str> = g.inputs.iter().map(|&v| g.value(v).name.as_str()).collect();
    assert_eq!(ins, ["a", "b"]);
    assert_eq!(g.value(g.outputs[0]).name, "mixed");
    let other = Fixture {
        name: "combine".into(),
        dir: dir.join("combine"),
        model: dir.join("model"),
    };
    let got = mdeploy::eval::run(&g, &other.inputs()).unwrap();
    assert_matches("combine", &got, &other.expected());
}

fn mdeploy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .output()
        .expect("runs")
}

/// Converting `input` fails with `code` and a message containing every `needles`, no panic,
/// nothing written.
fn refused(input: &Path, extra: &[&str], code: i32, needles: &[&str]) -> String {
    let dir = crate::common::tempdir();
    let out = dir.path().join("out.onnx");
    let mut args = vec![
        "convert",
        input.to_str().unwrap(),
        "--to",
        "onnx",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = mdeploy(&args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "{}: {err}", input.display());
    for n in needles {
        assert!(err.contains(n), "message lacks '{n}': {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left files behind: {left:?}");
    err
}

/// A copy of a fixture's model folder to break.
fn copy_model(name: &str) -> (crate::common::TempDir, PathBuf) {
    let tmp = crate::common::tempdir();
    let src = repo().join("fixtures/saved_model").join(name).join("model");
    let dst = tmp.path().join("model");
    copy_dir(&src, &dst);
    (tmp, dst)
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

#[test]
fn unknown_signature_is_a_usage_error_listing_the_signatures() {
    let m = repo().join("fixtures/saved_model/module_two_signatures/model");
    refused(
        &m,
        &["--signature", "nope"],
        2,
        &["no signature 'nope'", "combine", "serving_default"],
    );
}

#[test]
fn folder_without_saved_model_pb_is_a_clear_failure() {
    let (_tmp, m) = copy_model("keras_mlp_export");
    std::fs::remove_file(m.join("saved_model.pb")).unwrap();
    refused(&m, &[], 1, &["saved_model.pb"]);
}

#[test]
fn corrupt_saved_model_pb_is_a_clear_failure() {
    let (_tmp, m) = copy_model("keras_mlp_export");
    let pb = m.join("saved_model.pb");
    let bytes = std::fs::read(&pb).unwrap();
    std::fs::write(&pb, &bytes[..bytes.len() / 2]).unwrap();
    refused(&m, &[], 1, &["not a valid SavedModel"]);
}

#[test]
fn missing_variables_shard_is_a_clear_failure() {
    let (_tmp, m) = copy_model("keras_mlp_export");
    std::fs::remove_file(m.join("variables/variables.data-00000-of-00001")).unwrap();
    refused(&m, &[], 1, &["variables shard is missing"]);
}

#[test]
fn corrupt_variables_are_caught_by_their_checksums() {
    let (_tmp, m) = copy_model("keras_mlp_export");
    let shard = m.join("variables/variables.data-00000-of-00001");
    let mut bytes = std::fs::read(&shard).unwrap();
    let at = bytes.len() - 8;
    bytes[at] ^= 0x40;
    std::fs::write(&shard, &bytes).unwrap();
    refused(&m, &[], 1, &["checksum mismatch"]);
    // A truncated shard: entries past its end.
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    refused(&m, &[], 1, &["variables.data-00000-of-00001"]);
    // A broken index.
    let index = m.join("variables/variables.index");
    let mut idx = std::fs::read(&index).unwrap();
    idx[10] ^= 0xff;
    std::fs::write(&index, &idx).unwrap();
    refused(&m, &[], 1, &["corrupt variables index"]);
}

#[test]
fn lstm_while_loops_become_one_loop_and_a_tflite_while() {
    let m = repo().join("fixtures/saved_model/keras_lstm_export/model");
    let tmp = crate::common::tempdir();
    let g = mdeploy::readers::read(&m, &Default::default()).unwrap();
    let loops: Vec<&str> = g
        .nodes
        .iter()
        .filter(|n| n.op.name() == "Loop")
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(loops.len(), 1, "{loops:?}");
    let ops: Vec<String> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert!(ops.iter().all(|o| !o.contains("TensorList")), "{ops:?}");
    let out = tmp.path().join("m.tflite");
    let o = mdeploy(&[
        "convert",
        m.to_str().unwrap(),
        "--to",
        "tflite",
        "-o",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let bytes = std::fs::read(&out).unwrap();
    let model = tract_tflite::tflite::root_as_model(&bytes).unwrap();
    // The main graph, the loop's condition and its body.
    assert_eq!(model.subgraphs().unwrap().len(), 3);
}

#[test]
fn every_fixture_converts_to_onnx_with_the_signature_names() {
    for name in ["keras_cnn_export", "module_two_signatures"] {
        let f = repo().join("fixtures/saved_model").join(name);
        let tmp = crate::common::tempdir();
        let out = tmp.path().join("m.onnx");
        let mut args = vec![
            "convert".to_string(),
            f.join("model").display().to_string(),
            "--to".into(),
            "onnx".into(),
            "-o".into(),
            out.display().to_string(),
            "--verify".into(),
        ];
        let m = meta(&f);
        for (i, key) in m.inputs.iter().enumerate() {
            let file = if i == 0 {
                "input.npy".to_string()
            } else {
                format!("input_{i}.npy")
            };
            args.push("--input".into());
            args.push(format!("{key}={}", f.join(file).display()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = mdeploy(&args);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let g = readers::read(&out, &ReadOptions::default()).unwrap();
        let outs: Vec<&str> = g
            .outputs
            .iter()
            .map(|&v| g.value(v).name.as_str())
            .collect();
        assert_eq!(outs, m.outputs, "{name}");
        let got = mdeploy::eval::run(
            &g,
            &Fixture {
                name: name.into(),
                dir: f.clone(),
                model: out.clone(),
            }
            .inputs(),
        )
        .unwrap();
        let expected = Fixture {
            name: name.into(),
            dir: f.clone(),
            model: out.clone(),
        }
        .expected();
        assert_matches(name, &got, &expected);
    }
}

/// The control-flow ops of `g`, each with those of its bodies: `If[If]`, `Loop[Loop, If]`.
fn control_tree(g: &mdeploy::ir::Graph) -> Vec<String> {
    g.nodes
        .iter()
        .filter(|n| !n.op.bodies().is_empty())
        .map(|n| {
            let inner: Vec<String> =
                n.op.bodies()
                    .iter()
                    .flat_map(|(_, b)| control_tree(b))
                    .collect();
            if inner.is_empty() {
                n.op.name()
            } else {
                format!("{}[{}]", n.op.name(), inner.join(", "))
            }
        })
        .collect()
}

#[test]
fn tf1_cond_and_while_frames_become_one_if_or_loop_each() {
    let tree = |name: &str| {
        let m = repo().join("fixtures/saved_model").join(name).join("model");
        control_tree(&readers::read(&m, &ReadOptions::default()).unwrap())
    };
    // Two Merges (two outputs) of one cond are one If; the cond nested in its true branch is an
    // If in the then branch.
    assert_eq!(tree("tf1_cond"), ["If[If]"]);
    assert_eq!(tree("tf1_while"), ["Loop[If]"]);
    // Two conds on one predicate, the second reading the first: two Ifs, not one cycle.
    assert_eq!(tree("tf1_nested"), ["If", "If", "Loop[Loop]", "Loop"]);
    // Conds on a `training` flag left at its default are read in place: no If.
    assert_eq!(tree("tf1_flag_grow"), ["Loop"]);
}

#[test]
fn a_value_read_out_of_a_tf1_cond_branch_is_refused_by_name() {
    use prost::Message;
    use tract_tensorflow::tfpb::tensorflow::SavedModel;
    let (_tmp, m) = copy_model("tf1_cond");
    let pb = m.join("saved_model.pb");
    let mut sm = SavedModel::decode(&std::fs::read(&pb).unwrap()[..]).unwrap();
    let graph = sm.meta_graphs[0].graph_def.as_mut().unwrap();
    // `y` reads the true branch's Tanh directly, past the Merge: a dead tensor on the other side.
    let y = graph.node.iter_mut().find(|n| n.name == "y").unwrap();
    y.input = vec!["cond/Tanh".into()];
    std::fs::write(&pb, sm.encode_to_vec()).unwrap();
    refused(&m, &[], 4, &["node 'y'", "inside a tf.cond branch"]);
}
