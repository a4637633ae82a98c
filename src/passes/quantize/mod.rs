//! Quantization of a legalized graph (run after the writer's `legalize`, so kernels already
//! sit in the layout the target stores, and the per-channel axis is the output-channel axis
//! of that layout).
//!
//! Representation (docs/architecture.md, "Quantization"):
//! - int8 weights: an int8 constant (symmetric, zero point 0, per channel on the output-channel
//!   axis for convolution and dense kernels, per tensor elsewhere) feeding a `DequantizeLinear`
//!   whose float output replaces the weight. The float constant is dropped.
//! - float16 weights: an f16 constant feeding a `Cast` to f32.
//! - full integer (with calibration): additionally `QuantizeLinear → DequantizeLinear` pairs on
//!   activations with calibrated asymmetric int8 parameters, and int32 biases (`activations.rs`).
//!
//! New values are named after the value they stand for: `x_q` (int8), `x_dq` (dequantized),
//! `x_s`/`x_zp` (parameters), `w_h` (float16), `b_i32` (int32 bias); nodes `x/Q`, `x/DQ`.
//!
//! Writers express these in their runtime's form: ONNX keeps QDQ as is; TFLite folds DQ'd
//! weights into hybrid/int8 builtins or DEQUANTIZE ops (writers/tflite/quant.rs).

pub mod activations;
mod control;
pub mod io;
pub mod math;
pub mod qdq;
mod weights;

pub use weights::{quantize_weights, WeightSlot};

/// What to quantize to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// int8 weights, float activations (dynamic range).
    Int8,
    /// float16 weights, float32 computation.
    Float16,
}

#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub mode: Mode,
    /// Nodes whose name or op name matches one of these (`*` wildcards; without one, a
    /// substring) keep their weights and activations in float.
    pub exclude: Vec<String>,
    /// The form the writer's runtime executes.
    pub form: Form,
    /// Keep depthwise convolutions' kernels float: LiteRT's default CPU path (XNNPACK) runs a
    /// depthwise convolution with int8 weights and float activations (dynamic range) outside the
    /// delegate, slower than the float one (measured; TFLiteConverter keeps them float too).
    pub float_depthwise: bool,
}

/// How a quantized graph is laid out for its runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// QuantizeLinear/DequantizeLinear pairs the runtime fuses (onnxruntime). It propagates
    /// QDQ through data movement itself, and runs DQ → MatMul/Gemm with a float output as one
    /// integer op, so there are no pairs around data movement nor before float-only readers.
    Qdq,
    /// TFLite's int8 builtins: dense kernels stored `[out, in]` (FULLY_CONNECTED's layout, so a
    /// quantized kernel needs no transpose in the writer), and pairs around data movement and
    /// on every int8 output (its int8 RESHAPE, CONV_2D… read and write int8 tensors).
    Tflite,
}

/// What the weight pass did, for reports.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WeightStats {
    /// Constants rewritten.
    pub tensors: usize,
    /// Of which per-channel.
    pub per_channel: usize,
    pub bytes_before: usize,
    pub bytes_after: usize,
    /// Nodes matched by `--exclude` (their weights stayed float).
    pub excluded_nodes: Vec<String>,
}

/// Whether `name` (a node name or op name) matches an `--exclude` pattern.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name.contains(pattern);
    }
    // Glob with `*` only: each literal piece in order, anchored at both ends.
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(k) => rest = &rest[k + p.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

pub fn excluded(opts: &QuantizeOptions, n: &crate::ir::Node) -> bool {
    let op = n.op.name();
    opts.exclude
        .iter()
        .any(|p| matches_pattern(p, &n.name) || matches_pattern(p, &op))
}

#[cfg(test)]
mod tests {
    use super::matches_pattern;

    #[test]
    fn exclude_patterns() {
        assert!(matches_pattern("conv", "model/conv2d_1"));
        assert!(!matches_pattern("dense", "model/conv2d_1"));
        assert!(matches_pattern("model/*_1", "model/conv2d_1"));
        assert!(!matches_pattern("model/*_1", "model/conv2d_12"));
        assert!(matches_pattern("*", "x"));
        assert!(matches_pattern("Conv*", "Conv"));
        assert!(matches_pattern("*dense*", "a/dense/b"));
    }
}
