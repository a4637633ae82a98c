//! TF2 functional control flow as IR control flow: `While`/`StatelessWhile` as `Op::Loop`,
//! `If`/`StatelessIf` as `Op::If`, and the TensorList ops Keras recurrent layers iterate over.
//!
//! A TensorList is a tensor with the elements stacked on a first axis (`Bound::List`):
//! `TensorListFromTensor` is that tensor, `GetItem` a Gather of row `i`, `SetItem` a ScatterND of
//! row `i`, `Stack` the tensor itself. A reserved list (`TensorListReserve`) has no tensor until
//! a loop writes it: its element type is what the loop body writes, so the body is imported once
//! to learn it, the list becomes zeros of `[count, element…]` before the loop, and the body is
//! imported again with the list as one of its carried values.
//!
//! A loop variable the body returns unchanged (a trip limit, a list only read, a resource) is
//! not carried: it is a capture (or, for resources, bound straight into the body).

use super::{Bound, Importer, Scope};
use crate::ir::ops::{Body, Expand, Gather, If, Loop, Reshape, Scatter, ScatterReduction};
use crate::ir::{DType, Dim, Graph, Op, Tensor, TensorType, ValueId};
use crate::readers::builder::{GraphBuilder, NodeError, ShapeEntry};
use crate::readers::saved_model::tensor::func_attr;
use std::collections::HashMap;
use tract_tensorflow::tfpb::tensorflow::{FunctionDef, NodeDef};

type R<T> = Result<T, NodeError>;

fn invalid<T>(why: impl Into<String>) -> R<T> {
    Err(NodeError::Invalid(why.into()))
}

/// How one loop variable enters the body.
#[derive(Clone)]
enum Var {
    /// A resource handle, bound as it is.
    Resource(Bound),
    /// A tensor (or a list's stacked tensor) the body may change.
    Tensor(ValueId),
    /// A reserved list; its element type is learnt from the body.
    Reserved { count: ValueId, dtype: DType },
}

/// Per loop variable its body input, what the body returns, the condition, and the element
/// types written to reserved lists.
type BodyParts = (
    Vec<Option<ValueId>>,
    Vec<Bound>,
    ValueId,
    HashMap<usize, TensorType>,
);

/// The body graph of one import, and what it says about each loop variable.
struct BodyImport {
    graph: Graph,
    /// Per loop variable: the body input it is bound to (`None` for resources).
    inputs: Vec<Option<ValueId>>,
    /// Per loop variable: what the body returns for it.
    outputs: Vec<Bound>,
    /// The condition on the returned values.
    cond: ValueId,
    /// Element types written to reserved lists, by loop variable.
    written: HashMap<usize, TensorType>,
}

impl<'a> Importer<'a> {
    /// TensorList ops; `None` for any other op.
    pub(super) fn list_op(&mut self, def: &NodeDef, inputs: &[Bound]) -> Option<R<Vec<Bound>>> {
        Some(match def.op.as_str() {
            "TensorListFromTensor" => match inputs.first() {
                Some(Bound::T(v)) => Ok(vec![Bound::List(*v)]),
                _ => invalid("TensorListFromTensor of something that is not a tensor"),
            },
            "TensorListReserve" => self.reserve(def, inputs),
            "TensorListGetItem" => self.get_item(def, inputs),
            "TensorListSetItem" => self.set_item(def, inputs),
            "TensorListStack" => match inputs.first() {
                Some(Bound::List(v)) => Ok(vec![Bound::T(*v)]),
                Some(Bound::Reserved { .. }) => Err(NodeError::Unsupported(
                    "TensorListStack of a list nothing writes".into(),
                )),
                _ => invalid("TensorListStack of something that is not a list"),
            },
            "TensorListLength" => Err(NodeError::Unsupported("TensorListLength".into())),
            _ => return None,
        })
    }

