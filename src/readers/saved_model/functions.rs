//! Importing a TF graph: the signature's outer `GraphDef` and, inlined at every call
//! (StatefulPartitionedCall, PartitionedCall, a node whose op is a library function), the
//! `FunctionDef` bodies. Only nodes the requested outputs depend on are visited, in dependency
//! order (an explicit stack, no recursion over the graph). Captured variables flow through calls
//! as resource handles until a `ReadVariableOp` turns them into constants from the bundle.

use super::bundle::Bundle;
use super::objects::Objects;
use super::ops;
use super::tensor::{func_attr, tensor_from_proto, TfNode};
use crate::error::Unsupported;
use crate::ir::ValueId;
use crate::readers::builder::{GraphBuilder, NodeError};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use tract_tensorflow::tfpb::tensorflow::{FunctionDef, NodeDef};

/// What a TF tensor name stands for during import.
#[derive(Clone, Debug)]
pub enum Bound {
    T(ValueId),
    /// A variable handle, by checkpoint key.
    Var(String),
    /// A resource handle not matched to a variable (why, for the error).
    Res(String),
    /// Produced by an unsupported node (already reported).
    Poisoned,
    /// A TensorList: its elements stacked on a first axis (control.rs).
    List(ValueId),
    /// A TensorList reserved but not written yet: `count` elements of `dtype`.
    Reserved {
        count: ValueId,
        dtype: crate::ir::DType,
    },
}

mod control;
mod frames;
mod frames_import;

use frames::{Frames, Level};

const MAX_CALL_DEPTH: usize = 64;

/// Control flow and TensorList ops (control.rs).
const CONTROL: &[&str] = &[
    "While",
    "StatelessWhile",
    "If",
    "StatelessIf",
    "TensorListFromTensor",
    "TensorListReserve",
    "TensorListGetItem",
    "TensorListSetItem",
    "TensorListStack",
];

/// Ops handled here rather than in `ops/`.
const SPECIAL: &[&str] = &[
    "Placeholder",
    "PlaceholderWithDefault",
    "Const",
    "VarHandleOp",
    "VariableV2",
    "ReadVariableOp",
    "Identity",
    "IdentityN",
    "StopGradient",
    "Snapshot",
    "PreventGradient",
    "CheckNumerics",
    "EnsureShape",
    "NoOp",
    "StatefulPartitionedCall",
    "PartitionedCall",
];

pub struct Importer<'a> {
    pub b: GraphBuilder,
    lib: HashMap<&'a str, &'a FunctionDef>,
    bundle: Option<Bundle>,
    objects: Objects,
    var_cache: HashMap<String, ValueId>,
    depth: usize,
    /// Nodes still to import ([`crate::ir::limits::max_nodes`] at the start): calls inline
    /// their function, so a few nested calls could multiply a small file's nodes without end.
    budget: usize,
    /// What the last `TensorListSetItem` on a reserved list wrote (control.rs).
    written_type: Option<crate::ir::TensorType>,
}

/// One graph or function body being imported.
pub struct Scope<'a> {
    nodes: Rc<HashMap<&'a str, &'a NodeDef>>,
    is_function: bool,
    args: HashMap<String, Bound>,
    /// Call path, for messages (`StatefulPartitionedCall_1/…/`).
    prefix: String,
    pub done: HashMap<String, Vec<Bound>>,
    poisoned: HashSet<String>,
    /// The graph's TF1 control flow frames (frames.rs), shared by the scopes of their bodies.
    frames: Option<Rc<Frames<'a>>>,
    /// The frame contexts this scope imports nodes of (empty: the graph itself).
    level: Level<'a>,
}

