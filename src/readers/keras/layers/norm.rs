//! BatchNormalization (inference form: moving statistics; `scale`/`center` off give ones /
//! zeros), LayerNormalization (trailing axes; `rms_scaling` refused) and GroupNormalization
//! (channels last, as Keras computes it: moments over each group's positions and channels).

use super::super::build::{unsupported, Builder, Call, LResult};
use super::axis;
use crate::ir::ops::{BatchNorm, BinaryOp, LayerNorm, Reduce, ReduceKind, Reshape, UnaryOp};
use crate::ir::{Dim, Layout, Op, Tensor, ValueId};
use serde::Deserialize;
use serde_json::Value;

pub fn handler(class: &str) -> Option<super::Handler> {
    Some(match class {
        "BatchNormalization" => batch_norm,
        "LayerNormalization" => layer_norm,
        "GroupNormalization" => group_norm,
        _ => return None,
    })
}

fn axes_of(v: Option<&Value>, rank: usize) -> LResult<Vec<usize>> {
    let raw: Vec<i64> = match v {
        None | Some(Value::Null) => vec![-1],
        Some(Value::Number(n)) => vec![n.as_i64().unwrap_or(-1)],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_i64).collect(),
        Some(other) => return Err(format!("axis {other}").into()),
    };
    let mut out: Vec<usize> = raw.iter().map(|&a| axis(a, rank)).collect::<LResult<_>>()?;
    out.sort_unstable();
    Ok(out)
}

#[derive(Deserialize)]
struct BnConfig {
    #[serde(default = "eps3")]
    epsilon: f32,
    #[serde(default = "yes")]
    center: bool,
    #[serde(default = "yes")]
    scale: bool,
}

fn eps3() -> f32 {
    1e-3
}
fn yes() -> bool {
    true
}

fn batch_norm(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let cfg: BnConfig = c.parse()?;
    let x = c.input(0)?;
    let rank = b.g.ty(x).rank();
    let axes = axes_of(c.config.get("axis"), rank)?;
    let layout = match axes.as_slice() {
        [a] if *a == rank - 1 => Layout::Nhwc,
        [1] => Layout::Nchw,
        _ => return unsupported(format!("BatchNormalization over axes {axes:?}")),
    };
    let mut w = c.weights.iter();
    let mut next = |what: &str| {
        w.next()
            .cloned()
            .ok_or_else(|| format!("BatchNormalization is missing its {what}"))
    };
    let gamma = if cfg.scale {
        Some(next("gamma")?)
    } else {
        None
    };
    let beta = if cfg.center {
        Some(next("beta")?)
    } else {
        None
    };
    let mean = next("moving mean")?;
    let var = next("moving variance")?;
    let ch = mean.len();
    let gamma = gamma.unwrap_or_else(|| Tensor::from_f32(vec![ch], &vec![1.0; ch]));
    let beta = beta.unwrap_or_else(|| Tensor::from_f32(vec![ch], &vec![0.0; ch]));
    let n = &c.name;
    let ins = vec![
        x,
        b.constant(&format!("{n}/gamma"), gamma),
        b.constant(&format!("{n}/beta"), beta),
        b.constant(&format!("{n}/moving_mean"), mean),
        b.constant(&format!("{n}/moving_variance"), var),
    ];
    let op = BatchNorm {
        epsilon: cfg.epsilon,
        layout,
    };
    Ok(vec![b.emit1(n, Op::BatchNorm(op), ins)?])
}

