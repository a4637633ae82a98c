//! MatMul (numpy semantics, ONNX MatMul), Einsum (ONNX Einsum-12) and convolutions
//! (ONNX Conv/ConvTranspose-11; TF Conv2D/DepthwiseConv2dNative/Conv2DBackpropInput map here
//! with `Hwio` kernels and `Nhwc` data).

use super::{broadcast, unknown_dim, window_out, Inputs};
use crate::ir::{Dim, KernelLayout, Layout, Shape, TensorType};

/// Matrix product; `transpose_b` reads b as `[.., n, k]` (weights stored output-major, as ONNX
/// Gemm transB, TFLite FULLY_CONNECTED and TF MatMul transpose_b keep them), so no weight copy is
/// needed to express it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatMul {
    pub transpose_a: bool,
    pub transpose_b: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Einsum {
    pub equation: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Padding {
    /// `(begin, end)` per spatial axis.
    Explicit(Vec<(usize, usize)>),
    /// Output size `ceil(in / stride)`, extra padding at the end (TF "SAME").
    SameUpper,
    /// As `SameUpper` with the extra padding at the beginning.
    SameLower,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conv {
    pub layout: Layout,
    pub kernel_layout: KernelLayout,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub padding: Padding,
    pub group: usize,
    /// ConvTranspose only: extra size added at the end of each spatial axis.
    pub output_padding: Vec<usize>,
}

impl Conv {
    /// `(out_channels, in_channels_per_group, spatial kernel sizes)` from the kernel's shape.
    pub fn kernel_dims(&self, k: &[Dim]) -> Result<(Dim, Dim, Vec<usize>), String> {
        if k.len() < 3 {
            return Err(format!("kernel rank {} < 3", k.len()));
        }
        let n = k.len();
        let spatial = |dims: &[Dim]| -> Result<Vec<usize>, String> {
            dims.iter()
                .map(|d| {
                    d.fixed()
                        .map(|v| v as usize)
                        .ok_or("kernel size must be fixed".to_string())
                })
                .collect()
        };
        let sp = spatial(&k[self.kernel_layout.spatial_axes(n)])?;
        let (o, i) = match self.kernel_layout {
            KernelLayout::Oihw => (0, 1),
            KernelLayout::Iohw => (1, 0),
            KernelLayout::Hwio => (n - 1, n - 2),
            KernelLayout::Ohwi => (0, n - 1),
            KernelLayout::Hwoi => (n - 2, n - 1),
            KernelLayout::Ihwo => (n - 1, 0),
        };
        Ok((k[o].clone(), k[i].clone(), sp))
    }

    /// The explicit `(begin, end)` padding for an input of known spatial sizes.
    pub fn explicit_pads(
        &self,
        spatial_in: &[Dim],
        kernel: &[usize],
    ) -> Option<Vec<(usize, usize)>> {
        match &self.padding {
            Padding::Explicit(p) => Some(p.clone()),
            same => {
                let mut pads = Vec::new();
                for (i, d) in spatial_in.iter().enumerate() {
                    // A zero stride, dilation, kernel or input size (a corrupt model) has no
                    // SAME padding: the caller refuses the node.
                    let n = d.fixed()? as usize;
                    let s = *self.strides.get(i).filter(|&&s| s > 0)?;
                    let k = kernel.get(i)?.checked_sub(1)?;
                    let eff = self.dilations.get(i)?.checked_mul(k)?.checked_add(1)?;
                    let out = n.div_ceil(s).checked_sub(1)?;
                    let total = out.checked_mul(s)?.checked_add(eff)?.saturating_sub(n);
                    let small = total / 2;
                    pads.push(if *same == Padding::SameUpper {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    });
                }
                Some(pads)
            }
        }
    }
}

pub fn infer_matmul(m: &MatMul, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 2)?;
    let (a, b) = (inputs.ty(0)?, inputs.ty(1)?);
    let swap = |s: &[Dim], t: bool| -> Result<Shape, String> {
        let mut s = s.to_vec();
        if t {
            if s.len() < 2 {
                return Err("transposed MatMul operand needs rank >= 2".into());
            }
            let n = s.len();
            s.swap(n - 1, n - 2);
        }
        Ok(s)
    };
    let shape = matmul_shape(
        &swap(&a.shape, m.transpose_a)?,
        &swap(&b.shape, m.transpose_b)?,
    )?;
    Ok(vec![TensorType::new(a.dtype, shape)])
}

pub fn matmul_shape(a: &[Dim], b: &[Dim]) -> Result<Shape, String> {
    if a.is_empty() || b.is_empty() {
        return Err("MatMul of a scalar".into());
    }
    let mut a2 = a.to_vec();
    let mut b2 = b.to_vec();
    if a2.len() == 1 {
        a2.insert(0, Dim::Fixed(1));
    }
    if b2.len() == 1 {
        b2.push(Dim::Fixed(1));
    }
    let (ka, kb) = (&a2[a2.len() - 1], &b2[b2.len() - 2]);
    if ka.is_fixed() && kb.is_fixed() && ka != kb {
        return Err(format!("MatMul inner dimensions differ: {ka} and {kb}"));
    }
    let mut out = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() > 1 {
        out.push(a2[a2.len() - 2].clone());
    }
    if b.len() > 1 {
        out.push(b2[b2.len() - 1].clone());
    }
    Ok(out)
}

pub fn infer_einsum(e: &Einsum, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    let eq: String = e.equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != inputs.len() {
        return Err(format!(
            "equation has {} operands, node has {} inputs",
            terms.len(),
            inputs.len()
        ));
    }
    let mut sizes: std::collections::BTreeMap<char, Dim> = Default::default();
    let mut counts: std::collections::BTreeMap<char, usize> = Default::default();
    let mut ellipsis: Shape = vec![];
    for (i, term) in terms.iter().enumerate() {
        let shape = inputs.shape(i)?;
        let letters: Vec<char> = term.replace("...", "").chars().collect();
        if letters.len() > shape.len() || (!term.contains("...") && letters.len() != shape.len()) {
            return Err(format!(
                "operand {i} '{term}' does not match rank {}",
                shape.len()
            ));
        }
        let n_ell = shape.len() - letters.len();
        let (before, after) = term.split_once("...").unwrap_or((term, ""));
        let ell_start = before.len();
        ellipsis = broadcast(
            &ellipsis,
            &shape[ell_start..ell_start + if term.contains("...") { n_ell } else { 0 }],
        )?;
        let dims = before
            .chars()
            .zip(shape.iter())
            .chain(after.chars().zip(shape[shape.len() - after.len()..].iter()));
        for (c, d) in dims {
            *counts.entry(c).or_default() += 1;
            let slot = sizes.entry(c).or_insert(d.clone());
            if *slot == Dim::Fixed(1) {
                *slot = d.clone();
            }
        }
    }
    let out_term = match rhs {
        Some(r) => r,
        None => {
            let mut s = if lhs.contains("...") {
                "...".to_string()
            } else {
                String::new()
            };
            s.extend(counts.iter().filter(|(_, &n)| n == 1).map(|(c, _)| *c));
            s
        }
    };
    let mut shape = Vec::new();
    let (before, after) = out_term
        .split_once("...")
        .map_or((out_term.as_str(), None), |(b, a)| (b, Some(a)));
    for c in before.chars() {
        shape.push(
            sizes
                .get(&c)
                .cloned()
                .ok_or(format!("output letter '{c}' not in inputs"))?,
        );
    }
    if let Some(after) = after {
        shape.extend(ellipsis.iter().cloned());
        for c in after.chars() {
            shape.push(
                sizes
                    .get(&c)
                    .cloned()
                    .ok_or(format!("output letter '{c}' not in inputs"))?,
            );
        }
    }
    Ok(vec![TensorType::new(inputs.dtype(0)?, shape)])
}

pub fn infer_conv(c: &Conv, inputs: &Inputs, _integer: bool) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 3)?;
    let x = inputs.ty(0)?;
    Ok(vec![TensorType::new(
        x.dtype,
        conv_shape(c, &x.shape, inputs.shape(1)?)?,
    )])
}

