//! Importing the TF1 frames frames.rs finds: a `tf.cond` as `Op::If`, a `tf.while_loop` as
//! `Op::Loop`. A body is imported from the same graph nodes in a scope of its own (one level
//! deeper) whose `done` already holds what the frame reads: the cond's Switches and captures, or
//! the loop's Merges, Switches and invariant Enters. Nested frames are met by that scope's
//! import as nodes closing a frame at its level, so the construction recurses.
//!
//! What a body reads from outside is a body input, except constants (copied in, so shapes and
//! folding inside see them) and resource handles (bound as they are). A cond whose predicate is
//! a constant (a TF1 `training` flag left at its default) imports the taken branch in place.

use super::frames::{split_ref, CondFrame, Ctx, FrameId, Frames, Level, LoopFrame};
use super::{Bound, Importer, Scope};
use crate::ir::ops::{Body, Cast, If, Loop};
use crate::ir::{DType, Graph, Op, Tensor, TensorType, ValueId};
use crate::readers::builder::{GraphBuilder, NodeError};
use std::collections::{HashMap, HashSet};
use tract_tensorflow::tfpb::tensorflow::NodeDef;

type R<T> = Result<T, NodeError>;

/// Per node closing the frame, its outputs.
type Closed<'a> = Vec<(&'a str, Vec<Bound>)>;

fn seed(done: &mut HashMap<String, Vec<Bound>>, node: &str, port: usize, b: Bound) {
    let outs = done.entry(node.to_string()).or_default();
    if outs.len() <= port {
        outs.resize(port + 1, Bound::Poisoned);
    }
    outs[port] = b;
}

/// A scope importing the nodes of `level`, with `done` seeded.
fn frame_scope<'a>(
    outer: &Scope<'a>,
    level: Level<'a>,
    done: HashMap<String, Vec<Bound>>,
) -> Scope<'a> {
    Scope {
        nodes: outer.nodes.clone(),
        is_function: false,
        args: HashMap::new(),
        prefix: outer.prefix.clone(),
        done,
        poisoned: HashSet::new(),
        frames: outer.frames.clone(),
        level,
    }
}

fn deeper<'a>(parent: &Level<'a>, ctx: Ctx<'a>) -> Level<'a> {
    let mut l = parent.clone();
    l.push(ctx);
    l
}

fn tensors(bound: Vec<Bound>, what: &str) -> R<Vec<ValueId>> {
    bound
        .into_iter()
        .map(|b| match b {
            Bound::T(v) => Ok(v),
            _ => Err(NodeError::Unsupported(format!(
                "{what} gives a resource or TensorList, not a tensor"
            ))),
        })
        .collect()
}

/// `g` with `outputs`, pruned and verified.
fn finish_body(mut g: Graph, outputs: Vec<ValueId>, what: &str) -> R<Graph> {
    g.outputs = outputs;
    g.remove_dead();
    g.verify()
        .map_err(|e| NodeError::Invalid(format!("{what}: {e}")))?;
    Ok(g)
}

