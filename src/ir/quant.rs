//! Quantization parameters carried by a value.
//!
//! `real = scale * (q - zero_point)`. Per-tensor when `axis` is `None` (one scale and one
//! zero point), per-channel along `axis` otherwise (one pair per channel).

use super::ops::Cast;
use super::{DType, Graph, Node, Op, Tensor};
use bytes::Bytes;

#[derive(Clone, Debug, PartialEq)]
pub struct QuantParams {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub axis: Option<usize>,
}

impl QuantParams {
    pub fn per_tensor(scale: f32, zero_point: i64) -> QuantParams {
        QuantParams {
            scale: vec![scale],
            zero_point: vec![zero_point],
            axis: None,
        }
    }

    /// Checks the parameter counts against the value's shape.
    pub fn check(&self, shape: &[super::Dim]) -> Result<(), String> {
        if self.scale.len() != self.zero_point.len() {
            return Err(format!(
                "{} scales but {} zero points",
                self.scale.len(),
                self.zero_point.len()
            ));
        }
        match self.axis {
            None if self.scale.len() != 1 => Err(format!(
                "per-tensor quantization with {} scales",
                self.scale.len()
            )),
            Some(a) if a >= shape.len() => {
                Err(format!("quantization axis {a} out of rank {}", shape.len()))
            }
            Some(a) => match shape[a].fixed() {
                Some(n) if n as usize != self.scale.len() => Err(format!(
                    "{} scales for {} channels on axis {a}",
                    self.scale.len(),
                    n
                )),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

/// The float32 constant node `n` computes when it is a DequantizeLinear or a float16→float32
/// Cast of constants: weights stored quantized, in the op's own arithmetic
/// (`(q - zero_point) · scale` in float32; float16 → float32 exactly).
pub fn stored_f32(g: &Graph, n: &Node) -> Option<Tensor> {
    let consts: Option<Vec<&Tensor>> = n.inputs.iter().map(|&v| g.constant(v)).collect();
    let consts = consts?;
    let t = match &n.op {
        Op::DequantizeLinear(q) => dequantize(&consts, q.axis),
        Op::Cast(Cast { to: DType::F32 }) => consts.first().and_then(|t| f16_to_f32(t)),
        _ => None,
    }?;
    let out = *n.outputs.first()?;
    (t.ty() == *g.ty(out)).then_some(t)
}

/// `(x - zero_point) · scale` with a float32 scale, per tensor or along `axis`.
fn dequantize(inputs: &[&Tensor], axis: usize) -> Option<Tensor> {
    let (x, scale) = (*inputs.first()?, *inputs.get(1)?);
    if scale.dtype != DType::F32 {
        return None;
    }
    let scales: Vec<f32> = scale
        .data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let channels = scales.len();
    let zero_points: Vec<i64> = match inputs.get(2) {
        Some(z) => z.to_i64s()?,
        None => vec![0; channels],
    };
    if channels == 0 || zero_points.len() != channels {
        return None;
    }
    let inner: usize = if channels == 1 {
        x.len().max(1)
    } else {
        if x.shape.get(axis) != Some(&channels) {
            return None;
        }
        x.shape[axis + 1..].iter().product::<usize>().max(1)
    };
    let value = |i: usize, q: i64| {
        let c = (i / inner) % channels;
        (q - zero_points[c]) as f32 * scales[c]
    };
    let mut out = Vec::with_capacity(x.len() * 4);
    match x.dtype {
        DType::I8 => {
            for (i, &b) in x.data.iter().enumerate() {
                out.extend(value(i, b as i8 as i64).to_le_bytes());
            }
        }
        DType::U8 => {
            for (i, &b) in x.data.iter().enumerate() {
                out.extend(value(i, b as i64).to_le_bytes());
            }
        }
        DType::I32 => {
            for (i, b) in x.data.chunks_exact(4).enumerate() {
                let q = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64;
                out.extend(value(i, q).to_le_bytes());
            }
        }
        _ => return None,
    }
    Tensor::new(DType::F32, x.shape.clone(), Bytes::from(out)).ok()
}

fn f16_to_f32(t: &Tensor) -> Option<Tensor> {
    if t.dtype != DType::F16 {
        return None;
    }
    let out: Vec<u8> = t
        .data
        .chunks_exact(2)
        .flat_map(|b| {
            half::f16::from_le_bytes([b[0], b[1]])
                .to_f32()
                .to_le_bytes()
        })
        .collect();
    Tensor::new(DType::F32, t.shape.clone(), Bytes::from(out)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Dim;

    #[test]
    fn per_channel_count_must_match_axis() {
        let q = QuantParams {
            scale: vec![0.1, 0.2],
            zero_point: vec![0, 0],
            axis: Some(0),
        };
        assert!(q.check(&[Dim::Fixed(2), Dim::Fixed(3)]).is_ok());
        assert!(q.check(&[Dim::Fixed(3), Dim::Fixed(2)]).is_err());
        assert!(q.check(&[]).is_err());
    }
}
