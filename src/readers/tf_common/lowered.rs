//! TF ops the IR has no single op for, written with its ops (shared by the TFLite builtins and
//! the SavedModel ops of the same names): Atan2, Bucketize, ReverseSequence, SparseToDense,
//! XLA's DynamicUpdateSlice and FakeQuantWithMinMaxArgs.

use crate::ir::ops::{
    BinaryOp, Cast, Expand, Gather, Reduce, ReduceKind, Reshape, Scatter, ScatterReduction,
    Transpose, UnaryOp,
};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};
use crate::readers::builder::{unsupported, GraphBuilder, NodeResult};
use std::f64::consts::PI;

fn scalar(b: &mut GraphBuilder, name: &str, dt: DType, v: f64) -> ValueId {
    b.add_const(name, Tensor::from_f64s(dt, vec![], &[v]))
}

fn bin(
    b: &mut GraphBuilder,
    name: &str,
    op: BinaryOp,
    x: ValueId,
    y: ValueId,
) -> NodeResult<ValueId> {
    b.emit1(name, Op::Binary(op), vec![x, y])
}

fn reshape(b: &mut GraphBuilder, name: &str, x: ValueId, shape: Vec<Dim>) -> NodeResult<ValueId> {
    b.emit1(name, Op::Reshape(Reshape { shape }), vec![x])
}

fn cast(b: &mut GraphBuilder, name: &str, x: ValueId, to: DType) -> NodeResult<ValueId> {
    if b.g.ty(x).dtype == to {
        return Ok(x);
    }
    b.emit1(name, Op::Cast(Cast { to }), vec![x])
}

/// `atan2(y, x)`, the angle of `(x, y)` in (−π, π]: `atan(y / x)`, plus π (y ≥ 0) or −π (y < 0)
/// where x < 0; `y / 0` is ±∞ so x = 0 gives ±π/2, and (0, 0), whose quotient is NaN, gives 0
/// as in TF.
pub fn atan2(b: &mut GraphBuilder, name: &str, y: ValueId, x: ValueId) -> NodeResult<ValueId> {
    let dt = b.g.ty(x).dtype;
    let zero = scalar(b, &format!("{name}/zero"), dt, 0.0);
    let q = bin(b, &format!("{name}/div"), BinaryOp::Div, y, x)?;
    let q = b.emit1(&format!("{name}/atan"), Op::Unary(UnaryOp::Atan), vec![q])?;
    let (pi, neg_pi) = (
        scalar(b, &format!("{name}/pi"), dt, PI),
        scalar(b, &format!("{name}/minus_pi"), dt, -PI),
    );
    let y_neg = bin(b, &format!("{name}/y_neg"), BinaryOp::Less, y, zero)?;
    let x_neg = bin(b, &format!("{name}/x_neg"), BinaryOp::Less, x, zero)?;
    let turn = b.emit1(&format!("{name}/turn"), Op::Where, vec![y_neg, neg_pi, pi])?;
    let adj = b.emit1(
        &format!("{name}/adjust"),
        Op::Where,
        vec![x_neg, turn, zero],
    )?;
    let angle = bin(b, &format!("{name}/angle"), BinaryOp::Add, q, adj)?;
    let x0 = bin(b, &format!("{name}/x_zero"), BinaryOp::Equal, x, zero)?;
    let y0 = bin(b, &format!("{name}/y_zero"), BinaryOp::Equal, y, zero)?;
    let origin = bin(b, &format!("{name}/origin"), BinaryOp::And, x0, y0)?;
    b.emit1(name, Op::Where, vec![origin, zero, angle])
}

