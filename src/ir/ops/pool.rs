//! Pooling: ONNX MaxPool/AveragePool-11+ and GlobalAverage/MaxPool; TF MaxPool/AvgPool map here
//! with `Nhwc` data.

use super::{unknown_dim, window_out, Inputs, Padding};
use crate::ir::{Dim, Layout, TensorType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    Max,
    Avg,
    /// Lp pooling with p = 2 (ONNX LpPool default).
    L2,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub kind: PoolKind,
    pub layout: Layout,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub padding: Padding,
    pub ceil_mode: bool,
    /// Average pooling: whether padded cells count in the divisor.
    pub count_include_pad: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalPool {
    pub kind: PoolKind,
    pub layout: Layout,
}

pub fn infer_pool(p: &Pool, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    if x.rank() < 3 {
        return Err(format!("pooling needs rank >= 3, got {x}"));
    }
    super::check_window(&p.kernel, &p.strides, &p.dilations)?;
    let spatial = p.layout.spatial_axes(x.rank());
    if spatial.len() != p.kernel.len()
        || p.strides.len() != p.kernel.len()
        || p.dilations.len() != p.kernel.len()
    {
        return Err(format!(
            "kernel rank {} for {} spatial axes",
            p.kernel.len(),
            spatial.len()
        ));
    }
    let mut out = x.shape.clone();
    for (i, ax) in spatial.enumerate() {
        out[ax] = match &p.padding {
            Padding::Explicit(pads) => window_out(
                &x.shape[ax],
                p.kernel[i],
                p.strides[i],
                p.dilations[i],
                pads[i],
                p.ceil_mode,
            )?,
            _ => match x.shape[ax].fixed() {
                Some(n) => Dim::Fixed(n.div_ceil(p.strides[i] as u64)),
                None => unknown_dim(),
            },
        };
    }
    Ok(vec![TensorType::new(x.dtype, out)])
}

pub fn infer_global_pool(p: &GlobalPool, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    if x.rank() < 3 {
        return Err(format!("global pooling needs rank >= 3, got {}", x.rank()));
    }
    let mut out = x.shape.clone();
    for ax in p.layout.spatial_axes(x.rank()) {
        out[ax] = Dim::Fixed(1);
    }
    Ok(vec![TensorType::new(x.dtype, out)])
}
