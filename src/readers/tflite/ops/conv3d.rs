//! Volumetric convolutions: CONV_3D (NDHWC input, DHWIO filter, the IR's `Hwio`) and
//! CONV_3D_TRANSPOSE (output shape given, filter `[D, H, W, out, in]`, the IR's `Hwoi`; SAME and
//! output padding resolved per axis as TRANSPOSE_CONV's are).

use super::nn::{fixed_sizes, padding, transpose_pads};
use super::{fused, Handler, Node};
use crate::ir::ops::{check_window, Conv, Padding};
use crate::ir::{KernelLayout, Layout, Op, ValueId};
use crate::readers::builder::{unsupported, GraphBuilder, NodeError, NodeResult};
use crate::readers::tf_common::{apply_fused, resolve_same};
use tract_tflite::tflite::{BuiltinOperator as B, Conv3DOptions};

pub fn handler(code: B) -> Option<Handler> {
    Some(match code {
        B::CONV_3D => conv3d,
        B::CONV_3D_TRANSPOSE => conv3d_transpose,
        _ => return None,
    })
}

/// `[d, h, w]` strides and dilations, each at least 1.
fn triples(o: &Conv3DOptions) -> NodeResult<(Vec<usize>, Vec<usize>)> {
    let three = |v: [i32; 3], what: &str| {
        v.iter()
            .map(|&x| usize::try_from(x).ok().filter(|&x| x >= 1))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| NodeError::Invalid(format!("{what} {v:?}")))
    };
    Ok((
        three([o.stride_d(), o.stride_h(), o.stride_w()], "strides")?,
        three(
            [
                o.dilation_d_factor(),
                o.dilation_h_factor(),
                o.dilation_w_factor(),
            ],
            "dilations",
        )?,
    ))
}

/// SAME, or VALID's zero pads on the three spatial axes.
fn pads3(o: &Conv3DOptions) -> NodeResult<Padding> {
    Ok(match padding(o.padding())? {
        Padding::Explicit(_) => Padding::Explicit(vec![(0, 0); 3]),
        same => same,
    })
}

fn conv3d(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(n.op.builtin_options_as_conv_3_doptions(), "Conv3DOptions")?;
    let (x, k) = (n.input(0)?, n.input(1)?);
    let (xs, ks) = (b.g.ty(x).shape.clone(), b.g.ty(k).shape.clone());
    if xs.len() != 5 || ks.len() != 5 {
        return Err(NodeError::Invalid("needs 5-D input and filter".into()));
    }
    let (strides, dilations) = triples(&o)?;
    let kernel = fixed_sizes(&ks[..3], "kernel size")?;
    check_window(&kernel, &strides, &dilations)?;
    let group = match (xs[4].fixed(), ks[3].fixed()) {
        (Some(c), Some(i)) if i > 0 && c % i == 0 => (c / i) as usize,
        _ => 1,
    };
    let padding = resolve_same(pads3(&o)?, &xs[1..4], &kernel, &strides, &dilations);
    let c = Conv {
        layout: Layout::Nhwc,
        kernel_layout: KernelLayout::Hwio,
        strides,
        dilations,
        padding,
        group,
        output_padding: vec![],
    };
    let mut inputs = vec![x, k];
    inputs.extend(n.opt(2));
    let act = fused(o.fused_activation_function())?;
    let y = b.emit1(&format!("{}/conv", n.name), Op::Conv(c), inputs)?;
    apply_fused(b, &n.name, y, act)
}

/// CONV_3D_TRANSPOSE(output_shape, filter, input, bias?).
fn conv3d_transpose(b: &mut GraphBuilder, n: &Node) -> NodeResult<Vec<ValueId>> {
    let o = n.options(n.op.builtin_options_as_conv_3_doptions(), "Conv3DOptions")?;
    let want = b.entries_or_unknown(n.input(0)?).unwrap_or_default();
    let (k, x) = (n.input(1)?, n.input(2)?);
    let (ks, xs) = (b.g.ty(k).shape.clone(), b.g.ty(x).shape.clone());
    if ks.len() != 5 || xs.len() != 5 || want.len() != 5 {
        return Err(NodeError::Invalid(
            "needs 5-D output shape, filter and input".into(),
        ));
    }
    let (strides, dilations) = triples(&o)?;
    if dilations.iter().any(|&d| d != 1) {
        return unsupported("dilated CONV_3D_TRANSPOSE");
    }
    let kernel = fixed_sizes(&ks[..3], "kernel size")?;
    let same = pads3(&o)? == Padding::SameUpper;
    let (mut pads, mut output_padding) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let (before, after, extra) =
            transpose_pads(&xs[1 + i], kernel[i], strides[i], &want[1 + i], same)?;
        pads.push((before, after));
        output_padding.push(extra);
    }
    let c = Conv {
        layout: Layout::Nhwc,
        kernel_layout: KernelLayout::Hwoi,
        strides,
        dilations,
        padding: Padding::Explicit(pads),
        group: 1,
        output_padding,
    };
    let act = fused(o.fused_activation_function())?;
    super::nn::transposed_with_bias(b, n, c, x, k, act)
}
