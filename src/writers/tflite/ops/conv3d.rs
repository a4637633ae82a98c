//! CONV_3D-1 for 5-D NHWC (NDHWC) convolutions: legalize gives OHWI `[O, D, H, W, I]` kernels,
//! which CONV_3D takes as DHWIO (CONV_3D_TRANSPOSE, written by `nn::conv_transpose`, as
//! `[D, H, W, O, I]`); a constant kernel is stored moved, a computed one TRANSPOSEd. SAME and
//! VALID only (legalize pads the rest); the bias is optional.

use super::super::plan::{Cx, Opts, TRef};
use crate::ir::ops::Conv;
use crate::ir::{KernelLayout, TensorType};
use crate::passes::nhwc::same_or_valid;
use tract_tflite::tflite::{ActivationFunctionType as Act, BuiltinOperator as B};

pub fn options(same: bool, strides: &[usize], dilations: &[usize], act: Act) -> Opts {
    let three = |v: &[usize]| {
        let at = |i: usize| v.get(i).copied().unwrap_or(1) as i32;
        [at(0), at(1), at(2)]
    };
    Opts::Conv3d {
        same,
        stride: three(strides),
        dilation: three(dilations),
        act,
    }
}

/// Input 1 (an OHWI kernel) with its axes permuted by `perm`.
pub fn moved_kernel(cx: &mut Cx, perm: &[usize]) -> Result<TRef, String> {
    if let Some(k) = cx.konst_in(1) {
        let moved = k.transposed(perm);
        return Ok(cx.konst("filter", moved));
    }
    let k_ty = cx.ty(1)?.clone();
    let shape = perm.iter().map(|&p| k_ty.shape[p].clone()).collect();
    let k = cx.x(1)?;
    let perm: Vec<i32> = perm.iter().map(|&p| p as i32).collect();
    let perm = cx.i32_vec("filter_perm", &perm);
    let moved = cx.temp("filter", TensorType::new(k_ty.dtype, shape));
    cx.emit(
        B::TRANSPOSE,
        Opts::None,
        vec![Some(k), Some(perm)],
        vec![moved],
    );
    Ok(moved)
}

pub fn conv(cx: &mut Cx, c: &Conv) -> Result<(), String> {
    if c.kernel_layout != KernelLayout::Ohwi || c.group != 1 {
        return Err(format!(
            "CONV_3D takes ungrouped kernels (got {} kernel, {} groups)",
            c.kernel_layout, c.group
        ));
    }
    if cx.is_int8() || cx.is_hybrid() {
        return Err("quantized CONV_3D is not written".into());
    }
    let x_ty = cx.ty(0)?.clone();
    let k_ty = cx.ty(1)?.clone();
    let ks: Vec<usize> = k_ty.shape[1..4]
        .iter()
        .map(|d| d.fixed().unwrap_or(0) as usize)
        .collect();
    let same = same_or_valid(&c.padding, &x_ty.shape[1..4], &ks, &c.strides, &c.dilations)
        .ok_or("explicit padding other than SAME/VALID (legalize pads it first)")?;
    let k = moved_kernel(cx, &[1, 2, 3, 4, 0])?;
    let bias = cx.node.inputs.get(2).map(|&b| cx.read(b));
    let opts = options(same, &c.strides, &c.dilations, cx.act());
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(B::CONV_3D, opts, vec![Some(x), Some(k), bias], vec![y]);
    Ok(())
}
