//! ONNX ScatterND-18 (reduction none or add) on TFLite's SCATTER_ND-1, which builds a new
//! tensor: zeros of the given shape with the updates *summed* in at the indices. So
//! `add` is `data + SCATTER_ND(updates)`, and `none` is
//! `SELECT_V2(SCATTER_ND(ones) != 0, SCATTER_ND(updates), data)` (a select, not arithmetic, so
//! infinities and NaNs in `data` stay where they are not overwritten). ONNX forbids duplicate
//! indices without a reduction; if a model has them anyway, their updates are summed here.

use super::super::plan::{Cx, Opts, TRef};
use crate::ir::ops::{Scatter, ScatterReduction};
use crate::ir::{DType, Dim, Tensor, TensorType};
use tract_tflite::tflite::{ActivationFunctionType as Act, BuiltinOperator as B};

pub fn scatter_nd(cx: &mut Cx, s: &Scatter) -> Result<(), String> {
    if !matches!(s.reduction, ScatterReduction::None | ScatterReduction::Add) {
        return Err(format!(
            "reduction {:?}: TFLite SCATTER_ND only sums into zeros (none and add are lowered)",
            s.reduction
        ));
    }
    let data_ty = cx.ty(0)?.clone();
    let upd_ty = cx.ty(2)?.clone();
    let idx = match cx.ty(1)?.dtype {
        DType::I32 => cx.x(1)?,
        DType::I64 => {
            let shape = cx.ty(1)?.shape.clone();
            let t = cx.temp("indices32", TensorType::new(DType::I32, shape));
            let i = cx.x(1)?;
            let cast = Opts::Cast {
                from: DType::I64,
                to: DType::I32,
            };
            cx.emit(B::CAST, cast, vec![Some(i)], vec![t]);
            t
        }
        d => return Err(format!("indices of type {d}")),
    };
    let shape_of = |cx: &mut Cx, v: TRef, ty: &TensorType, tag: &str| -> TRef {
        if let Some(f) = crate::ir::shape_fixed(&ty.shape) {
            let v: Vec<i32> = f.iter().map(|&n| n as i32).collect();
            return cx.i32_vec(tag, &v);
        }
        let r = ty.rank() as u64;
        let t = cx.temp(tag, TensorType::new(DType::I32, vec![Dim::Fixed(r)]));
        cx.emit(B::SHAPE, Opts::Shape, vec![Some(v)], vec![t]);
        t
    };
    let data = cx.x(0)?;
    let shape = shape_of(cx, data, &data_ty, "shape");
    let scattered = cx.temp("scattered", data_ty.clone());
    let upd = cx.x(2)?;
    cx.emit(
        B::SCATTER_ND,
        Opts::None,
        vec![Some(idx), Some(upd), Some(shape)],
        vec![scattered],
    );
    let y = cx.out(0);
    if s.reduction == ScatterReduction::Add {
        cx.emit(
            B::ADD,
            Opts::Arith(Act::NONE),
            vec![Some(data), Some(scattered)],
            vec![y],
        );
        return Ok(());
    }
    // Where the updates land: scatter ones of the updates' shape.
    let one = Tensor::from_f64s(upd_ty.dtype, vec![], &[1.0]);
    let one = cx.konst("one", one);
    let ones = if let Some(n) = crate::ir::shape_fixed(&upd_ty.shape) {
        let t = Tensor::from_f64s(upd_ty.dtype, n.clone(), &vec![1.0; n.iter().product()]);
        cx.konst("ones", t)
    } else {
        let dims = shape_of(cx, upd, &upd_ty, "updates_shape");
        let t = cx.temp("ones", upd_ty.clone());
        cx.emit(B::FILL, Opts::None, vec![Some(dims), Some(one)], vec![t]);
        t
    };
    let hits = cx.temp("hits", data_ty.clone());
    cx.emit(
        B::SCATTER_ND,
        Opts::None,
        vec![Some(idx), Some(ones), Some(shape)],
        vec![hits],
    );
    let zero = cx.konst("zero", Tensor::from_f64s(upd_ty.dtype, vec![], &[0.0]));
    let mask = cx.temp("mask", TensorType::new(DType::Bool, data_ty.shape.clone()));
    cx.emit(
        B::NOT_EQUAL,
        Opts::None,
        vec![Some(hits), Some(zero)],
        vec![mask],
    );
    cx.emit(
        B::SELECT_V2,
        Opts::None,
        vec![Some(mask), Some(scattered), Some(data)],
        vec![y],
    );
    Ok(())
}
