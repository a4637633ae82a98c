//! TFLite legalization: the shared channels-last rewrites (`passes::nhwc`), with Clips that
//! map onto a fused activation or RELU* builtin kept whole.

use super::ops::elementwise::activation_builtin;
use crate::error::{failed, Result};
use crate::ir::Graph;
use crate::passes::layout::KernelTargets;
use crate::passes::nhwc;

pub const TFLITE_KERNELS: KernelTargets = nhwc::NHWC_KERNELS;

pub fn legalize(g: &mut Graph, nhwc_io: bool) -> Result<()> {
    nhwc::legalize(g, nhwc_io, &|a| activation_builtin(a).is_some())
        .map_err(|e| failed(format!("TFLite legalization: {e}")))
}
