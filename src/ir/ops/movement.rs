//! Data movement: Reshape (target shape resolved by the reader, symbols kept), Transpose,
//! Concat, Split, Slice (ONNX Slice-13 semantics: clamped, negative steps), Pad (ONNX Pad-13,
//! negative pads crop), Tile, Expand (bidirectional broadcast), DepthToSpace (DCR/CRD),
//! SpaceToDepth, Resize (ONNX Resize-13/18/19 attributes) and GridSample (ONNX GridSample-20:
//! any number of spatial axes, modes named as in opset 20; GridSample-16 is its 2-D case).

use super::{broadcast, norm_axis, unknown_dim, Inputs};
use crate::ir::{Dim, Layout, Shape, TensorType};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reshape {
    /// The output shape; symbols name the dimensions carried over from the input.
    pub shape: Shape,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transpose {
    pub perm: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Concat {
    pub axis: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub axis: usize,
    pub sizes: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceAxis {
    pub axis: usize,
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub axes: Vec<SliceAxis>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pad {
    pub mode: PadMode,
    /// `(begin, end)` for every axis; negative values crop.
    pub pads: Vec<(i64, i64)>,
    pub value: f64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tile {
    pub repeats: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expand {
    /// Target shape; broadcast with the input's (a 1 keeps the input's size).
    pub shape: Shape,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DepthToSpaceMode {
    /// depth-column-row (ONNX default, TF).
    Dcr,
    /// column-row-depth (PyTorch pixel_shuffle).
    Crd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthToSpace {
    pub block: usize,
    pub mode: DepthToSpaceMode,
    pub layout: Layout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaceToDepth {
    pub block: usize,
    pub layout: Layout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResizeMode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoordTransform {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NearestRounding {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Resize {
    pub mode: ResizeMode,
    pub coord: CoordTransform,
    pub nearest: NearestRounding,
    pub cubic_coeff_a: f32,
    pub exclude_outside: bool,
    pub extrapolation_value: f32,
    pub layout: Layout,
    /// One scale per axis, used when `sizes` is `None`.
    pub scales: Vec<f32>,
    pub sizes: Option<Shape>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GridPadding {
    Zeros,
    Border,
    Reflection,
}

/// inputs: data `[N, C, D1..Dr]` (in `layout`), grid `[N, D1_out..Dr_out, r]` with normalized
/// coordinates in `[-1, 1]`, innermost first (x, y, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridSample {
    /// Linear is bilinear/trilinear, Cubic bicubic (ONNX < 20 names).
    pub mode: ResizeMode,
    pub padding: GridPadding,
    pub align_corners: bool,
    pub layout: Layout,
}

pub fn infer_reshape(r: &Reshape, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    if let (Some(a), Some(b)) = (super::dim_product(&x.shape), super::dim_product(&r.shape)) {
        if a != b {
            return Err(format!(
                "cannot reshape {} elements {} into {}",
                a,
                crate::ir::shape_text(&x.shape),
                crate::ir::shape_text(&r.shape)
            ));
        }
    }
    Ok(vec![TensorType::new(x.dtype, r.shape.clone())])
}

pub fn infer_transpose(t: &Transpose, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    let mut seen = vec![false; x.rank()];
    if t.perm.len() != x.rank()
        || t.perm
            .iter()
            .any(|&p| p >= x.rank() || std::mem::replace(&mut seen[p], true))
    {
        return Err(format!(
            "perm {:?} is not a permutation of rank {}",
            t.perm,
            x.rank()
        ));
    }
    Ok(vec![TensorType::new(
        x.dtype,
        t.perm.iter().map(|&p| x.shape[p].clone()).collect(),
    )])
}

pub fn infer_concat(c: &Concat, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    if inputs.is_empty() {
        return Err("Concat of nothing".into());
    }
    let first = inputs.ty(0)?;
    if c.axis >= first.rank() {
        return Err(format!("axis {} out of rank {}", c.axis, first.rank()));
    }
    let mut out = first.shape.clone();
    let mut total = Some(0u64);
    for t in &inputs.types {
        if t.rank() != first.rank() || t.dtype != first.dtype {
            return Err(format!("inputs {first} and {t} cannot be concatenated"));
        }
        for (i, (a, b)) in out.iter_mut().zip(&t.shape).enumerate() {
            if i != c.axis && a != b {
                match (a.is_fixed(), b.is_fixed()) {
                    (true, true) => {
                        return Err(format!("inputs {first} and {t} differ off the concat axis"))
                    }
                    (false, true) => *a = b.clone(),
                    _ => {}
                }
            }
        }
        total = total.zip(t.shape[c.axis].fixed()).map(|(a, b)| a + b);
    }
    out[c.axis] = match total {
        Some(n) => Dim::Fixed(n),
        None if inputs.len() == 1 => first.shape[c.axis].clone(),
        None => unknown_dim(),
    };
    Ok(vec![TensorType::new(first.dtype, out)])
}

pub fn infer_split(s: &Split, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    if s.axis >= x.rank() {
        return Err(format!("axis {} out of rank {}", s.axis, x.rank()));
    }
    if let Some(n) = x.shape[s.axis].fixed() {
        if s.sizes.iter().sum::<usize>() as u64 != n {
            return Err(format!("split sizes {:?} do not add up to {n}", s.sizes));
        }
    }
    Ok(s.sizes
        .iter()
        .map(|&n| {
            let mut sh = x.shape.clone();
            sh[s.axis] = Dim::Fixed(n as u64);
            TensorType::new(x.dtype, sh)
        })
        .collect())
}

/// Number of elements `start..end` by `step` selects from a dimension of `n` (ONNX clamping).
/// In i128: a step near `i64::MAX` (or `i64::MIN`) must not overflow the rounding up.
pub fn slice_len(n: i64, start: i64, end: i64, step: i64) -> usize {
    let (n, start, end, step) = (n as i128, start as i128, end as i128, step as i128);
    let clamp = |v: i128, lo: i128, hi: i128| v.max(lo).min(hi);
    let norm = |v: i128| if v < 0 { v + n } else { v };
    let (s, e) = if step > 0 {
        (clamp(norm(start), 0, n), clamp(norm(end), 0, n))
    } else {
        (clamp(norm(start), -1, n - 1), clamp(norm(end), -1, n - 1))
    };
    let len = if step > 0 {
        (e - s + step - 1) / step
    } else {
        (s - e - step - 1) / -step
    };
    usize::try_from(len.max(0)).unwrap_or(usize::MAX)
}

pub fn infer_slice(s: &Slice, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    let mut out = x.shape.clone();
    for a in &s.axes {
        if a.axis >= x.rank() || a.step == 0 {
            return Err(format!("bad slice on axis {} (step {})", a.axis, a.step));
        }
        out[a.axis] = match x.shape[a.axis].fixed() {
            Some(n) => Dim::Fixed(slice_len(n as i64, a.start, a.end, a.step) as u64),
            None if a.start == 0 && a.step == 1 && a.end >= i32::MAX as i64 => {
                x.shape[a.axis].clone()
            }
            None => unknown_dim(),
        };
    }
    Ok(vec![TensorType::new(x.dtype, out)])
}

pub fn infer_pad(p: &Pad, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    if p.pads.len() != x.rank() {
        return Err(format!("{} pad pairs for rank {}", p.pads.len(), x.rank()));
    }
    let out = x
        .shape
        .iter()
        .zip(&p.pads)
        .map(|(d, &(b, e))| match d.fixed() {
            _ if b == 0 && e == 0 => Ok(d.clone()),
            Some(n) => {
                let v = n as i64 + b + e;
                if v < 0 {
                    Err(format!("padding {b},{e} crops below zero"))
                } else {
                    Ok(Dim::Fixed(v as u64))
                }
            }
            None => Ok(unknown_dim()),
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(vec![TensorType::new(x.dtype, out)])
}

pub fn infer_tile(t: &Tile, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    if t.repeats.len() != x.rank() {
        return Err(format!("{} repeats for rank {}", t.repeats.len(), x.rank()));
    }
    let out = x
        .shape
        .iter()
        .zip(&t.repeats)
        .map(|(d, &r)| match d.fixed() {
            _ if r == 1 => Ok(d.clone()),
            // A size past u64 is no size any input could justify: refused, not wrapped.
            Some(n) => n
                .checked_mul(r as u64)
                .map(Dim::Fixed)
                .ok_or_else(|| format!("Tile of a size-{n} axis {r} times overflows")),
            None => Ok(unknown_dim()),
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(vec![TensorType::new(x.dtype, out)])
}

pub fn infer_expand(e: &Expand, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    Ok(vec![TensorType::new(
        x.dtype,
        broadcast(&x.shape, &e.shape)?,
    )])
}

fn check_rank4_block(x: &TensorType, block: usize) -> Result<(), String> {
    if x.rank() != 4 || block == 0 {
        return Err(format!(
            "needs a rank-4 input and block > 0, got {x} block {block}"
        ));
    }
    Ok(())
}

fn scale_dim(d: &Dim, mul: u64, div: u64) -> Result<Dim, String> {
    let Some(n) = d.fixed() else {
        return Ok(unknown_dim());
    };
    match n.checked_mul(mul) {
        None => Err(format!("dimension {n} times {mul} overflows")),
        Some(m) if !m.is_multiple_of(div) => Err(format!("dimension {n} not divisible by {div}")),
        Some(m) => Ok(Dim::Fixed(m / div)),
    }
}

pub fn infer_depth_to_space(d: &DepthToSpace, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    check_rank4_block(x, d.block)?;
    let b = d.block as u64;
    let mut out = x.shape.clone();
    let c = d.layout.channel_axis(4);
    out[c] = scale_dim(&x.shape[c], 1, b * b)?;
    for ax in d.layout.spatial_axes(4) {
        out[ax] = scale_dim(&x.shape[ax], b, 1)?;
    }
    Ok(vec![TensorType::new(x.dtype, out)])
}

pub fn infer_space_to_depth(s: &SpaceToDepth, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    check_rank4_block(x, s.block)?;
    let b = s.block as u64;
    let mut out = x.shape.clone();
    let c = s.layout.channel_axis(4);
    out[c] = scale_dim(&x.shape[c], b * b, 1)?;
    for ax in s.layout.spatial_axes(4) {
        out[ax] = scale_dim(&x.shape[ax], 1, b)?;
    }
    Ok(vec![TensorType::new(x.dtype, out)])
}

pub fn infer_resize(r: &Resize, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(1, 1)?;
    let x = inputs.ty(0)?;
    let out = match &r.sizes {
        Some(s) if s.len() == x.rank() => s.clone(),
        Some(s) => return Err(format!("{} sizes for rank {}", s.len(), x.rank())),
        None if r.scales.len() != x.rank() => {
            return Err(format!("{} scales for rank {}", r.scales.len(), x.rank()))
        }
        None => x
            .shape
            .iter()
            .zip(&r.scales)
            .map(|(d, &s)| match d.fixed() {
                _ if s == 1.0 => d.clone(),
                Some(n) => Dim::Fixed((n as f64 * s as f64).floor() as u64),
                None => unknown_dim(),
            })
            .collect(),
    };
    Ok(vec![TensorType::new(x.dtype, out)])
}

pub fn infer_grid_sample(s: &GridSample, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 2)?;
    let (x, grid) = (inputs.ty(0)?, inputs.ty(1)?);
    let rank = x.rank();
    if rank < 3 || grid.rank() != rank {
        return Err(format!("GridSample of {x} by a grid {grid}"));
    }
    let r = rank - 2;
    if grid.shape[rank - 1].fixed().is_some_and(|k| k != r as u64) {
        return Err(format!("GridSample grid {grid} for {r} spatial axes"));
    }
    if !grid.dtype.is_float() {
        return Err(format!("GridSample grid must be float, is {}", grid.dtype));
    }
    let n = match (&x.shape[0], &grid.shape[0]) {
        (Dim::Fixed(a), Dim::Fixed(b)) if a != b => {
            return Err(format!("GridSample batch {a} with a grid batch {b}"))
        }
        (Dim::Sym(_), d @ Dim::Fixed(_)) => d.clone(),
        (d, _) => d.clone(),
    };
    let c = x.shape[s.layout.channel_axis(rank)].clone();
    let spatial = grid.shape[1..=r].iter().cloned();
    let out: Vec<Dim> = match s.layout {
        Layout::Nchw => [n, c].into_iter().chain(spatial).collect(),
        Layout::Nhwc => std::iter::once(n)
            .chain(spatial)
            .chain(std::iter::once(c))
            .collect(),
    };
    Ok(vec![TensorType::new(x.dtype, out)])
}

/// Normalizes ONNX-style signed axes, refusing duplicates.
pub fn norm_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = norm_axis(a, rank)?;
        if out.contains(&n) {
            return Err(format!("axis {a} repeated"));
        }
        out.push(n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{fixed_shape, DType};

    #[test]
    fn grid_sample_takes_spatial_sizes_from_the_grid() {
        let gs = GridSample {
            mode: ResizeMode::Linear,
            padding: GridPadding::Zeros,
            align_corners: false,
            layout: Layout::Nchw,
        };
        let x = TensorType::new(
            DType::F32,
            vec![
                Dim::Sym("n".into()),
                Dim::Fixed(3),
                Dim::Fixed(8),
                Dim::Fixed(9),
            ],
        );
        let grid = TensorType::new(DType::F32, fixed_shape(&[2, 5, 6, 2]));
        let ins = |ts: &[&TensorType]| -> Result<Vec<TensorType>, String> {
            infer_grid_sample(
                &gs,
                &Inputs {
                    types: ts.to_vec(),
                    consts: vec![None; ts.len()],
                },
            )
        };
        let out = ins(&[&x, &grid]).unwrap();
        assert_eq!(
            out[0],
            TensorType::new(DType::F32, fixed_shape(&[2, 3, 5, 6]))
        );
        // Volumetric: 3 coordinates per point.
        let x5 = TensorType::new(DType::F32, fixed_shape(&[1, 2, 4, 4, 4]));
        let g5 = TensorType::new(DType::F32, fixed_shape(&[1, 3, 2, 5, 3]));
        let out = ins(&[&x5, &g5]).unwrap();
        assert_eq!(out[0].shape, fixed_shape(&[1, 2, 3, 2, 5]));
        // Coordinate count must match the spatial rank; batches must agree.
        let bad = TensorType::new(DType::F32, fixed_shape(&[1, 3, 2, 5, 2]));
        assert!(ins(&[&x5, &bad]).is_err());
        let other_batch = TensorType::new(DType::F32, fixed_shape(&[2, 5, 6, 2]));
        let x1 = TensorType::new(DType::F32, fixed_shape(&[1, 3, 8, 9]));
        assert!(ins(&[&x1, &other_batch]).is_err());
    }

    #[test]
    fn slice_lengths_follow_onnx_clamping() {
        assert_eq!(slice_len(10, 0, i64::MAX, 1), 10);
        assert_eq!(slice_len(10, 1, -1, 2), 4);
        assert_eq!(slice_len(10, -1, i64::MIN, -1), 10);
        assert_eq!(slice_len(10, 8, 2, -3), 2);
        assert_eq!(slice_len(10, 20, 30, 1), 0);
        // Steps at the ends of i64 (a fuzzed ONNX Slice overflowed the rounding up).
        assert_eq!(slice_len(10, 0, 10, i64::MAX), 1);
        assert_eq!(slice_len(10, 9, -11, i64::MIN), 1);
        assert_eq!(slice_len(10, i64::MIN, i64::MAX, i64::MAX), 1);
    }
}