fn layer_norm(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let cfg: BnConfig = c.parse()?;
    if c.config.get("rms_scaling").and_then(Value::as_bool) == Some(true) {
        return unsupported("LayerNormalization with rms_scaling=True");
    }
    let x = c.input(0)?;
    let shape = b.shape(x);
    let rank = shape.len();
    let axes = axes_of(c.config.get("axis"), rank)?;
    let Some(&first) = axes.first() else {
        return Err("LayerNormalization with an empty axis list"
            .to_string()
            .into());
    };
    if axes.iter().enumerate().any(|(i, &a)| a != first + i)
        || *axes.last().unwrap_or(&0) != rank - 1
    {
        return unsupported(format!(
            "LayerNormalization over axes {axes:?} (not the trailing axes)"
        ));
    }
    let norm_shape: Vec<usize> = shape[first..]
        .iter()
        .map(|d| d.fixed().map(|v| v as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| "LayerNormalization over a symbolic axis".to_string())?;
    let n: usize = norm_shape.iter().product();
    let mut w = c.weights.iter().cloned();
    let as_norm = |t: Tensor, what: &str| -> LResult<Tensor> {
        if t.len() != n {
            return Err(format!(
                "LayerNormalization's {what} has {} values, the normalized axes {norm_shape:?} \
                 hold {n}",
                t.len()
            )
            .into());
        }
        Ok(t.reshaped(norm_shape.clone()))
    };
    let gamma = match cfg.scale {
        true => w.next().map(|t| as_norm(t, "gamma")).transpose()?,
        false => None,
    };
    let beta = match cfg.center {
        true => w.next().map(|t| as_norm(t, "beta")).transpose()?,
        false => None,
    };
    let gamma = gamma.unwrap_or_else(|| Tensor::from_f32(norm_shape.clone(), &vec![1.0; n]));
    let name = &c.name;
    let mut ins = vec![x, b.constant(&format!("{name}/gamma"), gamma)];
    if let Some(beta) = beta {
        ins.push(b.constant(&format!("{name}/beta"), beta));
    }
    let op = LayerNorm {
        axis: first,
        epsilon: cfg.epsilon,
    };
    let y = b.emit1(name, Op::LayerNorm(op), ins)?;
    Ok(vec![y])
}

#[derive(Deserialize)]
struct GroupNormConfig {
    #[serde(default = "groups32")]
    groups: usize,
    #[serde(default = "last_axis")]
    axis: i64,
    /// epsilon, center and scale, as BatchNormalization's.
    #[serde(flatten)]
    bn: BnConfig,
}

fn groups32() -> usize {
    32
}
fn last_axis() -> i64 {
    -1
}

/// `x` as `[B, positions, groups, channels per group]`, normalized by the mean and variance
/// over positions and channels of each group, back to its shape, then `· gamma + beta` per
/// channel.
fn group_norm(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let cfg: GroupNormConfig = c.parse()?;
    let x = c.input(0)?;
    let shape = b.shape(x);
    let rank = shape.len();
    if rank < 2 || axis(cfg.axis, rank)? != rank - 1 {
        return unsupported("GroupNormalization over an axis other than the last (channels)");
    }
    let channels = shape[rank - 1]
        .fixed()
        .ok_or_else(|| "GroupNormalization over channels known only at run time".to_string())?
        as usize;
    let g = cfg.groups;
    if g == 0 || !channels.is_multiple_of(g) {
        return Err(
            format!("GroupNormalization: {g} groups do not divide {channels} channels").into(),
        );
    }
    let n = &c.name;
    let dtype = b.g.ty(x).dtype;
    let grouped = vec![
        shape[0].clone(),
        Dim::product(&shape[1..rank - 1]),
        Dim::Fixed(g as u64),
        Dim::Fixed((channels / g) as u64),
    ];
    let xg = b.emit1(
        &format!("{n}/grouped"),
        Op::Reshape(Reshape { shape: grouped }),
        vec![x],
    )?;
    let moments = Reduce {
        kind: ReduceKind::Mean,
        axes: vec![1, 3],
        keep_dims: true,
    };
    let mean = b.emit1(&format!("{n}/mean"), Op::Reduce(moments.clone()), vec![xg])?;
    let centred = b.emit1(
        &format!("{n}/centred"),
        Op::Binary(BinaryOp::Sub),
        vec![xg, mean],
    )?;
    let sq = b.emit1(
        &format!("{n}/square"),
        Op::Binary(BinaryOp::Mul),
        vec![centred, centred],
    )?;
    let var = b.emit1(&format!("{n}/variance"), Op::Reduce(moments), vec![sq])?;
    let eps = b.constant(
        &format!("{n}/epsilon"),
        Tensor::from_f64s(dtype, vec![], &[f64::from(cfg.bn.epsilon)]),
    );
    let var = b.emit1(
        &format!("{n}/variance_eps"),
        Op::Binary(BinaryOp::Add),
        vec![var, eps],
    )?;
    let std = b.emit1(&format!("{n}/std"), Op::Unary(UnaryOp::Sqrt), vec![var])?;
    let normed = b.emit1(
        &format!("{n}/normed"),
        Op::Binary(BinaryOp::Div),
        vec![centred, std],
    )?;
    let mut y = b.emit1(
        &format!("{n}/ungrouped"),
        Op::Reshape(Reshape { shape }),
        vec![normed],
    )?;
    let mut w = c.weights.iter().cloned();
    for (on, what, op) in [
        (cfg.bn.scale, "gamma", BinaryOp::Mul),
        (cfg.bn.center, "beta", BinaryOp::Add),
    ] {
        if !on {
            continue;
        }
        let t = w
            .next()
            .ok_or_else(|| format!("GroupNormalization is missing its {what}"))?;
        if t.len() != channels {
            return Err(format!(
                "GroupNormalization's {what} has {} values for {channels} channels",
                t.len()
            )
            .into());
        }
        let k = b.constant(&format!("{n}/{what}"), t.reshaped(vec![channels]));
        y = b.emit1(&format!("{n}/{what}_applied"), Op::Binary(op), vec![y, k])?;
    }
    Ok(vec![y])
}
