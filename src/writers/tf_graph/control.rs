//! Control flow as TF's functional ops, which tfjs-converter runs with `executeAsync`: `Loop` as
//! `StatelessWhile` over `(i, limit, cond, carried…, captures…)` with a `cond` function
//! (`i < limit && cond`) and a `body` function (the IR body, returning the variables in the same
//! order: `i + 1`, the limit, its condition, its carried values, the captures); `If` as
//! `StatelessIf` whose branch functions take the captures. Bodies go to `library.function`;
//! their nodes and weights are named under the node's name, since TF.js looks weights up in one
//! map for the whole model.

use super::emit::{a_int, a_type, tf_dtype, Gx};
use crate::ir::ops::{If, Loop};
use crate::ir::{DType, Graph, Node, Tensor, ValueId};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

fn func_attr(name: &str) -> Value {
    json!({ "func": { "name": name } })
}

fn type_list(types: &[DType]) -> Value {
    let t: Vec<Value> = types.iter().map(|&d| json!(tf_dtype(d))).collect();
    json!({ "list": { "type": t } })
}

/// The values' dtypes (`tf_dtype` writes every integer as TF.js's int32).
fn dtypes(g: &Graph, vs: &[ValueId]) -> Vec<DType> {
    vs.iter().map(|&v| g.ty(v).dtype).collect()
}

/// Adds function `name` to the model: args `arg_0…` of `arg_types`; the IR `body` (when given)
/// has its input `j` bound to arg `bind[j]`; `finish` gets the args and the body's results and
/// returns the function's results, which an Identity each makes node outputs.
fn function(
    gx: &mut Gx,
    name: &str,
    body: &Graph,
    bind: &[usize],
    arg_types: &[DType],
    out_types: &[DType],
    finish: impl FnOnce(&mut Gx, &[String], Vec<String>) -> Result<Vec<String>, String>,
) -> Result<(), String> {
    let mut sub = Gx::new(body, gx.dialect);
    sub.checking = gx.checking;
    sub.prefix = format!("{name}/");
    let args: Vec<String> = (0..arg_types.len()).map(|k| format!("arg_{k}")).collect();
    for (&v, &a) in body.inputs.iter().zip(bind) {
        let arg = args.get(a).ok_or("a body input without a loop variable")?;
        sub.bind(v, arg.clone());
    }
    let (plan, absorbed) = super::nn::fuse_plan(body, gx.dialect);
    for (i, n) in body.nodes.iter().enumerate() {
        if absorbed.contains(&i) {
            continue;
        }
        sub.base = super::emit::sanitize(&n.name);
        super::ops::emit(&mut sub, n, plan.get(&i))
            .map_err(|e| format!("node '{}': {e}", n.name))?;
    }
    let results = body
        .outputs
        .iter()
        .map(|&o| sub.r(o))
        .collect::<Result<Vec<_>, _>>()?;
    let results = finish(&mut sub, &args, results)?;
    let mut ret = Map::new();
    let mut output_arg = Vec::with_capacity(results.len());
    if results.len() != out_types.len() {
        return Err(format!(
            "{name}: {} results for {} outputs",
            results.len(),
            out_types.len()
        ));
    }
    for (k, (r, &t)) in results.into_iter().zip(out_types).enumerate() {
        // A result must be a node's output: an arg or a constant passes through an Identity.
        sub.base = "result".into();
        let id = sub.node("result", "Identity", vec![r], vec![("T", a_type(t))]);
        ret.insert(format!("out_{k}"), json!(format!("{id}:output:0")));
        output_arg.push(json!({ "name": format!("out_{k}"), "type": tf_dtype(t) }));
    }
    if sub.dialect == super::Dialect::Tf {
        by_argument(&mut sub.nodes);
    }
    let input_arg: Vec<Value> = args
        .iter()
        .zip(arg_types)
        .map(|(a, &t)| json!({ "name": a, "type": tf_dtype(t) }))
        .collect();
    gx.functions.append(&mut sub.functions);
    gx.weights.append(&mut sub.weights);
    gx.functions.push(json!({
        "signature": { "name": name, "inputArg": input_arg, "outputArg": output_arg },
        "nodeDef": std::mem::take(&mut sub.nodes),
        "ret": ret,
    }));
    Ok(())
}

/// Rewrites the body's references to its own nodes' outputs from the graph form (`node`,
/// `node:k`) to the function form (`node:arg:k`) TF requires; references to args and control
/// inputs (`^node`) stay.
fn by_argument(nodes: &mut [Value]) {
    let ops: HashMap<String, String> = nodes
        .iter()
        .filter_map(|n| {
            Some((
                n.get("name")?.as_str()?.to_string(),
                n.get("op")?.as_str()?.to_string(),
            ))
        })
        .collect();
    for n in nodes.iter_mut() {
        let Some(inputs) = n.get_mut("input").and_then(Value::as_array_mut) else {
            continue;
        };
        for input in inputs.iter_mut() {
            let Some(r) = input.as_str() else { continue };
            if r.starts_with('^') {
                continue;
            }
            let (base, k) = match r.rsplit_once(':') {
                Some((b, k)) => match k.parse::<usize>() {
                    Ok(k) => (b, k),
                    Err(_) => continue, // already `node:arg:k`
                },
                None => (r, 0),
            };
            if let Some(op) = ops.get(base) {
                *input = json!(format!("{base}:{}", super::outputs::function_ref(op, k)));
            }
        }
    }
}

