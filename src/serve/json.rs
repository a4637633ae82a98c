//! Tensors in JSON, as TF Serving's REST API and KServe's v2 REST API write them: nested arrays
//! (rectangular) or flat arrays with a separate shape, numbers read into the input's element
//! type, and `{"b64": "…"}` for binary data.

use super::status::{Reply, Status};
use crate::ir::{DType, Tensor};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;

/// Element bytes accumulated straight into the input's type (one pass over the JSON).
struct Sink {
    dtype: DType,
    out: Vec<u8>,
    count: usize,
}

impl Sink {
    fn new(dtype: DType) -> Sink {
        Sink {
            dtype,
            out: Vec::new(),
            count: 0,
        }
    }

    fn push(&mut self, v: &Value, what: &str) -> Reply<()> {
        let bad = || Status::invalid(format!("{what}: {v} is not a {} value", self.dtype.name()));
        let t = if self.dtype.is_float() {
            let x = v.as_f64().ok_or_else(bad)?;
            Tensor::from_f64s(self.dtype, vec![1], &[x])
        } else if self.dtype == DType::Bool {
            let b = match v {
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().ok_or_else(bad)? != 0.0,
                _ => return Err(bad()),
            };
            Tensor::from_i64s(DType::Bool, vec![1], &[b as i64])
        } else {
            let x = match v.as_i64() {
                Some(x) => x,
                None => match v.as_u64() {
                    Some(x) => x as i64,
                    None => {
                        let f = v.as_f64().ok_or_else(bad)?;
                        if f.fract() != 0.0 {
                            return Err(bad());
                        }
                        f as i64
                    }
                },
            };
            Tensor::from_i64s(self.dtype, vec![1], &[x])
        };
        self.out.extend_from_slice(&t.data);
        self.count += 1;
        Ok(())
    }

    fn push_b64(&mut self, s: &str, what: &str) -> Reply<usize> {
        if !matches!(self.dtype, DType::U8 | DType::I8) {
            return Err(Status::invalid(format!(
                "{what}: a {{\"b64\": …}} value fills a uint8 or int8 input with its bytes; \
                 this input is {}",
                self.dtype.name()
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| Status::invalid(format!("{what}: bad base64: {e}")))?;
        self.out.extend_from_slice(&bytes);
        self.count += bytes.len();
        Ok(bytes.len())
    }

    fn finish(self, shape: Vec<usize>) -> Reply<Tensor> {
        Tensor::new(self.dtype, shape, Bytes::from(self.out)).map_err(Status::invalid)
    }
}

/// The shape of a nested JSON array, read along its first elements.
fn shape_of(v: &Value) -> Vec<usize> {
    let mut shape = Vec::new();
    let mut cur = v;
    while let Value::Array(a) = cur {
        shape.push(a.len());
        match a.first() {
            Some(first) => cur = first,
            None => break,
        }
    }
    if let Value::Object(o) = cur {
        if let Some(Value::String(s)) = o.get("b64") {
            // The decoded length, checked per element in `walk`.
            let n = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_or(0, |b| b.len());
            shape.push(n);
        }
    }
    shape
}

fn walk(v: &Value, shape: &[usize], sink: &mut Sink, what: &str) -> Reply<()> {
    let ragged = || Status::invalid(format!("{what}: the nested arrays are not rectangular"));
    match (v, shape.split_first()) {
        (Value::Array(a), Some((&n, rest))) => {
            if a.len() != n {
                return Err(ragged());
            }
            a.iter().try_for_each(|x| walk(x, rest, sink, what))
        }
        (Value::Object(o), Some((&n, []))) => match o.get("b64") {
            Some(Value::String(s)) if o.len() == 1 => {
                if sink.push_b64(s, what)? != n {
                    return Err(ragged());
                }
                Ok(())
            }
            _ => Err(Status::invalid(format!(
                "{what}: an object here must be {{\"b64\": \"…\"}}"
            ))),
        },
        (Value::Array(_) | Value::Object(_), _) => Err(ragged()),
        (_, Some(_)) => Err(ragged()),
        (_, None) => sink.push(v, what),
    }
}

/// A nested JSON array (or a scalar) as a tensor of `dtype`.
pub fn tensor(v: &Value, dtype: DType, what: &str) -> Reply<Tensor> {
    let shape = shape_of(v);
    let mut sink = Sink::new(dtype);
    walk(v, &shape, &mut sink, what)?;
    sink.finish(shape)
}

/// Flat or nested JSON data with a separate shape (KServe v2), checked to hold exactly the
/// shape's element count.
pub fn tensor_with_shape(v: &Value, dtype: DType, shape: &[i64], what: &str) -> Reply<Tensor> {
    let shape = dims(shape, what)?;
    let want: usize = shape.iter().product();
    let mut sink = Sink::new(dtype);
    flatten(v, &mut sink, what)?;
    if sink.count != want {
        return Err(Status::invalid(format!(
            "{what}: shape {shape:?} holds {want} elements, the data has {}",
            sink.count
        )));
    }
    sink.finish(shape)
}

fn flatten(v: &Value, sink: &mut Sink, what: &str) -> Reply<()> {
    match v {
        Value::Array(a) => a.iter().try_for_each(|x| flatten(x, sink, what)),
        Value::Object(o) => match o.get("b64") {
            Some(Value::String(s)) => sink.push_b64(s, what).map(|_| ()),
            _ => Err(Status::invalid(format!("{what}: unexpected object {v}"))),
        },
        _ => sink.push(v, what),
    }
}

/// Non-negative dimensions as sizes.
pub fn dims(shape: &[i64], what: &str) -> Reply<Vec<usize>> {
    shape
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| Status::invalid(format!("{what}: bad dimension {d} in {shape:?}")))
        })
        .collect()
}

