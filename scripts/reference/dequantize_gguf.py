#!/usr/bin/env python3
"""Dequantise every tensor of a GGUF file with PyPI gguf (gguf.quants.dequantize), the oracle
for nopekit's row scaling: RowScalingOracleTests writes quantised blocks and their scaled
copies, and compares what this script reads back.

    dequantize_gguf.py IN.gguf OUT.f32

OUT holds each tensor's values as little-endian float32, tensor after tensor in file order,
rows in GGUF order (ggml ne[0] innermost), nothing else.
"""
import sys

import gguf
import numpy as np


def main() -> None:
    source, out = sys.argv[1], sys.argv[2]
    reader = gguf.GGUFReader(source)
    with open(out, "wb") as f:
        for t in reader.tensors:
            values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
            f.write(np.ascontiguousarray(values, dtype="<f4").tobytes())


if __name__ == "__main__":
    main()
