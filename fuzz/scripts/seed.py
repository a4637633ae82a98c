#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from the repository's fixtures (the small ones: each seed under
64 KB), in the layout src/fuzzing.rs reads: a single model file as it is, or a model folder's
files framed (each but the last preceded by its length as a little-endian u32)."""
import glob
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIMIT = 64 * 1024

# target -> (glob of fixture models, files of a framed folder or None for a single file)
TARGETS = {
    "onnx": ("fixtures/onnx/*/model.onnx", None),
    "keras_h5": ("fixtures/keras/*/model.h5", None),
    "keras_zip": ("fixtures/keras/*/model.keras", None),
    "tflite": ("fixtures/tflite/*/model.tflite", None),
    "saved_model": (
        "fixtures/saved_model/*/model",
        ["saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"],
    ),
    "tfjs": ("fixtures/tfjs/*/model", ["model.json", "group1-shard1of1.bin"]),
}


def frame(parts):
    out = b""
    for i, p in enumerate(parts):
        if i + 1 < len(parts):
            out += struct.pack("<I", len(p))
        out += p
    return out


def seed(path, files):
    if files is None:
        with open(path, "rb") as f:
            return f.read()
    parts = []
    for name in files:
        p = os.path.join(path, name)
        if not os.path.exists(p):
            # A TF.js model of several shards does not fit the one-shard layout.
            if name.startswith("group1-shard"):
                return None
            parts.append(b"")
            continue
        with open(p, "rb") as f:
            parts.append(f.read())
    return frame(parts)


def main():
    only = sys.argv[1:]
    for target, (pattern, files) in TARGETS.items():
        if only and target not in only:
            continue
        out = os.path.join(ROOT, "fuzz", "corpus", target)
        os.makedirs(out, exist_ok=True)
        n = 0
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            data = seed(path, files)
            if data is None or len(data) > LIMIT:
                continue
            name = os.path.basename(os.path.dirname(path))
            with open(os.path.join(out, "seed-" + name), "wb") as f:
                f.write(data)
            n += 1
        print(f"{target}: {n} seeds")


main()
