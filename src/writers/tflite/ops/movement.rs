//! Data movement and indexing: RESHAPE-1 (symbolic targets computed at run time from SHAPE
//! where more than one dimension is unknown), TRANSPOSE, CONCATENATION, SPLIT / SPLIT_V,
//! STRIDED_SLICE (ONNX Slice clamping is Python's, as TF's; open ends use the masks), PAD /
//! PADV2 / MIRROR_PAD (REFLECT; edge padding of one cell is SYMMETRIC), TILE, BROADCAST_TO-2,
//! GATHER (constant negative indices normalized, int64 indices made int32), GATHER_ND,
//! TOPK_V2 (+CAST of the int32 indices), SHAPE, FILL, RANGE.

use super::super::plan::{Cx, Opts, TRef};
use super::i32_of;
use crate::ir::ops::{
    Concat, ConstantOfShape, Expand, Gather, GatherNd, Pad, PadMode, Reshape, ShapeOf, Slice,
    Split, Tile, TopK, Transpose,
};
use crate::ir::{DType, Dim, Tensor, TensorType};
use tract_tflite::tflite::BuiltinOperator as B;

pub fn reshape(cx: &mut Cx, r: &Reshape) -> Result<(), String> {
    let x_id = cx.input(0)?;
    let shape = cx.dims_operand("shape", &r.shape, &[x_id], true)?;
    let fixed: Option<Vec<i32>> = r
        .shape
        .iter()
        .map(|d| d.fixed().map(|n| n as i32))
        .collect();
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(
        B::RESHAPE,
        Opts::Reshape(fixed),
        vec![Some(x), Some(shape)],
        vec![y],
    );
    Ok(())
}

pub fn transpose(cx: &mut Cx, t: &Transpose) -> Result<(), String> {
    if t.perm.len() > 6 {
        return Err("TRANSPOSE supports up to 6 dimensions".into());
    }
    let perm: Vec<i32> = t.perm.iter().map(|&p| p as i32).collect();
    let perm = cx.i32_vec("perm", &perm);
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(B::TRANSPOSE, Opts::None, vec![Some(x), Some(perm)], vec![y]);
    Ok(())
}

pub fn concat(cx: &mut Cx, c: &Concat) -> Result<(), String> {
    let mut inputs = (0..cx.node.inputs.len())
        .map(|i| cx.x(i).map(Some))
        .collect::<Result<Vec<_>, _>>()?;
    let (y, act) = (cx.out(0), cx.act());
    // int8 CONCATENATION copies bytes: every input must have the output's parameters.
    if let Some(want) = cx.is_int8().then(|| cx.quant_of(y).cloned()).flatten() {
        for (i, x) in inputs.iter_mut().enumerate() {
            if let Some(r) = *x {
                *x = Some(cx.requantized(r, &want, &format!("requantized_{i}")));
            }
        }
    }
    cx.emit(
        B::CONCATENATION,
        Opts::Concat {
            axis: c.axis as i32,
            act,
        },
        inputs,
        vec![y],
    );
    Ok(())
}

pub fn split(cx: &mut Cx, s: &Split) -> Result<(), String> {
    let n = s.sizes.len() as i32;
    let outs: Vec<_> = (0..s.sizes.len()).map(|i| cx.out(i)).collect();
    let axis = cx.i32s("axis", vec![], &[s.axis as i32]);
    let x = cx.x(0)?;
    // Equal parts of a symbolic axis are sizes only the graph knows: a reader of SPLIT would
    // have to divide an unknown size, so SPLIT_V states them.
    let fixed_axis = cx.ty(0)?.shape.get(s.axis).is_some_and(Dim::is_fixed);
    if fixed_axis && s.sizes.windows(2).all(|w| w[0] == w[1]) {
        cx.emit(B::SPLIT, Opts::Split(n), vec![Some(axis), Some(x)], outs);
    } else {
        let sizes: Vec<i32> = s.sizes.iter().map(|&v| v as i32).collect();
        let sizes = cx.i32_vec("sizes", &sizes);
        cx.emit(
            B::SPLIT_V,
            Opts::SplitV(n),
            vec![Some(x), Some(sizes), Some(axis)],
            outs,
        );
    }
    Ok(())
}

