//! Ops whose shape-like operands — a target shape, repeats, slice bounds, pads, reduction axes,
//! `k`, resize sizes — are computed by the graph instead of known when converting: every operand
//! is an input, with the ONNX operator's semantics (Reshape-14, Expand-13, Tile-13, Slice-13,
//! Pad-18, Reduce*-18, TopK-11, Resize-13, CumSum-14, Trilu-14, OneHot-11).
//!
//! Readers build one only where the operand is not a constant and its contents were not tracked
//! (a graph input, data-dependent arithmetic); `ir::fold` turns it back into the static op as soon
//! as its operands are constants, so static models never contain one. Output dims that depend on
//! operand values are unknown (fresh symbols), the rank is always known.

use super::{
    unknown_dim, Expand, Inputs, Pad, PadMode, ReduceKind, Reshape, Resize, Slice, SliceAxis, Tile,
};
use crate::ir::{DType, Dim, Op, Shape, TensorType};

#[derive(Clone, Debug, PartialEq)]
pub enum Dynamic {
    /// inputs: x, shape (1-D integer; 0 copies the input's dim unless `allowzero`, -1 infers)
    Reshape { allowzero: bool },
    /// inputs: x, shape (1-D integer): bidirectional broadcast.
    Expand,
    /// inputs: x, repeats (1-D integer, one per axis)
    Tile,
    /// inputs: x, starts, ends, axes, steps (1-D integers of one length; clamped, negative
    /// indices count from the end, negative steps walk backwards)
    Slice,
    /// inputs: x, pads (1-D integer: every begin, then every end, for `axes`), value (scalar
    /// of x's type; used in constant mode), axes (1-D integer)
    Pad { mode: PadMode },
    /// inputs: x, axes (1-D integer; empty reduces every axis, or none with
    /// `noop_with_empty_axes`)
    Reduce {
        kind: ReduceKind,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
    /// inputs: x, k (1 integer); outputs: values, indices (i64)
    TopK {
        axis: usize,
        largest: bool,
        sorted: bool,
    },
    /// inputs: x, sizes (1-D integer) when `by_sizes`, else scales (1-D float); one per axis.
    /// `resize.scales` is empty and `resize.sizes` is `None`.
    Resize { resize: Resize, by_sizes: bool },
    /// inputs: x, axis (integer scalar)
    CumSum { exclusive: bool, reverse: bool },
    /// inputs: x, k (integer scalar)
    Trilu { upper: bool },
    /// inputs: indices, depth (scalar), values (`[off, on]`); the new axis at `axis`
    /// (negative counts from the end of the output).
    OneHot { axis: i64 },
    /// inputs: x, sizes (1-D integer, one per output)
    Split { axis: usize },
    /// inputs: x, axes (1-D integer) of size-1 dims to drop
    Squeeze,
    /// inputs: x, axes (1-D integer) of the output where size-1 dims are inserted
    Unsqueeze,
    /// inputs: boxes, scores, max_output_boxes_per_class (integer), iou_threshold,
    /// score_threshold (floats; -inf keeps every score); output as `Op::NonMaxSuppression`.
    NonMaxSuppression { center_point_box: bool },
}

impl Dynamic {
    pub fn name(&self) -> &'static str {
        match self {
            Dynamic::Reshape { .. } => "DynamicReshape",
            Dynamic::Expand => "DynamicExpand",
            Dynamic::Tile => "DynamicTile",
            Dynamic::Slice => "DynamicSlice",
            Dynamic::Pad { .. } => "DynamicPad",
            Dynamic::Reduce { .. } => "DynamicReduce",
            Dynamic::TopK { .. } => "DynamicTopK",
            Dynamic::Resize { .. } => "DynamicResize",
            Dynamic::CumSum { .. } => "DynamicCumSum",
            Dynamic::Trilu { .. } => "DynamicTrilu",
            Dynamic::OneHot { .. } => "DynamicOneHot",
            Dynamic::Split { .. } => "DynamicSplit",
            Dynamic::Squeeze => "DynamicSqueeze",
            Dynamic::Unsqueeze => "DynamicUnsqueeze",
            Dynamic::NonMaxSuppression { .. } => "DynamicNonMaxSuppression",
        }
    }

