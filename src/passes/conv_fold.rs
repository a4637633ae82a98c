//! Folds into a convolution what a converter would otherwise run as separate ops:
//! - a per-channel `Mul` / `Add` by a constant right after it (a batch norm exported as
//!   arithmetic, as Keras 3 `model.export()` writes it: `x * (gamma / sqrt(var + eps)) + (beta -
//!   mean * ...)`), into its kernel and bias;
//! - a zero constant `Pad` of the spatial axes right before it (Keras `ZeroPadding2D` + a
//!   "valid" convolution, as MobileNet's stride-2 blocks), into its explicit padding, which the
//!   TFLite writer then writes as SAME when it equals SAME's.
//!
//! Applies only when the intermediate value has no other use and is no graph output, the kernel
//! (and bias, if any) are f32 constants, and the constant varies along the channel axis alone.

use super::fuse::{folded_bias, out_channel_axis, scale_along, scale_along_owned};
use crate::ir::ops::{BinaryOp, PadMode, Padding};
use crate::ir::{DType, Graph, KernelLayout, Op, Tensor, ValueId};

/// The per-channel values of constant `c` broadcast against a `rank`-D value whose channel
/// axis is `axis` with `channels` entries (a scalar repeats).
fn per_channel(c: &Tensor, rank: usize, axis: usize, channels: usize) -> Option<Vec<f64>> {
    if c.dtype != DType::F32 || c.shape.len() > rank {
        return None;
    }
    let v = c.to_f64s();
    if v.len() == 1 {
        return Some(vec![v[0]; channels]);
    }
    let offset = rank - c.shape.len();
    let ok = c.shape.iter().enumerate().all(|(i, &d)| {
        if i + offset == axis {
            d == channels
        } else {
            d == 1
        }
    });
    ok.then_some(v)
}

/// A fold one sweep found: the Mul/Add node `bi` into the convolution `pi`.
struct Fold {
    bi: usize,
    pi: usize,
    mul: bool,
    kernel: ValueId,
    o_axis: usize,
    bias: Option<Tensor>,
    per_channel: Vec<f64>,
}

/// A Mul fold's kernel: taken out of the graph when the convolution is its only user (then
/// scaled in place when nothing else shares its bytes, as after a relayout), else shared.
type Kernel = std::sync::Mutex<Option<Tensor>>;

impl Fold {
    /// The new kernel (a Mul only) and bias; `Err` gives back the kernel when they cannot be
    /// folded.
    fn tensors(&self, kernel: &Kernel) -> Result<(Option<Tensor>, Tensor), Option<Tensor>> {
        let v = &self.per_channel;
        let k = kernel.lock().ok().and_then(|mut k| k.take());
        if !self.mul {
            let ones = vec![1.0; v.len()];
            return folded_bias(self.bias.as_ref(), &ones, v)
                .map(|b| (None, b))
                .ok_or(k);
        }
        let zeros = vec![0.0; v.len()];
        let Some(b) = folded_bias(self.bias.as_ref(), v, &zeros) else {
            return Err(k);
        };
        let k = k.ok_or(None)?;
        match scale_along_owned(k, self.o_axis, v) {
            Ok(w) => Ok((Some(w), b)),
            Err(k) => Err(Some(k)),
        }
    }
}

/// The folds of one sweep, in node order. Each depends only on the graph before the sweep (a
/// convolution's output has one use, so no convolution folds twice in a sweep).
fn plan_affine(g: &Graph, adds_only: bool) -> Vec<Fold> {
    let producers = g.producers();
    let uses = g.use_counts();
    let mut folds = Vec::new();
    for bi in 0..g.nodes.len() {
        let Op::Binary(op @ (BinaryOp::Mul | BinaryOp::Add)) = g.nodes[bi].op else {
            continue;
        };
        if adds_only && op == BinaryOp::Mul {
            continue;
        }
        let ins = &g.nodes[bi].inputs;
        if ins.len() != 2 {
            continue;
        }
        let (x, c) = match (g.constant(ins[0]), g.constant(ins[1])) {
            (None, Some(c)) => (ins[0], c),
            (Some(c), None) => (ins[1], c),
            _ => continue,
        };
        if uses[x.0] != 1 || g.outputs.contains(&x) {
            continue;
        }
        let Some(&pi) = producers.get(&x) else {
            continue;
        };
        let p = &g.nodes[pi];
        let Op::Conv(conv) = &p.op else { continue };
        let rank = g.ty(x).rank();
        let axis = conv.layout.channel_axis(rank);
        let Some(k) = g.constant(p.inputs[1]) else {
            continue;
        };
        let Some(o_axis) = out_channel_axis(conv.kernel_layout, k.shape.len()) else {
            continue;
        };
        let channels = k.shape[o_axis];
        let bias = p.inputs.get(2).map(|&b| g.constant(b));
        if matches!(bias, Some(None)) || g.ty(g.nodes[bi].outputs[0]) != g.ty(x) {
            continue;
        }
        let Some(v) = per_channel(c, rank, axis, channels) else {
            continue;
        };
        folds.push(Fold {
            bi,
            pi,
            mul: op == BinaryOp::Mul,
            kernel: p.inputs[1],
            o_axis,
            bias: bias.flatten().cloned(),
            per_channel: v,
        });
    }
    folds
}

