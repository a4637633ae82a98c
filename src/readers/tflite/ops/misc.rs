//! Builtins the IR has no single op for, lowered as TF defines them (`tf_common::lowered`):
//! ATAN2, BUCKETIZE, REVERSE_SEQUENCE, SPARSE_TO_DENSE, DYNAMIC_UPDATE_SLICE and FAKE_QUANT.

use super::{Handler, Node};
use crate::ir::ValueId;
use crate::readers::builder::{unsupported, GraphBuilder, NodeError, NodeResult};
use crate::readers::tf_common::lowered;
use tract_tflite::tflite::BuiltinOperator as B;

pub fn handler(code: B) -> Option<Handler> {
    Some(match code {
        B::ATAN2 => atan2,
        B::BUCKETIZE => bucketize,
        B::REVERSE_SEQUENCE => reverse_sequence,
        B::SPARSE_TO_DENSE => sparse_to_dense,
        B::DYNAMIC_UPDATE_SLICE => dynamic_update_slice,
        B::FAKE_QUANT => fake_quant,
        _ => return None,
    })
}

fn atan2(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let (y, x) = (n.input(0)?, n.input(1)?);
    Ok(vec![lowered::atan2(b, &n.name, y, x)?])
}

fn bucketize(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_bucketize_options(),
        "BucketizeOptions",
    )?;
    let bounds: Vec<f32> = o
        .boundaries()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    Ok(vec![lowered::bucketize(b, &n.name, n.input(0)?, &bounds)?])
}

fn reverse_sequence(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_reverse_sequence_options(),
        "ReverseSequenceOptions",
    )?;
    let x = n.input(0)?;
    let rank = b.g.ty(x).rank();
    let axis = |v: i32| {
        usize::try_from(v)
            .ok()
            .filter(|&a| a < rank)
            .ok_or_else(|| NodeError::Invalid(format!("axis {v} of a rank-{rank} input")))
    };
    let (seq, batch) = (axis(o.seq_dim())?, axis(o.batch_dim())?);
    Ok(vec![lowered::reverse_sequence(
        b,
        &n.name,
        x,
        n.input(1)?,
        seq,
        batch,
    )?])
}

fn sparse_to_dense(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let shape = n.ints(b, 1, "output_shape")?;
    let (idx, vals, default) = (n.input(0)?, n.input(2)?, n.input(3)?);
    Ok(vec![lowered::sparse_to_dense(
        b, &n.name, idx, &shape, vals, default,
    )?])
}

fn dynamic_update_slice(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let (x, upd, start) = (n.input(0)?, n.input(1)?, n.input(2)?);
    Ok(vec![lowered::dynamic_update_slice(
        b, &n.name, x, upd, start,
    )?])
}

fn fake_quant(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(
        n.op.builtin_options_as_fake_quant_options(),
        "FakeQuantOptions",
    )?;
    if o.narrow_range() {
        // LiteRT: "narrow_range FakeQuant is not currently supported at runtime".
        return unsupported("narrow_range FAKE_QUANT, which LiteRT does not run");
    }
    let range = (o.min(), o.max());
    let x = n.input(0)?;
    Ok(vec![lowered::fake_quant(
        b,
        &n.name,
        x,
        range,
        o.num_bits(),
        o.narrow_range(),
    )?])
}
