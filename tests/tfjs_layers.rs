//! TF.js layers models from Keras files: the topology in tfjs-layers' dialect whichever Keras
//! wrote the file, weights named as tfjs's `loadWeights` matches them, refusals that name
//! each layer. (Loading and running them in @tensorflow/tfjs is the conformance run's job.)

use crate::common::repo;
use mdeploy::error::Error;
use mdeploy::formats::keras::KerasSource;
use mdeploy::ir::Graph;
use mdeploy::writers::tfjs::layers::{translate, LayersModel};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    repo().join("fixtures").join(rel)
}

/// A Keras fixture read once, as a conversion reads it: the source and the graph built from it.
fn source(p: &Path) -> (std::sync::Arc<KerasSource>, Graph) {
    let m = mdeploy::readers::read_model(p, &Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let src = m
        .keras
        .unwrap_or_else(|| panic!("{}: no Keras source", p.display()));
    (src, m.graph)
}

fn layers_model(rel: &str) -> LayersModel {
    let p = fixture(rel);
    let (src, shapes) = source(&p);
    translate(&src, &shapes, &p).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every `{"class_name": "InputLayer", "config": ...}` config anywhere in `v`.
fn input_configs<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(o) => {
            if o.get("class_name").and_then(Value::as_str) == Some("InputLayer") {
                out.extend(o.get("config"));
            }
            o.values().for_each(|x| input_configs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| input_configs(x, out)),
        _ => {}
    }
}

fn layer<'a>(topology: &'a Value, name: &str) -> &'a Value {
    topology["config"]["layers"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == name))
        .unwrap_or_else(|| panic!("no layer '{name}'"))
}

#[test]
fn keras3_topology_is_in_the_tfjs_dialect() {
    for rel in [
        "keras/nested_shared/model.keras",
        "keras/nested_shared/model.h5",
    ] {
        let m = layers_model(rel);
        let text = m.topology.to_string();
        assert!(!text.contains("__keras_tensor__"), "{rel}: {text}");
        assert!(!text.contains("\"batch_shape\""), "{rel}");
        assert!(!text.contains("DTypePolicy"), "{rel}");
        let mut inputs = Vec::new();
        input_configs(&m.topology, &mut inputs);
        assert_eq!(
            inputs.len(),
            4,
            "{rel}: left, right, inner_in, the Sequential's input"
        );
        for c in inputs {
            assert!(c["batch_input_shape"].is_array(), "{rel}: {c}");
            assert_eq!(c["dtype"], "float32", "{rel}");
        }
        // A shared layer's two calls: the nested-list form, one node per call.
        assert_eq!(
            layer(&m.topology, "shared")["inbound_nodes"],
            serde_json::json!([[["left", 0, 0, {}]], [["right", 0, 0, {}]]])
        );
        assert_eq!(m.topology["class_name"], "Model");
        assert_eq!(
            m.topology["config"]["input_layers"][0],
            serde_json::json!(["left", 0, 0])
        );
    }
}

#[test]
fn nested_model_calls_are_numbered_as_tfjs_numbers_them() {
    // tfjs counts a nested model's construction as its node 0 (as tf_keras does); Keras 3
    // numbers calls from 0 in inbound nodes. Both files of the same model must agree.
    let k3 = layers_model("keras/nested_shared/model.keras");
    let k2 = layers_model("tf_keras/nested_shared/model.h5");
    for name in ["shared", "inner", "seq"] {
        assert_eq!(
            layer(&k3.topology, name)["inbound_nodes"],
            layer(&k2.topology, name)["inbound_nodes"],
            "layer {name}"
        );
    }
    assert_eq!(
        k3.topology["config"]["output_layers"],
        serde_json::json!([["seq", 1, 0], ["inner", 2, 0]])
    );
    assert_eq!(
        k3.topology["config"]["output_layers"],
        k2.topology["config"]["output_layers"]
    );
    assert_eq!(
        layer(&k3.topology, "seq")["inbound_nodes"],
        serde_json::json!([[["inner", 1, 0, {}]]])
    );
}

fn names_and_shapes(m: &LayersModel) -> Vec<(String, Vec<usize>)> {
    m.weights
        .iter()
        .map(|w| (w.name.clone(), w.tensor.shape.clone()))
        .collect()
}

