//! Building ONNX nodes: names, attributes and the small constants (shapes, axes) that ONNX
//! takes as inputs. The weights themselves are not copied: initializers refer to IR values.

use crate::formats::onnx::onnx_code;
use crate::ir::{DType, Dim, Graph, Names, Tensor, ValueId};
use std::collections::HashSet;
use tract_onnx::pb::{self, attribute_proto::AttributeType, AttributeProto, NodeProto};

/// A tensor written as an initializer: an IR constant (shared bytes) or one the writer made.
pub struct Initializer {
    pub name: String,
    pub tensor: Tensor,
}

pub struct Emitter<'g> {
    pub g: &'g Graph,
    pub opset: i64,
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<Initializer>,
    /// Names in use: the graph's value names, and the node and value names written so far
    /// (one namespace: tract requires node names distinct from value names). Node names are
    /// not taken up front, so an IR node keeps its name unless a value already has it.
    names: Names,
    /// IR constants already listed as initializers.
    listed: HashSet<ValueId>,
    /// Index of the node being written (values made by earlier nodes can be read).
    pub position: usize,
    /// For each symbolic dim, the first value that has it: `(value, axis, producer index + 1)`
    /// (0 for graph inputs). Built on first use.
    carriers: Option<std::collections::HashMap<Dim, (ValueId, usize, usize)>>,
}

impl<'g> Emitter<'g> {
    pub fn new(g: &'g Graph, opset: i64) -> Emitter<'g> {
        Emitter {
            g,
            opset,
            nodes: Vec::new(),
            initializers: Vec::new(),
            names: g.value_names(),
            listed: HashSet::new(),
            position: 0,
            carriers: None,
        }
    }

    /// The ONNX name of an IR value, listing it as an initializer on first use if constant.
    pub fn input(&mut self, v: ValueId) -> String {
        let value = self.g.value(v);
        if let Some(t) = &value.constant {
            if self.listed.insert(v) {
                self.initializers.push(Initializer {
                    name: value.name.clone(),
                    tensor: t.clone(),
                });
            }
        }
        value.name.clone()
    }

    pub fn output(&self, v: ValueId) -> String {
        self.g.value(v).name.clone()
    }

    /// A name nothing else uses, derived from `base`.
    pub fn fresh(&mut self, base: &str) -> String {
        self.names.fresh(base)
    }

    /// A writer-made constant.
    pub fn konst(&mut self, base: &str, t: Tensor) -> String {
        let name = self.fresh(base);
        self.initializers.push(Initializer {
            name: name.clone(),
            tensor: t,
        });
        name
    }

    pub fn ints(&mut self, base: &str, v: &[i64]) -> String {
        self.konst(base, Tensor::from_i64(vec![v.len()], v))
    }

    pub fn scalar(&mut self, base: &str, dtype: DType, v: f64) -> String {
        self.konst(base, Tensor::from_f64s(dtype, vec![], &[v]))
    }

    pub fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: Vec<String>,
        outputs: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) {
        let name = self.names.fresh(name);
        self.nodes.push(NodeProto {
            input: inputs,
            output: outputs,
            name,
            op_type: op_type.to_string(),
            attribute,
            ..Default::default()
        });
    }

    /// Emits a one-output node writing a fresh intermediate value; returns the value's name.
    pub fn tmp(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) -> String {
        let out = self.fresh(&format!("{name}/{}", op_type.to_lowercase()));
        self.node(op_type, name, inputs, vec![out.clone()], attribute);
        out
    }

