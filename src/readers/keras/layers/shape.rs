//! Shape layers: Reshape (one -1 resolved, symbolic sizes kept exact), Flatten, Permute,
//! RepeatVector, ZeroPadding1D/2D/3D, Cropping1D/2D/3D, UpSampling1D/2D/3D (nearest = repeat,
//! i.e. asymmetric/floor; bilinear = half-pixel, as `tf.image.resize`).

use super::super::build::{unsupported, Builder, Call, LResult, LayerError};
use super::layout_of;
use crate::ir::ops::{
    CoordTransform, NearestRounding, Pad, PadMode, Reshape, Resize, ResizeMode, Slice, SliceAxis,
    Tile, Transpose,
};
use crate::ir::{Dim, Op, ValueId};
use serde_json::Value;

pub fn handler(class: &str) -> Option<super::Handler> {
    Some(match class {
        "Reshape" => reshape,
        "Flatten" => flatten,
        "Permute" => permute,
        "RepeatVector" => repeat_vector,
        "ZeroPadding1D" | "ZeroPadding2D" | "ZeroPadding3D" => zero_padding,
        "Cropping1D" | "Cropping2D" | "Cropping3D" => cropping,
        "UpSampling1D" | "UpSampling2D" | "UpSampling3D" => upsampling,
        "Resizing" => resizing,
        "CenterCrop" => center_crop,
        _ => return None,
    })
}

fn rank_of(class: &str) -> usize {
    if class.contains("1D") {
        1
    } else if class.contains("3D") {
        3
    } else {
        2
    }
}

fn reshape(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let s = b.shape(x);
    let target: Vec<i64> = c
        .config
        .get("target_shape")
        .and_then(Value::as_array)
        .ok_or("Reshape without target_shape")?
        .iter()
        .map(|v| v.as_i64().ok_or("Reshape target_shape holds a non-integer"))
        .collect::<Result<_, &str>>()?;
    let total = Dim::product(&s[1..]);
    let known = Dim::product(
        &target
            .iter()
            .filter(|&&t| t >= 0)
            .map(|&t| Dim::Fixed(t as u64))
            .collect::<Vec<_>>(),
    );
    let mut shape = vec![s[0].clone()];
    for &t in &target {
        shape.push(if t >= 0 {
            Dim::Fixed(t as u64)
        } else {
            total.divide(&known).ok_or_else(|| {
                LayerError::Invalid(format!("cannot reshape {total} into {target:?}"))
            })?
        });
    }
    Ok(vec![b.emit1(
        &c.name,
        Op::Reshape(Reshape { shape }),
        vec![x],
    )?])
}

fn flatten(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let s = b.shape(x);
    if s.len() > 2 && layout_of(c.config)? == crate::ir::Layout::Nchw {
        return unsupported("Flatten with data_format=channels_first");
    }
    let shape = vec![s[0].clone(), Dim::product(&s[1..])];
    Ok(vec![b.emit1(
        &c.name,
        Op::Reshape(Reshape { shape }),
        vec![x],
    )?])
}

fn permute(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let dims = c
        .config
        .get("dims")
        .and_then(Value::as_array)
        .ok_or("Permute without dims")?;
    let mut perm = vec![0usize];
    for d in dims {
        perm.push(d.as_u64().ok_or("Permute dims holds a non-integer")? as usize);
    }
    Ok(vec![b.emit1(
        &c.name,
        Op::Transpose(Transpose { perm }),
        vec![c.input(0)?],
    )?])
}

fn repeat_vector(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let n = c
        .config
        .get("n")
        .and_then(Value::as_u64)
        .ok_or("RepeatVector without n")? as usize;
    let s = b.shape(x);
    if s.len() != 2 {
        return Err(format!("RepeatVector of a rank-{} input", s.len()).into());
    }
    let shape = vec![s[0].clone(), Dim::Fixed(1), s[1].clone()];
    let r = b.emit1(
        &format!("{}/expand", c.name),
        Op::Reshape(Reshape { shape }),
        vec![x],
    )?;
    let t = Tile {
        repeats: vec![1, n, 1],
    };
    Ok(vec![b.emit1(&c.name, Op::Tile(t), vec![r])?])
}