#[test]
fn weights_are_named_and_ordered_as_tfjs_loads_them() {
    let want: Vec<(String, Vec<usize>)> = [
        ("fc1/kernel", vec![12, 16]),
        ("fc1/bias", vec![16]),
        ("fc2/kernel", vec![16, 8]),
        ("fc2/bias", vec![8]),
        ("fc_nobias/kernel", vec![8, 8]),
        ("probs/kernel", vec![8, 5]),
        ("probs/bias", vec![5]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    let mut bytes = Vec::new();
    for rel in [
        "keras/dense_mlp/model.h5",
        "keras/dense_mlp/model.keras",
        "tf_keras/dense_mlp/model.h5",
    ] {
        let m = layers_model(rel);
        assert_eq!(names_and_shapes(&m), want, "{rel}");
        bytes.push(m.weights[0].tensor.data.clone());
    }
    // The Keras 3 file and archive hold the same model.
    assert_eq!(bytes[0], bytes[1]);

    // Nested models keep their layers' own names; wrappers scope theirs.
    let nested: Vec<String> = layers_model("keras/nested_shared/model.keras")
        .weights
        .iter()
        .map(|w| w.name.clone())
        .collect();
    assert_eq!(
        nested,
        [
            "shared/kernel",
            "shared/bias",
            "inner_dense/kernel",
            "inner_dense/bias",
            "seq_dense1/kernel",
            "seq_dense1/bias",
            "seq_dense2/kernel",
            "seq_dense2/bias"
        ]
    );
    let td: Vec<String> = layers_model("tf_keras/time_distributed/model.h5")
        .weights
        .iter()
        .map(|w| w.name.clone())
        .collect();
    assert_eq!(
        td,
        [
            "td_dense/kernel",
            "td_dense/bias",
            "td_conv/kernel",
            "td_conv/bias"
        ]
    );
    // Normalization layers without scale/center: only the weights they have, tfjs's order.
    let bn: Vec<String> = layers_model("keras/normalization/model.keras")
        .weights
        .iter()
        .map(|w| w.name.clone())
        .collect();
    assert_eq!(
        bn,
        [
            "bn/gamma",
            "bn/beta",
            "bn/moving_mean",
            "bn/moving_variance",
            "bn_plain/moving_mean",
            "bn_plain/moving_variance",
            "ln/gamma",
            "ln/beta",
            "ln_noscale/gamma",
            "bn_seq/gamma",
            "bn_seq/beta",
            "bn_seq/moving_mean",
            "bn_seq/moving_variance"
        ]
    );
}

#[test]
fn activations_and_keepdims_tfjs_lacks_become_added_layers() {
    // Keras 3 MobileNetV3 block: hard_silu, hard_sigmoid and keepdims pooling.
    let m = layers_model("keras/mobilenet_v3_block/model.keras");
    let stem = layer(&m.topology, "stem_act");
    assert_eq!(stem["config"]["activation"], "linear");
    let mul = layer(&m.topology, "stem_act_hard_silu");
    assert_eq!(mul["class_name"], "Multiply");
    assert_eq!(
        mul["inbound_nodes"],
        serde_json::json!([[["stem_act", 0, 0, {}], ["stem_act_hs_clip", 0, 0, {}]]])
    );
    let keep = layer(&m.topology, "se_pool_keepdims");
    assert_eq!(keep["class_name"], "Reshape");
    let target = keep["config"]["target_shape"].as_array().expect("target");
    assert_eq!(target.len(), 3);
    assert!(
        target.iter().all(|d| d.as_u64().is_some_and(|d| d > 0)),
        "{target:?}"
    );
    // Whatever read the pooled tensor now reads the Reshape.
    let users: Vec<&Value> = m.topology["config"]["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter(|l| l["inbound_nodes"].to_string().contains("\"se_pool\""))
        .collect();
    assert_eq!(users.len(), 1, "only the added Reshape reads se_pool");
    assert_eq!(users[0]["name"], "se_pool_keepdims");
}

fn refusal(rel: &str) -> Vec<mdeploy::error::Unsupported> {
    let p = fixture(rel);
    let (src, shapes) = source(&p);
    match translate(&src, &shapes, &p) {
        Err(e @ Error::Unsupported { .. }) => {
            assert_eq!(e.exit_code(), 4);
            match e {
                Error::Unsupported { items, .. } => items,
                _ => unreachable!(),
            }
        }
        Err(e) => panic!("{rel}: not an unsupported-model error: {e}"),
        Ok(_) => panic!("{rel}: translated"),
    }
}

#[test]
fn layers_tfjs_lacks_are_each_named() {
    // tfjs's GRUCell refuses reset_after=True (Keras's default): one item per layer.
    let items = refusal("keras/recurrent/model.keras");
    let nodes: Vec<&str> = items.iter().map(|u| u.node.as_str()).collect();
    assert_eq!(nodes, ["gru_seq", "gru_back"]);
    // Inside a wrapper too.
    let bi = refusal("tf_keras/text_classifier/model.h5");
    assert_eq!(bi.len(), 1);
    assert!(bi[0].op == "Bidirectional" && bi[0].reason.contains("reset_after"));
    let gru = refusal("tf_keras/recurrent/model.h5");
    assert!(!gru.is_empty());
    assert!(gru
        .iter()
        .all(|u| u.op == "GRU" && u.reason.contains("reset_after")));
    let pad = refusal("keras/pad_crop_upsample/model.h5");
    // The 1-D pad/crop/upsample layers are rewritten; bilinear upsampling is not.
    let ops: Vec<&str> = pad.iter().map(|u| u.op.as_str()).collect();
    assert_eq!(ops, ["UpSampling2D"]);
}

#[test]
fn layers_tfjs_lacks_are_rewritten_exactly() {
    // Subtract: the second input negated by a Rescaling, then Add.
    let m = layers_model("keras/merges/model.keras");
    let neg = layer(&m.topology, "sub_negate");
    assert_eq!(neg["class_name"], "Rescaling");
    assert_eq!(neg["config"]["scale"], -1.0);
    assert_eq!(neg["inbound_nodes"], json!([[["b", 0, 0, {}]]]));
    let sub = layer(&m.topology, "sub");
    assert_eq!(sub["class_name"], "Add");
    assert_eq!(
        sub["inbound_nodes"],
        json!([[["a", 0, 0, {}], ["sub_negate", 0, 0, {}]]])
    );

    // Causal Conv1D: padded by (kernel - 1) · dilation in 2-D, then a valid convolution that
    // keeps its name (and so its weights' names).
    let m = layers_model("tf_keras/conv1d/model.h5");
    assert_eq!(
        layer(&m.topology, "causal_2d")["config"]["target_shape"],
        json!([12, 1, 5])
    );
    let pad = layer(&m.topology, "causal_causal_pad");
    assert_eq!(pad["class_name"], "ZeroPadding2D");
    assert_eq!(pad["config"]["padding"], json!([[2, 0], [0, 0]]));
    let conv = layer(&m.topology, "causal");
    assert_eq!(conv["config"]["padding"], "valid");
    assert_eq!(conv["inbound_nodes"], json!([[["causal_1d", 0, 0, {}]]]));
    assert!(m.weights.iter().any(|w| w.name == "causal/kernel"));

    // Grouped Conv2D (2 groups): one convolution whose kernel is block-diagonal.
    let m = layers_model("keras/conv2d/model.keras");
    assert!(layer(&m.topology, "grouped")["config"]
        .get("groups")
        .is_none());
    let k = &m
        .weights
        .iter()
        .find(|w| w.name == "grouped/kernel")
        .expect("grouped/kernel")
        .tensor;
    assert_eq!(k.shape, vec![3, 3, 8, 8]);
    let v = k.to_f64s();
    // Input channel 0 (group 0) feeds no filter of group 1 (filters 4..8), and does feed
    // group 0's.
    let at = |y: usize, x: usize, c: usize, o: usize| v[((y * 3 + x) * 8 + c) * 8 + o];
    assert!((4..8).all(|o| at(1, 1, 0, o) == 0.0));
    assert!((0..4).any(|o| at(1, 1, 0, o) != 0.0));
}

#[test]
fn written_folder_is_deterministic() {
    let input = fixture("keras/resnet_block/model.keras");
    let tmp = std::env::temp_dir().join(format!("mdeploy-tfjs-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let opts = Default::default();
    let read = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .expect("written")
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("file"),
                )
            })
            .collect();
        v.sort();
        v
    };
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    let (src, shapes) = source(&input);
    let write =
        |out: &Path| mdeploy::writers::tfjs::layers::write(&src, &shapes, &input, out, &opts);
    write(&a).expect("write a");
    write(&b).expect("write b");
    let (fa, fb) = (read(&a), read(&b));
    assert_eq!(fa, fb);
    let json: Value = serde_json::from_slice(
        &fa.iter()
            .find(|(n, _)| n == "model.json")
            .expect("model.json")
            .1,
    )
    .expect("json");
    assert_eq!(json["format"], "layers-model");
    assert_eq!(json["modelTopology"]["backend"], "tensor_flow.js");
    let _ = std::fs::remove_dir_all(&tmp);
}

