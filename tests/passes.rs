//! The layout and transpose-cleanup passes, on every fixture: moving a graph to NHWC (as the
//! TFLite and TF.js writers will) and back must not change what it computes, and CNNs must be
//! left with transposes only at their boundaries.

use crate::common::{assert_matches, onnx_fixtures};
use mdeploy::ir::{KernelLayout, Layout, Op};
use mdeploy::passes::layout::{to_layout, KernelTargets};
use mdeploy::passes::transpose::clean_transposes;
use mdeploy::readers::{self, ReadOptions};

const NHWC_KERNELS: KernelTargets = KernelTargets {
    depthwise: KernelLayout::Ihwo,
    conv: KernelLayout::Ohwi,
    conv_transpose: KernelLayout::Ohwi,
};

fn count(g: &mdeploy::ir::Graph, name: &str) -> usize {
    g.nodes.iter().filter(|n| n.op.name() == name).count()
}

#[test]
fn nhwc_round_trip_keeps_results_and_cancels_inner_transposes() {
    for f in onnx_fixtures() {
        let mut g = readers::read(&f.model, &ReadOptions::default()).unwrap();
        let before = count(&g, "Transpose");
        let moved = to_layout(&mut g, Layout::Nhwc, NHWC_KERNELS).unwrap();
        g.verify()
            .unwrap_or_else(|e| panic!("{} after layout: {e}", f.name));
        clean_transposes(&mut g).unwrap();
        g.verify()
            .unwrap_or_else(|e| panic!("{} after cleanup: {e}", f.name));
        for n in &g.nodes {
            if let Op::Conv(c) = &n.op {
                let want = if c.group > 1 {
                    [KernelLayout::Ohwi, KernelLayout::Ihwo]
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
        assert_matches(&format!("{} via NHWC", f.name), &got, &f.expected());
    }
}