    /// What the operand inputs hold, for messages ("target shape computed at run time").
    pub fn operand(&self) -> &'static str {
        match self {
            Dynamic::Reshape { .. } | Dynamic::Expand => "target shape",
            Dynamic::Tile => "repeats",
            Dynamic::Slice => "slice bounds",
            Dynamic::Pad { .. } => "pads",
            Dynamic::Reduce { .. } => "reduction axes",
            Dynamic::TopK { .. } => "k",
            Dynamic::Resize { by_sizes: true, .. } => "resize sizes",
            Dynamic::Resize {
                by_sizes: false, ..
            } => "resize scales",
            Dynamic::CumSum { .. } => "CumSum axis",
            Dynamic::Trilu { .. } => "Trilu k",
            Dynamic::OneHot { .. } => "OneHot depth",
            Dynamic::Split { .. } => "split sizes",
            Dynamic::Squeeze | Dynamic::Unsqueeze => "axes",
            Dynamic::NonMaxSuppression { .. } => "NonMaxSuppression limits",
        }
    }
}

impl Dynamic {
    /// The static op this one is once its operands are constants: the op and which of this
    /// node's inputs it keeps. `None` while an operand is unknown, or when the static op cannot
    /// state the result exactly (a -1 that does not divide a symbolic size); the node then stays.
    pub fn to_static(&self, inputs: &Inputs) -> Option<(Op, Vec<usize>)> {
        let x = inputs.ty(0).ok()?;
        let rank = x.rank();
        let ints = |i: usize| const_ints(inputs, i);
        let axis_of = |a: i64, rank: usize| super::norm_axis(a, rank).ok();
        Some(match self {
            Dynamic::Reshape { allowzero } => {
                let shape = resolve_reshape(&x.shape, &ints(1)?, *allowzero)?;
                (Op::Reshape(Reshape { shape }), vec![0])
            }
            Dynamic::Expand => {
                let shape = ints(1)?
                    .into_iter()
                    .map(|n| u64::try_from(n).ok().map(Dim::Fixed))
                    .collect::<Option<Shape>>()?;
                (Op::Expand(Expand { shape }), vec![0])
            }
            Dynamic::Tile => {
                let repeats = ints(1)?
                    .into_iter()
                    .map(|n| usize::try_from(n).ok())
                    .collect::<Option<Vec<_>>>()?;
                (Op::Tile(Tile { repeats }), vec![0])
            }
            Dynamic::Slice => {
                let (starts, ends, axes, steps) = (ints(1)?, ints(2)?, ints(3)?, ints(4)?);
                let mut out = Vec::with_capacity(axes.len());
                for (i, &a) in axes.iter().enumerate() {
                    let step = *steps.get(i)?;
                    if step == 0 {
                        return None;
                    }
                    out.push(SliceAxis {
                        axis: axis_of(a, rank)?,
                        start: *starts.get(i)?,
                        end: *ends.get(i)?,
                        step,
                    });
                }
                (Op::Slice(Slice { axes: out }), vec![0])
            }
            Dynamic::Pad { mode } => {
                let (p, axes) = (ints(1)?, ints(3)?);
                let value = inputs.consts.get(2).copied().flatten()?.to_f64s();
                let mut pads = vec![(0, 0); rank];
                for (i, &a) in axes.iter().enumerate() {
                    pads[axis_of(a, rank)?] = (*p.get(i)?, *p.get(i + axes.len())?);
                }
                let value = value.first().copied().unwrap_or(0.0);
                (
                    Op::Pad(Pad {
                        mode: *mode,
                        pads,
                        value,
                    }),
                    vec![0],
                )
            }
            Dynamic::Reduce {
                kind,
                keep_dims,
                noop_with_empty_axes,
            } => {
                let axes = ints(1)?;
                if axes.is_empty() && *noop_with_empty_axes {
                    let shape = x.shape.clone();
                    return Some((Op::Reshape(Reshape { shape }), vec![0]));
                }
                let mut axes = match axes.is_empty() {
                    true => (0..rank).collect(),
                    false => super::norm_axes(&axes, rank).ok()?,
                };
                axes.sort_unstable();
                axes.dedup();
                if axes.is_empty() {
                    return None;
                }
                let r = super::Reduce {
                    kind: *kind,
                    axes,
                    keep_dims: *keep_dims,
                };
                (Op::Reduce(r), vec![0])
            }
            Dynamic::TopK {
                axis,
                largest,
                sorted,
            } => {
                let k = usize::try_from(*ints(1)?.first()?).ok()?;
                if x.shape[*axis].fixed().is_some_and(|n| k as u64 > n) {
                    return None;
                }
                let t = super::TopK {
                    axis: *axis,
                    k,
                    largest: *largest,
                    sorted: *sorted,
                };
                (Op::TopK(t), vec![0])
            }
            Dynamic::Resize { resize, by_sizes } => {
                let mut r = resize.clone();
                if *by_sizes {
                    let sizes = ints(1)?
                        .into_iter()
                        .map(|n| u64::try_from(n).ok().map(Dim::Fixed));
                    r.sizes = Some(sizes.collect::<Option<Shape>>()?);
                } else {
                    let scales = inputs.consts.get(1).copied().flatten()?.to_f64s();
                    r.scales = scales.into_iter().map(|s| s as f32).collect();
                }
                (Op::Resize(r), vec![0])
            }
            Dynamic::CumSum { exclusive, reverse } => {
                let c = super::CumSum {
                    axis: axis_of(*ints(1)?.first()?, rank)?,
                    exclusive: *exclusive,
                    reverse: *reverse,
                };
                (Op::CumSum(c), vec![0])
            }
            Dynamic::Trilu { upper } => {
                let k = *ints(1)?.first()?;
                (Op::Trilu(super::Trilu { upper: *upper, k }), vec![0])
            }
            Dynamic::OneHot { axis } => {
                let depth = inputs.consts.get(1).copied().flatten()?.to_f64s();
                let depth = *depth.first()?;
                if depth < 1.0 {
                    return None;
                }
                let o = super::OneHot {
                    axis: *axis,
                    depth: depth as usize,
                };
                (Op::OneHot(o), vec![0, 2])
            }
            Dynamic::Split { axis } => {
                let sizes = ints(1)?
                    .into_iter()
                    .map(|n| usize::try_from(n).ok())
                    .collect::<Option<Vec<_>>>()?;
                (Op::Split(super::Split { axis: *axis, sizes }), vec![0])
            }
            Dynamic::Squeeze | Dynamic::Unsqueeze => {
                let squeeze = matches!(self, Dynamic::Squeeze);
                let shape = squeezed(&x.shape, &ints(1)?, squeeze)?;
                (Op::Reshape(Reshape { shape }), vec![0])
            }
            Dynamic::NonMaxSuppression { center_point_box } => {
                let floats =
                    |i: usize| inputs.consts.get(i).copied().flatten().map(|t| t.to_f64s());
                let score = *floats(4)?.first()?;
                let n = super::Nms {
                    center_point_box: *center_point_box,
                    max_output_boxes_per_class: *ints(2)?.first()?,
                    iou_threshold: *floats(3)?.first()? as f32,
                    score_threshold: (score != f64::NEG_INFINITY).then_some(score as f32),
                };
                (Op::NonMaxSuppression(n), vec![0, 1])
            }
        })
    }
}

