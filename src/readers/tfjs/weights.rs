//! The `weightsManifest` of a TF.js `model.json`: groups of shards, concatenated in `paths`
//! order, holding the group's `weights` back to back (a weight may straddle two shards), as
//! `@tensorflow/tfjs-core` `io/weights_loader.ts` reads them. Quantized weights
//! (`quantization.dtype` uint8/uint16: `q * scale + min`; float16: IEEE half) are dequantized
//! to the entry's `dtype` here, so the graph sees plain float32 constants.

use crate::ir::mapped::map_inside;
use crate::ir::{DType, Tensor};
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// Every weight of the manifest by name, and the names in manifest order.
pub type Loaded = (HashMap<String, Tensor>, Vec<String>);

pub fn load(dir: &Path, manifest: &Value) -> Result<Loaded, String> {
    let groups = manifest
        .as_array()
        .ok_or("weightsManifest is not a list of weight groups")?;
    let (mut out, mut order) = (HashMap::new(), Vec::new());
    for (gi, group) in groups.iter().enumerate() {
        let data = group_bytes(dir, group, gi)?;
        let entries = group
            .get("weights")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("weight group {gi} has no 'weights' list"))?;
        let mut offset = 0usize;
        for e in entries {
            let name = e
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("weight group {gi}: an entry has no name"))?;
            let (t, used) =
                weight(e, &data, offset).map_err(|m| format!("weight '{name}': {m}"))?;
            offset += used;
            out.insert(name.to_string(), t);
            order.push(name.to_string());
        }
    }
    Ok((out, order))
}

/// The group's shards concatenated (one shard is shared, not copied).
fn group_bytes(dir: &Path, group: &Value, gi: usize) -> Result<Bytes, String> {
    let paths = group
        .get("paths")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("weight group {gi} has no 'paths' list"))?;
    let mut shards = Vec::with_capacity(paths.len());
    for p in paths {
        let p = p
            .as_str()
            .ok_or_else(|| format!("weight group {gi}: a shard path is not a string"))?;
        shards.push(map_inside(dir, p, "shard path")?);
    }
    if shards.len() == 1 {
        return Ok(shards.remove(0));
    }
    Ok(Bytes::from(shards.concat()))
}

/// Bytes per stored element of a manifest dtype name.
fn stored_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "float32" | "int32" => 4,
        "uint16" | "float16" => 2,
        "uint8" | "bool" => 1,
        _ => return None,
    })
}

/// One entry read at `offset` in its group's bytes: the tensor and the bytes it took.
fn weight(e: &Value, data: &Bytes, offset: usize) -> Result<(Tensor, usize), String> {
    let dtype_name = e.get("dtype").and_then(Value::as_str).unwrap_or("float32");
    let dtype = match dtype_name {
        "float32" => DType::F32,
        "int32" => DType::I32,
        "bool" => DType::Bool,
        other => return Err(format!("dtype '{other}' is not supported")),
    };
    let shape: Vec<usize> = e
        .get("shape")
        .and_then(Value::as_array)
        .ok_or("no shape")?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<_>>()
        .ok_or("shape has a negative or non-integer dimension")?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape too large")?;
    let quant = e.get("quantization");
    let stored = match quant {
        Some(q) => q.get("dtype").and_then(Value::as_str).unwrap_or(""),
        None => dtype_name,
    };
    let size = stored_size(stored)
        .filter(|_| quant.is_none() || matches!(stored, "uint8" | "uint16" | "float16"))
        .ok_or_else(|| format!("quantization dtype '{stored}' is not supported"))?;
    let len = count.checked_mul(size).ok_or("shape too large")?;
    let end = offset.checked_add(len).filter(|&end| end <= data.len());
    let end = end.ok_or_else(|| {
        format!(
            "needs bytes {offset}..{} but the group's shards hold {} bytes",
            offset.saturating_add(len),
            data.len()
        )
    })?;
    let raw = data.slice(offset..end);
    let bytes = match quant {
        None => raw,
        Some(q) => dequantize(q, stored, &raw, dtype)?,
    };
    Ok((Tensor::new(dtype, shape, bytes)?, len))
}

/// Stored codes back to `dtype` values, computed as tfjs-core's `decodeWeights` does.
fn dequantize(q: &Value, stored: &str, raw: &[u8], dtype: DType) -> Result<Bytes, String> {
    let values: Vec<f64> = if stored == "float16" {
        raw.chunks_exact(2)
            .map(|c| f64::from(half::f16::from_le_bytes([c[0], c[1]]).to_f32()))
            .collect()
    } else {
        let num = |k: &str| q.get(k).and_then(Value::as_f64);
        let (scale, min) = match (num("scale"), num("min")) {
            (Some(s), Some(m)) if s.is_finite() && m.is_finite() => (s, m),
            _ => return Err("quantization needs finite 'scale' and 'min'".into()),
        };
        let codes: Vec<f64> = if stored == "uint8" {
            raw.iter().map(|&b| f64::from(b)).collect()
        } else {
            raw.chunks_exact(2)
                .map(|c| f64::from(u16::from_le_bytes([c[0], c[1]])))
                .collect()
        };
        codes.into_iter().map(|c| c * scale + min).collect()
    };
    Ok(match dtype {
        DType::F32 => values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect(),
        DType::I32 => values
            .iter()
            .flat_map(|&v| (v.round() as i32).to_le_bytes())
            .collect(),
        _ => return Err(format!("a quantized {dtype} weight is not supported")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uint8_and_float16_weights_are_dequantized() {
        let data = Bytes::from(vec![0u8, 2, 255, 0x00, 0x3c]);
        let e = json!({"name": "w", "shape": [3], "dtype": "float32",
            "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}});
        let (t, used) = weight(&e, &data, 0).unwrap();
        assert_eq!(used, 3);
        assert_eq!(t.to_f64s(), vec![-1.0, 0.0, 126.5]);
        let e = json!({"name": "h", "shape": [1], "dtype": "float32",
            "quantization": {"dtype": "float16"}});
        let (t, _) = weight(&e, &data, 3).unwrap();
        assert_eq!(t.to_f64s(), vec![1.0]);
        let e16 = json!({"name": "u", "shape": [2], "dtype": "float32",
            "quantization": {"dtype": "uint16", "scale": 0.25, "min": -2.0}});
        let (t, used) = weight(&e16, &data, 0).unwrap();
        assert_eq!(used, 4);
        // Codes 0x0200 = 512 and 0x00ff = 255, little-endian.
        assert_eq!(t.to_f64s(), vec![126.0, 61.75]);
        // Past the end of the shards: refused, naming the range.
        let err = weight(&e, &data, 4).unwrap_err();
        assert!(err.contains("4..6"), "{err}");
    }
}
