//! Keras 3 operations on Keras tensors, which a functional model saves as layers of module
//! `keras.src.ops.*` (`ops.matmul(a, b)` is a `Matmul` layer called with `[a, b]`; `x[:, 0]` a
//! `GetItem` called with `[x, key]`). Arguments that are not tensors are in the call's `args`
//! (numbers also in `constants`) or in the operation's config (`axis`, `keepdims`, `dtype`).
//! Operations named like a layer with the same meaning (`Add`, `Multiply`, `Concatenate`, …)
//! are read by the layer's handler.

use super::super::build::{input_dtype, unsupported, Builder, Call, LResult, LayerError};
use super::axis;
use crate::ir::ops::{BinaryOp, Cast, MatMul, Reduce, ReduceKind, Reshape, Slice, SliceAxis};
use crate::ir::ops::{Transpose, UnaryOp};
use crate::ir::{Dim, Op, Tensor, ValueId};
use serde_json::Value;

pub fn handler(class: &str) -> Option<super::Handler> {
    Some(match class {
        "Absolute" | "Abs" | "Negative" | "Square" | "Sqrt" | "Exp" | "Log" | "Tanh"
        | "Sigmoid" | "Relu" | "Floor" | "Ceil" | "Sin" | "Cos" | "Erf" | "Sign" | "Reciprocal"
        | "Rsqrt" | "LogicalNot" => unary,
        "TrueDivide" | "Divide" | "Power" | "Equal" | "NotEqual" | "Greater" | "GreaterEqual"
        | "Less" | "LessEqual" | "LogicalAnd" | "LogicalOr" => binary,
        "Matmul" => matmul,
        "Cast" => cast,
        "ExpandDims" | "Squeeze" | "Reshape" => reshape,
        "Transpose" => transpose,
        "Mean" | "Sum" | "Max" | "Min" | "Prod" => reduce,
        "Where" => select,
        "GetItem" => get_item,
        _ => return None,
    })
}

fn unary(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let op = match c.class {
        "Absolute" | "Abs" => UnaryOp::Abs,
        "Negative" => UnaryOp::Neg,
        "Square" => UnaryOp::Square,
        "Sqrt" => UnaryOp::Sqrt,
        "Exp" => UnaryOp::Exp,
        "Log" => UnaryOp::Log,
        "Tanh" => UnaryOp::Tanh,
        "Sigmoid" => UnaryOp::Sigmoid,
        "Relu" => UnaryOp::Relu,
        "Floor" => UnaryOp::Floor,
        "Ceil" => UnaryOp::Ceil,
        "Sin" => UnaryOp::Sin,
        "Cos" => UnaryOp::Cos,
        "Erf" => UnaryOp::Erf,
        "Sign" => UnaryOp::Sign,
        "Reciprocal" => UnaryOp::Reciprocal,
        "Rsqrt" => UnaryOp::Rsqrt,
        _ => UnaryOp::Not,
    };
    Ok(vec![b.emit1(&c.name, Op::Unary(op), vec![c.input(0)?])?])
}

/// The two operands in order: tensors, or a tensor and a constant (broadcast like NumPy, of
/// the tensor's element type). The merge layers' handler uses it for `x + 3.0` too.
pub(super) fn operands(b: &mut Builder, c: &Call) -> LResult<(ValueId, ValueId)> {
    match (c.inputs.as_slice(), c.constants) {
        ([x, y], []) => Ok((*x, *y)),
        ([x], [(pos, k)]) => {
            let dtype = b.g.ty(*x).dtype;
            let t = Tensor::from_f64s(dtype, k.shape.clone(), &k.values);
            let k = b.constant(&format!("{}/constant", c.name), t);
            Ok(if *pos == 0 { (k, *x) } else { (*x, k) })
        }
        _ => Err(LayerError::Invalid(format!(
            "{} needs two operands, got {} tensors and {} constants",
            c.class,
            c.inputs.len(),
            c.constants.len()
        ))),
    }
}