fn mdeploy(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .output()
        .expect("mdeploy runs")
}

#[test]
fn cli_writes_layers_by_default_and_refuses_naming_each_layer() {
    let tmp = crate::common::tempdir();
    // A Keras 3 archive: a layers model by default (the format tensorflowjs_converter 4.22
    // gets wrong for Keras 3 files).
    let out = tmp.path().join("mlp");
    let input = fixture("keras/dense_mlp/model.keras");
    let o = mdeploy(&[
        "convert",
        input.to_str().expect("utf-8 path"),
        "--to",
        "tfjs",
        "-o",
        out.to_str().expect("utf-8 path"),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).expect("model.json"))
            .expect("json");
    assert_eq!(json["format"], "layers-model");
    assert_eq!(
        json["modelTopology"]["config"]["layers"][0]["config"]["batch_input_shape"],
        json!([null, 12])
    );

    // --tfjs-format layers on a model with layers tfjs-layers lacks: exit 4, each one named,
    // nothing written.
    let out = tmp.path().join("rnn");
    let input = fixture("keras/recurrent/model.keras");
    let o = mdeploy(&[
        "convert",
        input.to_str().expect("utf-8 path"),
        "--to",
        "tfjs",
        "--tfjs-format",
        "layers",
        "-o",
        out.to_str().expect("utf-8 path"),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    for layer in ["'gru_seq'", "'gru_back'"] {
        assert!(err.contains(layer), "{err}");
    }
    assert!(err.contains("GRU") && err.contains("reset_after"), "{err}");
    assert!(!out.exists());
}

#[test]
fn multi_head_attention_is_written_head_by_head() {
    for rel in ["keras/attention/model.keras", "tf_keras/attention/model.h5"] {
        let m = layers_model(rel);
        // cross_attn: 2 heads, key_dim 3, value_dim 5, query from `query`, key/value from
        // `context` (tf_keras passes it as `value=`).
        let q0 = layer(&m.topology, "cross_attn_query0");
        assert_eq!(q0["class_name"], "Dense");
        assert_eq!(q0["inbound_nodes"][0][0][0], "query", "{rel}");
        assert_eq!(
            layer(&m.topology, "cross_attn_value1")["inbound_nodes"][0][0][0],
            "context",
            "{rel}"
        );
        assert_eq!(
            layer(&m.topology, "cross_attn_key1")["inbound_nodes"][0][0][0],
            "context",
            "{rel}"
        );
        let scaled = layer(&m.topology, "cross_attn_scaled0");
        assert!(
            (scaled["config"]["scale"].as_f64().expect("scale") - 1.0 / 3f64.sqrt()).abs() < 1e-12
        );
        let out = layer(&m.topology, "cross_attn");
        assert_eq!(out["class_name"], "Dense");
        assert_eq!(out["inbound_nodes"][0][0][0], "cross_attn_heads");
        let shape = |n: &str| {
            m.weights
                .iter()
                .find(|w| w.name == n)
                .unwrap_or_else(|| panic!("{rel}: no weight {n}"))
                .tensor
                .shape
                .clone()
        };
        assert_eq!(shape("cross_attn_query1/kernel"), vec![8, 3]);
        assert_eq!(shape("cross_attn_value0/bias"), vec![5]);
        assert_eq!(shape("cross_attn/kernel"), vec![10, 8]);
    }
}
