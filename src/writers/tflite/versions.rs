//! Operator versions and the minimum runtime version.
//!
//! `version` gives the lowest version of a builtin that supports what the operator uses, for
//! the features mdeploy emits (element types, fused activations, dilation, rank, broadcasting),
//! following TensorFlow's `tensorflow/lite/tools/versioning/op_version.cc`. `runtime` gives the
//! first TFLite runtime with an (op, version), from `runtime_version.cc`; the model's
//! `min_runtime_version` metadata is the largest of those.

use super::plan::{Opts, TOp};
use crate::ir::{DType, TensorType};
use tract_tflite::tflite::{ActivationFunctionType as Act, BuiltinOperator as B};

/// What versioning looks at: the element types and ranks of an operator's tensors.
pub struct Sig<'a> {
    pub inputs: Vec<Option<&'a TensorType>>,
    pub outputs: Vec<&'a TensorType>,
    /// Input 0 is quantized per axis.
    pub per_axis_input: bool,
    /// Input 1 (a kernel) is quantized per axis.
    pub per_axis_weights: bool,
}

impl Sig<'_> {
    fn in_dtype(&self, i: usize) -> Option<DType> {
        self.inputs.get(i).copied().flatten().map(|t| t.dtype)
    }
    fn in_rank(&self, i: usize) -> usize {
        self.inputs
            .get(i)
            .copied()
            .flatten()
            .map_or(0, |t| t.rank())
    }
    fn max_rank(&self) -> usize {
        (0..self.inputs.len())
            .map(|i| self.in_rank(i))
            .max()
            .unwrap_or(0)
    }
    /// Binary inputs of different shapes (the op broadcasts).
    fn broadcasts(&self) -> bool {
        match (self.inputs.first(), self.inputs.get(1)) {
            (Some(Some(a)), Some(Some(b))) => a.shape != b.shape,
            _ => false,
        }
    }
}

