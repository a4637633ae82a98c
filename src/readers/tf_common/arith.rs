//! TF's arithmetic whose meaning differs from the IR's ONNX-form ops, shared by the SavedModel
//! (and so TF.js graph) and TFLite readers: AddN / ADD_N, FloorDiv / FLOOR_DIV and FloorMod /
//! FLOOR_MOD, which round toward negative infinity where the IR's integer Div truncates and its
//! float Mod is C's fmod.

use crate::ir::ops::{BinaryOp, UnaryOp};
use crate::ir::{Op, ValueId};
use crate::readers::builder::{GraphBuilder, NodeError, NodeResult, ShapeEntry};

/// The sum of every input (at least one).
pub fn add_n(b: &mut GraphBuilder, name: &str, inputs: &[ValueId]) -> NodeResult<Vec<ValueId>> {
    let (&first, rest) = inputs
        .split_first()
        .ok_or_else(|| NodeError::Invalid("no inputs to add".into()))?;
    let mut acc = first;
    for (i, &v) in rest.iter().enumerate() {
        let at = if i + 1 == rest.len() {
            name.to_string()
        } else {
            format!("{name}/{}", i + 1)
        };
        acc = b.emit1(&at, Op::Binary(BinaryOp::Add), vec![acc, v])?;
    }
    Ok(vec![acc])
}

/// Whether every element of `v` is known not to be negative (constants, and shape arithmetic
/// the builder tracks: dims are never negative).
fn never_negative(b: &GraphBuilder, v: ValueId) -> bool {
    b.shape_entries(v).is_some_and(|e| {
        e.iter().all(|x| match x {
            ShapeEntry::Int(n) => *n >= 0,
            ShapeEntry::Sym(_) => true,
            ShapeEntry::Unknown => false,
        })
    })
}

/// `x // y`, rounded toward negative infinity: `floor(x / y)` on floats; on integers the IR's
/// truncating Div where both operands are known non-negative (shape arithmetic such as
/// `tf.shape(x)[1] // 2`, which the builder then keeps tracking), else the exact
/// `(x - floormod(x, y)) / y`.
pub fn floor_div(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    y: ValueId,
) -> NodeResult<Vec<ValueId>> {
    let div = Op::Binary(BinaryOp::Div);
    if b.g.ty(x).dtype.is_float() {
        let q = b.emit1(&format!("{name}/div"), div, vec![x, y])?;
        return b.emit(name, Op::Unary(UnaryOp::Floor), vec![q]);
    }
    if never_negative(b, x) && never_negative(b, y) {
        return b.emit(name, div, vec![x, y]);
    }
    let m = b.emit1(
        &format!("{name}/mod"),
        Op::Binary(BinaryOp::Mod),
        vec![x, y],
    )?;
    let exact = b.emit1(
        &format!("{name}/sub"),
        Op::Binary(BinaryOp::Sub),
        vec![x, m],
    )?;
    b.emit(name, div, vec![exact, y])
}

/// `x mod y` with the divisor's sign: the IR's Mod on integers; `x - floor(x / y) · y` on floats.
pub fn floor_mod(
    b: &mut GraphBuilder,
    name: &str,
    x: ValueId,
    y: ValueId,
) -> NodeResult<Vec<ValueId>> {
    if !b.g.ty(x).dtype.is_float() {
        return b.emit(name, Op::Binary(BinaryOp::Mod), vec![x, y]);
    }
    let q = floor_div(b, &format!("{name}/floordiv"), x, y)?[0];
    let p = b.emit1(
        &format!("{name}/mul"),
        Op::Binary(BinaryOp::Mul),
        vec![q, y],
    )?;
    b.emit(name, Op::Binary(BinaryOp::Sub), vec![x, p])
}
