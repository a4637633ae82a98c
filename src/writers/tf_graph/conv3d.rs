//! 5-D (NDHWC) convolutions as TF's Conv3D (TF.js runs it too): legalize's OHWI
//! `[O, D, H, W, I]` kernel moved to DHWIO, SAME or VALID (legalize pads the rest), the bias a
//! BiasAdd. Not fused: TF has no fused 3-D convolution, so a following Add or activation stays
//! its own node.

use super::emit::{a_ints, a_str, a_type, Gx};
use super::nn::{finish, pad_name};
use crate::ir::ops::Conv;
use crate::ir::{KernelLayout, Node};
use crate::passes::nhwc::same_or_valid;

/// `[1, d, h, w, 1]` strides or dilations.
pub fn ndhwc(v: &[usize]) -> Vec<i64> {
    let at = |i: usize| v.get(i).copied().unwrap_or(1) as i64;
    vec![1, at(0), at(1), at(2), 1]
}

pub fn conv(gx: &mut Gx, n: &Node, c: &Conv) -> Result<(), String> {
    let g = gx.g;
    if c.kernel_layout != KernelLayout::Ohwi || c.group != 1 {
        return Err(format!(
            "Conv3D takes ungrouped kernels (got {} kernel, {} groups)",
            c.kernel_layout, c.group
        ));
    }
    let x_ty = g.ty(n.inputs[0]).clone();
    let k_ty = g.ty(n.inputs[1]).clone();
    let ks: Vec<usize> = k_ty.shape[1..4]
        .iter()
        .map(|d| d.fixed().map(|n| n as usize))
        .collect::<Option<_>>()
        .ok_or("kernel sizes must be fixed")?;
    let same = same_or_valid(&c.padding, &x_ty.shape[1..4], &ks, &c.strides, &c.dilations)
        .ok_or("padding other than SAME or VALID (legalization pads explicitly first)")?;
    let perm = [1, 2, 3, 4, 0];
    let filter = match g.constant(n.inputs[1]) {
        Some(t) => {
            let moved = gx.transposed(t, &perm);
            gx.konst(&format!("{}/filter", gx.base), moved)?
        }
        None => {
            let k = gx.r(n.inputs[1])?;
            let perm = gx.ints("perm", &perm.map(|p| p as i64))?;
            gx.node("filter", "Transpose", vec![k, perm], vec![])
        }
    };
    let x = gx.r(n.inputs[0])?;
    let dt = g.ty(n.outputs[0]).dtype;
    let attrs = vec![
        ("T", a_type(dt)),
        ("strides", a_ints(&ndhwc(&c.strides))),
        ("padding", a_str(pad_name(same))),
        ("data_format", a_str("NDHWC")),
        ("dilations", a_ints(&ndhwc(&c.dilations))),
    ];
    let bias = match n.inputs.get(2) {
        Some(&b) => Some(gx.r(b)?),
        None => None,
    };
    let tag = if bias.is_some() { "conv" } else { "" };
    let y = gx.node(tag, "Conv3D", vec![x, filter], attrs);
    let y = finish(gx, y, bias, None, dt);
    gx.bind(n.outputs[0], y);
    Ok(())
}
