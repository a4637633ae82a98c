//! TF ops the IR has no single op for, read through the lowerings shared with the TFLite reader
//! (`tf_common::lowered`): Atan2, Bucketize, ReverseSequence, SparseToDense and
//! FakeQuantWithMinMaxArgs.

use super::super::tensor::TfNode;
use super::{const_ints, Handler};
use crate::ir::ValueId;
use crate::readers::builder::{GraphBuilder, NodeError, NodeResult};
use crate::readers::tf_common::lowered;

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Atan2" => atan2,
        "Bucketize" => bucketize,
        "ReverseSequence" => reverse_sequence,
        "SparseToDense" => sparse_to_dense,
        "FakeQuantWithMinMaxArgs" => fake_quant,
        _ => return None,
    })
}

fn atan2(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    Ok(vec![lowered::atan2(b, &n.name, n.input(0)?, n.input(1)?)?])
}

fn bucketize(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let bounds = n.floats("boundaries");
    Ok(vec![lowered::bucketize(b, &n.name, n.input(0)?, &bounds)?])
}

fn reverse_sequence(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank() as i64;
    let axis = |name: &str| {
        let v = n.int(name, 0);
        let a = if v < 0 { v + rank } else { v };
        usize::try_from(a)
            .ok()
            .filter(|&a| (a as i64) < rank)
            .ok_or_else(|| NodeError::Invalid(format!("{name} {v} of a rank-{rank} input")))
    };
    let (seq, batch) = (axis("seq_dim")?, axis("batch_dim")?);
    Ok(vec![lowered::reverse_sequence(
        b,
        &n.name,
        x,
        n.input(1)?,
        seq,
        batch,
    )?])
}

fn sparse_to_dense(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let shape = const_ints(b, n, 1, "output_shape")?;
    let (idx, vals, default) = (n.input(0)?, n.input(2)?, n.input(3)?);
    Ok(vec![lowered::sparse_to_dense(
        b, &n.name, idx, &shape, vals, default,
    )?])
}

fn fake_quant(b: &mut GraphBuilder, n: &TfNode) -> NodeResult<Vec<ValueId>> {
    let range = (n.float("min", -6.0), n.float("max", 6.0));
    let bits = i32::try_from(n.int("num_bits", 8)).unwrap_or(0);
    let narrow = n.bool("narrow_range", false);
    Ok(vec![lowered::fake_quant(
        b,
        &n.name,
        n.input(0)?,
        range,
        bits,
        narrow,
    )?])
}