/// `(begin, end)` per spatial axis from an int, `n` ints (symmetric), a 1-D `[begin, end]`,
/// or `n` pairs.
fn pairs(v: &Value, n: usize) -> LResult<Vec<(usize, usize)>> {
    let num = |x: &Value| x.as_u64().map(|x| x as usize);
    let bad = || LayerError::Invalid(format!("padding/cropping {v}"));
    match v {
        Value::Number(_) => {
            let p = num(v).ok_or_else(bad)?;
            Ok(vec![(p, p); n])
        }
        Value::Array(a) if n == 1 && a.len() == 2 && a.iter().all(Value::is_number) => Ok(vec![(
            num(&a[0]).ok_or_else(bad)?,
            num(&a[1]).ok_or_else(bad)?,
        )]),
        Value::Array(a) if a.len() == n => a
            .iter()
            .map(|x| match x {
                Value::Number(_) => num(x).map(|p| (p, p)).ok_or_else(bad),
                Value::Array(p) if p.len() == 2 => {
                    Ok((num(&p[0]).ok_or_else(bad)?, num(&p[1]).ok_or_else(bad)?))
                }
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

fn zero_padding(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let n = rank_of(c.class);
    let x = c.input(0)?;
    let rank = b.g.ty(x).rank();
    let layout = layout_of(c.config)?;
    let p = pairs(c.config.get("padding").unwrap_or(&Value::from(1)), n)?;
    let mut pads = vec![(0i64, 0i64); rank];
    for (i, ax) in layout.spatial_axes(rank).enumerate() {
        pads[ax] = (p[i].0 as i64, p[i].1 as i64);
    }
    let op = Pad {
        mode: PadMode::Constant,
        pads,
        value: 0.0,
    };
    Ok(vec![b.emit1(&c.name, Op::Pad(op), vec![x])?])
}

fn cropping(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let n = rank_of(c.class);
    let x = c.input(0)?;
    let s = b.shape(x);
    let layout = layout_of(c.config)?;
    let p = pairs(c.config.get("cropping").unwrap_or(&Value::from(1)), n)?;
    let mut axes = Vec::new();
    for (i, ax) in layout.spatial_axes(s.len()).enumerate() {
        let len = s[ax].fixed().ok_or("cropping a symbolic axis")? as i64;
        axes.push(SliceAxis {
            axis: ax,
            start: p[i].0 as i64,
            end: len - p[i].1 as i64,
            step: 1,
        });
    }
    Ok(vec![b.emit1(
        &c.name,
        Op::Slice(Slice { axes }),
        vec![x],
    )?])
}

fn upsampling(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let n = rank_of(c.class);
    let x = c.input(0)?;
    let rank = b.g.ty(x).rank();
    let layout = layout_of(c.config)?;
    let size = c
        .config
        .get("size")
        .or_else(|| c.config.get("length"))
        .cloned()
        .unwrap_or(Value::from(2));
    let size = super::ints(&size, n, "size")?;
    let interpolation = c
        .config
        .get("interpolation")
        .and_then(Value::as_str)
        .unwrap_or("nearest");
    let (mode, coord) = match interpolation {
        "nearest" => (ResizeMode::Nearest, CoordTransform::Asymmetric),
        "bilinear" => (ResizeMode::Linear, CoordTransform::HalfPixel),
        other => return unsupported(format!("UpSampling interpolation '{other}'")),
    };
    // A 1-D upsampling runs as a 2-D one over [B, T, 1, C] (2-D resizes are what every target
    // has).
    let (x, rank) = if n == 1 && rank == 3 && layout == crate::ir::Layout::Nhwc {
        let s = b.shape(x);
        let shape = vec![s[0].clone(), s[1].clone(), Dim::Fixed(1), s[2].clone()];
        let x4 = b.emit1(
            &format!("{}/as_2d", c.name),
            Op::Reshape(Reshape { shape }),
            vec![x],
        )?;
        (x4, 4)
    } else {
        (x, rank)
    };
    let mut scales = vec![1.0f32; rank];
    for (ax, &f) in layout.spatial_axes(rank).zip(&size) {
        scales[ax] = f as f32;
    }
    let r = Resize {
        mode,
        coord,
        nearest: NearestRounding::Floor,
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        layout,
        scales,
        sizes: None,
    };
    if rank == 4 && n == 1 {
        let y = b.emit1(&format!("{}/resize", c.name), Op::Resize(r), vec![x])?;
        let s = b.shape(y);
        let shape = vec![s[0].clone(), s[1].clone(), s[3].clone()];
        return Ok(vec![b.emit1(
            &c.name,
            Op::Reshape(Reshape { shape }),
            vec![y],
        )?]);
    }
    Ok(vec![b.emit1(&c.name, Op::Resize(r), vec![x])?])
}

/// A preprocessing layer's target `height` and `width`.
fn target_size(c: &Call) -> LResult<(u64, u64)> {
    let get = |k: &str| c.config.get(k).and_then(Value::as_u64).filter(|&v| v >= 1);
    match (get("height"), get("width")) {
        (Some(h), Some(w)) => Ok((h, w)),
        _ => Err(LayerError::Invalid(format!(
            "{} needs positive integer height and width",
            c.class
        ))),
    }
}

/// `Resizing(height, width)`: Keras resizes with `tf.image.resize`, half-pixel centres for
/// both bilinear and nearest (TF's nearest rounds half up). Cropping or padding to the aspect
/// ratio and antialiasing are refused by name.
fn resizing(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let flag = |k: &str| c.config.get(k).and_then(Value::as_bool).unwrap_or(false);
    for k in ["crop_to_aspect_ratio", "pad_to_aspect_ratio", "antialias"] {
        if flag(k) {
            return unsupported(format!("Resizing with {k}=True"));
        }
    }
    let (mode, nearest) = match c.config.get("interpolation").and_then(Value::as_str) {
        None | Some("bilinear") => (ResizeMode::Linear, NearestRounding::Floor),
        Some("nearest") => (ResizeMode::Nearest, NearestRounding::RoundPreferCeil),
        Some(other) => return unsupported(format!("Resizing interpolation '{other}'")),
    };
    let (h, w) = target_size(c)?;
    let x = c.input(0)?;
    let s = b.shape(x);
    if s.len() != 4 {
        return unsupported(format!(
            "Resizing of a rank-{} input (images are rank 4)",
            s.len()
        ));
    }
    let layout = layout_of(c.config)?;
    let mut sizes = s.clone();
    for (ax, v) in layout.spatial_axes(4).zip([h, w]) {
        sizes[ax] = Dim::Fixed(v);
    }
    let r = Resize {
        mode,
        coord: CoordTransform::HalfPixel,
        nearest,
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        layout,
        scales: vec![],
        sizes: Some(sizes),
    };
    Ok(vec![b.emit1(&c.name, Op::Resize(r), vec![x])?])
}

/// `CenterCrop(height, width)` of an input at least that large (fixed sizes): the window
/// starting at `(size - target) // 2`. A smaller input, which Keras resizes first, is refused.
fn center_crop(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let (h, w) = target_size(c)?;
    let x = c.input(0)?;
    let s = b.shape(x);
    if s.len() != 4 {
        return unsupported(format!(
            "CenterCrop of a rank-{} input (images are rank 4)",
            s.len()
        ));
    }
    let layout = layout_of(c.config)?;
    let mut axes = Vec::new();
    for (ax, target) in layout.spatial_axes(4).zip([h, w]) {
        match s[ax].fixed() {
            Some(n) if n >= target => {
                let start = ((n - target) / 2) as i64;
                axes.push(SliceAxis {
                    axis: ax,
                    start,
                    end: start + target as i64,
                    step: 1,
                });
            }
            _ => {
                return unsupported(format!(
                    "CenterCrop to {h}x{w} of an input of size {} (smaller or known only at run \
                     time: Keras resizes it first)",
                    s[ax]
                ))
            }
        }
    }
    Ok(vec![b.emit1(
        &c.name,
        Op::Slice(Slice { axes }),
        vec![x],
    )?])
}