pub fn slice(cx: &mut Cx, s: &Slice) -> Result<(), String> {
    let rank = cx.ty(0)?.rank();
    let (mut begin, mut end, mut strides) = (vec![0i32; rank], vec![0i32; rank], vec![1i32; rank]);
    let (mut begin_mask, mut end_mask) = (0i32, 0i32);
    for ax in 0..rank {
        begin_mask |= 1 << ax;
        end_mask |= 1 << ax;
    }
    for a in &s.axes {
        let bit = 1 << a.axis;
        strides[a.axis] = i32_of(a.step, "slice step")?;
        begin_mask &= !bit;
        end_mask &= !bit;
        let clamp = |v: i64| v.clamp(i32::MIN as i64 + 1, i32::MAX as i64) as i32;
        begin[a.axis] = clamp(a.start);
        let n = cx.ty(0)?.shape[a.axis].fixed().map(|n| n as i64);
        let open_end = if a.step > 0 {
            a.end >= n.unwrap_or(i32::MAX as i64)
        } else {
            a.end < -n.unwrap_or(i32::MAX as i64)
        };
        if open_end {
            end_mask |= bit;
        } else {
            end[a.axis] = clamp(a.end);
        }
        if a.step < 0 && n.is_some_and(|n| a.start >= n) {
            begin_mask |= bit;
        }
    }
    let b = cx.i32_vec("begin", &begin);
    let e = cx.i32_vec("end", &end);
    let st = cx.i32_vec("strides", &strides);
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(
        B::STRIDED_SLICE,
        Opts::StridedSlice {
            begin_mask,
            end_mask,
        },
        vec![Some(x), Some(b), Some(e), Some(st)],
        vec![y],
    );
    Ok(())
}

pub fn pad(cx: &mut Cx, p: &Pad) -> Result<(), String> {
    if p.pads.iter().any(|&(b, e)| b < 0 || e < 0) {
        return Err("negative pads (cropping) are not mapped".into());
    }
    let flat: Vec<i32> = p
        .pads
        .iter()
        .flat_map(|&(b, e)| [b as i32, e as i32])
        .collect();
    let paddings = cx.i32s("paddings", vec![p.pads.len(), 2], &flat);
    let (x, y) = (cx.x(0)?, cx.out(0));
    let dtype = cx.ty(0)?.dtype;
    match p.mode {
        PadMode::Constant if p.value == 0.0 => {
            cx.emit(B::PAD, Opts::None, vec![Some(x), Some(paddings)], vec![y]);
        }
        PadMode::Constant => {
            let v = cx.konst("value", Tensor::from_f64s(dtype, vec![], &[p.value]));
            cx.emit(
                B::PADV2,
                Opts::None,
                vec![Some(x), Some(paddings), Some(v)],
                vec![y],
            );
        }
        PadMode::Reflect | PadMode::Edge => {
            let reflect = p.mode == PadMode::Reflect;
            if !reflect && p.pads.iter().any(|&(b, e)| b > 1 || e > 1) {
                return Err("edge padding wider than one cell".into());
            }
            cx.emit(
                B::MIRROR_PAD,
                Opts::MirrorPad { reflect },
                vec![Some(x), Some(paddings)],
                vec![y],
            );
        }
        PadMode::Wrap => return Err("wrap padding has no TFLite builtin".into()),
    }
    Ok(())
}

pub fn tile(cx: &mut Cx, t: &Tile) -> Result<(), String> {
    let reps: Vec<i32> = t.repeats.iter().map(|&r| r as i32).collect();
    let reps = cx.i32_vec("multiples", &reps);
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(B::TILE, Opts::None, vec![Some(x), Some(reps)], vec![y]);
    Ok(())
}

pub fn expand(cx: &mut Cx, _e: &Expand) -> Result<(), String> {
    let x_id = cx.input(0)?;
    let target = cx.out_ty(0).shape.clone();
    let shape = cx.dims_operand("shape", &target, &[x_id], false)?;
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(
        B::BROADCAST_TO,
        Opts::None,
        vec![Some(x), Some(shape)],
        vec![y],
    );
    Ok(())
}

/// Constant indices with negatives normalized against `n`, as int32.
fn indices(cx: &mut Cx, at: usize, n: Option<u64>) -> Result<TRef, String> {
    let Some(t) = cx.konst_in(at) else {
        return cx.x(at);
    };
    let Some(v) = t.to_i64s() else {
        return Err("indices must be integers".into());
    };
    let shape = t.shape.clone();
    let fixed: Vec<i64> = v
        .iter()
        .map(|&i| match n {
            Some(n) if i < 0 => i + n as i64,
            _ => i,
        })
        .collect();
    if fixed.iter().any(|&i| i < 0) {
        return Err("negative indices into a dimension of unknown size".into());
    }
    let v32: Vec<i32> = fixed
        .iter()
        .map(|&i| i32_of(i, "index"))
        .collect::<Result<_, _>>()?;
    Ok(cx.i32s("indices", shape, &v32))
}