/// The shape after dropping (`squeeze`) or inserting size-1 dims at `axes`; `None` when an axis
/// is out of range or a dropped dim is not 1.
fn squeezed(shape: &[Dim], axes: &[i64], squeeze: bool) -> Option<Shape> {
    if squeeze {
        let axes = super::norm_axes(axes, shape.len()).ok()?;
        if axes.iter().any(|&a| shape[a] != Dim::Fixed(1)) {
            return None;
        }
        let kept = shape.iter().enumerate().filter(|(i, _)| !axes.contains(i));
        return Some(kept.map(|(_, d)| d.clone()).collect());
    }
    let rank = shape.len() + axes.len();
    let axes = super::norm_axes(axes, rank).ok()?;
    let mut it = shape.iter();
    (0..rank)
        .map(|i| match axes.contains(&i) {
            true => Some(Dim::Fixed(1)),
            false => it.next().cloned(),
        })
        .collect()
}

/// ONNX Reshape's target against the input shape: 0 copies the input's dim (unless
/// `allowzero`), one -1 takes what the element count leaves.
pub fn resolve_reshape(input: &[Dim], target: &[i64], allowzero: bool) -> Option<Shape> {
    let mut out: Vec<Option<Dim>> = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &n) in target.iter().enumerate() {
        out.push(match n {
            0 if !allowzero => Some(input.get(i)?.clone()),
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                None
            }
            n => Some(Dim::Fixed(u64::try_from(n).ok()?)),
        });
    }
    if let Some(at) = infer_at {
        let known: Vec<Dim> = out.iter().flatten().cloned().collect();
        out[at] = Some(Dim::product(input).divide(&Dim::product(&known))?);
    }
    out.into_iter().collect()
}

