//! A minimal protobuf walk over an ONNX `ModelProto` that lifts the raw weight bytes out
//! before decoding, so the weights stay in the memory-mapped file instead of being copied into
//! the decoded message (prost decodes `bytes` fields into owned vectors).
//!
//! Only the top-level graph's initializers are lifted: `ModelProto.graph` (field 7) →
//! `GraphProto.initializer` (field 5) → `TensorProto.raw_data` (field 9). Everything else is
//! copied through unchanged.

use std::ops::Range;

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// The model bytes without the lifted raw data, and for each top-level initializer (in order)
/// the byte range of its raw data in the original buffer, if it had any.
pub struct Stripped {
    pub bytes: Vec<u8>,
    pub raw_data: Vec<Option<Range<usize>>>,
}

struct Field {
    number: u64,
    wire: u8,
    /// Whole field including its key.
    whole: Range<usize>,
    /// Payload of a length-delimited field.
    payload: Range<usize>,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn next_field(buf: &[u8], pos: &mut usize, end: usize) -> Result<Field, String> {
    let start = *pos;
    let key = varint(buf, pos)?;
    let wire = (key & 7) as u8;
    let mut payload = *pos..*pos;
    match wire {
        WIRE_VARINT => {
            varint(buf, pos)?;
        }
        WIRE_I64 => *pos += 8,
        WIRE_I32 => *pos += 4,
        WIRE_LEN => {
            let len = varint(buf, pos)? as usize;
            payload = *pos..pos.checked_add(len).ok_or("length overflow")?;
            *pos = payload.end;
        }
        w => return Err(format!("unsupported protobuf wire type {w}")),
    }
    if *pos > end {
        return Err("truncated protobuf field".into());
    }
    Ok(Field {
        number: key >> 3,
        wire,
        whole: start..*pos,
        payload,
    })
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len_field(out: &mut Vec<u8>, number: u64, body: &[u8]) {
    put_varint(out, (number << 3) | WIRE_LEN as u64);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// Walks the message in `range`, calling `f` for each field.
fn each_field(
    buf: &[u8],
    range: Range<usize>,
    mut f: impl FnMut(Field) -> Result<(), String>,
) -> Result<(), String> {
    let mut pos = range.start;
    while pos < range.end {
        f(next_field(buf, &mut pos, range.end)?)?;
    }
    Ok(())
}

/// Checks the whole buffer parses as a protobuf message with a graph field, then strips the
/// initializers' raw data.
pub fn strip_raw_data(buf: &[u8]) -> Result<Stripped, String> {
    let mut out = Vec::new();
    let mut raw = Vec::new();
    let mut saw_graph = false;
    each_field(buf, 0..buf.len(), |f| {
        if f.number == 7 && f.wire == WIRE_LEN {
            saw_graph = true;
            let body = strip_graph(buf, f.payload.clone(), &mut raw)?;
            put_len_field(&mut out, 7, &body);
        } else {
            out.extend_from_slice(&buf[f.whole]);
        }
        Ok(())
    })?;
    if !saw_graph {
        return Err("no graph in the model".into());
    }
    Ok(Stripped {
        bytes: out,
        raw_data: raw,
    })
}

fn strip_graph(
    buf: &[u8],
    range: Range<usize>,
    raw: &mut Vec<Option<Range<usize>>>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    each_field(buf, range, |f| {
        if f.number == 5 && f.wire == WIRE_LEN {
            let mut tensor = Vec::new();
            let mut data = None;
            each_field(buf, f.payload.clone(), |t| {
                if t.number == 9 && t.wire == WIRE_LEN {
                    data = Some(t.payload);
                } else {
                    tensor.extend_from_slice(&buf[t.whole]);
                }
                Ok(())
            })?;
            raw.push(data);
            put_len_field(&mut out, 5, &tensor);
        } else {
            out.extend_from_slice(&buf[f.whole]);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Cheap content check: the bytes parse as top-level protobuf fields with the field numbers and
/// wire types of an ONNX `ModelProto`, starting with `ir_version`. A file that starts right but
/// is cut short still counts, so that reading it reports the truncation.
pub fn looks_like_model(buf: &[u8]) -> bool {
    let mut seen = 0usize;
    let mut pos = 0usize;
    while pos < buf.len() {
        let Ok(f) = next_field(buf, &mut pos, buf.len()) else {
            return seen > 0;
        };
        let expected = match f.number {
            1 | 5 => WIRE_VARINT,
            2..=4 | 6 | 7 | 8 | 14 | 20 | 25 => WIRE_LEN,
            _ => return false,
        };
        if f.wire != expected || (seen == 0 && f.number != 1) {
            return false;
        }
        seen += 1;
    }
    seen > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use tract_onnx::pb;

    #[test]
    fn lifts_raw_data_and_keeps_the_rest() {
        let t = pb::TensorProto {
            name: "w".into(),
            dims: vec![2],
            data_type: 1,
            raw_data: vec![1, 2, 3, 4, 5, 6, 7, 8],
            ..Default::default()
        };
        let g = pb::GraphProto {
            name: "g".into(),
            initializer: vec![t.clone()],
            ..Default::default()
        };
        let m = pb::ModelProto {
            ir_version: 8,
            graph: Some(g),
            ..Default::default()
        };
        let bytes = m.encode_to_vec();
        let s = strip_raw_data(&bytes).unwrap();
        let back = pb::ModelProto::decode(&s.bytes[..]).unwrap();
        let init = &back.graph.unwrap().initializer[0];
        assert!(init.raw_data.is_empty());
        assert_eq!(init.name, "w");
        let r = s.raw_data[0].clone().unwrap();
        assert_eq!(&bytes[r], &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let m = pb::ModelProto {
            ir_version: 8,
            graph: Some(pb::GraphProto {
                name: "g".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = m.encode_to_vec();
        assert!(strip_raw_data(&bytes[..bytes.len() - 1]).is_err());
        assert!(strip_raw_data(b"hello world, not a model").is_err());
    }
}
