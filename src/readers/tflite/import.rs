//! Importing subgraph 0: graph inputs (named from the signature), constants on first use,
//! operators in file order (TFLite stores them topologically sorted), graph outputs.
//!
//! Every tensor is bound to its *real* value: a quantized tensor's value is the float it stands
//! for, with the quantization kept as QuantizeLinear→DequantizeLinear where an operator writes
//! it (see `quant.rs`), so that float ops compute on it as they would in any other model.

use super::ops::{self, Node};
use super::quant;
use super::tensor;
use crate::error::Unsupported;
use crate::ir::{Graph, Op, TensorType, ValueId};
use crate::readers::builder::{GraphBuilder, NodeError, NodeResult};
use crate::readers::tf_common::fft::Complex;
use crate::readers::ReadOptions;
use bytes::Bytes;
use std::collections::HashMap;
use tract_tflite::tflite as tfl;

pub enum InputError {
    Usage(String),
    Invalid(String),
}

/// What a tensor index stands for during import.
#[derive(Clone, Copy, Debug)]
pub(super) enum Bound {
    Value(ValueId),
    /// A COMPLEX64 tensor (RFFT2D's result) as its real and imaginary parts: the IR has no
    /// complex type, so only the consumers in `complex.rs` take one.
    Complex(Complex),
    /// A VAR_HANDLE's resource: an index into `Importer::resources` (`variables.rs`).
    Resource(usize),
    /// Written by an unsupported operator (already reported).
    Poisoned,
}

pub struct Importer<'a> {
    pub b: GraphBuilder,
    pub(super) model: tfl::Model<'a>,
    pub(super) file: &'a Bytes,
    pub(super) sg: tfl::SubGraph<'a>,
    tensors: Vec<tfl::Tensor<'a>>,
    pub(super) bound: Vec<Option<Bound>>,
    /// The integer value of each quantized tensor read so far (its real value is `bound`):
    /// graph outputs and CAST, which reads the integers, take it.
    raw: HashMap<usize, ValueId>,
    /// Variables named by VAR_HANDLE (`container/shared_name`), and the constant values a
    /// CALL_ONCE init subgraph assigns them.
    pub(super) resources: Vec<String>,
    pub(super) variable_values: HashMap<String, crate::ir::Tensor>,
    /// Signature names of the subgraph's inputs and outputs, by tensor index.
    pub(super) names: HashMap<usize, String>,
    /// Whether activations are quantized (a full-integer model); else quantized constants are
    /// dynamic-range weights, dequantized on read.
    pub full_integer: bool,
    /// How deep in WHILE/IF subgraphs this importer is (0: the model).
    pub depth: usize,
    /// The subgraphs being imported, outermost first (a subgraph may not call itself).
    pub stack: Vec<usize>,
    /// Operators still to import, shared with the importers of the subgraphs this one runs
    /// ([`crate::ir::limits::max_nodes`] at the start): WHILE/IF nodes naming the same subgraph
    /// import it once each, so a few levels of fan-out would otherwise multiply a small file.
    pub budget: std::rc::Rc<std::cell::Cell<usize>>,
}

impl<'a> Importer<'a> {
    pub fn new(model: tfl::Model<'a>, file: &'a Bytes, index: usize) -> Result<Self, String> {
        let sg = model
            .subgraphs()
            .filter(|s| index < s.len())
            .ok_or_else(|| format!("the model has no subgraph {index}"))?
            .get(index);
        let tensors: Vec<tfl::Tensor> =
            sg.tensors().map(|t| t.iter().collect()).unwrap_or_default();
        let mut imp = Importer {
            b: GraphBuilder::new(),
            model,
            file,
            sg,
            bound: vec![None; tensors.len()],
            tensors,
            raw: HashMap::new(),
            resources: Vec::new(),
            variable_values: HashMap::new(),
            names: HashMap::new(),
            full_integer: false,
            depth: 0,
            stack: vec![index],
            budget: std::rc::Rc::new(std::cell::Cell::new(crate::ir::limits::max_nodes())),
        };
        imp.names = imp.signature_names(index, None);
        imp.full_integer = imp.has_quantized_activations();
        Ok(imp)
    }

