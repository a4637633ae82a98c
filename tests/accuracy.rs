//! The accuracy report (src/accuracy.rs) on the trained digits fixtures: a model against itself
//! is exact and as accurate as Keras measured; a damaged copy shows the damage; calibration
//! sets load from .npy, folders and .npz.

use crate::common::repo;
use mdeploy::accuracy::{self, Options};
use mdeploy::ir::{Graph, Tensor};
use mdeploy::readers::{self, ReadOptions};
use std::path::PathBuf;

fn digits(name: &str) -> (Graph, PathBuf) {
    let dir = repo().join("fixtures/digits").join(name);
    let g = readers::read(&dir.join("model.keras"), &ReadOptions::default())
        .unwrap_or_else(|e| panic!("digits/{name}: {e}"));
    (g, dir)
}

fn keras_accuracy(dir: &std::path::Path) -> f64 {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    meta["keras_test_accuracy"].as_f64().unwrap()
}

/// A copy of `g` whose largest constant has every element scaled by `k`.
fn scaled_copy(g: &Graph, k: f64) -> Graph {
    let mut r = g.clone();
    let big = (0..r.values.len())
        .filter(|&i| r.values[i].constant.is_some())
        .max_by_key(|&i| r.values[i].constant.as_ref().map_or(0, |t| t.len()))
        .unwrap();
    let t = r.values[big].constant.clone().unwrap();
    let v: Vec<f64> = t.to_f64s().iter().map(|x| x * k).collect();
    r.values[big].constant = Some(Tensor::from_f64s(t.dtype, t.shape.clone(), &v));
    r
}

#[test]
fn digits_against_itself_is_exact_and_matches_keras_accuracy() {
    for name in ["mlp", "cnn"] {
        let (g, dir) = digits(name);
        let opts = Options {
            calibration: Some(dir.join("x_test.npy")),
            labels: Some(dir.join("y_test.npy")),
            per_layer: true,
            seed: 0,
        };
        let r = accuracy::compare(&g, &g, &opts).unwrap();
        assert_eq!(r.samples, 450, "{name}");
        assert_eq!(r.outputs.len(), 1);
        assert_eq!(r.outputs[0].error.max_abs, 0.0, "{name}");
        assert_eq!(r.outputs[0].top1_agreement, Some(1.0), "{name}");
        let l = r.labels.as_ref().unwrap();
        assert_eq!(l.samples, 450);
        assert_eq!(l.source_top1, l.result_top1);
        // tract and Keras agree on the held-out split's accuracy to within one prediction
        // (float summation order can flip a near-tie).
        let want = keras_accuracy(&dir);
        assert!(
            (l.source_top1 - want).abs() < 1.5 / 450.0,
            "{name}: {} vs Keras {want}",
            l.source_top1
        );
        assert!(
            l.source_top1 > 0.9,
            "{name}: a trained model, {}",
            l.source_top1
        );
        assert!(!r.per_layer.is_empty(), "{name}: layers compared");
        assert!(r.per_layer.iter().all(|p| p.error.max_abs == 0.0));
        assert!(r.worst_rel() == 0.0);
    }
}

#[test]
fn damaged_weights_show_in_every_figure() {
    let (g, dir) = digits("mlp");
    let bad = scaled_copy(&g, -1.0);
    let opts = Options {
        calibration: Some(dir.join("x_test.npy")),
        labels: Some(dir.join("y_test.npy")),
        per_layer: true,
        seed: 0,
    };
    let r = accuracy::compare(&g, &bad, &opts).unwrap();
    let o = &r.outputs[0];
    assert!(o.error.max_abs > 0.1, "{}", o.error.max_abs);
    assert!(o.error.cosine < 0.99);
    assert!(o.top1_agreement.unwrap() < 0.9);
    let l = r.labels.unwrap();
    assert!(l.result_top1 < l.source_top1 - 0.1);
    assert!(r.per_layer.iter().any(|p| p.error.max_abs > 0.0));
    // JSON field names are the report's contract (schemas/accuracy-report.schema.json).
    let j = serde_json::to_value(&r.outputs[0]).unwrap();
    for key in [
        "name",
        "max_abs",
        "max_rel",
        "cosine",
        "shape_matches",
        "top1_agreement",
    ] {
        assert!(j.get(key).is_some(), "missing {key} in {j}");
    }
}

