//! ONNX GatherElements / ScatterElements through TF's N-d forms (TF.js has neither op):
//! the element coordinates `[..., rank]` are the indices along `axis` stacked with position
//! grids for the other axes, then `GatherNd` / `TensorScatterUpdate`. A grid is a constant when
//! the indices' shape is fixed, else `Range` over the axis broadcast to the indices' `Shape`. Negative
//! indices are wrapped with `FloorMod` by the axis size (ONNX allows `[-size, size)`).

use super::emit::{a_int, a_type, Gx};
use crate::ir::{DType, Node, Tensor};

/// The `[..., rank]` int32 coordinates of every element of `n.inputs[1]` along `axis`.
fn coordinates(gx: &mut Gx, n: &Node, axis: usize) -> Result<String, String> {
    let g = gx.g;
    let data = g.ty(n.inputs[0]).clone();
    let idx_ty = g.ty(n.inputs[1]).clone();
    let fixed = crate::ir::shape_fixed(&idx_ty.shape);
    let rank = idx_ty.rank();
    let size = data.shape[axis]
        .fixed()
        .ok_or("the gathered axis must have a fixed size")? as i64;
    let mut idx = gx.r(n.inputs[1])?;
    if idx_ty.dtype != DType::I32 {
        idx = gx.node(
            "indices",
            "Cast",
            vec![idx],
            vec![("SrcT", a_type(idx_ty.dtype)), ("DstT", a_type(DType::I32))],
        );
    }
    let size = gx.int("axis_size", size)?;
    let idx = gx.node(
        "wrapped",
        "FloorMod",
        vec![idx, size],
        vec![("T", a_type(DType::I32))],
    );
    let i32t = || ("T", a_type(DType::I32));
    let mut parts = Vec::with_capacity(rank);
    let mut idx_shape = None;
    for a in 0..rank {
        if a == axis {
            parts.push(idx.clone());
            continue;
        }
        let grid = match &fixed {
            Some(shape) => {
                // Position along axis `a` of every element (row-major).
                let count: usize = shape.iter().product();
                let inner: usize = shape[a + 1..].iter().product();
                let v: Vec<i64> = (0..count)
                    .map(|i| ((i / inner) % shape[a]) as i64)
                    .collect();
                let t = Tensor::from_i64s(DType::I32, shape.clone(), &v);
                gx.konst(&format!("{}/grid{a}", gx.base), t)?
            }
            None => {
                let shape = match &idx_shape {
                    Some(s) => String::clone(s),
                    None => {
                        let s = gx.node(
                            "indices_shape",
                            "Shape",
                            vec![idx.clone()],
                            vec![i32t(), ("out_type", a_type(DType::I32))],
                        );
                        idx_shape = Some(s.clone());
                        s
                    }
                };
                let at = gx.int(&format!("axis{a}"), a as i64)?;
                let zero = gx.int("axis0", 0)?;
                let len = gx.node(
                    &format!("len{a}"),
                    "GatherV2",
                    vec![shape.clone(), at, zero.clone()],
                    vec![("batch_dims", a_int(0)), ("Tparams", a_type(DType::I32))],
                );
                let one = gx.int("one", 1)?;
                let iota = gx.node(
                    &format!("iota{a}"),
                    "Range",
                    vec![zero, len, one],
                    vec![("Tidx", a_type(DType::I32))],
                );
                let mut along = vec![1i64; rank];
                along[a] = -1;
                let along = gx.ints(&format!("along{a}"), &along)?;
                let col = gx.node(
                    &format!("col{a}"),
                    "Reshape",
                    vec![iota, along],
                    vec![i32t()],
                );
                gx.node(
                    &format!("grid{a}"),
                    "BroadcastTo",
                    vec![col, shape],
                    vec![i32t()],
                )
            }
        };
        parts.push(grid);
    }
    Ok(gx.node(
        "coords",
        "Pack",
        parts,
        vec![
            ("axis", a_int(rank as i64)),
            ("N", a_int(rank as i64)),
            ("T", a_type(DType::I32)),
        ],
    ))
}

