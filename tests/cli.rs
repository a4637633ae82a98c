//! The binary as users run it: exit codes, messages, default paths, nothing half-written.

use crate::common::repo;
use std::process::{Command, Output};

fn mdeploy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .output()
        .expect("runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture(p: &str) -> String {
    repo().join(p).display().to_string()
}

/// Converting `input` fails with `code`, a message containing `needle`, and no output file.
fn refused(input: &str, code: i32, needle: &str) {
    let dir = crate::common::tempdir();
    let out = dir.path().join("out.onnx");
    let o = mdeploy(&[
        "convert",
        input,
        "--to",
        "onnx",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(code), "{input}: {}", stderr(&o));
    assert!(
        stderr(&o).contains(needle),
        "{input}: message lacks '{needle}': {}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{input}: left files behind: {left:?}");
}

#[test]
fn truncated_file_is_a_clear_failure() {
    refused(&fixture("fixtures/bad/truncated.onnx"), 1, "truncated");
}

#[test]
fn non_model_file_is_a_clear_failure() {
    refused(&fixture("fixtures/bad/not_a_model.onnx"), 1, "not a model");
}

#[test]
fn folder_without_model_is_a_clear_failure() {
    refused(&fixture("fixtures/bad/empty_dir"), 1, "holds no model");
}

#[test]
fn missing_input_is_a_clear_failure() {
    refused("/no/such/model.onnx", 1, "no such file");
}

#[test]
fn unsupported_ops_are_all_listed_with_exit_4() {
    let input = fixture("fixtures/bad/unsupported_op.onnx");
    refused(&input, 4, "custom1");
    refused(&input, 4, "NonexistentOp at node 'weird2'");
}

#[test]
fn unread_onnxruntime_contrib_ops_are_refused_by_name_with_exit_4() {
    // FusedGemm (read) feeds Inverse (a com.microsoft op with no standard meaning here).
    let input = fixture("fixtures/bad/ort_contrib_unknown.onnx");
    refused(
        &input,
        4,
        "unsupported op com.microsoft:Inverse at node 'inverse1'",
    );
}

#[test]
fn tflite_custom_ops_are_refused_by_name_with_exit_4() {
    let input = fixture("fixtures/bad/custom_op.tflite");
    refused(&input, 4, "unsupported op Digamma at node 'Digamma'");
    refused(&input, 4, "custom operator");
}

/// Soft-NMS (NON_MAX_SUPPRESSION_V5 with soft_nms_sigma ≠ 0) rescores boxes instead of
/// dropping them, which the IR's NonMaxSuppression cannot say: refused by name, not read as
/// plain NMS.
#[test]
fn tflite_soft_nms_is_refused_by_name_with_exit_4() {
    let input = fixture("fixtures/bad/soft_nms.tflite");
    refused(&input, 4, "NON_MAX_SUPPRESSION_V5 with soft_nms_sigma ≠ 0");
}

/// RFFT2D's complex result is read only by consumers that take it apart: a MUL of it, and a
/// complex graph output, are refused by name.
#[test]
fn tflite_complex_values_outside_abs_real_imag_are_refused_with_exit_4() {
    let input = fixture("fixtures/bad/complex.tflite");
    refused(
        &input,
        4,
        "unsupported op MUL at node 'mul': a complex input",
    );
    refused(
        &input,
        4,
        "unsupported op COMPLEX64 output at node 'spectrum'",
    );
}

/// The recurrent forms the IR's LSTM cannot express are each refused by name, all listed:
/// BIDIRECTIONAL_SEQUENCE_LSTM's auxiliary input and a projection layer.
#[test]
fn tflite_lstm_variants_are_refused_by_name_with_exit_4() {
    let input = fixture("fixtures/bad/lstm_variants.tflite");
    refused(
        &input,
        4,
        "BIDIRECTIONAL_SEQUENCE_LSTM with an auxiliary input",
    );
    refused(&input, 4, "LSTM with a projection layer");
}

#[test]
fn tflite_signature_selects_its_subgraph_and_names() {
    let model = fixture("fixtures/tflite/two_signatures/model.tflite");
    let dir = crate::common::tempdir();
    let out = dir.path().join("double.onnx");
    let o = mdeploy(&[
        "convert",
        &model,
        "--signature",
        "double",
        "--to",
        "onnx",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let g = mdeploy::readers::read(&out, &Default::default()).unwrap();
    let names = |vs: &[mdeploy::ir::ValueId]| -> Vec<String> {
        vs.iter().map(|&v| g.value(v).name.clone()).collect()
    };
    assert_eq!(names(&g.inputs), ["a"]);
    let mut outs = names(&g.outputs);
    outs.sort();
    assert_eq!(outs, ["sum", "twice"]);
    let o = mdeploy(&[
        "convert",
        &model,
        "--signature",
        "nope",
        "--to",
        "onnx",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no signature 'nope' (the model has: classify, double)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn truncated_tflite_is_a_clear_failure() {
    refused(
        &fixture("fixtures/bad/truncated.tflite"),
        1,
        "not a valid TFLite model",
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let o = mdeploy(&["convert", "x.onnx", "--to", "nothing"]);
    assert_eq!(o.status.code(), Some(2));
    let o = mdeploy(&[
        "convert",
        &fixture("fixtures/onnx/mlp/model.onnx"),
        "--to",
        "onnx",
        "--opset",
        "9",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("opset 9"));
    let o = mdeploy(&[
        "convert",
        &fixture("fixtures/onnx/mlp/model.onnx"),
        "--to",
        "onnx",
        "--tolerance=-1",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn verify_passes_and_reports_each_output() {
    let dir = crate::common::tempdir();
    let out = dir.path().join("o.onnx");
    let report = dir.path().join("r.json");
    let o = mdeploy(&[
        "convert",
        &fixture("fixtures/onnx/attention/model.onnx"),
        "--to",
        "onnx",
        "-o",
        out.to_str().unwrap(),
        "--verify",
        "--input",
        &format!("input={}", fixture("fixtures/onnx/attention/input.npy")),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("max_rel") && stderr(&o).contains("cosine"),
        "{}",
        stderr(&o)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["target"], "onnx");
    assert!(r["verify"][0]["max_rel"].as_f64().unwrap() <= 1e-4);
}

#[test]
fn verification_past_tolerance_exits_3() {
    let dir = crate::common::tempdir();
    let out = dir.path().join("o.onnx");
    // Opset 13 has no HardSwish: its decomposition differs from the fused op in the last bit,
    // which a zero tolerance refuses.
    let o = mdeploy(&[
        "convert",
        &fixture("fixtures/onnx/activations/model.onnx"),
        "--to",
        "onnx",
        "--opset",
        "13",
        "-o",
        out.to_str().unwrap(),
        "--verify",
        "--tolerance",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("verification failed"));
}

#[test]
fn default_output_goes_next_to_the_input() {
    let dir = crate::common::tempdir();
    let input = dir.path().join("net.onnx");
    std::fs::copy(repo().join("fixtures/onnx/mlp/model.onnx"), &input).unwrap();
    let o = mdeploy(&[
        "convert",
        input.to_str().unwrap(),
        "--to",
        "onnx",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dir.path().join("net_converted.onnx").exists());
    assert!(o.stderr.is_empty(), "--quiet printed: {}", stderr(&o));
}

/// Output paths that would clobber the input, or whose existing kind is not the target's, are
/// usage errors (exit 2) that leave nothing behind — no temporary file either.
#[test]
fn clobbering_outputs_are_refused() {
    let dir = crate::common::tempdir();
    let input = dir.path().join("net.onnx");
    std::fs::copy(repo().join("fixtures/onnx/mlp/model.onnx"), &input).unwrap();
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let link = dir.path().join("link.onnx");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let saved_model = fixture("fixtures/saved_model/keras_mlp_export/model");
    let inside = format!("{saved_model}/out.onnx");
    let net = input.to_str().unwrap();
    let cases: [(&str, &str, &str, &str); 5] = [
        (net, "onnx", folder.to_str().unwrap(), "is a folder"),
        (net, "tflite", folder.to_str().unwrap(), "is a folder"),
        (net, "tfjs", file.to_str().unwrap(), "is a file"),
        (net, "onnx", link.to_str().unwrap(), "overwrite the input"),
        (
            &saved_model,
            "onnx",
            &inside,
            "inside the input model's folder",
        ),
    ];
    for (input, to, out, needle) in cases {
        let o = mdeploy(&["convert", input, "--to", to, "-o", out]);
        assert_eq!(o.status.code(), Some(2), "-o {out}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "-o {out}: {}", stderr(&o));
    }
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["file", "folder", "link.onnx", "net.onnx"]);
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0);
    assert!(!std::path::Path::new(&inside).exists());
}

#[test]
fn inspect_json_lists_io_ops_and_parameters() {
    let o = mdeploy(&[
        "inspect",
        &fixture("fixtures/onnx/dynamic_batch/model.onnx"),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["inputs"][0]["name"], "input");
    assert_eq!(v["inputs"][0]["shape"][0], "batch");
    assert_eq!(v["outputs"][0]["dtype"], "f32");
    assert!(v["ops"]["Conv"].as_u64().unwrap() == 2);
    assert!(v["parameters"].as_u64().unwrap() > 1000);
    let o = mdeploy(&["inspect", &fixture("fixtures/onnx/mlp/model.onnx"), "--ir"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("node"));
}

#[test]
fn help_has_examples() {
    let o = mdeploy(&["convert", "--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Examples"));
}

/// `mdeploy inspect … | head -1`: the reader of the pipe closing it early ends the listing
/// quietly, by SIGPIPE as for other Unix tools, not with a panic about a broken pipe.
#[test]
fn a_closed_stdout_pipe_ends_inspect_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args([
            "inspect",
            &fixture("fixtures/tfjs/graph_runtime_shapes/model"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    // The pipe's reading end closes before the child has read the model, let alone printed.
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("waits");
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{:?}", o.status);
}