/// One sweep of affine folding; returns whether anything changed. The new kernels are
/// computed on all cores (`parallel::map`), then applied in node order.
fn fold_affine_once(g: &mut Graph, adds_only: bool) -> bool {
    let folds = plan_affine(g, adds_only);
    let uses = g.use_counts();
    let kernels: Vec<Kernel> = folds
        .iter()
        .map(|f| {
            let k = f.kernel;
            let only_user = uses[k.0] == 1 && !g.outputs.contains(&k);
            std::sync::Mutex::new(match (f.mul, only_user) {
                (false, _) => None,
                (true, true) => g.values[k.0].constant.take(),
                (true, false) => g.constant(k).cloned(),
            })
        })
        .collect();
    let jobs: Vec<(&Fold, &Kernel)> = folds.iter().zip(&kernels).collect();
    let cost = |(f, _): &(&Fold, &Kernel)| f.mul as usize * f.per_channel.len();
    let made = crate::parallel::map(&jobs, cost, |(f, k)| f.tensors(k));
    let mut dead = vec![false; g.nodes.len()];
    // One name generator per sweep: building it per fold would be quadratic.
    let mut names = g.names();
    let mut changed = false;
    for (f, r) in folds.iter().zip(made) {
        let (w, b) = match r {
            Ok(wb) => wb,
            Err(k) => {
                // Not folded: a kernel taken out goes back.
                if let Some(k) = k {
                    g.values[f.kernel.0].constant = Some(k);
                }
                continue;
            }
        };
        let base = g.nodes[f.pi].name.clone();
        if let Some(w) = w {
            let id = g.add_const(&names.fresh(&format!("{base}/folded_w")), w);
            g.nodes[f.pi].inputs[1] = id;
        }
        let bid = g.add_const(&names.fresh(&format!("{base}/folded_b")), b);
        g.nodes[f.pi].inputs.truncate(2);
        g.nodes[f.pi].inputs.push(bid);
        g.nodes[f.pi].outputs[0] = g.nodes[f.bi].outputs[0];
        dead[f.bi] = true;
        changed = true;
    }
    if changed {
        let mut k = dead.iter();
        g.nodes.retain(|_| !*k.next().unwrap_or(&false));
    }
    changed
}

/// Folds per-channel constant multiplies and adds after convolutions into them.
pub fn fold_affine_into_convs(g: &mut Graph) -> bool {
    let mut any = false;
    // A Mul then an Add fold in two sweeps; each sweep is linear.
    while fold_affine_once(g, false) {
        any = true;
    }
    if any {
        g.remove_dead();
    }
    any
}

/// Folds per-channel constant adds after convolutions into their biases (the same arithmetic:
/// the kernel is untouched).
pub fn fold_bias_adds_into_convs(g: &mut Graph) -> bool {
    let mut any = false;
    while fold_affine_once(g, true) {
        any = true;
    }
    if any {
        g.remove_dead();
    }
    any
}

/// Folds zero padding of the spatial axes into the convolution after it.
pub fn fold_pads_into_convs(g: &mut Graph) -> bool {
    let producers = g.producers();
    let uses = g.use_counts();
    let mut changed = false;
    for ci in 0..g.nodes.len() {
        let Op::Conv(conv) = &g.nodes[ci].op else {
            continue;
        };
        let x: ValueId = g.nodes[ci].inputs[0];
        let Padding::Explicit(old) = &conv.padding else {
            continue;
        };
        if uses[x.0] != 1 || g.outputs.contains(&x) {
            continue;
        }
        let Some(&pi) = producers.get(&x) else {
            continue;
        };
        let Op::Pad(pad) = &g.nodes[pi].op else {
            continue;
        };
        let rank = pad.pads.len();
        let spatial: Vec<usize> = conv.layout.spatial_axes(rank).collect();
        let only_spatial =
            pad.pads.iter().enumerate().all(|(a, &(b, e))| {
                b >= 0 && e >= 0 && (spatial.contains(&a) || (b == 0 && e == 0))
            });
        if pad.mode != PadMode::Constant
            || pad.value != 0.0
            || !only_spatial
            || g.nodes[pi].inputs.len() != 1
        {
            continue;
        }
        let merged: Vec<(usize, usize)> = spatial
            .iter()
            .zip(old)
            .map(|(&a, &(b, e))| (b + pad.pads[a].0 as usize, e + pad.pads[a].1 as usize))
            .collect();
        let src = g.nodes[pi].inputs[0];
        let Op::Conv(conv) = &mut g.nodes[ci].op else {
            continue;
        };
        conv.padding = Padding::Explicit(merged);
        g.nodes[ci].inputs[0] = src;
        changed = true;
    }
    if changed {
        g.remove_dead();
    }
    changed
}