/// The length of a 1-D integer operand, which fixes the output rank.
fn list_len(inputs: &Inputs, i: usize, what: &str) -> Result<usize, String> {
    let t = inputs.ty(i)?;
    if !t.dtype.is_int() || t.rank() != 1 {
        return Err(format!("{what} must be a 1-D integer tensor, is {t}"));
    }
    let n = t.shape[0]
        .fixed()
        .ok_or_else(|| format!("{what} has a length known only at run time"))?;
    // These lists hold one entry per axis (or per output of a split): a declared length past
    // this is a lying type, and would size the inferred shape (found by the onnx fuzz target:
    // an Expand whose shape operand declared 2^59 entries).
    if n > MAX_LIST {
        return Err(format!("{what} declares {n} entries (at most {MAX_LIST})"));
    }
    Ok(n as usize)
}

/// The most entries a per-axis operand list may declare.
const MAX_LIST: u64 = 1 << 16;

fn scalar_int(inputs: &Inputs, i: usize, what: &str) -> Result<(), String> {
    let t = inputs.ty(i)?;
    let elements = t.shape.iter().map(Dim::fixed).product::<Option<u64>>();
    if !t.dtype.is_int() || elements != Some(1) {
        return Err(format!("{what} must be one integer, is {t}"));
    }
    Ok(())
}

fn unknown(rank: usize) -> Shape {
    (0..rank).map(|_| unknown_dim()).collect()
}

/// Constant integer contents of input `i`, when inference can see them.
fn const_ints(inputs: &Inputs, i: usize) -> Option<Vec<i64>> {
    inputs.consts.get(i).copied().flatten()?.to_i64s()
}