/// Output shape of a convolution of `x` with kernel `k`.
pub fn conv_shape(c: &Conv, x: &[Dim], k: &[Dim]) -> Result<Shape, String> {
    if x.len() != k.len() {
        return Err(format!(
            "input rank {} but kernel rank {}",
            x.len(),
            k.len()
        ));
    }
    let (out_c, in_per_group, kernel) = c.kernel_dims(k)?;
    super::check_window(&kernel, &c.strides, &c.dilations)?;
    if c.group == 0 {
        return Err("group must be at least 1".into());
    }
    let spatial = c.layout.spatial_axes(x.len());
    let ch = &x[c.layout.channel_axis(x.len())];
    if let (Some(ch), Some(ipg)) = (ch.fixed(), in_per_group.fixed()) {
        if ch != ipg * c.group as u64 {
            return Err(format!(
                "input has {ch} channels, kernel expects {ipg} x {} groups",
                c.group
            ));
        }
    }
    let n_sp = spatial.len();
    if kernel.len() != n_sp || c.strides.len() != n_sp || c.dilations.len() != n_sp {
        return Err("strides/dilations do not match the spatial rank".into());
    }
    let mut out = x.to_vec();
    out[c.layout.channel_axis(x.len())] = out_c;
    let sp_in: Vec<Dim> = x[spatial.clone()].to_vec();
    for (i, ax) in spatial.enumerate() {
        out[ax] = match &c.padding {
            Padding::Explicit(p) => window_out(
                &sp_in[i],
                kernel[i],
                c.strides[i],
                c.dilations[i],
                p[i],
                false,
            )?,
            _ => match sp_in[i].fixed() {
                Some(n) => Dim::Fixed(n.div_ceil(c.strides[i] as u64)),
                None => unknown_dim(),
            },
        };
    }
    Ok(out)
}

