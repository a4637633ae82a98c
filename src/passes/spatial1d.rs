//! 1-D convolutions and pools as their 2-D forms: TFLite has only CONV_2D, TRANSPOSE_CONV and
//! *_POOL_2D, and TF graphs (so TF.js graph models) only Conv2D, Conv2DBackpropInput and the 2-D
//! pools. An NHWC `[N, W, C]` input is reshaped to `[N, 1, W, C]`, the kernel gains a unit
//! height (a reshape of the same bytes, no copy), the window a unit height, and the result is
//! reshaped back into the original output value.

use crate::ir::ops::{Conv, Padding, Pool, Reshape};
use crate::ir::{Dim, Graph, KernelLayout, Layout, Op};
use crate::passes::rewrite::Rewriter;

/// The 2-D padding for a 1-D window padding (unit height, no padding along it).
fn padding_2d(p: &Padding) -> Padding {
    match p {
        Padding::Explicit(v) => Padding::Explicit([vec![(0, 0)], v.clone()].concat()),
        other => other.clone(),
    }
}

/// `[.., W, ..]` with a unit axis inserted before the spatial one (axis 1 in NHWC).
fn with_unit_height(shape: &[Dim]) -> Vec<Dim> {
    let mut s = shape.to_vec();
    s.insert(1, Dim::Fixed(1));
    s
}

/// An op whose 1-D form the targets only have in 2-D: a convolution (with the op to rebuild
/// it as) or a window pool.
enum Lift<'a> {
    Conv(&'a Conv, fn(Conv) -> Op),
    Pool(&'a Pool),
}

impl Lift<'_> {
    fn layout(&self) -> Layout {
        match self {
            Lift::Conv(c, _) => c.layout,
            Lift::Pool(p) => p.layout,
        }
    }
}

fn liftable(op: &Op) -> Option<Lift<'_>> {
    Some(match op {
        Op::Conv(c) => Lift::Conv(c, Op::Conv),
        Op::ConvTranspose(c) => Lift::Conv(c, Op::ConvTranspose),
        Op::Pool(p) => Lift::Pool(p),
        // Global pools reduce whatever the rank; integer convolutions are Convs by now
        // (`passes::integer`) or refused by the writers.
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Activation(_)
        | Op::Where
        | Op::Cast(_)
        | Op::MatMul(_)
        | Op::Einsum(_)
        | Op::GlobalPool(_)
        | Op::BatchNorm(_)
        | Op::LayerNorm(_)
        | Op::InstanceNorm(_)
        | Op::Softmax(_)
        | Op::Hardmax(_)
        | Op::LpNorm(_)
        | Op::Reshape(_)
        | Op::Transpose(_)
        | Op::Concat(_)
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
        | Op::ShapeOf(_)
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
        | Op::Loop(_) => return None,
    })
}

pub fn lift_1d(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        let x_ty = rw.g.ty(n.inputs[0]).clone();
        let lift = liftable(&n.op).filter(|l| x_ty.rank() == 3 && l.layout() == Layout::Nhwc);
        let Some(lift) = lift else {
            rw.keep(n);
            continue;
        };
        let x4 = rw.op(
            &format!("{}/to_2d", n.name),
            Op::Reshape(Reshape {
                shape: with_unit_height(&x_ty.shape),
            }),
            vec![n.inputs[0]],
        )?;
        let mut inputs = vec![x4];
        let op = match lift {
            Lift::Conv(c, rebuild) => {
                let mut c2 = c.clone();
                c2.strides.insert(0, 1);
                c2.dilations.insert(0, 1);
                c2.padding = padding_2d(&c.padding);
                if !c2.output_padding.is_empty() {
                    c2.output_padding.insert(0, 0);
                }
                // Kernel: insert the unit height where the spatial axes are.
                let k = n.inputs[1];
                let k_shape = rw.g.ty(k).shape.clone();
                let at = match c.kernel_layout {
                    KernelLayout::Oihw | KernelLayout::Iohw => 2,
                    KernelLayout::Hwio | KernelLayout::Hwoi => 0,
                    KernelLayout::Ohwi | KernelLayout::Ihwo => 1,
                };
                let mut k4 = k_shape.clone();
                k4.insert(at, Dim::Fixed(1));
                let kv = match rw.g.constant(k).cloned() {
                    Some(t) => {
                        let dims: Vec<usize> =
                            k4.iter().map(|d| d.fixed().unwrap_or(1) as usize).collect();
                        let name = format!("{}_2d", rw.g.value(k).name);
                        rw.konst(&name, t.reshaped(dims))
                    }
                    None => rw.op(
                        &format!("{}/kernel_2d", n.name),
                        Op::Reshape(Reshape { shape: k4 }),
                        vec![k],
                    )?,
                };
                inputs.push(kv);
                inputs.extend(n.inputs.iter().skip(2));
                rebuild(c2)
            }
            Lift::Pool(p) => {
                let mut p2 = p.clone();
                p2.kernel.insert(0, 1);
                p2.strides.insert(0, 1);
                p2.dilations.insert(0, 1);
                p2.padding = padding_2d(&p.padding);
                Op::Pool(p2)
            }
        };
        let y4 = rw.op(&format!("{}/2d", n.name), op, inputs)?;
        let out = n.outputs[0];
        let shape = rw.g.ty(out).shape.clone();
        rw.op_into(
            &format!("{}/to_1d", n.name),
            Op::Reshape(Reshape { shape }),
            vec![y4],
            out,
        );
        changed = true;
    }
    rw.finish();
    Ok(changed)
}