/// Bucketize: the number of `boundaries` (sorted) at most `x`, int32 — TF's
/// `upper_bound(boundaries, x)`. A `[…, K]` comparison summed over K.
pub fn bucketize(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    bounds: &[f32],
) -> NodeResult<ValueId> {
    if bounds.is_empty() || bounds.len() > 1 << 16 {
        return unsupported(format!("Bucketize with {} boundaries", bounds.len()));
    }
    if bounds.windows(2).any(|w| w[0] > w[1]) {
        return unsupported("Bucketize boundaries that are not sorted");
    }
    let xf = cast(b, &format!("{name}/float"), x, DType::F32)?;
    let mut shape = b.g.ty(xf).shape.clone();
    let rank = shape.len();
    shape.push(Dim::Fixed(1));
    let col = reshape(b, &format!("{name}/column"), xf, shape)?;
    let k = b.add_const(
        &format!("{name}/boundaries"),
        Tensor::from_f32(vec![bounds.len()], bounds),
    );
    let ge = bin(
        b,
        &format!("{name}/at_least"),
        BinaryOp::GreaterOrEqual,
        col,
        k,
    )?;
    let ones = cast(b, &format!("{name}/count"), ge, DType::I32)?;
    let r = Reduce {
        kind: ReduceKind::Sum,
        axes: vec![rank],
        keep_dims: false,
    };
    b.emit1(name, Op::Reduce(r), vec![ones])
}

/// ReverseSequence: along `seq_axis`, the first `lens[i]` elements of batch row i (along
/// `batch_axis`) reversed, the rest kept. A GatherElements with indices
/// `t < len ? len − 1 − t : t`, made `[B, T]`, laid onto the input's axes and expanded.
pub fn reverse_sequence(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    lens: ValueId,
    seq_axis: usize,
    batch_axis: usize,
) -> NodeResult<ValueId> {
    let shape = b.g.ty(x).shape.clone();
    let rank = shape.len();
    if seq_axis >= rank || batch_axis >= rank || seq_axis == batch_axis {
        return unsupported(format!(
            "ReverseSequence axes {seq_axis} and {batch_axis} of a rank-{rank} input"
        ));
    }
    let Some(t) = shape[seq_axis].fixed() else {
        return unsupported("ReverseSequence over a sequence axis known only at run time");
    };
    let t = usize::try_from(t).or_else(|_| unsupported("sequence too long"))?;
    let steps: Vec<i64> = (0..t as i64).collect();
    let steps = b.add_const(
        &format!("{name}/steps"),
        Tensor::from_i64(vec![1, t], &steps),
    );
    let len = cast(b, &format!("{name}/lengths"), lens, DType::I64)?;
    let batch = shape[batch_axis].clone();
    let len = reshape(
        b,
        &format!("{name}/lengths_column"),
        len,
        vec![batch.clone(), Dim::Fixed(1)],
    )?;
    let one = scalar(b, &format!("{name}/one"), DType::I64, 1.0);
    let last = bin(b, &format!("{name}/last"), BinaryOp::Sub, len, one)?;
    let back = bin(b, &format!("{name}/reversed"), BinaryOp::Sub, last, steps)?;
    let inside = bin(b, &format!("{name}/inside"), BinaryOp::Less, steps, len)?;
    let mut idx = b.emit1(
        &format!("{name}/indices"),
        Op::Where,
        vec![inside, back, steps],
    )?;
    if batch_axis > seq_axis {
        let t = Op::Transpose(Transpose { perm: vec![1, 0] });
        idx = b.emit1(&format!("{name}/indices_t"), t, vec![idx])?;
    }
    let mut laid = vec![Dim::Fixed(1); rank];
    laid[batch_axis] = batch;
    laid[seq_axis] = Dim::Fixed(t as u64);
    let idx = reshape(b, &format!("{name}/indices_laid"), idx, laid)?;
    let idx = b.emit1(
        &format!("{name}/indices_full"),
        Op::Expand(Expand { shape }),
        vec![idx],
    )?;
    let g = Op::GatherElements(Gather { axis: seq_axis });
    b.emit1(name, g, vec![x, idx])
}

