//! 1-D convolutions and pools as their 2-D forms: TFLite has only CONV_2D, TRANSPOSE_CONV and
//! *_POOL_2D, and TF graphs (so TF.js graph models) only Conv2D, Conv2DBackpropInput and the 2-D
//! pools. An NHWC `[N, W, C]` input is reshaped to `[N, 1, W, C]`, the kernel gains a unit
//! height (a reshape of the same bytes, no copy), the window a unit height, and the result is
//! reshaped back into the original output value.

use crate::ir::ops::{Padding, Reshape};
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

pub fn lift_1d(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        let x_ty = rw.g.ty(n.inputs[0]).clone();
        let is_1d = x_ty.rank() == 3
            && match &n.op {
                Op::Conv(c) | Op::ConvTranspose(c) => c.layout == Layout::Nhwc,
                Op::Pool(p) => p.layout == Layout::Nhwc,
                _ => false,
            };
        if !is_1d {
            rw.keep(n);
            continue;
        }
        let x4 = rw.op(
            &format!("{}/to_2d", n.name),
            Op::Reshape(Reshape {
                shape: with_unit_height(&x_ty.shape),
            }),
            vec![n.inputs[0]],
        )?;
        let mut inputs = vec![x4];
        let op = match &n.op {
            Op::Conv(c) | Op::ConvTranspose(c) => {
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
                match &n.op {
                    Op::Conv(_) => Op::Conv(c2),
                    _ => Op::ConvTranspose(c2),
                }
            }
            Op::Pool(p) => {
                let mut p2 = p.clone();
                p2.kernel.insert(0, 1);
                p2.strides.insert(0, 1);
                p2.dilations.insert(0, 1);
                p2.padding = padding_2d(&p.padding);
                Op::Pool(p2)
            }
            other => return Err(format!("1-D lifting got {}", other.name())),
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
