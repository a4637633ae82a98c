"""Helpers for `cargo xtask bench latency` (figures only, no assertions).

  build OUT_DIR NAME          (TensorFlow venv) a Keras application (mobilenetv2, efficientnetb0 or
                              resnet50), weights=None, seed 0, seeded batch-norm statistics, logits
                              out (no softmax), exported as the SavedModel OUT_DIR/NAME/saved_model;
                              OUT_DIR/NAME/input.npy (one sample), calib.npy (calibration samples)
                              and reference.npy (Keras's float logits of input.npy)
  held_out OUT_DIR NAME       (TensorFlow venv) OUT_DIR/NAME/eval.npy: samples neither timed nor
                              used for calibration, and eval_reference.npy: the SavedModel's float
                              outputs for them (TensorFlow, the source framework)
  tf_anchors OUT_DIR NAME     (TensorFlow venv) TFLiteConverter's float, float16, dynamic-range int8
                              and full-integer int8 (representative dataset: calib.npy) files, and
                              tf2onnx's float ONNX, as OUT_DIR/NAME/anchor_<mode>.{tflite,onnx}
  ort_anchors OUT_DIR NAME    (onnxruntime venv) onnxruntime.quantization of tf2onnx's model:
                              quantize_dynamic (int8 weights) and quantize_static (QDQ, per-channel
                              int8 weights, calib.npy) as anchor_dynamic.onnx / anchor_int8.onnx
  time RUNTIME INPUT.npy RUNS MODEL...
                              (LiteRT/onnxruntime venv) RUNTIME is litert or onnxruntime: loads each
                              model on one thread, then RUNS rounds in which every model runs once
                              (after two warm-up rounds), so that all see the same machine load;
                              prints per model i `i median_ms`, `i min_ms`, `i p25_ms`, `i p75_ms`, and over the
                              held-out samples next to INPUT.npy `i max_rel` (largest
                              |y - reference| over max |reference| of a sample) and `i top1`
                              (samples whose argmax is the reference's, `k/n`), `i pieces` (LiteRT: XNNPACK partitions / the
                              model's ops; onnxruntime: nodes after its graph optimization) and `i ops` (op counts after delegation/optimization)
"""

import os
import sys
import time

BUILD = {
    # name: (constructor, input range): each network's own preprocessing range, so that the
    # quantized activations see the values they would in use.
    "mobilenetv2": ("MobileNetV2", (-1.0, 1.0)),
    "efficientnetb0": ("EfficientNetB0", (0.0, 255.0)),
    "resnet50": ("ResNet50", (-120.0, 150.0)),
}
CALIBRATION_SAMPLES = 8
HELD_OUT_SAMPLES = 8


def build(out_dir, name):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    from bench_tflite import seed_batch_norms

    ctor, (lo, hi) = BUILD[name]
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, ctor)(weights=None, classifier_activation=None)
    rng = np.random.default_rng(0)
    seed_batch_norms(keras, model, rng)
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    model.export(os.path.join(d, "saved_model"), verbose=False)
    shape = (1, 224, 224, 3)
    x = rng.uniform(lo, hi, shape).astype("float32")
    calib = rng.uniform(lo, hi, (CALIBRATION_SAMPLES,) + shape[1:]).astype("float32")
    np.save(os.path.join(d, "input.npy"), x)
    np.save(os.path.join(d, "calib.npy"), calib)
    np.save(os.path.join(d, "reference.npy"), model(x).numpy())
    print(f"{name} built")


def held_out(out_dir, name):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    _, (lo, hi) = BUILD[name]
    d = os.path.join(out_dir, name)
    rng = np.random.default_rng(1)
    x = rng.uniform(lo, hi, (HELD_OUT_SAMPLES, 224, 224, 3)).astype("float32")
    serve = tf.saved_model.load(os.path.join(d, "saved_model")).signatures["serving_default"]
    ys = []
    for i in range(HELD_OUT_SAMPLES):
        out = serve(tf.constant(x[i : i + 1]))
        ys.append(next(iter(out.values())).numpy())
    np.save(os.path.join(d, "eval.npy"), x)
    np.save(os.path.join(d, "eval_reference.npy"), np.concatenate(ys))
    print(f"{name} held-out samples written")


