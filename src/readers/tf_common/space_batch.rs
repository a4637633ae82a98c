//! SpaceToBatchND and BatchToSpaceND, which TF writes around every dilated convolution
//! (`x → SpaceToBatchND → conv → BatchToSpaceND`, with ExpandDims/Squeeze around the conv of a
//! Conv1D). A BatchToSpaceND that closes such a chain becomes one dilated convolution of the
//! original input; anywhere else both ops are the pads, reshapes and transposes they define
//! (TF's `array_ops.space_to_batch_nd` documentation), so the result is exact either way.

use crate::ir::ops::{Pad, PadMode, Padding, Reshape, Slice, SliceAxis, Transpose};
use crate::ir::{Dim, Layout, Op, ValueId};
use crate::readers::builder::{unsupported, GraphBuilder, NodeError, NodeResult, SpaceToBatch};

/// `(begin, end)` per block dimension (paddings or crops).
pub type Pairs = Vec<(i64, i64)>;

fn reshape(b: &mut GraphBuilder, name: &str, x: ValueId, shape: Vec<Dim>) -> NodeResult<ValueId> {
    b.emit1(name, Op::Reshape(Reshape { shape }), vec![x])
}

/// SpaceToBatchND of `x` by `block` with `(begin, end)` paddings per block dimension.
pub fn space_to_batch(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    block: Vec<usize>,
    pads: Pairs,
) -> NodeResult<Vec<ValueId>> {
    let shape = b.g.ty(x).shape.clone();
    let m = block.len();
    if shape.len() < m + 1 {
        return Err(NodeError::Invalid(format!(
            "{} block dims for rank {}",
            m,
            shape.len()
        )));
    }
    let mut full = vec![(0i64, 0i64); shape.len()];
    full[1..=m].copy_from_slice(&pads);
    let padded = b.emit1(
        &format!("{name}/pad"),
        Op::Pad(Pad {
            mode: PadMode::Constant,
            pads: full,
            value: 0.0,
        }),
        vec![x],
    )?;
    let ps = b.g.ty(padded).shape.clone();
    // [N, s1/b1, b1, …, sM/bM, bM, rest…] → [b1, …, bM, N, s1/b1, …, rest…] → [b·N, …]
    let mut split = vec![ps[0].clone()];
    let mut outer = Vec::with_capacity(m);
    for (i, &bi) in block.iter().enumerate() {
        let s = ps[1 + i]
            .fixed()
            .filter(|s| s % bi as u64 == 0)
            .ok_or_else(|| {
                NodeError::Unsupported(format!(
                    "SpaceToBatchND of a dimension {} that the block {bi} does not divide",
                    ps[1 + i]
                ))
            })?;
        outer.push(Dim::Fixed(s / bi as u64));
        split.push(Dim::Fixed(s / bi as u64));
        split.push(Dim::Fixed(bi as u64));
    }
    split.extend(ps[m + 1..].iter().cloned());
    let r = reshape(b, &format!("{name}/split"), padded, split)?;
    let mut perm: Vec<usize> = (0..m).map(|i| 2 + 2 * i).collect();
    perm.push(0);
    perm.extend((0..m).map(|i| 1 + 2 * i));
    perm.extend(2 * m + 1..ps.len() + m);
    let t = b.emit1(
        &format!("{name}/move"),
        Op::Transpose(Transpose { perm }),
        vec![r],
    )?;
    let prod: u64 = block.iter().map(|&v| v as u64).product();
    let mut out = vec![Dim::product(&[Dim::Fixed(prod), ps[0].clone()])];
    out.extend(outer);
    out.extend(ps[m + 1..].iter().cloned());
    let y = reshape(b, name, t, out)?;
    b.space_to_batch.insert(y, SpaceToBatch { x, block, pads });
    Ok(vec![y])
}

/// BatchToSpaceND of `y` by `block` with `(begin, end)` crops per block dimension.
pub fn batch_to_space(
    b: &mut GraphBuilder,
    name: &str,
    y: ValueId,
    block: Vec<usize>,
    crops: Pairs,
) -> NodeResult<Vec<ValueId>> {
    if let Some(v) = fold_dilated(b, name, y, &block, &crops)? {
        return Ok(vec![v]);
    }
    let shape = b.g.ty(y).shape.clone();
    let m = block.len();
    if shape.len() < m + 1 {
        return Err(NodeError::Invalid(format!(
            "{} block dims for rank {}",
            m,
            shape.len()
        )));
    }
    let prod: u64 = block.iter().map(|&v| v as u64).product();
    let batch = shape[0].divide(&Dim::Fixed(prod)).ok_or_else(|| {
        NodeError::Unsupported(format!("a batch {} the block does not divide", shape[0]))
    })?;
    // [B, s…, rest] → [b1, …, bM, N, s1, …, sM, rest] → [N, s1, b1, …, sM, bM, rest] → [N, s1·b1, …]
    let mut split: Vec<Dim> = block.iter().map(|&v| Dim::Fixed(v as u64)).collect();
    split.push(batch.clone());
    split.extend(shape[1..].iter().cloned());
    let r = reshape(b, &format!("{name}/split"), y, split)?;
    let mut perm = vec![m];
    for i in 0..m {
        perm.push(m + 1 + i);
        perm.push(i);
    }
    perm.extend(2 * m + 1..shape.len() + m);
    let t = b.emit1(
        &format!("{name}/move"),
        Op::Transpose(Transpose { perm }),
        vec![r],
    )?;
    let mut joined = vec![batch];
    for (i, &bi) in block.iter().enumerate() {
        joined.push(Dim::product(&[shape[1 + i].clone(), Dim::Fixed(bi as u64)]));
    }
    joined.extend(shape[m + 1..].iter().cloned());
    let j = reshape(b, &format!("{name}/join"), t, joined.clone())?;
    let axes: Vec<SliceAxis> = crops
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != (0, 0))
        .map(|(i, &(c0, c1))| {
            let size = joined[1 + i].fixed().map(|s| s as i64).unwrap_or(i64::MAX);
            SliceAxis {
                axis: 1 + i,
                start: c0,
                end: size.saturating_sub(c1),
                step: 1,
            }
        })
        .collect();
    if axes.is_empty() {
        return Ok(vec![j]);
    }
    if crops
        .iter()
        .zip(&joined[1..])
        .any(|(c, d)| *c != (0, 0) && !d.is_fixed())
    {
        return unsupported("BatchToSpaceND crops on a dimension of run-time size");
    }
    Ok(vec![b.emit1(
        &format!("{name}/crop"),
        Op::Slice(Slice { axes }),
        vec![j],
    )?])
}

