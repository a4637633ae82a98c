//! Segment reductions and diagonals, as selections the writers all run:
//! SEGMENT_SUM and UNSORTED_SEGMENT_SUM/MAX/MIN/PROD reduce `Where(ids == s, data, identity)`
//! over the rows of each segment `s` (a `[segments, rows, …]` selection; an empty segment gives
//! the identity, as TF: 0, the lowest or highest float, 1; negative ids belong to no segment);
//! MATRIX_DIAG and MATRIX_SET_DIAG select the diagonal from a constant identity mask.

use super::{Handler, Node};
use crate::ir::ops::{BinaryOp, Pad, PadMode, Reduce, ReduceKind};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};
use crate::readers::builder::{reshape_to, unsupported, GraphBuilder, NodeError, NodeResult};
use tract_tflite::tflite::BuiltinOperator as B;

pub fn handler(code: B) -> Option<Handler> {
    Some(match code {
        B::SEGMENT_SUM
        | B::UNSORTED_SEGMENT_SUM
        | B::UNSORTED_SEGMENT_MAX
        | B::UNSORTED_SEGMENT_MIN
        | B::UNSORTED_SEGMENT_PROD => segment,
        B::MATRIX_DIAG | B::MATRIX_SET_DIAG => diag,
        _ => return None,
    })
}

/// Bound on `segments × rows`, the size of the selection mask.
const MAX_MASK: u64 = 1 << 24;

/// SEGMENT_SUM(data, ids) with constant sorted ids (the segment count is the last id + 1), or
/// UNSORTED_SEGMENT_*(data, ids, num_segments) with a constant count.
fn segment(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let (data, ids) = (n.input(0)?, n.input(1)?);
    let segments = if n.code == B::SEGMENT_SUM {
        let v = n.ints(b, 1, "SEGMENT_SUM's segment ids")?;
        v.iter().max().map_or(0, |m| m + 1).max(0)
    } else {
        match n.ints(b, 2, "num_segments")?.as_slice() {
            [s] if *s >= 0 => *s,
            _ => {
                return Err(NodeError::Invalid(
                    "num_segments must be one value ≥ 0".into(),
                ))
            }
        }
    };
    let dt = b.g.ty(data).dtype;
    let dshape = b.g.ty(data).shape.clone();
    let ishape = b.g.ty(ids).shape.clone();
    if ishape.len() != 1 || dshape.is_empty() || !dt.is_float() {
        return unsupported("segment reductions of float data over 1-D segment ids");
    }
    let rows = dshape[0]
        .fixed()
        .ok_or_else(|| NodeError::Unsupported("segment rows known only at run time".into()))?;
    let s = segments as u64;
    if s.saturating_mul(rows) > MAX_MASK {
        return Err(NodeError::Invalid(format!("{s} segments of {rows} rows")));
    }
    let name = &n.name;
    let rank = dshape.len();
    // ids as [1, rows, 1…] against the segment numbers [s, 1, 1…].
    let mut id_shape = vec![Dim::Fixed(1), Dim::Fixed(rows)];
    id_shape.extend(std::iter::repeat_n(Dim::Fixed(1), rank - 1));
    let ids64 = b.emit1(
        &format!("{name}/ids"),
        Op::Cast(crate::ir::ops::Cast { to: DType::I64 }),
        vec![ids],
    )?;
    let ids_col = reshape_to(b, &format!("{name}/ids_column"), ids64, id_shape)?[0];
    let mut seg_shape = vec![s as usize];
    seg_shape.extend(std::iter::repeat_n(1, rank));
    let numbers: Vec<i64> = (0..segments).collect();
    let numbers = b.add_const(
        &format!("{name}/segments"),
        Tensor::from_i64(seg_shape, &numbers),
    );
    let mask = b.emit1(
        &format!("{name}/mask"),
        Op::Binary(BinaryOp::Equal),
        vec![numbers, ids_col],
    )?;
    let (kind, identity) = match n.code {
        B::UNSORTED_SEGMENT_MAX => (ReduceKind::Max, f64::from(f32::MIN)),
        B::UNSORTED_SEGMENT_MIN => (ReduceKind::Min, f64::from(f32::MAX)),
        B::UNSORTED_SEGMENT_PROD => (ReduceKind::Prod, 1.0),
        _ => (ReduceKind::Sum, 0.0),
    };
    let fill = b.add_const(
        &format!("{name}/identity"),
        Tensor::from_f64s(dt, vec![], &[identity]),
    );
    let mut lifted = vec![Dim::Fixed(1)];
    lifted.extend(dshape.iter().cloned());
    let data1 = reshape_to(b, &format!("{name}/data"), data, lifted)?[0];
    let picked = b.emit1(
        &format!("{name}/picked"),
        Op::Where,
        vec![mask, data1, fill],
    )?;
    let r = Reduce {
        kind,
        axes: vec![1],
        keep_dims: false,
    };
    b.emit(name, Op::Reduce(r), vec![picked])
}