    fn reserve(&mut self, def: &NodeDef, inputs: &[Bound]) -> R<Vec<Bound>> {
        let count = match inputs.get(1) {
            Some(Bound::T(v)) => *v,
            _ => return invalid("TensorListReserve without a count"),
        };
        let node = crate::readers::saved_model::tensor::TfNode {
            def,
            name: def.name.clone(),
            inputs: vec![],
        };
        let dtype = node.ir_dtype("element_dtype", DType::F32)?;
        Ok(vec![Bound::Reserved { count, dtype }])
    }

    fn get_item(&mut self, def: &NodeDef, inputs: &[Bound]) -> R<Vec<Bound>> {
        let (Some(Bound::List(list)), Some(Bound::T(i))) = (inputs.first(), inputs.get(1)) else {
            return invalid("TensorListGetItem of something that is not a written list");
        };
        let op = Op::Gather(Gather { axis: 0 });
        Ok(vec![Bound::T(self.b.emit1(
            &def.name,
            op,
            vec![*list, *i],
        )?)])
    }

    fn set_item(&mut self, def: &NodeDef, inputs: &[Bound]) -> R<Vec<Bound>> {
        let (Some(list), Some(Bound::T(i)), Some(Bound::T(item))) =
            (inputs.first(), inputs.get(1), inputs.get(2))
        else {
            return invalid("TensorListSetItem needs a list, an index and an item");
        };
        let list = match list {
            Bound::List(v) => *v,
            // First import of a loop body: note what is written, stand in for the result.
            Bound::Reserved { .. } => {
                self.written_type = Some(self.b.g.ty(*item).clone());
                return Ok(vec![list.clone()]);
            }
            _ => return invalid("TensorListSetItem of something that is not a list"),
        };
        let name = &def.name;
        let index = self.b.emit1(
            &format!("{name}/index64"),
            Op::Cast(crate::ir::ops::Cast { to: DType::I64 }),
            vec![*i],
        )?;
        let at = self.b.emit1(
            &format!("{name}/at"),
            Op::Reshape(Reshape {
                shape: vec![Dim::Fixed(1), Dim::Fixed(1)],
            }),
            vec![index],
        )?;
        let mut row = vec![Dim::Fixed(1)];
        row.extend(self.b.g.ty(*item).shape.iter().cloned());
        let update = self.b.emit1(
            &format!("{name}/row"),
            Op::Reshape(Reshape { shape: row }),
            vec![*item],
        )?;
        let op = Op::ScatterNd(Scatter {
            reduction: ScatterReduction::None,
        });
        Ok(vec![Bound::List(self.b.emit1(
            name,
            op,
            vec![list, at, update],
        )?)])
    }

    /// `While`/`StatelessWhile` as a Loop over the variables the body changes.
    pub(super) fn while_loop(
        &mut self,
        scope: &Scope<'a>,
        def: &'a NodeDef,
        inputs: Vec<Bound>,
    ) -> R<Vec<Bound>> {
        let (cond_f, body_f) = (self.function(def, "cond")?, self.function(def, "body")?);
        let mut vars: Vec<Var> = inputs
            .iter()
            .map(|b| match b {
                Bound::T(v) | Bound::List(v) => Ok(Var::Tensor(*v)),
                Bound::Reserved { count, dtype } => Ok(Var::Reserved {
                    count: *count,
                    dtype: *dtype,
                }),
                Bound::Var(_) | Bound::Res(_) => Ok(Var::Resource(b.clone())),
                Bound::Poisoned => invalid("a loop variable an unsupported op makes"),
            })
            .collect::<R<_>>()?;
        let lists: Vec<bool> = inputs.iter().map(|b| !matches!(b, Bound::T(_))).collect();
        // Reserved lists become zeros of what the body writes to them.
        if vars.iter().any(|v| matches!(v, Var::Reserved { .. })) {
            let none = HashMap::new();
            let first = self.import_body(scope, def, cond_f, body_f, &vars, &lists, &none)?;
            for (k, var) in vars.iter_mut().enumerate() {
                if let Var::Reserved { count, .. } = *var {
                    let elem = first.written.get(&k).ok_or_else(|| {
                        NodeError::Unsupported("a reserved TensorList the loop never writes".into())
                    })?;
                    *var = Var::Tensor(self.zeros_list(&def.name, k, count, elem)?);
                }
            }
        }
        let mut relaxed = HashMap::new();
        let mut body = self.import_body(scope, def, cond_f, body_f, &vars, &lists, &relaxed)?;
        // A variable the body reshapes (a tensor grown by a concatenation each step, as
        // `shape_invariants` allow) is typed by its initial value in the first import: its
        // changing dims become fresh symbols and the body is imported again.
        if self.relax_changed(&body, &mut relaxed)? {
            body = self.import_body(scope, def, cond_f, body_f, &vars, &lists, &relaxed)?;
        }
        self.assemble_loop(scope, def, cond_f, &vars, &lists, body)
    }

