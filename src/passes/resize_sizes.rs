//! Resizes whose output sizes hold symbols (`F.interpolate(x, size=skip.shape[-2:])` at a
//! run-time image size: the reader resolves the sizes to the symbols of `skip`'s shape) become
//! `Dynamic::Resize` with the sizes read at run time, for the writers that need an output size
//! tensor (TFLite, TF.js). Each symbol is read from the shape of the last value before the
//! resize that has it — a graph input or a node output — which the writers keep as a tensor
//! (an activation's output rather than the convolution it follows). Resizes by whole-number
//! scales of an input whose spatial sizes are symbols (`UpSampling2D` of a run-time image size)
//! become the same: each size is the input's, read at run time, times its scale.

use super::rewrite::Rewriter;
use crate::ir::ops::{BinaryOp, Concat, Dynamic, Resize, ShapeOf};
use crate::ir::{DType, Dim, Graph, Layout, Node, Op, Tensor, ValueId};

/// Rewrites every such resize. Returns whether anything changed; fails naming a resize whose
/// symbol no earlier value carries.
pub fn read_symbolic_sizes(g: &mut Graph) -> Result<bool, String> {
    if !(g.nodes.iter()).any(|n| symbolic(n).is_some() || scaled_symbolic(g, n).is_some()) {
        return Ok(false);
    }
    let (mut rw, old) = Rewriter::begin(g);
    let mut seen: Vec<ValueId> = rw.g.inputs.clone();
    for node in old {
        let scaled = scaled_symbolic(rw.g, &node).cloned();
        if let Some(r) = symbolic(&node).cloned().or(scaled) {
            let sizes = match &r.sizes {
                Some(_) => sizes_at_run_time(&mut rw, &seen, &node, &r)?,
                None => scaled_sizes_at_run_time(&mut rw, &node, &r)?,
            };
            let resize = Resize {
                sizes: None,
                scales: vec![],
                ..r
            };
            let op = Op::Dynamic(Dynamic::Resize {
                resize,
                by_sizes: true,
            });
            rw.op_into(&node.name, op, vec![node.inputs[0], sizes], node.outputs[0]);
        } else {
            rw.keep(node.clone());
        }
        seen.extend(node.outputs);
    }
    rw.finish();
    Ok(true)
}

/// The resize of `n`, when a spatial size is a symbol: the writers take the output's spatial
/// sizes, while the batch and channel sizes (a symbolic batch) pass through unchanged.
fn symbolic(n: &Node) -> Option<&Resize> {
    match &n.op {
        Op::Resize(r) => {
            let sizes = r.sizes.as_ref()?;
            let spatial = match r.layout {
                Layout::Nchw => 2..sizes.len(),
                Layout::Nhwc => 1..sizes.len().saturating_sub(1),
            };
            sizes
                .get(spatial)?
                .iter()
                .any(|d| !d.is_fixed())
                .then_some(r)
        }
        // Only a static resize has sizes of its own to rewrite.
        _ => None,
    }
}

/// The resize of `n`, when it scales spatial sizes that are symbols by whole numbers.
fn scaled_symbolic<'a>(g: &Graph, n: &'a Node) -> Option<&'a Resize> {
    let Op::Resize(r) = &n.op else { return None };
    if r.sizes.is_some() {
        return None;
    }
    let shape = &g.ty(*n.inputs.first()?).shape;
    let spatial: Vec<usize> = r.layout.spatial_axes(shape.len()).collect();
    let whole = |s: f32| s >= 1.0 && s.fract() == 0.0;
    let scaled_symbol = spatial
        .iter()
        .any(|&a| !shape[a].is_fixed() && r.scales.get(a).is_some_and(|&s| s != 1.0));
    let ok = r.scales.len() == shape.len()
        && r.scales.iter().all(|&s| whole(s))
        && (0..shape.len()).all(|a| spatial.contains(&a) || r.scales[a] == 1.0);
    (ok && scaled_symbol).then_some(r)
}

/// Sizes of a resize by whole-number `scales`: the input's size on each axis, times its scale.
fn scaled_sizes_at_run_time(rw: &mut Rewriter, node: &Node, r: &Resize) -> Result<ValueId, String> {
    let base = format!("{}/size", node.name);
    let x = node.inputs[0];
    let shape = rw.g.ty(x).shape.clone();
    let mut pieces = vec![];
    for (axis, (d, &s)) in shape.iter().zip(&r.scales).enumerate() {
        let piece = match d {
            Dim::Fixed(n) => {
                let v = (*n as f64 * f64::from(s)) as i64;
                rw.konst(&base, Tensor::from_i64s(DType::I64, vec![1], &[v]))
            }
            Dim::Sym(_) => {
                let size = Op::ShapeOf(ShapeOf {
                    start: axis,
                    end: axis + 1,
                });
                let size = rw.op(&base, size, vec![x])?;
                if s == 1.0 {
                    size
                } else {
                    let k = rw.konst(&base, Tensor::from_i64s(DType::I64, vec![1], &[s as i64]));
                    rw.op(&base, Op::Binary(BinaryOp::Mul), vec![size, k])?
                }
            }
        };
        pieces.push(piece);
    }
    rw.op(&base, Op::Concat(Concat { axis: 0 }), pieces)
}

/// Appends the nodes computing `r`'s sizes (1-D i64) and returns their output.
fn sizes_at_run_time(
    rw: &mut Rewriter,
    seen: &[ValueId],
    node: &Node,
    r: &Resize,
) -> Result<ValueId, String> {
    let base = format!("{}/size", node.name);
    let mut pieces = vec![];
    for d in r.sizes.iter().flatten() {
        pieces.push(match d {
            Dim::Fixed(n) => rw.konst(&base, Tensor::from_i64s(DType::I64, vec![1], &[*n as i64])),
            Dim::Sym(s) => {
                let (v, axis) = carrier(rw.g, seen, d).ok_or_else(|| {
                    format!(
                        "resize '{}': no value before it has the size '{s}'",
                        node.name
                    )
                })?;
                let shape = Op::ShapeOf(ShapeOf {
                    start: axis,
                    end: axis + 1,
                });
                rw.op(&base, shape, vec![v])?
            }
        });
    }
    rw.op(&base, Op::Concat(Concat { axis: 0 }), pieces)
}

/// The last value in `seen` (graph inputs, then node outputs in order) with `d` at some axis.
fn carrier(g: &Graph, seen: &[ValueId], d: &Dim) -> Option<(ValueId, usize)> {
    seen.iter().rev().find_map(|&v| {
        let axis = g.ty(v).shape.iter().position(|e| e == d)?;
        Some((v, axis))
    })
}
