//! The SavedModel writer: what it writes is read back by mdeploy's own SavedModel reader and run
//! against the frameworks' outputs (TensorFlow itself loads it in the conformance tier), its
//! proto has what TF Serving looks for, it is byte-identical between runs, and what it cannot
//! express is refused with nothing written.

use crate::common::{onnx_fixtures, repo, tempdir};
use mdeploy::readers::{self, ReadOptions};
use mdeploy::writers::saved_model::{SavedModelWriter, SIGNATURE_KEY};
use mdeploy::writers::Writer;
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tract_tensorflow::tfpb::tensorflow::{attr_value, tensor_info, SavedModel};

fn mdeploy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .output()
        .expect("runs")
}

fn write(model: &Path, out: &Path) -> mdeploy::error::Result<()> {
    let mut g = readers::read(model, &ReadOptions::default())?;
    let w = SavedModelWriter;
    w.legalize(&mut g)?;
    w.write(&g, out).map(|_| ())
}

fn saved_model(dir: &Path) -> SavedModel {
    let bytes = std::fs::read(dir.join("saved_model.pb")).unwrap();
    SavedModel::decode(&bytes[..]).unwrap()
}

/// Every ONNX fixture written as a SavedModel is read back by mdeploy's SavedModel reader
/// (variables from the bundle, the graph through the signature) and matches the framework.
#[test]
fn onnx_fixtures_written_as_saved_models_read_back_and_match() {
    let dir = tempdir();
    let (mut matched, mut failed) = (Vec::new(), Vec::new());
    for f in onnx_fixtures() {
        let out = dir.path().join(&f.name);
        if let Err(e) = write(&f.model, &out) {
            failed.push(format!("{}: write: {e}", f.name));
            continue;
        }
        let back = match readers::read(&out, &ReadOptions::default()) {
            Ok(b) => b,
            Err(e) => {
                failed.push(format!("{}: read back: {e}", f.name));
                continue;
            }
        };
        // The signature's inputs and outputs are sorted by name: matched by name.
        let source = readers::read(&f.model, &ReadOptions::default()).unwrap();
        let got = crate::common::run_by_name(&f.name, &source, &back, &f.inputs());
        f.assert_expected(&format!("{} via SavedModel", f.name), &got);
        matched.push(f.name.clone());
    }
    // 48 of 49: a transposed convolution at symbolic spatial sizes (unet_dynamic) is what
    // mdeploy's SavedModel reader does not import yet; TensorFlow itself runs it in the
    // conformance tier.
    assert!(
        matched.len() >= 48,
        "matched {} {matched:?}, failed {failed:#?}",
        matched.len()
    );
}

fn fixture(rel: &str) -> PathBuf {
    repo().join("fixtures").join(rel)
}

#[test]
fn the_proto_has_what_tf_serving_loads() {
    let dir = tempdir();
    let out = dir.path().join("sm");
    write(&fixture("onnx/dynamic_batch/model.onnx"), &out).unwrap();
    let sm = saved_model(&out);
    assert_eq!(sm.meta_graphs.len(), 1);
    let mg = &sm.meta_graphs[0];
    assert_eq!(mg.meta_info_def.as_ref().unwrap().tags, ["serve"]);
    let sig = &mg.signature_def[SIGNATURE_KEY];
    assert_eq!(sig.method_name, "tensorflow/serving/predict");
    // Keyed by the source's names; the dynamic batch is -1.
    let source = readers::read(
        &fixture("onnx/dynamic_batch/model.onnx"),
        &ReadOptions::default(),
    )
    .unwrap();
    for &v in &source.inputs {
        let info = &sig.inputs[&source.value(v).name];
        let dims = &info.tensor_shape.as_ref().unwrap().dim;
        assert_eq!(dims[0].size, -1, "{info:?}");
        let Some(tensor_info::Encoding::Name(name)) = &info.encoding else {
            panic!("{info:?}")
        };
        let node = name.trim_end_matches(":0");
        let gd = mg.graph_def.as_ref().unwrap();
        assert!(gd
            .node
            .iter()
            .any(|n| n.name == node && n.op == "Placeholder"));
    }
    assert_eq!(sig.outputs.len(), source.outputs.len());
    // Weights are variables restored by the saver; no grappler-internal or TF.js-only op.
    let saver = mg.saver_def.as_ref().unwrap();
    assert_eq!(saver.restore_op_name, "save/restore_all");
    let gd = mg.graph_def.as_ref().unwrap();
    let ops: Vec<&str> = gd.node.iter().map(|n| n.op.as_str()).collect();
    for op in ["VarHandleOp", "ReadVariableOp", "RestoreV2", "SaveV2"] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    assert!(!ops.iter().any(|o| o.starts_with('_') || *o == "Prelu"));
    assert!(!gd.node.iter().any(|n| n.op == "Const"
        && matches!(&n.attr["value"].value, Some(attr_value::Value::Tensor(t))
            if t.dtype == 1 && t.tensor_content.len() > 4)));
    let vars: Vec<&str> = gd
        .node
        .iter()
        .filter(|n| n.op == "VarHandleOp")
        .map(|n| n.name.as_str())
        .collect();
    assert!(mg.collection_def.contains_key("variables"));
    assert!(out.join("variables/variables.index").is_file());
    assert!(out
        .join("variables/variables.data-00000-of-00001")
        .is_file());
    assert!(!vars.is_empty());
}

