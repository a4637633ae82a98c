//! The graph-building core every reader shares: emitting IR nodes with import-time constant
//! folding (`fold.rs`), and tracking the contents of small shape tensors (`Shape` of an input
//! with a symbolic batch, and the gathers, concats and arithmetic around it) so that shape
//! subgraphs fold away and reshape targets resolve statically even when the batch is a symbol.

use crate::error::Unsupported;
use crate::ir::fold;
use crate::ir::ops::BinaryOp;
use crate::ir::ops::Reshape;
use crate::ir::{Dim, Graph, Op, Shape, Tensor, ValueId};
use std::collections::{HashMap, HashSet};

/// Why a node could not be imported.
pub enum NodeError {
    /// The op or this use of it is not supported; listed with every other such node.
    Unsupported(String),
    /// The model is malformed at this node.
    Invalid(String),
}

impl From<String> for NodeError {
    fn from(s: String) -> NodeError {
        NodeError::Invalid(s)
    }
}

pub type NodeResult<T> = Result<T, NodeError>;

pub fn unsupported<T>(why: impl Into<String>) -> NodeResult<T> {
    Err(NodeError::Unsupported(why.into()))
}

/// One element of a shape-like tensor whose contents are known at import time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeEntry {
    Int(i64),
    Sym(String),
    /// Computed at run time from something not tracked (e.g. a product of two symbols).
    Unknown,
}

/// A SpaceToBatchND the TF reader wrote out as reshapes, kept so that the BatchToSpaceND closing
/// a dilated convolution can fold the chain into one convolution.
#[derive(Clone, Debug)]
pub struct SpaceToBatch {
    pub x: ValueId,
    pub block: Vec<usize>,
    pub pads: Vec<(i64, i64)>,
}

/// A graph under construction with the bookkeeping readers share.
#[derive(Default)]
pub struct GraphBuilder {
    pub g: Graph,
    /// SpaceToBatchND outputs (the TF reader's), by value.
    pub space_to_batch: HashMap<ValueId, SpaceToBatch>,
    /// Known contents of 1-D / scalar integer values that are not constants (e.g. `Shape` of
    /// an input with a symbolic batch).
    shape_contents: HashMap<ValueId, Vec<ShapeEntry>>,
    used_names: HashSet<String>,
    /// The next suffix to try per base name: names are never given back, so every smaller
    /// suffix is taken, and a model of n nodes sharing one name costs n probes, not n².
    next_suffix: HashMap<String, usize>,
    pub unsupported: Vec<Unsupported>,
}

/// Arithmetic on shape entries where the answer does not depend on a symbol's value.
/// A shape entry as a dimension (non-negative ints and symbols only).
fn entry_dim(e: &ShapeEntry) -> Option<Dim> {
    match e {
        ShapeEntry::Int(n) if *n >= 0 => Some(Dim::Fixed(*n as u64)),
        ShapeEntry::Sym(s) => Some(Dim::Sym(s.clone())),
        _ => None,
    }
}

/// The binary ops exporters build shape arithmetic from, which [`symbolic_binary`] tracks.
fn shape_arithmetic(op: BinaryOp) -> bool {
    match op {
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::Div
        | BinaryOp::Max
        | BinaryOp::Min
        | BinaryOp::Equal => true,
        BinaryOp::Pow
        | BinaryOp::Mod
        | BinaryOp::Fmod
        | BinaryOp::PRelu
        | BinaryOp::Less
        | BinaryOp::Greater
        | BinaryOp::LessOrEqual
        | BinaryOp::GreaterOrEqual
        | BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Xor
        | BinaryOp::SquaredDifference
        | BinaryOp::BitShiftLeft
        | BinaryOp::BitShiftRight
        | BinaryOp::BitwiseAnd
        | BinaryOp::BitwiseOr
        | BinaryOp::BitwiseXor => false,
    }
}

