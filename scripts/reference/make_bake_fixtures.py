"""Generate the ``nopekit bake`` test fixtures and golden expectations under ``fixtures/bake/``.

Run from the repository root (overwrites everything it generates)::

    .venv/bin/python scripts/reference/make_bake_fixtures.py [--out fixtures/bake] [--seed 20240]

Pinned oracles (see ``scripts/reference/requirements.txt``): numpy==2.4.6 (the
float32 multiply, F16 rounding and the RNG), ml_dtypes==0.6.0 (BF16 round to
nearest even), safetensors==0.8.0 (the reference writer of every
``.safetensors`` file, and the reader that checks them), gguf==0.19.0
(``GGUFWriter`` for the ``.gguf`` files, ``gguf.quants`` for Q8_0/Q4_0 and for
every dequantisation).  No torch.  The output is deterministic (fixed seeds;
the only ``__metadata__`` is the one key ``{"format": "pt"}``, so the Rust
writer's HashMap order cannot vary).

The model is a tiny Llama (hidden 256, 4 query heads and 2 KV heads of 16, FFN
32, 3 layers, vocab 32, q/k/v/o biases).  One set of F32 master weights is
drawn (std 0.05 for matrices, 1 +- 0.1 for norms, std 0.02 for biases) and
stored in every checkpoint below.  ``table.temps.json`` is the temperature
table (``nopekit.temperatures/1``): scales ``[[1.5, 0.75, 2.0, 1.3], null,
[1.0, 3.1, 0.9, 1.0625]]``, each used as ``np.float32(decimal)``.

The bake rule: for each layer l with a row and each head h, the 16 rows
``h*16 .. h*16+15`` of the query projection (HF ``q_proj.weight``, GGUF
``blk.l.attn_q.weight``; rows = the outermost HF dimension = ggml rows) and the
same elements of the query bias are multiplied by ``s[l][h]``.  llama.cpp's
Q/K permutation only reorders rows inside a head, so a head's GGUF rows are the
same 16 rows.  Every other tensor is byte-identical.

Expected bytes, computed here in numpy:

* F32 ``x``: ``np.float32(x) * np.float32(s)`` (float32 multiply);
* F16: ``(x.astype(np.float32) * np.float32(s)).astype(np.float16)``;
* BF16: ``(x.astype(np.float32) * np.float32(s))`` rounded to bfloat16
  (ml_dtypes, nearest even);
* quantised blocks (every block of the head's rows): each fp16 scale field f
  becomes ``np.float16(np.float64(f) * np.float64(np.float32(s)))`` (the
  float64 product is exact, so this rounds once); Q4_0 d@0, Q8_0 d@0, Q4_K d@0
  and dmin@2, Q6_K d@208; codes untouched.

For every quantised changed tensor the script asserts that
``dequantize(expected)`` is within ``2^-11 * s * (|d-part| + |min-part|) +
4 * eps_f32 * |s * old|`` of ``s * dequantize(source)`` (d-part and min-part
from dequantising copies with dmin, respectively d, zeroed) and prints the worst
ratio error/bound.  It also reports how many F16 elements the brief's rounding
(float32 product, then F16) puts on a different F16 value than rounding the
exact product once; see the README.

What it writes (about 6.5 MB; the model shapes fix the size):

``table.temps.json``
    The temperature table above, byte for byte as in the brief.
``st-f32/``, ``st-f16/``, ``st-bf16/``
    ``config.json`` (HF LlamaConfig style, ``json.dumps(indent=2,
    sort_keys=True)``) and ``model.safetensors`` written by PyPI safetensors
    (``safetensors.numpy.save_file``, metadata ``{"format": "pt"}``).
``st-sharded/``
    F16 in two shards (``model-0000{1,2}-of-00002.safetensors``: embed + layers
    0-1, then layer 2 + norm + lm_head), ``model.safetensors.index.json``
    (``{"metadata": {"total_size"}, "weight_map"}``, indent 2, sorted keys),
    ``config.json`` and ``generation_config.json`` (an extra file the bake
    must copy byte for byte).
``gguf/tiny-{f32,f16,bf16,q8_0,q4_0,q4_k,q6_k}.gguf``
    ``GGUFWriter`` files, arch ``llama``, llama.cpp tensor names, attn_q/attn_k
    weights and biases permuted as the converter does.  Norms and biases F32;
    every 2-D weight in the file's type when its ne[0] is a multiple of the
    type's block size, else F16 (so attn_output and ffn_down are F16 in the
    K-quant files).  Q8_0/Q4_0 from ``gguf.quants.quantize``; Q4_K/Q6_K are
    random blocks with finite normal fp16 scale fields (gguf-py cannot
    quantise K-quants).  The converter's metadata plus extra keys of other
    value types (array of strings, bool, u64, i64, f64, i8, u16, arrays of
    i32/f32, a non-ASCII string) so that copying every entry is tested.
``paper/``
    The layout of AntNLP/TinyLlama-NoPE-HeadScale8k: ``config.json`` with
    attention_bias false, ``generation_config.json``, and an F32
    ``model.safetensors`` without biases plus ``model.layers.N.self_attn.scale_param``
    (BF16, shape [4], exact bf16 values in [1, 2.5]) for every layer.
    ``nopekit bake paper --from-checkpoint-scales`` scales the q_proj rows of
    head h in layer N by ``float(scale_param[N][h])`` and drops scale_param.
``expected.json``
    One entry per case ("st-f32", "st-f16", "st-bf16", "st-sharded",
    "gguf/tiny-<t>.gguf", "paper"): the command, the scales applied, the
    expected ``nopekit_source_sha256``, sha256 of every source file, the
    output file list, the files to copy unchanged, and per output tensor its
    dtype/type, shape (HF order), sha256 of the expected stored bytes (no GGUF
    padding), ``changed`` and ``worst_relative_error`` (null when unchanged);
    ``shard`` for st-sharded; ``dropped_tensors`` for paper.  See the README
    for the exact schema.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import safetensors
import safetensors.numpy as stn

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType as VT, GGUFWriter, LlamaFileType
from gguf.constants import GGML_QUANT_SIZES

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "fixtures" / "bake"
BF16 = ml_dtypes.bfloat16

N_LAYER, N_HEAD, N_KV, HEAD_DIM, HIDDEN, FF, VOCAB = 3, 4, 2, 16, 256, 32, 32

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": True,
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "head_dim": HEAD_DIM,
    "hidden_act": "silu",
    "hidden_size": HIDDEN,
    "initializer_range": 0.02,
    "intermediate_size": FF,
    "max_position_embeddings": 64,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": N_HEAD,
    "num_hidden_layers": N_LAYER,
    "num_key_value_heads": N_KV,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "transformers_version": "4.57.6",
    "use_cache": True,
    "vocab_size": VOCAB,
}
GENERATION_CONFIG = {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2, "transformers_version": "4.57.6"}

# The table, byte for byte as specified (one line, then a newline).
TABLE_TEXT = (
    '{"format": "nopekit.temperatures/1", "method": "headscale", '
    '"model": {"architecture": "llama", "layers": 3, "heads": 4, "head_dim": 16}, '
    '"training_length": 32, "target_length": 128, '
    '"scales": [[1.5, 0.75, 2.0, 1.3], null, [1.0, 3.1, 0.9, 1.0625]], "search": {}}\n'
)

# Byte offsets of the fp16 fields that scale with the values, per block (formats.md §2.7).
SCALE_FIELDS = {QT.Q4_0: (0,), QT.Q8_0: (0,), QT.Q4_K: (0, 2), QT.Q6_K: (208,)}
# fp16 fields that are a min term (subtracted), for the d-part / min-part split of the bound.
MIN_FIELDS = {QT.Q4_K: (2,)}
PLAIN_NP = {"F32": np.float32, "F16": np.float16, "BF16": BF16}

GGUF_FILES = {  # file tag -> (weight type, general.file_type)
    "f32": (QT.F32, LlamaFileType.ALL_F32),
    "f16": (QT.F16, LlamaFileType.MOSTLY_F16),
    "bf16": (QT.BF16, LlamaFileType.MOSTLY_BF16),
    "q8_0": (QT.Q8_0, LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (QT.Q4_0, LlamaFileType.MOSTLY_Q4_0),
    "q4_k": (QT.Q4_K, LlamaFileType.MOSTLY_Q4_K_S),
    "q6_k": (QT.Q6_K, LlamaFileType.MOSTLY_Q6_K),
}


class FixtureError(Exception):
    pass


def fail(msg: str):
    raise FixtureError(msg)


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def sha256_file(p: Path) -> str:
    return sha256(p.read_bytes())


def json_text(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------
# master weights and names
# ---------------------------------------------------------------------------


def hf_shapes(bias: bool):
    """HF Llama state_dict names and shapes (module order)."""
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(N_LAYER):
        p = f"model.layers.{i}."
        out.append((p + "input_layernorm.weight", (HIDDEN,)))
        for proj, rows, cols in [("q", N_HEAD * HEAD_DIM, HIDDEN), ("k", N_KV * HEAD_DIM, HIDDEN), ("v", N_KV * HEAD_DIM, HIDDEN), ("o", HIDDEN, N_HEAD * HEAD_DIM)]:
            out.append((p + f"self_attn.{proj}_proj.weight", (rows, cols)))
            if bias:
                out.append((p + f"self_attn.{proj}_proj.bias", (rows,)))
        out.append((p + "post_attention_layernorm.weight", (HIDDEN,)))
        out += [(p + "mlp.gate_proj.weight", (FF, HIDDEN)), (p + "mlp.up_proj.weight", (FF, HIDDEN)), (p + "mlp.down_proj.weight", (HIDDEN, FF))]
    out += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]
    return out


def master_weights(seed: int):
    """{hf name: float32 array}: std 0.05 matrices, 1 +- 0.1 norms, std 0.02 biases."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in hf_shapes(bias=True):
        if name.endswith("norm.weight"):
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            a = 0.02 * rng.standard_normal(shape)
        else:
            a = 0.05 * rng.standard_normal(shape)
        out[name] = a.astype(np.float32)
    return out


