//! Resizes whose output sizes hold symbols (`F.interpolate(x, size=skip.shape[-2:])` at a
//! run-time image size: the reader resolves the sizes to the symbols of `skip`'s shape) become
//! `Dynamic::Resize` with the sizes read at run time, for the writers that need an output size
//! tensor (TFLite, TF.js). Each symbol is read from the shape of the last value before the
//! resize that has it — a graph input or a node output — which the writers keep as a tensor
//! (an activation's output rather than the convolution it follows).

use crate::ir::ops::{Concat, Dynamic, Resize, ShapeOf};
use crate::ir::{DType, Dim, Graph, Names, Node, Op, Tensor, TensorType, ValueId};

/// Rewrites every such resize. Returns whether anything changed; fails naming a resize whose
/// symbol no earlier value carries.
pub fn read_symbolic_sizes(g: &mut Graph) -> Result<bool, String> {
    let symbolic = |n: &Node| match &n.op {
        Op::Resize(r) => r
            .sizes
            .as_ref()
            .is_some_and(|s| s.iter().any(|d| !d.is_fixed())),
        _ => false,
    };
    if !g.nodes.iter().any(symbolic) {
        return Ok(false);
    }
    let mut names = g.names();
    let old = std::mem::take(&mut g.nodes);
    for node in old {
        match &node.op {
            Op::Resize(r) if symbolic(&node) => {
                let r = r.clone();
                let sizes = sizes_at_run_time(g, &mut names, &node, &r)?;
                let resize = Resize {
                    sizes: None,
                    scales: vec![],
                    ..r
                };
                g.nodes.push(Node {
                    op: Op::Dynamic(Dynamic::Resize {
                        resize,
                        by_sizes: true,
                    }),
                    inputs: vec![node.inputs[0], sizes],
                    ..node
                });
            }
            _ => g.nodes.push(node),
        }
    }
    Ok(true)
}

/// Appends the nodes computing `r`'s sizes (1-D i64) and returns their output.
fn sizes_at_run_time(
    g: &mut Graph,
    names: &mut Names,
    node: &Node,
    r: &Resize,
) -> Result<ValueId, String> {
    let dims = r.sizes.clone().unwrap_or_default();
    let base = node.name.clone();
    let one = TensorType::new(DType::I64, vec![Dim::Fixed(1)]);
    let mut pieces = Vec::with_capacity(dims.len());
    for d in &dims {
        let piece = match d {
            Dim::Fixed(n) => g.add_const(
                &names.fresh(&format!("{base}/size")),
                Tensor::from_i64s(DType::I64, vec![1], &[*n as i64]),
            ),
            Dim::Sym(s) => {
                let (v, axis) = carrier(g, d).ok_or_else(|| {
                    format!("resize '{base}': no value before it has the size '{s}'")
                })?;
                let out = g.add_value(&names.fresh(&format!("{base}/{s}")), one.clone());
                g.nodes.push(Node {
                    name: names.fresh(&format!("{base}/{s}")),
                    op: Op::ShapeOf(ShapeOf {
                        start: axis,
                        end: axis + 1,
                    }),
                    inputs: vec![v],
                    outputs: vec![out],
                });
                out
            }
        };
        pieces.push(piece);
    }
    let ty = TensorType::new(DType::I64, vec![Dim::Fixed(dims.len() as u64)]);
    let sizes = g.add_value(&names.fresh(&format!("{base}/sizes")), ty);
    g.nodes.push(Node {
        name: names.fresh(&format!("{base}/sizes")),
        op: Op::Concat(Concat { axis: 0 }),
        inputs: pieces,
        outputs: vec![sizes],
    });
    Ok(sizes)
}

/// The last value so far (node outputs, latest first, then graph inputs) with `d` at some axis.
fn carrier(g: &Graph, d: &Dim) -> Option<(ValueId, usize)> {
    let made = g.nodes.iter().rev().flat_map(|n| n.outputs.iter().copied());
    made.chain(g.inputs.iter().copied()).find_map(|v| {
        let axis = g.ty(v).shape.iter().position(|e| e == d)?;
        Some((v, axis))
    })
}
