//! Keras `MultiHeadAttention` (tfjs-layers 4.22 has none) as layers tfjs has, head by head:
//! per head `Dense` projections of query, key and value (the head's slice of Keras's
//! `[dim, heads, head_dim]` kernels), the query scaled by 1/sqrt(key_dim) (`Rescaling`, where
//! Keras scales it too), `Dot` for the scores, `Softmax` over the keys, `Dot` with the values;
//! the heads concatenated feed one `Dense` (Keras's output kernel `[heads, value_dim, out]`
//! flattened, same bytes) named as the Keras layer. Rank-3 inputs with attention over axis 1
//! (the default), no masks, gates or sliding windows.

use super::common::{From, Plan, Step};
use super::rewrites::Facts;
use crate::ir::Tensor;
use serde_json::{json, Map, Value};

type Reason = String;

fn dims(t: &Tensor, rank: usize, what: &str) -> Result<Vec<usize>, Reason> {
    if t.shape.len() != rank {
        return Err(format!("{what} of shape {:?}", t.shape));
    }
    Ok(t.shape.clone())
}

/// Head `h` of a `[dim, heads, n]` kernel (`[dim, n]`) or a `[heads, n]` bias (`[n]`).
fn head(t: &Tensor, h: usize) -> Tensor {
    let esz = t.dtype.size();
    let r = t.shape.len();
    let (heads, n) = (t.shape[r - 2], t.shape[r - 1]);
    let rows: usize = t.shape[..r - 2].iter().product();
    let mut out = Vec::with_capacity(rows * n * esz);
    for row in 0..rows {
        let at = ((row * heads + h) * n) * esz;
        out.extend_from_slice(&t.data[at..at + n * esz]);
    }
    let mut shape = t.shape[..r - 2].to_vec();
    shape.push(n);
    Tensor {
        dtype: t.dtype,
        shape,
        data: bytes::Bytes::from(out),
    }
}

fn dense(units: usize, use_bias: bool, dtype: &Value) -> Value {
    json!({"units": units, "use_bias": use_bias, "activation": "linear", "dtype": dtype})
}