    /// Names the inputs and outputs from signature `key` (which must be this subgraph's).
    pub fn use_signature(&mut self, index: usize, key: &str) {
        self.names = self.signature_names(index, Some(key));
    }

    /// Input and output names from a signature of this subgraph: `key`, else
    /// `serving_default`, else the first.
    fn signature_names(&self, index: usize, key: Option<&str>) -> HashMap<usize, String> {
        let mut out = HashMap::new();
        let Some(sigs) = self.model.signature_defs() else {
            return out;
        };
        let mine: Vec<tfl::SignatureDef> = sigs
            .iter()
            .filter(|s| s.subgraph_index() as usize == index)
            .collect();
        let sig = mine
            .iter()
            .find(|s| key.is_some() && s.signature_key() == key)
            .or_else(|| {
                mine.iter()
                    .find(|s| s.signature_key() == Some("serving_default"))
            })
            .or_else(|| mine.first());
        if let Some(sig) = sig {
            for map in [sig.inputs(), sig.outputs()].into_iter().flatten() {
                for m in map.iter() {
                    if let Some(n) = m.name().filter(|n| !n.is_empty()) {
                        out.insert(m.tensor_index() as usize, n.to_string());
                    }
                }
            }
        }
        out
    }

    fn has_quantized_activations(&self) -> bool {
        let ops = self
            .sg
            .operators()
            .map(|o| o.iter().collect::<Vec<_>>())
            .unwrap_or_default();
        ops.iter().any(|op| {
            op.outputs().is_some_and(|outs| {
                outs.iter().any(|i| {
                    self.tensor(i).is_ok_and(|(_, t)| {
                        matches!(t.type_(), tfl::TensorType::INT8 | tfl::TensorType::UINT8)
                            && t.quantization()
                                .and_then(|q| q.scale())
                                .is_some_and(|s| !s.is_empty())
                    })
                })
            })
        })
    }

    /// The tensor at a (file-given) index, bounded.
    fn tensor(&self, i: i32) -> Result<(usize, tfl::Tensor<'a>), String> {
        usize::try_from(i)
            .ok()
            .and_then(|u| self.tensors.get(u).map(|t| (u, *t)))
            .ok_or_else(|| {
                format!(
                    "tensor index {i} out of range ({} tensors)",
                    self.tensors.len()
                )
            })
    }

    pub fn tensor_name(&self, i: usize) -> String {
        self.tensors
            .get(i)
            .map_or_else(|| format!("tensor_{i}"), |t| tensor::name(t, i))
    }

    pub fn add_inputs(&mut self, opts: &ReadOptions) -> Result<(), InputError> {
        let inputs: Vec<i32> = self
            .sg
            .inputs()
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        for i in inputs {
            let (idx, t) = self.tensor(i).map_err(InputError::Invalid)?;
            let name = self
                .names
                .get(&idx)
                .cloned()
                .unwrap_or_else(|| tensor::name(&t, idx));
            let what = format!("input '{name}'");
            let g = &mut self.b.g;
            let mut ty = tensor::input_type(&t, &what, &mut || g.fresh_symbol())
                .map_err(InputError::Invalid)?;
            if let Some((_, shape)) = opts.input_shapes.iter().find(|(n, _)| *n == name) {
                if shape.len() != ty.rank() {
                    return Err(InputError::Usage(format!(
                        "input '{name}' has rank {}, the override gives {}",
                        ty.rank(),
                        shape.len()
                    )));
                }
                ty.shape = shape.clone();
            }
            let q = tensor::quant_params(&t, ty.rank(), &what).map_err(InputError::Invalid)?;
            let v = self.b.add_input(&name, ty);
            let real = match q.filter(|_| self.b.g.ty(v).dtype.is_int()) {
                Some(q) => {
                    self.b.g.value_mut(v).quant = Some(q.clone());
                    self.raw.insert(idx, v);
                    quant::dequantize(&mut self.b, &format!("{name}/dequantize"), v, &q)
                        .map_err(|e| InputError::Invalid(node_error_text(&what, e)))?
                }
                None => v,
            };
            self.bound[idx] = Some(Bound::Value(real));
        }
        Ok(())
    }