pub fn infer_conv_transpose(c: &Conv, inputs: &Inputs) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(2, 3)?;
    let x = inputs.ty(0)?;
    let k = inputs.shape(1)?;
    let (out_c, _, kernel) = c.kernel_dims(k)?;
    super::check_window(&kernel, &c.strides, &c.dilations)?;
    if kernel.len() != x.rank().saturating_sub(2) {
        return Err("kernel does not match the spatial rank".into());
    }
    let out_c = match out_c.fixed() {
        // ConvTranspose kernels hold out/groups channels.
        Some(n) => Dim::Fixed(n * c.group as u64),
        None => unknown_dim(),
    };
    let mut out = x.shape.clone();
    out[c.layout.channel_axis(x.rank())] = out_c;
    for (i, ax) in c.layout.spatial_axes(x.rank()).enumerate() {
        let s = c.strides[i];
        out[ax] = match (&c.padding, x.shape[ax].fixed()) {
            (Padding::Explicit(p), None) => {
                // s·(n-1) + output_padding + d·(k-1) + 1 - pads = s·n when the rest cancels.
                // In i128: no declared size can overflow it.
                let rest = c.output_padding.get(i).copied().unwrap_or(0) as i128
                    + ((kernel[i] as i128 - 1) * c.dilations[i] as i128 + 1)
                    - s as i128
                    - (p[i].0 as i128 + p[i].1 as i128);
                match rest {
                    0 => Dim::product(&[Dim::Fixed(s as u64), x.shape[ax].clone()]),
                    _ => unknown_dim(),
                }
            }
            (_, None) => Dim::product(&[Dim::Fixed(s as u64), x.shape[ax].clone()]),
            (Padding::Explicit(p), Some(n)) => {
                // Checked: a file may declare an empty input or sizes whose product overflows.
                let full = (n as usize)
                    .checked_sub(1)
                    .and_then(|m| s.checked_mul(m))
                    .and_then(|v| v.checked_add(c.output_padding.get(i).copied().unwrap_or(0)))
                    .and_then(|v| {
                        let span = kernel[i].checked_sub(1)?.checked_mul(c.dilations[i])?;
                        v.checked_add(span)?.checked_add(1)
                    })
                    .ok_or("transposed convolution of an empty input or of sizes that overflow")?;
                Dim::Fixed(
                    full.checked_sub(p[i].0.saturating_add(p[i].1))
                        .ok_or("padding larger than output")? as u64,
                )
            }
            (_, Some(n)) => Dim::Fixed(
                n.checked_mul(s as u64)
                    .ok_or("transposed convolution output size overflows")?,
            ),
        };
    }
    Ok(vec![TensorType::new(x.dtype, out)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{fixed_shape, DType};

    fn conv(padding: Padding, strides: usize) -> Conv {
        Conv {
            layout: Layout::Nchw,
            kernel_layout: KernelLayout::Oihw,
            strides: vec![strides; 2],
            dilations: vec![1; 2],
            padding,
            group: 1,
            output_padding: vec![],
        }
    }

    #[test]
    fn conv_output_sizes() {
        let x = fixed_shape(&[1, 3, 32, 31]);
        let k = fixed_shape(&[8, 3, 3, 3]);
        let s = conv_shape(&conv(Padding::Explicit(vec![(1, 1); 2]), 2), &x, &k).unwrap();
        assert_eq!(s, fixed_shape(&[1, 8, 16, 16]));
        let s = conv_shape(&conv(Padding::SameUpper, 2), &x, &k).unwrap();
        assert_eq!(s, fixed_shape(&[1, 8, 16, 16]));
        let bad = fixed_shape(&[8, 4, 3, 3]);
        assert!(conv_shape(&conv(Padding::SameUpper, 1), &x, &bad).is_err());
    }

    #[test]
    fn same_padding_puts_extra_at_the_end() {
        let c = conv(Padding::SameUpper, 2);
        let pads = c.explicit_pads(&fixed_shape(&[32, 31]), &[3, 3]).unwrap();
        assert_eq!(pads, vec![(0, 1), (1, 1)]);
    }

    #[test]
    fn matmul_batches_and_vectors() {
        assert_eq!(
            matmul_shape(&fixed_shape(&[2, 5, 16]), &fixed_shape(&[16, 4])).unwrap(),
            fixed_shape(&[2, 5, 4])
        );
        assert_eq!(
            matmul_shape(&fixed_shape(&[16]), &fixed_shape(&[16, 4])).unwrap(),
            fixed_shape(&[4])
        );
        assert!(matmul_shape(&fixed_shape(&[2, 3]), &fixed_shape(&[4, 5])).is_err());
    }

    #[test]
    fn einsum_shapes() {
        let a = TensorType::new(DType::F32, fixed_shape(&[2, 3, 4]));
        let b = TensorType::new(DType::F32, fixed_shape(&[2, 4, 5]));
        let ins = Inputs {
            types: vec![&a, &b],
            consts: vec![None, None],
        };
        let e = Einsum {
            equation: "bij,bjk->bik".into(),
        };
        assert_eq!(
            infer_einsum(&e, &ins).unwrap()[0].shape,
            fixed_shape(&[2, 3, 5])
        );
        let e = Einsum {
            equation: "...ij,...jk".into(),
        };
        assert_eq!(
            infer_einsum(&e, &ins).unwrap()[0].shape,
            fixed_shape(&[2, 3, 5])
        );
    }
}
