//! Bounded resources (docs/robustness.md): each class of input that could make mdeploy allocate
//! far beyond what its file justifies is refused by name, or handled within a stated limit, by
//! the real binary, with its peak RSS measured. Inputs are built here, small, never checked in.
//! Each bound is a few times the ~20 MB the binary takes to refuse anything, far below what the
//! input would ask for unbounded (gigabytes to exabytes).

use crate::common::{run_measured, tempdir, Measured};
use prost::Message;
use std::path::Path;
use tract_onnx::pb::{
    tensor_shape_proto::{dimension, Dimension},
    type_proto, AttributeProto, FunctionProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

pub fn info(name: &str, elem_type: i32, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    let tensor = type_proto::Tensor {
        elem_type,
        shape: Some(TensorShapeProto { dim }),
    };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn tensor(name: &str, data_type: i32, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type,
        dims: dims.to_vec(),
        raw_data: raw,
        ..Default::default()
    }
}

fn i64s(name: &str, v: &[i64]) -> TensorProto {
    let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    tensor(name, 7, &[v.len() as i64], raw)
}

fn f32_scalar(name: &str, v: f32) -> TensorProto {
    tensor(name, 1, &[], v.to_le_bytes().to_vec())
}

/// A model of `nodes` over `x: f32[1]` → `y`, with `inits` and model-local `functions`.
pub fn model(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    functions: Vec<FunctionProto>,
) -> ModelProto {
    let mut opsets = vec![OperatorSetIdProto {
        domain: String::new(),
        version: 17,
    }];
    if !functions.is_empty() {
        opsets.push(OperatorSetIdProto {
            domain: "local".into(),
            version: 1,
        });
    }
    ModelProto {
        ir_version: 8,
        opset_import: opsets,
        graph: Some(GraphProto {
            name: "g".into(),
            node: nodes,
            initializer: inits,
            input: vec![info("x", 1, &[1])],
            output: vec![info("y", 1, &[])],
            ..Default::default()
        }),
        functions,
        ..Default::default()
    }
}

pub fn save(dir: &Path, name: &str, m: &ModelProto) -> String {
    let p = dir.join(name);
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    p.display().to_string()
}

/// Converts `input` to ONNX (with `extra` arguments and environment), expecting `code` and a
/// message holding every one of `needles`, within `max_mb` of peak RSS. Returns the run.
fn expect(
    input: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    code: i32,
    needles: &[&str],
    max_mb: f64,
) -> Measured {
    let dir = tempdir();
    let out = dir.path().join("out.onnx");
    let mut args = vec![
        "convert",
        input,
        "--to",
        "onnx",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    // The cap: twice the bound, so that a run past the bound is measured, not killed.
    let m = run_measured(&args, env, (2.0 * max_mb) as u64 + 200);
    assert_eq!(m.code, Some(code), "{input} {extra:?}: {}", m.stderr);
    for n in needles {
        assert!(m.stderr.contains(n), "{input}: lacks '{n}': {}", m.stderr);
    }
    assert!(!m.stderr.contains("panicked"), "{}", m.stderr);
    assert!(
        m.peak_mb < max_mb,
        "{input} {extra:?}: peak RSS {:.1} MB, past {max_mb} MB",
        m.peak_mb
    );
    eprintln!(
        "{input} {extra:?}: exit {code}, peak RSS {:.1} MB",
        m.peak_mb
    );
    m
}

/// A constant declaring 2^60 elements over 4 bytes: refused naming the tensor.
#[test]
fn a_lying_shape_is_refused_by_name_in_bounded_memory() {
    let dir = tempdir();
    let w = tensor("w", 1, &[1 << 30, 1 << 30], vec![0; 4]);
    let m = model(vec![node("Add", &["x", "w"], &["y"])], vec![w], vec![]);
    let input = save(dir.path(), "lying.onnx", &m);
    expect(
        &input,
        &[],
        &[],
        1,
        &["tensor 'w'", "needs", "found 4"],
        100.0,
    );
}

/// ConstantOfShape / Expand / Tile / Range of constants declaring 2^40..2^60 elements: the
/// conversion folds nothing that large (it writes the node), and `--verify` refuses to
/// evaluate it, naming the value, instead of allocating.
#[test]
fn huge_generated_constants_convert_and_verification_refuses_them() {
    let dir = tempdir();
    let shape = || i64s("s", &[1 << 40, 1 << 20]);
    let one = || tensor("one", 1, &[1], 1f32.to_le_bytes().to_vec());
    let mut cos = node("ConstantOfShape", &["s"], &["c"]);
    cos.attribute = vec![AttributeProto {
        name: "value".into(),
        r#type: 4,
        t: Some(tensor("v", 1, &[1], 1f32.to_le_bytes().to_vec())),
        ..Default::default()
    }];
    let add = || node("Add", &["c", "x"], &["y"]);
    let cases = [
        (
            "constant_of_shape",
            model(vec![cos, add()], vec![shape()], vec![]),
        ),
        (
            "expand",
            model(
                vec![node("Expand", &["one", "s"], &["c"]), add()],
                vec![shape(), one()],
                vec![],
            ),
        ),
        (
            "tile",
            model(
                vec![node("Tile", &["one", "r"], &["c"]), add()],
                vec![i64s("r", &[1 << 40]), one()],
                vec![],
            ),
        ),
        (
            "range",
            model(
                vec![node("Range", &["a", "b", "d"], &["c"]), add()],
                vec![
                    f32_scalar("a", 0.0),
                    f32_scalar("b", 1e15),
                    f32_scalar("d", 1.0),
                ],
                vec![],
            ),
        ),
    ];
    for (name, m) in cases {
        let input = save(dir.path(), &format!("{name}.onnx"), &m);
        expect(&input, &[], &[], 0, &["wrote"], 100.0);
        expect(
            &input,
            &["--verify"],
            &[],
            1,
            &["evaluation refused: 'c'", "MDEPLOY_EVAL_MAX_MB"],
            100.0,
        );
    }
}

/// If inside If, `depth` deep (each else branch a leaf, so the file stays linear in the depth).
fn nested_ifs(depth: usize) -> ModelProto {
    let leaf = |d: usize| GraphProto {
        name: format!("leaf{d}"),
        node: vec![node("Neg", &["x"], &[&format!("o{d}")])],
        output: vec![info(&format!("o{d}"), 1, &[1])],
        ..Default::default()
    };
    let mut body = leaf(0);
    for d in 1..=depth {
        let mut n = node("If", &["c"], &[&format!("o{d}")]);
        n.attribute = vec![
            AttributeProto {
                name: "then_branch".into(),
                r#type: 5,
                g: Some(body),
                ..Default::default()
            },
            AttributeProto {
                name: "else_branch".into(),
                r#type: 5,
                g: Some(leaf(d)),
                ..Default::default()
            },
        ];
        body = GraphProto {
            name: format!("b{d}"),
            node: vec![n],
            output: vec![info(&format!("o{d}"), 1, &[1])],
            ..Default::default()
        };
    }
    let mut m = model(body.node, vec![], vec![]);
    let g = m.graph.as_mut().unwrap();
    g.input.push(info("c", 9, &[]));
    g.output = vec![info(&format!("o{depth}"), 1, &[1])];
    m
}

/// 20 levels pass protobuf's own nesting limit and are refused by the reader's; 40 levels stop
/// in decoding (prost allows 100 nested messages, three per level).
#[test]
fn deeply_nested_subgraphs_are_refused_in_bounded_memory() {
    let dir = tempdir();
    let input = save(dir.path(), "nested20.onnx", &nested_ifs(20));
    expect(&input, &[], &[], 4, &["nested more than 16 deep"], 100.0);
    let input = save(dir.path(), "nested40.onnx", &nested_ifs(40));
    expect(&input, &[], &[], 1, &["recursion limit reached"], 100.0);
}

/// Model-local functions `f0 … f{levels-1}`, each calling the next `fan` times.
fn nested_functions(levels: usize, fan: usize) -> ModelProto {
    let opsets = vec![
        OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        },
        OperatorSetIdProto {
            domain: "local".into(),
            version: 1,
        },
    ];
    let functions = (0..levels)
        .map(|i| {
            let mut body = Vec::new();
            if i + 1 == levels {
                body.push(node("Neg", &["a"], &["b"]));
            } else {
                let mut prev = "a".to_string();
                for k in 0..fan {
                    let out = if k + 1 == fan {
                        "b".into()
                    } else {
                        format!("t{k}")
                    };
                    let mut call = node(&format!("f{}", i + 1), &[&prev], &[&out]);
                    call.domain = "local".into();
                    body.push(call);
                    prev = out;
                }
            }
            FunctionProto {
                name: Some(format!("f{i}")),
                domain: Some("local".into()),
                input: vec!["a".into()],
                output: vec!["b".into()],
                node: body,
                opset_import: opsets.clone(),
                ..Default::default()
            }
        })
        .collect();
    let mut call = node("f0", &["x"], &["y"]);
    call.domain = "local".into();
    model(vec![call], vec![], functions)
}

/// A 1 KB file whose functions call each other twice per level, 24 levels: 2^23 nodes once
/// inlined. Refused by the node budget (lowered here to keep the test fast; the default's
/// figures are in docs/robustness.md). A chain of 40 single calls is refused by depth.
#[test]
fn nested_functions_are_refused_by_depth_or_node_budget() {
    let dir = tempdir();
    let fan = save(dir.path(), "fan.onnx", &nested_functions(24, 2));
    let needles = ["more than 10000 nodes", "--max-nodes"];
    expect(&fan, &["--max-nodes", "10000"], &[], 1, &needles, 100.0);
    let env = [("MDEPLOY_MAX_NODES", "10000")];
    expect(&fan, &[], &env, 1, &needles, 100.0);
    let deep = save(dir.path(), "deep.onnx", &nested_functions(40, 1));
    expect(&deep, &[], &[], 1, &["calls itself too deeply"], 100.0);
}

/// A TFLite sequence RNN is unrolled step by step: a declared length whose steps would pass
/// the node limit is refused before anything is unrolled (found by the tflite fuzz target: a
/// mutated length hung the reader at 2 GB building the per-step split).
#[test]
fn an_unrolled_tflite_sequence_past_the_node_limit_is_refused() {
    let rnn = crate::common::repo().join("fixtures/tflite/float_sequence_rnn/model.tflite");
    let rnn = rnn.display().to_string();
    let needles = ["a sequence RNN over 12 steps", "--max-nodes"];
    expect(&rnn, &["--max-nodes", "40"], &[], 1, &needles, 100.0);
    expect(&rnn, &[], &[], 0, &[], 200.0);
}

/// 20,000 tiny nodes: converted within the stated per-node memory, and refused by name past
/// a lowered `--max-nodes`.
#[test]
fn many_tiny_nodes_convert_in_bounded_memory_or_are_refused_past_the_limit() {
    const N: usize = 20_000;
    let nodes = (0..N)
        .map(|i| {
            let inp = if i == 0 { "x".into() } else { format!("t{i}") };
            let out = if i + 1 == N {
                "y".into()
            } else {
                format!("t{}", i + 1)
            };
            node("Neg", &[&inp], &[&out])
        })
        .collect();
    let dir = tempdir();
    let input = save(dir.path(), "many.onnx", &model(nodes, vec![], vec![]));
    // About 1.5 KB per node through the passes, on the binary's own ~20 MB.
    expect(&input, &[], &[], 0, &["20000 nodes"], 80.0);
    let needles = ["more than 10000 nodes", "node 'Neg_10000'"];
    expect(&input, &["--max-nodes", "10000"], &[], 1, &needles, 60.0);
}

/// A `.keras` archive whose `config.json` is deflated: `bytes` of it as stored, then the
/// uncompressed size its headers declare patched to `declared` (one entry: one local header at
/// 0 and one central-directory header).
fn keras_with_config(dir: &Path, name: &str, bytes: usize, declared: u32) -> String {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("config.json", opts).unwrap();
        let chunk = vec![b' '; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            z.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
        z.finish().unwrap();
    }
    let mut b = buf.into_inner();
    assert_eq!(&b[..4], b"PK\x03\x04");
    b[22..26].copy_from_slice(&declared.to_le_bytes());
    let cd = b
        .windows(4)
        .rposition(|w| w == b"PK\x01\x02")
        .expect("a central directory");
    b[cd + 24..cd + 28].copy_from_slice(&declared.to_le_bytes());
    let p = dir.join(name);
    std::fs::write(&p, b).unwrap();
    p.display().to_string()
}

/// Decompression bombs in a `.keras` zip: an entry declaring 4 GB is refused before anything
/// is inflated; one declaring 1 KB that inflates to 64 MB stops at its declared size.
#[test]
fn zip_decompression_bombs_are_refused_in_bounded_memory() {
    let dir = tempdir();
    let declared = keras_with_config(dir.path(), "declared.keras", 1 << 20, 4_000_000_000);
    let needles = [
        "'config.json' declares 4000000000 bytes",
        "--max-inflate-mb",
    ];
    expect(&declared, &[], &[], 1, &needles, 100.0);
    let liar = keras_with_config(dir.path(), "liar.keras", 64 << 20, 1024);
    // The zip crate stops it first; mdeploy's own bound (read no further) stands behind.
    let needles = [
        "'config.json'",
        "larger than its declared uncompressed size",
    ];
    expect(&liar, &[], &[], 1, &needles, 100.0);
}

/// A decompression bomb inside an HDF5 filter (`fixtures/bad/h5_deflate_bomb.h5`, built by
/// `fixtures/scripts/make_h5_bomb.py` with h5py): a real Keras `.h5` whose kernel is a gzip
/// dataset declaring 32 MiB in a 60 KB file. Under `--max-inflate-mb 16` it is refused before
/// anything is inflated; by default it inflates no more than it declares (then its wrong shape
/// is refused naming the layer).
#[test]
fn an_hdf5_deflate_bomb_inflates_at_most_what_it_declares() {
    let bomb = crate::common::repo().join("fixtures/bad/h5_deflate_bomb.h5");
    let bomb = bomb.to_str().unwrap();
    let needles = [
        "dataset 'kernel' declares 33554432 bytes",
        "past the 16 MiB a compressed dataset may inflate to",
    ];
    expect(bomb, &["--max-inflate-mb", "16"], &[], 1, &needles, 40.0);
    expect(bomb, &[], &[], 1, &["layer 'fc1'"], 200.0);
}

/// Subgraphs and functions count against the node limit with the main graph: TFLite WHILE/IF
/// subgraphs are imported once per node that runs them, SavedModel function calls are inlined,
/// so fan-out cannot multiply a small file. The limit is reached inside the WHILE body and
/// inside the Keras export's nested `StatefulPartitionedCall` functions; without it both convert.
#[test]
fn subgraphs_and_inlined_functions_count_against_the_node_limit() {
    let cases: [(&str, &str, &[&str]); 2] = [
        (
            "fixtures/tflite/float_while/model.tflite",
            "8",
            &["body subgraph", "more than 8 nodes", "--max-nodes"],
        ),
        (
            "fixtures/saved_model/keras_cnn_export/model",
            "20",
            &[
                "(StatefulPartitionedCall): node 'StatefulPartitionedCall_1/StatefulPartitionedCall'",
                "more than 20 nodes",
                "--max-nodes",
            ],
        ),
    ];
    for (model, limit, needles) in cases {
        let model = crate::common::repo().join(model).display().to_string();
        expect(&model, &["--max-nodes", limit], &[], 1, needles, 100.0);
        expect(&model, &[], &[], 0, &[], 200.0);
    }
}
