//! TFLite legalization: the shared channels-last rewrites (`passes::nhwc`), with the ops TFLite
//! has no builtin for but can express exactly lowered in between (ONNX integer ops before the
//! layout pass, so the float convolutions they become are laid out like any other; Einsum,
//! element indexing and recurrent layers after it — but for the LSTMs over a run-time length
//! that UNIDIRECTIONAL_SEQUENCE_LSTM runs, see `ops::recurrent`), and Clips that map onto a fused activation
//! or RELU* builtin kept whole.

use super::ops::elementwise::activation_builtin;
use crate::error::{failed, Result};
use crate::ir::ops::Activation;
use crate::ir::Graph;
use crate::passes::layout::KernelTargets;
use crate::passes::nhwc;

pub const TFLITE_KERNELS: KernelTargets = nhwc::NHWC_KERNELS;

pub fn legalize(g: &mut Graph, nhwc_io: bool) -> Result<()> {
    let fail = |e: String| failed(format!("TFLite legalization: {e}"));
    g.remove_dead();
    crate::passes::integer::lower_integer_ops(g).map_err(fail)?;
    nhwc::prepare(g, nhwc_io, TFLITE_KERNELS).map_err(fail)?;
    crate::passes::einsum::lower_einsums(g).map_err(fail)?;
    super::indexing::lower_element_indexing(g).map_err(fail)?;
    crate::passes::rnn_loop::loop_rnns(g, &super::ops::recurrent::fits).map_err(fail)?;
    crate::passes::loop_scan::carry_collected(g).map_err(fail)?;
    crate::passes::rnn::unroll_rnns(g).map_err(fail)?;
    // No TFLite builtin computes asin, sinh, … (TF's converter keeps them as Flex ops).
    let native_trig = false;
    nhwc::finish(
        g,
        &|min, max| activation_builtin(&Activation::Clip { min, max }).is_some(),
        native_trig,
    )
    .map_err(fail)
}
