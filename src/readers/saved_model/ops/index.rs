//! TF's indexing ops, read with the semantics the TFLite reader shares
//! (`readers/tf_common/index.rs`): ReverseV2, Cumsum, TopKV2, OneHot, ScatterNd,
//! TensorScatterUpdate, GatherNd, DepthToSpace, SpaceToDepth; and MatrixBandPart (the causal
//! masks of transformer exports) as one or two Trilus.

use super::super::tensor::TfNode;
use super::{const_ints, Handler};
use crate::ir::ops::Trilu;
use crate::ir::{DType, Op, ValueId};
use crate::readers::builder::{GraphBuilder, NodeResult};
use crate::readers::tf_common::index;

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "ReverseV2" => reverse,
        "Cumsum" => cumsum,
        "TopKV2" => top_k,
        "OneHot" => one_hot,
        "ScatterNd" => scatter_nd,
        "TensorScatterUpdate" => tensor_scatter_update,
        "GatherNd" => gather_nd,
        "DepthToSpace" | "SpaceToDepth" => depth_space,
        "MatrixBandPart" => band_part,
        _ => return None,
    })
}

/// ReverseV2(x, axes): every listed axis read backwards, a slice with step -1 (how Keras runs a
/// backward recurrent layer over a time axis of any length).
fn reverse(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let axes = const_ints(b, n, 1, "reversed axes")?;
    index::reverse(b, &n.name, n.input(0)?, &axes)
}

fn cumsum(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let axis = const_ints(b, n, 1, "axis")?;
    let (exclusive, reverse) = (n.bool("exclusive", false), n.bool("reverse", false));
    index::cumsum(b, &n.name, n.input(0)?, &axis, exclusive, reverse)
}

fn top_k(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let k = const_ints(b, n, 1, "k")?;
    // `sorted: false` leaves the order unspecified: sorted is one valid order.
    let index_type = n.ir_dtype("index_type", DType::I32)?;
    index::top_k(b, &n.name, n.input(0)?, &k, index_type)
}

fn one_hot(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let depth = const_ints(b, n, 1, "depth")?;
    let inputs = [n.input(0)?, n.input(2)?, n.input(3)?];
    index::one_hot(b, &n.name, inputs, &depth, n.int("axis", -1))
}

fn scatter_nd(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    index::scatter_nd(b, &n.name, n.input(0)?, n.input(1)?, n.input(2)?)
}

fn tensor_scatter_update(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    index::tensor_scatter_update(b, &n.name, n.input(0)?, n.input(1)?, n.input(2)?)
}

fn gather_nd(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    index::gather_nd(b, &n.name, n.input(0)?, n.input(1)?)
}

fn depth_space(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    n.require_nhwc()?;
    let to_space = n.op() == "DepthToSpace";
    index::depth_space(b, &n.name, n.input(0)?, n.int("block_size", 0), to_space)
}

/// MatrixBandPart(x, lower, upper): the band `i - j <= lower` and `j - i <= upper` of the last
/// two axes (a negative bound keeps that whole triangle), zeros elsewhere: ONNX's Trilu keeps
/// `j - i <= k` (lower) or `j - i >= k` (upper).
fn band_part(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let bound = |b: &GraphBuilder, i: usize, what: &str| -> NodeResult<i64> {
        match const_ints(b, n, i, what)?.as_slice() {
            [v] => Ok(*v),
            _ => Err(crate::readers::builder::NodeError::Invalid(format!(
                "{what} must be a scalar"
            ))),
        }
    };
    let (lower, upper) = (bound(b, 1, "num_lower")?, bound(b, 2, "num_upper")?);
    let mut x = n.input(0)?;
    if upper >= 0 {
        let t = Trilu {
            upper: false,
            k: upper,
        };
        let name = if lower >= 0 {
            format!("{}/upper", n.name)
        } else {
            n.name.clone()
        };
        x = b.emit1(&name, Op::Trilu(t), vec![x])?;
    }
    if lower >= 0 {
        let t = Trilu {
            upper: true,
            k: -lower,
        };
        x = b.emit1(&n.name, Op::Trilu(t), vec![x])?;
    }
    Ok(vec![x])
}
