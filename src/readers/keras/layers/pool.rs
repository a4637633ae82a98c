//! Pooling: Max/AveragePooling1D/2D/3D (strides default to the pool size; padding same/valid;
//! TF's average excludes padded cells) and Global{Average,Max}Pooling1D/2D/3D (keepdims), as
//! `Pool`/`GlobalPool` with the data layout, then a reshape when the spatial axes go away.

use super::super::build::{unsupported, Builder, Call, LResult};
use super::{ints, layout_of};
use crate::ir::ops::{GlobalPool, Padding, Pool, PoolKind, Reduce, ReduceKind, Reshape};
use crate::ir::{Op, ValueId};
use serde_json::Value;

pub fn handler(class: &str) -> Option<super::Handler> {
    Some(match class {
        "MaxPooling1D" | "MaxPooling2D" | "MaxPooling3D" | "AveragePooling1D"
        | "AveragePooling2D" | "AveragePooling3D" | "MaxPool1D" | "MaxPool2D" | "MaxPool3D"
        | "AvgPool1D" | "AvgPool2D" | "AvgPool3D" => pool,
        "GlobalAveragePooling1D"
        | "GlobalAveragePooling2D"
        | "GlobalAveragePooling3D"
        | "GlobalMaxPooling1D"
        | "GlobalMaxPooling2D"
        | "GlobalMaxPooling3D"
        | "GlobalAvgPool1D"
        | "GlobalAvgPool2D"
        | "GlobalAvgPool3D"
        | "GlobalMaxPool1D"
        | "GlobalMaxPool2D"
        | "GlobalMaxPool3D" => global_pool,
        _ => return None,
    })
}

fn rank_of(class: &str) -> usize {
    if class.contains("1D") {
        1
    } else if class.contains("3D") {
        3
    } else {
        2
    }
}

fn kind_of(class: &str) -> PoolKind {
    if class.contains("Max") {
        PoolKind::Max
    } else {
        PoolKind::Avg
    }
}

fn pool(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let n = rank_of(c.class);
    let cfg = c.config;
    let size = cfg
        .get("pool_size")
        .or_else(|| cfg.get("pool_length"))
        .cloned()
        .unwrap_or(Value::from(2));
    let kernel = ints(&size, n, "pool_size")?;
    let strides = match cfg.get("strides").or_else(|| cfg.get("stride")) {
        None | Some(Value::Null) => kernel.clone(),
        Some(v) => ints(v, n, "strides")?,
    };
    let padding = match cfg
        .get("padding")
        .and_then(Value::as_str)
        .unwrap_or("valid")
    {
        "valid" => Padding::Explicit(vec![(0, 0); n]),
        "same" => Padding::SameUpper,
        other => return unsupported(format!("padding '{other}'")),
    };
    let p = Pool {
        kind: kind_of(c.class),
        layout: layout_of(cfg)?,
        kernel,
        strides,
        dilations: vec![1; n],
        padding,
        ceil_mode: false,
        count_include_pad: false,
    };
    Ok(vec![b.emit1(&c.name, Op::Pool(p), vec![c.input(0)?])?])
}

fn global_pool(b: &mut Builder, c: &Call) -> LResult<Vec<ValueId>> {
    let x = c.input(0)?;
    let layout = layout_of(c.config)?;
    let keep = c
        .config
        .get("keepdims")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let rank = b.g.ty(x).rank();
    if rank == 3 {
        // Over a sequence: a plain reduction of the time axis (every target has one).
        let kind = match kind_of(c.class) {
            PoolKind::Max => ReduceKind::Max,
            PoolKind::Avg | PoolKind::L2 => ReduceKind::Mean,
        };
        let r = Reduce {
            kind,
            axes: vec![layout.spatial_axes(rank).start],
            keep_dims: keep,
        };
        return Ok(vec![b.emit1(&c.name, Op::Reduce(r), vec![x])?]);
    }
    let p = GlobalPool {
        kind: kind_of(c.class),
        layout,
    };
    if keep {
        return Ok(vec![b.emit1(&c.name, Op::GlobalPool(p), vec![x])?]);
    }
    let pooled = b.emit1(&format!("{}/pool", c.name), Op::GlobalPool(p), vec![x])?;
    let s = b.shape(x);
    let shape = vec![s[0].clone(), s[layout.channel_axis(s.len())].clone()];
    Ok(vec![b.emit1(
        &c.name,
        Op::Reshape(Reshape { shape }),
        vec![pooled],
    )?])
}
