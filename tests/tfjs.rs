//! The TF.js writer through the CLI: the folder's layout (model.json + exactly-sized shards), the
//! weights manifest (byte counts, quantization fields and codes), graph-model structure (ops
//! tfjs-converter runs, signature by source names, -1 for dynamic dims, fused forms),
//! determinism, refusals (exit 4, nothing left behind) and usage errors. Running the folders in
//! @tensorflow/tfjs is the conformance tier's job (conformance/tfjs_run.js).

use crate::common::{onnx_fixtures, repo};
use mdeploy::ir::Tensor;
use mdeploy::writers::tfjs::{write_folder, FolderOptions, NamedWeight};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Ops of tfjs-converter 4.22's executors the graph writer may use (op_list/*.ts).
pub const TFJS_OPS: &[&str] = &[
    "StatelessIf",
    "StatelessWhile",
    "Placeholder",
    "Const",
    "Identity",
    "Abs",
    "Neg",
    "Sqrt",
    "Rsqrt",
    "Exp",
    "Log",
    "Reciprocal",
    "Erf",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Acosh",
    "Atanh",
    "Sigmoid",
    "Tanh",
    "Relu",
    "Relu6",
    "Elu",
    "LeakyRelu",
    "Softplus",
    "LogicalNot",
    "IsNan",
    "Square",
    "AddV2",
    "Sub",
    "Mul",
    "RealDiv",
    "Pow",
    "Minimum",
    "Maximum",
    "FloorMod",
    "Prelu",
    "Equal",
    "NotEqual",
    "FloorDiv",
    "Less",
    "Greater",
    "LessEqual",
    "GreaterEqual",
    "LogicalAnd",
    "LogicalOr",
    "SquaredDifference",
    "SelectV2",
    "Cast",
    "MatMul",
    "BatchMatMulV2",
    "_FusedMatMul",
    "Einsum",
    "Conv2D",
    "_FusedConv2D",
    "DepthwiseConv2dNative",
    "FusedDepthwiseConv2dNative",
    "Conv2DBackpropInput",
    "BiasAdd",
    "MaxPool",
    "AvgPool",
    "Mean",
    "Max",
    "Min",
    "Sum",
    "Prod",
    "Softmax",
    "LogSoftmax",
    "Reshape",
    "Transpose",
    "ConcatV2",
    "SplitV",
    "StridedSlice",
    "Slice",
    "Pad",
    "PadV2",
    "MirrorPad",
    "Tile",
    "BroadcastTo",
    "BroadcastArgs",
    "Any",
    "All",
    "DepthToSpace",
    "ResizeBilinear",
    "ResizeNearestNeighbor",
    "GatherV2",
    "GatherNd",
    "TensorScatterUpdate",
    "TopKV2",
    "ArgMax",
    "ArgMin",
    "ExpandDims",
    "Cumsum",
    "Where",
    "OneHot",
    "MatrixBandPart",
    "Shape",
    "Fill",
    "Range",
    "ClipByValue",
    "Pack",
];

fn mdeploy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .output()
        .expect("run mdeploy")
}

