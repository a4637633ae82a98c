//! TFLite quantization as IR ops: a quantized tensor's real value is
//! `DequantizeLinear(q, scale, zero_point)`; an operator writing a quantized tensor computes in
//! float and its result goes through QuantizeLinear→DequantizeLinear (the rounding and clamping
//! the integer kernel does). Dynamic-range weights are dequantized once, on read.

use crate::ir::ops::QuantAxis;
use crate::ir::quant::QuantParams;
use crate::ir::{DType, Op, Tensor, ValueId};
use crate::readers::builder::{GraphBuilder, NodeError, NodeResult};

/// The scale and zero-point constants of `q` (scalars when per-tensor) for a `dtype` tensor.
fn params(b: &mut GraphBuilder, name: &str, q: &QuantParams, dtype: DType) -> [ValueId; 2] {
    let shape = if q.axis.is_some() {
        vec![q.scale.len()]
    } else {
        vec![]
    };
    let scale: Vec<f64> = q.scale.iter().map(|&s| f64::from(s)).collect();
    let s = b.add_const(
        &format!("{name}/scale"),
        Tensor::from_f64s(DType::F32, shape.clone(), &scale),
    );
    let z = b.add_const(
        &format!("{name}/zero_point"),
        Tensor::from_i64s(dtype, shape, &q.zero_point),
    );
    [s, z]
}

fn axis(q: &QuantParams) -> usize {
    q.axis.unwrap_or(0)
}

/// The real value of the quantized `v`.
pub fn dequantize(
    b: &mut GraphBuilder,
    name: &str,
    v: ValueId,
    q: &QuantParams,
) -> NodeResult<ValueId> {
    let dtype = b.g.ty(v).dtype;
    let [s, z] = params(b, name, q, dtype);
    let op = Op::DequantizeLinear(QuantAxis {
        axis: axis(q),
        dtype,
    });
    b.emit1(name, op, vec![v, s, z])
}

/// `v` (float) quantized to `dtype` with `q`: the integer value and its real value.
pub fn fake_quantize(
    b: &mut GraphBuilder,
    name: &str,
    v: ValueId,
    dtype: DType,
    q: &QuantParams,
) -> NodeResult<(ValueId, ValueId)> {
    if !matches!(dtype, DType::I8 | DType::U8 | DType::I16 | DType::I32) {
        return Err(NodeError::Unsupported(format!("quantization to {dtype}")));
    }
    let [s, z] = params(b, &format!("{name}/quantize"), q, dtype);
    let op = Op::QuantizeLinear(QuantAxis {
        axis: axis(q),
        dtype,
    });
    let qv = b.emit1(&format!("{name}/quantize"), op, vec![v, s, z])?;
    b.g.value_mut(qv).quant = Some(q.clone());
    let real = dequantize(b, name, qv, q)?;
    Ok((qv, real))
}

/// A quantized constant's real values (`scale · (q − zero_point)`, per channel along the
/// quantized axis), as float32.
pub fn dequantize_const(c: &Tensor, q: &QuantParams) -> Result<Tensor, String> {
    let ints = c
        .to_i64s()
        .ok_or_else(|| format!("cannot dequantize {} values", c.dtype))?;
    // Elements per step of the quantized axis, and the axis' length.
    let (inner, channels) = match q.axis {
        Some(a) => {
            let ch = *c.shape.get(a).ok_or("quantized axis out of rank")?;
            (c.shape[a + 1..].iter().product::<usize>(), ch)
        }
        None => (1, 1),
    };
    if q.scale.len() != channels || q.zero_point.len() != channels {
        return Err(format!("{} scales for {channels} channels", q.scale.len()));
    }
    let real: Vec<f32> = ints
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / inner.max(1)) % channels.max(1);
            q.scale[ch] * (v - q.zero_point[ch]) as f32
        })
        .collect();
    Ok(Tensor::from_f32(c.shape.clone(), &real))
}