pub fn infer_dynamic(d: &Dynamic, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    let x = inputs.ty(0)?;
    let same_dtype = |shape: Shape| vec![TensorType::new(x.dtype, shape)];
    Ok(match d {
        Dynamic::Reshape { .. } => {
            inputs.expect_count(2, 2)?;
            same_dtype(unknown(list_len(inputs, 1, "the target shape")?))
        }
        Dynamic::Expand => {
            inputs.expect_count(2, 2)?;
            let n = list_len(inputs, 1, "the target shape")?;
            same_dtype(unknown(n.max(x.rank())))
        }
        Dynamic::Tile => {
            inputs.expect_count(2, 2)?;
            if list_len(inputs, 1, "repeats")? != x.rank() {
                return Err(format!("repeats for rank {}", x.rank()));
            }
            same_dtype(unknown(x.rank()))
        }
        Dynamic::Slice => {
            inputs.expect_count(5, 5)?;
            let n = list_len(inputs, 1, "starts")?;
            for (i, what) in [(2, "ends"), (3, "axes"), (4, "steps")] {
                if list_len(inputs, i, what)? != n {
                    return Err(format!("{what} and starts differ in length"));
                }
            }
            same_dtype(touched_axes_unknown(&x.shape, const_ints(inputs, 3))?)
        }
        Dynamic::Pad { .. } => {
            inputs.expect_count(4, 4)?;
            let n = list_len(inputs, 3, "axes")?;
            if list_len(inputs, 1, "pads")? != 2 * n {
                return Err("pads must hold a begin and an end for every axis".into());
            }
            same_dtype(touched_axes_unknown(&x.shape, const_ints(inputs, 3))?)
        }
        Dynamic::Reduce {
            keep_dims,
            noop_with_empty_axes,
            ..
        } => {
            inputs.expect_count(2, 2)?;
            let n = list_len(inputs, 1, "axes")?;
            let rank = match (n, keep_dims, noop_with_empty_axes) {
                (_, true, _) | (0, _, true) => x.rank(),
                (0, false, false) => 0,
                (n, false, _) if n <= x.rank() => x.rank() - n,
                (n, false, _) => return Err(format!("{n} axes for rank {}", x.rank())),
            };
            same_dtype(unknown(rank))
        }
        Dynamic::TopK { axis, .. } => {
            inputs.expect_count(2, 2)?;
            if list_len(inputs, 1, "k")? != 1 {
                return Err("k must hold one value".into());
            }
            let mut s = x.shape.clone();
            *s.get_mut(*axis)
                .ok_or_else(|| format!("TopK axis {axis} out of rank {}", x.rank()))? =
                unknown_dim();
            vec![
                TensorType::new(x.dtype, s.clone()),
                TensorType::new(DType::I64, s),
            ]
        }
        Dynamic::Resize { by_sizes, .. } => {
            inputs.expect_count(2, 2)?;
            let what = if *by_sizes { "sizes" } else { "scales" };
            let t = inputs.ty(1)?;
            if t.rank() != 1 || t.shape[0].fixed() != Some(x.rank() as u64) {
                return Err(format!("{what} {t} for rank {}", x.rank()));
            }
            same_dtype(unknown(x.rank()))
        }
        Dynamic::CumSum { .. } => {
            inputs.expect_count(2, 2)?;
            scalar_int(inputs, 1, "the CumSum axis")?;
            same_dtype(x.shape.clone())
        }
        Dynamic::Trilu { .. } => {
            inputs.expect_count(2, 2)?;
            scalar_int(inputs, 1, "Trilu k")?;
            same_dtype(x.shape.clone())
        }
        Dynamic::OneHot { axis } => {
            inputs.expect_count(3, 3)?;
            let values = inputs.ty(2)?;
            let rank = x.rank() + 1;
            let at = super::norm_axis(*axis, rank)?;
            let mut s = x.shape.clone();
            s.insert(at, unknown_dim());
            vec![TensorType::new(values.dtype, s)]
        }
        Dynamic::Split { axis } => {
            inputs.expect_count(2, 2)?;
            let n = list_len(inputs, 1, "split sizes")?;
            let mut s = x.shape.clone();
            *s.get_mut(*axis)
                .ok_or_else(|| format!("Split axis {axis} out of rank {}", x.rank()))? =
                unknown_dim();
            vec![TensorType::new(x.dtype, s); n]
        }
        Dynamic::Squeeze => {
            inputs.expect_count(2, 2)?;
            let n = list_len(inputs, 1, "axes")?;
            if n > x.rank() {
                return Err(format!("{n} axes for rank {}", x.rank()));
            }
            same_dtype(unknown(x.rank() - n))
        }
        Dynamic::Unsqueeze => {
            inputs.expect_count(2, 2)?;
            same_dtype(unknown(x.rank() + list_len(inputs, 1, "axes")?))
        }
        Dynamic::NonMaxSuppression { .. } => {
            inputs.expect_count(5, 5)?;
            vec![TensorType::new(
                DType::I64,
                vec![unknown_dim(), Dim::Fixed(3)],
            )]
        }
    })
}