    /// Inputs of a subgraph imported as a WHILE/IF body, typed by the operator's operands.
    pub fn add_body_inputs(&mut self, types: &[TensorType]) -> Result<(), String> {
        let inputs: Vec<i32> = self
            .sg
            .inputs()
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        if inputs.len() != types.len() {
            return Err(format!(
                "the subgraph takes {} inputs, the operator gives {}",
                inputs.len(),
                types.len()
            ));
        }
        for (i, ty) in inputs.into_iter().zip(types) {
            let (idx, t) = self.tensor(i)?;
            let v = self.b.add_input(&tensor::name(&t, idx), ty.clone());
            self.bound[idx] = Some(Bound::Value(v));
        }
        Ok(())
    }

    /// Marks every value name of the graph taken (after inlining a subgraph into it).
    pub fn claim_all_names(&mut self) {
        let names: Vec<String> = self.b.g.values.iter().map(|v| v.name.clone()).collect();
        for n in names {
            self.b.claim_name(&n);
        }
    }

    /// The value an operator input stands for: bound, a constant (read now), or absent (-1).
    pub(super) fn input_value(&mut self, i: i32) -> Result<Option<Bound>, String> {
        if i < 0 {
            return Ok(None);
        }
        let (idx, t) = self.tensor(i)?;
        if let Some(b) = self.bound[idx] {
            return Ok(Some(b));
        }
        let name = tensor::name(&t, idx);
        let what = format!("tensor '{name}'");
        let Some(c) = tensor::constant(&self.model, self.file, &t, &what)? else {
            // A variable tensor (an LSTM's state) holds zeros when the interpreter starts:
            // absent, for handlers whose operand defaults to zeros.
            if t.is_variable() {
                return Ok(None);
            }
            return Err(format!("{what} is read before any operator writes it"));
        };
        let q = tensor::quant_params(&t, c.shape.len(), &what)?;
        let v = match q.filter(|_| c.dtype.is_int()) {
            Some(q) if !self.full_integer => {
                let f = quant::dequantize_const(&c, &q).map_err(|e| format!("{what}: {e}"))?;
                self.b.add_const(&name, f)
            }
            Some(q) => {
                let raw = self.b.add_const(&name, c);
                self.b.g.value_mut(raw).quant = Some(q.clone());
                self.raw.insert(idx, raw);
                quant::dequantize(&mut self.b, &format!("{name}/dequantize"), raw, &q)
                    .map_err(|e| node_error_text(&what, e))?
            }
            None => self.b.add_const(&name, c),
        };
        self.bound[idx] = Some(Bound::Value(v));
        Ok(Some(Bound::Value(v)))
    }

    pub fn import_ops(&mut self) -> Result<(), String> {
        let codes: Vec<tfl::OperatorCode> = self
            .model
            .operator_codes()
            .map(|c| c.iter().collect())
            .unwrap_or_default();
        let operators: Vec<tfl::Operator> = self
            .sg
            .operators()
            .map(|o| o.iter().collect())
            .unwrap_or_default();
        for (k, op) in operators.iter().enumerate() {
            let left = self.budget.get();
            if left == 0 {
                return Err(crate::ir::limits::too_many_nodes(&format!("operator {k}")));
            }
            self.budget.set(left - 1);
            let code = codes.get(op.opcode_index() as usize).ok_or_else(|| {
                format!(
                    "operator {k}: opcode index {} out of range",
                    op.opcode_index()
                )
            })?;
            self.import_op(k, *op, code)?;
        }
        self.refuse_complex_outputs();
        Ok(())
    }