#[test]
fn output_is_byte_identical_between_runs_and_replaces_an_earlier_one() {
    let dir = tempdir();
    let files = ["saved_model.pb", "variables/variables.index"];
    let mut runs = Vec::new();
    for _ in 0..2 {
        let out = dir.path().join("sm");
        // Each run a fresh process: prost's maps are hashed with a per-process random seed.
        let o = mdeploy(&[
            "convert",
            fixture("onnx/cnn_bn/model.onnx").to_str().unwrap(),
            "--to",
            "saved_model",
            "-o",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        runs.push(
            files
                .iter()
                .map(|f| std::fs::read(out.join(f)).unwrap())
                .collect::<Vec<_>>(),
        );
    }
    assert!(runs[0] == runs[1], "the two runs differ");
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries, 1, "no temporary folder is left");
}

#[test]
fn convert_to_saved_model_verifies_by_reading_it_back() {
    let dir = tempdir();
    let out = dir.path().join("sm");
    let o = mdeploy(&[
        "convert",
        fixture("onnx/residual/model.onnx").to_str().unwrap(),
        "--to",
        "saved_model",
        "-o",
        out.to_str().unwrap(),
        "--verify",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("read back by mdeploy's SavedModel reader"),
        "{err}"
    );
    // Quantization is refused (a SavedModel is written float), nothing written.
    let out2 = dir.path().join("sm_int8");
    let o = mdeploy(&[
        "convert",
        fixture("onnx/residual/model.onnx").to_str().unwrap(),
        "--to",
        "saved_model",
        "--int8",
        "-o",
        out2.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out2.exists());
}

#[test]
fn unsupported_ops_are_refused_by_node_and_op_with_nothing_written() {
    use mdeploy::ir::ops::{BinaryOp, UnaryOp};
    use mdeploy::ir::{fixed_shape, DType, Graph, Op, TensorType};
    let mut g = Graph::new();
    let i = g.add_input("i", TensorType::new(DType::U32, fixed_shape(&[2, 5])));
    let s = g
        .add_node(
            "shift",
            Op::Binary(BinaryOp::BitShiftLeft),
            vec![i, i],
            &["s".into()],
        )
        .unwrap();
    let n = g
        .add_node(
            "bnot",
            Op::Unary(UnaryOp::BitwiseNot),
            vec![s[0]],
            &["n".into()],
        )
        .unwrap();
    g.outputs = vec![n[0]];
    g.verify().unwrap();
    let w = SavedModelWriter;
    w.legalize(&mut g).unwrap();
    let problems = w.check(&g);
    let named: Vec<(&str, &str)> = problems
        .iter()
        .map(|u| (u.node.as_str(), u.op.as_str()))
        .collect();
    assert_eq!(
        named,
        [("shift", "BitShiftLeft"), ("bnot", "BitwiseNot")],
        "{problems:?}"
    );
    let tmp = tempdir();
    let out = tmp.path().join("sm");
    let err = w.write(&g, &out).unwrap_err();
    assert_eq!(err.exit_code(), 4);
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// A full-integer TFLite source is written with its weights as float variables (the values its
/// dequantization gives), not as integer constants and arithmetic: TF Serving runs float.
#[test]
fn quantized_weights_are_written_as_float_variables() {
    let dir = tempdir();
    let out = dir.path().join("sm");
    write(&fixture("tflite/int8_cnn/model.tflite"), &out).unwrap();
    let sm = saved_model(&out);
    let gd = sm.meta_graphs[0].graph_def.as_ref().unwrap();
    let var_types: Vec<i32> = gd
        .node
        .iter()
        .filter(|n| n.op == "VarHandleOp")
        .filter_map(|n| match &n.attr["dtype"].value {
            Some(attr_value::Value::Type(t)) => Some(*t),
            _ => None,
        })
        .collect();
    assert!(var_types.len() >= 4, "{var_types:?}");
    assert!(var_types.iter().all(|&t| t == 1), "{var_types:?}");
    let int_weights: Vec<&str> = gd
        .node
        .iter()
        .filter(|n| n.op == "Const")
        .filter(|n| match &n.attr["value"].value {
            Some(attr_value::Value::Tensor(t)) => t.dtype != 1 && t.tensor_content.len() > 64,
            _ => false,
        })
        .map(|n| n.name.as_str())
        .collect();
    assert!(int_weights.is_empty(), "{int_weights:?}");
}
