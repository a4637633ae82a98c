//! Convolutions: Conv1D/2D/3D (strides, dilations, groups, padding same/valid/causal),
//! DepthwiseConv1D/2D, SeparableConv1D/2D, Conv1D/2D/3DTranspose. Keras kernels are
//! `[spatial..., in/groups, out]` (`Hwio`) on channels-last data (`Nhwc`).
//! Quirks: a depthwise kernel `[kh, kw, in, mult]` has the bytes of the grouped kernel
//! `[kh, kw, 1, in*mult]` (output channel `c*mult + m`), so it is reshaped, not copied. A
//! transposed-convolution kernel is `[spatial..., out, in]`, a layout the IR does not name: it
//! is permuted once to `Iohw` (what ONNX ConvTranspose takes).

use super::super::build::{unsupported, Builder, Call, LResult};
use super::{apply_activation, ints, layout_of, permuted};
use crate::ir::ops::{Conv, Pad, PadMode, Padding};
use crate::ir::{KernelLayout, Layout, Op, Tensor, ValueId};
use serde_json::Value;

pub fn handler(class: &str) -> Option<super::Handler> {
    Some(match class {
        "Conv1D" | "Conv2D" | "Conv3D" | "Convolution1D" | "Convolution2D" | "Convolution3D" => {
            conv
        }
        "DepthwiseConv1D" | "DepthwiseConv2D" => depthwise,
        "SeparableConv1D"
        | "SeparableConv2D"
        | "SeparableConvolution1D"
        | "SeparableConvolution2D" => separable,
        "Conv1DTranspose"
        | "Conv2DTranspose"
        | "Conv3DTranspose"
        | "Convolution2DTranspose"
        | "Convolution3DTranspose" => conv_transpose,
        _ => return None,
    })
}

fn spatial_rank(class: &str) -> usize {
    if class.contains("1D") {
        1
    } else if class.contains("3D") {
        3
    } else {
        2
    }
}

struct Window {
    strides: Vec<usize>,
    dilations: Vec<usize>,
    padding: String,
    layout: Layout,
}

fn window(c: &Call, n: usize) -> LResult<Window> {
    let cfg = c.config;
    let get = |k: &str| cfg.get(k).cloned().unwrap_or(Value::from(1));
    Ok(Window {
        strides: ints(&get("strides"), n, "strides")?,
        dilations: ints(&get("dilation_rate"), n, "dilation_rate")?,
        padding: cfg
            .get("padding")
            .and_then(Value::as_str)
            .unwrap_or("valid")
            .to_string(),
        layout: layout_of(cfg)?,
    })
}

/// The IR padding for `same`/`valid`; `causal` pads the input's start explicitly.
fn padding(
    b: &mut Builder,
    name: &str,
    w: &Window,
    kernel: &[usize],
    x: ValueId,
) -> LResult<(Padding, ValueId)> {
    let n = kernel.len();
    match w.padding.as_str() {
        "valid" => Ok((Padding::Explicit(vec![(0, 0); n]), x)),
        // onnxruntime refuses auto_pad SAME with dilations: give dilated windows explicit
        // pads when the sizes are known.
        "same" if w.dilations.iter().any(|&d| d > 1) => {
            let s = b.shape(x);
            let spatial: Vec<_> = w
                .layout
                .spatial_axes(s.len())
                .map(|a| s[a].clone())
                .collect();
            let probe = Conv {
                layout: w.layout,
                kernel_layout: KernelLayout::Hwio,
                strides: w.strides.clone(),
                dilations: w.dilations.clone(),
                padding: Padding::SameUpper,
                group: 1,
                output_padding: vec![],
            };
            match probe.explicit_pads(&spatial, kernel) {
                Some(p) => Ok((Padding::Explicit(p), x)),
                None => Ok((Padding::SameUpper, x)),
            }
        }
        "same" => Ok((Padding::SameUpper, x)),
        "causal" if n == 1 => {
            let rank = b.g.ty(x).rank();
            let mut pads = vec![(0i64, 0i64); rank];
            let ax = w.layout.spatial_axes(rank).start;
            pads[ax].0 = w.dilations[0].saturating_mul(kernel[0].saturating_sub(1)) as i64;
            let p = Pad {
                mode: PadMode::Constant,
                pads,
                value: 0.0,
            };
            let y = b.emit1(&format!("{name}/causal_pad"), Op::Pad(p), vec![x])?;
            Ok((Padding::Explicit(vec![(0, 0)]), y))
        }
        other => unsupported(format!("padding '{other}'")),
    }
}

