//! ONNX QuantizeLinear / DequantizeLinear as float arithmetic (TF.js has no quantized
//! kernels; its quantized values are int32 tensors):
//! - quantize: `clip(round(x / scale) + zero_point, qmin, qmax)` cast to int32 (Round is
//!   half-to-even in TF.js, as ONNX requires);
//! - dequantize: `(float(q) - zero_point) * scale`.
//!
//! Scale and zero point must be constants; per-axis ones are reshaped to broadcast along their
//! axis.

use super::emit::{a_bool, a_type, Gx};
use crate::ir::ops::QuantAxis;
use crate::ir::{DType, Node, Tensor, ValueId};

fn range(d: DType) -> Result<(f64, f64), String> {
    Ok(match d {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        other => return Err(format!("quantization to {other} is not written")),
    })
}

/// A float32 constant of a scale or zero point, shaped to broadcast along `axis` of a rank
/// `rank` value (scalars stay scalars).
fn param(
    gx: &mut Gx,
    v: Option<ValueId>,
    axis: usize,
    rank: usize,
    tag: &str,
) -> Result<Option<String>, String> {
    let Some(v) = v else { return Ok(None) };
    let t =
        gx.g.constant(v)
            .ok_or("scale and zero point must be constants")?;
    let vals = t.to_f64s();
    if vals.iter().all(|&x| x == 0.0) && tag == "zero_point" {
        return Ok(None);
    }
    let shape = if t.len() <= 1 {
        vec![]
    } else if axis >= rank {
        return Err(format!("quantization axis {axis} of a rank-{rank} value"));
    } else {
        let mut s = vec![1usize; rank - axis];
        s[0] = t.len();
        s
    };
    let c = Tensor::from_f64s(DType::F32, shape, &vals);
    let base = format!("{}/{tag}", gx.base);
    Ok(Some(gx.konst(&base, c)?))
}

pub fn quantize(gx: &mut Gx, n: &Node, q: &QuantAxis) -> Result<String, String> {
    let (lo, hi) = range(q.dtype)?;
    let rank = gx.g.ty(n.inputs[0]).rank();
    let t = ("T", a_type(DType::F32));
    let x = gx.r(n.inputs[0])?;
    let scale = param(gx, Some(n.inputs[1]), q.axis, rank, "scale")?.ok_or("no scale")?;
    let zp = param(gx, n.inputs.get(2).copied(), q.axis, rank, "zero_point")?;
    let d = gx.node("scaled", "RealDiv", vec![x, scale], vec![t.clone()]);
    let mut r = gx.node("rounded", "Round", vec![d], vec![t.clone()]);
    if let Some(zp) = zp {
        r = gx.node("shifted", "AddV2", vec![r, zp], vec![t.clone()]);
    }
    let lo = gx.float("qmin", lo as f32)?;
    let hi = gx.float("qmax", hi as f32)?;
    let c = gx.node("clipped", "ClipByValue", vec![r, lo, hi], vec![t]);
    Ok(gx.node(
        "",
        "Cast",
        vec![c],
        vec![
            ("SrcT", a_type(DType::F32)),
            ("DstT", a_type(DType::I32)),
            ("Truncate", a_bool(false)),
        ],
    ))
}

pub fn dequantize(gx: &mut Gx, n: &Node, q: &QuantAxis) -> Result<String, String> {
    let rank = gx.g.ty(n.inputs[0]).rank();
    let in_dt = gx.g.ty(n.inputs[0]).dtype;
    if gx.g.ty(n.outputs[0]).dtype != DType::F32 {
        return Err("dequantization to a type other than float32 is not written".into());
    }
    let t = ("T", a_type(DType::F32));
    let x = gx.r(n.inputs[0])?;
    let scale = param(gx, Some(n.inputs[1]), q.axis, rank, "scale")?.ok_or("no scale")?;
    let zp = param(gx, n.inputs.get(2).copied(), q.axis, rank, "zero_point")?;
    let mut f = gx.node(
        "float",
        "Cast",
        vec![x],
        vec![
            ("SrcT", a_type(in_dt)),
            ("DstT", a_type(DType::F32)),
            ("Truncate", a_bool(false)),
        ],
    );
    if let Some(zp) = zp {
        f = gx.node("centered", "Sub", vec![f, zp], vec![t.clone()]);
    }
    Ok(gx.node("", "Mul", vec![f, scale], vec![t]))
}
