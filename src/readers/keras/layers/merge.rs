//! Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum (broadcasting binary ops,
//! chained over the inputs) and Concatenate (axis). Keras 3 serializes `x + 3.0` (an operation
//! on a tensor and a number) as an `Add` called with `[x, 3.0]`: one input and a constant;
//! tf_keras as a `TFOpLambda` layer (`function: "__operators__.add"`, `y: 3.0` in the call's
//! keyword arguments), read here for add, subtract and multiply by a number or by a tensor
//! (`y` a tensor keyword argument: tf_keras applications' `x + y` residuals).

use super::super::build::{Builder, Call, LResult};
use super::axis;
use crate::formats::keras::config::{arg_constant, tf_op_lambda_op};
use crate::ir::ops::{BinaryOp, Concat};
use crate::ir::{Op, ValueId};
use serde_json::Value;

pub fn handler(class: &str) -> Option<super::Handler> {
    Some(match class {
        "Add" | "Subtract" | "Multiply" | "Average" | "Maximum" | "Minimum" => binary,
        "Concatenate" => concat,
        "TFOpLambda" => tf_op_lambda,
        _ => return None,
    })
}

fn binary(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let op = match c.class {
        "Subtract" => BinaryOp::Sub,
        "Multiply" => BinaryOp::Mul,
        "Maximum" => BinaryOp::Max,
        "Minimum" => BinaryOp::Min,
        _ => BinaryOp::Add,
    };
    if !c.constants.is_empty() && c.class != "Average" {
        // A Keras 3 operation on a tensor and a constant (`x + 3.0`, `3.0 - x`, `x + w` with
        // `w` an array, broadcast like numpy).
        let (x, y) = super::operations::operands(b, c)?;
        return Ok(vec![b.emit1(&c.name, Op::Binary(op), vec![x, y])?]);
    }
    if c.inputs.len() < 2 || (c.class == "Subtract" && c.inputs.len() != 2) {
        return Err(format!("{} of {} inputs", c.class, c.inputs.len()).into());
    }
    let average = c.class == "Average";
    let last = c.inputs.len() - 1;
    let mut acc = c.inputs[0];
    for (i, &x) in c.inputs.iter().enumerate().skip(1) {
        let name = if i == last && !average {
            c.name.clone()
        } else {
            format!("{}/{i}", c.name)
        };
        acc = b.emit1(&name, Op::Binary(op), vec![acc, x])?;
    }
    if average {
        let k = b.const_f32(
            &format!("{}/inv_n", c.name),
            vec![],
            &[1.0 / c.inputs.len() as f32],
        );
        acc = b.emit1(&c.name, Op::Binary(BinaryOp::Mul), vec![acc, k])?;
    }
    Ok(vec![acc])
}

fn concat(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let rank = b.g.ty(x).rank();
    let a = c.config.get("axis").and_then(Value::as_i64).unwrap_or(-1);
    let axis = axis(a, rank)?;
    Ok(vec![b.emit1(
        &c.name,
        Op::Concat(Concat { axis }),
        c.inputs.clone(),
    )?])
}

fn tf_op_lambda(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let function = c
        .config
        .get("function")
        .and_then(Value::as_str)
        .unwrap_or("");
    let op = tf_op_lambda_op(function);
    // `x + y` of two tensors (tf_keras applications' residual adds, RegNetY's squeeze-excite
    // product): `y` is a tensor keyword argument.
    if let (Some(op), Some(y), [x]) = (op, c.kw_input("y"), c.inputs.as_slice()) {
        return Ok(vec![b.emit1(&c.name, Op::Binary(op), vec![*x, y])?]);
    }
    let y = c.kwargs.get("y").and_then(arg_constant);
    let (Some(op), Some(y), [x]) = (op, y, c.inputs.as_slice()) else {
        return super::super::build::unsupported(format!(
            "tf.{function} called on a Keras tensor (tf_keras TFOpLambda): only add, subtract \
             and multiply by a number or a tensor are read"
        ));
    };
    let dtype = b.g.ty(*x).dtype;
    let k = b.constant(
        &format!("{}/constant", c.name),
        crate::ir::Tensor::from_f64s(dtype, y.shape, &y.values),
    );
    Ok(vec![b.emit1(&c.name, Op::Binary(op), vec![*x, k])?])
}
