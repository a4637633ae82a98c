//! Neural-network IR ops → ONNX: convolutions, pooling, normalizations (LayerNorm decomposed
//! before opset 17), recurrent layers, GridSample (opset 16 mode names before 20, 2-D only there)
//! and NonMaxSuppression (its constant parameters written back as inputs).

use super::super::emit::{attr_f, attr_i, attr_ints, attr_s, attr_strings, attr_usizes, Emitter};
use super::{need_nchw, R};
use crate::ir::ops::*;
use crate::ir::{DType, KernelLayout, Tensor};

fn pads_attr(p: &[(usize, usize)]) -> Vec<i64> {
    p.iter()
        .map(|x| x.0 as i64)
        .chain(p.iter().map(|x| x.1 as i64))
        .collect()
}

fn padding_attrs(padding: &Padding) -> Vec<tract_onnx::pb::AttributeProto> {
    match padding {
        Padding::Explicit(p) => vec![attr_ints("pads", pads_attr(p))],
        Padding::SameUpper => vec![attr_s("auto_pad", "SAME_UPPER")],
        Padding::SameLower => vec![attr_s("auto_pad", "SAME_LOWER")],
    }
}

pub fn conv(
    em: &mut Emitter,
    op: &str,
    c: &Conv,
    name: &str,
    ins: Vec<String>,
    outs: Vec<String>,
    transposed: bool,
) -> R {
    need_nchw(c.layout)?;
    let want = if transposed {
        KernelLayout::Iohw
    } else {
        KernelLayout::Oihw
    };
    if c.kernel_layout != want {
        return Err(format!(
            "kernel layout {} must be legalized to {want}",
            c.kernel_layout
        ));
    }
    let mut attrs = vec![
        attr_usizes("strides", &c.strides),
        attr_usizes("dilations", &c.dilations),
        attr_i("group", c.group as i64),
    ];
    attrs.extend(padding_attrs(&c.padding));
    if transposed && c.output_padding.iter().any(|&p| p != 0) {
        attrs.push(attr_usizes("output_padding", &c.output_padding));
    }
    em.node(op, name, ins, outs, attrs);
    Ok(())
}

pub fn pool(em: &mut Emitter, p: &Pool, name: &str, ins: Vec<String>, outs: Vec<String>) -> R {
    need_nchw(p.layout)?;
    let op = match p.kind {
        PoolKind::Max => "MaxPool",
        PoolKind::Avg => "AveragePool",
        PoolKind::L2 => "LpPool",
    };
    let mut attrs = vec![
        attr_usizes("kernel_shape", &p.kernel),
        attr_usizes("strides", &p.strides),
    ];
    attrs.extend(padding_attrs(&p.padding));
    if p.ceil_mode {
        attrs.push(attr_i("ceil_mode", 1));
    }
    if p.dilations.iter().any(|&d| d != 1) {
        if p.kind == PoolKind::Avg && em.opset < 19 {
            return Err("dilated average pooling needs opset 19".into());
        }
        attrs.push(attr_usizes("dilations", &p.dilations));
    }
    match p.kind {
        PoolKind::Avg => attrs.push(attr_i("count_include_pad", p.count_include_pad as i64)),
        PoolKind::L2 => attrs.push(attr_i("p", 2)),
        PoolKind::Max => {}
    }
    em.node(op, name, ins, outs, attrs);
    Ok(())
}

pub fn layer_norm(
    em: &mut Emitter,
    l: &LayerNorm,
    name: &str,
    ins: Vec<String>,
    outs: Vec<String>,
    dtype: DType,
    rank: usize,
) -> R {
    let attrs = vec![attr_i("axis", l.axis as i64), attr_f("epsilon", l.epsilon)];
    if em.opset >= 17 {
        em.node("LayerNormalization", name, ins, outs, attrs);
        return Ok(());
    }
    // (x - mean) / sqrt(var + eps) * scale + bias, over axes axis..rank.
    let axes: Vec<i64> = (l.axis as i64..rank as i64).collect();
    let reduce_mean = |em: &mut Emitter, v: String| {
        let a = vec![attr_ints("axes", axes.clone()), attr_i("keepdims", 1)];
        em.tmp("ReduceMean", name, vec![v], a)
    };
    let x = ins[0].clone();
    let mean = reduce_mean(em, x.clone());
    let d = em.tmp("Sub", name, vec![x, mean], vec![]);
    let sq = em.tmp("Mul", name, vec![d.clone(), d.clone()], vec![]);
    let var = reduce_mean(em, sq);
    let eps = em.scalar(&format!("{name}/eps"), dtype, l.epsilon as f64);
    let ve = em.tmp("Add", name, vec![var, eps], vec![]);
    let sd = em.tmp("Sqrt", name, vec![ve], vec![]);
    let norm = em.tmp("Div", name, vec![d, sd], vec![]);
    if let Some(bias) = ins.get(2) {
        let scaled = em.tmp("Mul", name, vec![norm, ins[1].clone()], vec![]);
        em.node("Add", name, vec![scaled, bias.clone()], outs, vec![]);
    } else {
        em.node("Mul", name, vec![norm, ins[1].clone()], outs, vec![]);
    }
    Ok(())
}