fn convert(model: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "convert",
        model.to_str().unwrap(),
        "--to",
        "tfjs",
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = mdeploy(&args);
    assert!(
        o.status.success(),
        "{}: {}",
        model.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn model_json(dir: &Path) -> Value {
    let text = std::fs::read(dir.join("model.json")).expect("model.json");
    serde_json::from_slice(&text).expect("model.json is JSON")
}

/// Elements of one manifest weight.
fn elements(w: &Value) -> u64 {
    w["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap())
        .product()
}

/// Bytes the manifest says its weights take (what the loader slices from the shards).
fn manifest_bytes(m: &Value) -> u64 {
    let mut total = 0;
    for group in m["weightsManifest"].as_array().unwrap() {
        for w in group["weights"].as_array().unwrap() {
            let n = elements(w);
            let size = match (w["quantization"]["dtype"].as_str(), w["dtype"].as_str()) {
                (Some("uint8"), _) | (None, Some("bool")) => 1,
                (Some("uint16"), _) | (Some("float16"), _) => 2,
                (None, Some("float32")) | (None, Some("int32")) => 4,
                other => panic!("unexpected weight dtype {other:?}"),
            };
            total += n * size;
        }
    }
    total
}

fn shards(dir: &Path, m: &Value) -> Vec<PathBuf> {
    let groups = m["weightsManifest"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "one weight group");
    groups[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| dir.join(p.as_str().unwrap()))
        .collect()
}

fn fixture(rel: &str) -> PathBuf {
    repo().join("fixtures").join(rel)
}

#[test]
fn shards_split_exactly_at_the_limit() {
    let tmp = crate::common::tempdir();
    let model = fixture("onnx/tf2onnx_mobilenetv2/model.onnx");
    for (flag, limit) in [
        ("1000", Some(1000u64)),
        ("4096", Some(4096)),
        ("none", None),
    ] {
        let out = tmp.path().join(format!("out_{flag}"));
        convert(&model, &out, &["--shard-size", flag]);
        let m = model_json(&out);
        let total = manifest_bytes(&m);
        assert!(total > 10_000, "the fixture has weights");
        let paths = shards(&out, &m);
        let n = paths.len();
        match limit {
            Some(l) => assert_eq!(n as u64, total.div_ceil(l), "--shard-size {flag}"),
            None => assert_eq!(n, 1, "--shard-size none"),
        }
        let mut sum = 0;
        for (i, p) in paths.iter().enumerate() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(name, format!("group1-shard{}of{n}.bin", i + 1));
            let len = std::fs::metadata(p).unwrap().len();
            if i + 1 < n {
                assert_eq!(Some(len), limit, "{name} is not exactly the limit");
            } else {
                assert!(len > 0 && limit.is_none_or(|l| len <= l));
            }
            sum += len;
        }
        assert_eq!(sum, total, "shards hold exactly the manifest's bytes");
        // Nothing else in the folder.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), n + 1);
    }
}

#[test]
fn default_shards_are_4_mib() {
    let tmp = crate::common::tempdir();
    let n = 1_300_000usize; // 5.2 MB of float32: two shards
    let v: Vec<f32> = (0..n).map(|i| (i % 977) as f32 * 0.01).collect();
    let weights = vec![
        NamedWeight {
            name: "big".into(),
            tensor: Tensor::from_f32(vec![n], &v),
        },
        NamedWeight {
            name: "small".into(),
            tensor: Tensor::from_i64(vec![3], &[1, -2, 3]),
        },
    ];
    let out = tmp.path().join("m");
    let mut model = serde_json::Map::new();
    model.insert("format".into(), "graph-model".into());
    write_folder(&out, model, &weights, &FolderOptions::default()).unwrap();
    let m = model_json(&out);
    let paths = shards(&out, &m);
    assert_eq!(paths.len(), 2);
    assert_eq!(std::fs::metadata(&paths[0]).unwrap().len(), 4 * 1024 * 1024);
    assert_eq!(
        std::fs::metadata(&paths[1]).unwrap().len(),
        (n * 4 + 12 - 4 * 1024 * 1024) as u64
    );
    // int64 weights are stored as int32 (TF.js has no int64), after the float32 bytes.
    let w = &m["weightsManifest"][0]["weights"];
    assert_eq!(w[1]["dtype"], "int32");
    let tail = std::fs::read(&paths[1]).unwrap();
    let ints: Vec<i32> = tail[tail.len() - 12..]
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(ints, vec![1, -2, 3]);
    assert_eq!(
        m["convertedBy"].as_str().unwrap(),
        format!("mdeploy {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn int8_and_uint16_store_affine_codes_the_loader_dequantizes() {
    let tmp = crate::common::tempdir();
    let model = fixture("onnx/cnn_bn/model.onnx");
    let float = tmp.path().join("f32");
    convert(&model, &float, &[]);
    let fm = model_json(&float);
    let fbytes = std::fs::read(&shards(&float, &fm)[0]).unwrap();
    for (flag, code_size, qmax) in [
        ("--int8", 1usize, 255.0f64),
        ("--quantize-uint16", 2, 65535.0),
    ] {
        let out = tmp.path().join(flag.trim_start_matches('-'));
        convert(&model, &out, &[flag, "--shard-size", "none"]);
        let m = model_json(&out);
        let bytes = std::fs::read(&shards(&out, &m)[0]).unwrap();
        assert_eq!(bytes.len() as u64, manifest_bytes(&m));
        let (mut off, mut foff) = (0usize, 0usize);
        let fweights = fm["weightsManifest"][0]["weights"].as_array().unwrap();
        let weights = m["weightsManifest"][0]["weights"].as_array().unwrap();
        assert_eq!(weights.len(), fweights.len());
        let mut quantized = 0;
        for (w, fw) in weights.iter().zip(fweights) {
            assert_eq!(w["name"], fw["name"]);
            let n = elements(w) as usize;
            let q = &w["quantization"];
            if w["dtype"] != "float32" || n < mdeploy::writers::tfjs::SMALL_WEIGHT_ELEMENTS {
                assert!(
                    q.is_null(),
                    "{}: only float32 weights of 1024 elements or more are quantized",
                    w["name"]
                );
                off += n * 4;
                foff += n * 4;
                continue;
            }
            quantized += 1;
            let want = if code_size == 1 { "uint8" } else { "uint16" };
            assert_eq!(q["dtype"], want);
            let (min, scale) = (q["min"].as_f64().unwrap(), q["scale"].as_f64().unwrap());
            assert!(scale > 0.0);
            let orig: Vec<f32> = fbytes[foff..foff + 4 * n]
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let (lo, hi) = orig.iter().fold((f64::MAX, f64::MIN), |(l, h), &x| {
                (l.min(x as f64), h.max(x as f64))
            });
            if lo < 0.0 && hi > 0.0 {
                let zero = -min / scale;
                assert!(
                    (zero - zero.round()).abs() < 1e-6,
                    "{}: 0.0 is not exactly representable",
                    w["name"]
                );
            }
            for (i, &x) in orig.iter().enumerate() {
                let c = &bytes[off + i * code_size..off + (i + 1) * code_size];
                let code = if code_size == 1 {
                    c[0] as f64
                } else {
                    u16::from_le_bytes([c[0], c[1]]) as f64
                };
                assert!(code <= qmax);
                let back = code * scale + min;
                assert!(
                    (back - x as f64).abs() <= scale * 0.5 + 1e-6 * (hi - lo).abs().max(1e-30)
                        || lo == hi,
                    "{}[{i}]: {x} stored as {back}",
                    w["name"]
                );
            }
            off += n * code_size;
            foff += n * 4;
        }
        assert!(quantized > 0);
        // Every byte accounted for: quantized weights at `code_size` per element, the small
        // ones at 4.
        assert_eq!(off, bytes.len(), "{flag}");
        assert_eq!(foff, fbytes.len(), "{flag}");
    }
}

/// The weights a TF.js `--int8` folder stores are not the source's: `--verify`'s exact check
/// gives way to the accuracy report, made on the folder read back (what the loader computes),
/// and `--tolerance` judges that report.
#[test]
fn quantized_weights_are_verified_by_the_accuracy_of_the_folder_read_back() {
    let tmp = crate::common::tempdir();
    let model = fixture("onnx/cnn_bn/model.onnx");
    let out = tmp.path().join("int8");
    let run = |extra: &[&str]| {
        let mut args = vec!["convert", model.to_str().unwrap(), "--to", "tfjs", "-o"];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(&["--int8", "--verify"]);
        args.extend_from_slice(extra);
        mdeploy(&args)
    };
    let o = run(&[]);
    let text =
        String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("read back by mdeploy's TF.js reader"),
        "{text}"
    );
    let max_rel: f64 = text
        .lines()
        .find_map(|l| l.split("max_rel ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy line: {text}"));
    // uint8 weights: a real, small error (an unquantized or a broken folder would not give one).
    assert!(max_rel > 1e-6 && max_rel < 0.1, "max_rel {max_rel}: {text}");
    let o = run(&["--tolerance", "1e-9"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn float16_halves_the_weights() {
    let tmp = crate::common::tempdir();
    let model = fixture("onnx/mlp/model.onnx");
    let out = tmp.path().join("f16");
    convert(&model, &out, &["--float16"]);
    let m = model_json(&out);
    let mut halved = 0;
    for w in m["weightsManifest"][0]["weights"].as_array().unwrap() {
        let small = (elements(w) as usize) < mdeploy::writers::tfjs::SMALL_WEIGHT_ELEMENTS;
        if w["dtype"] == "float32" && !small {
            assert_eq!(w["quantization"]["dtype"], "float16", "{}", w["name"]);
            halved += 1;
        } else {
            assert!(w["quantization"].is_null(), "{}", w["name"]);
        }
    }
    assert!(halved > 0);
    let len: u64 = shards(&out, &m)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(len, manifest_bytes(&m));
}

#[test]
fn graph_models_use_tfjs_ops_and_the_sources_io_names() {
    let tmp = crate::common::tempdir();
    let mut fused = (false, false);
    for f in onnx_fixtures() {
        let out = tmp.path().join(&f.name);
        let o = mdeploy(&[
            "convert",
            f.model.to_str().unwrap(),
            "--to",
            "tfjs",
            "-o",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        // Every ONNX fixture converts but those the known-failures list says cannot yet,
        // which must be refused by name (exit 4).
        if crate::common::known_failure(&format!("onnx/{}:tfjs", f.name)) {
            assert_eq!(o.status.code(), Some(4), "{}", f.name);
            continue;
        }
        assert!(
            o.status.success(),
            "{}: exit {:?}: {}",
            f.name,
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        let m = model_json(&out);
        assert_eq!(m["format"], "graph-model");
        assert!(m["modelTopology"]["versions"]["producer"].is_number());
        let nodes = m["modelTopology"]["node"].as_array().unwrap();
        let mut names = std::collections::HashSet::new();
        for n in nodes {
            let op = n["op"].as_str().unwrap();
            assert!(
                TFJS_OPS.contains(&op),
                "{}: op {op} is not one tfjs-converter runs",
                f.name
            );
            assert!(
                names.insert(n["name"].as_str().unwrap().to_string()),
                "{}: duplicate node name",
                f.name
            );
            fused.0 |= op == "_FusedConv2D";
            fused.1 |= op == "_FusedMatMul";
        }
        // Every input reference names a node; every Const has its weight.
        let weights: std::collections::HashSet<&str> = m["weightsManifest"][0]["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap())
            .collect();
        for n in nodes {
            for i in n["input"].as_array().into_iter().flatten() {
                let node = i.as_str().unwrap().split(':').next().unwrap();
                assert!(names.contains(node), "{}: dangling input {i}", f.name);
            }
            if n["op"] == "Const" {
                assert!(
                    weights.contains(n["name"].as_str().unwrap()),
                    "{}: Const without weight",
                    f.name
                );
            }
        }
        // Every function a control-flow node calls is in the library, with known ops and the
        // weights of its constants.
        let library = m["modelTopology"]["library"]["function"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let functions: std::collections::HashSet<&str> = library
            .iter()
            .map(|f| f["signature"]["name"].as_str().unwrap())
            .collect();
        for n in nodes {
            for attr in ["cond", "body", "then_branch", "else_branch"] {
                if let Some(func) = n["attr"][attr]["func"]["name"].as_str() {
                    assert!(functions.contains(func), "{}: no function {func}", f.name);
                }
            }
        }
        for func in &library {
            for n in func["nodeDef"].as_array().unwrap() {
                let op = n["op"].as_str().unwrap();
                assert!(TFJS_OPS.contains(&op), "{}: function op {op}", f.name);
                if op == "Const" {
                    assert!(weights.contains(n["name"].as_str().unwrap()), "{}", f.name);
                }
            }
        }
        // The signature maps the source's I/O names to Placeholders and Identities.
        let g = mdeploy::readers::read(&f.model, &Default::default()).unwrap();
        for (key, vals) in [("inputs", &g.inputs), ("outputs", &g.outputs)] {
            let sig = m["signature"][key].as_object().unwrap();
            assert_eq!(sig.len(), vals.len(), "{}: signature {key}", f.name);
            for &v in vals.iter() {
                let name = &g.value(v).name;
                let entry = sig
                    .get(name)
                    .unwrap_or_else(|| panic!("{}: no signature entry {name}", f.name));
                let node = entry["name"].as_str().unwrap().trim_end_matches(":0");
                let op = nodes.iter().find(|n| n["name"] == node).unwrap()["op"]
                    .as_str()
                    .unwrap();
                assert_eq!(
                    op,
                    if key == "inputs" {
                        "Placeholder"
                    } else {
                        "Identity"
                    }
                );
            }
        }
    }
    assert!(fused.0 && fused.1, "conv and matmul fusions are used");
}

#[test]
fn dynamic_batch_is_minus_one() {
    let tmp = crate::common::tempdir();
    let out = tmp.path().join("d");
    convert(&fixture("onnx/dynamic_batch/model.onnx"), &out, &[]);
    let m = model_json(&out);
    let sig = m["signature"]["inputs"].as_object().unwrap();
    let (_, entry) = sig.iter().next().unwrap();
    assert_eq!(entry["tensorShape"]["dim"][0]["size"], "-1");
    let ph = m["modelTopology"]["node"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["op"] == "Placeholder")
        .unwrap();
    assert_eq!(ph["attr"]["shape"]["shape"]["dim"][0]["size"], "-1");
}

/// `--verify` reads the written folder back with the TF.js reader — a layers model too, which
/// has no graph of its own to stand for it — and compares what it holds with the source.
#[test]
fn verify_reads_the_written_folder_back() {
    let tmp = crate::common::tempdir();
    for (model, extra) in [
        ("keras/conv2d/model.h5", "layers"),
        ("onnx/mlp/model.onnx", "graph"),
    ] {
        let out = tmp.path().join(extra);
        let o = mdeploy(&[
            "convert",
            fixture(model).to_str().unwrap(),
            "--to",
            "tfjs",
            "-o",
            out.to_str().unwrap(),
            "--verify",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{model}: {err}");
        assert!(
            err.contains("the written folder is read back by mdeploy's TF.js reader and run"),
            "{model}: {err}"
        );
        assert!(
            err.contains(" ok") && !err.contains("FAIL"),
            "{model}: {err}"
        );
    }
}

/// A graph model holding control flow says it runs with `executeAsync` (tfjs-converter's
/// `execute` refuses StatelessIf/StatelessWhile); one without says nothing.
#[test]
fn control_flow_models_say_they_need_execute_async() {
    let tmp = crate::common::tempdir();
    let (with, without) = (tmp.path().join("if"), tmp.path().join("mlp"));
    convert(&fixture("onnx/script_if/model.onnx"), &with, &[]);
    convert(&fixture("onnx/mlp/model.onnx"), &without, &[]);
    assert_eq!(
        model_json(&with)["userDefinedMetadata"]["mdeploy"]["run"],
        "executeAsync"
    );
    assert!(model_json(&without).get("userDefinedMetadata").is_none());
}

#[test]
fn two_runs_give_byte_identical_folders() {
    let tmp = crate::common::tempdir();
    let cases = [
        (
            "onnx/tf2onnx_mobilenetv2/model.onnx",
            vec!["--shard-size", "5000"],
        ),
        ("onnx/attention/model.onnx", vec!["--int8"]),
        ("saved_model/keras_cnn_export/model", vec!["--float16"]),
        (
            "keras/resnet_block/model.keras",
            vec!["--tfjs-format", "graph"],
        ),
    ];
    for (rel, flags) in cases {
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        convert(&fixture(rel), &a, &flags);
        convert(&fixture(rel), &b, &flags);
        let list = |d: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        assert_eq!(list(&a), list(&b), "{rel}");
        for name in list(&a) {
            assert!(
                std::fs::read(a.join(&name)).unwrap() == std::fs::read(b.join(&name)).unwrap(),
                "{rel}: {name:?} differs"
            );
        }
        // Converting again over an existing folder replaces it.
        convert(&fixture(rel), &a, &flags);
        assert_eq!(list(&a), list(&b));
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }
}

#[test]
fn unsupported_ops_are_refused_and_nothing_is_left() {
    use mdeploy::ir::ops::{BinaryOp, Trilu, UnaryOp};
    use mdeploy::ir::{fixed_shape, DType, Graph, Op, TensorType};
    use mdeploy::writers::Writer;
    // A graph the readers could produce with three ops TF.js cannot run (a Trilu with k ≠ 0 is
    // written as a constant mask when the matrix has fixed sizes; not over a run-time width).
    let mut g = Graph::new();
    let width = mdeploy::ir::Dim::Sym("width".into());
    let x = g.add_input(
        "x",
        TensorType::new(DType::F32, vec![mdeploy::ir::Dim::Fixed(2), width]),
    );
    let i = g.add_input("i", TensorType::new(DType::U32, fixed_shape(&[2, 5])));
    let h = g
        .add_node(
            "tri",
            Op::Trilu(Trilu { upper: true, k: 1 }),
            vec![x],
            &["h".into()],
        )
        .unwrap();
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
    let r = g
        .add_node("relu", Op::Unary(UnaryOp::Relu), vec![h[0]], &["r".into()])
        .unwrap();
    g.outputs = vec![r[0], n[0]];
    g.verify().unwrap();
    let w = mdeploy::writers::tfjs::graph::GraphWriter::default();
    w.legalize(&mut g).unwrap();
    let problems = w.check(&g);
    let nodes: Vec<&str> = problems.iter().map(|u| u.node.as_str()).collect();
    assert_eq!(nodes, ["tri", "shift", "bnot"], "{problems:?}");
    let tmp = crate::common::tempdir();
    let out = tmp.path().join("out_tfjs");
    let err = w.write(&g, &out).unwrap_err();
    assert_eq!(err.exit_code(), 4);
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no temporary folder is left"
    );

    // Through the CLI: a model the reader refuses leaves nothing either.
    let o = mdeploy(&[
        "convert",
        fixture("bad/unsupported_op.onnx").to_str().unwrap(),
        "--to",
        "tfjs",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn tfjs_flags_are_refused_for_other_targets_and_layers_needs_keras() {
    let tmp = crate::common::tempdir();
    let model = fixture("onnx/mlp/model.onnx");
    let out = tmp.path().join("x.onnx");
    // --int8/--float16 apply to every target (the quantize pass); these are TF.js's own.
    for flag in [&["--quantize-uint16"][..], &["--shard-size", "100"]] {
        let mut args = vec![
            "convert",
            model.to_str().unwrap(),
            "--to",
            "onnx",
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(flag);
        let o = mdeploy(&args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{flag:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = mdeploy(&[
        "convert",
        model.to_str().unwrap(),
        "--to",
        "tfjs",
        "--int8",
        "--float16",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = mdeploy(&[
        "convert",
        model.to_str().unwrap(),
        "--to",
        "tfjs",
        "--shard-size",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = mdeploy(&[
        "convert",
        model.to_str().unwrap(),
        "--to",
        "tfjs",
        "--tfjs-format",
        "layers",
        "-o",
        tmp.path().join("l").to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.exists());
}

#[test]
fn default_output_is_a_tfjs_folder_beside_the_input() {
    let tmp = crate::common::tempdir();
    let model = tmp.path().join("net.onnx");
    std::fs::copy(fixture("onnx/mlp/model.onnx"), &model).unwrap();
    let o = mdeploy(&[
        "convert",
        model.to_str().unwrap(),
        "--to",
        "tfjs",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(tmp.path().join("net_tfjs/model.json").is_file());
}

#[test]
fn recurrent_layers_unroll_to_the_frameworks_results() {
    use crate::common::assert_matches;
    let cases = [
        ("onnx/lstm_gru", "model.onnx"),
        ("keras/recurrent", "model.keras"),
        ("tf_keras/text_classifier", "model.h5"),
    ];
    for (dir, file) in cases {
        let path = fixture(dir).join(file);
        let mut g = mdeploy::readers::read(&path, &Default::default()).unwrap();
        let rnns = |g: &mdeploy::ir::Graph| {
            g.nodes
                .iter()
                .filter(|n| matches!(n.op, mdeploy::ir::Op::Lstm(_) | mdeploy::ir::Op::Gru(_)))
                .count()
        };
        assert!(rnns(&g) > 0, "{dir}");
        assert!(mdeploy::passes::rnn::unroll_rnns(&mut g).unwrap());
        g.verify().unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert_eq!(rnns(&g), 0, "{dir}: every recurrent node is unrolled");
        let f = crate::common::Fixture {
            name: dir.into(),
            dir: fixture(dir),
            model: path.clone(),
        };
        let got = mdeploy::eval::run(&g, &f.inputs()).unwrap();
        assert_matches(dir, &got, &f.expected());
    }
}

#[test]
fn keras_gives_a_layers_model_or_a_graph_model_with_a_warning() {
    let tmp = crate::common::tempdir();
    let path = |n: &str| tmp.path().join(n);
    let run = |model: &str, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "convert".to_string(),
            fixture(model).display().to_string(),
            "--to".into(),
            "tfjs".into(),
            "-o".into(),
            out.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        mdeploy(&args)
    };
    // tfjs-layers has every layer of this one.
    let o = run("keras/dense_mlp/model.keras", &path("mlp"), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(model_json(&path("mlp"))["format"], "layers-model");
    // Its GRU (reset_after=True, which tfjs's GRUCell refuses) cannot be a tfjs-layers GRU: a
    // graph model, and a warning naming the layers.
    let o = run("keras/recurrent/model.keras", &path("att"), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("warning") && err.contains("GRU"), "{err}");
    assert_eq!(model_json(&path("att"))["format"], "graph-model");
    // --tfjs-format layers fails naming them, and writes nothing.
    let o = run(
        "keras/recurrent/model.keras",
        &path("att_l"),
        &["--tfjs-format", "layers"],
    );
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("GRU"));
    assert!(!path("att_l").exists());
    // --tfjs-format graph on a Keras source.
    let o = run(
        "keras/dense_mlp/model.keras",
        &path("mlp_g"),
        &["--tfjs-format", "graph", "--quiet"],
    );
    assert!(o.status.success());
    assert_eq!(model_json(&path("mlp_g"))["format"], "graph-model");
}

#[test]
fn integer_ops_lowered_to_float_give_the_same_results() {
    use crate::common::assert_matches;
    use mdeploy::ir::Op;
    let dir = fixture("onnx/qlinear");
    let path = dir.join("model.onnx");
    let mut g = mdeploy::readers::read(&path, &Default::default()).unwrap();
    let integer = |g: &mdeploy::ir::Graph| {
        g.nodes
            .iter()
            .filter(|n| {
                matches!(
                    n.op,
                    Op::QLinearConv(_)
                        | Op::QLinearMatMul
                        | Op::ConvInteger(_)
                        | Op::MatMulInteger
                        | Op::DynamicQuantizeLinear
                )
            })
            .count()
    };
    assert_eq!(integer(&g), 6);
    assert!(mdeploy::passes::integer::lower_integer_ops(&mut g).unwrap());
    g.verify().unwrap();
    assert_eq!(integer(&g), 0);
    let f = crate::common::Fixture {
        name: "qlinear".into(),
        dir: dir.clone(),
        model: path,
    };
    assert_matches(
        "qlinear",
        &mdeploy::eval::run(&g, &f.inputs()).unwrap(),
        &f.expected(),
    );
}

#[test]
fn batch_norm_arithmetic_folds_into_the_convolutions() {
    // Keras 3's export writes each batch norm as Rsqrt/Mul/Sub/Add after the convolution.
    let model = fixture("saved_model/keras_cnn_export/model");
    let g = mdeploy::readers::read(&model, &Default::default()).unwrap();
    // The reader folds the Rsqrt of constants; a per-channel Mul and Add stay after the convs.
    let arithmetic = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op.name().as_str(), "Mul" | "Add"))
        .count();
    assert!(
        arithmetic >= 2,
        "the fixture still has its batch-norm arithmetic"
    );
    let tmp = crate::common::tempdir();
    let out = tmp.path().join("m");
    convert(&model, &out, &["--verify"]);
    let m = model_json(&out);
    let ops: Vec<&str> = m["modelTopology"]["node"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["op"].as_str().unwrap())
        .collect();
    for gone in ["Rsqrt", "Mul", "Sub", "AddV2", "BiasAdd"] {
        assert!(!ops.contains(&gone), "{gone} left in {ops:?}");
    }
    assert!(ops.contains(&"_FusedConv2D") && ops.contains(&"FusedDepthwiseConv2dNative"));
}

/// Every one-sided or two-sided Clip legalization keeps is one TF.js emits: a lower bound other
/// than 0 with no upper bound becomes Maximum, not a refusal.
#[test]
fn every_clip_form_is_written() {
    use mdeploy::ir::ops::Activation;
    use mdeploy::ir::{fixed_shape, DType, Graph, Op, TensorType};
    use mdeploy::writers::Writer;
    let w = mdeploy::writers::tfjs::graph::GraphWriter::default();
    for (min, max) in [
        (Some(0.0), None),
        (Some(0.5), None),
        (None, Some(2.0)),
        (Some(-1.0), Some(1.0)),
        (Some(0.0), Some(6.0)),
    ] {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[2, 5])));
        let clip = Op::Activation(Activation::Clip { min, max });
        g.outputs = g.add_node("clip", clip, vec![x], &[]).unwrap();
        w.legalize(&mut g).unwrap();
        let problems = w.check(&g);
        assert!(problems.is_empty(), "Clip({min:?}, {max:?}): {problems:?}");
    }
}
