//! WHILE and IF: their subgraphs imported as bodies of their own (inputs typed from the
//! operator's operands), as the IR's Loop and If.
//!
//! WHILE(vars…) runs `body` while `cond(vars)` holds. As a Loop every variable is carried: the
//! first condition is `cond` inlined on the initial values, and the loop body is `body`
//! followed by `cond` on its results (the condition for the next iteration); there is no trip
//! limit. IF(cond, args…) takes both branches as bodies over `args` (the captures).

use super::import::Importer;
use crate::ir::ops::{Body, If, Loop, Reshape};
use crate::ir::{DType, Graph, Op, Tensor, TensorType, ValueId};
use crate::readers::builder::{NodeError, NodeResult};
use tract_tflite::tflite as tfl;

/// Subgraphs nested deeper than this are refused: a file may make them a cycle (refused as
/// such) or a deep tree whose import would take exponential time.
const MAX_DEPTH: usize = 8;

impl Importer<'_> {
    /// WHILE or IF at `name`, on `inputs` (all present).
    pub fn control(
        &mut self,
        name: &str,
        op: &tfl::Operator,
        inputs: &[Option<ValueId>],
    ) -> NodeResult<Vec<ValueId>> {
        let inputs: Vec<ValueId> = inputs
            .iter()
            .map(|v| v.ok_or_else(|| NodeError::Invalid("an operand is missing".into())))
            .collect::<NodeResult<_>>()?;
        if let Some(o) = op.builtin_options_as_while_options() {
            return self.while_loop(
                name,
                o.cond_subgraph_index(),
                o.body_subgraph_index(),
                &inputs,
            );
        }
        if let Some(o) = op.builtin_options_as_if_options() {
            return self.if_(
                name,
                o.then_subgraph_index(),
                o.else_subgraph_index(),
                &inputs,
            );
        }
        Err(NodeError::Invalid("no WhileOptions / IfOptions".into()))
    }

    /// Subgraph `index` as a body whose inputs have `types`.
    fn body(&mut self, index: i32, types: &[TensorType], what: &str) -> NodeResult<Graph> {
        if self.depth >= MAX_DEPTH {
            return Err(NodeError::Invalid(format!(
                "subgraphs nest deeper than {MAX_DEPTH}"
            )));
        }
        let index = usize::try_from(index)
            .map_err(|_| NodeError::Invalid(format!("{what} subgraph index {index}")))?;
        if self.stack.contains(&index) {
            return Err(NodeError::Invalid(format!(
                "{what} subgraph {index} calls itself"
            )));
        }
        let mut sub = Importer::new(self.model, self.file, index)?;
        sub.depth = self.depth + 1;
        sub.budget = self.budget.clone();
        sub.stack = [self.stack.as_slice(), &[index]].concat();
        sub.full_integer = self.full_integer;
        sub.b.g.continue_symbols(&self.b.g);
        sub.add_body_inputs(types)?;
        let imported = sub.import_ops();
        self.b.g.continue_symbols(&sub.b.g);
        if !sub.b.unsupported.is_empty() {
            self.b.unsupported.append(&mut sub.b.unsupported);
            return Err(NodeError::Unsupported(format!(
                "its {what} subgraph holds unsupported ops (listed separately)"
            )));
        }
        imported.map_err(|e| NodeError::Invalid(format!("{what} subgraph: {e}")))?;
        let mut g = sub
            .finish()
            .map_err(|e| NodeError::Invalid(format!("{what} subgraph: {e}")))?;
        g.remove_dead();
        g.verify()
            .map_err(|e| NodeError::Invalid(format!("{what} subgraph: {e}")))?;
        Ok(g)
    }

    fn types(&self, values: &[ValueId]) -> Vec<TensorType> {
        values.iter().map(|&v| self.b.g.ty(v).clone()).collect()
    }

    fn while_loop(
        &mut self,
        name: &str,
        cond_index: i32,
        body_index: i32,
        vars: &[ValueId],
    ) -> NodeResult<Vec<ValueId>> {
        let (types, body) = self.loop_types(body_index, vars)?;
        let cond = self.body(cond_index, &types, "cond")?;
        if cond.outputs.len() != 1 || body.outputs.len() != vars.len() {
            return Err(NodeError::Invalid(format!(
                "cond gives {} values, body {} for {} variables",
                cond.outputs.len(),
                body.outputs.len(),
                vars.len()
            )));
        }
        // The loop body: iteration, condition, variables → next condition, next variables.
        let mut lb = Graph::default();
        lb.continue_symbols(&self.b.g);
        let iter = lb.add_input("iteration", TensorType::new(DType::I64, vec![]));
        let cond_in = lb.add_input("cond", TensorType::new(DType::Bool, vec![]));
        let _ = (iter, cond_in);
        let ins: Vec<ValueId> = types
            .iter()
            .enumerate()
            .map(|(k, t)| lb.add_input(&format!("var{k}"), t.clone()))
            .collect();
        let next = lb.inline(&body, &ins, "body")?;
        let c = lb.inline(&cond, &next, "cond")?[0];
        let c = scalar(&mut lb, "next_cond", c)?;
        lb.outputs = std::iter::once(c).chain(next).collect();
        lb.verify()
            .map_err(|e| NodeError::Invalid(format!("loop body: {e}")))?;
        // The condition on the initial values decides whether the loop runs at all.
        let first = self.b.g.inline(&cond, vars, &format!("{name}/cond"))?[0];
        self.claim_all_names();
        let first = if self.b.g.ty(first).rank() == 0 {
            first
        } else {
            let r = Op::Reshape(Reshape { shape: vec![] });
            self.b
                .emit1(&format!("{name}/first_cond"), r, vec![first])?
        };
        let limit = self
            .b
            .add_const(&format!("{name}/no_limit"), Tensor::scalar_i64(i64::MAX));
        let op = Op::Loop(Loop {
            body: Body::new(lb),
            carried: vars.len(),
        });
        let mut node_inputs = vec![limit, first];
        node_inputs.extend_from_slice(vars);
        self.b.emit(name, op, node_inputs)
    }

    /// The loop variables' types and the body imported with them: a fixed dimension the body
    /// changes (a sequence it appends to) becomes a fresh symbol, and the body is imported
    /// again on those types.
    fn loop_types(
        &mut self,
        body_index: i32,
        vars: &[ValueId],
    ) -> NodeResult<(Vec<TensorType>, Graph)> {
        let mut types = self.types(vars);
        for _ in 0..3 {
            let body = self.body(body_index, &types, "body")?;
            if body.outputs.len() != types.len() {
                return Err(NodeError::Invalid(format!(
                    "the body gives {} values for {} variables",
                    body.outputs.len(),
                    types.len()
                )));
            }
            let mut changed = false;
            for (k, (t, &o)) in types.iter_mut().zip(&body.outputs).enumerate() {
                let out = body.ty(o);
                if out.dtype != t.dtype || out.rank() != t.rank() {
                    return Err(NodeError::Invalid(format!(
                        "loop variable #{k} is {t} but the body makes it {out}"
                    )));
                }
                for (d, od) in t.shape.iter_mut().zip(&out.shape) {
                    if d.is_fixed() && d != od {
                        *d = self.b.g.fresh_symbol();
                        changed = true;
                    }
                }
            }
            if !changed {
                return Ok((types, body));
            }
        }
        Err(NodeError::Invalid(
            "loop variable types do not settle".into(),
        ))
    }

    fn if_(
        &mut self,
        name: &str,
        then_index: i32,
        else_index: i32,
        inputs: &[ValueId],
    ) -> NodeResult<Vec<ValueId>> {
        let (&cond, captures) = inputs
            .split_first()
            .ok_or_else(|| NodeError::Invalid("IF without a condition".into()))?;
        let types = self.types(captures);
        let then = self.body(then_index, &types, "then")?;
        let else_ = self.body(else_index, &types, "else")?;
        let cond = if self.b.g.ty(cond).rank() == 0 {
            cond
        } else {
            let r = Op::Reshape(Reshape { shape: vec![] });
            self.b.emit1(&format!("{name}/cond"), r, vec![cond])?
        };
        let op = Op::If(If {
            then_branch: Body::new(then),
            else_branch: Body::new(else_),
        });
        let mut node_inputs = vec![cond];
        node_inputs.extend_from_slice(captures);
        self.b.emit(name, op, node_inputs)
    }
}

/// `v` (one boolean) as a scalar.
fn scalar(g: &mut Graph, name: &str, v: ValueId) -> Result<ValueId, String> {
    if g.ty(v).rank() == 0 {
        return Ok(v);
    }
    let r = Op::Reshape(Reshape { shape: vec![] });
    Ok(g.add_node(name, r, vec![v], &[name.to_string()])?[0])
}
