//! Resource variables (TFLiteConverter with `experimental_enable_resource_variables`): CALL_ONCE
//! runs an init subgraph (VAR_HANDLE + ASSIGN_VARIABLE of constants) on the first invocation,
//! VAR_HANDLE names a variable by container and shared name, READ_VARIABLE reads it. A graph
//! that only reads its variables (e.g. the reading signature of a model whose other signature
//! updates them) computes with the values the init subgraph assigns: READ_VARIABLE is that
//! constant. A graph that assigns a variable keeps state across invocations, which the IR cannot
//! say: ASSIGN_VARIABLE, and every read in such a graph, are refused by name.

use super::import::{Bound, Importer};
use super::tensor;
use crate::readers::builder::{unsupported, NodeError, NodeResult};
use tract_tflite::tflite::{self as tfl, BuiltinOperator as B};

/// Variables by `container/shared_name`, at most this many per model (a bound on the map).
const MAX_VARIABLES: usize = 1 << 16;

pub fn is_variable_op(code: B) -> bool {
    matches!(
        code,
        B::CALL_ONCE | B::VAR_HANDLE | B::READ_VARIABLE | B::ASSIGN_VARIABLE
    )
}

fn key(op: &tfl::Operator) -> NodeResult<String> {
    let o = op
        .builtin_options_as_var_handle_options()
        .ok_or_else(|| NodeError::Invalid("operator has no VarHandleOptions".into()))?;
    Ok(format!(
        "{}/{}",
        o.container().unwrap_or(""),
        o.shared_name().unwrap_or("")
    ))
}

fn ops_of<'a>(sg: &tfl::SubGraph<'a>) -> Vec<tfl::Operator<'a>> {
    sg.operators()
        .map(|o| o.iter().collect())
        .unwrap_or_default()
}

impl<'a> Importer<'a> {
    /// Imports CALL_ONCE, VAR_HANDLE, READ_VARIABLE or ASSIGN_VARIABLE.
    pub(super) fn variable_op(
        &mut self,
        code: B,
        op: tfl::Operator<'a>,
        name: &str,
        out_idx: &[usize],
    ) -> NodeResult<()> {
        match code {
            B::CALL_ONCE => {
                let o = op
                    .builtin_options_as_call_once_options()
                    .ok_or_else(|| NodeError::Invalid("operator has no CallOnceOptions".into()))?;
                self.run_init(o.init_subgraph_index())
            }
            B::VAR_HANDLE => {
                let k = key(&op)?;
                let [out] = out_idx else {
                    return Err(NodeError::Invalid("VAR_HANDLE has one output".into()));
                };
                self.bound[*out] = Some(Bound::Resource(self.resource_id(k)?));
                Ok(())
            }
            B::READ_VARIABLE => {
                if self.assigns_variables() {
                    return unsupported(
                        "a variable this graph also assigns (ASSIGN_VARIABLE: state kept across \
                         invocations)",
                    );
                }
                let first = op.inputs().and_then(|v| v.iter().next()).unwrap_or(-1);
                let id = match self.input_value(first).map_err(NodeError::Invalid)? {
                    Some(Bound::Resource(id)) => id,
                    Some(Bound::Poisoned) => {
                        for &o in out_idx {
                            self.bound[o] = Some(Bound::Poisoned);
                        }
                        return Ok(());
                    }
                    _ => return Err(NodeError::Invalid("input 0 is not a VAR_HANDLE".into())),
                };
                let k = self.resources[id].clone();
                let Some(t) = self.variable_values.get(&k).cloned() else {
                    return unsupported(format!(
                        "variable '{k}' read before a CALL_ONCE init subgraph assigns it"
                    ));
                };
                let v = self.b.add_const(name, t);
                self.bind_outputs(out_idx, &[v])
            }
            _ => unsupported(
                "ASSIGN_VARIABLE: a variable the graph updates keeps state across invocations, \
                 which the IR cannot hold",
            ),
        }
    }

    fn resource_id(&mut self, k: String) -> NodeResult<usize> {
        if let Some(i) = self.resources.iter().position(|r| *r == k) {
            return Ok(i);
        }
        if self.resources.len() >= MAX_VARIABLES {
            return Err(NodeError::Invalid("too many variables".into()));
        }
        self.resources.push(k);
        Ok(self.resources.len() - 1)
    }

    /// Whether the subgraph being imported has an ASSIGN_VARIABLE.
    fn assigns_variables(&self) -> bool {
        ops_of(&self.sg)
            .iter()
            .any(|op| self.op_code(op) == Some(B::ASSIGN_VARIABLE))
    }

    /// Records what the init subgraph assigns: VAR_HANDLE then ASSIGN_VARIABLE of a constant,
    /// nothing else.
    fn run_init(&mut self, index: i32) -> NodeResult<()> {
        let sg = usize::try_from(index)
            .ok()
            .and_then(|i| {
                self.model
                    .subgraphs()
                    .filter(|s| i < s.len())
                    .map(|s| s.get(i))
            })
            .ok_or_else(|| NodeError::Invalid(format!("init subgraph {index} out of range")))?;
        let tensors: Vec<tfl::Tensor> =
            sg.tensors().map(|t| t.iter().collect()).unwrap_or_default();
        let at = |i: i32| {
            usize::try_from(i)
                .ok()
                .and_then(|u| tensors.get(u).map(|t| (u, *t)))
                .ok_or_else(|| NodeError::Invalid(format!("init subgraph tensor {i} out of range")))
        };
        let mut handles = std::collections::HashMap::new();
        for op in ops_of(&sg) {
            let ins: Vec<i32> = op.inputs().map(|v| v.iter().collect()).unwrap_or_default();
            let outs: Vec<i32> = op.outputs().map(|v| v.iter().collect()).unwrap_or_default();
            match self.op_code(&op) {
                Some(B::VAR_HANDLE) => {
                    let out = at(*outs.first().unwrap_or(&-1))?.0;
                    handles.insert(out, key(&op)?);
                }
                Some(B::ASSIGN_VARIABLE) => {
                    let h = at(*ins.first().unwrap_or(&-1))?.0;
                    let (vi, vt) = at(*ins.get(1).unwrap_or(&-1))?;
                    let k = handles.get(&h).cloned().ok_or_else(|| {
                        NodeError::Invalid("init ASSIGN_VARIABLE of no VAR_HANDLE".into())
                    })?;
                    let what = format!("init tensor '{}'", tensor::name(&vt, vi));
                    if vt
                        .quantization()
                        .and_then(|q| q.scale())
                        .is_some_and(|s| !s.is_empty())
                    {
                        return unsupported(format!("{what}: a quantized variable value"));
                    }
                    let Some(t) = tensor::constant(&self.model, self.file, &vt, &what)
                        .map_err(NodeError::Invalid)?
                    else {
                        return unsupported(format!(
                            "{what}: a variable initialised with a computed value"
                        ));
                    };
                    self.variable_values.insert(k, t);
                }
                _ => {
                    return unsupported(
                        "a CALL_ONCE init subgraph that computes (only VAR_HANDLE and \
                         ASSIGN_VARIABLE of constants are read)",
                    )
                }
            }
        }
        Ok(())
    }
}
