//! The structure-aware fuzz target on stable Rust: a few hundred seeded pseudo-random byte
//! strings, and every committed input under `fuzz/regressions/ir_graph/`, each become a random
//! valid IR graph (`mdeploy::fuzzing::ir_graph`) that every writer must refuse with a message or
//! write so that mdeploy's own reader reads back a graph computing the same outputs
//! (`mdeploy::fuzzing::round_trip`). The nightly fuzz target `fuzz/fuzz_targets/ir_graph.rs`
//! runs the same check on coverage-guided bytes.

use crate::common::repo;
use mdeploy::fuzzing::round_trip::{self, RoundTrip};
use mdeploy::fuzzing::Scratch;
use mdeploy::ir::ops::{Activation, Split, Transpose, UnaryOp};
use mdeploy::ir::{fixed_shape, DType, Dim, Graph, Op, Shape, TensorType, ValueId};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Seeded byte strings of 64–512 bytes.
fn seeded_inputs(n: usize) -> Vec<Vec<u8>> {
    let mut state = 0x5EED_1234_ABCD_0001u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|_| {
            let len = 64 + (next() % 449) as usize;
            (0..len).map(|_| (next() >> 32) as u8).collect()
        })
        .collect()
}

/// Runs every input, returning the outcomes and the findings (errors and panics) by input.
/// `tag` names the scratch folder: tests run in parallel threads of one process.
fn run_all(tag: &str, inputs: &[(String, Vec<u8>)]) -> (Vec<RoundTrip>, Vec<String>) {
    let scratch = Scratch::new(tag).expect("temp folder");
    let (mut outcomes, mut findings) = (Vec::new(), Vec::new());
    for (label, data) in inputs {
        let dir = scratch.path().join("out");
        match catch_unwind(AssertUnwindSafe(|| round_trip::check(data, &dir))) {
            Ok(Ok(r)) => outcomes.push(r),
            Ok(Err(e)) => findings.push(format!("{label}: {e}")),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                findings.push(format!("{label}: panicked: {msg}"));
            }
        }
    }
    (outcomes, findings)
}

/// Counts per target and op, printed with `--nocapture`.
fn summary(outcomes: &[RoundTrip]) -> String {
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for r in outcomes {
        if let Some(why) = r.skipped {
            *per.entry(format!("skipped: {why}")).or_default() += 1;
        }
        for t in &r.matched {
            *per.entry(format!("matched {t}")).or_default() += 1;
        }
        for (t, why) in &r.refused {
            *per.entry(format!("refused {t}: {why}")).or_default() += 1;
        }
        if r.symbolic && r.skipped.is_none() {
            *per.entry("checked with a symbolic dimension".into())
                .or_default() += 1;
        }
        for op in &r.ops {
            *per.entry(format!("op {op}")).or_default() += 1;
        }
    }
    per.iter().map(|(k, v)| format!("{v:6} {k}\n")).collect()
}

