//! `mdeploy optimize` and its passes: clean-up/fusion keeps every fixture's results, pruning
//! reaches its sparsity on kernels only, clustering leaves at most K values deterministically,
//! and the command reports node counts, sparsity, sizes and accuracy (exit 3 past --tolerance).

use crate::common::{assert_matches, onnx_fixtures, repo};
use mdeploy::ir::{Graph, ValueId};
use mdeploy::passes::cluster::{cluster, ClusterOptions};
use mdeploy::passes::prune::{kernel_constants, prune, Scope, MIN_ELEMENTS};
use mdeploy::passes::{self, PassContext};
use mdeploy::readers::{self, ReadOptions};
use std::collections::HashSet;
use std::process::{Command, Output};

fn read(path: &str) -> Graph {
    readers::read(&repo().join(path), &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn zeros(g: &Graph, v: ValueId) -> usize {
    g.constant(v)
        .unwrap()
        .to_f64s()
        .iter()
        .filter(|&&x| x == 0.0)
        .count()
}

fn distinct(g: &Graph, v: ValueId) -> usize {
    let t = g.constant(v).unwrap();
    let set: HashSet<&[u8]> = t.data.chunks_exact(t.dtype.size()).collect();
    set.len()
}

/// Constants that pruning/clustering must not touch: everything that is no selected kernel.
fn untouched(before: &Graph, after: &Graph, kernels: &[ValueId]) {
    for (i, v) in before.values.iter().enumerate() {
        if let Some(t) = &v.constant {
            if !kernels.contains(&ValueId(i)) {
                assert_eq!(
                    after.values[i].constant.as_ref().unwrap().data,
                    t.data,
                    "{} changed",
                    v.name
                );
            }
        }
    }
}

#[test]
fn cleanup_keeps_every_fixtures_results() {
    let mut dropped = 0;
    for f in onnx_fixtures() {
        let mut g = readers::read(&f.model, &ReadOptions::default()).unwrap();
        let before = g.nodes.len();
        passes::cleanup(&mut g, &mut PassContext::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        g.verify().unwrap();
        assert!(g.nodes.len() <= before, "{}", f.name);
        dropped += before - g.nodes.len();
        let got = mdeploy::eval::run(&g, &f.inputs()).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        f.assert_expected(&format!("{} after cleanup", f.name), &got);
    }
    assert!(dropped > 0, "the fixtures hold foldable batch norms");
    for m in ["cnn", "mlp"] {
        let dir = repo().join("fixtures/digits").join(m);
        let mut g = read(&format!("fixtures/digits/{m}/model.keras"));
        passes::cleanup(&mut g, &mut PassContext::default()).unwrap();
        let x = mdeploy::npy::read(&dir.join("input.npy")).unwrap();
        let want = mdeploy::npy::read(&dir.join("expected.npy")).unwrap();
        assert_matches(m, &mdeploy::eval::run(&g, &[x]).unwrap(), &[want]);
    }
}

#[test]
fn cleanup_folds_the_batch_norms_of_a_cnn() {
    for path in [
        "fixtures/onnx/cnn_bn_unfolded/model.onnx",
        "fixtures/digits/cnn/model.keras",
    ] {
        let mut g = read(path);
        let bn = |g: &Graph| {
            g.nodes
                .iter()
                .filter(|n| n.op.name() == "BatchNorm")
                .count()
        };
        assert!(bn(&g) > 0, "{path}");
        let before = g.nodes.len();
        passes::cleanup(&mut g, &mut PassContext::default()).unwrap();
        assert_eq!(bn(&g), 0, "{path}");
        assert!(g.nodes.len() < before, "{path}");
    }
}

#[test]
fn pruning_reaches_the_target_on_kernels_only() {
    let src = read("fixtures/digits/cnn/model.keras");
    let (kernels, small) = kernel_constants(&src, MIN_ELEMENTS);
    assert_eq!(kernels.len(), 2, "conv2 and fc1");
    assert!(small >= 2, "conv1 and the head are small");

    let mut layer = src.clone();
    let r = prune(&mut layer, 0.5, Scope::Layer).unwrap();
    untouched(&src, &layer, &kernels);
    for &k in &kernels {
        let n = layer.constant(k).unwrap().len();
        let z = zeros(&layer, k);
        assert!(z * 100 >= n * 49 && z * 100 <= n * 51, "{z} of {n}");
    }
    assert!(r.achieved >= 0.49 && r.achieved <= 0.51);

    let mut global = src.clone();
    let r = prune(&mut global, 0.5, Scope::Global).unwrap();
    untouched(&src, &global, &kernels);
    let total: usize = kernels
        .iter()
        .map(|&k| global.constant(k).unwrap().len())
        .sum();
    let z: usize = kernels.iter().map(|&k| zeros(&global, k)).sum();
    assert!(z * 100 >= total * 49, "{z} of {total}");
    assert_eq!(r.zeros, z);
    // One threshold: the kernels end at different sparsities, and every kept weight is at
    // least as large as every pruned one.
    let per: Vec<f64> = kernels
        .iter()
        .map(|&k| zeros(&global, k) as f64 / global.constant(k).unwrap().len() as f64)
        .collect();
    assert!((per[0] - per[1]).abs() > 0.02, "{per:?}");
    let mut kept_min = f64::INFINITY;
    let mut pruned_max: f64 = 0.0;
    for &k in &kernels {
        let a = src.constant(k).unwrap().to_f64s();
        let b = global.constant(k).unwrap().to_f64s();
        for (x, y) in a.iter().zip(&b) {
            if *y == 0.0 {
                pruned_max = pruned_max.max(x.abs());
            } else {
                assert_eq!(x, y);
                kept_min = kept_min.min(x.abs());
            }
        }
    }
    assert!(pruned_max <= kept_min, "{pruned_max} > {kept_min}");
    assert!(prune(&mut global, 1.0, Scope::Global).is_err());
}

#[test]
fn clustering_leaves_at_most_k_values_deterministically() {
    let src = read("fixtures/digits/mlp/model.keras");
    let (kernels, _) = kernel_constants(&src, MIN_ELEMENTS);
    assert_eq!(kernels.len(), 2);
    let opts = ClusterOptions {
        clusters: 16,
        seed: 0,
        preserve_zeros: false,
    };
    let mut a = src.clone();
    let r = cluster(&mut a, &opts).unwrap();
    untouched(&src, &a, &kernels);
    for (&k, t) in kernels.iter().zip(&r.tensors) {
        let d = distinct(&a, k);
        assert!((8..=16).contains(&d), "{d} values");
        assert_eq!(d, t.distinct);
        assert!(distinct(&src, k) > 1000);
    }
    let mut b = src.clone();
    cluster(&mut b, &opts).unwrap();
    for &k in &kernels {
        assert_eq!(a.constant(k).unwrap().data, b.constant(k).unwrap().data);
    }
    // After pruning, zeros stay zeros and count as one of the K values.
    let mut p = src.clone();
    prune(&mut p, 0.5, Scope::Layer).unwrap();
    let pruned_zeros: Vec<usize> = kernels.iter().map(|&k| zeros(&p, k)).collect();
    cluster(
        &mut p,
        &ClusterOptions {
            preserve_zeros: true,
            ..opts
        },
    )
    .unwrap();
    for (&k, &z) in kernels.iter().zip(&pruned_zeros) {
        assert_eq!(zeros(&p, k), z);
        assert!(distinct(&p, k) <= 16);
    }
}

fn mdeploy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn optimize_reports_counts_sparsity_sizes_and_accuracy() {
    let dir = crate::common::tempdir();
    let d = repo().join("fixtures/digits/cnn");
    let out = dir.path().join("cnn.onnx");
    let report = dir.path().join("r.json");
    let p = |x: &std::path::Path| x.display().to_string();
    let o = mdeploy(&[
        "optimize",
        &p(&d.join("model.keras")),
        "-o",
        &p(&out),
        "--prune",
        "0.5",
        "--cluster",
        "16",
        "--calibration",
        &p(&d.join("x_test.npy")),
        "--labels",
        &p(&d.join("y_test.npy")),
        "--per-layer",
        "--report",
        &p(&report),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("BatchNorm") && err.contains("pruned"), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let ops = r["ops"].as_array().unwrap();
    let bn = ops.iter().find(|o| o["op"] == "BatchNorm").unwrap();
    assert_eq!(
        (bn["before"].as_u64(), bn["after"].as_u64()),
        (Some(2), Some(0))
    );
    assert!(r["nodes_after"].as_u64() < r["nodes_before"].as_u64());
    assert!(r["prune"]["achieved"].as_f64().unwrap() >= 0.49);
    let most = r["cluster"]["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["distinct"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(most <= 16);
    assert!(r["gzip_bytes"].as_u64().unwrap() < r["bytes"].as_u64().unwrap());
    assert!(r["weights_gzip"]["after"].as_u64() < r["weights_gzip"]["before"].as_u64());
    let acc = &r["accuracy"];
    assert_eq!(acc["samples"], 450);
    assert!(acc["labels"]["result_top1"].as_f64().unwrap() > 0.9);
    assert!(acc["outputs"][0]["top1_agreement"].as_f64().unwrap() > 0.9);
    assert!(!acc["per_layer"].as_array().unwrap().is_empty());
    // Every member the schemas require is there.
    let schema = |f: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(repo().join("schemas").join(f)).unwrap()).unwrap()
    };
    let (opt, accs) = (
        schema("optimize-report.schema.json"),
        schema("accuracy-report.schema.json"),
    );
    let required = |s: &serde_json::Value, v: &serde_json::Value, what: &str| {
        for k in s["required"].as_array().unwrap() {
            assert!(v.get(k.as_str().unwrap()).is_some(), "{what}: no {k}");
        }
    };
    required(&opt, &r, "report");
    for part in ["prune", "cluster", "weights_gzip"] {
        required(&opt["properties"][part], &r[part], part);
    }
    required(&accs, acc, "accuracy");
    required(
        &accs["properties"]["labels"]["oneOf"][1],
        &acc["labels"],
        "labels",
    );
    // The written model, run on the held-out split, has the report's top-1 accuracy.
    let x = mdeploy::npy::read(&d.join("x_test.npy")).unwrap();
    let y = mdeploy::npy::read(&d.join("y_test.npy"))
        .unwrap()
        .to_i64s()
        .unwrap();
    let got = mdeploy::eval::run_onnx_file(&out, &[x]).unwrap();
    assert_eq!(got[0].shape, vec![450, 10]);
    let scores = got[0].to_f64s();
    let hits = scores
        .chunks_exact(10)
        .zip(&y)
        .filter(|(row, &label)| {
            let best = (0..10).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            best as i64 == label
        })
        .count();
    let reported = acc["labels"]["result_top1"].as_f64().unwrap();
    assert!(
        (hits as f64 / 450.0 - reported).abs() < 1e-9,
        "{hits}/450 vs reported {reported}"
    );
}

#[test]
fn tolerance_past_the_bound_exits_3_with_the_output_written() {
    let dir = crate::common::tempdir();
    let model = repo().join("fixtures/digits/mlp/model.keras");
    let out = dir.path().join("mlp.tflite");
    let report = dir.path().join("r.json");
    let o = mdeploy(&[
        "optimize",
        model.to_str().unwrap(),
        "--to",
        "tflite",
        "-o",
        out.to_str().unwrap(),
        "--prune",
        "0.9",
        "--tolerance",
        "1e-3",
        "--report",
        report.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("tolerance") && err.contains("probs"), "{err}");
    assert!(out.is_file() && report.is_file());
    // The same pruning with the bound just above its measured error passes.
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let rel = r["accuracy"]["outputs"][0]["max_rel"].as_f64().unwrap();
    assert!(rel > 1e-3);
    let t = format!("{:e}", rel * 1.01);
    let o = mdeploy(&[
        "optimize",
        model.to_str().unwrap(),
        "--to",
        "tflite",
        "-o",
        out.to_str().unwrap(),
        "--prune",
        "0.9",
        "--tolerance",
        &t,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "--tolerance {t}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Bad flags are usage errors.
    let o = mdeploy(&["optimize", model.to_str().unwrap(), "--prune", "1.5"]);
    assert_eq!(o.status.code(), Some(2));
    let o = mdeploy(&["optimize", model.to_str().unwrap(), "--cluster", "1"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn optimize_output_is_byte_identical_across_runs() {
    let dir = crate::common::tempdir();
    let model = repo().join("fixtures/digits/cnn/model.keras");
    for target in ["onnx", "tflite"] {
        let mut files = Vec::new();
        for run in 0..2 {
            let out = dir.path().join(format!("{run}.{target}"));
            let o = mdeploy(&[
                "optimize",
                model.to_str().unwrap(),
                "--to",
                target,
                "-o",
                out.to_str().unwrap(),
                "--prune",
                "0.5",
                "--cluster",
                "16",
                "--no-accuracy",
            ]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            files.push(std::fs::read(&out).unwrap());
        }
        assert!(files[0] == files[1], "{target}: outputs differ");
    }
}
