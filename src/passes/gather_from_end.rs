//! Gathers of one constant negative index along an axis whose size is known only at run time
//! (`y[:, -1]`, the last step of an RNN over a sequence of any length, as PyTorch exports it):
//! TFLite and TF do not count a gather index from the end, and the size to add is not known
//! when the file is written. Such a gather is the slice `[i, i + 1)` (to the end for -1), which
//! both count from the end natively, then a reshape dropping the axis.

use super::rewrite::Rewriter;
use crate::ir::ops::{Reshape, Slice, SliceAxis};
use crate::ir::{Graph, Node, Op};

/// The index of `n` when it is such a gather.
fn from_end(g: &Graph, n: &Node) -> Option<i64> {
    let Op::Gather(gather) = &n.op else {
        return None;
    };
    let idx = g.constant(*n.inputs.get(1)?)?;
    let v = idx.to_i64s()?;
    let unknown = !g.ty(n.inputs[0]).shape.get(gather.axis)?.is_fixed();
    match (v.as_slice(), idx.shape.is_empty()) {
        ([i], true) if *i < 0 && unknown => Some(*i),
        _ => None,
    }
}

/// Rewrites every such gather; returns whether anything changed.
pub fn slice_gathers_from_end(g: &mut Graph) -> Result<bool, String> {
    if !g.nodes.iter().any(|n| from_end(g, n).is_some()) {
        return Ok(false);
    }
    let (mut rw, old) = Rewriter::begin(g);
    for n in old {
        let (Some(i), Op::Gather(gather)) = (from_end(rw.g, &n), &n.op) else {
            rw.keep(n);
            continue;
        };
        let end = if i == -1 { i64::MAX } else { i + 1 };
        let slice = Slice {
            axes: vec![SliceAxis {
                axis: gather.axis,
                start: i,
                end,
                step: 1,
            }],
        };
        let sliced = rw.op(&n.name, Op::Slice(slice), vec![n.inputs[0]])?;
        let shape = rw.g.ty(n.outputs[0]).shape.clone();
        rw.op_into(
            &n.name,
            Op::Reshape(Reshape { shape }),
            vec![sliced],
            n.outputs[0],
        );
    }
    rw.finish();
    Ok(true)
}