fn symbolic_binary(op: BinaryOp, x: &ShapeEntry, y: &ShapeEntry) -> Option<ShapeEntry> {
    use ShapeEntry::{Int, Sym, Unknown};
    if !shape_arithmetic(op) {
        return None;
    }
    Some(match (op, x, y) {
        (_, Int(a), Int(b)) => match op {
            BinaryOp::Add => a.checked_add(*b).map_or(Unknown, Int),
            BinaryOp::Sub => a.checked_sub(*b).map_or(Unknown, Int),
            BinaryOp::Mul => a.checked_mul(*b).map_or(Unknown, Int),
            // ONNX integer Div truncates toward zero, as checked_div does.
            BinaryOp::Div => a.checked_div(*b).map_or(Unknown, Int),
            BinaryOp::Max => Int(*a.max(b)),
            BinaryOp::Min => Int(*a.min(b)),
            BinaryOp::Equal => Int((a == b) as i64),
            // Not reached: `shape_arithmetic` let none of these through.
            BinaryOp::Pow
            | BinaryOp::Mod
            | BinaryOp::Fmod
            | BinaryOp::PRelu
            | BinaryOp::Less
            | BinaryOp::Greater
            | BinaryOp::LessOrEqual
            | BinaryOp::GreaterOrEqual
            | BinaryOp::And
            | BinaryOp::Or
            | BinaryOp::Xor
            | BinaryOp::SquaredDifference
            | BinaryOp::BitShiftLeft
            | BinaryOp::BitShiftRight
            | BinaryOp::BitwiseAnd
            | BinaryOp::BitwiseOr
            | BinaryOp::BitwiseXor => Unknown,
        },
        (BinaryOp::Mul, Sym(_) | Int(_), Sym(_) | Int(_)) => {
            match Dim::product(&[entry_dim(x)?, entry_dim(y)?]) {
                Dim::Sym(s) => Sym(s),
                Dim::Fixed(n) => Int(n as i64),
            }
        }
        (BinaryOp::Div, Sym(_), Sym(_) | Int(_)) => match entry_dim(x)?.divide(&entry_dim(y)?) {
            Some(Dim::Sym(s)) => Sym(s),
            Some(Dim::Fixed(n)) => Int(n as i64),
            None => Unknown,
        },
        (BinaryOp::Add | BinaryOp::Sub, Sym(s), Int(0)) | (BinaryOp::Add, Int(0), Sym(s)) => {
            Sym(s.clone())
        }
        // A dimension is never negative, so it never equals -1 (PyTorch's "infer" marker).
        (BinaryOp::Equal, Sym(_), Int(n)) | (BinaryOp::Equal, Int(n), Sym(_)) if *n < 0 => Int(0),
        (BinaryOp::Equal, Sym(a), Sym(b)) if a == b => Int(1),
        (BinaryOp::Max, Sym(s), Int(n)) | (BinaryOp::Max, Int(n), Sym(s)) if *n <= 1 => {
            Sym(s.clone())
        }
        _ => Unknown,
    })
}

impl GraphBuilder {
    pub fn new() -> GraphBuilder {
        GraphBuilder::default()
    }

    /// A value name not used yet, based on `base`.
    pub fn unique_name(&mut self, base: &str) -> String {
        if self.used_names.insert(base.to_string()) {
            return base.to_string();
        }
        let mut k = self.next_suffix.get(base).copied().unwrap_or(1);
        let mut name = format!("{base}_{k}");
        while !self.used_names.insert(name.clone()) {
            k += 1;
            name = format!("{base}_{k}");
        }
        self.next_suffix.insert(base.to_string(), k + 1);
        name
    }

    /// Marks `name` as taken (a value renamed by the reader).
    pub fn claim_name(&mut self, name: &str) -> bool {
        self.used_names.insert(name.to_string())
    }

    pub fn name_taken(&self, name: &str) -> bool {
        self.used_names.contains(name)
    }

    /// Adds a graph input under a unique name based on `name`.
    pub fn add_input(&mut self, name: &str, ty: crate::ir::TensorType) -> ValueId {
        let n = self.unique_name(name);
        self.g.add_input(&n, ty)
    }

    pub fn add_const(&mut self, name: &str, t: Tensor) -> ValueId {
        let n = self.unique_name(name);
        self.g.add_const(&n, t)
    }

