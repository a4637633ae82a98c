//! The layout and transpose-cleanup passes, on every fixture: moving a graph to NHWC (as the
//! TFLite and TF.js writers will) and back must not change what it computes, and CNNs must be
//! left with transposes only at their boundaries.

use crate::common::{assert_matches, onnx_fixtures};
use mdeploy::ir::{KernelLayout, Layout, Op};
use mdeploy::passes::layout::to_layout;
use mdeploy::passes::nhwc::{NHWC_KERNELS, TF_KERNELS};
use mdeploy::passes::transpose::clean_transposes;
use mdeploy::readers::{self, ReadOptions};

fn count(g: &mdeploy::ir::Graph, name: &str) -> usize {
    g.nodes.iter().filter(|n| n.op.name() == name).count()
}

#[test]
fn nhwc_round_trip_keeps_results_and_cancels_inner_transposes() {
    // TFLite's kernels, and the TF graph writers' (plain 2-D kernels HWIO).
    for (kernels, plain) in [
        (NHWC_KERNELS, KernelLayout::Ohwi),
        (TF_KERNELS, KernelLayout::Hwio),
    ] {
        nhwc_round_trip(kernels, plain);
    }
}

fn nhwc_round_trip(kernels: mdeploy::passes::layout::KernelTargets, plain: KernelLayout) {
    for f in onnx_fixtures() {
        let mut g = readers::read(&f.model, &ReadOptions::default()).unwrap();
        let before = count(&g, "Transpose");
        let moved = to_layout(&mut g, Layout::Nhwc, kernels).unwrap();
        g.verify()
            .unwrap_or_else(|e| panic!("{} after layout: {e}", f.name));
        clean_transposes(&mut g).unwrap();
        g.verify()
            .unwrap_or_else(|e| panic!("{} after cleanup: {e}", f.name));
        for n in &g.nodes {
            if let Op::Conv(c) = &n.op {
                let rank = g.ty(n.inputs[1]).rank();
                let want = if c.group > 1 {
                    [KernelLayout::Ohwi, KernelLayout::Ihwo]
                } else if rank == 4 {
                    [plain; 2]
                } else {
                    [KernelLayout::Ohwi; 2]
                };
                assert_eq!(c.layout, Layout::Nhwc, "{}", f.name);
                assert!(
                    want.contains(&c.kernel_layout),
                    "{}: {}",
                    f.name,
                    c.kernel_layout
                );
            }
        }
        let nhwc_transposes = count(&g, "Transpose");
        if [
            "cnn_bn",
            "cnn_bn_unfolded",
            "residual",
            "depthwise_grouped",
            "dynamic_batch",
            "dynamo_cnn",
        ]
        .contains(&f.name.as_str())
        {
            assert!(moved);
            // One transpose into NHWC at the input; the way out is a reshape or one transpose.
            assert!(
                nhwc_transposes <= before + 2,
                "{}: {nhwc_transposes} transposes in NHWC",
                f.name
            );
        }
        // eval legalizes back to NCHW for tract: results must not change.
        let got = mdeploy::eval::run(&g, &f.inputs()).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        f.assert_expected(&format!("{} via NHWC", f.name), &got);
    }
}