/// Stacks same-shaped tensors along a new first axis (TF Serving's `instances`).
pub fn stack(parts: &[Tensor], dtype: DType, what: &str) -> Reply<Tensor> {
    let Some(first) = parts.first() else {
        return Err(Status::invalid(format!("{what}: no instances")));
    };
    let mut data = Vec::with_capacity(first.data.len() * parts.len());
    for p in parts {
        if p.shape != first.shape {
            return Err(Status::invalid(format!(
                "{what}: instances differ in shape ({:?} and {:?})",
                first.shape, p.shape
            )));
        }
        data.extend_from_slice(&p.data);
    }
    let mut shape = vec![parts.len()];
    shape.extend(&first.shape);
    Tensor::new(dtype, shape, Bytes::from(data)).map_err(Status::invalid)
}

/// A tensor as nested JSON arrays.
pub fn value(t: &Tensor) -> Value {
    let leaves = leaves(t);
    nest(&t.shape, &mut leaves.into_iter())
}

/// A tensor's elements as flat JSON numbers (KServe v2 `data`).
pub fn flat(t: &Tensor) -> Value {
    Value::Array(leaves(t))
}

/// The tensor split along its first axis, each part as nested JSON (TF Serving's
/// `predictions`).
pub fn rows(t: &Tensor) -> Vec<Value> {
    let Some((&n, rest)) = t.shape.split_first() else {
        return vec![value(t)];
    };
    let mut it = leaves(t).into_iter();
    (0..n).map(|_| nest(rest, &mut it)).collect()
}

fn leaves(t: &Tensor) -> Vec<Value> {
    if t.dtype.is_float() {
        t.to_f64s()
            .into_iter()
            .map(|x| {
                // JSON has no NaN or infinity; TF Serving writes them as strings too.
                serde_json::Number::from_f64(x)
                    .map_or_else(|| Value::from(x.to_string()), Value::Number)
            })
            .collect()
    } else if t.dtype == DType::Bool {
        t.data.iter().map(|&b| Value::Bool(b != 0)).collect()
    } else if t.dtype == DType::U64 {
        t.data
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                Value::from(u64::from_le_bytes(a))
            })
            .collect()
    } else {
        t.to_i64s()
            .unwrap_or_default()
            .into_iter()
            .map(Value::from)
            .collect()
    }
}

fn nest(shape: &[usize], it: &mut impl Iterator<Item = Value>) -> Value {
    match shape.split_first() {
        None => it.next().unwrap_or(Value::Null),
        Some((&n, rest)) => Value::Array((0..n).map(|_| nest(rest, it)).collect()),
    }
}
