//! Keras layers tfjs-layers 4.22 lacks (or computes differently), written exactly as layers it
//! has. Each rewrite computes what Keras computes, in training as in inference:
//! - `SpatialDropout2D/3D` → `Dropout` with `noise_shape` `[null, 1, 1, null]` (Keras's own
//!   definition; tfjs fills the `null`s from the input).
//! - `Normalization` → `BatchNormalization` (no scale/center, epsilon 0) whose variance is
//!   `max(sqrt(variance), 1e-7)²`: Keras divides by `max(sqrt(variance), epsilon())`.
//! - `ReLU` with `negative_slope` (no `max_value`) → `LeakyReLU`; with `threshold` t ≥ 0 →
//!   `ThresholdedReLU` (x · [x > t], as Keras computes it), then `ReLU(max_value)` if capped.
//! - Grouped `Conv1D/2D/3D` (tfjs ignores `groups`) → the same convolution with a
//!   block-diagonal kernel (zeros between groups; `groups` times the kernel's size).
//! - `Subtract` → `Rescaling(scale=-1)` on the second input, then `Add`.
//! - Keras 3 operations on a tensor and a number (`x + 3.0`, `x * c`, `c - x`: an
//!   `Add`/`Multiply`/`Subtract` called with one tensor and a constant; tf_keras's `TFOpLambda`
//!   add/subtract/multiply with `y` a number) → `Rescaling`.
//! - `ActivityRegularization` → `Activation("linear")`: the identity it computes; its training
//!   loss is left out, as every activity regularizer is (tfjs-layers throws on calling a layer
//!   that has one).
//! - `ZeroPadding1D`, `Cropping1D`, `UpSampling1D` and causal `Conv1D` (tfjs throws on
//!   causal padding) → their 2-D forms between `Reshape`s to `[steps, 1, channels]` and back.
//!   tfjs's Reshape infers no dimension while the batch is unknown, so the steps come from
//!   the layer's output shape (fixed lengths only).

use super::common::{From, Plan, Step};
use crate::formats::keras::config::tf_op_lambda_op;
use crate::ir::ops::BinaryOp;
use crate::ir::Dim;
use serde_json::{json, Map, Value};

type Reason = String;

/// Classes tfjs-layers lacks that `plan` writes as others.
pub const REWRITTEN: &[&str] = &[
    "SpatialDropout2D",
    "SpatialDropout3D",
    "Normalization",
    "Subtract",
    "ActivityRegularization",
    "TFOpLambda",
    "ZeroPadding1D",
    "Cropping1D",
    "UpSampling1D",
];

/// What a rewrite may need to know beyond the config.
pub struct Facts<'a> {
    /// The layer's (first) output shape, batch first.
    pub output_shape: &'a mut dyn FnMut() -> Result<Vec<Dim>, String>,
    /// The shapes of the layer's weights, in Keras order.
    pub weight_shapes: Vec<Vec<usize>>,
    /// Its calls' constants among the positional arguments (`None`: a tensor) and tensor
    /// input count, when every call has the same.
    pub constants: Vec<(usize, Option<f64>)>,
    pub tensor_inputs: usize,
    /// Tensors passed by keyword, by name (`From::Input(tensor_inputs + i)`).
    pub kw_inputs: Vec<String>,
    /// A mask is passed (`attention_mask`, `use_causal_mask=True`, …).
    pub masked: bool,
}

fn flag(c: &Map<String, Value>, k: &str) -> bool {
    c.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn channels_first(c: &Map<String, Value>) -> bool {
    c.get("data_format").and_then(Value::as_str) == Some("channels_first")
}

/// `(before, after)` of an int-or-pair config value.
fn pair(c: &Map<String, Value>, key: &str, default: u64) -> Result<(u64, u64), Reason> {
    match c.get(key) {
        None | Some(Value::Null) => Ok((default, default)),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| (n, n))
            .ok_or_else(|| format!("{key}: {n}")),
        Some(Value::Array(a)) if a.len() == 2 => match (a[0].as_u64(), a[1].as_u64()) {
            (Some(x), Some(y)) => Ok((x, y)),
            _ => Err(format!("{key}: {}", json!(a))),
        },
        Some(Value::Array(a)) if a.len() == 1 => {
            let n = a[0]
                .as_u64()
                .ok_or_else(|| format!("{key}: {}", json!(a)))?;
            Ok((n, n))
        }
        Some(other) => Err(format!("{key}: {other}")),
    }
}

