//! TFLite tensors: element types, shapes (`shape_signature`'s -1 become symbols), constant
//! buffers (slices of the mapped file, never copied) and quantization parameters. Every index
//! read from the file is bounded here.

use crate::ir::quant::QuantParams;
use crate::ir::{DType, Dim, Shape, Tensor, TensorType};
use bytes::Bytes;
use tract_tflite::tflite::{self as tfl, TensorType as TflType};

/// The IR element type of a TFLite tensor type, or why it has none.
pub fn dtype(t: TflType) -> Result<DType, String> {
    Ok(match t {
        TflType::FLOAT32 => DType::F32,
        TflType::FLOAT16 => DType::F16,
        TflType::FLOAT64 => DType::F64,
        TflType::INT8 => DType::I8,
        TflType::UINT8 => DType::U8,
        TflType::INT16 => DType::I16,
        TflType::UINT16 => DType::U16,
        TflType::INT32 => DType::I32,
        TflType::UINT32 => DType::U32,
        TflType::INT64 => DType::I64,
        TflType::UINT64 => DType::U64,
        TflType::BOOL => DType::Bool,
        other => {
            return Err(format!(
                "element type {} is not supported",
                other.variant_name().unwrap_or("unknown")
            ))
        }
    })
}

/// A tensor's display name (its index when the file gives none).
pub fn name(t: &tfl::Tensor, index: usize) -> String {
    match t.name() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => format!("tensor_{index}"),
    }
}

/// The fixed shape of a tensor (`shape`, which the converter fills with 1 where
/// `shape_signature` has -1).
pub fn fixed_dims(t: &tfl::Tensor, what: &str) -> Result<Vec<usize>, String> {
    t.shape()
        .map(|s| s.iter().collect::<Vec<i32>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| format!("{what}: bad dimension {d}")))
        .collect()
}

/// The type of a graph input: `shape_signature` when present (each -1 a fresh symbol, the
/// first one named `batch` when it is axis 0), else `shape`.
pub fn input_type(
    t: &tfl::Tensor,
    what: &str,
    fresh: &mut dyn FnMut() -> Dim,
) -> Result<TensorType, String> {
    let dt = dtype(t.type_()).map_err(|e| format!("{what}: {e}"))?;
    let fixed = fixed_dims(t, what)?;
    let Some(sig) = t.shape_signature().filter(|s| s.len() == fixed.len()) else {
        return Ok(TensorType::new(dt, crate::ir::fixed_shape(&fixed)));
    };
    let shape: Shape = sig
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            -1 if i == 0 => Ok(Dim::Sym("batch".into())),
            -1 => Ok(fresh()),
            d if d >= 0 => Ok(Dim::Fixed(d as u64)),
            d => Err(format!("{what}: bad shape_signature dimension {d}")),
        })
        .collect::<Result<_, String>>()?;
    Ok(TensorType::new(dt, shape))
}

/// The constant data of a tensor, a slice of `file` (the mapped flatbuffer), or `None` when
/// its buffer is empty (a value computed at run time).
pub fn constant(
    model: &tfl::Model,
    file: &Bytes,
    t: &tfl::Tensor,
    what: &str,
) -> Result<Option<Tensor>, String> {
    let buffers = model.buffers();
    let idx = t.buffer() as usize;
    if idx == 0 {
        return Ok(None);
    }
    let buf = buffers
        .filter(|b| idx < b.len())
        .ok_or_else(|| format!("{what}: buffer {idx} does not exist"))?
        .get(idx);
    let dt = dtype(t.type_()).map_err(|e| format!("{what}: {e}"))?;
    let shape = fixed_dims(t, what)?;
    let Some(data) = buf.data().filter(|d| !d.is_empty()) else {
        // Every tensor has a buffer, empty for values computed at run time; a constant
        // with no elements (an empty shape operand) has an empty one too.
        let empty = t.shape().is_some_and(|s| s.iter().any(|d| d == 0));
        return Ok(empty.then(|| Tensor::filled(dt, shape, &[])));
    };
    if let Some(sp) = t.sparsity() {
        return super::sparse::densify(&sp, dt, shape, data.bytes(), what).map(Some);
    }
    let bytes = data.bytes();
    let start = (bytes.as_ptr() as usize)
        .checked_sub(file.as_ptr() as usize)
        .filter(|s| s + bytes.len() <= file.len())
        .ok_or_else(|| format!("{what}: buffer {idx} lies outside the file"))?;
    let data = file.slice(start..start + bytes.len());
    Tensor::new(dt, shape, data)
        .map(Some)
        .map_err(|e| format!("{what}: {e}"))
}

/// A tensor's quantization (`None` for float tensors and integer tensors without scales).
pub fn quant_params(
    t: &tfl::Tensor,
    rank: usize,
    what: &str,
) -> Result<Option<QuantParams>, String> {
    let Some(q) = t.quantization() else {
        return Ok(None);
    };
    let Some(scale) = q.scale().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let scale: Vec<f32> = scale.iter().collect();
    let mut zero_point: Vec<i64> = q
        .zero_point()
        .map(|z| z.iter().collect())
        .unwrap_or_default();
    if zero_point.is_empty() {
        zero_point = vec![0; scale.len()];
    }
    let axis = if scale.len() == 1 {
        None
    } else {
        let a = usize::try_from(q.quantized_dimension())
            .ok()
            .filter(|&a| a < rank)
            .ok_or_else(|| {
                format!(
                    "{what}: quantized_dimension {} out of rank {rank}",
                    q.quantized_dimension()
                )
            })?;
        Some(a)
    };
    // Per-channel: one scale per entry of the quantized axis (of the file's shape).
    let channels = axis.and_then(|a| t.shape().and_then(|s| s.iter().nth(a)));
    if channels.is_some_and(|c| usize::try_from(c).ok() != Some(scale.len())) {
        return Err(format!(
            "{what}: {} scales for {} channels on axis {}",
            scale.len(),
            channels.unwrap_or_default(),
            q.quantized_dimension()
        ));
    }
    if scale.len() != zero_point.len() || scale.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(format!(
            "{what}: bad quantization ({} scales, {} zero points)",
            scale.len(),
            zero_point.len()
        ));
    }
    Ok(Some(QuantParams {
        scale,
        zero_point,
        axis,
    }))
}