    fn import_op(
        &mut self,
        k: usize,
        op: tfl::Operator<'a>,
        code: &tfl::OperatorCode,
    ) -> Result<(), String> {
        let outs: Vec<i32> = op.outputs().map(|v| v.iter().collect()).unwrap_or_default();
        let out_idx: Vec<usize> = outs
            .iter()
            .map(|&o| self.tensor(o).map(|t| t.0))
            .collect::<Result<_, _>>()?;
        let builtin = builtin_code(code);
        let op_name = match code.custom_code() {
            Some(c) if builtin == tfl::BuiltinOperator::CUSTOM => c.to_string(),
            _ => builtin
                .variant_name()
                .map_or_else(|| format!("BUILTIN_{}", builtin.0), str::to_string),
        };
        let name = out_idx
            .first()
            .map_or_else(|| format!("operator_{k}"), |&i| self.tensor_name(i));
        if super::variables::is_variable_op(builtin) {
            let result = self.variable_op(builtin, op, &name, &out_idx);
            return self.settle(k, &op_name, &name, &out_idx, result);
        }
        let complex = self
            .takes_complex(&op, builtin)
            .map_err(|e| format!("operator {k} ({op_name} '{name}'): {e}"))?;
        if complex {
            let result = self.complex_op(builtin, op, &name, &out_idx);
            return self.settle(k, &op_name, &name, &out_idx, result);
        }
        let (inputs, poisoned) = self
            .operator_inputs(&op, builtin == tfl::BuiltinOperator::CAST)
            .map_err(|e| format!("operator {k} ({op_name} '{name}'): {e}"))?;
        let control = matches!(
            builtin,
            tfl::BuiltinOperator::WHILE | tfl::BuiltinOperator::IF
        );
        let handler = ops::handler(builtin);
        let result = if handler.is_none() && !control {
            Err(NodeError::Unsupported(
                if builtin == tfl::BuiltinOperator::CUSTOM {
                    "custom operator (not a TFLite builtin)"
                } else {
                    "builtin operator not supported by the TFLite reader"
                }
                .to_string(),
            ))
        } else if poisoned {
            // Downstream of an unsupported op: nothing to compute, nothing more to report.
            for &o in &out_idx {
                self.bound[o] = Some(Bound::Poisoned);
            }
            Ok(())
        } else {
            let node = Node {
                name: name.clone(),
                code: builtin,
                op,
                inputs,
                out_dtypes: vec![],
            };
            self.compute(node, handler, &out_idx)
        };
        self.settle(k, &op_name, &name, &out_idx, result)
    }

    /// An operator's outcome: unsupported ones are listed (their outputs poisoned so nothing
    /// downstream is reported again); an invalid one fails the read, naming it.
    fn settle(
        &mut self,
        k: usize,
        op_name: &str,
        name: &str,
        out_idx: &[usize],
        result: NodeResult<()>,
    ) -> Result<(), String> {
        match result {
            Ok(()) => Ok(()),
            Err(NodeError::Unsupported(reason)) => {
                self.b.unsupported.push(Unsupported {
                    op: op_name.to_string(),
                    node: name.to_string(),
                    reason,
                });
                for &o in out_idx {
                    self.bound[o] = Some(Bound::Poisoned);
                }
                Ok(())
            }
            Err(NodeError::Invalid(why)) => {
                Err(format!("operator {k} ({op_name} '{name}'): {why}"))
            }
        }
    }

    /// Runs an operator's handler (or WHILE/IF) and binds its results to `out_idx`.
    fn compute(
        &mut self,
        mut node: Node<'a>,
        handler: Option<ops::Handler>,
        out_idx: &[usize],
    ) -> NodeResult<()> {
        if node.code == tfl::BuiltinOperator::QUANTIZE
            && self.exact_requantize(&node.op, out_idx)?
        {
            return Ok(());
        }
        node.out_dtypes = out_idx
            .iter()
            .map(|&o| tensor::dtype(self.tensors[o].type_()).ok())
            .collect();
        let vals = match handler {
            Some(h) => h(&mut self.b, &node)?,
            None => self.control(&node.name, &node.op, &node.inputs)?,
        };
        if vals.len() < out_idx.len() {
            return Err(NodeError::Invalid(format!(
                "{} outputs computed for {} tensors",
                vals.len(),
                out_idx.len()
            )));
        }
        self.bind_outputs(out_idx, &vals)
    }