/// The plan of a MultiHeadAttention layer with config `c` (rewritten into the output
/// `Dense`'s) and weights `w` (Keras order); returns the plan and the output Dense's weights.
pub fn plan(
    c: &mut Map<String, Value>,
    facts: &Facts,
    w: &[Tensor],
) -> Result<(Plan, Vec<Tensor>), Reason> {
    for (k, ok) in [
        ("use_gate", c.get("use_gate").is_none_or(|v| v == false)),
        (
            "sliding_window",
            c.get("sliding_window").is_none_or(Value::is_null),
        ),
        (
            "output_shape",
            c.get("output_shape").is_none_or(Value::is_null),
        ),
        (
            "attention_axes",
            c.get("attention_axes")
                .is_none_or(|v| v.is_null() || *v == json!([1]) || *v == json!(1)),
        ),
    ] {
        if !ok {
            return Err(format!("MultiHeadAttention with `{k}` {}", c[k]));
        }
    }
    if facts.masked {
        return Err("an attention mask or causal mask".into());
    }
    let use_bias = c.get("use_bias").and_then(Value::as_bool).unwrap_or(true);
    let per = if use_bias { 2 } else { 1 };
    if w.len() != 4 * per {
        return Err(format!("MultiHeadAttention with {} weights", w.len()));
    }
    let (wq, wk, wv, wo) = (&w[0], &w[per], &w[2 * per], &w[3 * per]);
    let (q, k, v, o) = (
        dims(wq, 3, "query kernel")?,
        dims(wk, 3, "key kernel")?,
        dims(wv, 3, "value kernel")?,
        dims(wo, 3, "output kernel")?,
    );
    let (heads, key_dim, value_dim, out) = (q[1], q[2], v[2], o[2]);
    if k[1] != heads || v[1] != heads || o[0] != heads || k[2] != key_dim || o[1] != value_dim {
        return Err("MultiHeadAttention kernels of inconsistent shapes".into());
    }
    // Biases: [heads, key_dim] for query and key, [heads, value_dim] for value, [out] after.
    if use_bias {
        let want = [
            vec![heads, key_dim],
            vec![heads, key_dim],
            vec![heads, value_dim],
            vec![out],
        ];
        for (i, shape) in want.iter().enumerate() {
            if w[i * per + 1].shape != *shape {
                return Err(format!(
                    "MultiHeadAttention bias {i} of shape {:?}, expected {shape:?}",
                    w[i * per + 1].shape
                ));
            }
        }
    }
    // Inputs: query, value (positional or `value=`), key (`key=`, default the value).
    let input = |name: &str, pos: usize| -> Option<From> {
        facts
            .kw_inputs
            .iter()
            .position(|k| k == name)
            .map(|i| From::Input(facts.tensor_inputs + i))
            .or((pos < facts.tensor_inputs).then_some(From::Input(pos)))
    };
    let query = input("query", 0).ok_or("MultiHeadAttention without a query")?;
    let value = input("value", 1).ok_or("MultiHeadAttention without a value")?;
    let key = input("key", 2).unwrap_or(value);
    // Keras 3 writes a DTypePolicy object; tfjs-layers reads a plain dtype name.
    let dtype = super::common::dtype(c.get("dtype").unwrap_or(&Value::Null));
    let scale = 1.0 / (key_dim as f64).sqrt();
    let mut before: Vec<Step> = Vec::new();
    let mut heads_out = Vec::with_capacity(heads);
    for h in 0..heads {
        let mut proj = |kernel: &Tensor, bias: Option<&Tensor>, units: usize, from, what: &str| {
            let mut s = Step::new(
                "Dense",
                dense(units, bias.is_some(), &dtype),
                vec![from],
                format!("_{what}{h}"),
            );
            s.weights.push(("kernel", head(kernel, h)));
            if let Some(b) = bias {
                s.weights.push(("bias", head(b, h)));
            }
            before.push(s);
            From::Before(before.len() - 1)
        };
        let bias = |i: usize| use_bias.then(|| &w[i * per + 1]);
        let qh = proj(wq, bias(0), key_dim, query, "query");
        let kh = proj(wk, bias(1), key_dim, key, "key");
        let vh = proj(wv, bias(2), value_dim, value, "value");
        let mut step = |class: &'static str, config: Value, inputs: Vec<From>, what: &str| {
            before.push(Step::new(class, config, inputs, format!("_{what}{h}")));
            From::Before(before.len() - 1)
        };
        let qs = step(
            "Rescaling",
            json!({"scale": scale, "offset": 0.0}),
            vec![qh],
            "scaled",
        );
        let scores = step("Dot", json!({"axes": [2, 2]}), vec![qs, kh], "scores");
        let probs = step("Softmax", json!({"axis": -1}), vec![scores], "probs");
        heads_out.push(step(
            "Dot",
            json!({"axes": [2, 1]}),
            vec![probs, vh],
            "head",
        ));
    }
    let joined = if heads_out.len() == 1 {
        heads_out[0]
    } else {
        before.push(Step::new(
            "Concatenate",
            json!({"axis": -1}),
            heads_out,
            "_heads",
        ));
        From::Before(before.len() - 1)
    };
    let mut n = Map::new();
    for k in ["name", "trainable"] {
        if let Some(v) = c.get(k) {
            n.insert(k.into(), v.clone());
        }
    }
    if let Value::Object(d) = dense(out, use_bias, &dtype) {
        n.extend(d);
    }
    *c = n;
    let mut main = vec![wo.reshaped(vec![heads * value_dim, out])];
    if use_bias {
        main.push(w[3 * per + 1].clone());
    }
    Ok((
        Plan {
            class: "Dense".into(),
            before,
            inputs: Some(vec![joined]),
            after: vec![],
            ungroup: 0,
        },
        main,
    ))
}
