//! The node builder the decompositions share: an ONNX op written as the IR ops of its function
//! body, every node named after the source node (`<node>/<what>`, made unique by the builder).

use super::super::import::{Importer, NodeResult};
use crate::ir::ops::{
    BinaryOp, Cast, Concat, Reduce, ReduceKind, Reshape, Slice, SliceAxis, Transpose, UnaryOp,
};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};

pub struct Build<'a> {
    pub imp: &'a mut Importer,
    pub name: String,
}

impl<'a> Build<'a> {
    pub fn new(imp: &'a mut Importer, name: &str) -> Build<'a> {
        Build {
            imp,
            name: name.to_string(),
        }
    }
    pub fn op(&mut self, what: &str, op: Op, inputs: Vec<ValueId>) -> NodeResult<ValueId> {
        self.imp.emit1(&format!("{}/{what}", self.name), op, inputs)
    }
    pub fn bin(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> NodeResult<ValueId> {
        self.op(
            &format!("{op:?}").to_lowercase(),
            Op::Binary(op),
            vec![a, b],
        )
    }
    pub fn un(&mut self, op: UnaryOp, x: ValueId) -> NodeResult<ValueId> {
        self.op(&format!("{op:?}").to_lowercase(), Op::Unary(op), vec![x])
    }
    pub fn cast(&mut self, x: ValueId, to: DType) -> NodeResult<ValueId> {
        if self.imp.g.ty(x).dtype == to {
            return Ok(x);
        }
        self.op("cast", Op::Cast(Cast { to }), vec![x])
    }
    pub fn scalar(&mut self, what: &str, dtype: DType, v: f64) -> ValueId {
        self.constant(what, Tensor::from_f64s(dtype, vec![], &[v]))
    }
    pub fn constant(&mut self, what: &str, t: Tensor) -> ValueId {
        self.imp.add_const(&format!("{}/{what}", self.name), t)
    }
    pub fn reduce(
        &mut self,
        kind: ReduceKind,
        x: ValueId,
        axes: Vec<usize>,
        keep: bool,
    ) -> NodeResult<ValueId> {
        if axes.is_empty() {
            return Ok(x);
        }
        let r = Reduce {
            kind,
            axes,
            keep_dims: keep,
        };
        self.op(&format!("{kind:?}").to_lowercase(), Op::Reduce(r), vec![x])
    }
    pub fn reshape(&mut self, x: ValueId, shape: Vec<Dim>) -> NodeResult<ValueId> {
        self.op("reshape", Op::Reshape(Reshape { shape }), vec![x])
    }
    pub fn transpose(&mut self, x: ValueId, perm: Vec<usize>) -> NodeResult<ValueId> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(x);
        }
        self.op("transpose", Op::Transpose(Transpose { perm }), vec![x])
    }
    pub fn concat(&mut self, xs: Vec<ValueId>, axis: usize) -> NodeResult<ValueId> {
        if xs.len() == 1 {
            return Ok(xs[0]);
        }
        self.op("concat", Op::Concat(Concat { axis }), xs)
    }
    /// `x[.., start..end, ..]` on one axis, stride 1.
    pub fn slice(&mut self, x: ValueId, axis: usize, start: i64, end: i64) -> NodeResult<ValueId> {
        let s = Slice {
            axes: vec![SliceAxis {
                axis,
                start,
                end,
                step: 1,
            }],
        };
        self.op("slice", Op::Slice(s), vec![x])
    }
    pub fn shape(&self, v: ValueId) -> Vec<Dim> {
        self.imp.g.ty(v).shape.clone()
    }
}
