#!/usr/bin/env python3
"""TensorFlow side of the SavedModel targets, run with the TF venv's Python
(`.cache/conformance/tfvenv`, conformance/requirements-tf.txt) as one long-lived process, so
TensorFlow is imported once for all fixtures. targets.py starts it and sends one JSON request
per line on stdin; each gets one JSON line back on stdout:

- `{"op": "run", "model": DIR, "inputs": [NPY...], "out": DIR}`: `tf.saved_model.load` and the
  `serving_default` signature called with the inputs (by the order of the graph's Placeholders,
  which mdeploy writes in the source's input order); outputs saved as `out/output_<i>.npy`, in
  the order of the graph's output nodes. Reply `{"outputs": n}`.
- `{"op": "convert", "model": DIR, "to": "tflite"|"tfjs"|"onnx", "out": PATH}`: the SavedModel
  converted by TFLiteConverter, tensorflowjs_converter (its Python API) or tf2onnx (its CLI,
  in a child process). Reply `{"ok": true}`.

Errors reply `{"error": "..."}`. Anything TensorFlow prints goes to stderr.
"""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# Replies go to the original stdout; stray prints of TensorFlow or the converters to stderr.
REPLY = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)

# tensorflowjs is installed without its dependencies (they pin other TensorFlow versions);
# these are only imported by converter paths a SavedModel does not take.
for _m in ("tensorflow_decision_forests", "tensorflow_hub", "jax", "jax.experimental",
           "jax.experimental.jax2tf"):
    sys.modules.setdefault(_m, types.ModuleType(_m))
sys.modules["jax"].monitoring = types.SimpleNamespace(record_scalar=lambda *a, **k: None)
sys.modules["jax.experimental"].jax2tf = sys.modules["jax.experimental.jax2tf"]

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402

tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(1)

SIGNATURE = "serving_default"


def io_order(model: Path) -> tuple[list[str], list[str]]:
    """The signature's input and output keys in the order of their nodes in the graph."""
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((model / "saved_model.pb").read_bytes())
    mg = sm.meta_graphs[0]
    position = {n.name: i for i, n in enumerate(mg.graph_def.node)}
    sig = mg.signature_def[SIGNATURE]

    def ordered(infos) -> list[str]:
        return sorted(infos, key=lambda k: position.get(infos[k].name.split(":")[0], 1 << 30))

    return ordered(sig.inputs), ordered(sig.outputs)


def cast(x: np.ndarray, want: tf.DType, key: str) -> np.ndarray:
    """Integers go in at the signature's width when every value fits (mdeploy writes the
    integers of a TF graph as int32, as TF.js does)."""
    want = np.dtype(want.as_numpy_dtype)
    if x.dtype == want:
        return x
    if x.dtype.kind in "iu" and want.kind in "iu":
        info = np.iinfo(want)
        if x.size == 0 or (x.min() >= info.min and x.max() <= info.max):
            return x.astype(want)
    raise ValueError(f"input '{key}' is {want} in the model, {x.dtype} in the case")


def run(req: dict) -> dict:
    model = Path(req["model"])
    fn = tf.saved_model.load(str(model)).signatures[SIGNATURE]
    in_keys, out_keys = io_order(model)
    if len(in_keys) != len(req["inputs"]):
        raise ValueError(f"signature has {len(in_keys)} inputs, the case has {len(req['inputs'])}")
    specs = fn.structured_input_signature[1]
    feed = {}
    for key, path in zip(in_keys, req["inputs"]):
        feed[key] = tf.constant(cast(np.load(path), specs[key].dtype, key))
    got = fn(**feed)
    out = Path(req["out"])
    for i, key in enumerate(out_keys):
        np.save(out / f"output_{i}.npy", got[key].numpy())
    return {"outputs": len(out_keys)}


def convert(req: dict) -> dict:
    model, out, to = req["model"], req["out"], req["to"]
    if to == "tflite":
        data = tf.lite.TFLiteConverter.from_saved_model(model).convert()
        Path(out).write_bytes(data)
    elif to == "tfjs":
        from tensorflowjs.converters import tf_saved_model_conversion_v2 as tfjs_saved

        tfjs_saved.convert_tf_saved_model(
            model, out, signature_def=SIGNATURE, saved_model_tags="serve"
        )
    elif to == "onnx":
        done = subprocess.run(
            [sys.executable, "-m", "tf2onnx.convert", "--saved-model", model,
             "--signature_def", SIGNATURE, "--output", out],
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            tail = [ln for ln in done.stderr.splitlines() if ln.strip()][-3:]
            raise RuntimeError("tf2onnx: " + " | ".join(tail))
    else:
        raise ValueError(f"unknown converter target '{to}'")
    return {"ok": True}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            reply = {"run": run, "convert": convert}[req["op"]](req)
        except Exception as err:  # reported to the case; the worker goes on
            text = f"{type(err).__name__}: {err}".strip().splitlines()
            reply = {"error": text[0][:400] if text else type(err).__name__}
        REPLY.write(json.dumps(reply) + "\n")
        REPLY.flush()


if __name__ == "__main__":
    main()