/// Evaluation in pieces (what large models get) computes what the whole graph computes, on
/// every ONNX fixture, float and with int8 weights (whose DequantizeLinear nodes the splitter
/// moves next to their users). A budget of one byte cuts the graph at nearly every node.
#[test]
fn evaluation_in_pieces_matches_the_whole_graph() {
    use mdeploy::eval::{random_inputs, run_batches_in_pieces};
    let random_like = |g: &mdeploy::ir::Graph, like: &[mdeploy::ir::Tensor]| {
        let mut g = g.clone();
        for (&v, t) in g.inputs.clone().iter().zip(like) {
            g.value_mut(v).ty = t.ty();
        }
        random_inputs(&g, 5, 2)
    };
    use mdeploy::passes::quantize::{quantize_weights, Form, Mode, QuantizeOptions};
    let run = |g: &mdeploy::ir::Graph, budget: usize, inputs: &[mdeploy::ir::Tensor]| {
        let mut out = vec![];
        run_batches_in_pieces(g, &[], &[inputs.to_vec()], budget, |_, v| {
            out = v;
            Ok(())
        })
        .map(|_| out)
    };
    let fixtures = onnx_fixtures();
    let mut checked = 0;
    for f in &fixtures {
        let float = readers::read(&f.model, &ReadOptions::default()).unwrap();
        let mut int8 = float.clone();
        mdeploy::writers::onnx::legalize(&mut int8).unwrap();
        let opts = QuantizeOptions {
            mode: Mode::Int8,
            exclude: vec![],
            form: Form::Qdq,
            float_depthwise: false,
        };
        quantize_weights(&mut int8, &opts).unwrap();
        for (what, g) in [("float", float), ("int8", int8)] {
            // Random values at the fixture's own sizes (which every model runs at).
            let inputs = if what == "float" {
                f.inputs()
            } else {
                random_like(&g, &f.inputs())
            };
            let whole = run(&g, usize::MAX, &inputs)
                .unwrap_or_else(|e| panic!("{} ({what}) whole: {e}", f.name));
            let pieces = run(&g, 1, &inputs)
                .unwrap_or_else(|e| panic!("{} ({what}) in pieces: {e}", f.name));
            assert_matches(&format!("{} ({what}) in pieces", f.name), &pieces, &whole);
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * fixtures.len());
}

/// The same for every Keras and SavedModel fixture (float, on the fixture's own inputs): their
/// readers make op mixes the ONNX fixtures do not (unrolled recurrences, TF's shape arithmetic).
#[test]
fn evaluation_in_pieces_matches_the_whole_graph_for_keras_and_saved_model() {
    use mdeploy::eval::run_batches_in_pieces;
    let mut models = Vec::new();
    for dir in ["keras", "tf_keras", "saved_model"] {
        let root = crate::common::repo().join("fixtures").join(dir);
        let mut entries: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            for name in ["model.keras", "model.h5", "model"] {
                if e.path().join(name).exists() {
                    models.push((e.path(), e.path().join(name)));
                }
            }
        }
    }
    assert!(models.len() >= 60, "found {} models", models.len());
    for (dir, model) in &models {
        let g = readers::read(model, &ReadOptions::default()).unwrap();
        let inputs: Vec<_> = (0..g.inputs.len())
            .map(|i| {
                let name = if i == 0 {
                    "input.npy".to_string()
                } else {
                    format!("input_{i}.npy")
                };
                mdeploy::npy::read(&dir.join(name)).unwrap()
            })
            .collect();
        let run = |budget: usize| {
            let mut out = vec![];
            run_batches_in_pieces(&g, &[], std::slice::from_ref(&inputs), budget, |_, v| {
                out = v;
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{} (budget {budget}): {e}", model.display()));
            out
        };
        let what = format!("{} in pieces", model.display());
        assert_matches(&what, &run(1), &run(usize::MAX));
    }
}

/// A squeeze-excite block (Keras, channels-last) written as ONNX: the global mean becomes a
/// global average pool, and no transpose or reshape is left between its 1×1 convolutions and
/// the product, the head's flatten aside (onnxruntime quantizes none of those, so each cut an int8 model into float
/// islands); only the model's input transpose remains. Results unchanged.
#[test]
fn squeeze_excite_in_onnx_has_no_inner_transposes_or_reshapes() {
    use crate::common::{repo, Fixture};
    let dir = repo().join("fixtures/keras/efficientnet_block");
    let f = Fixture {
        name: "efficientnet_block".into(),
        model: dir.join("model.keras"),
        dir,
    };
    let mut g = readers::read(&f.model, &ReadOptions::default()).unwrap();
    mdeploy::writers::onnx::legalize(&mut g).unwrap();
    assert_eq!(count(&g, "Transpose"), 1, "{:#?}", g.nodes);
    // The head's flatten after the last pool is the only reshape.
    assert!(count(&g, "Reshape") <= 1, "{:#?}", g.nodes);
    assert!(count(&g, "GlobalAvgPool") >= 1, "{:#?}", g.nodes);
    let got = mdeploy::eval::run(&g, &f.inputs()).unwrap();
    f.assert_expected("efficientnet_block as ONNX", &got);
}

/// The same block as a SavedModel spells it (`Mean` without kept axes, a `Reshape` back to
/// `[N,1,1,C]`, 1×1 convolutions in NHWC, the product with the features), built by hand:
/// in ONNX the mean keeps its axes and becomes a global pool, and only the boundary transposes
/// are left (before: a transpose or reshape around every op of the block).
#[test]
fn squeeze_excite_as_saved_model_spells_it_cleans_up_in_onnx() {
    use mdeploy::ir::ops::{BinaryOp, Conv, Padding, Reduce, ReduceKind, Reshape, UnaryOp};
    use mdeploy::ir::{fixed_shape, DType, Dim, Graph, Tensor, TensorType};
    let c = 6;
    let seeded = |shape: Vec<usize>, seed: usize| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|k| ((k * 13 + seed * 7) % 17) as f32 / 17.0 - 0.4)
            .collect();
        Tensor::from_f32(shape, &v)
    };
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[1, 5, 5, c])));
    let nhwc_conv = || {
        Op::Conv(Conv {
            layout: Layout::Nhwc,
            kernel_layout: KernelLayout::Ohwi,
            strides: vec![1, 1],
            dilations: vec![1, 1],
            padding: Padding::Explicit(vec![(0, 0), (0, 0)]),
            group: 1,
            output_padding: vec![],
        })
    };
    let k0 = g.add_const("k0", seeded(vec![c, 1, 1, c], 1));
    let f = g
        .add_node("features", nhwc_conv(), vec![x, k0], &["f".into()])
        .unwrap()[0];
    let mean = Op::Reduce(Reduce {
        kind: ReduceKind::Mean,
        axes: vec![1, 2],
        keep_dims: false,
    });
    let m = g.add_node("squeeze", mean, vec![f], &["m".into()]).unwrap()[0];
    let shape = vec![
        Dim::Fixed(1),
        Dim::Fixed(1),
        Dim::Fixed(1),
        Dim::Fixed(c as u64),
    ];
    let r = g
        .add_node(
            "reshape",
            Op::Reshape(Reshape { shape }),
            vec![m],
            &["r".into()],
        )
        .unwrap()[0];
    let k1 = g.add_const("k1", seeded(vec![2, 1, 1, c], 2));
    let s1 = g
        .add_node("reduce", nhwc_conv(), vec![r, k1], &["s1".into()])
        .unwrap()[0];
    let a = g
        .add_node("act", Op::Unary(UnaryOp::Sigmoid), vec![s1], &["a".into()])
        .unwrap()[0];
    let k2 = g.add_const("k2", seeded(vec![c, 1, 1, 2], 3));
    let s2 = g
        .add_node("expand", nhwc_conv(), vec![a, k2], &["s2".into()])
        .unwrap()[0];
    let y = g
        .add_node(
            "excite",
            Op::Binary(BinaryOp::Mul),
            vec![f, s2],
            &["y".into()],
        )
        .unwrap();
    g.outputs = y;
    g.verify().unwrap();
    let inputs = mdeploy::eval::random_inputs(&g, 4, 1);
    let want = mdeploy::eval::run(&g, &inputs).unwrap();
    mdeploy::writers::onnx::legalize(&mut g).unwrap();
    assert!(count(&g, "Transpose") <= 2, "{:#?}", g.nodes);
    assert_eq!(count(&g, "Reshape"), 0, "{:#?}", g.nodes);
    assert_eq!(count(&g, "GlobalAvgPool"), 1, "{:#?}", g.nodes);
    let got = mdeploy::eval::run(&g, &inputs).unwrap();
    let cmp = mdeploy::eval::compare("y", &got[0], &want[0]);
    assert!(cmp.shape_matches && cmp.max_rel < 1e-5, "{cmp:?}");
}