    /// An operator's input values (`None` for an absent optional one) and whether any comes
    /// from an unsupported operator. `integers`: quantized inputs as their integer values (for
    /// CAST, which converts the stored integers), not their real ones.
    fn operator_inputs(
        &mut self,
        op: &tfl::Operator<'a>,
        integers: bool,
    ) -> Result<(Vec<Option<ValueId>>, bool), String> {
        let mut inputs = Vec::new();
        let mut poisoned = false;
        for i in op
            .inputs()
            .map(|v| v.iter().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let bound = self.input_value(i)?;
            let raw = usize::try_from(i)
                .ok()
                .and_then(|u| self.raw.get(&u))
                .copied();
            match bound {
                Some(Bound::Value(_)) if integers && raw.is_some() => inputs.push(raw),
                Some(Bound::Value(v)) => inputs.push(Some(v)),
                Some(Bound::Complex(_) | Bound::Resource(_)) => {
                    // `takes_complex` sends every operator with such an input elsewhere.
                    return Err("a complex input to a real-valued operator".into());
                }
                Some(Bound::Poisoned) => {
                    poisoned = true;
                    inputs.push(None)
                }
                None => inputs.push(None),
            }
        }
        Ok((inputs, poisoned))
    }

    /// QUANTIZE of a quantized integer tensor that [`quant::exact_shift`] maps exactly (uint8
    /// ↔ int8 I/O): the integers shifted, without a float round trip. Whether it applied.
    fn exact_requantize(&mut self, op: &tfl::Operator<'a>, out_idx: &[usize]) -> NodeResult<bool> {
        let first = op.inputs().and_then(|v| v.iter().next()).unwrap_or(-1);
        let (Ok(i), [o]) = (usize::try_from(first), out_idx) else {
            return Ok(false);
        };
        let Some(&raw) = self.raw.get(&i) else {
            return Ok(false);
        };
        let (tin, tout) = (self.tensors[i], self.tensors[*o]);
        let rank = self.b.g.ty(raw).rank();
        let name = tensor::name(&tout, *o);
        let qin = tensor::quant_params(&tin, rank, &format!("tensor '{}'", tensor::name(&tin, i)))?;
        let qout = tensor::quant_params(&tout, rank, &format!("tensor '{name}'"))?;
        let (din, dout) = (tensor::dtype(tin.type_())?, tensor::dtype(tout.type_())?);
        let (Some(qin), Some(qout)) = (qin, qout) else {
            return Ok(false);
        };
        let Some(shift) = quant::exact_shift((&qin, din), (&qout, dout)) else {
            return Ok(false);
        };
        let q = quant::shift_integers(&mut self.b, &name, raw, shift, dout)?;
        self.b.g.value_mut(q).quant = Some(qout.clone());
        self.raw.insert(*o, q);
        let real = quant::dequantize(&mut self.b, &name, q, &qout)?;
        self.bound[*o] = Some(Bound::Value(real));
        Ok(true)
    }

    /// Binds an operator's results to its output tensors, fake-quantizing each quantized one.
    pub(super) fn bind_outputs(
        &mut self,
        out_idx: &[usize],
        vals: &[ValueId],
    ) -> Result<(), NodeError> {
        for (&o, &v) in out_idx.iter().zip(vals) {
            let t = self.tensors[o];
            let name = tensor::name(&t, o);
            let rank = self.b.g.ty(v).rank();
            let q = tensor::quant_params(&t, rank, &format!("tensor '{name}'"))?;
            let dt = tensor::dtype(t.type_())?;
            let computed = self.b.g.ty(v).dtype;
            let real = match q.filter(|_| dt.is_int()) {
                // A float result stored quantized: the integer kernel's rounding and clamping.
                Some(q) if computed.is_float() => {
                    let (qv, real) = quant::fake_quantize(&mut self.b, &name, v, dt, &q)?;
                    self.raw.insert(o, qv);
                    real
                }
                // Integers moved into a quantized tensor (a TRANSPOSE of a CAST's result):
                // they are the quantized values; the real value is theirs dequantized.
                Some(q) if computed == dt => {
                    self.raw.insert(o, v);
                    quant::dequantize(&mut self.b, &format!("{name}/dequantize"), v, &q)?
                }
                _ => v,
            };
            self.bound[o] = Some(Bound::Value(real));
        }
        Ok(())
    }

