"""The real runtimes of each mdeploy target.

A target is the file name `mdeploy convert --to <name> -o` gets plus one function
`run(path, inputs) -> outputs` that loads what mdeploy wrote into the runtime the target is for
and runs it; inputs and outputs are matched by position. Adding a target is one function and one
line in TARGETS; it is exercised once it is named in `--targets`.
"""

from __future__ import annotations

import json
import os
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
    to: str = ""  # `--to` (default: the name)
    convert_args: tuple[str, ...] = ()  # more `convert` flags (e.g. --int8)
    tolerance: float | None = None  # rel tolerance (default common.REL_TOL)
    # Fixture ids this target runs on (None: all); quantized variants run on a few.
    fixtures: tuple[str, ...] | None = None
    # Report the size of the weights against float32 (quantized variants).
    size_ratio: bool = False
    # Whether the quantized (quantized.py) and optimized (variants.py) forms run on it too. Not
    # for SavedModels: they are written float (mdeploy refuses --int8/--float16 for them).
    variants: bool = True

    @property
    def to_format(self) -> str:
        return self.to or self.name

    def applies_to(self, fixture_id: str) -> bool:
        return self.fixtures is None or fixture_id in self.fixtures


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
    return [_output(interpreter, d) for d in interpreter.get_output_details()]


def _output(interpreter, detail: dict) -> np.ndarray:
    """An output tensor; LiteRT's Python binding refuses to hand out one with no elements
    ("Invalid tensor size"), whose shape it still reports."""
    shape = tuple(int(d) for d in detail["shape"])
    if 0 in shape:
        return np.zeros(shape, dtype=detail["dtype"])
    return interpreter.get_tensor(detail["index"])


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


TFJS_RUNNER = Path(__file__).resolve().parent / "tfjs_run.js"
TFJS_TIMEOUT = 300.0


def run_tfjs(path: Path, inputs: list) -> list:
    """@tensorflow/tfjs 4.22 in Node (pure-JS CPU backend) through tfjs_run.js: the folder is
    loaded with tf.loadLayersModel or tf.loadGraphModel (by model.json's `format`) via an IO
    handler reading the shards; inputs and outputs go through .npy files."""
    import subprocess
    import tempfile

    if NODE_MODULES is None or not (NODE_MODULES / "@tensorflow" / "tfjs").is_dir():
        raise CaseError(f"@tensorflow/tfjs is not installed in {NODE_MODULES}")
    with tempfile.TemporaryDirectory(prefix="tfjs-io-", dir=path.parent) as tmp:
        io = Path(tmp)
        files = []
        for i, x in enumerate(inputs):
            files.append(io / f"input_{i}.npy")
            # np.array, not np.ascontiguousarray: that one makes a 0-d input 1-D.
            np.save(files[-1], np.array(x, order="C"))
        env = dict(os.environ, NODE_PATH=str(NODE_MODULES))
        try:
            proc = subprocess.run(
                ["node", str(TFJS_RUNNER), str(path), str(io), *map(str, files)],
                capture_output=True,
                text=True,
                timeout=TFJS_TIMEOUT,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CaseError(f"tfjs runner timed out after {TFJS_TIMEOUT:.0f} s") from None
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("tfjs:")]
            raise CaseError((lines[-1] if lines else proc.stderr.strip()[-300:]) or "node failed")
        described = json.loads(proc.stdout.strip().splitlines()[-1])["outputs"]
        return [np.load(io / f"output_{i}.npy") for i in range(len(described))]


# The TF venv's interpreter (`<repo>/.cache/conformance/tfvenv/bin/python`), set by run.py; for
# the SavedModel targets, whose runtime is TensorFlow itself.
TF_PYTHON: Path | None = None
TF_WORKER = Path(__file__).resolve().parent / "tf_worker.py"
TF_TIMEOUT = 600.0


class TfWorker:
    """One tf_worker.py process for the whole run (importing TensorFlow takes seconds), started
    on first use; requests from the case threads take turns."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.proc = None

    def ask(self, request: dict) -> dict:
        import atexit
        import subprocess

        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                if TF_PYTHON is None or not TF_PYTHON.is_file():
                    raise CaseError(f"TensorFlow is not installed ({TF_PYTHON} is missing)")
                self.proc = subprocess.Popen(
                    [str(TF_PYTHON), str(TF_WORKER)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                atexit.register(self.proc.kill)
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise CaseError("the TensorFlow worker died")
        reply = json.loads(line)
        if "error" in reply:
            raise CaseError(f"tensorflow: {reply['error']}")
        return reply


TF = TfWorker()


def run_saved_model(path: Path, inputs: list) -> list:
    """TensorFlow 2.21: `tf.saved_model.load`, the `serving_default` signature (tf_worker.py)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tf-io-", dir=path.parent) as tmp:
        io = Path(tmp)
        files = []
        for i, x in enumerate(inputs):
            files.append(str(io / f"input_{i}.npy"))
            np.save(files[-1], np.array(x, order="C"))
        n = TF.ask({"op": "run", "model": str(path), "inputs": files, "out": str(io)})["outputs"]
        return [np.load(io / f"output_{i}.npy") for i in range(n)]


