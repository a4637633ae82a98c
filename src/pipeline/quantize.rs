//! The quantization stage: weights, then (with calibration samples) activations, whose ranges
//! are measured here by evaluation and handed to the pass; `--io int8` after the accuracy
//! report.

use super::options::{Options, QuantIo, Target};
use super::Observer;
use crate::error::{Error, Result};
use crate::ir::Graph;
use crate::passes::quantize::activations::{self, ActivationStats};
use crate::passes::quantize::{self, Form, Mode, QuantizeOptions, WeightStats};

/// What quantization did, for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QuantReport {
    pub mode: Mode,
    pub full_integer: bool,
    pub io: QuantIo,
    pub weights: WeightStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activations: Option<ActivationStats>,
}

/// The IR quantization a run asks for, or `None`. TF.js needs none: its writer stores the
/// weights quantized in the manifest and the loader dequantizes them.
pub(super) fn options(opts: &Options, target: Target) -> Option<QuantizeOptions> {
    let q = opts.quantize.as_ref()?;
    let form = match target {
        // Refused when the writer is chosen: a SavedModel is written float.
        Target::Tfjs | Target::SavedModel => return None,
        Target::Tflite => Form::Tflite,
        Target::Onnx => Form::Qdq,
    };
    Some(QuantizeOptions {
        mode: q.mode,
        exclude: q.exclude.clone(),
        form,
        // Dynamic range only: full-integer depthwise convolutions run in XNNPACK.
        float_depthwise: form == Form::Tflite
            && q.mode == crate::passes::quantize::Mode::Int8
            && q.calibration.is_none(),
    })
}

/// Quantizes a graph legalized for its writer: weights, then (with calibration samples)
/// activations. `--io int8` is applied later by [`finish_io`], after the accuracy report (which
/// feeds the source's float inputs to both models).
pub(super) fn apply(
    g: &mut Graph,
    q: &QuantizeOptions,
    opts: &Options,
    obs: &dyn Observer,
) -> Result<QuantReport> {
    // Batch norms after convolutions fold into their weights before those are quantized (the
    // TFLite legalization did this already; ONNX keeps them otherwise), and so do batch norms
    // exported as per-channel Mul/Add arithmetic (Keras 3's `model.export`): left apart, each
    // int8 convolution ends in a float Mul and Add that onnxruntime can neither fuse nor run in
    // integers, and TFLite's convolutions get no bias to carry the input × weight scale.
    crate::passes::fuse::fold_batch_norms(g);
    // Constant subgraphs (e.g. a transpose the layout pass put after a source model's own
    // dequantized weights) become constants, so they are quantized as weights (and kernels are
    // constants the affine folding can scale).
    crate::passes::cleanup::fold_constants(g);
    crate::passes::conv_fold::fold_affine_into_convs(g);
    // Input normalization's scale, into the first convolution: the model starts integer.
    crate::passes::conv_fold::fold_input_scales_into_convs(g);
    g.remove_dead();
    let weights = quantize::quantize_weights(g, q)
        .map_err(|e| Error::Failed(format!("quantization: {e}")))?;
    g.verify()
        .map_err(|e| Error::Failed(format!("quantization broke the graph: {e}")))?;
    let calibration = opts
        .quantize
        .as_ref()
        .and_then(|o| o.calibration.as_deref());
    let activations = match calibration {
        Some(path) if q.mode == Mode::Int8 => Some(calibrate(g, q, path, obs)?),
        _ => None,
    };
    obs.line(&format!(
        "quantized {} weight tensors to {} ({} per channel): {} → {} bytes{}",
        weights.tensors,
        match q.mode {
            Mode::Int8 => "int8",
            Mode::Float16 => "float16",
        },
        weights.per_channel,
        weights.bytes_before,
        weights.bytes_after,
        if weights.excluded_nodes.is_empty() {
            String::new()
        } else {
            format!("; {} nodes kept float", weights.excluded_nodes.len())
        }
    ));
    Ok(QuantReport {
        mode: q.mode,
        full_integer: activations.is_some(),
        io: opts.quantize.as_ref().map(|o| o.io).unwrap_or_default(),
        weights,
        activations,
    })
}

/// Full integer: the pass plans which activations get int8 parameters, their ranges are
/// measured on the calibration samples, and the pass inserts the pairs.
fn calibrate(
    g: &mut Graph,
    q: &QuantizeOptions,
    path: &std::path::Path,
    obs: &dyn Observer,
) -> Result<ActivationStats> {
    obs.step("calibrating");
    let batches = crate::accuracy::batches_of(g, crate::accuracy::load_samples(g, path)?)?;
    let plan = activations::plan(g, q);
    let measured = crate::eval::measure_ranges(g, plan.values(), &batches)?;
    let s = activations::quantize_activations(g, plan, &measured)?;
    g.verify()
        .map_err(|e| Error::Failed(format!("activation quantization broke the graph: {e}")))?;
    obs.line(&format!(
        "full integer: {} activations int8 from {} calibration batches, {} int8 ops, {} int32 biases, {} ops kept float",
        s.activations,
        s.calibration_batches,
        s.int8_nodes,
        s.int32_biases,
        s.float_nodes.len()
    ));
    if !s.unmeasured.is_empty() {
        obs.line(&format!(
            "note: {} activations stay float: the evaluator could not measure their range ({})",
            s.unmeasured.len(),
            s.unmeasured.join(", ")
        ));
    }
    Ok(s)
}

/// After the accuracy report: `--io int8` (int8 inputs and outputs of a fully integer graph),
/// then the QDQ form onnxruntime runs fastest (`passes::quantize::qdq`): uint8 activations and
/// one DequantizeLinear per consumer for full integer, convolution kernels decoded by Cast and
/// Mul for dynamic range.
pub(super) fn finish(
    g: &mut Graph,
    report: &QuantReport,
    q: &QuantizeOptions,
    obs: &dyn Observer,
) -> Result<()> {
    if report.full_integer && report.io == QuantIo::Int8 {
        finish_io(g, obs)?;
    }
    if q.form != Form::Qdq {
        return Ok(());
    }
    if report.full_integer {
        quantize::qdq::unsigned_activations(g);
        quantize::qdq::dedicate_dequantize(g);
    } else if q.mode == Mode::Int8 {
        quantize::qdq::weight_only_convs(g);
    }
    g.verify()
        .map_err(|e| Error::Failed(format!("the QDQ form broke the graph: {e}")))
}

/// `--io int8`: int8 inputs and outputs.
fn finish_io(g: &mut Graph, obs: &dyn Observer) -> Result<()> {
    let changed = crate::passes::quantize::io::int8_io(g)?;
    g.verify()
        .map_err(|e| Error::Failed(format!("--io int8 broke the graph: {e}")))?;
    let all = g.inputs.len() + g.outputs.len();
    if changed < all {
        let float: Vec<&str> = g
            .inputs
            .iter()
            .chain(&g.outputs)
            .filter(|&&v| g.ty(v).dtype != crate::ir::DType::I8)
            .map(|&v| g.value(v).name.as_str())
            .collect();
        obs.line(&format!(
            "note: --io int8: {} stay float (the op next to them has no int8 form here)",
            float.join(", ")
        ));
    }
    Ok(())
}
