"""The real runtimes of each mdeploy target.

A target is the file name `mdeploy convert --to <name> -o` gets plus one function
`run(path, inputs) -> outputs` that loads what mdeploy wrote into the runtime the target is for
and runs it; inputs and outputs are matched by position. Adding a target is one function and one
line in TARGETS; it is exercised once it is named in `--targets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from common import CaseError

Runner = Callable[[Path, list], list]


@dataclass(frozen=True)
class Target:
    name: str
    out_name: str  # what `-o` is given, inside a fresh directory
    run: Runner


# `<repo>/.cache/conformance/node/node_modules`, set by run.py; for the TF.js runner.
NODE_MODULES: Path | None = None


def ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # cases run two at a time on a 2-core machine
    options.inter_op_num_threads = 1
    # Silent: a runtime error reaches us as an exception and lands in the report; ORT would
    # also log it (and warnings about unused initializers) on stderr.
    ort.set_default_logger_severity(4)
    options.log_severity_level = 4
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(path: Path, inputs: list) -> list:
    """onnxruntime (CPU); inputs by position of the session's inputs (initializers excluded)."""
    session = ort_session(path)
    names = [i.name for i in session.get_inputs()]
    if len(names) != len(inputs):
        raise CaseError(f"model has {len(names)} inputs, the case has {len(inputs)}")
    return session.run(None, dict(zip(names, inputs)))


def run_tflite(path: Path, inputs: list) -> list:
    """LiteRT (`ai_edge_litert`). Inputs and outputs follow the subgraph's order, which is what
    `get_input_details()` lists and the order mdeploy writes the graph's inputs in; signature
    runners are not used because LiteRT lists a signature's inputs sorted by name."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    details = interpreter.get_input_details()
    if len(details) != len(inputs):
        raise CaseError(f"model has {len(details)} inputs, the case has {len(inputs)}")
    for detail, x in zip(details, inputs):
        if tuple(detail["shape"]) != np.shape(x):
            interpreter.resize_tensor_input(detail["index"], list(np.shape(x)), strict=False)
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], _cast_input(np.asarray(x), detail))
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def tflite_op_counts(path: Path) -> dict[str, int]:
    """Builtin operator names in a .tflite (as LiteRT lists them) and how often each occurs."""
    from ai_edge_litert.interpreter import Interpreter

    counts: dict[str, int] = {}
    for op in Interpreter(model_path=str(path), num_threads=1)._get_ops_details():
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return dict(sorted(counts.items()))


def _cast_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """TFLite often has int32 where the source had int64: cast integers when every value fits;
    any other dtype difference is the converter's fault and reported."""
    want = np.dtype(detail["dtype"])
    if x.dtype == want:
        return x
    if x.dtype.kind in "iu" and want.kind in "iu":
        info = np.iinfo(want)
        if x.size == 0 or (x.min() >= info.min and x.max() <= info.max):
            return x.astype(want)
    raise CaseError(f"input '{detail['name']}' is {want} in the model, {x.dtype} in the case")


# tflite and tfjs join `--targets`' default when their writers land. A TF.js runner will be a
# small Node script next to this file that loads `out_tfjs/model.json` with the @tensorflow/tfjs
# in NODE_MODULES (reading the shards through tf.io.fromMemory) and prints outputs as .npy files:
#     Target("tfjs", "out_tfjs", run_tfjs),
TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target("onnx", "out.onnx", run_onnx),
        Target("tflite", "out.tflite", run_tflite),
    ]
}