pub fn gather_elements(gx: &mut Gx, n: &Node, axis: usize) -> Result<String, String> {
    let coords = coordinates(gx, n, axis)?;
    let x = gx.r(n.inputs[0])?;
    let dt = gx.g.ty(n.inputs[0]).dtype;
    Ok(gx.node(
        "",
        "GatherNd",
        vec![x, coords],
        vec![("Tparams", a_type(dt))],
    ))
}

pub fn scatter_elements(gx: &mut Gx, n: &Node, axis: usize) -> Result<String, String> {
    let coords = coordinates(gx, n, axis)?;
    scatter_update(gx, n, coords)
}

/// ONNX ScatterND (no reduction): `TensorScatterUpdate` with the same indices.
pub fn scatter_nd(gx: &mut Gx, n: &Node) -> Result<String, String> {
    let idx = gx.r(n.inputs[1])?;
    scatter_update(gx, n, idx)
}

/// ScatterND summing into zeros (what TF's ScatterNd is, duplicates added) as TF's
/// `ScatterNd(indices, updates, shape)`: the data must be zeros, a constant or a
/// ConstantOfShape of zero whose shape operand is then the op's.
pub fn scatter_nd_sum(gx: &mut Gx, n: &Node) -> Result<String, String> {
    let g = gx.g;
    let data = n.inputs[0];
    let zero = |t: &Tensor| t.data.iter().all(|&b| b == 0);
    let shape = if let Some(t) = g.constant(data).filter(|t| zero(t)) {
        let dims: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
        let k = Tensor::from_i64s(DType::I32, vec![dims.len()], &dims);
        gx.konst(&format!("{}/shape", gx.base), k)?
    } else {
        let p = g
            .nodes
            .iter()
            .find(|p| p.outputs.contains(&data))
            .filter(|p| matches!(&p.op, crate::ir::Op::ConstantOfShape(c) if zero(&c.value)))
            .ok_or("ScatterND summing into data other than zeros has no TF op")?;
        gx.r(p.inputs[0])?
    };
    let idx = gx.r(n.inputs[1])?;
    let u = gx.r(n.inputs[2])?;
    let dt = g.ty(n.inputs[2]).dtype;
    let tidx = g.ty(n.inputs[1]).dtype;
    Ok(gx.node(
        "",
        "ScatterNd",
        vec![idx, u, shape],
        vec![("T", a_type(dt)), ("Tindices", a_type(tidx))],
    ))
}

/// `TensorScatterUpdate(copy of data, coords, updates)`. tfjs-backend-cpu 4.22 writes the
/// updates into the buffer of its `tensor` input (`scatterImpl` reuses the TensorBuffer it is
/// given), which would change every other reader of that value: the data is copied first with
/// an op that allocates (`Mul` by one, exact for every number; `LogicalAnd` with true for bool).
fn scatter_update(gx: &mut Gx, n: &Node, coords: String) -> Result<String, String> {
    let x = gx.r(n.inputs[0])?;
    let u = gx.r(n.inputs[2])?;
    let dt = gx.g.ty(n.inputs[0]).dtype;
    let one = if dt == DType::Bool {
        Tensor::from_i64s(DType::Bool, vec![], &[1])
    } else {
        Tensor::from_f64s(dt, vec![], &[1.0])
    };
    let one = gx.konst(&format!("{}/one", gx.base), one)?;
    let op = if dt == DType::Bool {
        "LogicalAnd"
    } else {
        "Mul"
    };
    let copy = gx.node("copy", op, vec![x, one], vec![("T", a_type(dt))]);
    Ok(gx.node(
        "",
        "TensorScatterUpdate",
        vec![copy, coords, u],
        vec![("T", a_type(dt))],
    ))
}
