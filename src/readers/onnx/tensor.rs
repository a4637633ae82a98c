//! ONNX `TensorProto` → IR [`Tensor`], from every storage form: raw bytes (shared with the
//! memory-mapped file), typed fields (`float_data`, `int64_data`, …) and external data files.

use crate::formats::onnx::dtype_from_onnx;
use crate::ir::{DType, Tensor};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb::TensorProto;

/// Open external data files, mapped once each.
#[derive(Default)]
pub struct ExternalFiles {
    maps: HashMap<String, Bytes>,
}

impl ExternalFiles {
    fn get(&mut self, dir: &Path, location: &str) -> Result<Bytes, String> {
        if let Some(b) = self.maps.get(location) {
            return Ok(b.clone());
        }
        let bytes = crate::ir::mapped::map_inside(dir, location, "external data location")?;
        self.maps.insert(location.to_string(), bytes.clone());
        Ok(bytes)
    }
}

/// Converts one tensor. `raw` is its raw data already lifted from the mapped file, if any.
pub fn tensor_from_proto(
    t: &TensorProto,
    raw: Option<Bytes>,
    dir: &Path,
    external: &mut ExternalFiles,
) -> Result<Tensor, String> {
    let dtype = dtype_from_onnx(t.data_type).ok_or_else(|| {
        format!(
            "tensor '{}': element type {} is not supported",
            t.name, t.data_type
        )
    })?;
    if t.dims.iter().any(|&d| d < 0) {
        return Err(format!("tensor '{}' has a negative dimension", t.name));
    }
    let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("tensor '{}': shape {:?} is too large", t.name, t.dims))?;
    let data = if t.data_location == Some(1) {
        external_bytes(t, dir, external)?
    } else if let Some(raw) = raw {
        raw
    } else if !t.raw_data.is_empty() {
        Bytes::from(t.raw_data.clone())
    } else {
        typed_field_bytes(t, dtype, n)?
    };
    Tensor::new(dtype, shape, data).map_err(|e| format!("tensor '{}': {e}", t.name))
}

fn external_bytes(
    t: &TensorProto,
    dir: &Path,
    external: &mut ExternalFiles,
) -> Result<Bytes, String> {
    let mut location = None;
    let mut offset = 0usize;
    let mut length = None;
    for kv in &t.external_data {
        let num = || {
            kv.value
                .parse::<usize>()
                .map_err(|_| format!("tensor '{}': bad external {}", t.name, kv.key))
        };
        match kv.key.as_str() {
            "location" => location = Some(kv.value.clone()),
            "offset" => offset = num()?,
            "length" => length = Some(num()?),
            _ => {}
        }
    }
    let location =
        location.ok_or_else(|| format!("tensor '{}': external data without a location", t.name))?;
    let file = external
        .get(dir, &location)
        .map_err(|e| format!("tensor '{}': {e}", t.name))?;
    let end = match length {
        Some(l) => offset.saturating_add(l),
        None => file.len(),
    };
    if offset > file.len() || end > file.len() {
        return Err(format!(
            "tensor '{}': external data {offset}..{end} past the end of '{location}' ({} bytes)",
            t.name,
            file.len()
        ));
    }
    Ok(file.slice(offset..end))
}

fn typed_field_bytes(t: &TensorProto, dtype: DType, n: usize) -> Result<Bytes, String> {
    // Sized by what is stored, not by the claimed shape (a corrupt file may claim anything).
    let mut out: Vec<u8> = Vec::new();
    match dtype {
        DType::F32 => t
            .float_data
            .iter()
            .for_each(|v| out.extend(v.to_le_bytes())),
        DType::F64 => t
            .double_data
            .iter()
            .for_each(|v| out.extend(v.to_le_bytes())),
        DType::I64 => t
            .int64_data
            .iter()
            .for_each(|v| out.extend(v.to_le_bytes())),
        DType::U64 | DType::U32 => {
            for v in &t.uint64_data {
                if dtype == DType::U64 {
                    out.extend(v.to_le_bytes())
                } else {
                    out.extend((*v as u32).to_le_bytes())
                }
            }
        }
        // int32_data holds every narrower type, one element per entry (f16/bf16 as bit patterns).
        DType::I32 => t
            .int32_data
            .iter()
            .for_each(|v| out.extend(v.to_le_bytes())),
        DType::I16 | DType::U16 | DType::F16 | DType::BF16 => t
            .int32_data
            .iter()
            .for_each(|v| out.extend((*v as u16).to_le_bytes())),
        DType::I8 | DType::U8 | DType::Bool => t.int32_data.iter().for_each(|v| out.push(*v as u8)),
    }
    if Some(out.len()) != n.checked_mul(dtype.size()) {
        return Err(format!(
            "tensor '{}': {} elements stored for shape {:?}",
            t.name,
            out.len() / dtype.size(),
            t.dims
        ));
    }
    Ok(Bytes::from(out))
}