    /// Adds an IR node (or, when every input is constant and the op folds, constants) and
    /// returns its outputs. `base` names the node; outputs get `base:i` names until bound.
    pub fn emit(&mut self, base: &str, op: Op, inputs: Vec<ValueId>) -> NodeResult<Vec<ValueId>> {
        let types = self.g.infer(&op, &inputs)?;
        let consts: Option<Vec<&Tensor>> = inputs.iter().map(|&i| self.g.constant(i)).collect();
        let folded = match consts {
            Some(c) => fold::fold(&op, &c, &types),
            None => fold::fold_from_types(
                &op,
                &inputs.iter().map(|&i| self.g.ty(i)).collect::<Vec<_>>(),
            ),
        };
        if let Some(tensors) = folded {
            return Ok(tensors
                .into_iter()
                .enumerate()
                .map(|(i, t)| self.add_const(&format!("{base}:{i}"), t))
                .collect());
        }
        let contents = if types.len() == 1 && types[0].rank() <= 1 && !types[0].dtype.is_float() {
            self.shape_contents_of(&op, &inputs)
        } else {
            None
        };
        // Contents known and free of symbols: the value is a constant.
        if let Some(c) = &contents {
            let ints: Option<Vec<i64>> = c
                .iter()
                .map(|e| {
                    if let ShapeEntry::Int(v) = e {
                        Some(*v)
                    } else {
                        None
                    }
                })
                .collect();
            if let Some(ints) = ints.filter(|v| types[0].rank() == 1 || v.len() == 1) {
                let shape = if types[0].rank() == 1 {
                    vec![ints.len()]
                } else {
                    vec![]
                };
                let t = Tensor::from_i64s(types[0].dtype, shape, &ints);
                return Ok(vec![self.add_const(&format!("{base}:0"), t)]);
            }
        }
        let node_name = self.unique_name(base);
        let out_names: Vec<String> = (0..types.len())
            .map(|i| self.unique_name(&format!("{base}:{i}")))
            .collect();
        let filled_shape = match op {
            Op::ConstantOfShape(_) => inputs.first().and_then(|&s| self.shape_entries(s)),
            _ => None,
        };
        let parts = self.split_contents(&op, &inputs);
        let outs = self.g.add_node(&node_name, op, inputs, &out_names)?;
        // A fill whose shape is known as entries (`[batch, 4]` from `Shape(x)`) has those sizes,
        // not fresh symbols: later values (a recurrent state) then share `batch` with `x`.
        if let (Some(e), Some(&o)) = (filled_shape, outs.first()) {
            let dims: Option<Vec<Dim>> = e.iter().map(entry_dim).collect();
            if let Some(dims) = dims.filter(|d| d.len() == self.g.ty(o).rank()) {
                self.g.value_mut(o).ty.shape = dims;
            }
        }
        if let Some(c) = contents {
            self.shape_contents.insert(outs[0], c);
        }
        for (&o, c) in outs.iter().zip(parts.unwrap_or_default()) {
            self.shape_contents.insert(o, c);
        }
        Ok(outs)
    }

    /// The pieces of a shape-like vector split along its one axis (TF's `tf.signal.frame`
    /// splits `Shape(x)` into outer, framed and inner dimensions).
    fn split_contents(&self, op: &Op, inputs: &[ValueId]) -> Option<Vec<Vec<ShapeEntry>>> {
        let Op::Split(s) = op else { return None };
        let x = *inputs.first()?;
        let t = self.g.ty(x);
        if s.axis != 0 || t.rank() != 1 || !t.dtype.is_int() {
            return None;
        }
        let e = self.shape_entries(x)?;
        let mut at = 0usize;
        s.sizes
            .iter()
            .map(|&n| {
                let part = e.get(at..at.checked_add(n)?)?.to_vec();
                at += n;
                Some(part)
            })
            .collect()
    }

    /// Emits a single-output op.
    pub fn emit1(&mut self, base: &str, op: Op, inputs: Vec<ValueId>) -> NodeResult<ValueId> {
        let outs = self.emit(base, op, inputs)?;
        outs.into_iter()
            .next()
            .ok_or_else(|| NodeError::Invalid("op produced no output".into()))
    }

    /// The contents of a small integer tensor, if known now (constant or tracked).
    pub fn shape_entries(&self, id: ValueId) -> Option<Vec<ShapeEntry>> {
        if let Some(t) = self.g.constant(id) {
            return Some(t.to_i64s()?.into_iter().map(ShapeEntry::Int).collect());
        }
        self.shape_contents.get(&id).cloned()
    }

    /// Like [`Importer::shape_entries`], but a small integer tensor of fixed length whose
    /// contents are not tracked reads as that many `Unknown` entries, so that what *is* known
    /// around it (constants, symbols) still propagates.
    pub fn entries_or_unknown(&self, id: ValueId) -> Option<Vec<ShapeEntry>> {
        if let Some(e) = self.shape_entries(id) {
            return Some(e);
        }
        let t = self.g.ty(id);
        if !t.dtype.is_int() || t.rank() > 1 {
            return None;
        }
        let n = t.shape.first().map_or(Some(1), |d| d.fixed())?;
        (n <= 16).then(|| vec![ShapeEntry::Unknown; n as usize])
    }