    /// An operator's builtin code (`None` for an opcode index out of range).
    pub(super) fn op_code(&self, op: &tfl::Operator) -> Option<tfl::BuiltinOperator> {
        let codes = self.model.operator_codes()?;
        let i = op.opcode_index() as usize;
        (i < codes.len()).then(|| builtin_code(&codes.get(i)))
    }

    /// The subgraph's output tensor indices.
    pub(super) fn subgraph_outputs(&self) -> Vec<i32> {
        self.sg
            .outputs()
            .map(|v| v.iter().collect())
            .unwrap_or_default()
    }

    /// Binds the graph outputs under their signature (or tensor) names.
    pub fn finish(mut self) -> Result<Graph, String> {
        for i in self.subgraph_outputs() {
            let (idx, t) = self.tensor(i)?;
            let name = self
                .names
                .get(&idx)
                .cloned()
                .unwrap_or_else(|| tensor::name(&t, idx));
            let v = match (self.raw.get(&idx), self.bound[idx]) {
                (Some(&q), _) => q,
                (None, Some(Bound::Value(v))) => v,
                (None, _) => match self.input_value(i)? {
                    Some(Bound::Value(v)) => v,
                    _ => return Err(format!("output '{name}' is never computed")),
                },
            };
            self.bind_output(&name, v)?;
        }
        Ok(std::mem::take(&mut self.b.g))
    }

    /// Makes `v` a graph output called `name` (through an identity reshape when `v` is an
    /// input, a constant or another output, so that both names exist).
    fn bind_output(&mut self, name: &str, v: ValueId) -> Result<(), String> {
        let g = &self.b.g;
        let shared = g.inputs.contains(&v) || g.constant(v).is_some() || g.outputs.contains(&v);
        // The output is called exactly what the signature says: an inner value that took the
        // name first (a tensor named like the key) gives it up; a node's name is no obstacle.
        if !shared && g.value(v).name != name {
            let holder = g
                .values
                .iter()
                .position(|x| x.name == name)
                .map(crate::ir::ValueId);
            let movable = holder.is_none_or(|w| !g.inputs.contains(&w) && !g.outputs.contains(&w));
            if movable {
                if let Some(w) = holder {
                    let fresh = self.b.unique_name(&format!("{name}_inner"));
                    self.b.g.value_mut(w).name = fresh;
                }
                self.b.claim_name(name);
                self.b.g.value_mut(v).name = name.to_string();
                self.b.g.outputs.push(v);
                return Ok(());
            }
        }
        let g = &self.b.g;
        let v = if g.value(v).name == name && !shared {
            v
        } else if shared || self.b.name_taken(name) {
            let shape = self.b.g.ty(v).shape.clone();
            let n = self.b.unique_name(name);
            // The value takes the output's own name when no value holds it now (an aliased
            // value renamed to an earlier output's name left it free in the graph).
            let free = !self.b.g.values.iter().any(|x| x.name == name);
            let value_name = if free { name.to_string() } else { n.clone() };
            let op = Op::Reshape(crate::ir::ops::Reshape { shape });
            self.b
                .g
                .add_node(&n, op, vec![v], std::slice::from_ref(&value_name))?[0]
        } else {
            self.b.claim_name(name);
            self.b.g.value_mut(v).name = name.to_string();
            v
        };
        self.b.g.outputs.push(v);
        Ok(())
    }
}

/// The operator's builtin code: the larger of `builtin_code` and the deprecated int8 field
/// (files written before the schema grew past 127 operators fill only the latter).
fn builtin_code(code: &tfl::OperatorCode) -> tfl::BuiltinOperator {
    let dep = tfl::BuiltinOperator(i32::from(code.deprecated_builtin_code()));
    if code.builtin_code().0 > dep.0 {
        code.builtin_code()
    } else {
        dep
    }
}

fn node_error_text(what: &str, e: NodeError) -> String {
    match e {
        NodeError::Unsupported(s) | NodeError::Invalid(s) => format!("{what}: {s}"),
    }
}
