//! Write every fixture as ONNX, read it back, run it, compare with the framework's output.

use crate::common::{assert_matches, onnx_fixtures, repo};
use mdeploy::readers::{self, ReadOptions};
use mdeploy::writers::onnx::{ExternalData, OnnxWriter};
use mdeploy::writers::Writer;

#[test]
fn every_onnx_fixture_roundtrips_through_the_writer() {
    let dir = crate::common::tempdir();
    for f in onnx_fixtures() {
        let g = readers::read(&f.model, &ReadOptions::default()).unwrap();
        for opset in [13, 17, 21] {
            let out = dir.path().join(format!("{}_{opset}.onnx", f.name));
            let w = OnnxWriter {
                opset: Some(opset),
                external: ExternalData::Auto,
            };
            assert!(
                w.check(&g).is_empty(),
                "{} opset {opset}: {:?}",
                f.name,
                w.check(&g)
            );
            w.write(&g, &out)
                .unwrap_or_else(|e| panic!("{}: {e}", f.name));
            // tract loads the file directly: independent of our reader. It has no Loop and
            // types If only with a constant condition: those files are read back and run by
            // mdeploy's evaluator (onnxruntime runs them in the conformance tier).
            let beyond_tract = g.nodes.iter().any(|n| !n.op.bodies().is_empty());
            let got = if beyond_tract {
                let back = readers::read(&out, &ReadOptions::default()).unwrap();
                mdeploy::eval::run(&back, &f.inputs())
            } else {
                mdeploy::eval::run_onnx_file(&out, &f.inputs())
            }
            .unwrap_or_else(|e| panic!("{} opset {opset}: {e}", f.name));
            f.assert_expected(&format!("{} opset {opset}", f.name), &got);
            // and our reader takes back what we wrote, keeping the I/O names.
            let back = readers::read(&out, &ReadOptions::default()).unwrap();
            let names = |g: &mdeploy::ir::Graph, ids: &[mdeploy::ir::ValueId]| -> Vec<String> {
                ids.iter().map(|&v| g.value(v).name.clone()).collect()
            };
            assert_eq!(
                names(&back, &back.inputs),
                names(&g, &g.inputs),
                "{}",
                f.name
            );
            assert_eq!(
                names(&back, &back.outputs),
                names(&g, &g.outputs),
                "{}",
                f.name
            );
            for (&a, &b) in back.outputs.iter().zip(&g.outputs) {
                assert_eq!(back.ty(a).dtype, g.ty(b).dtype, "{}", f.name);
            }
            // Node names survive: each IR node is written under its own name, or as nodes
            // named below it when one IR op takes several ONNX nodes (Gemm → MatMul + Add).
            let written = <tract_onnx::pb::ModelProto as prost::Message>::decode(
                &std::fs::read(&out).unwrap()[..],
            )
            .unwrap();
            let node_names: std::collections::HashSet<&str> = written
                .graph
                .as_ref()
                .unwrap()
                .node
                .iter()
                .map(|n| n.name.as_str())
                .collect();
            for n in &g.nodes {
                let below = format!("{}/", n.name);
                assert!(
                    node_names.contains(n.name.as_str())
                        || node_names.iter().any(|w| w.starts_with(&below)),
                    "{} opset {opset}: node '{}' was renamed",
                    f.name,
                    n.name
                );
            }
        }
    }
}

#[test]
fn writing_twice_gives_identical_bytes() {
    let dir = crate::common::tempdir();
    for name in ["attention", "where_compare", "lstm_gru"] {
        let model = repo().join(format!("fixtures/onnx/{name}/model.onnx"));
        let mut bytes = Vec::new();
        for k in 0..2 {
            let g = readers::read(&model, &ReadOptions::default()).unwrap();
            let out = dir.path().join(format!("{name}_{k}.onnx"));
            OnnxWriter::default().write(&g, &out).unwrap();
            bytes.push(std::fs::read(&out).unwrap());
        }
        assert!(bytes[0] == bytes[1], "{name}: output differs between runs");
    }
}

#[test]
fn external_data_is_written_and_read_back() {
    let dir = crate::common::tempdir();
    let f = repo().join("fixtures/onnx/cnn_bn/model.onnx");
    let g = readers::read(&f, &ReadOptions::default()).unwrap();
    let out = dir.path().join("ext.onnx");
    let w = OnnxWriter {
        external: ExternalData::Always,
        ..Default::default()
    };
    let report = w.write(&g, &out).unwrap();
    assert_eq!(report.files.len(), 2);
    let data = dir.path().join("ext.onnx.data");
    assert!(std::fs::metadata(&data).unwrap().len() > 1000);
    assert!(std::fs::metadata(&out).unwrap().len() < std::fs::metadata(&data).unwrap().len());
    let back = readers::read(&out, &ReadOptions::default()).unwrap();
    let inputs = mdeploy::npy::read(&repo().join("fixtures/onnx/cnn_bn/input.npy")).unwrap();
    let want = mdeploy::npy::read(&repo().join("fixtures/onnx/cnn_bn/expected.npy")).unwrap();
    assert_matches(
        "external",
        &mdeploy::eval::run(&back, &[inputs]).unwrap(),
        &[want],
    );
}

#[test]
fn symbolic_dims_survive_the_writer() {
    let dir = crate::common::tempdir();
    let g = readers::read(
        &repo().join("fixtures/onnx/dynamic_batch/model.onnx"),
        &ReadOptions::default(),
    )
    .unwrap();
    let out = dir.path().join("dyn.onnx");
    OnnxWriter::default().write(&g, &out).unwrap();
    let back = readers::read(&out, &ReadOptions::default()).unwrap();
    assert_eq!(
        back.ty(back.inputs[0]).shape[0],
        mdeploy::ir::Dim::Sym("batch".into())
    );
    assert_eq!(
        back.ty(back.outputs[0]).shape[0],
        mdeploy::ir::Dim::Sym("batch".into())
    );
    // batch 3, as in the fixture, runs through the written file.
    let input = mdeploy::npy::read(&repo().join("fixtures/onnx/dynamic_batch/input.npy")).unwrap();
    assert_eq!(input.shape[0], 3);
    let want =
        mdeploy::npy::read(&repo().join("fixtures/onnx/dynamic_batch/expected.npy")).unwrap();
    assert_matches(
        "dynamic",
        &mdeploy::eval::run_onnx_file(&out, &[input]).unwrap(),
        &[want],
    );
}