GGUF_PARTS = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.o_proj.bias": "attn_output.bias",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf: str) -> str:
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")
    assert parts[:2] == ["model", "layers"], hf
    return f"blk.{parts[2]}." + GGUF_PARTS[".".join(parts[3:])]


def qk_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's Q/K row order (formats.md §3.3): within each head of hd rows,
    new row 2i + j is old row j*hd/2 + i (i < hd/2, j in {0, 1})."""
    hd = w.shape[0] // heads
    lead = w.reshape(heads, 2, hd // 2, *w.shape[1:])
    return np.ascontiguousarray(np.swapaxes(lead, 1, 2)).reshape(w.shape)


def qk_unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    hd = w.shape[0] // heads
    lead = w.reshape(heads, hd // 2, 2, *w.shape[1:])
    return np.ascontiguousarray(np.swapaxes(lead, 1, 2)).reshape(w.shape)


# ---------------------------------------------------------------------------
# the bake, computed independently in numpy
# ---------------------------------------------------------------------------


def row_scales(scales_row) -> np.ndarray:
    """float32 scale of every q row (head h owns rows h*hd .. h*hd+hd-1)."""
    return np.repeat(np.asarray(scales_row, dtype=np.float32), HEAD_DIM)


def bake_plain(raw: bytes, dtype: str, shape, scales_row):
    """(expected bytes, worst relative error) for an F32/F16/BF16 q weight or bias."""
    x = np.frombuffer(raw, dtype=PLAIN_NP[dtype]).reshape(shape)
    s = row_scales(scales_row).reshape((-1,) + (1,) * (len(shape) - 1))
    prod = x.astype(np.float32) * s  # float32 multiply, rounds once to f32
    new = prod if dtype == "F32" else prod.astype(PLAIN_NP[dtype])
    exact = x.astype(np.float64) * s.astype(np.float64)
    stored = new.astype(np.float64)
    nz = exact != 0
    worst = float(np.max(np.abs(stored[nz] - exact[nz]) / np.abs(exact[nz]))) if nz.any() else 0.0
    return np.ascontiguousarray(new).tobytes(), worst


def f16_double_rounding_count(raw: bytes, shape, scales_row) -> int:
    """F16 elements where the brief's rule (f32 product, then F16) differs from rounding the exact product once."""
    x = np.frombuffer(raw, dtype=np.float16).reshape(shape)
    s = row_scales(scales_row).reshape((-1,) + (1,) * (len(shape) - 1))
    a = (x.astype(np.float32) * s).astype(np.float16)
    b = (x.astype(np.float64) * s.astype(np.float64)).astype(np.float16)
    return int(np.count_nonzero(a.view(np.uint16) != b.view(np.uint16)))


