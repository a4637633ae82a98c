//! `Graph::verify`: the IR invariants (docs/architecture.md), checked after every reader, pass
//! and before every writer.

use super::ops::is_unknown;
use super::{Dim, Graph, TensorType};
use std::collections::HashSet;

impl Graph {
    /// Checks the invariants; the error names the node or value that breaks one.
    pub fn verify(&self) -> Result<(), String> {
        let n_values = self.values.len();
        let check_id = |id: super::ValueId, what: &str| -> Result<(), String> {
            if id.0 >= n_values {
                return Err(format!("{what} refers to value #{} of {n_values}", id.0));
            }
            Ok(())
        };
        // Values available so far: graph inputs and constants, then node outputs in order.
        let mut defined = vec![false; n_values];
        let mut names = HashSet::new();
        for (i, v) in self.values.iter().enumerate() {
            if !names.insert(v.name.as_str()) {
                return Err(format!("two values are named '{}'", v.name));
            }
            if let Some(t) = &v.constant {
                if t.ty() != v.ty {
                    return Err(format!(
                        "constant '{}' holds {} but is typed {}",
                        v.name,
                        t.ty(),
                        v.ty
                    ));
                }
                // Every walk over a constant's bytes trusts its shape: a reader that reshaped
                // weights to what a config claims must not hand on fewer bytes than that.
                let want = t
                    .shape
                    .iter()
                    .try_fold(t.dtype.size(), |n, &d| n.checked_mul(d));
                if want != Some(t.data.len()) {
                    return Err(format!(
                        "constant '{}' is {} but holds {} bytes",
                        v.name,
                        t.ty(),
                        t.data.len()
                    ));
                }
                defined[i] = true;
            }
            if let Some(q) = &v.quant {
                q.check(&v.ty.shape)
                    .map_err(|e| format!("value '{}': {e}", v.name))?;
            }
        }
        for &i in &self.inputs {
            check_id(i, "graph input")?;
            if defined[i.0] {
                return Err(format!(
                    "graph input '{}' is a constant or listed twice",
                    self.value(i).name
                ));
            }
            defined[i.0] = true;
        }
        for n in &self.nodes {
            for &i in &n.inputs {
                check_id(i, &format!("node '{}'", n.name))?;
                if !defined[i.0] {
                    return Err(format!(
                        "node '{}' uses '{}' before it is produced (cycle or order)",
                        n.name,
                        self.value(i).name
                    ));
                }
            }
            for (what, body) in n.op.bodies() {
                body.verify()
                    .map_err(|e| format!("node '{}' ({}) {what}: {e}", n.name, n.op.name()))?;
            }
            let inferred = self
                .infer(&n.op, &n.inputs)
                .map_err(|e| format!("node '{}' ({}): {e}", n.name, n.op.name()))?;
            if inferred.len() != n.outputs.len() {
                return Err(format!(
                    "node '{}' has {} outputs, its op makes {}",
                    n.name,
                    n.outputs.len(),
                    inferred.len()
                ));
            }
            for (&o, want) in n.outputs.iter().zip(&inferred) {
                check_id(o, &format!("node '{}'", n.name))?;
                if defined[o.0] {
                    return Err(format!(
                        "value '{}' has more than one producer",
                        self.value(o).name
                    ));
                }
                defined[o.0] = true;
                let have = self.ty(o);
                if !type_agrees(have, want) {
                    return Err(format!(
                        "node '{}' ({}): output '{}' is typed {have} but the op gives {want}",
                        n.name,
                        n.op.name(),
                        self.value(o).name
                    ));
                }
            }
        }
        for &o in &self.outputs {
            check_id(o, "graph output")?;
            if !defined[o.0] {
                return Err(format!(
                    "graph output '{}' is never produced",
                    self.value(o).name
                ));
            }
        }
        Ok(())
    }
}

/// Whether a value's recorded type agrees with inference (unknown dims agree with anything;
/// a symbol where inference found a fixed size is accepted, since the size is known to be
/// that at run time).
fn type_agrees(have: &TensorType, want: &TensorType) -> bool {
    have.dtype == want.dtype
        && have.shape.len() == want.shape.len()
        && have.shape.iter().zip(&want.shape).all(|(h, w)| {
            h == w
                || is_unknown(w)
                || matches!((h, w), (Dim::Sym(_), _) | (Dim::Fixed(_), Dim::Sym(_)))
        })
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::{BinaryOp, UnaryOp};
    use crate::ir::{fixed_shape, DType, Graph, Op, Tensor, TensorType};

    fn small() -> Graph {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[2, 3])));
        let c = g.add_const("c", Tensor::from_f32(vec![3], &[1.0, 2.0, 3.0]));
        let y = g
            .add_node("add", Op::Binary(BinaryOp::Add), vec![x, c], &["y".into()])
            .unwrap();
        let z = g
            .add_node("relu", Op::Unary(UnaryOp::Relu), y.clone(), &["z".into()])
            .unwrap();
        g.outputs = z;
        g
    }

    #[test]
    fn a_well_formed_graph_verifies() {
        small().verify().unwrap();
    }

    #[test]
    fn a_wrong_output_type_is_caught_and_named() {
        let mut g = small();
        let y = g.nodes[0].outputs[0];
        g.value_mut(y).ty = TensorType::new(DType::F32, fixed_shape(&[3, 2]));
        let e = g.verify().unwrap_err();
        assert!(e.contains("'add'"), "{e}");
    }

    #[test]
    fn out_of_order_nodes_and_cycles_are_caught() {
        let mut g = small();
        g.nodes.swap(0, 1);
        assert!(g.verify().unwrap_err().contains("before it is produced"));
        g.sort().unwrap();
        g.verify().unwrap();
        // relu feeding add: a cycle sort must refuse.
        let z = g.nodes[1].outputs[0];
        g.nodes[0].inputs[1] = z;
        assert!(g.sort().is_err());
    }

    #[test]
    fn duplicate_names_and_producers_are_caught() {
        let mut g = small();
        let z = g.nodes[1].outputs[0];
        g.value_mut(z).name = "y".into();
        assert!(g.verify().unwrap_err().contains("named 'y'"));
        let mut g = small();
        let y = g.nodes[0].outputs[0];
        g.nodes[1].outputs[0] = y;
        assert!(g.verify().is_err());
    }

    #[test]
    fn dead_nodes_and_values_are_removed() {
        let mut g = small();
        let x = g.inputs[0];
        g.add_node("unused", Op::Unary(UnaryOp::Exp), vec![x], &["u".into()])
            .unwrap();
        g.add_const("spare", Tensor::scalar_f32(1.0));
        assert!(g.remove_dead());
        assert_eq!(g.nodes.len(), 2);
        assert!(g.values.iter().all(|v| v.name != "u" && v.name != "spare"));
        g.verify().unwrap();
        assert!(!g.remove_dead());
    }
}