def converted_by(to: str, out_name: str, runner: Runner) -> Runner:
    """A runner for the SavedModel mdeploy wrote, converted first by TensorFlow's own converter
    to `to` (TFLiteConverter, tensorflowjs_converter, tf2onnx) and run in that format's runtime:
    the SavedModel is accepted as their input."""

    def run(path: Path, inputs: list) -> list:
        converted = path.parent / out_name
        TF.ask({"op": "convert", "model": str(path), "to": to, "out": str(converted)})
        return runner(converted, inputs)

    return run


def output_size(path: Path) -> int:
    """Bytes of an output: the file, or every file of a folder (TF.js: model.json + shards)."""
    if path.is_dir():
        return sum(f.stat().st_size for f in sorted(path.rglob("*")) if f.is_file())
    return path.stat().st_size


def output_bytes(path: Path) -> bytes:
    """An output's content for compressing: the file, or a folder's files in name order."""
    if path.is_dir():
        return b"".join(f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file())
    return path.read_bytes()


def base_targets(targets: list[Target]) -> list[Target]:
    """The targets without flags of their own (tfjs-int8 and tfjs-float16 are quantized forms
    already) that take variants: the ones quantized and optimized variants add their flags to."""
    return [t for t in targets if not t.convert_args and t.variants]


def tfjs_weight_ratio(folder: Path) -> float | None:
    """Bytes of the shards over what the same weights take unquantized (float32/int32: 4
    bytes an element, bool: 1), from model.json's manifest."""
    try:
        manifest = json.loads((folder / "model.json").read_text())["weightsManifest"]
    except (OSError, ValueError, KeyError):
        return None
    unquantized = 0
    stored = 0
    for group in manifest:
        for w in group["weights"]:
            n = int(np.prod(w["shape"], dtype=np.int64))
            unquantized += n * (1 if w["dtype"] == "bool" else 4)
        stored += sum((folder / p).stat().st_size for p in group["paths"])
    return stored / unquantized if unquantized else None


# Fixtures the quantized TF.js variants run on: convolutional, dense and attention models from
# each reader.
TFJS_QUANT_FIXTURES = (
    "onnx/cnn_bn",
    "onnx/mlp",
    "onnx/tf2onnx_mobilenetv2",
    "saved_model/keras_cnn_export",
    "saved_model/tfkeras_mlp_save",
    "keras/resnet_block/model.keras",
    "keras/dense_mlp/model.h5",
    "tf_keras/conv2d",
)
# Fixtures whose SavedModel is also converted by TensorFlow's converters (a CNN).
SAVED_MODEL_CONVERTER_FIXTURES = ("onnx/cnn_bn",)

# Tolerances of the quantized variants, from the storage error of each weight: uint8 affine
# rounds to within half a step, range/510 ≈ 2.0e-3 of a tensor's range; float16 to within 2^-11
# ≈ 4.9e-4 relative. The errors of many weights add up through a layer (partly cancelling) and
# through the layers: 10× the per-weight bound leaves room for that (the fixtures stay within
# 4.5× for uint8, 0.6× for float16) and still fails a loader that dequantizes wrongly, which
# is off by whole ranges.
TFJS_INT8_TOL = 2e-2
TFJS_FLOAT16_TOL = 5e-3
# uint16: half a step is range/131070 ≈ 7.6e-6; 10× that, rounded up.
TFJS_UINT16_TOL = 1e-4

TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target("onnx", "out.onnx", run_onnx),
        Target("tflite", "out.tflite", run_tflite),
        Target("tfjs", "out_tfjs", run_tfjs),
        Target("saved_model", "out_saved_model", run_saved_model, variants=False),
        *[
            Target(
                f"saved_model-{by}",
                "out_saved_model",
                converted_by(to, out, runner),
                to="saved_model",
                fixtures=SAVED_MODEL_CONVERTER_FIXTURES,
                variants=False,
            )
            for by, to, out, runner in [
                ("tflite_converter", "tflite", "by_converter.tflite", run_tflite),
                ("tfjs_converter", "tfjs", "by_converter_tfjs", run_tfjs),
                ("tf2onnx", "onnx", "by_converter.onnx", run_onnx),
            ]
        ],
        Target(
            "tfjs-int8",
            "out_tfjs",
            run_tfjs,
            to="tfjs",
            convert_args=("--int8",),
            tolerance=TFJS_INT8_TOL,
            fixtures=TFJS_QUANT_FIXTURES,
            size_ratio=True,
        ),
        Target(
            "tfjs-uint16",
            "out_tfjs",
            run_tfjs,
            to="tfjs",
            convert_args=("--quantize-uint16",),
            tolerance=TFJS_UINT16_TOL,
            fixtures=TFJS_QUANT_FIXTURES,
            size_ratio=True,
        ),
        Target(
            "tfjs-float16",
            "out_tfjs",
            run_tfjs,
            to="tfjs",
            convert_args=("--float16",),
            tolerance=TFJS_FLOAT16_TOL,
            fixtures=TFJS_QUANT_FIXTURES,
            size_ratio=True,
        ),
    ]
}