pub fn rnn(
    em: &mut Emitter,
    op: &str,
    r: &Rnn,
    name: &str,
    ins: Vec<String>,
    outs: Vec<String>,
) -> R {
    if let Some(cc) = r.cell_clip {
        // Legalization unrolls such layers (`passes::rnn::lower_cell_clips`) where it can.
        return Err(format!(
            "LSTM cell clip {cc} (TFLite's; ONNX LSTM has none) on a layer that cannot be \
             unrolled or looped"
        ));
    }
    let slots = RnnInput::slots(op == "LSTM");
    let mut inputs = ins[..3].to_vec();
    for slot in slots {
        inputs.push(match r.optional.iter().position(|s| s == slot) {
            Some(k) => ins[3 + k].clone(),
            None => String::new(),
        });
    }
    while inputs.last().is_some_and(|s| s.is_empty()) {
        inputs.pop();
    }
    let dir = match r.direction {
        RnnDirection::Forward => "forward",
        RnnDirection::Reverse => "reverse",
        RnnDirection::Bidirectional => "bidirectional",
    };
    let mut attrs = vec![
        attr_s("direction", dir),
        attr_i("hidden_size", r.hidden_size as i64),
        attr_i("layout", r.batch_major as i64),
    ];
    if !r.activations.is_empty() {
        attrs.push(attr_strings("activations", &r.activations));
    }
    if let Some(c) = r.clip {
        attrs.push(attr_f("clip", c));
    }
    if op == "GRU" {
        attrs.push(attr_i("linear_before_reset", r.linear_before_reset as i64));
    } else if r.input_forget {
        attrs.push(attr_i("input_forget", 1));
    }
    em.node(op, name, inputs, outs, attrs);
    Ok(())
}

pub fn lp_norm(em: &mut Emitter, l: &LpNorm, name: &str, ins: Vec<String>, outs: Vec<String>) -> R {
    let attrs = vec![attr_i("axis", l.axis as i64), attr_i("p", l.p as i64)];
    em.node("LpNormalization", name, ins, outs, attrs);
    Ok(())
}

pub fn grid_sample(
    em: &mut Emitter,
    s: &GridSample,
    name: &str,
    ins: Vec<String>,
    outs: Vec<String>,
    rank: usize,
) -> R {
    need_nchw(s.layout)?;
    if em.opset < 16 {
        return Err("GridSample needs opset 16".into());
    }
    let v20 = em.opset >= 20;
    if rank != 4 && !v20 {
        return Err(format!("{}-D GridSample needs opset 20", rank));
    }
    // Opset 20 renamed bilinear/bicubic to linear/cubic (and made them N-linear/N-cubic).
    let mode = match (s.mode, v20) {
        (ResizeMode::Nearest, _) => "nearest",
        (ResizeMode::Linear, true) => "linear",
        (ResizeMode::Linear, false) => "bilinear",
        (ResizeMode::Cubic, true) => "cubic",
        (ResizeMode::Cubic, false) => "bicubic",
    };
    let padding = match s.padding {
        GridPadding::Zeros => "zeros",
        GridPadding::Border => "border",
        GridPadding::Reflection => "reflection",
    };
    let attrs = vec![
        attr_s("mode", mode),
        attr_s("padding_mode", padding),
        attr_i("align_corners", s.align_corners as i64),
    ];
    em.node("GridSample", name, ins, outs, attrs);
    Ok(())
}

pub fn nms(
    em: &mut Emitter,
    s: &Nms,
    name: &str,
    ins: Vec<String>,
    outs: Vec<String>,
    dtype: DType,
) -> R {
    if dtype != DType::F32 {
        return Err(format!(
            "NonMaxSuppression on {dtype} boxes (ONNX takes f32)"
        ));
    }
    let max = em.ints(
        &format!("{name}/max_output_boxes_per_class"),
        &[s.max_output_boxes_per_class],
    );
    let iou = em.konst(
        &format!("{name}/iou_threshold"),
        Tensor::from_f32(vec![1], &[s.iou_threshold]),
    );
    let mut inputs = vec![ins[0].clone(), ins[1].clone(), max, iou];
    if let Some(t) = s.score_threshold {
        inputs.push(em.konst(
            &format!("{name}/score_threshold"),
            Tensor::from_f32(vec![1], &[t]),
        ));
    }
    let attrs = vec![attr_i("center_point_box", s.center_point_box as i64)];
    em.node("NonMaxSuppression", name, inputs, outs, attrs);
    Ok(())
}