pub fn gather(cx: &mut Cx, g: &Gather) -> Result<(), String> {
    let n = cx.ty(0)?.shape[g.axis].fixed();
    let idx = indices(cx, 1, n)?;
    let (x, y) = (cx.x(0)?, cx.out(0));
    cx.emit(
        B::GATHER,
        Opts::Gather {
            axis: g.axis as i32,
        },
        vec![Some(x), Some(idx)],
        vec![y],
    );
    Ok(())
}

pub fn gather_nd(cx: &mut Cx, g: &GatherNd) -> Result<(), String> {
    if g.batch_dims != 0 {
        return Err("GATHER_ND has no batch_dims".into());
    }
    let (x, i, y) = (cx.x(0)?, cx.x(1)?, cx.out(0));
    cx.emit(B::GATHER_ND, Opts::None, vec![Some(x), Some(i)], vec![y]);
    Ok(())
}

pub fn topk(cx: &mut Cx, t: &TopK) -> Result<(), String> {
    if t.axis + 1 != cx.ty(0)?.rank() || !t.largest || !t.sorted {
        return Err("TOPK_V2 takes the sorted largest values along the last axis".into());
    }
    let k = cx.i32s("k", vec![], &[t.k as i32]);
    let idx_ty = cx.out_ty(1).clone();
    let (x, values) = (cx.x(0)?, cx.out(0));
    if idx_ty.dtype == DType::I32 {
        let idx = cx.out(1);
        cx.emit(
            B::TOPK_V2,
            Opts::None,
            vec![Some(x), Some(k)],
            vec![values, idx],
        );
        return Ok(());
    }
    let tmp = cx.temp(
        "indices32",
        TensorType::new(DType::I32, idx_ty.shape.clone()),
    );
    cx.emit(
        B::TOPK_V2,
        Opts::None,
        vec![Some(x), Some(k)],
        vec![values, tmp],
    );
    let idx = cx.out(1);
    cx.emit(
        B::CAST,
        Opts::Cast {
            from: DType::I32,
            to: idx_ty.dtype,
        },
        vec![Some(tmp)],
        vec![idx],
    );
    Ok(())
}

pub fn shape_of(cx: &mut Cx, s: &ShapeOf) -> Result<(), String> {
    let rank = cx.ty(0)?.rank();
    let out_ty = cx.out_ty(0).clone();
    let x = cx.x(0)?;
    let full = cx.temp(
        "shape",
        TensorType::new(DType::I32, vec![Dim::Fixed(rank as u64)]),
    );
    cx.emit(B::SHAPE, Opts::Shape, vec![Some(x)], vec![full]);
    let mut cur = full;
    if s.start != 0 || s.end != rank {
        let b = cx.i32_vec("begin", &[s.start as i32]);
        let n = cx.i32_vec("size", &[(s.end - s.start) as i32]);
        let part = cx.temp("part", TensorType::new(DType::I32, out_ty.shape.clone()));
        cx.emit(
            B::SLICE,
            Opts::None,
            vec![Some(cur), Some(b), Some(n)],
            vec![part],
        );
        cur = part;
    }
    let y = cx.out(0);
    cx.emit(
        B::CAST,
        Opts::Cast {
            from: DType::I32,
            to: out_ty.dtype,
        },
        vec![Some(cur)],
        vec![y],
    );
    Ok(())
}

pub fn constant_of_shape(cx: &mut Cx, c: &ConstantOfShape) -> Result<(), String> {
    let value = cx.konst("value", c.value.reshaped(vec![]));
    let (dims, y) = (cx.x(0)?, cx.out(0));
    cx.emit(B::FILL, Opts::None, vec![Some(dims), Some(value)], vec![y]);
    Ok(())
}

pub fn range(cx: &mut Cx) -> Result<(), String> {
    // RANGE takes scalars only; ONNX graphs (expanded functions) also hand it one-element
    // vectors, which are reshaped to scalars first.
    let mut operands = Vec::with_capacity(3);
    for i in 0..3 {
        let (x, ty) = (cx.x(i)?, cx.ty(i)?.clone());
        if ty.rank() == 0 {
            operands.push(x);
            continue;
        }
        let shape = cx.i32s(&format!("scalar_shape_{i}"), vec![0], &[]);
        let s = cx.temp(&format!("scalar_{i}"), TensorType::new(ty.dtype, vec![]));
        cx.emit(
            B::RESHAPE,
            Opts::Reshape(None),
            vec![Some(x), Some(shape)],
            vec![s],
        );
        operands.push(s);
    }
    let (a, b, d, y) = (operands[0], operands[1], operands[2], cx.out(0));
    cx.emit(
        B::RANGE,
        Opts::None,
        vec![Some(a), Some(b), Some(d)],
        vec![y],
    );
    Ok(())
}