impl<'a> Scope<'a> {
    pub fn graph(nodes: &'a [NodeDef]) -> Scope<'a> {
        Scope {
            nodes: Rc::new(nodes.iter().map(|n| (n.name.as_str(), n)).collect()),
            is_function: false,
            args: HashMap::new(),
            prefix: String::new(),
            done: HashMap::new(),
            poisoned: HashSet::new(),
            frames: Frames::analyze(nodes).map(Rc::new),
            level: Vec::new(),
        }
    }

    /// A function body's scope.
    fn function(f: &'a FunctionDef, args: HashMap<String, Bound>, prefix: String) -> Scope<'a> {
        Scope {
            nodes: Rc::new(f.node_def.iter().map(|n| (n.name.as_str(), n)).collect()),
            is_function: true,
            args,
            prefix,
            done: HashMap::new(),
            poisoned: HashSet::new(),
            frames: None,
            level: Vec::new(),
        }
    }

    /// What planning `def` must import first: its data inputs, or for a node closing a TF1
    /// frame what the whole frame reads; nothing for a node the import refuses.
    fn deps(&self, def: &'a NodeDef) -> Vec<&str> {
        if let Some(f) = &self.frames {
            if let Some(id) = f.output_at(&def.name, &self.level) {
                return f.inputs(id);
            }
            if f.misplaced(&def.name, &self.level).is_some() {
                return Vec::new();
            }
        }
        def.input
            .iter()
            .filter(|i| !i.starts_with('^'))
            .map(String::as_str)
            .collect()
    }

    /// The node a (non-control) reference names, or `None` for a function argument.
    fn node_of<'r>(&self, r: &'r str) -> Option<&'r str> {
        if self.is_function && self.args.contains_key(r) {
            return None;
        }
        Some(r.split(':').next().unwrap_or(r))
    }

    /// Resolves a reference to an imported node's output or a function argument.
    fn lookup(&self, r: &str) -> Result<Bound, String> {
        if self.is_function {
            if let Some(b) = self.args.get(r) {
                return Ok(b.clone());
            }
        }
        let mut parts = r.split(':');
        let node = parts.next().unwrap_or(r);
        if self.poisoned.contains(node) {
            return Ok(Bound::Poisoned);
        }
        let idx = if self.is_function {
            // "node:out_arg:k": the k-th tensor of output arg `out_arg`. TF.js graph models
            // may also write the graph form "node:k" in bodies (tfjs reads the last number as
            // the flat index); an output arg name is never all digits.
            let arg = parts.next().unwrap_or("");
            let k = parts.next();
            match (arg.parse::<usize>(), k) {
                (Ok(flat), None) => flat,
                _ => {
                    let k: usize = k.map_or(Ok(0), |s| s.parse()).map_err(|_| bad(r))?;
                    let op = self.nodes.get(node).map_or("", |n| n.op.as_str());
                    output_offset(op, arg) + k
                }
            }
        } else {
            parts
                .next()
                .map_or(Ok(0), |s| s.parse())
                .map_err(|_| bad(r))?
        };
        let outs = self
            .done
            .get(node)
            .ok_or_else(|| format!("'{r}' refers to a node that does not exist"))?;
        outs.get(idx)
            .cloned()
            .ok_or_else(|| format!("'{r}': node '{node}' has only {} output(s)", outs.len()))
    }
}

fn bad(r: &str) -> String {
    format!("malformed tensor reference '{r}'")
}

/// Flat output index of the first tensor of output arg `arg` of `op` (ops with several output
/// args; list outputs such as Split's count within their arg).
fn output_offset(op: &str, arg: &str) -> usize {
    match (op, arg) {
        (
            "FusedBatchNorm" | "FusedBatchNormV2" | "FusedBatchNormV3",
            "batch_mean" | "batch_variance" | "reserve_space_1" | "reserve_space_2"
            | "reserve_space_3",
        ) => match arg {
            "batch_mean" => 1,
            "batch_variance" => 2,
            "reserve_space_1" => 3,
            "reserve_space_2" => 4,
            _ => 5,
        },
        ("TopKV2" | "TopK", "indices") | ("Unique", "idx") | ("Switch", "output_true") => 1,
        _ => 0,
    }
}

fn is_call(lib: &HashMap<&str, &FunctionDef>, def: &NodeDef) -> bool {
    matches!(
        def.op.as_str(),
        "StatefulPartitionedCall" | "PartitionedCall"
    ) || lib.contains_key(def.op.as_str())
}

impl<'a> Importer<'a> {
    pub fn new(functions: &'a [FunctionDef], bundle: Option<Bundle>, objects: Objects) -> Self {
        let lib = functions
            .iter()
            .filter_map(|f| Some((f.signature.as_ref()?.name.as_str(), f)))
            .collect();
        Importer {
            b: GraphBuilder::new(),
            lib,
            bundle,
            objects,
            var_cache: HashMap::new(),
            depth: 0,
            budget: crate::ir::limits::max_nodes(),
            written_type: None,
        }
    }