    /// A 1-D i64 tensor holding `dims`: a constant when every dim is fixed, otherwise built at
    /// run time from the shapes of values that have each symbol (`like` first, then the graph
    /// inputs); a product symbol (`batch*seq`) is the product of its factors. With `infer`, one
    /// dim no value has becomes -1 (Reshape infers it from the element count).
    pub fn shape_tensor(
        &mut self,
        name: &str,
        dims: &[Dim],
        like: ValueId,
        infer: bool,
    ) -> Result<String, String> {
        if let Some(v) = dims
            .iter()
            .map(|d| d.fixed().map(|n| n as i64))
            .collect::<Option<Vec<_>>>()
        {
            return Ok(self.ints(&format!("{name}/shape"), &v));
        }
        let mut shapes: Vec<(ValueId, String)> = Vec::new();
        let mut inferred = !infer;
        let mut parts = Vec::new();
        for d in dims {
            let part = match d {
                Dim::Fixed(n) => Some(self.ints(&format!("{name}/dim"), &[*n as i64])),
                Dim::Sym(_) => self.symbol_value(name, d, like, &mut shapes).or_else(|| {
                    let (c, syms) = d.factors();
                    let mut acc = (c != 1).then(|| self.ints(&format!("{name}/coef"), &[c as i64]));
                    for s in syms {
                        let f = self.symbol_value(name, &Dim::Sym(s), like, &mut shapes)?;
                        acc = Some(match acc {
                            None => f,
                            Some(a) => self.tmp("Mul", &format!("{name}/dim"), vec![a, f], vec![]),
                        });
                    }
                    acc
                }),
            };
            parts.push(match part {
                Some(p) => p,
                None if !inferred => {
                    inferred = true;
                    self.ints(&format!("{name}/infer"), &[-1])
                }
                None => {
                    return Err(format!(
                        "dimension '{d}' is not computable from the inputs' sizes"
                    ))
                }
            });
        }
        Ok(self.tmp("Concat", name, parts, vec![attr_i("axis", 0)]))
    }

    /// A 1-element i64 tensor holding the size `d` has at run time, read from the shape of a
    /// value that has it, if any does.
    fn symbol_value(
        &mut self,
        name: &str,
        d: &Dim,
        like: ValueId,
        shapes: &mut Vec<(ValueId, String)>,
    ) -> Option<String> {
        let g = self.g;
        let (v, i) = std::iter::once(like)
            .chain(g.inputs.iter().copied())
            .find_map(|v| g.ty(v).shape.iter().position(|s| s == d).map(|i| (v, i)))
            .or_else(|| self.earlier_carrier(d))?;
        let shape = match shapes.iter().find(|(s, _)| *s == v) {
            Some((_, n)) => n.clone(),
            None => {
                let x = self.input(v);
                let n = self.tmp("Shape", &format!("{name}/dims"), vec![x], vec![]);
                shapes.push((v, n.clone()));
                n
            }
        };
        let idx = self.ints(&format!("{name}/index"), &[i as i64]);
        Some(self.tmp(
            "Gather",
            &format!("{name}/dim"),
            vec![shape, idx],
            vec![attr_i("axis", 0)],
        ))
    }
}

impl Emitter<'_> {
    /// A value made before the node being written whose shape has the symbolic dim `d` (a
    /// convolution's output carries the `height` of its input's grid, say), and the axis.
    fn earlier_carrier(&mut self, d: &Dim) -> Option<(ValueId, usize)> {
        let g = self.g;
        let carriers = self.carriers.get_or_insert_with(|| {
            let mut m = std::collections::HashMap::new();
            let made = g.inputs.iter().map(|&v| (v, 0)).chain(
                g.nodes
                    .iter()
                    .enumerate()
                    .flat_map(|(k, n)| n.outputs.iter().map(move |&o| (o, k + 1))),
            );
            for (v, at) in made {
                for (axis, dim) in g.ty(v).shape.iter().enumerate() {
                    if !dim.is_fixed() {
                        m.entry(dim.clone()).or_insert((v, axis, at));
                    }
                }
            }
            m
        });
        let &(v, axis, at) = carriers.get(d)?;
        (at <= self.position).then_some((v, axis))
    }
}

pub fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}
pub fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}
pub fn attr_s(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}
pub fn attr_ints(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints,
        ..Default::default()
    }
}
pub fn attr_usizes(name: &str, v: &[usize]) -> AttributeProto {
    attr_ints(name, v.iter().map(|&x| x as i64).collect())
}
pub fn attr_strings(name: &str, v: &[String]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Strings as i32,
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}
/// A small tensor attribute (ConstantOfShape value), encoded inline.
pub fn attr_t(name: &str, t: &Tensor) -> AttributeProto {
    let tp = pb::TensorProto {
        dims: t.shape.iter().map(|&d| d as i64).collect(),
        data_type: onnx_code(t.dtype),
        raw_data: t.data.to_vec(),
        ..Default::default()
    };
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Tensor as i32,
        t: Some(tp),
        ..Default::default()
    }
}