/// The lowest version of `op.code` that supports this use of it.
pub fn version(op: &TOp, sig: &Sig) -> i32 {
    let t0 = sig.in_dtype(0);
    let int8 = t0 == Some(DType::I8);
    let by_int8 = |base: i32| if int8 { 2 } else { base };
    match op.code {
        B::CONV_2D if sig.in_dtype(1) == Some(DType::I8) && t0 == Some(DType::I8) => 3,
        // Hybrid: float input, int8 filter.
        B::CONV_2D if sig.in_dtype(1) == Some(DType::I8) && sig.per_axis_weights => 5,
        B::CONV_2D if sig.in_dtype(1) == Some(DType::I8) => 2,
        B::CONV_2D => 1,
        B::DEPTHWISE_CONV_2D => match &op.opts {
            _ if int8 && sig.in_dtype(1) == Some(DType::I8) => 3,
            _ if sig.in_dtype(1) == Some(DType::I8) && sig.per_axis_weights => 6,
            _ if sig.in_dtype(1) == Some(DType::I8) => 4,
            Opts::Depthwise { dilation, .. } if *dilation != [1, 1] => 2,
            _ => 1,
        },
        B::TRANSPOSE_CONV => match &op.opts {
            Opts::TransposeConv { act, .. } if *act != Act::NONE => 4,
            _ if sig.inputs.len() == 4 && sig.inputs[3].is_some() => 3,
            _ => by_int8(1),
        },
        B::FULLY_CONNECTED => match &op.opts {
            _ if !int8 && sig.in_dtype(1) == Some(DType::I8) && sig.per_axis_weights => 12,
            _ if sig.inputs.len() == 2 => 6,
            Opts::FullyConnected {
                keep_num_dims: true,
                ..
            } => 5,
            _ if int8 => 4,
            Opts::FullyConnected {
                asymmetric: true, ..
            } if sig.in_dtype(1) == Some(DType::I8) => 9,
            _ if sig.in_dtype(1) == Some(DType::I8) => 3,
            _ => 1,
        },
        B::GATHER => match sig.in_dtype(0) {
            Some(DType::I16) => 4,
            Some(DType::Bool) => 3,
            Some(DType::I8) => 2,
            _ => 1,
        },
        // WHERE-2 takes non-bool conditions (nonzero elements).
        B::WHERE if t0.is_some_and(|t| t != DType::Bool) => 2,
        B::SIGN if t0 == Some(DType::I32) => 2,
        B::SIGN => 1,
        B::MUL => match t0 {
            Some(DType::I16) | Some(DType::U32) => 7,
            Some(DType::I64) => 5,
            Some(DType::I8) => 2,
            _ => 1,
        },
        B::ADD => match t0 {
            Some(DType::I16) => 5,
            Some(DType::I64) => 4,
            Some(DType::I8) => 2,
            _ => 1,
        },
        B::SUB => match t0 {
            Some(DType::I64) => 4,
            _ if sig.broadcasts() && sig.max_rank() > 4 => 3,
            Some(DType::I8) => 2,
            _ => 1,
        },
        B::DIV if sig.broadcasts() && sig.max_rank() > 4 => 2,
        B::DIV => 1,
        B::MAXIMUM | B::MINIMUM if sig.broadcasts() && sig.max_rank() > 4 => 3,
        B::MAXIMUM | B::MINIMUM => by_int8(1),
        B::TRANSPOSE => match t0 {
            _ if sig.in_rank(0) > 5 => 6,
            Some(DType::I16) => 5,
            _ if sig.in_rank(0) > 4 => 4,
            Some(DType::Bool) => 3,
            _ => by_int8(1),
        },
        B::SLICE => match t0 {
            Some(DType::U32) => 6,
            _ if sig.in_rank(0) > 4 => 5,
            Some(DType::I16) => 4,
            _ => by_int8(1),
        },
        B::STRIDED_SLICE => match t0 {
            Some(DType::U32) => 7,
            _ if sig.in_rank(0) > 4 => 4,
            Some(DType::Bool) => 3,
            _ => by_int8(1),
        },
        B::PAD | B::PADV2 => match t0 {
            _ if sig.in_rank(0) > 4 => 4,
            Some(DType::I16) => 3,
            _ => by_int8(1),
        },
        B::CONCATENATION => match t0 {
            Some(DType::U32) => 4,
            Some(DType::I16) => 3,
            _ => by_int8(1),
        },
        B::SPLIT => match sig.in_dtype(1) {
            Some(DType::I16) => 4,
            Some(DType::I32) => 3,
            Some(DType::I8) => 2,
            _ => 1,
        },
        B::TILE if int8 => 3,
        B::TILE => 1,
        B::SELECT_V2 if sig.in_dtype(1) == Some(DType::U32) => 2,
        B::SELECT_V2 => 1,
        B::ABS => match t0 {
            Some(DType::I32) => 5,
            _ => by_int8(1),
        },
        B::CAST => {
            let out = sig.outputs.first().map(|t| t.dtype);
            let either = |d: DType| t0 == Some(d) || out == Some(d);
            if either(DType::F64) || either(DType::F16) {
                5
            } else if either(DType::U16) {
                4
            } else if either(DType::I8) {
                3
            } else if either(DType::U32) {
                2
            } else {
                1
            }
        }
        B::RESIZE_BILINEAR => match &op.opts {
            Opts::Resize {
                half_pixel: true, ..
            } => 3,
            _ => by_int8(1),
        },
        B::RESIZE_NEAREST_NEIGHBOR => match &op.opts {
            Opts::Resize {
                half_pixel,
                align_corners,
            } if *half_pixel || *align_corners => 3,
            _ => by_int8(1),
        },
        B::RANGE if t0 == Some(DType::I64) => 2,
        B::RANGE => 1,
        B::BROADCAST_TO if matches!(t0, Some(DType::I8) | Some(DType::I16)) => 3,
        B::BROADCAST_TO => 2,
        B::DEQUANTIZE => match t0 {
            Some(DType::I16) | Some(DType::F16) => 3,
            Some(DType::I8) if sig.per_axis_input => 5,
            Some(DType::I8) => 2,
            _ => 1,
        },
        // op_version.cc: int16 output 2, per-channel 3, else (int8, uint8, requantize) 1.
        B::QUANTIZE => match sig.outputs.first().map(|t| t.dtype) {
            Some(DType::I16) => 2,
            _ => 1,
        },
        B::AVERAGE_POOL_2D
        | B::MAX_POOL_2D
        | B::SOFTMAX
        | B::MEAN
        | B::MIRROR_PAD
        | B::REDUCE_MAX
        | B::REDUCE_MIN
        | B::RELU6
        | B::RSQRT
        | B::RELU
        | B::TANH
        | B::LOGISTIC
        | B::SUM
        | B::LOG_SOFTMAX
        | B::GREATER
        | B::LESS
        | B::LESS_EQUAL
        | B::GREATER_EQUAL
        | B::EQUAL
        | B::NOT_EQUAL
        | B::SQUARED_DIFFERENCE
        | B::DEPTH_TO_SPACE
        | B::SPACE_TO_DEPTH
        | B::ARG_MAX
        | B::ARG_MIN
        | B::BATCH_MATMUL
        | B::TOPK_V2
        | B::GATHER_ND
        | B::GELU
        | B::EXP
        | B::LOG
        | B::REDUCE_PROD => by_int8(1),
        _ => 1,
    }
}

