//! Quantization arithmetic on constant tensors: symmetric int8 per-tensor or per-channel
//! (`real = scale · q`, `q ∈ [-127, 127]`, zero point 0, as TFLite's and onnxruntime's weight
//! quantizers do), asymmetric int8 activation parameters from a float range, int32 biases, and
//! float32 → float16. Each function reads the float bytes once and writes the new bytes once.

use crate::ir::{DType, Tensor};
use bytes::Bytes;

/// Quantized weights: int8 data and one scale per channel (one in all for per-tensor).
pub struct Quantized {
    pub data: Tensor,
    pub scales: Vec<f32>,
}

fn f32s(t: &Tensor) -> impl Iterator<Item = f32> + '_ {
    t.data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Symmetric int8 quantization of an f32 tensor, per channel along `axis` (per tensor when
/// `None`). A channel of zeros gets scale 1 (any scale represents it exactly; 0 would make the
/// dequantization ill-defined for runtimes that divide by it).
pub fn quantize_symmetric(t: &Tensor, axis: Option<usize>) -> Result<Quantized, String> {
    if t.dtype != DType::F32 {
        return Err(format!("weights are {}, not f32", t.dtype));
    }
    let (channels, inner) = match axis {
        Some(a) if a < t.shape.len() => (t.shape[a], t.shape[a + 1..].iter().product::<usize>()),
        Some(a) => return Err(format!("axis {a} out of rank {}", t.shape.len())),
        None => (1, t.len()),
    };
    let channels = channels.max(1);
    let inner = inner.max(1);
    let channel = |i: usize| (i / inner) % channels;
    let scales = quantize_symmetric_scales(t, inner, channels)?;
    let inv: Vec<f32> = scales.iter().map(|s| 1.0 / s).collect();
    let mut out = Vec::with_capacity(t.len());
    for (i, x) in f32s(t).enumerate() {
        let q = (x * inv[channel(i)]).round().clamp(-127.0, 127.0);
        out.push(q as i8 as u8);
    }
    Ok(Quantized {
        data: Tensor::new(DType::I8, t.shape.clone(), Bytes::from(out))?,
        scales,
    })
}

/// A 2-D `[rows, cols]` f32 tensor quantized per column (symmetric) and written transposed,
/// `[cols, rows]` with one scale per row of the result: a dense kernel `[in, out]` stored as
/// TFLite's `[out, in]` in one pass over the float bytes and one int8 buffer.
pub fn quantize_columns_transposed(t: &Tensor) -> Result<Quantized, String> {
    let [rows, cols] = t.shape[..] else {
        return Err(format!("{} dimensions, expected 2", t.shape.len()));
    };
    let q = quantize_symmetric_scales(t, 1, cols)?;
    let inv: Vec<f32> = q.iter().map(|s| 1.0 / s).collect();
    let mut out = vec![0u8; rows * cols];
    for (i, x) in f32s(t).enumerate() {
        let (r, c) = (i / cols, i % cols);
        out[c * rows + r] = (x * inv[c]).round().clamp(-127.0, 127.0) as i8 as u8;
    }
    Ok(Quantized {
        data: Tensor::new(DType::I8, vec![cols, rows], Bytes::from(out))?,
        scales: q,
    })
}

/// Per-channel symmetric scales (`inner` elements per channel step, `channels` channels).
fn quantize_symmetric_scales(
    t: &Tensor,
    inner: usize,
    channels: usize,
) -> Result<Vec<f32>, String> {
    let mut max_abs = vec![0f32; channels];
    for (i, x) in f32s(t).enumerate() {
        if !x.is_finite() {
            return Err(format!("a weight is {x}; it cannot be quantized"));
        }
        let c = (i / inner) % channels;
        max_abs[c] = max_abs[c].max(x.abs());
    }
    Ok(max_abs
        .iter()
        .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 })
        .collect())
}

/// `scale · q` for every element (per channel along `axis`), for tests and error estimates.
pub fn dequantize(q: &Tensor, scales: &[f32], axis: Option<usize>) -> Vec<f32> {
    let inner = match axis {
        Some(a) => q.shape[a + 1..].iter().product::<usize>(),
        None => q.len().max(1),
    };
    let channels = scales.len().max(1);
    q.data
        .iter()
        .enumerate()
        .map(|(i, &b)| b as i8 as f32 * scales[(i / inner.max(1)) % channels])
        .collect()
}

/// f32 → f16 (round to nearest even; values past f16's range become ±inf, as every float16
/// converter does).
pub fn to_f16(t: &Tensor) -> Result<Tensor, String> {
    if t.dtype != DType::F32 {
        return Err(format!("weights are {}, not f32", t.dtype));
    }
    let mut out = Vec::with_capacity(t.len() * 2);
    for x in f32s(t) {
        out.extend(half::f16::from_f32(x).to_le_bytes());
    }
    Tensor::new(DType::F16, t.shape.clone(), Bytes::from(out))
}