/// The input-channel axis of a kernel of an ungrouped convolution in `layout`.
fn in_channel_axis(layout: KernelLayout, rank: usize) -> Option<usize> {
    match layout {
        KernelLayout::Oihw => Some(1),
        KernelLayout::Ohwi => Some(rank.checked_sub(1)?),
        KernelLayout::Hwio => Some(rank.checked_sub(2)?),
        // Depthwise (IHWO) and transposed layouts scale output channels per input channel.
        KernelLayout::Ihwo | KernelLayout::Iohw | KernelLayout::Hwoi => None,
    }
}

/// Folds a constant `Mul` by a scalar or per-channel value right before an ungrouped
/// convolution into the kernel's input channels: `conv(x·a, W) = conv(x, W·a)`, exactly (zero
/// padding stays zero). Input normalization (`Rescaling(1/255)`) otherwise runs as a float
/// multiply before the model's first QUANTIZE, where TFLiteConverter's file starts integer.
pub fn fold_input_scales_into_convs(g: &mut Graph) -> bool {
    let producers = g.producers();
    let uses = g.use_counts();
    let mut names = g.names();
    let mut changed = false;
    for ci in 0..g.nodes.len() {
        let Op::Conv(conv) = &g.nodes[ci].op else {
            continue;
        };
        let x = g.nodes[ci].inputs[0];
        if conv.group != 1 || uses[x.0] != 1 || g.outputs.contains(&x) {
            continue;
        }
        let Some(&mi) = producers.get(&x) else {
            continue;
        };
        let m = &g.nodes[mi];
        if !matches!(m.op, Op::Binary(BinaryOp::Mul)) || m.inputs.len() != 2 {
            continue;
        }
        let (y, c) = match (g.constant(m.inputs[0]), g.constant(m.inputs[1])) {
            (None, Some(c)) => (m.inputs[0], c),
            (Some(c), None) => (m.inputs[1], c),
            _ => continue,
        };
        if g.ty(y) != g.ty(x) {
            continue;
        }
        let Some(k) = g.constant(g.nodes[ci].inputs[1]) else {
            continue;
        };
        let rank = g.ty(x).rank();
        let Some(i_axis) = in_channel_axis(conv.kernel_layout, k.shape.len()) else {
            continue;
        };
        let axis = conv.layout.channel_axis(rank);
        let Some(w) =
            per_channel(c, rank, axis, k.shape[i_axis]).and_then(|v| scale_along(k, i_axis, &v))
        else {
            continue;
        };
        let name = names.fresh(&format!("{}/scaled_w", g.nodes[ci].name));
        let id = g.add_const(&name, w);
        g.nodes[ci].inputs[0] = y;
        g.nodes[ci].inputs[1] = id;
        changed = true;
    }
    if changed {
        g.remove_dead();
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::{Conv, Pad};
    use crate::ir::{fixed_shape, KernelLayout, Layout, TensorType};

    fn seeded(shape: Vec<usize>, seed: usize) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|k| ((k * 13 + seed * 7) % 17) as f32 / 17.0 - 0.4)
            .collect();
        Tensor::from_f32(shape, &v)
    }

    #[test]
    fn pad_conv_mul_add_become_one_conv() {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[1, 8, 8, 3])));
        let pad = Op::Pad(Pad {
            mode: PadMode::Constant,
            pads: vec![(0, 0), (0, 1), (1, 1), (0, 0)],
            value: 0.0,
        });
        let p = g.add_node("pad", pad, vec![x], &["p".into()]).unwrap();
        let k = g.add_const("k", seeded(vec![4, 3, 3, 3], 1));
        let conv = Op::Conv(Conv {
            layout: Layout::Nhwc,
            kernel_layout: KernelLayout::Ohwi,
            strides: vec![2, 2],
            dilations: vec![1, 1],
            padding: Padding::Explicit(vec![(1, 0), (0, 0)]),
            group: 1,
            output_padding: vec![],
        });
        let c = g
            .add_node("conv", conv, vec![p[0], k], &["c".into()])
            .unwrap();
        let s = g.add_const("s", seeded(vec![4], 2));
        let m = g.add_node(
            "mul",
            Op::Binary(BinaryOp::Mul),
            vec![s, c[0]],
            &["m".into()],
        );
        let t = g.add_const("t", seeded(vec![1, 1, 1, 4], 3));
        let y = g.add_node(
            "add",
            Op::Binary(BinaryOp::Add),
            vec![m.unwrap()[0], t],
            &["y".into()],
        );
        g.outputs = y.unwrap();
        let inputs = crate::eval::random_inputs(&g, 4, 1);
        let want = crate::eval::run(&g, &inputs).unwrap();
        assert!(fold_affine_into_convs(&mut g));
        assert!(fold_pads_into_convs(&mut g));
        g.verify().unwrap();
        assert_eq!(g.nodes.len(), 1, "{:?}", g.nodes);
        let Op::Conv(c) = &g.nodes[0].op else {
            panic!("not a conv")
        };
        assert_eq!(c.padding, Padding::Explicit(vec![(1, 1), (1, 1)]));
        let got = crate::eval::run(&g, &inputs).unwrap();
        let cmp = crate::eval::compare("y", &got[0], &want[0]);
        assert!(cmp.shape_matches && cmp.max_rel < 1e-6, "{cmp:?}");
    }

    #[test]
    fn other_uses_and_non_channel_constants_block_the_fold() {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[1, 4, 4, 2])));
        let k = g.add_const("k", seeded(vec![2, 1, 1, 2], 1));
        let conv = Op::Conv(Conv {
            layout: Layout::Nhwc,
            kernel_layout: KernelLayout::Ohwi,
            strides: vec![1, 1],
            dilations: vec![1, 1],
            padding: Padding::Explicit(vec![(0, 0), (0, 0)]),
            group: 1,
            output_padding: vec![],
        });
        let c = g.add_node("conv", conv, vec![x, k], &["c".into()]).unwrap();
        // Varies along W, not the channels.
        let s = g.add_const("s", seeded(vec![1, 1, 4, 1], 2));
        let m = g.add_node("mul", Op::Binary(BinaryOp::Mul), vec![c[0], s], &[]);
        g.outputs = vec![m.unwrap()[0], c[0]];
        assert!(!fold_affine_into_convs(&mut g));
        assert_eq!(g.nodes.len(), 2);
    }

    #[test]
    fn input_scales_fold_into_the_kernel_input_channels() {
        for (layout, kernel_layout, k_shape, x_shape, s_shape) in [
            (
                Layout::Nhwc,
                KernelLayout::Ohwi,
                vec![4, 3, 3, 3],
                vec![1, 6, 6, 3],
                vec![3],
            ),
            (
                Layout::Nchw,
                KernelLayout::Oihw,
                vec![4, 3, 3, 3],
                vec![1, 3, 6, 6],
                vec![1, 3, 1, 1],
            ),
            (
                Layout::Nchw,
                KernelLayout::Oihw,
                vec![4, 3, 3, 3],
                vec![1, 3, 6, 6],
                vec![],
            ),
        ] {
            let mut g = Graph::new();
            let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&x_shape)));
            let s = g.add_const("s", seeded(s_shape.clone(), 2));
            let m = g.add_node("mul", Op::Binary(BinaryOp::Mul), vec![x, s], &["m".into()]);
            let k = g.add_const("k", seeded(k_shape, 1));
            let conv = Op::Conv(Conv {
                layout,
                kernel_layout,
                strides: vec![1, 1],
                dilations: vec![1, 1],
                padding: Padding::Explicit(vec![(1, 1), (1, 1)]),
                group: 1,
                output_padding: vec![],
            });
            let y = g.add_node("conv", conv, vec![m.unwrap()[0], k], &["y".into()]);
            g.outputs = y.unwrap();
            let inputs = crate::eval::random_inputs(&g, 4, 1);
            let want = crate::eval::run(&g, &inputs).unwrap();
            assert!(fold_input_scales_into_convs(&mut g), "{s_shape:?}");
            g.verify().unwrap();
            assert_eq!(g.nodes.len(), 1, "{:?}", g.nodes);
            let got = crate::eval::run(&g, &inputs).unwrap();
            let cmp = crate::eval::compare("y", &got[0], &want[0]);
            assert!(
                cmp.shape_matches && cmp.max_rel < 1e-5,
                "{s_shape:?}: {cmp:?}"
            );
        }
    }
}