    /// Constant integer contents of an input (axes, pads, sizes…).
    pub fn const_ints(&self, id: ValueId) -> Option<Vec<i64>> {
        self.g.constant(id).and_then(|t| t.to_i64s())
    }

    pub fn const_floats(&self, id: ValueId) -> Option<Vec<f64>> {
        self.g.constant(id).map(|t| t.to_f64s())
    }

    /// What a node computes on shape-like values whose contents are known, if that can be
    /// said at import time (symbols pass through gathers, concats and the arithmetic that
    /// exporters wrap around them, e.g. PyTorch's `Where(Equal(shape, -1), 1, shape)`).
    fn shape_contents_of(&self, op: &Op, inputs: &[ValueId]) -> Option<Vec<ShapeEntry>> {
        let entries = |i: usize| inputs.get(i).and_then(|&v| self.entries_or_unknown(v));
        match op {
            Op::ShapeOf(s) => Some(
                self.g.ty(inputs[0]).shape[s.start..s.end]
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => ShapeEntry::Int(*n as i64),
                        Dim::Sym(s) => ShapeEntry::Sym(s.clone()),
                    })
                    .collect(),
            ),
            Op::Gather(g) if g.axis == 0 => {
                let (e, idx) = (entries(0)?, self.const_ints(*inputs.get(1)?)?);
                idx.iter()
                    .map(|&i| {
                        let i = if i < 0 { i + e.len() as i64 } else { i };
                        e.get(usize::try_from(i).ok()?).cloned()
                    })
                    .collect()
            }
            Op::Concat(_) => (0..inputs.len())
                .map(entries)
                .collect::<Option<Vec<_>>>()
                .map(|v| v.concat()),
            Op::Reshape(_) | Op::Cast(_) => entries(0),
            Op::Slice(s) if s.axes.len() == 1 && s.axes[0].axis == 0 && s.axes[0].step == 1 => {
                let e = entries(0)?;
                let n = e.len() as i64;
                let norm = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
                let (a, b) = (norm(s.axes[0].start) as usize, norm(s.axes[0].end) as usize);
                Some(e[a.min(b)..b].to_vec())
            }
            Op::Binary(b) => {
                let (x, y) = (entries(0)?, entries(1)?);
                let n = x.len().max(y.len());
                if (x.len() != n && x.len() != 1) || (y.len() != n && y.len() != 1) {
                    return None;
                }
                (0..n)
                    .map(|i| symbolic_binary(*b, &x[i.min(x.len() - 1)], &y[i.min(y.len() - 1)]))
                    .collect()
            }
            Op::ScatterElements(sc)
                if sc.axis == 0 && sc.reduction == crate::ir::ops::ScatterReduction::None =>
            {
                let (mut e, idx, upd) =
                    (entries(0)?, self.const_ints(*inputs.get(1)?)?, entries(2)?);
                let n = e.len() as i64;
                for (&i, u) in idx.iter().zip(&upd) {
                    let i = if i < 0 { i + n } else { i };
                    *e.get_mut(usize::try_from(i).ok()?)? = u.clone();
                }
                Some(e)
            }
            Op::Where => {
                let (c, x, y) = (entries(0)?, entries(1)?, entries(2)?);
                let n = c.len().max(x.len()).max(y.len());
                (0..n)
                    .map(|i| {
                        let (xe, ye) = (&x[i.min(x.len() - 1)], &y[i.min(y.len() - 1)]);
                        Some(match &c[i.min(c.len() - 1)] {
                            ShapeEntry::Int(0) => ye.clone(),
                            ShapeEntry::Int(_) => xe.clone(),
                            _ if xe == ye => xe.clone(),
                            _ => ShapeEntry::Unknown,
                        })
                    })
                    .collect()
            }
            Op::Unary(_)
            | Op::Activation(_)
            | Op::MatMul(_)
            | Op::Einsum(_)
            | Op::Conv(_)
            | Op::ConvTranspose(_)
            | Op::Pool(_)
            | Op::GlobalPool(_)
            | Op::BatchNorm(_)
            | Op::LayerNorm(_)
            | Op::InstanceNorm(_)
            | Op::Softmax(_)
            | Op::Hardmax(_)
            | Op::LpNorm(_)
            | Op::Transpose(_)
            | Op::Split(_)
            | Op::Slice(_)
            | Op::Pad(_)
            | Op::Tile(_)
            | Op::Expand(_)
            | Op::DepthToSpace(_)
            | Op::SpaceToDepth(_)
            | Op::Resize(_)
            | Op::GridSample(_)
            | Op::Gather(_)
            | Op::GatherElements(_)
            | Op::GatherNd(_)
            | Op::ScatterNd(_)
            | Op::ScatterElements(_)
            | Op::TopK(_)
            | Op::ArgReduce(_)
            | Op::CumSum(_)
            | Op::NonZero
            | Op::OneHot(_)
            | Op::Trilu(_)
            | Op::NonMaxSuppression(_)
            | Op::ConstantOfShape(_)
            | Op::Range
            | Op::Reduce(_)
            | Op::Lstm(_)
            | Op::Gru(_)
            | Op::QuantizeLinear(_)
            | Op::DequantizeLinear(_)
            | Op::DynamicQuantizeLinear
            | Op::ConvInteger(_)
            | Op::MatMulInteger
            | Op::QLinearConv(_)
            | Op::QLinearMatMul
            | Op::Dynamic(_)
            | Op::If(_)
            | Op::Loop(_) => None,
        }
    }
}