def bake_quant(raw: bytes, qtype: QT, rows: int, scales_row):
    """(expected bytes, worst relative error): edit the fp16 scale fields of every block of each head's rows."""
    bs, ts = GGML_QUANT_SIZES[qtype]
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows, -1, ts).copy()
    s64 = row_scales(scales_row).astype(np.float64)[:, None]
    worst = 0.0
    for off in SCALE_FIELDS[qtype]:
        old = blocks[:, :, off : off + 2].copy().view(np.float16)[..., 0]  # [rows, blocks]
        exact = old.astype(np.float64) * s64
        new = exact.astype(np.float16)  # float64 -> float16 rounds once (nearest even)
        if not np.all(np.isfinite(new)):
            fail(f"{qtype.name}: a scaled fp16 field overflows")
        if np.any((new != 0) & (np.abs(new) < np.float16(2.0**-14))):
            fail(f"{qtype.name}: a scaled fp16 field is subnormal; pick larger fixture scales")
        nz = exact != 0
        if nz.any():
            worst = max(worst, float(np.max(np.abs(new.astype(np.float64)[nz] - exact[nz]) / np.abs(exact[nz]))))
        blocks[:, :, off : off + 2] = new[..., None].view(np.uint8)
    return blocks.tobytes(), worst


def dequant(raw: bytes, qtype: QT, rows: int) -> np.ndarray:
    return gguf.quants.dequantize(np.frombuffer(raw, dtype=np.uint8).reshape(rows, -1), qtype).astype(np.float64)


