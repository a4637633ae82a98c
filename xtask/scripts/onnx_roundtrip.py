"""Reference for the ONNX -> ONNX benchmark: the `onnx` package's own load + save.

usage: python onnx_roundtrip.py IN.onnx OUT.onnx
"""
import sys

import onnx

onnx.save(onnx.load(sys.argv[1]), sys.argv[2])