/// The input shape with the dims of `axes` unknown (all of them when the axes are not known).
fn touched_axes_unknown(shape: &[Dim], axes: Option<Vec<i64>>) -> Result<Shape, String> {
    let Some(axes) = axes else {
        return Ok(unknown(shape.len()));
    };
    let mut s = shape.to_vec();
    for a in axes {
        s[super::norm_axis(a, shape.len())?] = unknown_dim();
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::is_unknown;
    use crate::ir::{fixed_shape, Tensor};

    fn ty(dtype: DType, dims: &[u64]) -> TensorType {
        TensorType::new(
            dtype,
            fixed_shape(&dims.iter().map(|&d| d as usize).collect::<Vec<_>>()),
        )
    }

    #[test]
    fn rank_comes_from_the_operand_length_and_dims_stay_unknown() {
        let types = [ty(DType::F32, &[2, 3, 4]), ty(DType::I64, &[2])];
        let out = infer_dynamic(
            &Dynamic::Reshape { allowzero: false },
            &Inputs::of_types(&types),
        )
        .unwrap();
        assert_eq!(out[0].rank(), 2);
        assert!(out[0].shape.iter().all(is_unknown));
    }

    #[test]
    fn reductions_keep_or_drop_the_axes_count() {
        let types = [ty(DType::F32, &[2, 3, 4]), ty(DType::I64, &[2])];
        let r = |keep_dims, noop| Dynamic::Reduce {
            kind: ReduceKind::Sum,
            keep_dims,
            noop_with_empty_axes: noop,
        };
        let rank = |d: &Dynamic, t: &[TensorType]| {
            infer_dynamic(d, &Inputs::of_types(t)).unwrap()[0].rank()
        };
        assert_eq!(rank(&r(true, false), &types), 3);
        assert_eq!(rank(&r(false, false), &types), 1);
        let empty = [ty(DType::F32, &[2, 3, 4]), ty(DType::I64, &[0])];
        assert_eq!(rank(&r(false, false), &empty), 0);
        assert_eq!(rank(&r(false, true), &empty), 3);
    }

    #[test]
    fn a_slice_with_known_axes_keeps_the_other_dims() {
        let types = [
            ty(DType::F32, &[2, 3, 4]),
            ty(DType::I64, &[1]),
            ty(DType::I64, &[1]),
            ty(DType::I64, &[1]),
            ty(DType::I64, &[1]),
        ];
        let axes = Tensor::from_i64(vec![1], &[-1]);
        let mut inputs = Inputs::of_types(&types);
        inputs.consts[3] = Some(&axes);
        let out = infer_dynamic(&Dynamic::Slice, &inputs).unwrap();
        assert_eq!(out[0].shape[..2], fixed_shape(&[2, 3])[..]);
        assert!(is_unknown(&out[0].shape[2]));
    }

    #[test]
    fn an_operand_of_run_time_length_is_refused() {
        let types = [
            ty(DType::F32, &[2, 3]),
            TensorType::new(DType::I64, vec![Dim::Sym("n".into())]),
        ];
        let e = infer_dynamic(&Dynamic::Expand, &Inputs::of_types(&types)).unwrap_err();
        assert!(e.contains("run time"), "{e}");
    }
}