/// `x → SpaceToBatchND(b, p) → [reshape] → conv → [reshape] → BatchToSpaceND(b, c)` as a
/// convolution of `x` dilated by `b` with pads `p - c`, when the conv has unit strides and
/// dilations and no padding of its own, and the reshapes only add and drop one unit axis.
fn fold_dilated(
    b: &mut GraphBuilder,
    name: &str,
    y: ValueId,
    block: &[usize],
    crops: &[(i64, i64)],
) -> NodeResult<Option<ValueId>> {
    let producers = b.g.producers();
    let node_of = |v: ValueId| producers.get(&v).map(|&i| &b.g.nodes[i]);
    let Some(mut conv_node) = node_of(y) else {
        return Ok(None);
    };
    let mut squeezed = false;
    if matches!(conv_node.op, Op::Reshape(_)) {
        let Some(p) = node_of(conv_node.inputs[0]) else {
            return Ok(None);
        };
        conv_node = p;
        squeezed = true;
    }
    let Op::Conv(c) = &conv_node.op else {
        return Ok(None);
    };
    let plain = c.layout == Layout::Nhwc
        && c.strides.iter().all(|&s| s == 1)
        && c.dilations.iter().all(|&d| d == 1)
        && matches!(&c.padding, Padding::Explicit(p) if p.iter().all(|&q| q == (0, 0)));
    if !plain || !(2..=3).contains(&conv_node.inputs.len()) {
        return Ok(None);
    }
    let mut conv_in = conv_node.inputs[0];
    // A bias is per output channel, which the batch-to-space reordering leaves in place.
    let rest = conv_node.inputs[1..].to_vec();
    let mut unit_axis = None;
    if let Some(r) = node_of(conv_in).filter(|r| matches!(r.op, Op::Reshape(_))) {
        let (from, to) = (&b.g.ty(r.inputs[0]).shape, &b.g.ty(conv_in).shape);
        unit_axis = (0..to.len()).find(|&k| {
            to[k] == Dim::Fixed(1) && {
                let mut t = to.clone();
                t.remove(k);
                t == *from
            }
        });
        if unit_axis.is_some() {
            conv_in = r.inputs[0];
        }
    }
    let Some(s2b) = b.space_to_batch.get(&conv_in).cloned() else {
        return Ok(None);
    };
    if s2b.block != block || squeezed != unit_axis.is_some() {
        return Ok(None);
    }
    let conv_rank = b.g.ty(conv_node.outputs[0]).rank();
    let mut c = c.clone();
    let mut pads = vec![(0usize, 0usize); conv_rank - 2];
    for (i, (&bi, (&(p0, p1), &(c0, c1)))) in
        block.iter().zip(s2b.pads.iter().zip(crops)).enumerate()
    {
        // x axis 1 + i, after the unit axis (if any) was inserted; conv spatial axes are 1…
        let axis = 1 + i + usize::from(unit_axis.is_some_and(|k| k <= 1 + i));
        let (Some(slot), true) = (axis.checked_sub(1), p0 >= c0 && p1 >= c1) else {
            return Ok(None);
        };
        if slot >= pads.len() {
            return Ok(None);
        }
        c.dilations[slot] = bi;
        pads[slot] = ((p0 - c0) as usize, (p1 - c1) as usize);
    }
    c.padding = Padding::Explicit(pads);
    let mut x = s2b.x;
    if let Some(k) = unit_axis {
        let mut shape = b.g.ty(x).shape.clone();
        shape.insert(k, Dim::Fixed(1));
        x = reshape(b, &format!("{name}/unit"), x, shape)?;
    }
    let mut out = b.emit1(
        &format!("{name}/dilated"),
        Op::Conv(c),
        [vec![x], rest].concat(),
    )?;
    if let Some(k) = unit_axis {
        let mut shape = b.g.ty(out).shape.clone();
        if shape.get(k) != Some(&Dim::Fixed(1)) {
            return Ok(None);
        }
        shape.remove(k);
        out = reshape(b, name, out, shape)?;
    }
    Ok(Some(out))
}