    fn report(&mut self, scope: &Scope, def: &NodeDef, reason: String) {
        self.b.unsupported.push(Unsupported {
            op: def.op.clone(),
            node: format!("{}{}", scope.prefix, def.name),
            reason,
        });
    }

    /// Imports what `refs` depend on in `scope` and returns what they stand for.
    pub fn resolve(
        &mut self,
        scope: &mut Scope<'a>,
        refs: &[String],
    ) -> Result<Vec<Bound>, String> {
        let order = self.plan(scope, refs)?;
        for def in order {
            // A node closing a frame imports its sibling Merges/Exits with it.
            if !scope.done.contains_key(&def.name) && !scope.poisoned.contains(&def.name) {
                self.import_node(scope, def)?;
            }
        }
        refs.iter().map(|r| scope.lookup(r)).collect()
    }

    /// The not-yet-imported nodes `refs` depend on, inputs before users.
    fn plan(&self, scope: &Scope<'a>, refs: &[String]) -> Result<Vec<&'a NodeDef>, String> {
        let mut order = Vec::new();
        let mut state: HashMap<&str, bool> = HashMap::new(); // false: open, true: finished
        let mut stack: Vec<(&'a NodeDef, Vec<&str>, usize)> = Vec::new();
        for r in refs {
            let Some(name) = scope.node_of(r) else {
                continue;
            };
            if scope.done.contains_key(name) || state.contains_key(name) {
                continue;
            }
            let def = *scope
                .nodes
                .get(name)
                .ok_or_else(|| format!("'{r}' refers to a node that does not exist"))?;
            state.insert(&def.name, false);
            stack.push((def, scope.deps(def), 0));
            while let Some((def, deps, next)) = stack.pop() {
                if let Some(&inp) = deps.get(next) {
                    stack.push((def, deps, next + 1));
                    let Some(dep) = scope.node_of(inp) else {
                        continue;
                    };
                    if scope.done.contains_key(dep) {
                        continue;
                    }
                    match state.get(dep) {
                        Some(false) => {
                            return Err(format!("node '{}' is part of a cycle", def.name))
                        }
                        Some(true) => continue,
                        None => {}
                    }
                    let d = *scope.nodes.get(dep).ok_or_else(|| {
                        format!("node '{}': input '{inp}' does not exist", def.name)
                    })?;
                    state.insert(&d.name, false);
                    stack.push((d, scope.deps(d), 0));
                } else {
                    state.insert(&def.name, true);
                    order.push(def);
                }
            }
        }
        Ok(order)
    }

    fn import_node(&mut self, scope: &mut Scope<'a>, def: &'a NodeDef) -> Result<(), String> {
        let name = def.name.clone();
        self.budget = self.budget.checked_sub(1).ok_or_else(|| {
            crate::ir::limits::too_many_nodes(&format!("node '{}{name}'", scope.prefix))
        })?;
        if let Some(frames) = scope.frames.clone() {
            if let Some(id) = frames.output_at(&name, &scope.level) {
                return self.import_frame(scope, &frames, def, id);
            }
            if let Some(why) = frames.misplaced(&name, &scope.level) {
                self.report(scope, def, why);
                scope.poisoned.insert(name);
                return Ok(());
            }
        }
        let inputs: Vec<Bound> = def
            .input
            .iter()
            .filter(|i| !i.starts_with('^'))
            .map(|i| scope.lookup(i))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("node '{}{name}': {e}", scope.prefix))?;
        let known = SPECIAL.contains(&def.op.as_str())
            || CONTROL.contains(&def.op.as_str())
            || ops::is_known(&def.op)
            || is_call(&self.lib, def);
        if inputs.iter().any(|b| matches!(b, Bound::Poisoned)) {
            if !known {
                let why = self.why_unsupported(def);
                self.report(scope, def, why);
            }
            scope.poisoned.insert(name);
            return Ok(());
        }
        let result = if is_call(&self.lib, def) {
            self.call(scope, def, inputs)
        } else if matches!(def.op.as_str(), "While" | "StatelessWhile") {
            self.while_loop(scope, def, inputs)
        } else if matches!(def.op.as_str(), "If" | "StatelessIf") {
            self.if_(scope, def, inputs)
        } else if let Some(r) = self.list_op(def, &inputs) {
            r
        } else {
            self.special(scope, def, &inputs)
                .unwrap_or_else(|| self.regular(def, &inputs))
        };
        match result {
            Ok(outs) => {
                scope.done.insert(name, outs);
                Ok(())
            }
            Err(NodeError::Unsupported(why)) => {
                self.report(scope, def, why);
                scope.poisoned.insert(name);
                Ok(())
            }
            Err(NodeError::Invalid(why)) => {
                Err(format!("node '{}{name}' ({}): {why}", scope.prefix, def.op))
            }
        }
    }

    /// Why an op has no converter; loops name the ops in their bodies.
    fn why_unsupported(&self, def: &NodeDef) -> String {
        if frames::is_v1_control(&def.op) {
            // The graph's own frames are found before import (frames.rs); functions use v2.
            return "TF1 control flow (Switch/Merge/Enter/Exit frames) is read in the graph \
                    itself, not inside a function body"
                .into();
        }
        if !matches!(def.op.as_str(), "While" | "StatelessWhile") {
            return "no converter for this op".into();
        }
        let mut body_ops = BTreeSet::new();
        let mut seen = HashSet::new();
        let mut todo: Vec<String> = ["body", "cond"]
            .iter()
            .filter_map(|a| func_attr(def, a))
            .collect();
        while let Some(f) = todo.pop() {
            if !seen.insert(f.clone()) {
                continue;
            }
            for n in self
                .lib
                .get(f.as_str())
                .map_or(&[][..], |f| &f.node_def[..])
            {
                if is_call(&self.lib, n) {
                    todo.extend(func_attr(n, "f").or_else(|| Some(n.op.clone())));
                } else if !ops::is_known(&n.op) && !SPECIAL.contains(&n.op.as_str()) {
                    body_ops.insert(n.op.clone());
                }
            }
        }
        format!(
            "a While loop (as Keras LSTM/GRU layers export, iterating over TensorLists) is not \
             unrolled; its body also uses ops without converter: {}",
            body_ops.into_iter().collect::<Vec<_>>().join(", ")
        )
    }

    fn regular(&mut self, def: &'a NodeDef, inputs: &[Bound]) -> Result<Vec<Bound>, NodeError> {
        let Some(handler) = ops::handler(&def.op) else {
            return Err(NodeError::Unsupported(self.why_unsupported(def)));
        };
        let mut ids = Vec::with_capacity(inputs.len());
        for b in inputs {
            match b {
                Bound::T(v) => ids.push(*v),
                _ => {
                    return Err(NodeError::Unsupported(
                        "takes a resource handle (only ReadVariableOp of a variable is supported)"
                            .into(),
                    ))
                }
            }
        }
        let node = TfNode {
            def,
            name: def.name.clone(),
            inputs: ids,
        };
        Ok(handler(&mut self.b, &node)?
            .into_iter()
            .map(Bound::T)
            .collect())
    }

    /// Nodes whose meaning is about the graph itself: constants, placeholders, variables,
    /// identities.
    fn special(
        &mut self,
        scope: &Scope,
        def: &'a NodeDef,
        inputs: &[Bound],
    ) -> Option<Result<Vec<Bound>, NodeError>> {
        let first = || {
            inputs
                .first()
                .cloned()
                .ok_or_else(|| NodeError::Invalid("missing input #0".into()))
        };
        Some(match def.op.as_str() {
            "Const" => {
                let node = TfNode {
                    def,
                    name: def.name.clone(),
                    inputs: vec![],
                };
                match node.tensor_attr("value").map(tensor_from_proto) {
                    Some(Ok(t)) => Ok(vec![Bound::T(self.b.add_const(&def.name, t))]),
                    Some(Err(e)) if e.contains("not supported") => Err(NodeError::Unsupported(e)),
                    Some(Err(e)) => Err(NodeError::Invalid(e)),
                    None => Err(NodeError::Invalid("Const without a value".into())),
                }
            }
            // CheckNumerics only fails a run on NaN/inf and EnsureShape on another shape: on
            // the inputs they pass, both are the identity.
            "Identity" | "StopGradient" | "Snapshot" | "PreventGradient" | "CheckNumerics"
            | "EnsureShape" => first().map(|b| vec![b]),
            "PlaceholderWithDefault" => first().map(|b| vec![b]),
            "IdentityN" => Ok(inputs.to_vec()),
            "NoOp" => Ok(vec![]),
            "Placeholder" => Err(NodeError::Invalid(format!(
                "placeholder '{}' is not an input of the chosen signature",
                def.name
            ))),
            "VarHandleOp" => {
                let node = TfNode {
                    def,
                    name: def.name.clone(),
                    inputs: vec![],
                };
                let shared = node.string("shared_name", &def.name);
                let in_bundle = self.bundle.as_ref().is_some_and(|b| b.contains(&shared));
                Ok(vec![if in_bundle && !scope.is_function {
                    Bound::Var(shared)
                } else {
                    Bound::Res(format!(
                        "VarHandleOp '{}' (shared_name '{shared}')",
                        def.name
                    ))
                }])
            }
            "VariableV2" => self
                .variable(&def.name, &def.name)
                .map(|v| vec![Bound::T(v)]),
            "ReadVariableOp" => match first() {
                Ok(Bound::Var(key)) => self.variable(&key, &def.name).map(|v| vec![Bound::T(v)]),
                Ok(Bound::Res(why)) => Err(NodeError::Invalid(format!(
                    "reads {why}, which could not be matched to a saved variable"
                ))),
                Ok(_) => Err(NodeError::Invalid(
                    "reads something that is not a variable".into(),
                )),
                Err(e) => Err(e),
            },
            _ => return None,
        })
    }

    /// Checks the checksums of every variable read so far (see [`Bundle::check_pending`]).
    pub fn check_variables(&mut self) -> Result<(), String> {
        self.bundle.as_mut().map_or(Ok(()), Bundle::check_pending)
    }

    /// The constant holding variable `key` (read once, shared by every reader).
    fn variable(&mut self, key: &str, name: &str) -> Result<ValueId, NodeError> {
        if let Some(&v) = self.var_cache.get(key) {
            return Ok(v);
        }
        let bundle = self.bundle.as_mut().ok_or_else(|| {
            NodeError::Invalid(format!(
                "reads variable '{key}' but the model has no variables/ folder"
            ))
        })?;
        let t = bundle.tensor(key).map_err(NodeError::Invalid)?;
        let v = self.b.add_const(name, t);
        self.var_cache.insert(key.to_string(), v);
        Ok(v)
    }

    /// Inlines a function call: binds the body's arguments to the call's inputs (captured
    /// resources matched to variables through the object graph) and returns its results.
    fn call(
        &mut self,
        scope: &Scope,
        def: &'a NodeDef,
        mut args: Vec<Bound>,
    ) -> Result<Vec<Bound>, NodeError> {
        let fname = func_attr(def, "f").unwrap_or_else(|| def.op.clone());
        let f = *self
            .lib
            .get(fname.as_str())
            .ok_or_else(|| NodeError::Invalid(format!("calls unknown function '{fname}'")))?;
        if let Some(bound) = self.objects.bound_inputs(&fname).map(<[i32]>::to_vec) {
            let first = args.len().saturating_sub(bound.len());
            for (slot, id) in args[first..].iter_mut().zip(bound) {
                if matches!(slot, Bound::Res(_) | Bound::Var(_)) {
                    *slot = match self.objects.variable_key(id) {
                        Ok(key) => Bound::Var(key),
                        Err(why) => Bound::Res(why),
                    };
                }
            }
        }
        let sig = f
            .signature
            .as_ref()
            .ok_or_else(|| NodeError::Invalid(format!("function '{fname}' has no signature")))?;
        if sig.input_arg.len() != args.len() {
            return Err(NodeError::Invalid(format!(
                "calls '{fname}' with {} inputs, it takes {}",
                args.len(),
                sig.input_arg.len()
            )));
        }
        if self.depth >= MAX_CALL_DEPTH {
            return Err(NodeError::Invalid(format!(
                "function calls nest deeper than {MAX_CALL_DEPTH}"
            )));
        }
        let args = sig
            .input_arg
            .iter()
            .map(|a| a.name.clone())
            .zip(args)
            .collect();
        let mut inner = Scope::function(f, args, format!("{}{}/", scope.prefix, def.name));
        let rets: Vec<String> = sig
            .output_arg
            .iter()
            .map(|a| {
                f.ret.get(&a.name).cloned().ok_or_else(|| {
                    NodeError::Invalid(format!("function '{fname}' does not return '{}'", a.name))
                })
            })
            .collect::<Result<_, _>>()?;
        self.depth += 1;
        let r = self.resolve(&mut inner, &rets);
        self.depth -= 1;
        r.map_err(NodeError::Invalid)
    }
}
