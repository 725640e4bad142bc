"""Golden bytes for nopekit's FP4 quantisers (MXFP4, NVFP4): ``fixtures/gguf/fp4_quant.gguf``.

Run from the repository root::

    .venv/bin/python scripts/reference/make_fp4_quant_golden.py

Oracles (pinned in ``scripts/reference/requirements.txt``: gguf==0.19.0, numpy):

* ``q.MXFP4`` = ``gguf.quants.quantize(input, MXFP4)``: gguf-py's own quantiser.
* ``q.NVFP4``: gguf-py 0.19 decodes NVFP4 but cannot quantise it, so this script restates
  ggml's ``quantize_row_nvfp4_ref`` in numpy on top of gguf-py's ``NVFP4.fp32_to_ue4m3`` and
  ``NVFP4.ue4m3_to_fp32`` (the parts gguf-py documents as matching ggml's C): per sub-block of
  16 values the scale code is ``fp32_to_ue4m3(float32(amax) / float32(6))`` and each value takes
  the code of ``kvalues`` (doubled E2M1) whose product with the decoded scale is nearest, the
  lowest code on ties (ggml's ``best_index_mxfp4``: strict ``<``). The result is checked to
  decode (gguf-py) within half a grid step of the input.

``input`` is 16 rows x 256 float32 values whose rows span magnitudes from 2^-20 (UE4M3
subnormal scales) to 2^12 (beyond UE4M3's 448 after /6, so clamped), with exact zeros, exact
grid values and ties placed in some blocks.
"""
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

OUT = Path(__file__).resolve().parents[2] / "fixtures" / "gguf" / "fp4_quant.gguf"
ROWS, COLS = 16, 256


def make_input() -> np.ndarray:
    rng = np.random.default_rng(4242)
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    scales = np.float32(2.0) ** np.linspace(-20, 12, ROWS).astype(np.float32)
    x *= scales[:, None]
    x[3, :64] = 0                                    # zero blocks
    x[4, :32] = np.float32(0.75)                     # constant block
    x[5, :16] = np.array([6, 3, 1.5, 0.5, 1, 2, 4, -6, -4, -2, -1, -0.5, -1.5, -3, 0, -0], np.float32)  # exact grid
    x[6, :16] = np.array([6, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, -0.25, -0.75, -1.25, -1.75, -2.5, -3.5, -5, 0], np.float32)  # ties
    return x


KV = np.array(gguf.quants.NVFP4.kvalues, dtype=np.float32)


def nvfp4_quantize(x: np.ndarray) -> np.ndarray:
    sub = x.reshape(-1, 16)
    amax = np.abs(sub).max(axis=1).astype(np.float32)
    codes = gguf.quants.NVFP4.fp32_to_ue4m3(amax / np.float32(6.0)).astype(np.uint8)
    d = gguf.quants.NVFP4.ue4m3_to_fp32(codes).astype(np.float32)
    errs = np.abs(d[:, None, None] * KV[None, None, :] - sub[:, :, None])
    q = np.argmin(errs, axis=-1).astype(np.uint8)     # first index on ties
    packed = q[:, :8] | (q[:, 8:] << np.uint8(4))     # low nibble j, high nibble j+8
    blocks = np.concatenate([codes.reshape(-1, 4), packed.reshape(-1, 32)], axis=1)
    return blocks.reshape(x.shape[0], -1)


def main():
    x = make_input()
    mx = gguf.quants.quantize(x, QT.MXFP4)
    nv = nvfp4_quantize(x)
    back = gguf.quants.dequantize(nv.view(np.uint8), QT.NVFP4).reshape(x.shape)
    # Where amax/6 is a normal UE4M3 number (2^-6 .. 448), every value decodes within half the
    # widest grid step (amax/6) plus the scale's rounding to 3 mantissa bits (at most 1/16 of it,
    # which moves the top value by 6/16 of a step).
    sub = x.reshape(-1, 16)
    amax = np.abs(sub).max(axis=1)
    normal = (amax / 6 >= 2.0 ** -6) & (amax / 6 <= 448)
    err = np.abs(back.reshape(-1, 16) - sub).max(axis=1)
    assert np.all(err[normal] <= amax[normal] * (1 / 6 + 1 / 16)), "NVFP4 restatement decodes far from its input"
    print(f"NVFP4: {normal.sum()} of {len(amax)} sub-blocks in the normal scale range, worst error/amax {np.max(err[normal] / amax[normal]):.4f}")
    w = gguf.GGUFWriter(str(OUT), "fp4golden")
    w.add_tensor("input", x)
    w.add_tensor("q.MXFP4", mx, raw_dtype=QT.MXFP4)
    w.add_tensor("q.NVFP4", nv, raw_dtype=QT.NVFP4)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