def tf_anchors(out_dir, name):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    d = os.path.join(out_dir, name)
    saved = os.path.join(d, "saved_model")
    calib = np.load(os.path.join(d, "calib.npy"))

    def representative():
        for i in range(calib.shape[0]):
            yield [calib[i : i + 1]]

    for mode in ("float", "float16", "dynamic", "int8"):
        out = os.path.join(d, f"anchor_{mode}.tflite")
        if os.path.exists(out):
            continue
        conv = tf.lite.TFLiteConverter.from_saved_model(saved)
        if mode != "float":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            conv.target_spec.supported_types = [tf.float16]
        if mode == "int8":
            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        data = conv.convert()
        with open(out, "wb") as f:
            f.write(data)
    out = os.path.join(d, "anchor_float.onnx")
    if not os.path.exists(out):
        import subprocess

        subprocess.run(
            [sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved, "--output", out,
             "--opset", "17"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    print(f"{name} anchors written")


def ort_anchors(out_dir, name):
    import numpy as np
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)

    d = os.path.join(out_dir, name)
    src = os.path.join(d, "anchor_float.onnx")
    calib = np.load(os.path.join(d, "calib.npy"))
    input_name = onnx.load(src, load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= calib.shape[0]:
                return None
            self.i += 1
            return {input_name: calib[self.i - 1 : self.i]}

    dynamic = os.path.join(d, "anchor_dynamic.onnx")
    if not os.path.exists(dynamic):
        quantize_dynamic(src, dynamic, weight_type=QuantType.QInt8)
    static = os.path.join(d, "anchor_int8.onnx")
    if not os.path.exists(static):
        quantize_static(src, static, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    print(f"{name} onnxruntime anchors written")


def load_litert(path, x):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=1)
    detail = it.get_input_details()[0]
    if tuple(detail["shape"]) != x.shape:
        it.resize_tensor_input(detail["index"], list(x.shape), strict=False)
    it.allocate_tensors()
    index = it.get_input_details()[0]["index"]
    out = it.get_output_details()[0]["index"]

    def run(data=x):
        it.set_tensor(index, data)
        it.invoke()
        return it.get_tensor(out)

    counts = {}
    for op in it._get_ops_details():
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    # The node list holds the model's ops and one DELEGATE node per XNNPACK partition.
    delegated = counts.get("DELEGATE", 0)
    ops = sum(counts.values()) - delegated
    return run, f"{delegated}/{ops}", counts


def load_onnxruntime(path, x, scratch):
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.optimized_model_filepath = scratch
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    counts = {}
    for node in onnx.load(scratch, load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return (lambda data=x: sess.run(None, {name: data})[0]), str(sum(counts.values())), counts


def timing(runtime, input_path, runs, models):
    import tempfile

    import numpy as np

    # One core for the whole run: the runtimes' single threads never migrate between cores.
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    x = np.load(input_path)
    loaded = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, m in enumerate(models):
            if runtime == "litert":
                loaded.append(load_litert(m, x) + ([],))
            else:
                loaded.append(load_onnxruntime(m, x, os.path.join(tmp, f"{i}.onnx")) + ([],))
    for k in range(runs + 2):
        for run, _, _, times in loaded:
            t = time.perf_counter()
            run()
            if k >= 2:
                times.append(time.perf_counter() - t)
    d = os.path.dirname(input_path)
    held = np.load(os.path.join(d, "eval.npy"))
    held_ref = np.load(os.path.join(d, "eval_reference.npy")).astype("float64")
    for i, (run, pieces, counts, times) in enumerate(loaded):
        # Accuracy over the held-out samples, one at a time (the files are built for batch 1).
        worst, agree = 0.0, 0
        for k in range(held.shape[0]):
            y = np.asarray(run(held[k : k + 1])).astype("float64").reshape(held_ref[k : k + 1].shape)
            r = held_ref[k : k + 1]
            worst = max(worst, np.abs(y - r).max() / max(np.abs(r).max(), 1e-30))
            agree += int(y.argmax() == r.argmax())
        times.sort()
        print(f"{i} median_ms {1000 * times[len(times) // 2]:.4f}")
        print(f"{i} min_ms {1000 * times[0]:.4f}")
        print(f"{i} p25_ms {1000 * times[len(times) // 4]:.4f}")
        print(f"{i} p75_ms {1000 * times[(3 * len(times)) // 4]:.4f}")
        print(f"{i} max_rel {worst:.4e}")
        print(f"{i} top1 {agree}/{held.shape[0]}")
        print(f"{i} pieces {pieces}")
        print(f"{i} ops " + " ".join(f"{k}x{v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "build":
        build(*args)
    elif cmd == "held_out":
        held_out(*args)
    elif cmd == "tf_anchors":
        tf_anchors(*args)
    elif cmd == "ort_anchors":
        ort_anchors(*args)
    elif cmd == "time":
        timing(args[0], args[1], int(args[2]), args[3:])
    else:
        sys.exit(f"unknown command {cmd}")