def zero_fields(raw: bytes, qtype: QT, rows: int, offsets) -> bytes:
    ts = GGML_QUANT_SIZES[qtype][1]
    b = np.frombuffer(raw, dtype=np.uint8).reshape(rows, -1, ts).copy()
    for off in offsets:
        b[:, :, off : off + 2] = 0
    return b.tobytes()


def quant_bound_ratio(src: bytes, new: bytes, qtype: QT, rows: int, scales_row) -> float:
    """max over elements of |deq(new) - s*deq(src)| / bound; must be <= 1."""
    s = row_scales(scales_row).astype(np.float64)[:, None]
    mins = MIN_FIELDS.get(qtype, ())
    ds = tuple(o for o in SCALE_FIELDS[qtype] if o not in mins)
    old = dequant(src, qtype, rows)
    got = dequant(new, qtype, rows)
    d_part = dequant(zero_fields(src, qtype, rows, mins), qtype, rows) if mins else old
    m_part = dequant(zero_fields(src, qtype, rows, ds), qtype, rows) if mins else np.zeros_like(old)
    want = s * old
    bound = 2.0**-11 * s * (np.abs(d_part) + np.abs(m_part)) + 4 * float(np.finfo(np.float32).eps) * np.abs(want)
    err = np.abs(got - want)
    if np.any(err > bound):
        r, c = np.argwhere(err > bound)[0]
        fail(f"{qtype.name}: dequantized expectation off by {err[r, c]:.3e} at row {r} col {c}, bound {bound[r, c]:.3e} (s = {s[r, 0]})")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bound > 0, err / bound, 0.0)
    return float(ratio.max())


# ---------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------


