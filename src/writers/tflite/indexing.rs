//! GatherElements and ScatterElements (ONNX-13/18) as GatherNd / ScatterNd (IR rewrites), so
//! TFLite's GATHER_ND and SCATTER_ND run them: the element form's indices name one axis; the
//! ND form needs every coordinate, so each other axis gets its iota (a constant when the size is
//! fixed, RANGE of the run-time size otherwise), broadcast to the indices' shape and stacked
//! with the (normalized, int32) indices on a new last axis.
//!
//! Negative indices count from the end (ONNX); GATHER_ND/SCATTER_ND reject them, so they are
//! made non-negative here: folded when the indices are constant, a SELECT on `idx < 0`
//! otherwise (which needs the axis size to be fixed; refused when it is not).

use crate::ir::ops::{
    BinaryOp, Cast, Concat, GatherNd, Reshape, Scatter, ScatterReduction, ShapeOf,
};
use crate::ir::{DType, Dim, Graph, Op, Tensor, ValueId};
use crate::passes::rewrite::Rewriter;

/// Rewrites GatherElements and ScatterElements (reduction none or add) into their ND forms;
/// nodes that cannot be are kept (the writer lists them with the reason from [`why_not`]).
pub fn lower_element_indexing(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        let (axis, scatter) = match &n.op {
            Op::GatherElements(ge) => (ge.axis, None),
            Op::ScatterElements(s) => (s.axis, Some(s.reduction)),
            _ => {
                rw.keep(n);
                continue;
            }
        };
        if why_not(rw.g, n.inputs[0], n.inputs[1], axis, scatter).is_some() {
            rw.keep(n);
            continue;
        }
        let coords = coordinates(&mut rw, &n.name, n.inputs[0], n.inputs[1], axis)?;
        let (op, ins) = match scatter {
            None => (
                Op::GatherNd(GatherNd { batch_dims: 0 }),
                vec![n.inputs[0], coords],
            ),
            Some(reduction) => (
                Op::ScatterNd(Scatter { reduction }),
                vec![n.inputs[0], coords, n.inputs[2]],
            ),
        };
        rw.op_into(&n.name, op, ins, n.outputs[0]);
        changed = true;
    }
    rw.finish();
    Ok(changed)
}

/// Why an element gather/scatter cannot be rewritten, if it cannot.
pub fn why_not(
    g: &Graph,
    data: ValueId,
    idx: ValueId,
    axis: usize,
    scatter: Option<ScatterReduction>,
) -> Option<String> {
    if let Some(r) = scatter {
        if !matches!(r, ScatterReduction::None | ScatterReduction::Add) {
            return Some(format!(
                "reduction {r:?}: TFLite SCATTER_ND only sums into zeros (none and add are lowered)"
            ));
        }
    }
    let size = g.ty(data).shape.get(axis)?.fixed();
    let konst_nonneg = g
        .constant(idx)
        .and_then(Tensor::to_i64s)
        .is_some_and(|v| v.iter().all(|&i| i >= 0));
    if size.is_none() && !konst_nonneg {
        return Some(format!(
            "indices may be negative along axis {axis}, whose size is known only at run time"
        ));
    }
    None
}

fn i32s(rw: &mut Rewriter, base: &str, shape: Vec<usize>, v: &[i64]) -> ValueId {
    rw.konst(base, Tensor::from_i64s(DType::I32, shape, v))
}

