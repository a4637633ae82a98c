//! MaxPool with its `Indices` output: the window's elements stacked on a new axis (one strided
//! slice of the −∞-padded input per kernel offset, in row-major kernel order), their max and
//! first argmax; the argmax becomes the flat index of the chosen element in the unpadded input
//! (`(n·C + c)·H·W + h·W + w`, or `h + w·H` for `storage_order` 1), as MaxPool defines it.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use crate::ir::ops::{
    ArgReduce, BinaryOp, Gather, Pad, PadMode, Padding, Pool, ReduceKind, Slice, SliceAxis,
};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};

pub fn max_pool_with_indices(
    imp: &mut Importer,
    ctx: &NodeCtx,
    x: ValueId,
    p: Pool,
) -> NodeResult<Vec<ValueId>> {
    let ty = imp.g.ty(x).clone();
    let dims: Option<Vec<usize>> = ty
        .shape
        .iter()
        .map(|d| d.fixed().map(|v| v as usize))
        .collect();
    let Some(dims) = dims else {
        return unsupported("MaxPool indices of an input whose shape is known only at run time");
    };
    let Padding::Explicit(pads) = p.padding.clone() else {
        return unsupported("MaxPool indices with padding resolved only at run time");
    };
    let n = dims.len() - 2;
    let column_major = ctx.int("storage_order", 0) == 1;
    if column_major && n != 2 {
        return unsupported("MaxPool indices in column-major order beyond 2-D");
    }
    // The pooled sizes, as MaxPool itself infers them (ceil_mode included).
    let out_ty = imp.g.infer(&Op::Pool(p.clone()), &[x])?;
    let out: Option<Vec<usize>> = out_ty[0].shape[2..]
        .iter()
        .map(|d| d.fixed().map(|v| v as usize))
        .collect();
    let out = out.ok_or_else(|| NodeError::Invalid("MaxPool output size not fixed".into()))?;
    let mut b = Build::new(imp, &ctx.name);
    // Pad with −∞, extending the end for windows ceil_mode lets run past the padding.
    let mut full_pads = vec![(0i64, 0i64); 2];
    for i in 0..n {
        let need = (out[i] - 1) * p.strides[i] + (p.kernel[i] - 1) * p.dilations[i] + 1;
        let have = dims[2 + i] + pads[i].0 + pads[i].1;
        full_pads.push((
            pads[i].0 as i64,
            (pads[i].1 + need.saturating_sub(have)) as i64,
        ));
    }
    let pad = Pad {
        mode: PadMode::Constant,
        pads: full_pads,
        value: f64::NEG_INFINITY,
    };
    let padded = b.op("pad", Op::Pad(pad), vec![x])?;
    let offsets = kernel_offsets(&p.kernel);
    let mut windows = vec![];
    for o in &offsets {
        let axes = (0..n)
            .map(|i| {
                let start = (o[i] * p.dilations[i]) as i64;
                SliceAxis {
                    axis: 2 + i,
                    start,
                    end: start + ((out[i] - 1) * p.strides[i]) as i64 + 1,
                    step: p.strides[i] as i64,
                }
            })
            .collect();
        let w = b.op("window", Op::Slice(Slice { axes }), vec![padded])?;
        let mut s = b.shape(w);
        s.insert(2, Dim::Fixed(1));
        windows.push(b.reshape(w, s)?);
    }
    let stack = b.concat(windows, 2)?; // [N, C, K, out…]
    let values = b.reduce(ReduceKind::Max, stack, vec![2], false)?;
    let arg = ArgReduce {
        max: true,
        axis: 2,
        keep_dims: false,
        select_last: false,
    };
    let k = b.op("argmax", Op::ArgReduce(arg), vec![stack])?; // [N, C, out…] i64
    let (nb, c) = (dims[0], dims[1]);
    let area: usize = dims[2..].iter().product();
    // Flat index: plane · area + position within the plane.
    let planes: Vec<i64> = (0..(nb * c) as i64).map(|v| v * area as i64).collect();
    let mut pshape = vec![nb, c];
    pshape.extend(std::iter::repeat_n(1, n));
    let mut index = b.constant("planes", Tensor::from_i64s(DType::I64, pshape, &planes));
    for i in 0..n {
        // Coordinate on spatial axis i: out_i · stride − pad_begin + offset_i(k) · dilation.
        let table: Vec<i64> = offsets
            .iter()
            .map(|o| (o[i] * p.dilations[i]) as i64)
            .collect();
        let table = b.constant(
            "offsets",
            Tensor::from_i64s(DType::I64, vec![table.len()], &table),
        );
        let within = b.op("offset", Op::Gather(Gather { axis: 0 }), vec![table, k])?;
        let starts: Vec<i64> = (0..out[i] as i64)
            .map(|v| v * p.strides[i] as i64 - pads[i].0 as i64)
            .collect();
        let mut sshape = vec![1; 2 + n];
        sshape[2 + i] = out[i];
        let starts = b.constant("starts", Tensor::from_i64s(DType::I64, sshape, &starts));
        let coord = b.bin(BinaryOp::Add, within, starts)?;
        let stride = if column_major {
            // h + w·H
            if i == 0 {
                1
            } else {
                dims[2]
            }
        } else {
            dims[3 + i..].iter().product::<usize>()
        };
        let stride = b.scalar("stride", DType::I64, stride as f64);
        let term = b.bin(BinaryOp::Mul, coord, stride)?;
        index = b.bin(BinaryOp::Add, index, term)?;
    }
    Ok(vec![values, index])
}

/// Every kernel position, row-major.
fn kernel_offsets(kernel: &[usize]) -> Vec<Vec<usize>> {
    let mut all = vec![vec![]];
    for &k in kernel {
        all = all
            .into_iter()
            .flat_map(|p: Vec<usize>| {
                (0..k).map(move |o| {
                    let mut q = p.clone();
                    q.push(o);
                    q
                })
            })
            .collect();
    }
    all
}