fn conv_node(
    b: &mut Builder,
    name: &str,
    x: ValueId,
    kernel: Tensor,
    bias: Option<&Tensor>,
    w: &Window,
    group: usize,
) -> LResult<ValueId> {
    let Some(n) = kernel.shape.len().checked_sub(2).filter(|&n| n > 0) else {
        return Err(format!("{name}: kernel of rank {}", kernel.shape.len()).into());
    };
    let (pad, x) = padding(b, name, w, &kernel.shape[..n], x)?;
    let k = b.constant(&format!("{name}/kernel"), kernel);
    let mut ins = vec![x, k];
    if let Some(bias) = bias {
        ins.push(b.constant(&format!("{name}/bias"), bias.clone()));
    }
    let op = Conv {
        layout: w.layout,
        kernel_layout: KernelLayout::Hwio,
        strides: w.strides.clone(),
        dilations: w.dilations.clone(),
        padding: pad,
        group,
        output_padding: vec![],
    };
    b.emit1(name, Op::Conv(op), ins)
}

fn use_bias(c: &Call) -> bool {
    c.config
        .get("use_bias")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

fn activation(c: &Call) -> Value {
    c.config.get("activation").cloned().unwrap_or(Value::Null)
}

fn conv(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let n = spatial_rank(c.class);
    let w = window(c, n)?;
    let group = c.config.get("groups").and_then(Value::as_u64).unwrap_or(1) as usize;
    let bias = if use_bias(c) {
        Some(c.weight(1)?)
    } else {
        None
    };
    let y = conv_node(
        b,
        &c.name,
        c.input(0)?,
        c.weight(0)?.clone(),
        bias,
        &w,
        group,
    )?;
    Ok(vec![apply_activation(b, &c.name, &activation(c), y)?])
}

/// `[k..., in, mult]` → `[k..., 1, in*mult]`: the same bytes.
fn depthwise_kernel(k: &Tensor) -> LResult<(Tensor, usize)> {
    let r = k.shape.len();
    if r < 3 {
        return Err(format!("depthwise kernel of rank {r}").into());
    }
    let (cin, mult) = (k.shape[r - 2], k.shape[r - 1]);
    let mut shape = k.shape[..r - 2].to_vec();
    shape.extend([1, cin * mult]);
    Ok((k.reshaped(shape), cin))
}

fn depthwise(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let n = spatial_rank(c.class);
    let w = window(c, n)?;
    let (k, cin) = depthwise_kernel(c.weight(0)?)?;
    let bias = if use_bias(c) {
        Some(c.weight(1)?)
    } else {
        None
    };
    let y = conv_node(b, &c.name, c.input(0)?, k, bias, &w, cin)?;
    Ok(vec![apply_activation(b, &c.name, &activation(c), y)?])
}

fn separable(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let n = spatial_rank(c.class);
    let w = window(c, n)?;
    let (k, cin) = depthwise_kernel(c.weight(0)?)?;
    let dw = conv_node(
        b,
        &format!("{}/depthwise", c.name),
        c.input(0)?,
        k,
        None,
        &w,
        cin,
    )?;
    let point = Window {
        strides: vec![1; n],
        dilations: vec![1; n],
        padding: "valid".into(),
        layout: w.layout,
    };
    let bias = if use_bias(c) {
        Some(c.weight(2)?)
    } else {
        None
    };
    let y = conv_node(b, &c.name, dw, c.weight(1)?.clone(), bias, &point, 1)?;
    Ok(vec![apply_activation(b, &c.name, &activation(c), y)?])
}

/// Pads and output padding of a transposed convolution without `output_padding`: Keras's
/// output size is `(in - 1)·s + k` for valid padding (no cropping; the stride's excess when
/// k < s as output padding) and `in·s` for same (the total crop `k - s` split with the larger
/// half at the end, as TF's conv2d_backprop_input does).
fn implied_output_padding(w: &Window, ksz: &[usize]) -> LResult<(Padding, Vec<usize>)> {
    let n = ksz.len();
    match w.padding.as_str() {
        "valid" => {
            let op = (ksz.iter().zip(&w.strides))
                .map(|(&kk, &s)| s.saturating_sub(kk))
                .collect();
            Ok((Padding::Explicit(vec![(0, 0); n]), op))
        }
        "same" => {
            let mut p = Vec::new();
            for (&kk, &s) in ksz.iter().zip(&w.strides) {
                if kk < s {
                    return unsupported(
                        "'same' transposed convolution with kernel smaller than stride",
                    );
                }
                let total = kk - s;
                p.push((total / 2, total - total / 2));
            }
            Ok((Padding::Explicit(p), vec![0; n]))
        }
        other => unsupported(format!("padding '{other}'")),
    }
}

/// With `output_padding` p, Keras's output size is `(in - 1)·s + k - 2·pad + p` (pad = k / 2
/// for same, 0 for valid), which TF computes by cropping the full `(in - 1)·s + k` output by
/// `2·pad - p` (the smaller half first), or padding it at the end where that is negative.
fn explicit_output_padding(
    w: &Window,
    ksz: &[usize],
    requested: &[usize],
) -> LResult<(Padding, Vec<usize>)> {
    let (mut pads, mut out_pad) = (Vec::new(), Vec::new());
    for ((&kk, &s), &p) in ksz.iter().zip(&w.strides).zip(requested) {
        if p >= s {
            return Err(format!("output_padding {p} is not smaller than the stride {s}").into());
        }
        let pad = match w.padding.as_str() {
            "same" => kk / 2,
            "valid" => 0,
            other => return unsupported(format!("padding '{other}'")),
        };
        let crop = (2 * pad) as i64 - p as i64;
        if crop >= 0 {
            let crop = crop as usize;
            pads.push((crop / 2, crop - crop / 2));
            out_pad.push(0);
        } else {
            pads.push((0, 0));
            out_pad.push((-crop) as usize);
        }
    }
    Ok((Padding::Explicit(pads), out_pad))
}

fn conv_transpose(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let n = spatial_rank(c.class);
    let w = window(c, n)?;
    if w.dilations.iter().any(|&d| d != 1) {
        return unsupported("transposed convolution with dilation");
    }
    let requested = match c.config.get("output_padding") {
        None | Some(Value::Null) => None,
        Some(v) => Some(super::ints(v, n, "output_padding")?),
    };
    let k = c.weight(0)?;
    if k.shape.len() != n + 2 {
        return Err(format!("{}: kernel of rank {}", c.name, k.shape.len()).into());
    }
    // [spatial..., out, in] → [in, out, spatial...]
    let mut perm = vec![n + 1, n];
    perm.extend(0..n);
    let kernel = permuted(k, &perm);
    let ksz: Vec<usize> = k.shape[..n].to_vec();
    let x = c.input(0)?;
    let (padding, output_padding) = match requested {
        Some(op) => explicit_output_padding(&w, &ksz, &op)?,
        None => implied_output_padding(&w, &ksz)?,
    };
    let kv = b.constant(&format!("{}/kernel", c.name), kernel);
    let mut ins = vec![x, kv];
    if use_bias(c) {
        ins.push(b.constant(&format!("{}/bias", c.name), c.weight(1)?.clone()));
    }
    let op = Conv {
        layout: w.layout,
        kernel_layout: KernelLayout::Iohw,
        strides: w.strides.clone(),
        dilations: w.dilations.clone(),
        padding,
        group: 1,
        output_padding,
    };
    let y = b.emit1(&c.name, Op::ConvTranspose(op), ins)?;
    Ok(vec![apply_activation(b, &c.name, &activation(c), y)?])
}
