"""Helpers for `cargo xtask bench`'s TFLite section (figures only, no assertions).

  build OUT_DIR               (TensorFlow venv) full-size MobileNetV2, weights=None, seed 0, as
                              OUT_DIR/mobilenetv2.keras and the SavedModel OUT_DIR/mobilenetv2_savedmodel
                              (Keras 3 `model.export`), plus OUT_DIR/mobilenetv2_input.npy
  convert SRC OUT.tflite      (TensorFlow venv) tf.lite.TFLiteConverter on a .keras file or a
                              SavedModel folder, default options (float32, builtins only)
  time INPUT.npy RUNS MODEL.tflite OUTPUT.npy [MODEL.tflite OUTPUT.npy ...]
                              (LiteRT venv) median and min latency of RUNS invocations on one
                              thread after two warm-up runs, the models' invocations alternating;
                              prints `i median_ms`, `i min_ms`, `i op_total` and `i ops` lines
                              per model i; saves each first output to its OUTPUT.npy
  diff A.npy B.npy            (LiteRT venv) prints the largest absolute difference
"""

import os
import sys
import time


def seed_batch_norms(keras, model, rng):
    """Fresh batch norms (mean 0, variance 1) leave an untrained network's features at zero and
    every class at exactly 1/1000, which compares nothing; seeded statistics make the
    activations, and so the outputs compared, informative."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c).astype("float32"),
                    rng.uniform(0.0, 0.5, c).astype("float32"),
                    rng.uniform(-0.1, 0.1, c).astype("float32"),
                    rng.uniform(0.5, 2.0, c).astype("float32"),
                ]
            )


def build(out_dir):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None)
    seed_batch_norms(keras, model, np.random.default_rng(0))
    keras_path = os.path.join(out_dir, "mobilenetv2.keras")
    saved = os.path.join(out_dir, "mobilenetv2_savedmodel")
    model.save(keras_path)
    model.export(saved, verbose=False)
    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    np.save(os.path.join(out_dir, "mobilenetv2_input.npy"), x)
    y = model(x).numpy()
    print(f"MobileNetV2 built: output min {y.min():.3e} max {y.max():.3e}")


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


def tfjs(saved, out):
    """tensorflowjs_converter's graph model of the SavedModel (tensorflowjs installed with
    --no-deps: the converter modules it imports for other paths are stubbed, as in
    fixtures/scripts/make_tfjs_fixtures.py)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import types

    for m in ("tensorflow_decision_forests", "tensorflow_hub", "jax", "jax.experimental",
              "jax.experimental.jax2tf"):
        sys.modules[m] = types.ModuleType(m)
    sys.modules["jax"].monitoring = types.SimpleNamespace(record_scalar=lambda *a, **k: None)
    sys.modules["jax.experimental"].jax2tf = sys.modules["jax.experimental.jax2tf"]
    from tensorflowjs.converters import tf_saved_model_conversion_v2 as conv

    conv.convert_tf_saved_model(saved, out)


def timing(input_path, runs, pairs):
    """Times several models on one input, alternating invocations so that each sees the same
    machine load (other processes share the cores); one `key value` block per model, prefixed
    with its position (`0 median_ms ...`)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    x = np.load(input_path)
    loaded = []
    for model, save in pairs:
        it = Interpreter(model_path=model, num_threads=1)
        detail = it.get_input_details()[0]
        if tuple(detail["shape"]) != x.shape:
            it.resize_tensor_input(detail["index"], list(x.shape), strict=False)
        it.allocate_tensors()
        loaded.append((it, it.get_input_details()[0]["index"], save, []))
    for k in range(runs + 2):
        for it, index, _, times in loaded:
            it.set_tensor(index, x)
            t = time.perf_counter()
            it.invoke()
            if k >= 2:
                times.append(time.perf_counter() - t)
    for i, (it, _, save, times) in enumerate(loaded):
        np.save(save, it.get_tensor(it.get_output_details()[0]["index"]))
        times.sort()
        counts = {}
        for op in it._get_ops_details():
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
        print(f"{i} median_ms {1000 * times[len(times) // 2]:.4f}")
        print(f"{i} min_ms {1000 * times[0]:.4f}")
        print(f"{i} op_total {sum(counts.values())}")
        print(f"{i} ops " + " ".join(f"{k}x{v}" for k, v in sorted(counts.items())))


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
        timing(args[0], int(args[1]), list(zip(args[2::2], args[3::2])))
    elif cmd == "tfjs":
        tfjs(*args)
    elif cmd == "diff":
        diff(*args)
    else:
        sys.exit(f"unknown command {cmd}")
