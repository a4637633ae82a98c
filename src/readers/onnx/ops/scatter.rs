//! Ops that write values into a tensor at computed positions, as ScatterElements:
//! TensorScatter-24 (a KV-cache update: `update` written along the sequence axis of
//! `past_cache` from `write_indices[b]`, wrapping around in `circular` mode) and MaxUnpool
//! (values put back at MaxPool's flat indices in a zero tensor of the unpooled shape — given,
//! or `(in − 1)·stride − pads + kernel`).

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::{
    norm_axis, BinaryOp, ConstantOfShape, Dynamic, Expand, ReduceKind, ScatterElements,
    ScatterReduction,
};
use crate::ir::{DType, Dim, Op, Tensor, ValueId};

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "TensorScatter" => tensor_scatter,
        "MaxUnpool" => max_unpool,
        _ => return None,
    })
}

fn scatter(
    b: &mut Build,
    axis: usize,
    x: ValueId,
    idx: ValueId,
    v: ValueId,
) -> NodeResult<ValueId> {
    let s = ScatterElements {
        axis,
        reduction: ScatterReduction::None,
    };
    b.op("scatter", Op::ScatterElements(s), vec![x, idx, v])
}

fn tensor_scatter(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (cache, update) = (ctx.input(0)?, ctx.input(1)?);
    let (ct, ut) = (imp.g.ty(cache).clone(), imp.g.ty(update).clone());
    let rank = ct.rank();
    if rank < 2 || ut.rank() != rank {
        return Err(NodeError::Invalid(format!(
            "TensorScatter of {ut} into {ct}"
        )));
    }
    let axis = norm_axis(ctx.int("axis", -2), rank)?;
    if axis == 0 {
        return Err(NodeError::Invalid(
            "TensorScatter axis cannot be the batch axis".into(),
        ));
    }
    let circular = match ctx.string("mode", "linear").as_str() {
        "linear" => false,
        "circular" => true,
        m => return Err(NodeError::Invalid(format!("TensorScatter mode '{m}'"))),
    };
    let Some(steps) = ut.shape[axis].fixed() else {
        return unsupported("TensorScatter of an update whose length is known only at run time");
    };
    let mut b = Build::new(imp, &ctx.name);
    // Position of update[b, …, s, …] in the cache: write_indices[b] + s.
    let mut sshape = vec![1; rank];
    sshape[axis] = steps as usize;
    let iota: Vec<i64> = (0..steps as i64).collect();
    let mut idx = b.constant("steps", Tensor::from_i64s(DType::I64, sshape, &iota));
    if let Some(w) = ctx.opt_input(2) {
        let w = b.cast(w, DType::I64)?;
        let mut wshape = vec![Dim::Fixed(1); rank];
        wshape[0] = ut.shape[0].clone();
        let w = b.reshape(w, wshape)?;
        idx = b.bin(BinaryOp::Add, idx, w)?;
    }
    if circular {
        let Some(len) = ct.shape[axis].fixed() else {
            return unsupported(
                "circular TensorScatter into a cache whose length is known only at run time",
            );
        };
        let len = b.scalar("length", DType::I64, len as f64);
        idx = b.bin(BinaryOp::Mod, idx, len)?;
    }
    let idx = b.op(
        "expand",
        Op::Expand(Expand {
            shape: ut.shape.clone(),
        }),
        vec![idx],
    )?;
    Ok(vec![scatter(&mut b, axis, cache, idx, update)?])
}

fn max_unpool(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let (x, indices) = (ctx.input(0)?, ctx.input(1)?);
    let ty = imp.g.ty(x).clone();
    if ty.rank() < 3 {
        return Err(NodeError::Invalid(format!(
            "MaxUnpool input {ty} has no spatial axes"
        )));
    }
    let mut b = Build::new(imp, &ctx.name);
    let shape = match ctx.opt_input(2) {
        Some(s) => b.cast(s, DType::I64)?,
        None => {
            let dims = unpooled(ctx, &ty)?;
            b.constant(
                "shape",
                Tensor::from_i64s(DType::I64, vec![dims.len()], &dims),
            )
        }
    };
    // A flat zero tensor of the output's element count, written at the flat indices.
    let count = b.reduce(ReduceKind::Prod, shape, vec![0], true)?;
    let value = Tensor::from_f64s(ty.dtype, vec![], &[0.0]);
    let zeros = b.op(
        "zeros",
        Op::ConstantOfShape(ConstantOfShape { value }),
        vec![count],
    )?;
    let n = ty.shape.iter().map(|d| d.fixed()).product::<Option<u64>>();
    let Some(n) = n else {
        return unsupported("MaxUnpool of an input whose shape is known only at run time");
    };
    let flat_x = b.reshape(x, vec![Dim::Fixed(n)])?;
    let indices = b.cast(indices, DType::I64)?;
    let flat_i = b.reshape(indices, vec![Dim::Fixed(n)])?;
    let y = scatter(&mut b, 0, zeros, flat_i, flat_x)?;
    let reshape = Dynamic::Reshape { allowzero: false };
    Ok(vec![b.op(
        "unflatten",
        Op::Dynamic(reshape),
        vec![y, shape],
    )?])
}

/// The output shape MaxUnpool infers without `output_shape`.
fn unpooled(ctx: &NodeCtx, ty: &crate::ir::TensorType) -> NodeResult<Vec<i64>> {
    let n = ty.rank() - 2;
    let kernel = ctx
        .ints("kernel_shape")
        .ok_or_else(|| NodeError::Invalid("MaxUnpool without kernel_shape".into()))?;
    let strides = ctx.ints("strides").unwrap_or(vec![1; n]);
    let pads = ctx.ints("pads").unwrap_or(vec![0; 2 * n]);
    if kernel.len() != n || strides.len() != n || pads.len() != 2 * n {
        return Err(NodeError::Invalid(
            "kernel_shape/strides/pads do not match the spatial rank".into(),
        ));
    }
    let mut dims = vec![];
    for (i, d) in ty.shape.iter().enumerate() {
        let Some(d) = d.fixed() else {
            return unsupported("MaxUnpool of an input whose shape is known only at run time");
        };
        let d = d as i64;
        dims.push(match i.checked_sub(2) {
            Some(k) => (d - 1) * strides[k] - pads[k] - pads[n + k] + kernel[k],
            None => d,
        });
    }
    Ok(dims)
}