/// Asymmetric int8 parameters `(scale, zero_point)` covering `[min, max]` (widened to hold 0,
/// so zero padding is exact), as TFLite's and onnxruntime's calibrators choose them.
pub fn activation_params(min: f32, max: f32) -> (f32, i64) {
    let (lo, hi) = (min.min(0.0), max.max(0.0));
    if hi - lo <= f32::EPSILON {
        return (1.0, 0);
    }
    let scale = (hi - lo) / 255.0;
    let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i64;
    (scale, zp)
}

/// An int32 bias quantized with `scale = input_scale · weight_scale[c]`, zero point 0.
pub fn quantize_bias(
    bias: &Tensor,
    input_scale: f32,
    weight_scales: &[f32],
) -> Result<Tensor, String> {
    if bias.dtype != DType::F32 {
        return Err(format!("bias is {}, not f32", bias.dtype));
    }
    let n = bias.len();
    let mut out = Vec::with_capacity(n * 4);
    for (i, x) in f32s(bias).enumerate() {
        let s = input_scale * weight_scales[if weight_scales.len() == 1 { 0 } else { i }];
        let q = (x as f64 / s as f64)
            .round()
            .clamp(i32::MIN as f64, i32::MAX as f64) as i32;
        out.extend(q.to_le_bytes());
    }
    Tensor::new(DType::I32, bias.shape.clone(), Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_round_trip_is_within_half_a_step() {
        let w: Vec<f32> = (0..24)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * (1 + i % 3) as f32 * 0.1)
            .collect();
        let t = Tensor::from_f32(vec![2, 3, 4], &w);
        for axis in [None, Some(0), Some(1), Some(2)] {
            let q = quantize_symmetric(&t, axis).unwrap();
            let want = match axis {
                None => 1,
                Some(a) => t.shape[a],
            };
            assert_eq!(q.scales.len(), want);
            assert_eq!(q.data.dtype, DType::I8);
            let back = dequantize(&q.data, &q.scales, axis);
            let inner = axis.map_or(24, |a| t.shape[a + 1..].iter().product());
            for (i, (a, b)) in w.iter().zip(&back).enumerate() {
                let s = q.scales[(i / inner) % want];
                assert!((a - b).abs() <= s / 2.0 + 1e-7, "{a} vs {b} (scale {s})");
            }
            // The largest magnitude of each channel maps to ±127.
            assert!(q.data.data.iter().any(|&b| (b as i8).abs() == 127));
        }
    }

    #[test]
    fn transposed_columns_match_per_channel_then_transpose() {
        let w: Vec<f32> = (0..12)
            .map(|i| (i as f32 - 5.5) * (1 + i % 4) as f32)
            .collect();
        let t = Tensor::from_f32(vec![3, 4], &w);
        let a = quantize_columns_transposed(&t).unwrap();
        let b = quantize_symmetric(&t, Some(1)).unwrap();
        assert_eq!(a.scales, b.scales);
        assert_eq!(a.data, b.data.transposed(&[1, 0]));
        assert_eq!(a.data.shape, vec![4, 3]);
    }

    #[test]
    fn zero_channels_and_non_finite_weights() {
        let t = Tensor::from_f32(vec![2, 2], &[0.0, 0.0, 1.0, -2.0]);
        let q = quantize_symmetric(&t, Some(0)).unwrap();
        assert_eq!(q.scales[0], 1.0);
        assert_eq!(q.data.data[..2], [0, 0]);
        let bad = Tensor::from_f32(vec![2], &[f32::NAN, 1.0]);
        assert!(quantize_symmetric(&bad, None).is_err());
    }

    #[test]
    fn activation_range_holds_zero_exactly() {
        let (s, zp) = activation_params(0.5, 6.0);
        // min widened to 0: q = zp represents 0.0 exactly, and 6.0 is the top code.
        assert_eq!(zp, -128);
        assert!(((127 - zp) as f32 * s - 6.0).abs() < 1e-5);
        let (s, zp) = activation_params(-1.0, 3.0);
        assert!(((-128 - zp) as f32 * s + 1.0).abs() <= s);
        assert_eq!(activation_params(0.0, 0.0), (1.0, 0));
    }

    #[test]
    fn float16_halves_the_bytes() {
        let t = Tensor::from_f32(vec![3], &[1.0, 0.1, 70000.0]);
        let h = to_f16(&t).unwrap();
        assert_eq!(h.data.len(), 6);
        let v = h.to_f64s();
        assert_eq!(v[0], 1.0);
        assert!((v[1] - 0.1).abs() < 1e-4);
        assert!(v[2].is_infinite());
    }
}