/// The first runtime that runs (op, version): TensorFlow's
/// `tensorflow/lite/tools/versioning/runtime_version.cc` (2.13+ table) for the builtins mdeploy
/// can emit; `None` when that table has no entry (TensorFlow then skips the op too).
pub fn runtime(code: B, v: i32) -> Option<&'static str> {
    Some(match (code, v) {
        (B::AVERAGE_POOL_2D, 1) => "1.5.0",
        (B::AVERAGE_POOL_2D, 2) => "1.14.0",
        (B::AVERAGE_POOL_2D, 3) => "2.3.0",
        (B::MAX_POOL_2D, 1) => "1.5.0",
        (B::MAX_POOL_2D, 2) => "1.14.0",
        (B::MAX_POOL_2D, 3) => "2.3.0",
        (B::BATCH_MATMUL, 1) => "2.3.0",
        (B::BATCH_MATMUL, 2) => "2.3.0",
        (B::BATCH_MATMUL, 3) => "2.4.0",
        (B::BATCH_MATMUL, 4) => "2.5.0",
        (B::BROADCAST_TO, 2) => "2.5.0",
        (B::BROADCAST_TO, 3) => "2.5.0",
        (B::CONV_2D, 1) => "1.5.0",
        (B::CONV_2D, 2) => "1.14.0",
        (B::CONV_2D, 3) => "1.14.0",
        (B::CONV_2D, 4) => "2.3.0",
        (B::CONV_2D, 5) => "2.4.0",
        (B::CONV_2D, 6) => "2.9.0",
        (B::DEPTHWISE_CONV_2D, 1) => "1.5.0",
        (B::DEPTHWISE_CONV_2D, 2) => "1.12.0",
        (B::DEPTHWISE_CONV_2D, 3) => "1.14.0",
        (B::DEPTHWISE_CONV_2D, 4) => "2.2.0",
        (B::DEPTHWISE_CONV_2D, 5) => "2.3.0",
        (B::DEPTHWISE_CONV_2D, 6) => "2.3.0",
        (B::ADD, 1) => "1.5.0",
        (B::ADD, 2) => "1.14.0",
        (B::ADD, 3) => "2.4.0",
        (B::ADD, 4) => "2.6.0",
        (B::SUB, 1) => "1.6.0",
        (B::SUB, 2) => "1.14.0",
        (B::SUB, 3) => "2.3.0",
        (B::SUB, 4) => "2.4.0",
        (B::SUB, 5) => "2.4.0",
        (B::DIV, 1) => "1.6.0",
        (B::DIV, 2) => "2.3.0",
        (B::CAST, 1) => "1.5.0",
        (B::CAST, 2) => "2.7.0",
        (B::CAST, 3) => "2.8.0",
        (B::CAST, 4) => "2.9.0",
        (B::CONCATENATION, 1) => "1.5.0",
        (B::CONCATENATION, 2) => "1.14.0",
        (B::CONCATENATION, 3) => "2.3.0",
        (B::DEPTH_TO_SPACE, 1) => "2.1.0",
        (B::DEPTH_TO_SPACE, 2) => "2.5.0",
        (B::EMBEDDING_LOOKUP, 1) => "1.13.0",
        (B::EMBEDDING_LOOKUP, 2) => "1.14.0",
        (B::EMBEDDING_LOOKUP, 3) => "1.14.0",
        (B::FULLY_CONNECTED, 1) => "1.5.0",
        (B::FULLY_CONNECTED, 2) => "1.10.0",
        (B::FULLY_CONNECTED, 3) => "1.14.0",
        (B::FULLY_CONNECTED, 4) => "1.14.0",
        (B::FULLY_CONNECTED, 5) => "2.0.0",
        (B::FULLY_CONNECTED, 6) => "2.1.0",
        (B::FULLY_CONNECTED, 7) => "2.3.0",
        (B::FULLY_CONNECTED, 8) => "2.3.0",
        (B::FULLY_CONNECTED, 9) => "2.3.0",
        (B::GATHER, 1) => "1.6.0",
        (B::GATHER, 2) => "1.14.0",
        (B::GATHER, 3) => "1.15.0",
        (B::GATHER, 4) => "2.4.0",
        (B::GATHER, 5) => "2.5.0",
        (B::GATHER_ND, 1) => "1.14.0",
        (B::GATHER_ND, 2) => "2.3.0",
        (B::GATHER_ND, 3) => "2.5.0",
        (B::L2_NORMALIZATION, 1) => "1.5.0",
        (B::L2_NORMALIZATION, 2) => "1.14.0",
        (B::MAXIMUM, 1) => "1.14.0",
        (B::MAXIMUM, 2) => "1.14.0",
        (B::MAXIMUM, 3) => "2.3.0",
        (B::MAXIMUM, 4) => "2.3.0",
        (B::MINIMUM, 1) => "1.14.0",
        (B::MINIMUM, 2) => "1.14.0",
        (B::MINIMUM, 3) => "2.3.0",
        (B::MINIMUM, 4) => "2.3.0",
        (B::MUL, 1) => "1.5.0",
        (B::MUL, 2) => "1.14.0",
        (B::MUL, 3) => "1.15.0",
        (B::MUL, 4) => "2.3.0",
        (B::MUL, 5) => "2.6.0",
        (B::PAD, 1) => "1.5.0",
        (B::PAD, 2) => "1.14.0",
        (B::PAD, 3) => "2.4.0",
        (B::PAD, 4) => "2.6.0",
        (B::PADV2, 1) => "1.9.0",
        (B::PADV2, 2) => "1.14.0",
        (B::PADV2, 3) => "2.4.0",
        (B::PADV2, 4) => "2.6.0",
        (B::TILE, 1) => "1.10.1",
        (B::TILE, 2) => "2.2.0",
        (B::TILE, 3) => "2.8.0",
        (B::RESHAPE, 1) => "1.5.0",
        (B::SOFTMAX, 1) => "1.5.0",
        (B::SOFTMAX, 2) => "1.14.0",
        (B::SOFTMAX, 3) => "2.3.0",
        (B::SPACE_TO_DEPTH, 1) => "1.5.0",
        (B::SPACE_TO_DEPTH, 2) => "1.14.0",
        (B::TRANSPOSE, 1) => "1.6.0",
        (B::TRANSPOSE, 2) => "1.14.0",
        (B::TRANSPOSE, 3) => "1.15.0",
        (B::TRANSPOSE, 4) => "2.3.0",
        (B::TRANSPOSE, 5) => "2.4.0",
        (B::TRANSPOSE, 6) => "2.12.0",
        (B::MEAN, 1) => "1.6.0",
        (B::MEAN, 2) => "1.14.0",
        (B::MEAN, 3) => "2.4.0",
        (B::SUM, 1) => "1.10.0",
        (B::SUM, 2) => "1.15.0",
        (B::REDUCE_MAX, 1) => "1.11.0",
        (B::REDUCE_MAX, 2) => "1.14.0",
        (B::REDUCE_MAX, 3) => "2.5.0",
        (B::REDUCE_MIN, 1) => "1.11.0",
        (B::REDUCE_MIN, 2) => "1.14.0",
        (B::REDUCE_MIN, 3) => "2.5.0",
        (B::REDUCE_PROD, 1) => "1.11.0",
        (B::REDUCE_PROD, 2) => "2.6.0",
        (B::RELU6, 1) => "1.5.0",
        (B::RELU6, 2) => "1.14.0",
        (B::RELU6, 3) => "2.5.0",
        (B::RESIZE_BILINEAR, 1) => "1.7.0",
        (B::RESIZE_BILINEAR, 2) => "1.14.0",
        (B::RESIZE_BILINEAR, 3) => "2.2.0",
        (B::RESIZE_BILINEAR, 4) => "2.5.0",
        (B::RESIZE_NEAREST_NEIGHBOR, 1) => "1.13.1",
        (B::RESIZE_NEAREST_NEIGHBOR, 2) => "1.14.0",
        (B::RESIZE_NEAREST_NEIGHBOR, 3) => "2.3.0",
        (B::RESIZE_NEAREST_NEIGHBOR, 4) => "2.4.0",
        (B::SPLIT, 1) => "1.5.0",
        (B::SPLIT, 2) => "1.14.0",
        (B::SPLIT, 3) => "1.14.0",
        (B::SPLIT, 4) => "2.3.0",
        (B::SPLIT_V, 1) => "1.13.1",
        (B::SPLIT_V, 2) => "2.3.0",
        (B::STRIDED_SLICE, 1) => "1.6.0",
        (B::STRIDED_SLICE, 2) => "1.14.0",
        (B::STRIDED_SLICE, 3) => "2.1.0",
        (B::STRIDED_SLICE, 4) => "2.2.0",
        (B::STRIDED_SLICE, 5) => "2.5.0",
        (B::STRIDED_SLICE, 6) => "2.6.0",
        (B::TOPK_V2, 1) => "1.7.0",
        (B::TOPK_V2, 2) => "1.14.0",
        (B::ARG_MAX, 1) => "1.9.0",
        (B::ARG_MAX, 2) => "1.14.0",
        (B::ARG_MAX, 3) => "2.9.0",
        (B::ARG_MIN, 1) => "1.9.0",
        (B::ARG_MIN, 2) => "1.14.0",
        (B::ARG_MIN, 3) => "2.9.0",
        (B::TRANSPOSE_CONV, 1) => "1.9.0",
        (B::TRANSPOSE_CONV, 2) => "2.2.0",
        (B::TRANSPOSE_CONV, 3) => "2.3.0",
        (B::TRANSPOSE_CONV, 4) => "2.13.0",
        (B::EXPAND_DIMS, 1) => "1.10.0",
        (B::PACK, 1) => "1.11.0",
        (B::PACK, 2) => "1.14.0",
        (B::PACK, 3) => "2.3.0",
        (B::SHAPE, 1) => "1.10.0",
        (B::WHILE, 1) => "1.15.0",
        (B::IF, 1) => "1.15.0",
        (B::SLICE, 1) => "1.14.0",
        (B::SLICE, 2) => "1.14.0",
        (B::SLICE, 3) => "1.14.0",
        (B::SLICE, 4) => "2.4.0",
        (B::SLICE, 5) => "2.5.0",
        (B::TANH, 1) => "1.14.0",
        (B::TANH, 2) => "1.14.0",
        (B::TANH, 3) => "2.3.0",
        (B::LOGISTIC, 1) => "1.14.0",
        (B::LOGISTIC, 2) => "1.14.0",
        (B::LOGISTIC, 3) => "2.3.0",
        (B::UNPACK, 1) => "1.11.0",
        (B::UNPACK, 2) => "1.14.0",
        (B::UNPACK, 3) => "2.2.0",
        (B::UNPACK, 4) => "2.3.0",
        (B::LEAKY_RELU, 1) => "1.13.1",
        (B::LEAKY_RELU, 2) => "2.3.0",
        (B::LOG_SOFTMAX, 1) => "1.14.0",
        (B::LOG_SOFTMAX, 2) => "1.14.0",
        (B::SQUARED_DIFFERENCE, 1) => "1.13.1",
        (B::SQUARED_DIFFERENCE, 2) => "2.5.0",
        (B::MIRROR_PAD, 1) => "1.13.1",
        (B::MIRROR_PAD, 2) => "2.3.0",
        (B::MIRROR_PAD, 3) => "2.12.0",
        (B::WHERE, 1) => "1.14.0",
        (B::WHERE, 2) => "2.8.0",
        (B::NON_MAX_SUPPRESSION_V4, 1) => "2.1.0",
        (B::CONV_3D, 1) => "2.4.0",
        (B::CONV_3D_TRANSPOSE, 1) => "2.5.0",
        (B::DEQUANTIZE, 1) => "1.13.1",
        (B::DEQUANTIZE, 2) => "1.14.0",
        (B::DEQUANTIZE, 3) => "1.15.0",
        (B::DEQUANTIZE, 4) => "2.2.0",
        (B::DEQUANTIZE, 5) => "2.7.0",
        (B::EQUAL, 1) => "1.14.0",
        (B::EQUAL, 2) => "1.14.0",
        (B::EQUAL, 3) => "2.3.0",
        (B::NOT_EQUAL, 1) => "1.14.0",
        (B::NOT_EQUAL, 2) => "1.14.0",
        (B::NOT_EQUAL, 3) => "2.3.0",
        (B::GREATER, 1) => "1.14.0",
        (B::GREATER, 2) => "1.14.0",
        (B::GREATER_EQUAL, 1) => "1.14.0",
        (B::GREATER_EQUAL, 2) => "1.14.0",
        (B::LESS, 1) => "1.14.0",
        (B::LESS, 2) => "1.14.0",
        (B::LESS_EQUAL, 1) => "1.14.0",
        (B::LESS_EQUAL, 2) => "1.14.0",
        (B::SCATTER_ND, 1) => "2.1.0",
        (B::SELECT, 1) => "1.14.0",
        (B::SELECT, 2) => "1.14.0",
        (B::SELECT, 3) => "2.12.0",
        (B::SELECT_V2, 1) => "2.2.0",
        (B::FLOOR_DIV, 1) => "1.14.0",
        (B::FLOOR_DIV, 2) => "1.14.0",
        (B::FLOOR, 1) => "1.9.0",
        (B::CEIL, 1) => "1.14.0",
        (B::ELU, 1) => "1.14.0",
        (B::QUANTIZE, 1) => "1.14.0",
        (B::QUANTIZE, 2) => "1.15.0",
        (B::QUANTIZE, 3) => "2.7.0",
        (B::ROUND, 1) => "1.14.0",
        (B::RELU, 1) => "1.5.0",
        (B::RELU, 2) => "2.1.0",
        (B::RELU, 3) => "2.5.0",
        (B::RELU_N1_TO_1, 1) => "1.5.0",
        (B::RELU_0_TO_1, 1) => "2.10.0",
        (B::PRELU, 1) => "1.8.0",
        (B::EXP, 1) => "1.7.0",
        (B::COS, 1) => "1.14.0",
        (B::NEG, 1) => "1.9.0",
        (B::POW, 1) => "1.10.0",
        (B::LOGICAL_OR, 1) => "1.11.0",
        (B::LOGICAL_AND, 1) => "1.11.0",
        (B::LOGICAL_NOT, 1) => "1.11.0",
        (B::FLOOR_MOD, 1) => "1.13.0",
        (B::RANGE, 1) => "1.13.0",
        (B::SIN, 1) => "1.9.0",
        (B::LOG, 1) => "1.14.0",
        (B::SQRT, 1) => "1.10.0",
        (B::RSQRT, 1) => "1.10.0",
        (B::RSQRT, 2) => "2.5.0",
        (B::SQUARE, 1) => "1.12.0",
        (B::ZEROS_LIKE, 1) => "1.12.0",
        (B::ABS, 1) => "1.13.0",
        (B::ABS, 2) => "2.4.0",
        (B::ABS, 3) => "2.5.0",
        (B::ABS, 4) => "2.6.0",
        (B::ABS, 5) => "2.12.0",
        (B::HARD_SWISH, 1) => "1.15.0",
        (B::FILL, 1) => "1.13.0",
        (B::FILL, 2) => "2.3.0",
        (B::FILL, 3) => "2.5.0",
        (B::FILL, 4) => "2.12.0",
        (B::REVERSE_V2, 1) => "1.14.0",
        (B::UNIDIRECTIONAL_SEQUENCE_LSTM, 1) => "1.13.1",
        (B::RNN, 1) => "1.5.0",
        (B::REVERSE_V2, 2) => "2.2.0",
        (B::REVERSE_V2, 3) => "2.5.0",
        (B::CUMSUM, 1) => "2.4.0",
        (B::GELU, 1) => "2.9.0",
        (B::GELU, 2) => "2.9.0",
        (B::ATAN2, 1) => "2.10.0",
        (B::SIGN, 1) => "2.11.0",
        (B::SIGN, 2) => "2.12.0",
        (B::ONE_HOT, 1) => "1.11.0",
        (B::REDUCE_ANY, 1) => "1.11.0",
        (B::REDUCE_ALL, 1) => "2.6.0",
        (B::BROADCAST_ARGS, 1) => "2.6.0",
        _ => return None,
    })
}

