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