/// The config keys every layer keeps (name, trainable, dtype).
fn base(c: &Map<String, Value>) -> Map<String, Value> {
    c.iter()
        .filter(|(k, _)| matches!(k.as_str(), "name" | "trainable" | "dtype"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `[steps, channels]` of a rank-3 output with both fixed.
fn steps_and_channels(facts: &mut Facts) -> Result<(u64, u64), Reason> {
    let shape = (facts.output_shape)()?;
    match shape.as_slice() {
        [_, t, c] => match (t.fixed(), c.fixed()) {
            (Some(t), Some(c)) => Ok((t, c)),
            _ => Err("a sequence of unknown length (the 2-D form needs fixed steps)".into()),
        },
        _ => Err(format!("output of rank {} (expected 3)", shape.len())),
    }
}

fn reshape(target: Value, from: From, suffix: &'static str) -> Step {
    Step::new(
        "Reshape",
        json!({ "target_shape": target }),
        vec![from],
        suffix,
    )
}

/// A 1-D op as its 2-D form: `[t_in, 1, ch]` in, `[t_out, ch]` out.
fn as_2d(class: &str, t_in: u64, t_out: u64, ch: u64) -> Plan {
    Plan {
        class: class.into(),
        before: vec![reshape(json!([t_in, 1, ch]), From::Input(0), "_2d")],
        inputs: Some(vec![From::Before(0)]),
        after: vec![reshape(json!([t_out, ch]), From::Layer, "_1d")],
        ungroup: 0,
    }
}

/// The plan for `class` when it needs a rewrite (`c` rewritten to the new class's config);
/// `None`: the class is written as it is.
pub fn plan(
    class: &str,
    c: &mut Map<String, Value>,
    facts: &mut Facts,
) -> Result<Option<Plan>, Reason> {
    let plan = match class {
        "SpatialDropout2D" | "SpatialDropout3D" => {
            let spatial = if class == "SpatialDropout2D" { 2 } else { 3 };
            let mut noise = vec![Value::Null];
            if channels_first(c) {
                noise.push(Value::Null);
                noise.extend(std::iter::repeat_n(json!(1), spatial));
            } else {
                noise.extend(std::iter::repeat_n(json!(1), spatial));
                noise.push(Value::Null);
            }
            c.remove("data_format");
            c.insert("noise_shape".into(), Value::Array(noise));
            Plan::of("Dropout")
        }
        "Normalization" => {
            if flag(c, "invert") {
                return Err("invert=True (de-normalization)".into());
            }
            if !matches!(c.get("mean"), None | Some(Value::Null)) {
                return Err("mean and variance given in the config, not as weights".into());
            }
            let axis = match c.get("axis") {
                Some(Value::Number(n)) => n.clone(),
                Some(Value::Array(a)) if a.len() == 1 && a[0].is_number() => a[0]
                    .as_number()
                    .cloned()
                    .unwrap_or(serde_json::Number::from(-1)),
                other => {
                    return Err(format!(
                        "normalization over axes {} (one axis only)",
                        other.cloned().unwrap_or(Value::Null)
                    ))
                }
            };
            let mut n = base(c);
            n.insert("axis".into(), Value::Number(axis));
            n.insert("epsilon".into(), json!(0.0));
            n.insert("center".into(), json!(false));
            n.insert("scale".into(), json!(false));
            *c = n;
            Plan::of("BatchNormalization")
        }
        "ReLU" => {
            let num = |k: &str| c.get(k).and_then(Value::as_f64);
            let (slope, threshold) = (
                num("negative_slope").unwrap_or(0.0),
                num("threshold").unwrap_or(0.0),
            );
            let max = c.get("max_value").filter(|v| !v.is_null()).cloned();
            if slope == 0.0 && threshold == 0.0 {
                return Ok(None);
            }
            let mut n = base(c);
            if threshold == 0.0 && max.is_none() {
                n.insert("alpha".into(), json!(slope));
                *c = n;
                Plan::of("LeakyReLU")
            } else if slope == 0.0 && threshold >= 0.0 {
                n.insert("theta".into(), json!(threshold));
                *c = n;
                let mut p = Plan::of("ThresholdedReLU");
                if let Some(m) = max {
                    p.after.push(Step::new(
                        "ReLU",
                        json!({ "max_value": m }),
                        vec![From::Layer],
                        "_max",
                    ));
                }
                p
            } else {
                return Err(
                    "negative_slope with max_value or threshold, or a negative threshold: \
                     tfjs's ReLU has max_value only"
                        .into(),
                );
            }
        }
        "Conv1D" | "Conv2D" | "Conv3D"
            if c.get("groups").and_then(Value::as_u64).unwrap_or(1) > 1 =>
        {
            let groups = c.get("groups").and_then(Value::as_u64).unwrap_or(1);
            if c.get("padding").and_then(Value::as_str) == Some("causal") {
                return Err("a grouped causal convolution".into());
            }
            c.remove("groups");
            let mut p = Plan::of(class);
            p.ungroup = usize::try_from(groups).map_err(|_| "groups too large")?;
            p
        }
        "ActivityRegularization" => {
            let mut n = base(c);
            n.insert("activation".into(), json!("linear"));
            *c = n;
            Plan::of("Activation")
        }
        // A Keras 3 operation on a tensor and a number (`x + 3.0` is an `Add` called with
        // `[x, 3.0]`): x · scale + offset.
        "Add" | "Subtract" | "Multiply" | "TFOpLambda"
            if facts.tensor_inputs == 1 && facts.constants.len() == 1 =>
        {
            let (pos, k) = facts.constants[0];
            let k = k.ok_or(
                "tfjs-layers has no layer that applies a constant tensor (a number \
                             becomes Rescaling)",
            )?;
            // tf_keras's TFOpLambda names the function it calls with `y` = the number.
            let op = match class {
                "TFOpLambda" => {
                    let f = c.get("function").and_then(Value::as_str).unwrap_or("");
                    match tf_op_lambda_op(f) {
                        Some(BinaryOp::Add) => "Add",
                        Some(BinaryOp::Sub) => "Subtract",
                        Some(BinaryOp::Mul) => "Multiply",
                        _ => return Err(format!("tfjs-layers cannot run tf.{f} (TFOpLambda)")),
                    }
                }
                other => other,
            };
            let (scale, offset) = match (op, pos) {
                ("Add", _) => (1.0, k),
                ("Multiply", _) => (k, 0.0),
                (_, 0) => (-1.0, k),
                _ => (1.0, -k),
            };
            let mut n = base(c);
            n.insert("scale".into(), json!(scale));
            n.insert("offset".into(), json!(offset));
            *c = n;
            Plan::of("Rescaling")
        }
        // tf_keras's TFOpLambda on two tensors (`x + y`, `x * y`: `y` passed by keyword), as
        // tf_keras applications write residual adds and squeeze-excite products.
        "TFOpLambda" if facts.tensor_inputs == 1 && facts.kw_inputs == ["y"] => {
            let f = c.get("function").and_then(Value::as_str).unwrap_or("");
            let mut p = match tf_op_lambda_op(f) {
                Some(BinaryOp::Add) => Plan::of("Add"),
                Some(BinaryOp::Mul) => Plan::of("Multiply"),
                Some(BinaryOp::Sub) => negate_second(),
                _ => return Err(format!("tfjs-layers cannot run tf.{f} (TFOpLambda)")),
            };
            *c = base(c);
            p.inputs
                .get_or_insert_with(|| vec![From::Input(0), From::Input(1)]);
            p
        }
        "Subtract" => negate_second(),
        "ZeroPadding1D" | "Cropping1D" | "UpSampling1D" => {
            let (t_out, ch) = steps_and_channels(facts)?;
            let mut n = base(c);
            let (class2d, t_in) = match class {
                "ZeroPadding1D" => {
                    let (a, b) = pair(c, "padding", 1)?;
                    n.insert("padding".into(), json!([[a, b], [0, 0]]));
                    (
                        "ZeroPadding2D",
                        a.checked_add(b).and_then(|p| t_out.checked_sub(p)),
                    )
                }
                "Cropping1D" => {
                    let (a, b) = pair(c, "cropping", 1)?;
                    n.insert("cropping".into(), json!([[a, b], [0, 0]]));
                    (
                        "Cropping2D",
                        t_out.checked_add(a).and_then(|t| t.checked_add(b)),
                    )
                }
                _ => {
                    let (s, _) = pair(c, "size", 2)?;
                    n.insert("size".into(), json!([s, 1]));
                    n.insert("interpolation".into(), json!("nearest"));
                    ("UpSampling2D", (s > 0 && t_out % s == 0).then(|| t_out / s))
                }
            };
            let t_in = t_in.ok_or("output length does not match the config")?;
            n.insert("data_format".into(), json!("channels_last"));
            *c = n;
            as_2d(class2d, t_in, t_out, ch)
        }
        "Conv1D" if c.get("padding").and_then(Value::as_str) == Some("causal") => {
            let strides = pair(c, "strides", 1)?.0;
            if strides != 1 || channels_first(c) {
                return Err("causal padding with strides or channels_first".into());
            }
            let (t, _) = steps_and_channels(facts)?;
            let (k, c_in) = match facts.weight_shapes.first().map(Vec::as_slice) {
                Some([k, c_in, _]) => (*k as u64, *c_in as u64),
                _ => return Err("causal padding without a rank-3 kernel".into()),
            };
            let d = pair(c, "dilation_rate", 1)?.0;
            let pad = k
                .checked_sub(1)
                .and_then(|k| k.checked_mul(d))
                .ok_or("causal padding with an empty or huge kernel")?;
            c.insert("padding".into(), json!("valid"));
            Plan {
                class: "Conv1D".into(),
                before: vec![
                    reshape(json!([t, 1, c_in]), From::Input(0), "_2d"),
                    Step::new(
                        "ZeroPadding2D",
                        json!({"padding": [[pad, 0], [0, 0]], "data_format": "channels_last"}),
                        vec![From::Before(0)],
                        "_causal_pad",
                    ),
                    reshape(json!([t.saturating_add(pad), c_in]), From::Before(1), "_1d"),
                ],
                inputs: Some(vec![From::Before(2)]),
                after: vec![],
                ungroup: 0,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(plan))
}

/// A grouped convolution's kernel `[..spatial, cin / groups, cout]` as the equivalent ungrouped
/// one `[..spatial, cin, cout]`: output channel `o` (group `o / (cout / groups)`) reads only its
/// group's input channels, zeros elsewhere.
pub fn ungrouped_kernel(k: &crate::ir::Tensor, groups: usize) -> Result<crate::ir::Tensor, Reason> {
    let rank = k.shape.len();
    if rank < 3 || groups == 0 {
        return Err(format!("grouped kernel of shape {:?}", k.shape));
    }
    let (cin_g, cout) = (k.shape[rank - 2], k.shape[rank - 1]);
    if cout % groups != 0 {
        return Err(format!("{cout} filters in {groups} groups"));
    }
    let spatial: usize = k.shape[..rank - 2].iter().product();
    let cin = cin_g
        .checked_mul(groups)
        .ok_or("grouped kernel too large")?;
    let esz = k.dtype.size();
    let cout_g = cout / groups;
    let mut out = vec![0u8; spatial * cin * cout * esz];
    for s in 0..spatial {
        for c in 0..cin {
            let (g, cg) = (c / cin_g, c % cin_g);
            // The filters of group g, contiguous in the last axis.
            let o0 = g * cout_g;
            let src = ((s * cin_g + cg) * cout + o0) * esz;
            let dst = ((s * cin + c) * cout + o0) * esz;
            let n = cout_g * esz;
            out[dst..dst + n].copy_from_slice(&k.data[src..src + n]);
        }
    }
    let mut shape = k.shape.clone();
    shape[rank - 2] = cin;
    crate::ir::Tensor::new(k.dtype, shape, bytes::Bytes::from(out))
}

/// Keras's `backend.epsilon()`, the floor of Normalization's standard deviation.
const KERAS_EPSILON: f32 = 1e-7;

/// Normalization's `[mean, variance, count]` as BatchNormalization's `[moving_mean,
/// moving_variance]`: flattened to the channel axis, the variance floored as Keras does.
pub fn normalization_weights(w: &[crate::ir::Tensor]) -> Result<Vec<crate::ir::Tensor>, Reason> {
    let [mean, var, ..] = w else {
        return Err(format!(
            "Normalization with {} weights (mean, variance expected)",
            w.len()
        ));
    };
    let n = mean.len();
    if var.len() != n {
        return Err("Normalization's mean and variance differ in size".into());
    }
    let mean = if mean.dtype == crate::ir::DType::F32 {
        mean.reshaped(vec![n])
    } else {
        crate::ir::Tensor::from_f64s(crate::ir::DType::F32, vec![n], &mean.to_f64s())
    };
    let floored: Vec<f32> = var
        .to_f64s()
        .into_iter()
        .map(|v| {
            let sd = (v as f32).sqrt().max(KERAS_EPSILON);
            sd * sd
        })
        .collect();
    Ok(vec![mean, crate::ir::Tensor::from_f32(vec![n], &floored)])
}

/// `a - b` as `Add(a, Rescaling(scale=-1)(b))`.
fn negate_second() -> Plan {
    Plan {
        class: "Add".into(),
        before: vec![Step::new(
            "Rescaling",
            json!({"scale": -1.0, "offset": 0.0}),
            vec![From::Input(1)],
            "_negate",
        )],
        inputs: Some(vec![From::Input(0), From::Before(0)]),
        after: vec![],
        ungroup: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_shape() -> Result<Vec<Dim>, String> {
        Err("no shape".into())
    }

    #[test]
    fn spatial_dropout_is_dropout_with_a_noise_shape() {
        let mut c = json!({"name": "s", "rate": 0.3})
            .as_object()
            .cloned()
            .unwrap();
        let mut f = no_shape;
        let mut facts = Facts {
            output_shape: &mut f,
            weight_shapes: vec![],
            constants: vec![],
            tensor_inputs: 0,
            kw_inputs: vec![],
            masked: false,
        };
        let p = plan("SpatialDropout2D", &mut c, &mut facts)
            .unwrap()
            .unwrap();
        assert_eq!(p.class, "Dropout");
        assert_eq!(c["noise_shape"], json!([null, 1, 1, null]));
    }

    #[test]
    fn padding_1d_goes_through_2d_with_fixed_steps() {
        let mut c = json!({"name": "p", "padding": [1, 2]})
            .as_object()
            .cloned()
            .unwrap();
        let mut f = || {
            Ok(vec![
                Dim::Sym("batch".into()),
                Dim::Fixed(13),
                Dim::Fixed(4),
            ])
        };
        let mut facts = Facts {
            output_shape: &mut f,
            weight_shapes: vec![],
            constants: vec![],
            tensor_inputs: 0,
            kw_inputs: vec![],
            masked: false,
        };
        let p = plan("ZeroPadding1D", &mut c, &mut facts).unwrap().unwrap();
        assert_eq!(p.class, "ZeroPadding2D");
        assert_eq!(p.before[0].config["target_shape"], json!([10, 1, 4]));
        assert_eq!(p.after[0].config["target_shape"], json!([13, 4]));
        assert_eq!(c["padding"], json!([[1, 2], [0, 0]]));
        assert!(p.is_chain());
    }

    #[test]
    fn relu_variants_become_tfjs_activations() {
        let mut f = no_shape;
        let mut facts = Facts {
            output_shape: &mut f,
            weight_shapes: vec![],
            constants: vec![],
            tensor_inputs: 0,
            kw_inputs: vec![],
            masked: false,
        };
        let obj = |v: Value| v.as_object().cloned().unwrap();
        let mut c = obj(json!({"name": "r", "negative_slope": 0.1, "threshold": 0.0,
            "max_value": null}));
        let p = plan("ReLU", &mut c, &mut facts).unwrap().unwrap();
        assert_eq!((p.class.as_str(), &c["alpha"]), ("LeakyReLU", &json!(0.1)));
        let mut c = obj(json!({"name": "r", "negative_slope": 0.0, "threshold": 0.2,
            "max_value": 6.0}));
        let p = plan("ReLU", &mut c, &mut facts).unwrap().unwrap();
        assert_eq!(p.class, "ThresholdedReLU");
        assert_eq!(p.after[0].config["max_value"], json!(6.0));
        let mut c = obj(json!({"negative_slope": 0.1, "max_value": 6.0}));
        assert!(plan("ReLU", &mut c, &mut facts).is_err());
        let mut c = obj(json!({"max_value": 6.0}));
        assert!(plan("ReLU", &mut c, &mut facts).unwrap().is_none());
    }

    #[test]
    fn operations_with_a_number_become_rescaling() {
        let mut f = no_shape;
        let cases = [
            ("Add", (1, Some(3.0)), (1.0, 3.0)),
            ("Multiply", (1, Some(0.5)), (0.5, 0.0)),
            ("Subtract", (1, Some(2.0)), (1.0, -2.0)),
            ("Subtract", (0, Some(3.0)), (-1.0, 3.0)),
        ];
        for (class, constant, (scale, offset)) in cases {
            let mut facts = Facts {
                output_shape: &mut f,
                weight_shapes: vec![],
                constants: vec![constant],
                tensor_inputs: 1,
                kw_inputs: vec![],
                masked: false,
            };
            let mut c = json!({"name": "op"}).as_object().cloned().unwrap();
            let p = plan(class, &mut c, &mut facts).unwrap().unwrap();
            assert_eq!(p.class, "Rescaling", "{class}");
            assert_eq!(
                (&c["scale"], &c["offset"]),
                (&json!(scale), &json!(offset)),
                "{class} {constant:?}"
            );
        }
        // tf_keras: `tf.math.subtract(x, 2.0)` as a TFOpLambda with `y` = 2.0.
        let mut facts = Facts {
            output_shape: &mut f,
            weight_shapes: vec![],
            constants: vec![(1, Some(2.0))],
            tensor_inputs: 1,
            kw_inputs: vec![],
            masked: false,
        };
        let mut c = json!({"name": "op", "function": "math.subtract"})
            .as_object()
            .cloned()
            .unwrap();
        let p = plan("TFOpLambda", &mut c, &mut facts).unwrap().unwrap();
        assert_eq!(
            (p.class.as_str(), &c["offset"]),
            ("Rescaling", &json!(-2.0))
        );
        let mut c = json!({"function": "math.sin"})
            .as_object()
            .cloned()
            .unwrap();
        assert!(plan("TFOpLambda", &mut c, &mut facts).is_err());
        // A tensor constant (`x + w`, `w` an array): no tfjs-layers layer adds one.
        let mut facts = Facts {
            output_shape: &mut f,
            weight_shapes: vec![],
            constants: vec![(1, None)],
            tensor_inputs: 1,
            kw_inputs: vec![],
            masked: false,
        };
        let mut c = json!({"name": "op"}).as_object().cloned().unwrap();
        assert!(plan("Add", &mut c, &mut facts).is_err());
        // Two tensors: the merge layer itself.
        let mut facts = Facts {
            output_shape: &mut f,
            weight_shapes: vec![],
            constants: vec![],
            tensor_inputs: 2,
            kw_inputs: vec![],
            masked: false,
        };
        let mut c = json!({"name": "op"}).as_object().cloned().unwrap();
        assert!(plan("Add", &mut c, &mut facts).unwrap().is_none());
    }

    #[test]
    fn grouped_kernel_becomes_block_diagonal() {
        // 1x1 kernel, 2 groups of 1 input channel, 4 filters (2 per group).
        let k = crate::ir::Tensor::from_f32(vec![1, 1, 1, 4], &[1., 2., 3., 4.]);
        let u = ungrouped_kernel(&k, 2).unwrap();
        assert_eq!(u.shape, vec![1, 1, 2, 4]);
        assert_eq!(u.to_f64s(), vec![1., 2., 0., 0., 0., 0., 3., 4.]);
        assert!(ungrouped_kernel(
            &crate::ir::Tensor::from_f32(vec![1, 1, 1, 3], &[1., 2., 3.]),
            2
        )
        .is_err());
    }

    #[test]
    fn normalization_floors_the_deviation() {
        let mean = crate::ir::Tensor::from_f32(vec![1, 2], &[1.0, 2.0]);
        let var = crate::ir::Tensor::from_f32(vec![1, 2], &[4.0, 0.0]);
        let w = normalization_weights(&[mean, var]).unwrap();
        assert_eq!(w[0].shape, vec![2]);
        let v = w[1].to_f64s();
        assert_eq!(v[0], 4.0);
        assert!(v[1] > 0.0 && v[1] < 1e-13);
    }
}
