//! Ops with operands computed at run time: the IR keeps ONNX's own input forms for them, so each
//! is one ONNX node over the same inputs.

use super::super::emit::{attr_i, attr_s, Emitter};
use super::{pad_mode, reduce_op, resize_attrs, R};
use crate::ir::ops::{Dynamic, ReduceKind};

/// Opsets where an operand became an input: Reshape's `allowzero` (14), Trilu (14), Pad's
/// `axes` (18), reduction axes (13 for ReduceSum, 18 for the others).
pub fn min_opset(d: &Dynamic) -> i64 {
    match d {
        Dynamic::Reshape { allowzero: true } | Dynamic::Trilu { .. } => 14,
        Dynamic::Pad { .. } => 18,
        Dynamic::Reduce { kind, .. } if *kind != ReduceKind::Sum => 18,
        Dynamic::Reshape { allowzero: false }
        | Dynamic::Expand
        | Dynamic::Tile
        | Dynamic::Slice
        | Dynamic::Reduce { .. }
        | Dynamic::TopK { .. }
        | Dynamic::Resize { .. }
        | Dynamic::CumSum { .. }
        | Dynamic::OneHot { .. }
        | Dynamic::Split { .. }
        | Dynamic::Squeeze
        | Dynamic::Unsqueeze
        | Dynamic::NonMaxSuppression { .. } => 13,
    }
}

pub fn emit(em: &mut Emitter, d: &Dynamic, name: &str, ins: Vec<String>, outs: Vec<String>) -> R {
    let (op, ins, attrs) = match d {
        Dynamic::Reshape { allowzero } => {
            let attrs = match allowzero {
                true => vec![attr_i("allowzero", 1)],
                false => vec![],
            };
            ("Reshape", ins, attrs)
        }
        Dynamic::Expand => ("Expand", ins, vec![]),
        Dynamic::Tile => ("Tile", ins, vec![]),
        Dynamic::Slice => ("Slice", ins, vec![]),
        Dynamic::Pad { mode } => ("Pad", ins, vec![attr_s("mode", pad_mode(em, *mode)?)]),
        Dynamic::Reduce {
            kind,
            keep_dims,
            noop_with_empty_axes,
        } => {
            let attrs = vec![
                attr_i("keepdims", *keep_dims as i64),
                attr_i("noop_with_empty_axes", *noop_with_empty_axes as i64),
            ];
            (reduce_op(*kind), ins, attrs)
        }
        Dynamic::TopK {
            axis,
            largest,
            sorted,
        } => {
            let attrs = vec![
                attr_i("axis", *axis as i64),
                attr_i("largest", *largest as i64),
                attr_i("sorted", *sorted as i64),
            ];
            ("TopK", ins, attrs)
        }
        Dynamic::Resize { resize, by_sizes } => {
            super::need_nchw(resize.layout)?;
            let attrs = resize_attrs(em, resize)?;
            let [x, operand] = <[String; 2]>::try_from(ins)
                .map_err(|_| "Resize takes x and one operand".to_string())?;
            let ins = match by_sizes {
                true => vec![x, String::new(), String::new(), operand],
                false => vec![x, String::new(), operand],
            };
            ("Resize", ins, attrs)
        }
        Dynamic::CumSum { exclusive, reverse } => {
            let attrs = vec![
                attr_i("exclusive", *exclusive as i64),
                attr_i("reverse", *reverse as i64),
            ];
            ("CumSum", ins, attrs)
        }
        Dynamic::Trilu { upper } => ("Trilu", ins, vec![attr_i("upper", *upper as i64)]),
        Dynamic::OneHot { axis } => ("OneHot", ins, vec![attr_i("axis", *axis)]),
        Dynamic::Split { axis } => ("Split", ins, vec![attr_i("axis", *axis as i64)]),
        Dynamic::Squeeze => ("Squeeze", ins, vec![]),
        Dynamic::Unsqueeze => ("Unsqueeze", ins, vec![]),
        Dynamic::NonMaxSuppression { center_point_box } => {
            let attrs = vec![attr_i("center_point_box", *center_point_box as i64)];
            ("NonMaxSuppression", ins, attrs)
        }
    };
    em.node(op, name, ins, outs, attrs);
    Ok(())
}
