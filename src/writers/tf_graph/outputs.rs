//! Inside a `FunctionDef` (loop and branch bodies), TF names a node's output by its op's output
//! argument (`node:z:0`, `node:output:2`), not by position as a graph does (`node:2`); TF.js
//! takes either. This table holds the output-argument names of the ops the builder writes, read
//! from TensorFlow 2.21's op registry (`op_def_registry.get(op).output_arg`); an op missing
//! from it has the one list-or-tensor argument `output` (Const, Identity, Reshape, ConcatV2,
//! SplitV, StatelessWhile, StatelessIf, …).

const OUTPUT_ARGS: &[(&str, &[&str])] = &[
    ("Abs", &["y"]),
    ("Acos", &["y"]),
    ("Acosh", &["y"]),
    ("AddV2", &["z"]),
    ("Asin", &["y"]),
    ("Asinh", &["y"]),
    ("Atan", &["y"]),
    ("Atanh", &["y"]),
    ("BroadcastArgs", &["r0"]),
    ("Cast", &["y"]),
    ("Ceil", &["y"]),
    ("Cos", &["y"]),
    ("Cosh", &["y"]),
    ("Cumsum", &["out"]),
    ("Elu", &["activations"]),
    ("Equal", &["z"]),
    ("Erf", &["y"]),
    ("Exp", &["y"]),
    ("Floor", &["y"]),
    ("FloorDiv", &["z"]),
    ("FloorMod", &["z"]),
    ("Greater", &["z"]),
    ("GreaterEqual", &["z"]),
    ("IsNan", &["y"]),
    ("LeakyRelu", &["activations"]),
    ("Less", &["z"]),
    ("LessEqual", &["z"]),
    ("Log", &["y"]),
    ("LogSoftmax", &["logsoftmax"]),
    ("LogicalAnd", &["z"]),
    ("LogicalNot", &["y"]),
    ("LogicalOr", &["z"]),
    ("MatMul", &["product"]),
    ("MatrixBandPart", &["band"]),
    ("Maximum", &["z"]),
    ("Minimum", &["z"]),
    ("Mul", &["z"]),
    ("Neg", &["y"]),
    ("NotEqual", &["z"]),
    ("Pow", &["z"]),
    ("RealDiv", &["z"]),
    ("Reciprocal", &["y"]),
    ("Relu", &["activations"]),
    ("Relu6", &["activations"]),
    ("ResizeBilinear", &["resized_images"]),
    ("ResizeNearestNeighbor", &["resized_images"]),
    ("Round", &["y"]),
    ("Rsqrt", &["y"]),
    ("Sigmoid", &["y"]),
    ("Sign", &["y"]),
    ("Sin", &["y"]),
    ("Sinh", &["y"]),
    ("Softmax", &["softmax"]),
    ("Softplus", &["activations"]),
    ("Sqrt", &["y"]),
    ("Square", &["y"]),
    ("SquaredDifference", &["z"]),
    ("Sub", &["z"]),
    ("Tan", &["y"]),
    ("Tanh", &["y"]),
    ("TopKV2", &["values", "indices"]),
    ("Transpose", &["y"]),
    ("Where", &["index"]),
];

/// Output `k` of an `op` node as a function body refers to it: `arg:index`.
pub fn function_ref(op: &str, k: usize) -> String {
    match OUTPUT_ARGS.iter().find(|(o, _)| *o == op) {
        // Several single-tensor arguments (TopKV2): output k is argument k.
        Some((_, args)) if args.len() > 1 => format!("{}:0", args.get(k).unwrap_or(&"output")),
        Some((_, args)) => format!("{}:{k}", args[0]),
        None => format!("output:{k}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_named_by_argument() {
        assert_eq!(function_ref("AddV2", 0), "z:0");
        assert_eq!(function_ref("TopKV2", 1), "indices:0");
        assert_eq!(function_ref("SplitV", 2), "output:2");
        // Sorted, so a duplicate or a typo shows in review.
        assert!(OUTPUT_ARGS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
