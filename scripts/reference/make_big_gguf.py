"""Write a RANDOM Llama-shaped GGUF file of about 1 GB (never committed).

For speed / peak-RSS checks of ``nopekit inspect`` and ``nopekit convert`` on
GGUF.  Usage (from the repository root)::

    .venv/bin/python scripts/reference/make_big_gguf.py OUT.gguf \
        [--size-gb 1] [--type Q8_0|F16] [--seed 0]

Shapes follow TinyLlama-1.1B (hidden 2048, 32 heads, 4 KV heads, head_dim 64,
intermediate 5632, vocab 32000, untied output) with the number of layers
chosen so that the tensor data is about ``--size-gb`` GB (decimal; at least
one layer).  Tensor names and order are llama.cpp's (``token_embd.weight``,
``blk.N.attn_norm.weight``, ``blk.N.attn_q.weight``, ..., ``output_norm.weight``,
``output.weight``); norms are F32, everything else ``--type``.  Metadata is
what convert_hf_to_gguf writes for a Llama with an SPM vocabulary: the
``llama.*`` hyper-parameters, ``general.*``, and 32000 tokens / scores /
token types (about 0.6 MB of KVs, so ``inspect`` has real metadata to parse).

Data is random: Q8_0 blocks are random bytes whose fp16 ``d`` is set to a
finite value in [1e-4, 1e-2) (no quantizer run, for speed); F16 values are
random bit patterns with exponents limited to |x| in [2^-7, 2).

Written with gguf-py's GGUFWriter in streaming mode (``add_tensor_info`` for
every tensor, then ``write_tensor_data`` one tensor at a time), so only one
tensor's bytes are in memory (peak RSS is about the largest tensor, the
65.5M-element embedding: ~70 MB as Q8_0, ~130 MB as F16, plus one temporary of
the same size).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import GGUFWriter, TokenType
from gguf.constants import GGML_QUANT_SIZES, LlamaFileType

HIDDEN, N_HEAD, N_KV, HEAD_DIM, FF, VOCAB, CTX = 2048, 32, 4, 64, 5632, 32000, 2048


def tensor_list(n_layers: int):
    """(name, HF shape, is_norm) in llama.cpp's order."""
    out = [("token_embd.weight", (VOCAB, HIDDEN), False)]
    for i in range(n_layers):
        p = f"blk.{i}."
        out += [
            (p + "attn_norm.weight", (HIDDEN,), True),
            (p + "attn_q.weight", (N_HEAD * HEAD_DIM, HIDDEN), False),
            (p + "attn_k.weight", (N_KV * HEAD_DIM, HIDDEN), False),
            (p + "attn_v.weight", (N_KV * HEAD_DIM, HIDDEN), False),
            (p + "attn_output.weight", (HIDDEN, N_HEAD * HEAD_DIM), False),
            (p + "ffn_norm.weight", (HIDDEN,), True),
            (p + "ffn_gate.weight", (FF, HIDDEN), False),
            (p + "ffn_up.weight", (FF, HIDDEN), False),
            (p + "ffn_down.weight", (HIDDEN, FF), False),
        ]
    out += [("output_norm.weight", (HIDDEN,), True), ("output.weight", (VOCAB, HIDDEN), False)]
    return out


def nbytes(shape, qtype: QT) -> int:
    bs, ts = GGML_QUANT_SIZES[qtype]
    n = int(np.prod(shape))
    return n // bs * ts


def layers_for(size_bytes: float, qtype: QT) -> int:
    fixed = sum(nbytes(s, QT.F32 if norm else qtype) for _, s, norm in tensor_list(0))
    per = sum(nbytes(s, QT.F32 if norm else qtype) for _, s, norm in tensor_list(1)) - fixed
    return max(1, round((size_bytes - fixed) / per))


def random_q8_0(rng, shape):
    rows, cols = shape
    bs, ts = GGML_QUANT_SIZES[QT.Q8_0]
    nblk = rows * cols // bs
    raw = np.frombuffer(rng.bytes(nblk * ts), dtype=np.uint8).reshape(nblk, ts).copy()
    d = (10.0 ** rng.uniform(-4, -2, nblk)).astype(np.float16)
    raw[:, 0:2] = d.view(np.uint8).reshape(nblk, 2)
    return raw.reshape(rows, cols // bs * ts)


def random_f16(rng, shape):
    n = int(np.prod(shape))
    r = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    e = r >> np.uint16(10)  # in-place from here on: two n-element temporaries at most
    e &= np.uint16(7)
    e += np.uint16(8)  # biased exponent 8..15 -> |x| in [2^-7, 2)
    e <<= np.uint16(10)
    r &= np.uint16(0x83FF)
    r |= e
    del e
    return r.view(np.float16).reshape(shape)


def main():
    ap = argparse.ArgumentParser(description="Write a random Llama-shaped GGUF file (~1 GB) for benchmarks.")
    ap.add_argument("out", type=Path)
    ap.add_argument("--size-gb", type=float, default=1.0, help="target tensor data size in GB (decimal), default 1")
    ap.add_argument("--type", choices=["Q8_0", "F16"], default="Q8_0", help="type of the 2-D weights (norms stay F32)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    qtype = QT[args.type]
    n_layers = layers_for(args.size_gb * 1e9, qtype)
    tensors = tensor_list(n_layers)
    t0 = time.monotonic()

    w = GGUFWriter(str(args.out), "llama")
    w.add_name(f"random-llama-{n_layers}L-{args.type}")
    w.add_context_length(CTX)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(FF)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(VOCAB)
    w.add_file_type(LlamaFileType.MOSTLY_Q8_0 if qtype == QT.Q8_0 else LlamaFileType.MOSTLY_F16)
    w.add_quantization_version(2)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tokens += [f"\u2581tok{i}" for i in range(VOCAB - len(tokens))]
    w.add_token_list(tokens)
    w.add_token_scores([float(-i) for i in range(VOCAB)])
    ttypes = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    ttypes += [TokenType.NORMAL] * (VOCAB - len(ttypes))
    w.add_token_types(ttypes)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    total = 0
    for name, shape, norm in tensors:
        t = QT.F32 if norm else qtype
        nb = nbytes(shape, t)
        total += nb
        if t == QT.Q8_0:
            bs, ts = GGML_QUANT_SIZES[t]
            w.add_tensor_info(name, (shape[0], shape[1] // bs * ts), np.dtype(np.uint8), nb, raw_dtype=t)
        elif t == QT.F16:
            w.add_tensor_info(name, shape, np.dtype(np.float16), nb)
        else:
            w.add_tensor_info(name, shape, np.dtype(np.float32), nb)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for i, (name, shape, norm) in enumerate(tensors):
        rng = np.random.default_rng([args.seed, i])
        if norm:
            a = (1.0 + 0.02 * rng.standard_normal(shape)).astype(np.float32)
        elif qtype == QT.Q8_0:
            a = random_q8_0(rng, shape)
        else:
            a = random_f16(rng, shape)
        w.write_tensor_data(a)
        del a
    w.close()

    size = args.out.stat().st_size
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"wrote {args.out}: {n_layers} layers, {len(tensors)} tensors, {total / 1e9:.3f} GB tensor data, "
        f"{size} bytes; {time.monotonic() - t0:.1f} s, peak RSS {rss:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