    /// Records for each tensor variable whose type the body changes the type both agree on
    /// (the changing dims as fresh symbols); says whether there was one.
    fn relax_changed(
        &mut self,
        body: &BodyImport,
        relaxed: &mut HashMap<usize, TensorType>,
    ) -> R<bool> {
        let mut changed = false;
        for (k, input) in body.inputs.iter().enumerate() {
            let (Some(input), Bound::T(out) | Bound::List(out)) = (*input, &body.outputs[k]) else {
                continue;
            };
            let (tin, tout) = (body.graph.ty(input), body.graph.ty(*out));
            if tin.shape == tout.shape {
                continue;
            }
            if tin.rank() != tout.rank() || tin.dtype != tout.dtype {
                return Err(NodeError::Unsupported(format!(
                    "loop variable #{k} changes from {tin} to {tout} in the body"
                )));
            }
            let shape: Vec<Dim> = (tin.shape.iter().zip(&tout.shape))
                .map(|(a, b)| {
                    if a == b {
                        a.clone()
                    } else {
                        self.b.g.fresh_symbol()
                    }
                })
                .collect();
            relaxed.insert(k, TensorType::new(tin.dtype, shape));
            changed = true;
        }
        Ok(changed)
    }

    fn function(&self, def: &NodeDef, attr: &str) -> R<&'a FunctionDef> {
        let name = func_attr(def, attr)
            .ok_or_else(|| NodeError::Invalid(format!("{} without its {attr} function", def.op)))?;
        self.lib
            .get(name.as_str())
            .copied()
            .ok_or_else(|| NodeError::Invalid(format!("{attr} function '{name}' does not exist")))
    }

    /// Zeros `[count, element…]`: a reserved list before the loop writes it.
    fn zeros_list(
        &mut self,
        name: &str,
        k: usize,
        count: ValueId,
        elem: &TensorType,
    ) -> R<ValueId> {
        let base = format!("{name}/list_{k}");
        let n = match self.b.shape_entries(count).as_deref() {
            Some([ShapeEntry::Int(n)]) if *n >= 0 => Dim::Fixed(*n as u64),
            Some([ShapeEntry::Sym(s)]) => Dim::Sym(s.clone()),
            _ => {
                return Err(NodeError::Unsupported(
                    "a TensorList reserved with a length computed from data".into(),
                ))
            }
        };
        let zero = self.b.add_const(
            &format!("{base}/zero"),
            Tensor::from_f64s(elem.dtype, vec![], &[0.0]),
        );
        let mut shape = vec![n];
        shape.extend(elem.shape.iter().cloned());
        self.b
            .emit1(&base, Op::Expand(Expand { shape }), vec![zero])
    }

    /// Imports the body (and the condition on its results) as a graph of its own, binding each
    /// loop variable to a body input (resources directly) of its initial value's type or of its
    /// `relaxed` one.
    #[allow(clippy::too_many_arguments)]
    fn import_body(
        &mut self,
        scope: &Scope<'a>,
        def: &'a NodeDef,
        cond_f: &'a FunctionDef,
        body_f: &'a FunctionDef,
        vars: &[Var],
        lists: &[bool],
        relaxed: &HashMap<usize, TensorType>,
    ) -> R<BodyImport> {
        let (result, inner, unsupported) = self.in_own_builder(|imp, outer| {
            imp.import_body_inner(scope, def, (cond_f, body_f), (vars, lists, relaxed), outer)
        });
        let (inputs, outputs, cond, written) = result?;
        if unsupported {
            return Err(NodeError::Unsupported(
                "its body holds unsupported ops (listed separately)".into(),
            ));
        }
        Ok(BodyImport {
            graph: inner.g,
            inputs,
            outputs,
            cond,
            written,
        })
    }

    fn import_body_inner(
        &mut self,
        scope: &Scope<'a>,
        def: &'a NodeDef,
        fns: (&'a FunctionDef, &'a FunctionDef),
        (vars, lists, relaxed): (&[Var], &[bool], &HashMap<usize, TensorType>),
        outer: &GraphBuilder,
    ) -> R<BodyParts> {
        let (cond_f, body_f) = fns;
        self.b
            .add_input("iteration", TensorType::new(DType::I64, vec![]));
        self.b
            .add_input("condition", TensorType::new(DType::Bool, vec![]));
        let mut args = Vec::with_capacity(vars.len());
        let mut inputs = Vec::with_capacity(vars.len());
        for (k, var) in vars.iter().enumerate() {
            let (bound, input) = match var {
                Var::Resource(b) => (b.clone(), None),
                Var::Tensor(v) => {
                    let ty = relaxed.get(&k).unwrap_or_else(|| outer.g.ty(*v)).clone();
                    let id = self.b.add_input(&format!("var_{k}"), ty);
                    let b = if lists[k] {
                        Bound::List(id)
                    } else {
                        Bound::T(id)
                    };
                    (b, Some(id))
                }
                Var::Reserved { count, dtype } => (
                    Bound::Reserved {
                        count: *count,
                        dtype: *dtype,
                    },
                    None,
                ),
            };
            args.push(bound);
            inputs.push(input);
        }
        let mut written = HashMap::new();
        let outputs = self.call_function(scope, def, body_f, args, "body", |imp, k| {
            if let Some(t) = imp.written_type.take() {
                written.insert(k, t);
            }
        })?;
        if outputs.len() != vars.len() {
            return invalid(format!(
                "the body returns {} values for {} loop variables",
                outputs.len(),
                vars.len()
            ));
        }
        let cond = match self
            .call_function(scope, def, cond_f, outputs.clone(), "cond", |_, _| {})?
            .first()
        {
            Some(Bound::T(c)) => *c,
            _ => return invalid("the loop condition is not a tensor"),
        };
        let cond = self.scalar_bool(&format!("{}/cond", def.name), cond)?;
        Ok((inputs, outputs, cond, written))
    }

    /// A one-element boolean as a scalar.
    pub(super) fn scalar_bool(&mut self, name: &str, v: ValueId) -> R<ValueId> {
        if self.b.g.ty(v).rank() == 0 {
            return Ok(v);
        }
        self.b
            .emit1(name, Op::Reshape(Reshape { shape: vec![] }), vec![v])
    }

    /// Calls `f` on `args` in the current builder, through the regular call machinery (a fake
    /// call node). `after(self, k)` runs after the k-th result is resolved (collects what the body
    /// wrote to reserved lists).
    fn call_function(
        &mut self,
        scope: &Scope<'a>,
        def: &'a NodeDef,
        f: &'a FunctionDef,
        args: Vec<Bound>,
        what: &str,
        mut after: impl FnMut(&mut Self, usize),
    ) -> R<Vec<Bound>> {
        let sig = f
            .signature
            .as_ref()
            .ok_or_else(|| NodeError::Invalid(format!("{what} function has no signature")))?;
        if sig.input_arg.len() != args.len() {
            return invalid(format!(
                "the {what} function takes {} values, the loop has {}",
                sig.input_arg.len(),
                args.len()
            ));
        }
        let args = sig
            .input_arg
            .iter()
            .map(|a| a.name.clone())
            .zip(args)
            .collect();
        let prefix = format!("{}{}/{what}/", scope.prefix, def.name);
        let mut inner = Scope::function(f, args, prefix);
        let mut results = Vec::with_capacity(sig.output_arg.len());
        for (k, a) in sig.output_arg.iter().enumerate() {
            let r = f.ret.get(&a.name).cloned().ok_or_else(|| {
                NodeError::Invalid(format!("the {what} function does not return '{}'", a.name))
            })?;
            self.written_type = None;
            let b = self.resolve(&mut inner, &[r]).map_err(NodeError::Invalid)?;
            after(self, k);
            results.extend(b);
        }
        if inner.poisoned.iter().next().is_some()
            || results.iter().any(|b| matches!(b, Bound::Poisoned))
        {
            return Err(NodeError::Unsupported(format!(
                "its {what} holds unsupported ops (listed separately)"
            )));
        }
        Ok(results)
    }

    fn assemble_loop(
        &mut self,
        scope: &Scope<'a>,
        def: &'a NodeDef,
        cond_f: &'a FunctionDef,
        vars: &[Var],
        lists: &[bool],
        body: BodyImport,
    ) -> R<Vec<Bound>> {
        let BodyImport {
            mut graph,
            inputs,
            outputs,
            cond,
            ..
        } = body;
        // Which tensor variables the body changes; the others are captures.
        let mut carried = Vec::new();
        let mut captured = Vec::new();
        for (k, input) in inputs.iter().enumerate() {
            let Some(input) = *input else { continue };
            let out = match &outputs[k] {
                Bound::T(v) | Bound::List(v) => *v,
                _ => return invalid(format!("the body turns loop variable #{k} into a resource")),
            };
            if out == input {
                captured.push(k);
            } else {
                carried.push((k, out));
            }
        }
        let outer_of = |k: usize| match &vars[k] {
            Var::Tensor(v) => Ok(*v),
            _ => invalid("a loop variable without a value"),
        };
        let mut body_inputs = graph.inputs[..2].to_vec();
        body_inputs.extend(carried.iter().filter_map(|&(k, _)| inputs[k]));
        body_inputs.extend(captured.iter().filter_map(|&k| inputs[k]));
        graph.inputs = body_inputs;
        graph.outputs = std::iter::once(cond)
            .chain(carried.iter().map(|&(_, out)| out))
            .collect();
        graph.remove_dead();
        graph
            .verify()
            .map_err(|e| NodeError::Invalid(format!("loop body: {e}")))?;
        // The condition on the initial values decides whether the loop runs at all.
        let initial: Vec<Bound> = vars
            .iter()
            .zip(lists)
            .map(|(v, &list)| match v {
                Var::Resource(b) => b.clone(),
                Var::Tensor(t) if list => Bound::List(*t),
                Var::Tensor(t) => Bound::T(*t),
                Var::Reserved { count, dtype } => Bound::Reserved {
                    count: *count,
                    dtype: *dtype,
                },
            })
            .collect();
        let first = match self
            .call_function(scope, def, cond_f, initial.clone(), "cond", |_, _| {})?
            .first()
        {
            Some(Bound::T(c)) => *c,
            _ => return invalid("the loop condition is not a tensor"),
        };
        let first = self.scalar_bool(&format!("{}/first_cond", def.name), first)?;
        let limit = self.b.add_const(
            &format!("{}/no_limit", def.name),
            Tensor::scalar_i64(i64::MAX),
        );
        let mut node_inputs = vec![limit, first];
        for &(k, _) in &carried {
            node_inputs.push(outer_of(k)?);
        }
        for &k in &captured {
            node_inputs.push(outer_of(k)?);
        }
        let op = Op::Loop(Loop {
            body: Body::new(graph),
            carried: carried.len(),
        });
        let outs = self.b.emit(&def.name, op, node_inputs)?;
        let mut result = initial;
        for (j, &(k, _)) in carried.iter().enumerate() {
            result[k] = if lists[k] {
                Bound::List(outs[j])
            } else {
                Bound::T(outs[j])
            };
        }
        Ok(result)
    }

    /// `If`/`StatelessIf`: both branch functions as bodies taking every input after the
    /// condition.
    pub(super) fn if_(
        &mut self,
        scope: &Scope<'a>,
        def: &'a NodeDef,
        inputs: Vec<Bound>,
    ) -> R<Vec<Bound>> {
        let (Some(Bound::T(cond)), rest) = (inputs.first(), &inputs[1.min(inputs.len())..]) else {
            return invalid("If without a tensor condition");
        };
        let cond = *cond;
        if let Some(c) = self.b.const_ints(cond) {
            let branch = if c.first().copied().unwrap_or(0) != 0 {
                "then_branch"
            } else {
                "else_branch"
            };
            let f = self.function(def, branch)?;
            return self.call_function(scope, def, f, rest.to_vec(), branch, |_, _| {});
        }
        let mut captures = Vec::new();
        for b in rest {
            match b {
                Bound::T(v) => captures.push(*v),
                _ => {
                    return Err(NodeError::Unsupported(
                        "an If over resources or lists".into(),
                    ))
                }
            }
        }
        let mut branches = Vec::with_capacity(2);
        for attr in ["then_branch", "else_branch"] {
            let f = self.function(def, attr)?;
            branches.push(self.import_branch(scope, def, f, attr, &captures)?);
        }
        let else_ = branches
            .pop()
            .ok_or_else(|| NodeError::Invalid("no else branch".into()))?;
        let then = branches
            .pop()
            .ok_or_else(|| NodeError::Invalid("no then branch".into()))?;
        let cond = self.scalar_bool(&format!("{}/cond", def.name), cond)?;
        let op = Op::If(If {
            then_branch: Body::new(then),
            else_branch: Body::new(else_),
        });
        let mut node_inputs = vec![cond];
        node_inputs.extend(captures);
        let outs = self.b.emit(&def.name, op, node_inputs)?;
        Ok(outs.into_iter().map(Bound::T).collect())
    }

    /// Runs `f` with a fresh graph builder (and variable cache) in place of the current one, so
    /// what it imports is a body of its own; `f` sees the outer builder for the types of the
    /// values it captures. Returns `f`'s result, the body's builder, and whether the body met
    /// unsupported ops (moved to the outer list, so they are reported).
    pub(super) fn in_own_builder<T>(
        &mut self,
        f: impl FnOnce(&mut Self, &GraphBuilder) -> R<T>,
    ) -> (R<T>, GraphBuilder, bool) {
        let outer = std::mem::replace(&mut self.b, GraphBuilder::new());
        let outer_cache = std::mem::take(&mut self.var_cache);
        self.b.g.continue_symbols(&outer.g);
        let result = f(self, &outer);
        let mut inner = std::mem::replace(&mut self.b, outer);
        self.var_cache = outer_cache;
        self.b.g.continue_symbols(&inner.g);
        let unsupported = !inner.unsupported.is_empty();
        self.b.unsupported.append(&mut inner.unsupported);
        (result, inner, unsupported)
    }

    fn import_branch(
        &mut self,
        scope: &Scope<'a>,
        def: &'a NodeDef,
        f: &'a FunctionDef,
        what: &str,
        captures: &[ValueId],
    ) -> R<Graph> {
        let (result, inner, _) = self.in_own_builder(|imp, outer| {
            let args: Vec<Bound> = captures
                .iter()
                .enumerate()
                .map(|(k, &v)| Bound::T(imp.b.add_input(&format!("in_{k}"), outer.g.ty(v).clone())))
                .collect();
            imp.call_function(scope, def, f, args, what, |_, _| {})
        });
        let outs = result?
            .into_iter()
            .map(|b| match b {
                Bound::T(v) => Ok(v),
                _ => Err(NodeError::Unsupported(format!(
                    "its {what} returns a resource or list"
                ))),
            })
            .collect::<R<Vec<_>>>()?;
        let mut g = inner.g;
        g.outputs = outs;
        g.remove_dead();
        g.verify()
            .map_err(|e| NodeError::Invalid(format!("{what}: {e}")))?;
        Ok(g)
    }
}