pub fn emit_loop(gx: &mut Gx, n: &Node, l: &Loop) -> Result<(), String> {
    // `passes::loop_scan` turned every loop it could into one carrying its collected values.
    if l.collected() > 0 {
        return Err(crate::passes::loop_scan::why_not(gx.g, n, l));
    }
    let g = gx.g;
    let k = l.carried;
    let name = gx.fresh(&format!("{}/while", n.name));
    let mut var_types = vec![DType::I32, DType::I32, DType::Bool];
    var_types.extend(dtypes(g, &n.inputs[2..]));
    let (cond_f, body_f) = (format!("{name}_cond"), format!("{name}_body"));
    let nothing = Graph::new();
    function(
        gx,
        &cond_f,
        &nothing,
        &[],
        &var_types,
        &[DType::Bool],
        |sub, args, _| {
            let t = ("T", a_type(DType::I32));
            let less = sub.node(
                "less",
                "Less",
                vec![args[0].clone(), args[1].clone()],
                vec![t],
            );
            let and = sub.node("and", "LogicalAnd", vec![less, args[2].clone()], vec![]);
            Ok(vec![and])
        },
    )?;
    // IR body inputs: iteration, cond, carried…, captures… ← args 0, 2, 3….
    let mut bind = vec![0, 2];
    bind.extend(3..var_types.len());
    function(
        gx,
        &body_f,
        &l.body.0,
        &bind,
        &var_types,
        &var_types,
        |sub, args, results| {
            let one = sub.konst("one", Tensor::from_i64s(DType::I32, vec![], &[1]))?;
            let t = ("T", a_type(DType::I32));
            let next = sub.node("next", "AddV2", vec![args[0].clone(), one], vec![t]);
            let mut out = vec![next, args[1].clone()];
            out.extend(results.into_iter().take(1 + k));
            out.extend(args[3 + k..].iter().cloned());
            Ok(out)
        },
    )?;
    let mut inputs = vec![
        gx.konst(
            &format!("{name}/start"),
            Tensor::from_i64s(DType::I32, vec![], &[0]),
        )?,
        limit(gx, n.inputs[0], &name)?,
    ];
    for &v in &n.inputs[1..] {
        inputs.push(gx.r(v)?);
    }
    let w = gx.named_node(
        name,
        "StatelessWhile",
        inputs,
        vec![
            ("T", type_list(&var_types)),
            ("cond", func_attr(&cond_f)),
            ("body", func_attr(&body_f)),
            ("parallel_iterations", a_int(1)),
        ],
    );
    for (j, &o) in n.outputs.iter().enumerate() {
        gx.bind(o, format!("{w}:{}", 3 + j));
    }
    Ok(())
}

/// The trip limit as an int32 scalar: a constant past int32 (no limit) is int32's largest.
fn limit(gx: &mut Gx, v: ValueId, name: &str) -> Result<String, String> {
    if let Some(t) = gx.g.constant(v) {
        let n = t
            .to_i64s()
            .and_then(|v| v.first().copied())
            .unwrap_or(i64::MAX);
        let n = n.clamp(0, i32::MAX as i64);
        return gx.konst(
            &format!("{name}/limit"),
            Tensor::from_i64s(DType::I32, vec![], &[n]),
        );
    }
    let r = gx.r(v)?;
    let scalar = gx.ints("scalar", &[])?;
    let dt = gx.g.ty(v).dtype;
    Ok(gx.node("limit", "Reshape", vec![r, scalar], vec![("T", a_type(dt))]))
}

pub fn emit_if(gx: &mut Gx, n: &Node, op: &If) -> Result<(), String> {
    let g = gx.g;
    let captures = &n.inputs[1..];
    let arg_types = dtypes(g, captures);
    let out_types = dtypes(g, &n.outputs);
    let name = gx.fresh(&format!("{}/if", n.name));
    let (then_f, else_f) = (format!("{name}_then"), format!("{name}_else"));
    let bind: Vec<usize> = (0..captures.len()).collect();
    for (f, body) in [(&then_f, &op.then_branch), (&else_f, &op.else_branch)] {
        function(gx, f, &body.0, &bind, &arg_types, &out_types, |_, _, r| {
            Ok(r)
        })?;
    }
    let mut inputs = vec![gx.r(n.inputs[0])?];
    for &c in captures {
        inputs.push(gx.r(c)?);
    }
    let node = gx.named_node(
        name,
        "StatelessIf",
        inputs,
        vec![
            ("Tcond", a_type(DType::Bool)),
            ("Tin", type_list(&arg_types)),
            ("Tout", type_list(&out_types)),
            ("then_branch", func_attr(&then_f)),
            ("else_branch", func_attr(&else_f)),
        ],
    );
    for (j, &o) in n.outputs.iter().enumerate() {
        gx.bind(o, format!("{node}:{j}"));
    }
    Ok(())
}