/// MATRIX_DIAG(d [..., k]) → `[..., k, k]`; MATRIX_SET_DIAG(x [..., m, n], d [..., min(m, n)]).
fn diag(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let set = n.code == B::MATRIX_SET_DIAG;
    let d = n.input(usize::from(set))?;
    let dshape = b.g.ty(d).shape.clone();
    let dt = b.g.ty(d).dtype;
    let name = &n.name;
    let (rows, cols, base) = if set {
        let x = n.input(0)?;
        let xs = b.g.ty(x).shape.clone();
        let (Some(m), Some(c)) = (
            xs.len().checked_sub(2).and_then(|i| xs[i].fixed()),
            xs.last().and_then(Dim::fixed),
        ) else {
            return unsupported("MATRIX_SET_DIAG of matrices of run-time size");
        };
        (m, c, Some(x))
    } else {
        let Some(k) = dshape.last().and_then(Dim::fixed) else {
            return unsupported("MATRIX_DIAG of a diagonal of run-time length");
        };
        (k, k, None)
    };
    if rows.saturating_mul(cols) > MAX_MASK || dshape.is_empty() {
        return Err(NodeError::Invalid(format!(
            "diagonal of {rows}×{cols} matrices"
        )));
    }
    let k = rows.min(cols);
    if dshape.last() != Some(&Dim::Fixed(k)) {
        return Err(NodeError::Invalid(format!(
            "diagonal {dshape:?} of {rows}×{cols} matrices"
        )));
    }
    // The diagonal as a row `[..., 1, cols]` (zeros past k when there are more columns than
    // rows): at (i, i) the row's entry i is d[i].
    let mut dd = d;
    if cols > k {
        let mut pads = vec![(0, 0); dshape.len()];
        pads[dshape.len() - 1] = (0, (cols - k) as i64);
        let p = Pad {
            mode: PadMode::Constant,
            pads,
            value: 0.0,
        };
        dd = b.emit1(&format!("{name}/diagonal"), Op::Pad(p), vec![dd])?;
    }
    let mut row = dshape.clone();
    row.pop();
    row.push(Dim::Fixed(1));
    row.push(Dim::Fixed(cols));
    let dd = reshape_to(b, &format!("{name}/row"), dd, row)?[0];
    let (r, c) = (rows as usize, cols as usize);
    let eye: Vec<f64> = (0..r * c)
        .map(|i| f64::from(u8::from(i / c == i % c)))
        .collect();
    let eye = b.add_const(
        &format!("{name}/eye"),
        Tensor::from_f64s(DType::Bool, vec![r, c], &eye),
    );
    let other = match base {
        Some(x) => x,
        None => b.add_const(
            &format!("{name}/zero"),
            Tensor::from_f64s(dt, vec![], &[0.0]),
        ),
    };
    b.emit(name, Op::Where, vec![eye, dd, other])
}