fn binary(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let (x, y) = operands(b, c)?;
    // NotEqual, GreaterEqual, LessEqual: the negation of Equal, Less, Greater.
    let (op, negate) = match c.class {
        "TrueDivide" | "Divide" => (BinaryOp::Div, false),
        "Power" => (BinaryOp::Pow, false),
        "Equal" => (BinaryOp::Equal, false),
        "NotEqual" => (BinaryOp::Equal, true),
        "Greater" => (BinaryOp::Greater, false),
        "GreaterEqual" => (BinaryOp::GreaterOrEqual, false),
        "Less" => (BinaryOp::Less, false),
        "LessEqual" => (BinaryOp::LessOrEqual, false),
        "LogicalAnd" => (BinaryOp::And, false),
        _ => (BinaryOp::Or, false),
    };
    if !negate {
        return Ok(vec![b.emit1(&c.name, Op::Binary(op), vec![x, y])?]);
    }
    let eq = b.emit1(&format!("{}/equal", c.name), Op::Binary(op), vec![x, y])?;
    Ok(vec![b.emit1(&c.name, Op::Unary(UnaryOp::Not), vec![eq])?])
}

fn matmul(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let (x, y) = operands(b, c)?;
    let op = Op::MatMul(MatMul::default());
    Ok(vec![b.emit1(&c.name, op, vec![x, y])?])
}

fn cast(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let name = c.config.get("dtype").and_then(Value::as_str).unwrap_or("");
    let Some(to) = input_dtype(name) else {
        return unsupported(format!("Cast to '{name}'"));
    };
    Ok(vec![b.emit1(
        &c.name,
        Op::Cast(Cast { to }),
        vec![c.input(0)?],
    )?])
}

/// One int or a list of ints in the config (`axis`), or `None` when absent or null.
fn config_ints(c: &Call, key: &str) -> LResult<Option<Vec<i64>>> {
    match c.config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(|v| Some(vec![v]))
            .ok_or_else(|| LayerError::Invalid(format!("{key}: {n}"))),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| LayerError::Invalid(format!("{key}: {v}")))
            })
            .collect::<LResult<Vec<_>>>()
            .map(Some),
        Some(v) => Err(LayerError::Invalid(format!("{key}: {v}"))),
    }
}

/// ExpandDims, Squeeze and Reshape (`newshape`, batch included, one -1) as a Reshape to the
/// shape they make.
fn reshape(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let s = b.shape(x);
    let shape: Vec<Dim> = match c.class {
        "ExpandDims" => {
            let mut out = s.clone();
            let mut axes: Vec<usize> = config_ints(c, "axis")?
                .unwrap_or_default()
                .iter()
                .map(|&a| axis(a, s.len() + 1))
                .collect::<LResult<_>>()?;
            axes.sort_unstable();
            for a in axes {
                out.insert(a.min(out.len()), Dim::Fixed(1));
            }
            out
        }
        "Squeeze" => {
            let axes: Vec<usize> = match config_ints(c, "axis")? {
                Some(a) => a
                    .iter()
                    .map(|&a| axis(a, s.len()))
                    .collect::<LResult<_>>()?,
                None => (0..s.len()).filter(|&a| s[a] == Dim::Fixed(1)).collect(),
            };
            if axes.iter().any(|&a| s[a] != Dim::Fixed(1)) {
                return Err(format!("Squeeze of axes {axes:?} of a {s:?} tensor").into());
            }
            (0..s.len())
                .filter(|a| !axes.contains(a))
                .map(|a| s[a].clone())
                .collect()
        }
        _ => {
            let target = config_ints(c, "newshape")?
                .ok_or_else(|| LayerError::Invalid("Reshape without newshape".into()))?;
            crate::ir::ops::resolve_reshape(&s, &target, false)
                .ok_or_else(|| LayerError::Invalid(format!("cannot reshape {s:?} to {target:?}")))?
        }
    };
    Ok(vec![b.emit1(
        &c.name,
        Op::Reshape(Reshape { shape }),
        vec![x],
    )?])
}

fn transpose(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let rank = b.shape(x).len();
    let perm: Vec<usize> = match config_ints(c, "axes")? {
        Some(a) => a.iter().map(|&a| axis(a, rank)).collect::<LResult<_>>()?,
        None => (0..rank).rev().collect(),
    };
    Ok(vec![b.emit1(
        &c.name,
        Op::Transpose(Transpose { perm }),
        vec![x],
    )?])
}

