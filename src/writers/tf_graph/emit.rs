//! Building a TF GraphDef in the JSON form tfjs-converter reads (proto3 JSON mapping of
//! `NodeDef`): node names, tensor references (`node` or `node:1`), attributes, and the `Const`
//! nodes whose values live in the weights manifest under the node's name.
//!
//! Attribute encodings the converter's `operation_mapper` parses: `{"type": "DT_FLOAT"}`,
//! `{"i": "1"}` (int64 as a string), `{"f": 0.5}`, `{"b": true}`, `{"s": base64}`,
//! `{"list": {"i": [..]}}`, `{"list": {"s": [base64..]}}`, `{"shape": {"dim": [{"size": "-1"}]}}`.

use super::NamedWeight;
use crate::ir::{DType, Dim, Graph, Tensor, ValueId};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

/// TF dtype name of an IR dtype as TF.js holds it: floats are float32, integers int32.
pub fn tf_dtype(d: DType) -> &'static str {
    match d {
        DType::F32 | DType::F16 | DType::BF16 | DType::F64 => "DT_FLOAT",
        DType::Bool => "DT_BOOL",
        DType::I8
        | DType::U8
        | DType::I16
        | DType::U16
        | DType::I32
        | DType::U32
        | DType::I64
        | DType::U64 => "DT_INT32",
    }
}

pub fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= c.len() {
                out.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn a_type(d: DType) -> Value {
    json!({ "type": tf_dtype(d) })
}
pub fn a_int(i: i64) -> Value {
    json!({ "i": i.to_string() })
}
pub fn a_float(f: f32) -> Value {
    json!({ "f": f })
}
pub fn a_bool(b: bool) -> Value {
    json!({ "b": b })
}
pub fn a_str(s: &str) -> Value {
    json!({ "s": b64(s) })
}
pub fn a_ints(v: &[i64]) -> Value {
    let v: Vec<String> = v.iter().map(|i| i.to_string()).collect();
    json!({ "list": { "i": v } })
}
pub fn a_strs(v: &[&str]) -> Value {
    let v: Vec<String> = v.iter().map(|s| b64(s)).collect();
    json!({ "list": { "s": v } })
}
pub fn shape_json(shape: &[Dim]) -> Value {
    let dims: Vec<Value> = shape
        .iter()
        .map(|d| json!({ "size": d.fixed().map_or(-1, |n| n as i64).to_string() }))
        .collect();
    json!({ "dim": dims })
}

/// A node name TF accepts (`[A-Za-z0-9.][A-Za-z0-9_./-]*`); TF.js splits references at ':'.
pub fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.') {
        s.insert(0, 'n');
    }
    s
}

/// The index-type attributes of ops, which TF requires on every node and TF.js does without.
const INDEX_ATTRS: &[(&str, &[&str])] = &[
    ("GatherV2", &["Tindices", "Taxis"]),
    ("GatherNd", &["Tindices"]),
    ("Slice", &["Index"]),
    ("TensorScatterUpdate", &["Tindices"]),
];

/// Which TF op set a GraphDef is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// tfjs-converter's: grappler's fused ops (`_FusedConv2D`, …) and TF.js's own `Prelu`.
    Tfjs,
    /// TensorFlow's registered ops only (a SavedModel): convolutions and their bias and
    /// activation as separate ops, PRelu spelled out.
    Tf,
}

/// The GraphDef under construction.
pub struct Gx<'g> {
    pub g: &'g Graph,
    pub dialect: Dialect,
    pub nodes: Vec<Value>,
    pub weights: Vec<NamedWeight>,
    /// Names taken, lowercased: TF's importer treats names differing only in case as one
    /// (`Graph.unique_name` compares them lowercased), so `All` and `all` would collide.
    names: HashSet<String>,
    /// The TF tensor reference of each IR value once emitted.
    refs: HashMap<ValueId, String>,
    /// Writer-made int32 constants by content, so each is written once.
    ints: HashMap<Vec<i64>, String>,
    /// The IR node being emitted (for names).
    pub base: String,
    /// Put before every name: a function body's nodes and weights share the model's namespace.
    pub prefix: String,
    /// `library.function` entries (loop and branch bodies), inner ones first.
    pub functions: Vec<Value>,
    /// The build only lists what cannot be written (a writer's `check`): weights moved into
    /// TF's layout keep their shape and type but not their order (see [`Gx::transposed`]).
    pub checking: bool,
}