/// SparseToDense: `default` everywhere in `out_shape`, `values` (one per index, or one for all)
/// at `indices` (`[N, rank]`; `[N]` into a vector; a scalar for one element). Later duplicates
/// win, as in LiteRT (TF itself rejects duplicates).
pub fn sparse_to_dense(
    b: &mut GraphBuilder,
    name: &str,
    indices: ValueId,
    out_shape: &[i64],
    values: ValueId,
    default: ValueId,
) -> NodeResult<ValueId> {
    let out_shape: Vec<usize> = out_shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .or_else(|_| unsupported(format!("output_shape {out_shape:?}")))?;
    let out_shape = out_shape.as_slice();
    let it = b.g.ty(indices).clone();
    let idx = cast(b, &format!("{name}/indices64"), indices, DType::I64)?;
    let (n, idx) = match it.rank() {
        0 => (
            Dim::Fixed(1),
            reshape(b, &format!("{name}/index"), idx, vec![Dim::Fixed(1); 2])?,
        ),
        1 if out_shape.len() == 1 => {
            let n = it.shape[0].clone();
            (
                n.clone(),
                reshape(b, &format!("{name}/index"), idx, vec![n, Dim::Fixed(1)])?,
            )
        }
        2 => (it.shape[0].clone(), idx),
        r => {
            return unsupported(format!(
                "SparseToDense indices of rank {r} for a rank-{} output",
                out_shape.len()
            ))
        }
    };
    let dense: Vec<Dim> = out_shape.iter().map(|&d| Dim::Fixed(d as u64)).collect();
    let fill = reshape(b, &format!("{name}/default"), default, vec![])?;
    let base = b.emit1(
        &format!("{name}/fill"),
        Op::Expand(Expand { shape: dense }),
        vec![fill],
    )?;
    let vals = match b.g.ty(values).rank() {
        0 => b.emit1(
            &format!("{name}/values"),
            Op::Expand(Expand { shape: vec![n] }),
            vec![values],
        )?,
        _ => values,
    };
    let s = Op::ScatterNd(Scatter {
        reduction: ScatterReduction::None,
    });
    b.emit1(name, s, vec![base, idx, vals])
}

/// DynamicUpdateSlice (XLA's, TFLite DYNAMIC_UPDATE_SLICE): `x` with `upd` written from
/// `start`, each start index clamped to `[0, x_dim − upd_dim]` so the update fits (what XLA and
/// LiteRT do). ScatterND at the update's coordinates (a constant grid) plus the clamped start.
pub fn dynamic_update_slice(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    upd: ValueId,
    start: ValueId,
) -> NodeResult<ValueId> {
    let fixed = |v: ValueId| crate::ir::shape_fixed(&b.g.ty(v).shape);
    let (Some(xs), Some(us)) = (fixed(x), fixed(upd)) else {
        return unsupported("DynamicUpdateSlice of shapes known only at run time");
    };
    let r = xs.len();
    if r == 0 || us.len() != r || us.iter().zip(&xs).any(|(u, d)| u > d) {
        return unsupported(format!("DynamicUpdateSlice of {us:?} into {xs:?}"));
    }
    let n: usize = us.iter().product();
    if n.saturating_mul(r) > 1 << 22 {
        return unsupported(format!(
            "DynamicUpdateSlice of {n} elements (index grid too large)"
        ));
    }
    let mut grid = Vec::with_capacity(n * r);
    let mut at = vec![0usize; r];
    for _ in 0..n {
        grid.extend(at.iter().map(|&i| i as i64));
        for d in (0..r).rev() {
            at[d] += 1;
            if at[d] < us[d] {
                break;
            }
            at[d] = 0;
        }
    }
    let mut grid_shape = us.clone();
    grid_shape.push(r);
    let grid = b.add_const(&format!("{name}/grid"), Tensor::from_i64(grid_shape, &grid));
    let room: Vec<i64> = xs.iter().zip(&us).map(|(d, u)| (d - u) as i64).collect();
    let room = b.add_const(&format!("{name}/room"), Tensor::from_i64(vec![r], &room));
    let zero = scalar(b, &format!("{name}/zero"), DType::I64, 0.0);
    let st = cast(b, &format!("{name}/start64"), start, DType::I64)?;
    let st = bin(b, &format!("{name}/start_max"), BinaryOp::Min, st, room)?;
    let st = bin(b, &format!("{name}/start"), BinaryOp::Max, st, zero)?;
    let mut lay = vec![Dim::Fixed(1); r];
    lay.push(Dim::Fixed(r as u64));
    let st = reshape(b, &format!("{name}/start_laid"), st, lay)?;
    let idx = bin(b, &format!("{name}/indices"), BinaryOp::Add, grid, st)?;
    let s = Op::ScatterNd(Scatter {
        reduction: ScatterReduction::None,
    });
    b.emit1(name, s, vec![x, idx, upd])
}