fn reduce(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let rank = b.shape(x).len();
    if c.config.get("initial").is_some_and(|v| !v.is_null()) {
        return unsupported(format!("{} with an initial value", c.class));
    }
    let mut axes: Vec<usize> = match config_ints(c, "axis")? {
        Some(a) => a.iter().map(|&a| axis(a, rank)).collect::<LResult<_>>()?,
        None => (0..rank).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    let kind = match c.class {
        "Mean" => ReduceKind::Mean,
        "Sum" => ReduceKind::Sum,
        "Max" => ReduceKind::Max,
        "Min" => ReduceKind::Min,
        _ => ReduceKind::Prod,
    };
    let keep_dims = c.config.get("keepdims").and_then(Value::as_bool) == Some(true);
    if axes.is_empty() {
        return Ok(vec![x]);
    }
    let r = Reduce {
        kind,
        axes,
        keep_dims,
    };
    Ok(vec![b.emit1(&c.name, Op::Reduce(r), vec![x])?])
}

/// `where(condition, x, y)`: three tensors (constants among them as tensors of the other
/// operands' type).
fn select(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    if c.inputs.len() != 3 {
        return unsupported("Where with constant operands");
    }
    Ok(vec![b.emit1(&c.name, Op::Where, c.inputs.clone())?])
}

/// `x[key]`: each entry of the key a slice (`{"class_name": "__slice__", "config": {start,
/// stop, step}}`), an int (the axis is dropped), an ellipsis (the axes it stands for kept
/// whole) or null (a new axis of 1).
fn get_item(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let s = b.shape(x);
    let key: Vec<Value> = match c.args.get(1) {
        Some(Value::Array(a)) => a.clone(),
        Some(single) => vec![single.clone()],
        None => return Err("GetItem without a key".to_string().into()),
    };
    let class = |v: &Value| {
        v.get("class_name")
            .and_then(Value::as_str)
            .map(String::from)
    };
    let indexing = key
        .iter()
        .filter(|k| !k.is_null() && class(k).as_deref() != Some("__ellipsis__"));
    let used = indexing.count();
    if used > s.len() {
        return Err(format!("GetItem key of {used} axes into a rank-{} tensor", s.len()).into());
    }
    let mut axes = Vec::new();
    let mut ax = 0;
    for k in &key {
        match (class(k).as_deref(), k) {
            (Some("__ellipsis__"), _) => ax += s.len() - used,
            (Some("__slice__"), _) => {
                let cfg = k.get("config");
                let part = |name: &str| cfg.and_then(|c| c.get(name)).and_then(Value::as_i64);
                let step = part("step").unwrap_or(1);
                if step == 0 {
                    return Err("GetItem slice step 0".to_string().into());
                }
                let (start, end) = match step > 0 {
                    true => (part("start").unwrap_or(0), part("stop").unwrap_or(i64::MAX)),
                    false => (
                        part("start").unwrap_or(-1),
                        part("stop").unwrap_or(i64::MIN),
                    ),
                };
                axes.push(SliceAxis {
                    axis: ax,
                    start,
                    end,
                    step,
                });
                ax += 1;
            }
            (_, Value::Number(n)) => {
                let i = n
                    .as_i64()
                    .ok_or_else(|| LayerError::Invalid(format!("index {n}")))?;
                let end = if i == -1 { i64::MAX } else { i + 1 };
                axes.push(SliceAxis {
                    axis: ax,
                    start: i,
                    end,
                    step: 1,
                });
                ax += 1;
            }
            (_, Value::Null) => {}
            _ => return unsupported(format!("GetItem key entry {k}")),
        }
    }
    let sliced = match axes.is_empty() {
        true => x,
        false => b.emit1(
            &format!("{}/slice", c.name),
            Op::Slice(Slice { axes }),
            vec![x],
        )?,
    };
    // The sliced value's sizes stand for the slices; ints drop their axis, nulls add one.
    let after = b.shape(sliced);
    let mut out = Vec::new();
    let mut ax = 0;
    for k in &key {
        match (class(k).as_deref(), k) {
            (Some("__ellipsis__"), _) => {
                let n = s.len() - used;
                out.extend(after[ax..ax + n].iter().cloned());
                ax += n;
            }
            (Some("__slice__"), _) => {
                out.push(after[ax].clone());
                ax += 1;
            }
            (_, Value::Number(_)) => ax += 1,
            _ => out.push(Dim::Fixed(1)),
        }
    }
    out.extend(after[ax..].iter().cloned());
    Ok(vec![b.emit1(
        &c.name,
        Op::Reshape(Reshape { shape: out }),
        vec![sliced],
    )?])
}
