//! 3-D transposed convolutions as forward ones, for targets without the transposed op (TF.js
//! graph models have Conv3D but no Conv3DBackpropInputV2): the input spread out by the strides
//! (`stride − 1` zeros between elements, as Reshape, Pad and Slice per axis), padded by
//! `k − 1 − pad` on each side (plus the output padding at the end), then a stride-1 VALID
//! convolution with the kernel flipped in space. Runs on legalized NHWC graphs (OHWI kernels,
//! `[out, D, H, W, in]` for the transposed op too).

use crate::ir::ops::{Conv, Pad, PadMode, Padding, Reshape, Slice, SliceAxis};
use crate::ir::{Dim, Graph, KernelLayout, Layout, Node, Op, Tensor, ValueId};
use crate::passes::rewrite::Rewriter;

/// Rewrites every 5-D NHWC ConvTranspose with a constant kernel; returns whether any changed.
pub fn lower_conv_transpose_3d(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        match &n.op {
            Op::ConvTranspose(c) if fits(rw.g, &n, c) => {
                let c = c.clone();
                lower(&mut rw, &n, &c)?;
                changed = true;
            }
            _ => rw.keep(n),
        }
    }
    rw.finish();
    Ok(changed)
}

fn fits(g: &Graph, n: &Node, c: &Conv) -> bool {
    let x = g.ty(n.inputs[0]);
    x.rank() == 5
        && c.layout == Layout::Nhwc
        && c.kernel_layout == KernelLayout::Ohwi
        && c.group == 1
        && c.dilations.iter().all(|&d| d == 1)
        && matches!(c.padding, Padding::Explicit(_))
        && x.shape[1..4].iter().all(Dim::is_fixed)
        && g.constant(n.inputs[1]).is_some()
}

fn lower(rw: &mut Rewriter, n: &Node, c: &Conv) -> Result<(), String> {
    let base = n.name.clone();
    let kernel =
        rw.g.constant(n.inputs[1])
            .cloned()
            .ok_or("kernel must be constant")?;
    let Padding::Explicit(pads) = &c.padding else {
        return Err("transposed convolution padding must be explicit".into());
    };
    let mut x = n.inputs[0];
    for (i, &s) in c.strides.iter().enumerate().filter(|(_, &s)| s > 1) {
        x = spread(rw, &base, x, 1 + i, s)?;
    }
    let mut around = vec![(0, 0)];
    for (i, &pad) in pads.iter().enumerate().take(3) {
        let k = kernel.shape[1 + i] as i64;
        let (pb, pe) = (pad.0 as i64, pad.1 as i64);
        let extra = c.output_padding.get(i).copied().unwrap_or(0) as i64;
        let (before, after) = (k - 1 - pb, k - 1 - pe + extra);
        if before < 0 || after < 0 {
            return Err(format!(
                "3-D transposed convolution padding {pad:?} larger than its kernel less one"
            ));
        }
        around.push((before, after));
    }
    around.push((0, 0));
    let pad = Pad {
        mode: PadMode::Constant,
        pads: around,
        value: 0.0,
    };
    let x = rw.op(&format!("{base}/pad"), Op::Pad(pad), vec![x])?;
    let flipped = rw.konst(&format!("{base}/flipped_kernel"), flip_spatial(&kernel));
    let conv = Conv {
        layout: Layout::Nhwc,
        kernel_layout: KernelLayout::Ohwi,
        strides: vec![1; 3],
        dilations: vec![1; 3],
        padding: Padding::Explicit(vec![(0, 0); 3]),
        group: 1,
        output_padding: vec![],
    };
    let mut inputs = vec![x, flipped];
    inputs.extend(n.inputs.get(2).copied());
    rw.op_into(&n.name, Op::Conv(conv), inputs, n.outputs[0]);
    Ok(())
}

/// `x` with `s − 1` zeros between neighbours along `axis` (fixed size n → `(n − 1)·s + 1`).
fn spread(
    rw: &mut Rewriter,
    base: &str,
    x: ValueId,
    axis: usize,
    s: usize,
) -> Result<ValueId, String> {
    let shape = rw.g.ty(x).shape.clone();
    let len = shape[axis].fixed().ok_or("spatial sizes must be fixed")? as usize;
    let mut split = shape.clone();
    split.insert(axis + 1, Dim::Fixed(1));
    let x = rw.op(
        &format!("{base}/split"),
        Op::Reshape(Reshape { shape: split }),
        vec![x],
    )?;
    let mut pads = vec![(0, 0); shape.len() + 1];
    pads[axis + 1] = (0, s as i64 - 1);
    let pad = Pad {
        mode: PadMode::Constant,
        pads,
        value: 0.0,
    };
    let x = rw.op(&format!("{base}/zeros"), Op::Pad(pad), vec![x])?;
    let mut merged = shape.clone();
    merged[axis] = Dim::Fixed((len * s) as u64);
    let x = rw.op(
        &format!("{base}/merged"),
        Op::Reshape(Reshape { shape: merged }),
        vec![x],
    )?;
    let cut = Slice {
        axes: vec![SliceAxis {
            axis,
            start: 0,
            end: ((len - 1) * s + 1) as i64,
            step: 1,
        }],
    };
    rw.op(&format!("{base}/spread"), Op::Slice(cut), vec![x])
}

/// An `[O, D, H, W, I]` kernel reversed along D, H and W.
fn flip_spatial(k: &Tensor) -> Tensor {
    let e = k.dtype.size();
    let (d, h, w) = (k.shape[1], k.shape[2], k.shape[3]);
    let row = k.shape[4] * e;
    let block = d * h * w * row;
    let src = &k.data;
    let mut out = Vec::with_capacity(src.len());
    for o in 0..k.shape[0] {
        for z in 0..d {
            for y in 0..h {
                for x in 0..w {
                    let at = o * block + (((d - 1 - z) * h + (h - 1 - y)) * w + (w - 1 - x)) * row;
                    out.extend_from_slice(&src[at..at + row]);
                }
            }
        }
    }
    Tensor {
        dtype: k.dtype,
        shape: k.shape.clone(),
        data: out.into(),
    }
}
