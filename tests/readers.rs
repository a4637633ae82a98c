//! Every fixture read into the IR, verified, and evaluated against the source framework's output.

use crate::common::{onnx_fixtures, repo};
use mdeploy::readers::{self, ReadOptions};

#[test]
fn every_onnx_fixture_reads_and_matches_the_framework() {
    for f in onnx_fixtures() {
        let g = readers::read(&f.model, &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        g.verify().unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let got = mdeploy::eval::run(&g, &f.inputs()).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        f.assert_expected(&f.name, &got);
    }
}

#[test]
fn shape_subgraphs_fold_away_with_a_symbolic_batch() {
    let g = readers::read(
        &repo().join("fixtures/onnx/dynamic_batch/model.onnx"),
        &ReadOptions::default(),
    )
    .unwrap();
    let names: Vec<String> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "ShapeOf" || n == "Gather" || n == "Concat"),
        "left: {names:?}"
    );
    let out = g.ty(g.outputs[0]);
    assert_eq!(out.shape[0], mdeploy::ir::Dim::Sym("batch".into()));
}

#[test]
fn ir_text_snapshots_are_stable() {
    for name in ["mlp", "dynamic_batch", "if_const"] {
        let g = readers::read(
            &repo().join(format!("fixtures/onnx/{name}/model.onnx")),
            &ReadOptions::default(),
        )
        .unwrap();
        let text = g.to_text();
        let snap = repo().join(format!("tests/snapshots/{name}.ir.txt"));
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&snap, &text).unwrap();
        }
        let want = std::fs::read_to_string(&snap)
            .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_SNAPSHOTS=1", snap.display()));
        assert_eq!(
            text, want,
            "IR of {name} changed; review and run with UPDATE_SNAPSHOTS=1"
        );
    }
}

#[test]
fn input_shape_override_fixes_the_batch() {
    let opts = ReadOptions {
        input_shapes: vec![mdeploy::readers::parse_input_shape("input:4x3x16x16").unwrap()],
        ..Default::default()
    };
    let g = readers::read(
        &repo().join("fixtures/onnx/dynamic_batch/model.onnx"),
        &opts,
    )
    .unwrap();
    assert_eq!(g.ty(g.outputs[0]).shape, mdeploy::ir::fixed_shape(&[4, 5]));
}