/// `[.., rank]` int32 coordinates into `data` for element indices `idx` along `axis`.
fn coordinates(
    rw: &mut Rewriter,
    base: &str,
    data: ValueId,
    idx: ValueId,
    axis: usize,
) -> Result<ValueId, String> {
    let shape = rw.g.ty(idx).shape.clone();
    let rank = shape.len();
    let size = rw.g.ty(data).shape[axis].fixed();
    let cast_i32 = |rw: &mut Rewriter, v: ValueId| -> Result<ValueId, String> {
        if rw.g.ty(v).dtype == DType::I32 {
            return Ok(v);
        }
        rw.op(
            &format!("{base}/i32"),
            Op::Cast(Cast { to: DType::I32 }),
            vec![v],
        )
    };
    // The indices along `axis`, non-negative.
    let along = match rw.g.constant(idx).and_then(Tensor::to_i64s) {
        Some(v) => {
            let n = size.unwrap_or(0) as i64;
            let v: Vec<i64> = v.iter().map(|&i| if i < 0 { i + n } else { i }).collect();
            let t =
                rw.g.constant(idx)
                    .map(|t| t.shape.clone())
                    .unwrap_or_default();
            i32s(rw, &format!("{base}/indices"), t, &v)
        }
        None => {
            let i = cast_i32(rw, idx)?;
            let zero = i32s(rw, &format!("{base}/zero"), vec![], &[0]);
            let n = i32s(
                rw,
                &format!("{base}/size"),
                vec![],
                &[size.unwrap_or(0) as i64],
            );
            let neg = rw.op(
                &format!("{base}/negative"),
                Op::Binary(BinaryOp::Less),
                vec![i, zero],
            )?;
            let wrapped = rw.op(
                &format!("{base}/wrapped"),
                Op::Binary(BinaryOp::Add),
                vec![i, n],
            )?;
            rw.op(
                &format!("{base}/normalized"),
                Op::Where,
                vec![neg, wrapped, i],
            )?
        }
    };
    // Zeros of the indices' shape, to broadcast each iota against.
    let zero = i32s(rw, &format!("{base}/zero"), vec![], &[0]);
    let zeros = rw.op(
        &format!("{base}/zeros"),
        Op::Binary(BinaryOp::Mul),
        vec![along, zero],
    )?;
    let mut column = shape.clone();
    column.push(Dim::Fixed(1));
    let mut parts = Vec::with_capacity(rank);
    for d in 0..rank {
        let full = if d == axis {
            along
        } else {
            let mut at = vec![Dim::Fixed(1); rank];
            at[d] = shape[d].clone();
            let iota = match shape[d].fixed() {
                Some(n) => {
                    let v: Vec<i64> = (0..n as i64).collect();
                    let mut s = vec![1usize; rank];
                    s[d] = n as usize;
                    i32s(rw, &format!("{base}/iota{d}"), s, &v)
                }
                None => {
                    let n = rw.op(
                        &format!("{base}/size{d}"),
                        Op::ShapeOf(ShapeOf {
                            start: d,
                            end: d + 1,
                        }),
                        vec![idx],
                    )?;
                    let n = cast_i32(rw, n)?;
                    let n = rw.op(
                        &format!("{base}/size{d}"),
                        Op::Reshape(Reshape { shape: vec![] }),
                        vec![n],
                    )?;
                    let z = i32s(rw, &format!("{base}/start"), vec![], &[0]);
                    let one = i32s(rw, &format!("{base}/step"), vec![], &[1]);
                    let r = rw.op(&format!("{base}/range{d}"), Op::Range, vec![z, n, one])?;
                    // The range's length is a fresh symbol; name it as the indices' dim.
                    rw.op(
                        &format!("{base}/iota{d}"),
                        Op::Reshape(Reshape { shape: at }),
                        vec![r],
                    )?
                }
            };
            rw.op(
                &format!("{base}/coord{d}"),
                Op::Binary(BinaryOp::Add),
                vec![iota, zeros],
            )?
        };
        let col = rw.op(
            &format!("{base}/coord{d}"),
            Op::Reshape(Reshape {
                shape: column.clone(),
            }),
            vec![full],
        )?;
        parts.push(col);
    }
    rw.op(
        &format!("{base}/coords"),
        Op::Concat(Concat { axis: rank }),
        parts,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::{Gather, ScatterElements};
    use crate::ir::{fixed_shape, TensorType};

    fn check(op: Op, idx: Vec<i64>, idx_shape: Vec<usize>, with_updates: bool, konst: bool) {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[2, 4, 3])));
        let idx_t = Tensor::from_i64(idx_shape.clone(), &idx);
        let idx_v = if konst {
            g.add_const("idx", idx_t.clone())
        } else {
            g.add_input("idx", idx_t.ty())
        };
        let mut ins = vec![x, idx_v];
        if with_updates {
            let u = g.add_input("u", TensorType::new(DType::F32, fixed_shape(&idx_shape)));
            ins.push(u);
        }
        g.outputs = g.add_node("n", op, ins, &["y".into()]).unwrap();
        let mut inputs = crate::eval::random_inputs(&g, 5, 1);
        if !konst {
            inputs[1] = idx_t;
        }
        let want = crate::eval::run(&g, &inputs).unwrap();
        assert!(lower_element_indexing(&mut g).unwrap());
        g.remove_dead();
        g.verify().unwrap();
        assert!(!g
            .nodes
            .iter()
            .any(|n| matches!(n.op, Op::GatherElements(_) | Op::ScatterElements(_))));
        let got = crate::eval::run(&g, &inputs).unwrap();
        let c = crate::eval::compare("y", &got[0], &want[0]);
        assert!(c.shape_matches && c.max_abs == 0.0, "{c:?}");
    }

    #[test]
    fn gather_elements_as_gather_nd() {
        // Negative indices, indices smaller than the data in a non-axis dim.
        let idx = vec![0, -1, 2, 1, 1, 0, -3, 2, 0, 1, 2, 0];
        for konst in [false, true] {
            let op = Op::GatherElements(Gather { axis: 1 });
            check(op, idx.clone(), vec![2, 2, 3], false, konst);
            let op = Op::GatherElements(Gather { axis: 2 });
            check(op, idx.clone(), vec![2, 3, 2], false, konst);
        }
    }

    #[test]
    fn scatter_elements_as_scatter_nd() {
        // Unique targets per (batch, column): ONNX leaves duplicates undefined without reduction.
        let idx = vec![3, 0, 1, -4, 2, 3, 0, 1, 2, 1, 3, 0];
        for reduction in [ScatterReduction::None, ScatterReduction::Add] {
            let op = Op::ScatterElements(ScatterElements { axis: 1, reduction });
            check(op, idx.clone(), vec![2, 2, 3], true, false);
        }
    }
}
