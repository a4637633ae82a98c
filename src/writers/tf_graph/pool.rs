//! Pooling as TF's MaxPool / AvgPool (NHWC, after `passes::nhwc::legalize`: padding SAME or
//! VALID); L2 pooling as the square root of an average of squares times the window.

use super::emit::{a_ints, a_str, a_type, Gx};
use super::nn::{nhwc4, pad_name};
use crate::ir::ops::{Padding, Pool, PoolKind};
use crate::ir::{Dim, Layout, Node};
use crate::passes::nhwc::{probe_conv, same_or_valid};

pub fn pool(gx: &mut Gx, n: &Node, p: &Pool) -> Result<(), String> {
    let g = gx.g;
    let x_ty = g.ty(n.inputs[0]).clone();
    if p.layout != Layout::Nhwc || x_ty.rank() != 4 {
        return Err("only NHWC 2-D pooling is written".into());
    }
    if p.dilations.iter().any(|&d| d != 1) {
        return Err("TF pooling has no dilation".into());
    }
    let same = same_or_valid(
        &p.padding,
        &x_ty.shape[1..3],
        &p.kernel,
        &p.strides,
        &[1, 1],
    )
    .ok_or("padding other than SAME or VALID (legalization pads explicitly first)")?;
    if p.ceil_mode {
        let floor = crate::ir::ops::infer_pool(
            &Pool {
                ceil_mode: false,
                ..p.clone()
            },
            &crate::ir::ops::Inputs::of_types(std::slice::from_ref(&x_ty)),
        )?;
        if floor[0].shape != g.ty(n.outputs[0]).shape {
            return Err("ceil_mode adds a window (legalization pads it first)".into());
        }
    }
    let op = match p.kind {
        PoolKind::Max => "MaxPool",
        PoolKind::Avg if same && p.count_include_pad && has_padding(p, &x_ty.shape) => {
            return Err(
                "average pooling that counts SAME padding cells (TF's excludes them)".into(),
            )
        }
        PoolKind::Avg => "AvgPool",
        // sqrt(window sum of squares) = sqrt(AvgPool(x²) · window), when no cell is padding.
        PoolKind::L2 if !same || !has_padding(p, &x_ty.shape) => "AvgPool",
        PoolKind::L2 => return Err("L2 pooling over padded windows has no TF form".into()),
    };
    let t = || ("T", a_type(x_ty.dtype));
    let mut x = gx.r(n.inputs[0])?;
    if p.kind == PoolKind::L2 {
        x = gx.node("square", "Square", vec![x], vec![t()]);
    }
    let y = gx.node(
        if p.kind == PoolKind::L2 { "mean" } else { "" },
        op,
        vec![x],
        vec![
            ("T", a_type(x_ty.dtype)),
            ("ksize", a_ints(&nhwc4(&p.kernel))),
            ("strides", a_ints(&nhwc4(&p.strides))),
            ("padding", a_str(pad_name(same))),
            ("data_format", a_str("NHWC")),
        ],
    );
    let y = if p.kind == PoolKind::L2 {
        let window: usize = p.kernel.iter().product();
        let k = gx.float("window", window as f32)?;
        let sum = gx.node("sum", "Mul", vec![y, k], vec![t()]);
        gx.node("", "Sqrt", vec![sum], vec![t()])
    } else {
        y
    };
    gx.bind(n.outputs[0], y);
    Ok(())
}

fn has_padding(p: &Pool, shape: &[Dim]) -> bool {
    let c = probe_conv(Padding::SameUpper, &p.strides, &[1, 1]);
    c.explicit_pads(&shape[1..3], &p.kernel)
        .is_none_or(|pads| pads.iter().any(|&(b, e)| b + e > 0))
}