impl<'a> Importer<'a> {
    /// Imports the frame `def` closes and binds every Merge or Exit of it.
    pub(super) fn import_frame(
        &mut self,
        scope: &mut Scope<'a>,
        frames: &Frames<'a>,
        def: &'a NodeDef,
        id: FrameId,
    ) -> Result<(), String> {
        let reads: Vec<Bound> = frames
            .inputs(id)
            .into_iter()
            .map(|r| scope.lookup(r))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("node '{}{}': {e}", scope.prefix, def.name))?;
        let closing = frames.outputs_of(id);
        let result = if reads.iter().any(|b| matches!(b, Bound::Poisoned)) {
            // An unsupported node feeds the frame; it is reported already.
            Err(NodeError::Unsupported(String::new()))
        } else {
            match id {
                FrameId::Cond(i) => self.cond_frame(scope, &frames.conds[i], reads),
                FrameId::Loop(i) => self.loop_frame(scope, &frames.loops[i], reads),
            }
        };
        match result {
            Ok(closed) => {
                for (node, outs) in closed {
                    scope.done.insert(node.to_string(), outs);
                }
                Ok(())
            }
            Err(NodeError::Unsupported(why)) => {
                if !why.is_empty() {
                    self.report(scope, def, why);
                }
                scope.poisoned.extend(closing.iter().map(|n| n.to_string()));
                Ok(())
            }
            Err(NodeError::Invalid(why)) => Err(format!(
                "node '{}{}' ({}): {why}",
                scope.prefix, def.name, def.op
            )),
        }
    }

    /// The values a body gets for `outer` (values of the builder `from`): constants copied,
    /// resources as they are, other tensors as new body inputs (in order).
    fn body_values(
        &mut self,
        from: &GraphBuilder,
        outer: &[Bound],
        names: &[&str],
    ) -> R<Vec<Bound>> {
        outer
            .iter()
            .zip(names)
            .map(|(b, name)| match b {
                Bound::T(v) => Ok(Bound::T(match from.g.constant(*v) {
                    Some(t) => self.b.add_const(name, t.clone()),
                    None => self.b.add_input(name, from.g.ty(*v).clone()),
                })),
                Bound::Var(_) | Bound::Res(_) => Ok(b.clone()),
                _ => Err(NodeError::Unsupported(
                    "a TF1 frame reading a TensorList".into(),
                )),
            })
            .collect()
    }

    /// The tensors of `outer` a body gets as inputs (neither constants nor resources).
    fn passed(&self, outer: &[Bound]) -> Vec<ValueId> {
        outer
            .iter()
            .filter_map(|b| match b {
                Bound::T(v) if self.b.g.constant(*v).is_none() => Some(*v),
                _ => None,
            })
            .collect()
    }

    /// A scope for side `side` of `f` where its reads (`f.inputs`) are `vals`.
    fn branch_scope(outer: &Scope<'a>, f: &CondFrame<'a>, side: bool, vals: &[Bound]) -> Scope<'a> {
        let mut done = HashMap::new();
        let mut by_ref = HashMap::new();
        for (r, b) in f.inputs.iter().zip(vals) {
            let (node, port) = split_ref(r);
            by_ref.insert((node, port), b.clone());
            seed(&mut done, node, port, b.clone());
        }
        for &s in &f.switches {
            let data = outer
                .nodes
                .get(s)
                .and_then(|d| d.input.iter().find(|i| !i.starts_with('^')));
            if let Some(b) = data.and_then(|d| by_ref.get(&split_ref(d))) {
                seed(&mut done, s, usize::from(!side), Bound::Poisoned);
                seed(&mut done, s, usize::from(side), b.clone());
            }
        }
        frame_scope(outer, deeper(&f.parent, Ctx::Branch(f.key, side)), done)
    }

    /// A `tf.cond` as an If (or, on a constant predicate, the taken branch in place).
    fn cond_frame(
        &mut self,
        scope: &Scope<'a>,
        f: &CondFrame<'a>,
        reads: Vec<Bound>,
    ) -> R<Closed<'a>> {
        let (pred, vals) = match reads.split_first() {
            Some((Bound::T(p), rest)) => (*p, rest.to_vec()),
            _ => {
                return Err(NodeError::Invalid(
                    "a tf.cond predicate that is not a tensor".into(),
                ))
            }
        };
        let cond = self.scalar_bool(&format!("{}/pred", f.merges[0]), pred)?;
        let index = self.b.emit1(
            &format!("{}/value_index", f.merges[0]),
            Op::Cast(Cast { to: DType::I32 }),
            vec![cond],
        )?;
        let outs: Vec<Bound> = if let Some(c) = self.b.const_ints(cond) {
            // In place: what the branch gives (a value of an unsupported op, already reported,
            // included) is what its Merges give.
            let side = c.first().is_some_and(|&c| c != 0);
            let mut body = Self::branch_scope(scope, f, side, &vals);
            let r = self.resolve(&mut body, &owned(&f.results[usize::from(side)]));
            r.map_err(NodeError::Invalid)?
        } else {
            let then_branch = Body::new(self.branch_body(scope, f, true, &vals)?);
            let else_branch = Body::new(self.branch_body(scope, f, false, &vals)?);
            let mut inputs = vec![cond];
            inputs.extend(self.passed(&vals));
            let op = Op::If(If {
                then_branch,
                else_branch,
            });
            let outs = self.b.emit(f.merges[0], op, inputs)?;
            outs.into_iter().map(Bound::T).collect()
        };
        Ok(f.merges
            .iter()
            .zip(outs)
            .map(|(&m, b)| (m, vec![b, Bound::T(index)]))
            .collect())
    }

    fn branch_body(
        &mut self,
        scope: &Scope<'a>,
        f: &CondFrame<'a>,
        side: bool,
        vals: &[Bound],
    ) -> R<Graph> {
        let what = if side {
            "the true branch"
        } else {
            "the false branch"
        };
        let (result, inner, unsupported) = self.in_own_builder(|imp, outer| {
            let vals = imp.body_values(outer, vals, &f.inputs)?;
            let mut body = Self::branch_scope(scope, f, side, &vals);
            let r = imp.resolve(&mut body, &owned(&f.results[usize::from(side)]));
            tensors(r.map_err(NodeError::Invalid)?, what)
        });
        // Unsupported ops poison what they feed: say so rather than what the poison looks like.
        if unsupported {
            return Err(NodeError::Unsupported(format!(
                "{what} of this tf.cond holds unsupported ops (listed separately)"
            )));
        }
        let outs = result?;
        finish_body(inner.g, outs, what)
    }

    /// A scope for loop `f`'s nodes where the variables are `vars` and its other reads
    /// (invariants, then captures) are `fixed`.
    fn loop_scope(
        outer: &Scope<'a>,
        f: &LoopFrame<'a>,
        vars: &[ValueId],
        fixed: &[Bound],
    ) -> Scope<'a> {
        let mut done = HashMap::new();
        for (v, &x) in f.vars.iter().zip(vars) {
            seed(&mut done, v.merge, 0, Bound::T(x));
            seed(&mut done, v.switch, 1, Bound::T(x));
        }
        let invariants = f.invariants.iter().map(|e| e.name.as_str());
        for (r, b) in invariants.chain(f.captures.iter().copied()).zip(fixed) {
            let (node, port) = split_ref(r);
            seed(&mut done, node, port, b.clone());
        }
        frame_scope(outer, deeper(&f.parent, Ctx::Loop(f.name)), done)
    }

    /// The loop condition on `vars`, as a scalar.
    fn loop_cond(
        &mut self,
        outer: &Scope<'a>,
        f: &LoopFrame<'a>,
        vars: &[ValueId],
        fixed: &[Bound],
    ) -> R<ValueId> {
        let mut s = Self::loop_scope(outer, f, vars, fixed);
        let r = self.resolve(&mut s, &[f.cond.to_string()]);
        let c = tensors(r.map_err(NodeError::Invalid)?, "the loop condition")?;
        let c = c
            .first()
            .copied()
            .ok_or_else(|| NodeError::Invalid("no loop condition".into()))?;
        self.scalar_bool(&format!("{}/cond", f.name), c)
    }

    /// A `tf.while_loop` as a Loop carrying every loop variable.
    fn loop_frame(
        &mut self,
        scope: &Scope<'a>,
        f: &LoopFrame<'a>,
        reads: Vec<Bound>,
    ) -> R<Closed<'a>> {
        let k = f.vars.len();
        if reads.len() < k {
            return Err(NodeError::Invalid("a loop variable without a value".into()));
        }
        let fixed = reads[k..].to_vec();
        let initial = tensors(reads[..k].to_vec(), "a loop variable's initial value")?;
        let mut types: Vec<TensorType> = initial.iter().map(|&v| self.b.g.ty(v).clone()).collect();
        // A variable whose shape changes per iteration gets the dims that change unknown.
        let mut body = self.loop_body(scope, f, &types, &fixed)?;
        let next: Vec<TensorType> = body.outputs[1..]
            .iter()
            .map(|&v| body.ty(v).clone())
            .collect();
        if next != types {
            for (t, n) in types.iter_mut().zip(&next) {
                for (d, e) in t.shape.iter_mut().zip(&n.shape) {
                    if d != e {
                        *d = self.b.g.fresh_symbol();
                    }
                }
            }
            body = self.loop_body(scope, f, &types, &fixed)?;
        }
        let first = self.loop_cond(scope, f, &initial, &fixed)?;
        let limit = self.b.add_const(
            &format!("{}/no_limit", f.name),
            Tensor::scalar_i64(i64::MAX),
        );
        let mut inputs = vec![limit, first];
        inputs.extend(&initial);
        inputs.extend(self.passed(&fixed));
        let op = Op::Loop(Loop {
            body: Body::new(body),
            carried: k,
        });
        let outs = self.b.emit(f.name, op, inputs)?;
        Ok(f.vars
            .iter()
            .zip(outs)
            .filter_map(|(v, o)| Some((v.exit?, vec![Bound::T(o)])))
            .collect())
    }

    fn loop_body(
        &mut self,
        scope: &Scope<'a>,
        f: &LoopFrame<'a>,
        types: &[TensorType],
        fixed: &[Bound],
    ) -> R<Graph> {
        let (result, inner, unsupported) = self.in_own_builder(|imp, outer| {
            imp.b
                .add_input("iteration", TensorType::new(DType::I64, vec![]));
            imp.b
                .add_input("condition", TensorType::new(DType::Bool, vec![]));
            let vars: Vec<ValueId> = f
                .vars
                .iter()
                .zip(types)
                .map(|(v, t)| imp.b.add_input(v.merge, t.clone()))
                .collect();
            let names: Vec<&str> = f
                .invariants
                .iter()
                .map(|e| e.name.as_str())
                .chain(f.captures.iter().copied())
                .collect();
            let fixed = imp.body_values(outer, fixed, &names)?;
            let mut s = Self::loop_scope(scope, f, &vars, &fixed);
            let r = imp.resolve(
                &mut s,
                &f.vars
                    .iter()
                    .map(|v| v.next.to_string())
                    .collect::<Vec<_>>(),
            );
            let next = tensors(r.map_err(NodeError::Invalid)?, "the loop body")?;
            let cond = imp.loop_cond(scope, f, &next, &fixed)?;
            Ok(std::iter::once(cond).chain(next).collect::<Vec<_>>())
        });
        if unsupported {
            return Err(NodeError::Unsupported(
                "the body of this tf.while_loop holds unsupported ops (listed separately)".into(),
            ));
        }
        let outs = result?;
        finish_body(inner.g, outs, "loop body")
    }
}

fn owned(refs: &[&str]) -> Vec<String> {
    refs.iter().map(|r| r.to_string()).collect()
}