/// Emits a reshape of `x` to `shape` (dims resolved), or returns `x` when nothing changes.
pub fn reshape_to(
    imp: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    shape: Shape,
) -> NodeResult<Vec<ValueId>> {
    if imp.g.ty(x).shape == shape {
        return Ok(vec![x]);
    }
    imp.emit(name, Op::Reshape(Reshape { shape }), vec![x])
}

/// Resolves a reshape target (-1 infers; 0 copies the input dimension unless `allowzero`, as
/// in ONNX) against the input shape.
pub fn resolve_target(
    imp: &mut GraphBuilder,
    input: &[Dim],
    target: &[ShapeEntry],
    allowzero: bool,
) -> NodeResult<Shape> {
    let mut out: Vec<Option<Dim>> = Vec::with_capacity(target.len());
    let mut infer_at = None;
    // One entry computed at run time, with no -1 beside it, is what the element count implies.
    let unknowns = target.iter().filter(|e| **e == ShapeEntry::Unknown).count();
    let has_minus_one = target.contains(&ShapeEntry::Int(-1));
    if unknowns > 1 || (unknowns == 1 && has_minus_one) {
        return unsupported("target shape computed at run time");
    }
    for (i, e) in target.iter().enumerate() {
        out.push(match e {
            ShapeEntry::Int(0) if !allowzero => {
                Some(input.get(i).cloned().ok_or_else(|| {
                    NodeError::Invalid(format!("0 at axis {i} past the input rank"))
                })?)
            }
            ShapeEntry::Int(-1) | ShapeEntry::Unknown if infer_at.is_none() => {
                infer_at = Some(i);
                None
            }
            ShapeEntry::Int(n) if *n >= 0 => Some(Dim::Fixed(*n as u64)),
            ShapeEntry::Int(n) => {
                return Err(NodeError::Invalid(format!("bad target dimension {n}")))
            }
            ShapeEntry::Sym(s) => Some(Dim::Sym(s.clone())),
            ShapeEntry::Unknown => return unsupported("target shape computed at run time"),
        });
    }
    if let Some(at) = infer_at {
        let known: Vec<Dim> = out.iter().flatten().cloned().collect();
        out[at] = Some(match Dim::product(input).divide(&Dim::product(&known)) {
            Some(d) => d,
            None => imp.g.fresh_symbol(),
        });
    }
    Ok(out.into_iter().flatten().collect())
}

pub fn entries_to_shape(imp: &mut GraphBuilder, e: &[ShapeEntry]) -> NodeResult<Shape> {
    e.iter()
        .map(|v| match v {
            ShapeEntry::Int(n) if *n >= 0 => Ok(Dim::Fixed(*n as u64)),
            ShapeEntry::Int(-1) => Ok(imp.g.fresh_symbol()),
            ShapeEntry::Int(n) => Err(NodeError::Invalid(format!("bad dimension {n}"))),
            ShapeEntry::Sym(s) => Ok(Dim::Sym(s.clone())),
            ShapeEntry::Unknown => unsupported("shape computed at run time"),
        })
        .collect()
}