/// Compares dotted versions numerically (`1.10.0` > `1.9.0`).
pub fn later(a: &str, b: &str) -> bool {
    let parse = |s: &str| -> Vec<u32> { s.split('.').filter_map(|p| p.parse().ok()).collect() };
    parse(a) > parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_versions_compare_numerically() {
        assert!(later("1.10.0", "1.9.0"));
        assert!(!later("1.5.0", "1.14.0"));
        assert_eq!(runtime(B::GELU, 1), Some("2.9.0"));
        // Entries checked against runtime_version.cc (they were guesses before).
        assert_eq!(runtime(B::SIGN, 1), Some("2.11.0"));
        assert_eq!(runtime(B::TRANSPOSE, 6), Some("2.12.0"));
        assert_eq!(runtime(B::TRANSPOSE_CONV, 4), Some("2.13.0"));
        assert_eq!(runtime(B::BROADCAST_TO, 1), None);
        // The builtins of run-time operands (BROADCAST_ARGS for Expand, REDUCE_ANY/ALL for
        // boolean max/min and axis matching).
        assert_eq!(runtime(B::BROADCAST_ARGS, 1), Some("2.6.0"));
        assert_eq!(runtime(B::REDUCE_ANY, 1), Some("1.11.0"));
        assert_eq!(runtime(B::REDUCE_ALL, 1), Some("2.6.0"));
    }
}
