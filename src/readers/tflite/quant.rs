//! TFLite quantization as IR ops: a quantized tensor's real value is
//! `DequantizeLinear(q, scale, zero_point)`; an operator writing a quantized tensor computes in
//! float and its result goes through QuantizeLinear→DequantizeLinear (the rounding and clamping
//! the integer kernel does). Dynamic-range weights are dequantized once, on read.

use crate::ir::ops::{BinaryOp, Cast, QuantAxis};
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

/// The smallest value of an integer type TFLite quantizes to.
fn type_min(d: DType) -> Option<i64> {
    match d {
        DType::I8 => Some(-128),
        DType::U8 => Some(0),
        DType::I16 => Some(-32768),
        _ => None,
    }
}

/// QUANTIZE between uint8 and int8 with one scale and zero points `128` apart (how converters
/// give a full-integer model uint8 input and output) maps integers to integers exactly:
/// `q_out = q_in + (zp_out − zp_in)`. Returns the shift when `from` → `to` is such a pair.
pub fn exact_shift(from: (&QuantParams, DType), to: (&QuantParams, DType)) -> Option<i64> {
    let ((qa, da), (qb, db)) = (from, to);
    let per_tensor = qa.axis.is_none() && qb.axis.is_none();
    let shift = qb.zero_point.first()? - qa.zero_point.first()?;
    let same_scale = qa.scale.first()?.to_bits() == qb.scale.first()?.to_bits();
    (per_tensor && same_scale && da.size() == db.size() && shift == type_min(db)? - type_min(da)?)
        .then_some(shift)
}

/// `q` (integers) shifted by `shift` into `to`, computed in int32.
pub fn shift_integers(
    b: &mut GraphBuilder,
    name: &str,
    q: ValueId,
    shift: i64,
    to: DType,
) -> NodeResult<ValueId> {
    let wide = b.emit1(
        &format!("{name}/i32"),
        Op::Cast(Cast { to: DType::I32 }),
        vec![q],
    )?;
    let k = b.add_const(
        &format!("{name}/shift"),
        Tensor::from_i64s(DType::I32, vec![], &[shift]),
    );
    let moved = b.emit1(
        &format!("{name}/shifted"),
        Op::Binary(BinaryOp::Add),
        vec![wide, k],
    )?;
    b.emit1(
        &format!("{name}/quantized"),
        Op::Cast(Cast { to }),
        vec![moved],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_constants_dequantize_along_their_axis() {
        // [2, 3] int8, one scale and zero point per entry of axis 1.
        let q = QuantParams {
            scale: vec![0.5, 2.0, 1.0],
            zero_point: vec![0, 1, -1],
            axis: Some(1),
        };
        let c = Tensor::from_i64s(DType::I8, vec![2, 3], &[2, 3, 4, -2, 1, 0]);
        let r = dequantize_const(&c, &q).unwrap();
        assert_eq!(r.to_f64s(), [1.0, 4.0, 5.0, -1.0, 0.0, 1.0]);
        let bad = QuantParams { axis: Some(0), ..q };
        assert!(dequantize_const(&c, &bad).is_err());
    }

    #[test]
    fn only_uint8_int8_pairs_of_one_scale_shift_exactly() {
        let u8q = QuantParams::per_tensor(0.1, 128);
        let i8q = QuantParams::per_tensor(0.1, 0);
        assert_eq!(
            exact_shift((&u8q, DType::U8), (&i8q, DType::I8)),
            Some(-128)
        );
        assert_eq!(exact_shift((&i8q, DType::I8), (&u8q, DType::U8)), Some(128));
        let other = QuantParams::per_tensor(0.2, 0);
        assert_eq!(exact_shift((&u8q, DType::U8), (&other, DType::I8)), None);
        let off = QuantParams::per_tensor(0.1, 3);
        assert_eq!(exact_shift((&u8q, DType::U8), (&off, DType::I8)), None);
    }
}