impl<'g> Gx<'g> {
    pub fn new(g: &'g Graph, dialect: Dialect) -> Gx<'g> {
        Gx {
            g,
            dialect,
            nodes: Vec::new(),
            weights: Vec::new(),
            names: HashSet::new(),
            refs: HashMap::new(),
            ints: HashMap::new(),
            base: String::new(),
            prefix: String::new(),
            functions: Vec::new(),
            checking: false,
        }
    }

    /// A constant weight with its axes permuted, as the written graph holds it. A check gets
    /// the permuted shape over the same bytes: nothing it looks at depends on the order of a
    /// kernel's elements, and the weights are not copied for a build that is thrown away.
    pub fn transposed(&self, t: &Tensor, perm: &[usize]) -> Tensor {
        if self.checking {
            t.reshaped(perm.iter().map(|&p| t.shape[p]).collect())
        } else {
            t.transposed(perm)
        }
    }

    pub fn fresh(&mut self, base: &str) -> String {
        let base = sanitize(&format!("{}{base}", self.prefix));
        let mut name = base.clone();
        let mut k = 1;
        while !self.names.insert(name.to_lowercase()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }

    pub fn bind(&mut self, v: ValueId, r: String) {
        self.refs.insert(v, r);
    }

    pub fn is_bound(&self, v: ValueId) -> bool {
        self.refs.contains_key(&v)
    }

    /// The reference of an IR value; a constant gets its `Const` node on first use.
    pub fn r(&mut self, v: ValueId) -> Result<String, String> {
        if let Some(r) = self.refs.get(&v) {
            return Ok(r.clone());
        }
        let value = self.g.value(v);
        let Some(t) = value.constant.clone() else {
            return Err(format!(
                "value '{}' is used before it is computed",
                value.name
            ));
        };
        let name = value.name.clone();
        let r = self.konst(&name, t)?;
        self.refs.insert(v, r.clone());
        Ok(r)
    }

    /// A `Const` node holding `t` (stored in the weights manifest under the node's name).
    pub fn konst(&mut self, base: &str, t: Tensor) -> Result<String, String> {
        check_const(&t)?;
        let name = self.fresh(base);
        let mut attr = Map::new();
        attr.insert("dtype".into(), a_type(t.dtype));
        attr.insert(
            "value".into(),
            json!({ "tensor": {
                "dtype": tf_dtype(t.dtype),
                "tensorShape": shape_json(&crate::ir::fixed_shape(&t.shape)),
            }}),
        );
        self.nodes
            .push(json!({ "name": name, "op": "Const", "attr": attr }));
        self.weights.push(NamedWeight {
            name: name.clone(),
            tensor: t,
        });
        Ok(name)
    }

    /// An int32 vector constant (axes, shapes, paddings), shared between users.
    pub fn ints(&mut self, tag: &str, v: &[i64]) -> Result<String, String> {
        self.ints_shaped(tag, v, vec![v.len()])
    }

    pub fn ints_shaped(
        &mut self,
        tag: &str,
        v: &[i64],
        shape: Vec<usize>,
    ) -> Result<String, String> {
        let mut key = shape.iter().map(|&d| d as i64).collect::<Vec<_>>();
        key.push(-1);
        key.extend_from_slice(v);
        if let Some(r) = self.ints.get(&key) {
            return Ok(r.clone());
        }
        let t = Tensor::from_i64s(DType::I32, shape, v);
        let r = self.konst(&format!("{}/{tag}", self.base), t)?;
        self.ints.insert(key, r.clone());
        Ok(r)
    }

    pub fn int(&mut self, tag: &str, v: i64) -> Result<String, String> {
        self.ints_shaped(tag, &[v], vec![])
    }

    pub fn float(&mut self, tag: &str, v: f32) -> Result<String, String> {
        let base = format!("{}/{tag}", self.base);
        self.konst(&base, Tensor::scalar_f32(v))
    }

    /// Adds a node; returns its name (its first output's reference).
    pub fn node(
        &mut self,
        tag: &str,
        op: &str,
        inputs: Vec<String>,
        attrs: Vec<(&str, Value)>,
    ) -> String {
        let name = if tag.is_empty() {
            self.fresh(&self.base.clone())
        } else {
            self.fresh(&format!("{}/{tag}", self.base))
        };
        self.named_node(name, op, inputs, attrs)
    }

    pub fn named_node(
        &mut self,
        name: String,
        op: &str,
        inputs: Vec<String>,
        attrs: Vec<(&str, Value)>,
    ) -> String {
        let mut n = Map::new();
        n.insert("name".into(), json!(name));
        n.insert("op".into(), json!(op));
        if !inputs.is_empty() {
            n.insert("input".into(), json!(inputs));
        }
        let mut attr: Map<String, Value> =
            attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        // TF requires these (TF.js infers them); every integer tensor here is int32.
        for &(o, keys) in INDEX_ATTRS {
            if o == op {
                for k in keys {
                    attr.entry(*k).or_insert_with(|| a_type(DType::I32));
                }
            }
        }
        n.insert("attr".into(), Value::Object(attr));
        self.nodes.push(Value::Object(n));
        name
    }

    /// A 1-D int32 tensor holding `dims`: a constant when every dim is fixed (or one is symbolic
    /// and `allow_infer` lets it be -1), else assembled at run time from the `Shape` of a value
    /// that has the same symbolic dims (`like`, then the graph inputs).
    pub fn dims(
        &mut self,
        tag: &str,
        dims: &[Dim],
        like: &[ValueId],
        allow_infer: bool,
    ) -> Result<String, String> {
        let syms = dims.iter().filter(|d| !d.is_fixed()).count();
        if syms == 0 || (allow_infer && syms == 1) {
            let v: Vec<i64> = dims
                .iter()
                .map(|d| d.fixed().map_or(-1, |n| n as i64))
                .collect();
            return self.ints(tag, &v);
        }
        let like: Vec<ValueId> = like.iter().chain(&self.g.inputs).copied().collect();
        let mut pieces = Vec::with_capacity(dims.len());
        let mut shapes: HashMap<ValueId, String> = HashMap::new();
        let mut inferred = !allow_infer;
        for d in dims {
            let piece = match d {
                Dim::Fixed(n) => self.ints(tag, &[*n as i64])?,
                Dim::Sym(_) => {
                    let found = like.iter().find_map(|&v| {
                        let pos = self.g.ty(v).shape.iter().position(|e| e == d)?;
                        Some((v, pos))
                    });
                    let Some((v, pos)) = found else {
                        if let Some(p) = self.product_dim(tag, d, &like, &mut shapes)? {
                            pieces.push(p);
                            continue;
                        }
                        if !inferred {
                            inferred = true;
                            pieces.push(self.ints(tag, &[-1])?);
                            continue;
                        }
                        return Err(format!(
                            "dimension '{d}' is not the size of any known value"
                        ));
                    };
                    self.gather_dim(tag, v, pos, &mut shapes)?
                }
            };
            pieces.push(piece);
        }
        let n = pieces.len() as i64;
        let axis = self.int("axis0", 0)?;
        pieces.push(axis);
        Ok(self.node(
            tag,
            "ConcatV2",
            pieces,
            vec![("N", a_int(n)), ("T", a_type(DType::I32))],
        ))
    }
    /// The size of axis `pos` of `v` as a one-element int32 tensor (`GatherV2` of its `Shape`).
    fn gather_dim(
        &mut self,
        tag: &str,
        v: ValueId,
        pos: usize,
        shapes: &mut HashMap<ValueId, String>,
    ) -> Result<String, String> {
        let shape = match shapes.get(&v) {
            Some(s) => s.clone(),
            None => {
                let x = self.r(v)?;
                let s = self.node(
                    &format!("{tag}_shape"),
                    "Shape",
                    vec![x],
                    vec![
                        ("T", a_type(self.g.ty(v).dtype)),
                        ("out_type", a_type(DType::I32)),
                    ],
                );
                shapes.insert(v, s.clone());
                s
            }
        };
        let idx = self.ints(tag, &[pos as i64])?;
        let axis = self.int("axis0", 0)?;
        Ok(self.node(
            &format!("{tag}_dim"),
            "GatherV2",
            vec![shape, idx, axis],
            vec![("batch_dims", a_int(0)), ("Tparams", a_type(DType::I32))],
        ))
    }

    /// A symbolic dim no value has as such, built from ones they have: a multiple `m·e` of a
    /// value's dim `e` (`4*h` from a height `2*h`), or a product of symbols each some value
    /// has (`batch*seq`). `None` when neither.
    fn product_dim(
        &mut self,
        tag: &str,
        d: &Dim,
        like: &[ValueId],
        shapes: &mut HashMap<ValueId, String>,
    ) -> Result<Option<String>, String> {
        let g = self.g;
        let multiple = like.iter().find_map(|&v| {
            g.ty(v).shape.iter().enumerate().find_map(|(pos, e)| {
                let m = d.divide(e).filter(|_| !e.is_fixed())?.fixed()?;
                Some((v, pos, m))
            })
        });
        let mut parts: Vec<(ValueId, usize)> = Vec::new();
        let coef = if let Some((v, pos, m)) = multiple {
            parts.push((v, pos));
            m
        } else {
            let (c, syms) = d.factors();
            for s in &syms {
                let sym = Dim::Sym(s.clone());
                let Some(found) = like
                    .iter()
                    .find_map(|&v| Some((v, g.ty(v).shape.iter().position(|e| *e == sym)?)))
                else {
                    return Ok(None);
                };
                parts.push(found);
            }
            if parts.is_empty() || (c == 1 && parts.len() == 1) {
                return Ok(None);
            }
            c
        };
        let mut acc = match coef {
            1 => None,
            c => Some(self.ints(tag, &[c as i64])?),
        };
        for (v, pos) in parts {
            let piece = self.gather_dim(tag, v, pos, shapes)?;
            acc = Some(match acc {
                None => piece,
                Some(a) => self.node(
                    &format!("{tag}_mul"),
                    "Mul",
                    vec![a, piece],
                    vec![("T", a_type(DType::I32))],
                ),
            });
        }
        Ok(acc)
    }
}

/// A constant TF.js can hold: int64 values must fit int32.
pub fn check_const(t: &Tensor) -> Result<(), String> {
    if matches!(t.dtype, DType::I64 | DType::U64 | DType::U32) {
        if let Some(v) = t.to_i64s() {
            if v.iter()
                .any(|&x| x < i32::MIN as i64 || x > i32::MAX as i64)
            {
                return Err(format!(
                    "a {} constant holds values outside int32, TF.js's only integer type",
                    t.dtype
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(b64(""), "");
        assert_eq!(b64("f"), "Zg==");
        assert_eq!(b64("fo"), "Zm8=");
        assert_eq!(b64("foo"), "Zm9v");
        assert_eq!(b64("SAME"), "U0FNRQ==");
        assert_eq!(b64("NHWC"), "TkhXQw==");
    }

    #[test]
    fn names_become_tf_node_names() {
        assert_eq!(sanitize("serving_default_x:0"), "serving_default_x_0");
        assert_eq!(sanitize("_private"), "n_private");
        assert_eq!(sanitize("a/b.c-d"), "a/b.c-d");
    }
}
