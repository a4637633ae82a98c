"""Builds the benchmark's large ONNX model: a PyTorch-style MLP (Gemm with transB=1, as
torch.onnx.export writes nn.Linear) with >= 100 MB of float32 weights. Deterministic (seed 0).

usage: python make_big_onnx.py OUT.onnx [WIDTH] [LAYERS]
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    out = sys.argv[1]
    width = int(sys.argv[2]) if len(sys.argv) > 2 else 2304
    layers = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    x = "input"
    for i in range(layers):
        w = (rng.standard_normal((width, width), dtype=np.float32) / np.sqrt(width)).astype(np.float32)
        b = np.zeros(width, dtype=np.float32)
        inits += [numpy_helper.from_array(w, f"fc{i}.weight"), numpy_helper.from_array(b, f"fc{i}.bias")]
        y = f"fc{i}_out"
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [y], name=f"fc{i}", transB=1))
        x = f"relu{i}_out" if i < layers - 1 else "output"
        nodes.append(helper.make_node("Relu", [y], [x], name=f"relu{i}"))
    graph = helper.make_graph(
        nodes,
        "big_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, out)
    print(f"{out}: {sum(t.raw_data.__len__() for t in inits) / 1e6:.1f} MB of weights")


if __name__ == "__main__":
    main()