#[test]
fn ir_graph_fuzz_seeded() {
    let n: usize = std::env::var("MDEPLOY_IR_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    // MDEPLOY_IR_FUZZ_ONLY=i runs seeded input i alone (to look at one finding).
    let only: Option<usize> = std::env::var("MDEPLOY_IR_FUZZ_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    let inputs: Vec<(String, Vec<u8>)> = seeded_inputs(n)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| only.is_none_or(|o| o == *i))
        .map(|(i, d)| (format!("seeded #{i}"), d))
        .collect();
    let n = inputs.len();
    let (outcomes, findings) = run_all("ir-graph-seeded", &inputs);
    let text = summary(&outcomes);
    println!("{text}");
    assert!(
        findings.is_empty(),
        "{} findings:\n{}",
        findings.len(),
        findings.join("\n\n")
    );
    // The check must check: most inputs make a graph tract runs, and every target writes some.
    let checked = outcomes.iter().filter(|r| r.skipped.is_none()).count();
    assert!(
        checked * 10 >= n * 8,
        "only {checked} of {n} graphs checked:\n{text}"
    );
    for t in ["onnx", "tflite", "tfjs", "saved_model"] {
        let wrote = outcomes.iter().filter(|r| r.matched.contains(&t)).count();
        assert!(
            wrote * 2 >= checked,
            "{t} matched only {wrote} of {checked}:\n{text}"
        );
    }
}

#[test]
fn ir_graph_fuzz_regressions() {
    let mut inputs = Vec::new();
    for kind in ["regressions", "minimized"] {
        let dir = repo().join("fuzz").join(kind).join("ir_graph");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            inputs.push((
                p.display().to_string(),
                std::fs::read(&p).expect("readable"),
            ));
        }
    }
    inputs.sort();
    let (_, findings) = run_all("ir-graph-regressions", &inputs);
    assert!(findings.is_empty(), "{}", findings.join("\n\n"));
}

/// The graphs of the check's first findings, built by hand (the generator's byte mapping moves
/// as it grows): each must now be written by every writer named and read back to the same
/// results. `check_graph` returns `Err` on a mismatch or unreadable file.
fn assert_written(g: &Graph, sym_size: usize, tag: &str, writers: &[&str]) {
    let scratch = Scratch::new(tag).expect("temp folder");
    let r = round_trip::check_graph(g, 7, sym_size, &scratch.path().join("out"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.skipped, None);
    for w in writers {
        assert!(r.matched.contains(w), "{w} did not write it: {r:?}");
    }
}

fn f32_input(g: &mut Graph, name: &str, dims: Shape) -> ValueId {
    g.add_input(name, TensorType::new(DType::F32, dims))
}

/// tract's Celu left out alpha, so evaluation called a correct TFLite/TF.js Celu wrong.
#[test]
fn ir_graph_celu_alpha() {
    let mut g = Graph::new();
    let x = f32_input(&mut g, "x", fixed_shape(&[6, 1, 3, 5]));
    let celu = Op::Activation(Activation::Celu { alpha: 0.64 });
    g.outputs = g.add_node("celu", celu, vec![x], &[]).unwrap();
    assert_written(
        &g,
        1,
        "ir-graph-celu",
        &["onnx", "tflite", "tfjs", "saved_model"],
    );
}

/// A Split with given sizes along a symbolic axis: TFLite wrote SPLIT_V its reader refused.
#[test]
fn ir_graph_split_along_symbolic_axis() {
    let mut g = Graph::new();
    let dims = vec![Dim::Sym("N".into()), Dim::Fixed(1), Dim::Fixed(3)];
    let x = f32_input(&mut g, "x", dims);
    let split = Op::Split(Split {
        axis: 0,
        sizes: vec![2, 1],
    });
    g.outputs = g.add_node("split", split, vec![x], &[]).unwrap();
    assert_written(&g, 3, "ir-graph-split", &["onnx", "tflite", "saved_model"]);
}

/// TFLite refused f32 Shrink, saying legalization lowers it (it did not).
#[test]
fn ir_graph_shrink() {
    let mut g = Graph::new();
    let x = f32_input(&mut g, "x", fixed_shape(&[4, 5]));
    let shrink = Op::Activation(Activation::Shrink {
        lambd: 0.25,
        bias: 0.25,
    });
    g.outputs = g.add_node("shrink", shrink, vec![x], &[]).unwrap();
    assert_written(
        &g,
        1,
        "ir-graph-shrink",
        &["onnx", "tflite", "tfjs", "saved_model"],
    );
}

/// Two outputs, one an identity Transpose (a Reshape after clean-up) of the other: the ONNX
/// reader aliased the Reshape, renamed the value to the first output's name and gave the second
/// output a fresh name (`v4_1`), so the file had "no output named v4".
#[test]
fn ir_graph_output_and_its_identity() {
    let mut g = Graph::new();
    let x = f32_input(&mut g, "x", fixed_shape(&[5]));
    let a = g
        .add_node("a", Op::Unary(UnaryOp::Abs), vec![x], &["v4".into()])
        .unwrap()[0];
    let t = Op::Transpose(Transpose { perm: vec![0] });
    let b = g.add_node("t", t, vec![a], &["v5".into()]).unwrap()[0];
    g.outputs = vec![b, a];
    assert_written(
        &g,
        1,
        "ir-graph-identity",
        &["onnx", "tflite", "tfjs", "saved_model"],
    );
}

/// A dilated SameUpper Conv before a stride-2 grouped 1x1 Conv: tract moved the stride into the
/// SAME conv and recomputed its padding, so evaluation took the odd positions. The values are
/// computed by hand (and agree with onnxruntime on explicit pads (1, 1)).
#[test]
fn ir_graph_dilated_same_conv_before_stride() {
    use mdeploy::ir::ops::{Conv, Padding};
    use mdeploy::ir::{KernelLayout, Layout, Tensor};
    let conv = |strides: usize, dil: usize, padding: Padding, group: usize| {
        Op::Conv(Conv {
            layout: Layout::Nchw,
            kernel_layout: KernelLayout::Oihw,
            strides: vec![strides],
            dilations: vec![dil],
            padding,
            group,
            output_padding: vec![],
        })
    };
    let mut g = Graph::new();
    let x = f32_input(&mut g, "x", fixed_shape(&[1, 1, 4]));
    let w = g.add_const(
        "w1",
        Tensor::from_f32(vec![2, 1, 2], &[0.3, -0.7, 0.5, 0.9]),
    );
    let same = conv(1, 2, Padding::SameUpper, 1);
    let v = g.add_node("c1", same, vec![x, w], &[]).unwrap()[0];
    let w = g.add_const("w2", Tensor::from_f32(vec![2, 1, 1], &[0.4, -0.6]));
    let b = g.add_const("b2", Tensor::from_f32(vec![2], &[0.1, -0.2]));
    let strided = conv(2, 1, Padding::Explicit(vec![(0, 0)]), 2);
    g.outputs = g.add_node("c2", strided, vec![v, w, b], &[]).unwrap();
    // Padded x [0, 1, 2, 4, -3, 0]; c1 at 0 and 2: [-1.4, 2.7] and [1.8, -1.7]; then c2.
    let xs = vec![Tensor::from_f32(vec![1, 1, 4], &[1.0, 2.0, 4.0, -3.0])];
    let got = mdeploy::eval::run(&g, &xs).unwrap()[0].to_f64s();
    let want = [-0.46, 1.18, -1.28, 0.82];
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() < 1e-5, "{got:?} != {want:?}");
    }
    assert_written(
        &g,
        1,
        "ir-graph-dilated",
        &["onnx", "tflite", "tfjs", "saved_model"],
    );
}