#[test]
fn random_inputs_when_no_calibration_set() {
    let (g, _) = digits("cnn");
    let r = accuracy::compare(&g, &scaled_copy(&g, 1.01), &Options::default()).unwrap();
    assert_eq!(r.samples, accuracy::RANDOM_BATCHES);
    assert!(r.inputs.contains("random"));
    let e = &r.outputs[0].error;
    assert!(e.max_abs > 0.0 && e.cosine > 0.99, "{e:?}");
}

#[test]
fn calibration_sets_load_from_npy_folder_and_npz() {
    let (g, dir) = digits("mlp");
    let x = mdeploy::npy::read(&dir.join("calibration.npy")).unwrap();
    let tmp = crate::common::tempdir();
    // A folder of several .npy files for a single-input model: joined in name order.
    let folder = tmp.path().join("calib");
    std::fs::create_dir(&folder).unwrap();
    let row = 64 * 4;
    for (i, (a, b)) in [(0, 150), (150, 200)].iter().enumerate() {
        let part = Tensor::new(x.dtype, vec![b - a, 64], x.data.slice(a * row..b * row)).unwrap();
        std::fs::write(
            folder.join(format!("part{i}.npy")),
            mdeploy::npy::to_bytes(&part),
        )
        .unwrap();
    }
    let joined = accuracy::load_samples(&g, &folder).unwrap();
    assert_eq!(joined, vec![x.clone()]);
    // An .npz with the entry named after the input.
    let npz = tmp.path().join("calib.npz");
    {
        let f = std::fs::File::create(&npz).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let name = format!("{}.npy", g.value(g.inputs[0]).name);
        z.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut z, &mdeploy::npy::to_bytes(&x)).unwrap();
        z.finish().unwrap();
    }
    assert_eq!(accuracy::load_samples(&g, &npz).unwrap(), vec![x.clone()]);
    // Batches of 64 for a symbolic batch: 200 = 64 + 64 + 64 + 8.
    let b = accuracy::batches_of(&g, vec![x]).unwrap();
    let sizes: Vec<usize> = b.iter().map(|t| t[0].shape[0]).collect();
    assert_eq!(sizes, vec![64, 64, 64, 8]);
    // Wrong data is a usage error naming the input.
    let wrong = tmp.path().join("wrong.npy");
    std::fs::write(
        &wrong,
        mdeploy::npy::to_bytes(&Tensor::from_f32(vec![2, 3], &[0.0; 6])),
    )
    .unwrap();
    let e = accuracy::load_samples(&g, &wrong).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("pixels"), "{e}");
}

#[test]
fn a_folder_gives_one_file_per_input_of_a_multi_input_model() {
    let dir = repo().join("fixtures/onnx/gemm_matmul");
    let g = readers::read(&dir.join("model.onnx"), &ReadOptions::default()).unwrap();
    assert_eq!(g.inputs.len(), 2);
    // The fixture folder holds input.npy and input_1.npy, named after the graph's inputs.
    let samples = accuracy::load_samples(&g, &dir).unwrap();
    assert_eq!(samples[0].shape, vec![2, 5, 16]);
    assert_eq!(samples[1].shape, vec![2, 16, 7]);
    let opts = Options {
        calibration: Some(dir.clone()),
        ..Options::default()
    };
    let r = accuracy::compare(&g, &g, &opts).unwrap();
    assert_eq!(r.samples, 2);
    assert_eq!(r.outputs.len(), 4);
    assert!(r.outputs.iter().all(|o| o.error.max_abs == 0.0));
    // One .npy for two inputs is a usage error naming both.
    let e = accuracy::load_samples(&g, &dir.join("input.npy")).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("input_1"), "{e}");
}