/// TF's FakeQuant `Nudge` (`fake_quant_ops_functor.h`, LiteRT's FAKE_QUANT the same), in f32:
/// the range moved so that 0.0 is a code. Returns `(nudged_min, nudged_max, scale)`.
pub fn fake_quant_nudge(min: f32, max: f32, num_bits: u32, narrow: bool) -> (f32, f32, f32) {
    let qmin = if narrow { 1.0f32 } else { 0.0 };
    let qmax = ((1u32 << num_bits) - 1) as f32;
    let scale = (max - min) / (qmax - qmin);
    let zp_from_min = qmin - min / scale;
    let zp = if zp_from_min < qmin {
        qmin
    } else if zp_from_min > qmax {
        qmax
    } else {
        zp_from_min.round()
    };
    ((qmin - zp) * scale, (qmax - zp) * scale, scale)
}

/// FakeQuantWithMinMaxArgs / FAKE_QUANT: `x` clamped to the nudged range and rounded to its
/// grid, `floor((c − nmin) · (1 / scale) + 0.5) · scale + nmin`, as TF's kernel computes it.
pub fn fake_quant(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    (min, max): (f32, f32),
    num_bits: i32,
    narrow: bool,
) -> NodeResult<ValueId> {
    let bits = u32::try_from(num_bits)
        .ok()
        .filter(|n| (2..=16).contains(n));
    let Some(bits) = bits.filter(|_| min < max && min.is_finite() && max.is_finite()) else {
        return unsupported(format!(
            "FakeQuant with num_bits {num_bits} over [{min}, {max}] (TF takes 2 to 16 bits, min < max)"
        ));
    };
    if b.g.ty(x).dtype != DType::F32 {
        return unsupported("FakeQuant of a non-float32 input");
    }
    let (nmin, nmax, scale) = fake_quant_nudge(min, max, bits, narrow);
    let k = |b: &mut GraphBuilder, tag: &str, v: f32| {
        b.add_const(&format!("{name}/{tag}"), Tensor::from_f32(vec![], &[v]))
    };
    let (lo, hi, inv, half, step) = (
        k(b, "nudged_min", nmin),
        k(b, "nudged_max", nmax),
        k(b, "inv_scale", 1.0 / scale),
        k(b, "half", 0.5),
        k(b, "scale", scale),
    );
    let c = bin(b, &format!("{name}/below_max"), BinaryOp::Min, x, hi)?;
    let c = bin(b, &format!("{name}/clamped"), BinaryOp::Max, c, lo)?;
    let c = bin(b, &format!("{name}/shifted"), BinaryOp::Sub, c, lo)?;
    let c = bin(b, &format!("{name}/codes"), BinaryOp::Mul, c, inv)?;
    let c = bin(b, &format!("{name}/codes_half"), BinaryOp::Add, c, half)?;
    let c = b.emit1(
        &format!("{name}/rounded"),
        Op::Unary(UnaryOp::Floor),
        vec![c],
    )?;
    let c = bin(b, &format!("{name}/scaled"), BinaryOp::Mul, c, step)?;
    bin(b, name, BinaryOp::Add, c, lo)
}
