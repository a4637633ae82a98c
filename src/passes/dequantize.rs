//! Quantized weights as float constants: every `DequantizeLinear` whose operands are all
//! constants (a quantized source's weights, `(q - zero_point) · scale`, per tensor or along the
//! quantization axis) becomes the float constant it computes. For targets that run float graphs
//! (a SavedModel for TF Serving): the weights then are ordinary float variables, and the
//! values are exactly what the source's dequantization gives.

use super::cleanup::retain_nodes;
use crate::ir::{Graph, Op, Tensor};

/// Folds the constant dequantizations of `g` and of its loop and branch bodies; says whether
/// any was.
pub fn fold_weight_dequantization(g: &mut Graph) -> bool {
    let mut changed = false;
    for n in &mut g.nodes {
        for body in n.op.bodies_mut() {
            changed |= fold_weight_dequantization(body);
        }
    }
    fold_here(g) || changed
}

fn fold_here(g: &mut Graph) -> bool {
    let mut dead = vec![false; g.nodes.len()];
    let mut folded = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let Op::DequantizeLinear(q) = &n.op else {
            continue;
        };
        let consts: Option<Vec<&Tensor>> = n.inputs.iter().map(|&v| g.constant(v)).collect();
        let Some(consts) = consts else { continue };
        let out = n.outputs[0];
        if g.outputs.contains(&out) {
            continue;
        }
        let ty = g.ty(out);
        let Some(shape) = crate::ir::shape_fixed(&ty.shape) else {
            continue;
        };
        let Some(values) = dequantize(&consts, q.axis) else {
            continue;
        };
        dead[i] = true;
        folded.push((out, Tensor::from_f64s(ty.dtype, shape, &values)));
    }
    if folded.is_empty() {
        return false;
    }
    for (o, t) in folded {
        g.value_mut(o).constant = Some(t);
    }
    retain_nodes(g, &dead);
    true
}

/// `(q - zero_point) · scale` of `[q, scale, zero_point?]`; `None` when the parameters do not
/// fit `q` (one per tensor, or one per index of `axis`).
fn dequantize(c: &[&Tensor], axis: usize) -> Option<Vec<f64>> {
    let (q, scale) = (c.first()?, c.get(1)?);
    let scales = scale.to_f64s();
    let zps = match c.get(2) {
        Some(z) => z.to_f64s(),
        None => vec![0.0; scales.len()],
    };
    let per_axis = scales.len() > 1;
    if zps.len() != scales.len() || (per_axis && q.shape.get(axis) != Some(&scales.len())) {
        return None;
    }
    let inner: usize = if per_axis {
        q.shape[axis + 1..].iter().product()
    } else {
        1
    };
    let channels = scales.len();
    let values = q.to_f64s();
    Some(
        values
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let c = if per_axis {
                    (i / inner.max(1)) % channels
                } else {
                    0
                };
                (x - zps[c]) * scales[c]
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    #[test]
    fn per_axis_parameters_follow_their_axis() {
        let q = Tensor::from_i64s(DType::I8, vec![2, 3], &[1, 2, 3, -1, -2, -3]);
        let s = Tensor::from_f64s(DType::F32, vec![2], &[0.5, 2.0]);
        let z = Tensor::from_i64s(DType::I8, vec![2], &[1, 0]);
        let got = dequantize(&[&q, &s, &z], 0).unwrap();
        assert_eq!(got, [0.0, 0.5, 1.0, -2.0, -4.0, -6.0]);
        // Scales along an axis of another length do not fit.
        assert!(dequantize(&[&q, &s, &z], 1).is_none());
        let s1 = Tensor::from_f64s(DType::F32, vec![], &[0.25]);
        assert_eq!(dequantize(&[&q, &s1], 1).unwrap()[5], -0.75);
    }
}
