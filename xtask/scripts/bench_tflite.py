"""Helpers for `cargo xtask bench`'s TFLite section (figures only, no assertions).

  build OUT_DIR               (TensorFlow venv) full-size MobileNetV2, weights=None, seed 0, as
                              OUT_DIR/mobilenetv2.keras and the SavedModel OUT_DIR/mobilenetv2_savedmodel
                              (Keras 3 `model.export`), plus OUT_DIR/mobilenetv2_input.npy
  convert SRC OUT.tflite      (TensorFlow venv) tf.lite.TFLiteConverter on a .keras file or a
                              SavedModel folder, default options (float32, builtins only)
  time MODEL.tflite INPUT.npy RUNS OUTPUT.npy
                              (LiteRT venv) median and min latency of RUNS invocations on one
                              thread after two warm-up runs; prints `median_ms`, `min_ms`,
                              `op_total` and `ops` lines; saves the first output to OUTPUT.npy
  diff A.npy B.npy            (LiteRT venv) prints the largest absolute difference
"""

import os
import sys
import time


def build(out_dir):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None)
    keras_path = os.path.join(out_dir, "mobilenetv2.keras")
    saved = os.path.join(out_dir, "mobilenetv2_savedmodel")
    model.save(keras_path)
    model.export(saved, verbose=False)
    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    np.save(os.path.join(out_dir, "mobilenetv2_input.npy"), x)


def convert(src, out):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if os.path.isdir(src):
        conv = tf.lite.TFLiteConverter.from_saved_model(src)
    else:
        import keras

        conv = tf.lite.TFLiteConverter.from_keras_model(keras.models.load_model(src))
    data = conv.convert()
    with open(out, "wb") as f:
        f.write(data)


def timing(model, input_path, runs, save):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    x = np.load(input_path)
    it = Interpreter(model_path=model, num_threads=1)
    detail = it.get_input_details()[0]
    if tuple(detail["shape"]) != x.shape:
        it.resize_tensor_input(detail["index"], list(x.shape), strict=False)
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    out = it.get_output_details()[0]["index"]
    times = []
    for k in range(runs + 2):
        it.set_tensor(detail["index"], x)
        t = time.perf_counter()
        it.invoke()
        if k >= 2:
            times.append(time.perf_counter() - t)
    y = it.get_tensor(out)
    times.sort()
    counts = {}
    for op in it._get_ops_details():
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    np.save(save, y)
    print(f"median_ms {1000 * times[len(times) // 2]:.4f}")
    print(f"min_ms {1000 * times[0]:.4f}")
    print(f"op_total {sum(counts.values())}")
    print("ops " + " ".join(f"{k}x{v}" for k, v in sorted(counts.items())))


def diff(a, b):
    import numpy as np

    print(f"max_abs {float(np.abs(np.load(a) - np.load(b)).max()):.6e}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "build":
        build(*args)
    elif cmd == "convert":
        convert(*args)
    elif cmd == "time":
        timing(args[0], args[1], int(args[2]), args[3])
    elif cmd == "diff":
        diff(*args)
    else:
        sys.exit(f"unknown command {cmd}")
