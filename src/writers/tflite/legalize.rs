//! TFLite legalization: ops TFLite has no builtin for but can express exactly (Einsum, element
//! indexing, recurrent layers) lowered first, then the shared channels-last rewrites
//! (`passes::nhwc`), with Clips that map onto a fused activation or RELU* builtin kept whole.

use super::ops::elementwise::activation_builtin;
use crate::error::{failed, Result};
use crate::ir::Graph;
use crate::passes::layout::KernelTargets;
use crate::passes::nhwc;

pub const TFLITE_KERNELS: KernelTargets = nhwc::NHWC_KERNELS;

pub fn legalize(g: &mut Graph, nhwc_io: bool) -> Result<()> {
    let fail = |e: String| failed(format!("TFLite legalization: {e}"));
    // Before the layout pass, so it sees only the ordinary ops these become.
    crate::passes::einsum::lower_einsums(g).map_err(fail)?;
    super::indexing::lower_element_indexing(g).map_err(fail)?;
    super::rnn::unroll_rnns(g).map_err(fail)?;
    nhwc::legalize(g, nhwc_io, &|a| activation_builtin(a).is_some()).map_err(fail)
}