def cast(a: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "F32":
        return a.astype(np.float32)
    if dtype == "F16":
        return a.astype(np.float16)
    return a.astype(np.float32).astype(BF16)  # ml_dtypes: round to nearest even


def st_code(a: np.ndarray) -> str:
    return {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(BF16): "BF16"}[a.dtype]


def save_safetensors(path: Path, tensors: dict):
    """Reference writer; then read back with the reference reader and compare bytes."""
    stn.save_file(tensors, str(path), metadata={"format": "pt"})
    back = {name: (info["dtype"], info["shape"], bytes(info["data"])) for name, info in safetensors.deserialize(path.read_bytes())}
    for name, a in tensors.items():
        if back.get(name) != (st_code(a), list(a.shape), np.ascontiguousarray(a).tobytes()):
            fail(f"{path}: {name} does not read back as written")
    if set(back) != set(tensors):
        fail(f"{path}: tensor set differs on read-back")
    buf = path.read_bytes()
    n = int.from_bytes(buf[:8], "little")
    if n % 8 or not buf[8:].startswith(b'{"__metadata__":{"format":"pt"}'):
        fail(f"{path}: unexpected header layout")


def read_safetensors(path: Path):
    """{name: (dtype code, shape, raw bytes)} in file order, via the reference reader."""
    return {name: (info["dtype"], list(info["shape"]), bytes(info["data"])) for name, info in safetensors.deserialize(path.read_bytes())}


def write_st_folder(folder: Path, master: dict, dtype: str, shards=None, extra_files=None, config=None):
    folder.mkdir(parents=True)
    cfg = dict(config or CONFIG)
    cfg["torch_dtype"] = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype]
    tensors = {n: cast(a, dtype) for n, a in master.items()}
    if shards is None:
        save_safetensors(folder / "model.safetensors", tensors)
    else:
        weight_map, total = {}, 0
        for i, names in enumerate(shards):
            fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_safetensors(folder / fname, {n: tensors[n] for n in names})
            for n in names:
                weight_map[n] = fname
                total += tensors[n].nbytes
        if set(weight_map) != set(tensors):
            fail("shard split does not cover every tensor exactly once")
        (folder / "model.safetensors.index.json").write_text(json_text({"metadata": {"total_size": total}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json_text(cfg))
    for fname, text in (extra_files or {}).items():
        (folder / fname).write_text(text)


def random_k_blocks(rng, qtype: QT, rows: int, cols: int) -> np.ndarray:
    """Random but valid K-quant blocks: random codes, finite normal fp16 scale fields
    (|d|, dmin in [1e-4, 5e-4], so s*field stays normal for every s >= 0.75)."""
    bs, ts = GGML_QUANT_SIZES[qtype]
    nblk = rows * cols // bs
    b = rng.integers(0, 256, size=(nblk, ts), dtype=np.uint8)
    for off in SCALE_FIELDS[qtype]:
        mag = 10.0 ** rng.uniform(-4.0, np.log10(5e-4), nblk)
        sign = np.where(rng.integers(0, 2, nblk) == 1, -1.0, 1.0) if qtype == QT.Q6_K else 1.0
        b[:, off : off + 2] = (mag * sign).astype(np.float16).view(np.uint8).reshape(nblk, 2)
    return b.reshape(rows, cols // bs * ts)


def gguf_tensor(rng, hf: str, a: np.ndarray, wtype: QT):
    """(array for add_tensor, raw_dtype or None, stored type) following the converter's type rule."""
    if a.ndim == 1:
        return a.astype(np.float32), None, QT.F32
    bs = GGML_QUANT_SIZES[wtype][0]
    t = wtype if a.shape[-1] % bs == 0 else QT.F16
    if t == QT.F32:
        return a.astype(np.float32), None, t
    if t == QT.F16:
        return a.astype(np.float16), None, t
    if t in (QT.BF16, QT.Q8_0, QT.Q4_0):
        return gguf.quants.quantize(a.astype(np.float32), t), t, t
    return random_k_blocks(rng, t, a.shape[0], a.shape[1]), t, t


def write_gguf(path: Path, master: dict, tag: str, seed: int):
    wtype, ftype = GGUF_FILES[tag]
    rng = np.random.default_rng(seed)
    w = GGUFWriter(str(path), "llama")
    w.add_name("bake-fixture")
    w.add_block_count(N_LAYER)
    w.add_context_length(CONFIG["max_position_embeddings"])
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV)
    w.add_rope_freq_base(CONFIG["rope_theta"])
    w.add_layer_norm_rms_eps(CONFIG["rms_norm_eps"])
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_file_type(int(ftype))
    w.add_vocab_size(VOCAB)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_tokenizer_model("none")
    # extra keys of other value types, so that "every entry is copied" is tested
    w.add_key_value("fixture.labels", ["alpha", "\u03b2eta", "", "line\nbreak"], VT.ARRAY, sub_type=VT.STRING)
    w.add_key_value("fixture.flag", True, VT.BOOL)
    w.add_key_value("fixture.big", 2**64 - 3, VT.UINT64)
    w.add_key_value("fixture.offset", -(2**40) - 5, VT.INT64)
    w.add_key_value("fixture.ratio", 0.1, VT.FLOAT64)
    w.add_key_value("fixture.tiny", -7, VT.INT8)
    w.add_key_value("fixture.port", 65000, VT.UINT16)
    w.add_key_value("fixture.head_widths", [16, 16, 16, 16], VT.ARRAY, sub_type=VT.INT32)
    w.add_key_value("fixture.weights", [0.5, -1.25, 3.0], VT.ARRAY, sub_type=VT.FLOAT32)
    w.add_key_value("fixture.note", "caf\u00e9 \U0001F999 \"quoted\"", VT.STRING)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    types = {}
    for hf in sorted(master):  # the converter's order for a safetensors source: lm_head, then model.* by name
        a = master[hf]
        if ".q_proj." in hf:
            a = qk_permute(a, N_HEAD)
        elif ".k_proj." in hf:
            a = qk_permute(a, N_KV)
        arr, raw, t = gguf_tensor(rng, hf, a, wtype)
        name = gguf_name(hf)
        if raw is None:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, arr, raw_dtype=raw)
        types[name] = t
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return types


# ---------------------------------------------------------------------------
# expectations
# ---------------------------------------------------------------------------


def table_scales():
    t = json.loads(TABLE_TEXT)
    return [None if row is None else [np.float32(v) for v in row] for row in t["scales"]]


def json_scales(scales):
    return [None if row is None else [float(v) for v in row] for row in scales]


def layer_of(name: str):
    parts = name.split(".")
    if parts[:2] == ["model", "layers"]:
        return int(parts[2])
    if parts[0] == "blk":
        return int(parts[1])
    return None


def is_q(name: str) -> bool:
    return ".self_attn.q_proj." in name or ".attn_q." in name


class Stats:
    def __init__(self):
        self.bound_ratio = {}  # case -> worst ratio
        self.f16_double = {}  # case -> count
        self.worst_rel = {}


def expect_tensor(case: str, name: str, dtype: str, shape, raw: bytes, scales, stats: Stats, qrows=None):
    """Expected record for one output tensor.  dtype is a safetensors code or a GGML type name."""
    layer = layer_of(name)
    row = scales[layer] if (layer is not None and is_q(name)) else None
    rec = {"dtype": dtype, "shape": list(shape)}
    if row is None:
        new, worst = raw, None
    elif dtype in PLAIN_NP:
        new, worst = bake_plain(raw, dtype, shape, row)
        if dtype == "F16":
            stats.f16_double[case] = stats.f16_double.get(case, 0) + f16_double_rounding_count(raw, shape, row)
    else:
        qt = QT[dtype]
        rows = shape[0]
        new, worst = bake_quant(raw, qt, rows, row)
        ratio = quant_bound_ratio(raw, new, qt, rows, row)
        stats.bound_ratio[case] = max(stats.bound_ratio.get(case, 0.0), ratio)
        # codes untouched: only the scale fields differ
        ts = GGML_QUANT_SIZES[qt][1]
        a = np.frombuffer(raw, np.uint8).reshape(-1, ts)
        b = np.frombuffer(new, np.uint8).reshape(-1, ts)
        mask = np.ones(ts, bool)
        for off in SCALE_FIELDS[qt]:
            mask[off : off + 2] = False
        if not np.array_equal(a[:, mask], b[:, mask]):
            fail(f"{case}: {name}: bytes outside the scale fields changed")
    changed = new != raw
    if row is not None and not changed:
        fail(f"{case}: {name} is scaled but its bytes did not change")
    rec["sha256"] = sha256(new)
    rec["changed"] = bool(changed)
    rec["worst_relative_error"] = worst
    if worst is not None:
        stats.worst_rel[case] = max(stats.worst_rel.get(case, 0.0), worst)
    return rec


def folder_case(fixtures: Path, rel: str, scales, stats: Stats, drop=(), command=None):
    folder = fixtures / rel
    files = sorted(p.name for p in folder.iterdir())
    st_files = [f for f in files if f.endswith(".safetensors")]
    tensors = {}
    for f in st_files:
        for name, (dtype, shape, raw) in read_safetensors(folder / f).items():
            if name in drop:
                continue
            rec = expect_tensor(rel, name, dtype, shape, raw, scales, stats)
            if len(st_files) > 1:
                rec["shard"] = f
            tensors[name] = rec
    if len(st_files) == 1:
        src_sha = sha256_file(folder / st_files[0])
    else:
        lines = "".join(f"{sha256_file(folder / f)}  {f}\n" for f in sorted(st_files))
        src_sha = sha256(lines.encode())
    copied = [f for f in files if f not in st_files and f not in ("config.json", "model.safetensors.index.json")]
    return {
        "kind": "safetensors",
        "command": command or ["bake", rel, "--temps", "table.temps.json", "--out", "OUT"],
        "scales": json_scales(scales),
        "source_sha256": src_sha,
        "source_files": {f: sha256_file(folder / f) for f in files},
        "output_files": files,
        "copied_files": copied,
        "tensors": dict(sorted(tensors.items())),
        **({"dropped_tensors": sorted(drop)} if drop else {}),
    }


def gguf_case(fixtures: Path, rel: str, scales, stats: Stats):
    path = fixtures / rel
    r = GGUFReader(str(path))
    tensors = {}
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)]  # HF order
        raw = np.ascontiguousarray(t.data).tobytes()
        tensors[t.name] = expect_tensor(rel, t.name, t.tensor_type.name, shape, raw, scales, stats)
    del r
    return {
        "kind": "gguf",
        "command": ["bake", rel, "--temps", "table.temps.json", "--out", "OUT.gguf"],
        "scales": json_scales(scales),
        "source_sha256": sha256_file(path),
        "source_files": {path.name: sha256_file(path)},
        "output_files": [path.name],
        "copied_files": [],
        "tensors": tensors,  # file order
    }


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def generate(out: Path, seed: int):
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "table.temps.json").write_text(TABLE_TEXT)
    if json.loads((out / "table.temps.json").read_text())["scales"][1] is not None:
        fail("table row 1 must be null")
    master = master_weights(seed)

    # sanity: the permutation keeps rows inside their head, and undoes
    for name, heads in [("model.layers.0.self_attn.q_proj.weight", N_HEAD), ("model.layers.0.self_attn.k_proj.bias", N_KV)]:
        a = master[name]
        p = qk_permute(a, heads)
        if not np.array_equal(qk_unpermute(p, heads), a):
            fail("qk_permute/qk_unpermute are not inverse")
        hd = a.shape[0] // heads
        for h in range(heads):
            if sorted(map(bytes, p[h * hd : (h + 1) * hd].reshape(hd, -1))) != sorted(map(bytes, a[h * hd : (h + 1) * hd].reshape(hd, -1))):
                fail("qk_permute moves rows across heads")
        if hd == 16 and not np.array_equal(p[:4], a[[0, 8, 1, 9]]):
            fail("qk_permute row order is not 0, 8, 1, 9, ... for head_dim 16")

    gen_cfg = json_text(GENERATION_CONFIG)
    write_st_folder(out / "st-f32", master, "F32")
    write_st_folder(out / "st-f16", master, "F16")
    write_st_folder(out / "st-bf16", master, "BF16")
    shard1 = ["model.embed_tokens.weight"] + [n for n in master if n.startswith(("model.layers.0.", "model.layers.1."))]
    shard2 = [n for n in master if n not in shard1]
    write_st_folder(out / "st-sharded", master, "F16", shards=[shard1, shard2], extra_files={"generation_config.json": gen_cfg})

    # paper layout: no biases, F32, plus BF16 scale_param [heads] per layer
    rng = np.random.default_rng(seed + 1)
    scale_param = rng.uniform(1.0, 2.5, size=(N_LAYER, N_HEAD)).astype(np.float32).astype(BF16)
    paper = {n: a for n, a in master.items() if not n.endswith(".bias")}
    for l in range(N_LAYER):
        paper[f"model.layers.{l}.self_attn.scale_param"] = scale_param[l].copy()
    paper_cfg = dict(CONFIG, attention_bias=False)
    (out / "paper").mkdir()
    save_safetensors(out / "paper" / "model.safetensors", {n: (a if a.dtype == BF16 else a.astype(np.float32)) for n, a in paper.items()})
    (out / "paper" / "config.json").write_text(json_text(dict(paper_cfg, torch_dtype="float32")))
    (out / "paper" / "generation_config.json").write_text(gen_cfg)

    (out / "gguf").mkdir()
    written_types = {}
    for i, tag in enumerate(GGUF_FILES):
        written_types[tag] = write_gguf(out / "gguf" / f"tiny-{tag}.gguf", master, tag, seed + 100 + i)

    # ---- expectations ----
    stats = Stats()
    scales = table_scales()
    expected = {}
    for rel in ("st-f32", "st-f16", "st-bf16", "st-sharded"):
        expected[rel] = folder_case(out, rel, scales, stats)
    for tag in GGUF_FILES:
        rel = f"gguf/tiny-{tag}.gguf"
        expected[rel] = gguf_case(out, rel, scales, stats)
        got = {n: QT[rec["dtype"]] for n, rec in expected[rel]["tensors"].items()}
        if got != written_types[tag]:
            fail(f"{rel}: GGUFReader types differ from what was written")
    # paper: the scales are the stored bf16 values, widened exactly to float32
    back = read_safetensors(out / "paper" / "model.safetensors")
    paper_scales = []
    for l in range(N_LAYER):
        code, shape, raw = back[f"model.layers.{l}.self_attn.scale_param"]
        if code != "BF16" or shape != [N_HEAD]:
            fail("paper scale_param must be BF16 [heads]")
        paper_scales.append([np.float32(v) for v in np.frombuffer(raw, dtype=BF16).astype(np.float32)])
    drop = [f"model.layers.{l}.self_attn.scale_param" for l in range(N_LAYER)]
    expected["paper"] = folder_case(out, "paper", paper_scales, stats, drop=drop, command=["bake", "paper", "--from-checkpoint-scales", "--out", "OUT"])

    # structural sanity of the expectations
    for case, e in expected.items():
        changed = sorted(n for n, t in e["tensors"].items() if t["changed"])
        want = sorted(n for n in e["tensors"] if is_q(n) and e["scales"][layer_of(n)] is not None)
        if changed != want:
            fail(f"{case}: changed tensors {changed}, expected the q weights/biases of the scaled layers {want}")
    (out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    return expected, stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="generate fixtures/bake (nopekit bake fixtures and golden expectations)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (replaced)")
    ap.add_argument("--seed", type=int, default=20240, help="master seed")
    args = ap.parse_args(argv)
    logging.getLogger("gguf").setLevel(logging.ERROR)
    try:
        expected, stats = generate(args.out.resolve(), args.seed)
    except FixtureError as e:
        print(f"FAIL {e}", file=sys.stderr)
        return 1
    out = args.out.resolve()
    for case, e in expected.items():
        n_changed = sum(t["changed"] for t in e["tensors"].values())
        extra = []
        if case in stats.bound_ratio:
            extra.append(f"worst dequant error / bound {stats.bound_ratio[case]:.4f}")
        if case in stats.f16_double:
            extra.append(f"F16 double-rounding differences {stats.f16_double[case]}")
        print(f"{case:22s} {len(e['tensors']):3d} tensors, {n_changed} changed, worst relative error {stats.worst_rel.get(case, 0.0):.3e}" + ("; " + "; ".join(extra) if extra else ""))
    print(f"worst dequant error / bound over all quantised cases: {max(stats.bound_ratio.values()):.4f} (must be <= 1)")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out.relative_to(REPO) if out.is_relative_to(REPO) else out} total: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
