"""CI interop check: ``nopekit convert`` between Hugging Face folders and llama.cpp GGUF, against
PyPI gguf (gguf-py), safetensors and tokenizers.

Usage (from the repository root; needs the pinned packages of
scripts/reference/requirements.txt, no torch)::

    .venv/bin/python scripts/interop/check_convert.py \
        --nopekit .build/debug/nopekit --workdir /tmp/check-convert \
        [--fixtures fixtures] [--timeout 120] [--only CASE,CASE]

    .venv/bin/python scripts/interop/check_convert.py --self-test --workdir /tmp/check-convert-selftest

Sources (all copied or built under WORKDIR/src, deterministic, seeded):

* every ``fixtures/engine/*`` folder and ``fixtures/organism`` (a trained all-NoPE model with a
  byte-level BPE tokenizer without merges);
* built here with numpy + safetensors: ``kq`` (SmolLM3 pattern, hidden 256 and intermediate 288
  so k-quants apply to some rows and fall back on others), ``mistral`` (llama_mha_rope as
  model_type mistral), ``qwen2`` (q/k/v biases), ``qwen3_rope`` (qknorm_nope with RoPE on),
  tokenizer cases ``tok_spm_metaspace`` / ``tok_spm_normalizer`` (F16 weights) /
  ``tok_llama3`` / ``tok_gpt2`` (BF16 weights, model vocab 3 larger than the tokenizer: [PAD]
  tokens) from ``fixtures/tokenizers``, and layer patterns nopekit must refuse;
* reference GGUFs written with gguf-py (``ref_bpe``: Q8_0 llama with gguf_bpe.gguf's
  vocabulary; ``ref_spm``: F16 granite with gguf_spm.gguf's) for the GGUF -> HF direction alone.

HF -> GGUF (``NOPEKIT convert src/CASE gguf/CASE.TYPE.gguf [--type TYPE]``, cwd = WORKDIR), checked
against formats.md §3 and the converter contract:

* the architecture by the per-layer position pattern (all RoPE: llama, qwen2/qwen3 kept; all
  NoPE: granite with ``granite.rope.scaling.finetuned`` = false and ``granite.logit_scale`` = 1.0;
  RoPE except every 4th layer: smollm3); any other pattern, q/k norm outside qwen3, sliding
  windows and partial rotary are refused: exit 1 for a pattern (stderr names it), non-zero
  otherwise, nothing left behind (the output folder's file tree is unchanged); RoPE scaling
  (linear, yarn, llama3) is either written as llama.cpp does (rope.scaling.* keys; llama3 as the
  ``rope_freqs.weight`` tensor) or refused cleanly;
* gguf.GGUFReader and the strict layout check of check_gguf.py accept the file;
* metadata keys with llama.cpp's types and config.json's values (general.file_type per --type,
  nopekit.position decoded to the same per-layer pattern);
* tensor names (§3.1), ne = reversed HF shape, types (1-D F32; 2-D --type, falling back
  q4_k->q5_0, q5_k->q5_1, q6_k->q8_0 when the row is a multiple of 32 but not of 256, else f16);
* data: Q/K rows (and biases) permuted for llama / smollm3 only (§3.3); F32/F16 exact, BF16,
  Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 byte-identical to ``gguf.quants.quantize`` of the (permuted) f32
  values; Q4_K/Q5_K/Q6_K decoded with ``gguf.quants.dequantize`` and checked by three bounds
  derived from the block formats (see ``kquant_check``);
* tokenizer keys from tokenizer.json (byte-level BPE -> gpt2, SentencePiece-style BPE -> llama):
  tokens by id padded with [PAD{i}], token types, merges (an empty array written for a
  tokenizer without merges), pre-tokenizer name, bos/eos, add_bos/add_eos; the arrays equal the
  fixture GGUFs made for the same vocabularies (gguf_spm.gguf, gguf_bpe.gguf); for SPM, llama.cpp's
  tokenizer (the port in make_tokenizer_fixtures.py) with the written tokens/scores/types gives
  gguf_spm.expected.json's ids.

GGUF -> HF (``NOPEKIT convert gguf/CASE.TYPE.gguf hf/CASE.TYPE [--dtype D] [--max-shard-size S]``):

* HF names and shapes; F32 round trip bit-identical to the source; Q8_0 equal to
  ``dequantize(quantize(permuted source))`` un-permuted, bit for bit; other types equal to
  ``dequantize`` of the GGUF's own bytes, un-permuted; --dtype f16/bf16 round to nearest even;
  shards + index with --max-shard-size;
* config.json: the listed fields equal the source's, model_type llama (all RoPE) or smollm3 with
  no_rope_layers (any NoPE layer), nopekit_position; pad_token_id null or inside the vocabulary
  (left out, it takes transformers' model_type default: 128004 for SmolLM3Config, which transformers
  then refuses as the embedding's padding_idx);
* tokenizer.json loads in PyPI tokenizers and encodes/decodes ~230 texts exactly as the original
  tokenizer.json (or, for the reference GGUFs, as the fixture's expected.json);
  tokenizer_config.json keeps add_bos_token/add_eos_token/bos_token/eos_token.

Finally the sources are unchanged (sha256).

``--self-test`` (no nopekit needed) runs every check against this script's own reference
converter (``--fake-nopekit``: a numpy implementation of the contract, with simple k-quant
quantisers) and expects all to pass, then against deliberately broken variants and expects each
break to be caught by the named checks.

Prints one line per check (PASS/FAIL; NOTE lines are informational only) and ends with
``interop: N passed, M failed``.  Exit status 0 iff M == 0.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np
import safetensors
import safetensors.numpy as stnp

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType as VT, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "scripts" / "reference"))
from harness import CheckFail, Runner, check_record, checksum_lines, expect_success, folder_record_names, parse_size, sha256_file, tree  # noqa: E402
from check_gguf import layout_check  # noqa: E402

BF16 = ml_dtypes.bfloat16

# --type -> (ggml type, general.file_type)  (LlamaFileType: 14 = MOSTLY_Q4_K_S, 16 = MOSTLY_Q5_K_S)
TYPES = {
    "f32": (QT.F32, 0), "f16": (QT.F16, 1), "bf16": (QT.BF16, 32), "q8_0": (QT.Q8_0, 7),
    "q4_0": (QT.Q4_0, 2), "q4_1": (QT.Q4_1, 3), "q5_0": (QT.Q5_0, 8), "q5_1": (QT.Q5_1, 9),
    "q4_k": (QT.Q4_K, 14), "q5_k": (QT.Q5_K, 16), "q6_k": (QT.Q6_K, 18),
}
ALL_TYPES = list(TYPES)
KQUANT_FALLBACK = {"q4_k": "q5_0", "q5_k": "q5_1", "q6_k": "q8_0"}
EXACT_QUANTS = {QT.BF16, QT.Q8_0, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1}
KQUANTS = {QT.Q4_K: 4, QT.Q5_K: 5, QT.Q6_K: 6}  # -> bits per code
# tokenizer.ggml.pre names llama.cpp's llama-vocab.cpp accepts that the contract allows
ACCEPTED_PRE = {"gpt-2", "llama-bpe", "llama3", "llama-v3", "qwen2", "smollm", "default"}
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER, TT_UNUSED, TT_BYTE = 1, 2, 3, 4, 5, 6
DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
HF_FIELDS = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
             "intermediate_size", "vocab_size", "rms_norm_eps", "rope_theta", "max_position_embeddings",
             "tie_word_embeddings", "bos_token_id", "eos_token_id", "torch_dtype"]
EXTRA_TEXTS = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "caf\u00e9 na\u00efve \u00e9t\u00e9 \u00fcber Stra\u00dfe \u2014 \U0001F600\U0001F389 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587",
    "   leading and   internal    runs\t\ttabs\n\n\nnewlines   ",
    "digits 0 12 345 6789 3.14159 1,000,000 2024-06-01",
    "",
]


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def read_json(p: Path):
    return json.loads(Path(p).read_text(encoding="utf-8"))


def write_json(p: Path, obj) -> None:
    Path(p).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def f32(x) -> float:
    return float(np.float32(x))


def load_hf_tensors(folder: Path) -> dict:
    """{name: ndarray} of an HF folder (model.safetensors or an index + shards), native dtypes."""
    idx = folder / "model.safetensors.index.json"
    files = sorted(set(read_json(idx)["weight_map"].values())) if idx.exists() else ["model.safetensors"]
    out = {}
    for fn in files:
        out.update(stnp.load_file(str(folder / fn)))
    return out


def to_f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).astype(np.float32)


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: HF rotate_half rows -> GGML adjacent pairs (formats.md §3.3)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def parse_position(s: str, n_layers: int) -> list[str]:
    """nopekit's position syntax -> ['rope'|'none'] per layer."""
    s = s.strip()
    if s == "none":
        return ["none"] * n_layers
    if s == "rope":
        return ["rope"] * n_layers
    m = re.fullmatch(r"every:(\d+)", s)
    if m:
        n = int(m.group(1))
        return ["none" if (i + 1) % n == 0 else "rope" for i in range(n_layers)]
    m = re.fullmatch(r"layers:(\d+(?:,\d+)*)", s)
    if m:
        nope = {int(x) for x in m.group(1).split(",")}
        if max(nope) >= n_layers:
            raise ValueError(f"layer {max(nope)} out of range")
        return ["none" if i in nope else "rope" for i in range(n_layers)]
    raise ValueError(f"not a position pattern: {s!r}")


def pattern_text(pos: list[str]) -> str:
    nope = [i for i, p in enumerate(pos) if p == "none"]
    if not nope:
        return "rope"
    if len(nope) == len(pos):
        return "none"
    return "layers:" + ",".join(map(str, nope))


# ---------------------------------------------------------------------------
# what a source folder is, and what the converter must do with it
# ---------------------------------------------------------------------------


class Spec:
    """The facts of an HF folder that the contract depends on."""

    def __init__(self, folder: Path):
        self.folder = folder
        c = self.cfg = read_json(folder / "config.json")
        self.model_type = c.get("model_type", "llama")
        self.layers = int(c["num_hidden_layers"])
        self.hidden = int(c["hidden_size"])
        self.heads = int(c["num_attention_heads"])
        self.kv = int(c.get("num_key_value_heads") or self.heads)
        self.head_dim = int(c.get("head_dim") or self.hidden // self.heads)
        self.inter = int(c["intermediate_size"])
        self.vocab = int(c["vocab_size"])
        self.eps = float(c.get("rms_norm_eps", 1e-6))
        rp = c.get("rope_parameters") or {}
        rs = c.get("rope_scaling") or {}
        self.theta = float(c.get("rope_theta", rp.get("rope_theta", 10000.0)))
        self.rope = {**rs, **rp}
        self.rope_type = self.rope.get("rope_type", self.rope.get("type", "default")) or "default"
        self.partial = float(c.get("partial_rotary_factor", rp.get("partial_rotary_factor", 1.0)) or 1.0)
        self.max_pos = int(c.get("max_position_embeddings", 2048))
        self.tied = bool(c.get("tie_word_embeddings", False))
        self.dtype_name = c.get("torch_dtype", c.get("dtype"))
        self.sliding = any(t == "sliding_attention" for t in (c.get("layer_types") or []))
        self.positions = self._positions()
        self.tensors = load_hf_tensors(folder)
        self.qk_norm = any(".q_norm." in n or ".k_norm." in n for n in self.tensors)
        kinds = {str(a.dtype) for a in self.tensors.values() if a.ndim == 2}
        self.float_type = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}.get(kinds.pop()) if len(kinds) == 1 else None
        self.has_tokenizer = (folder / "tokenizer.json").exists()

    def _positions(self) -> list[str]:
        c, L = self.cfg, self.layers
        if isinstance(c.get("nopekit_position"), str):
            return parse_position(c["nopekit_position"], L)
        if self.model_type == "smollm3":
            if isinstance(c.get("no_rope_layers"), list):
                return ["rope" if int(x) else "none" for x in c["no_rope_layers"]]
            n = int(c.get("no_rope_layer_interval", 4))
            return ["none" if (i + 1) % n == 0 else "rope" for i in range(L)]
        return ["rope"] * L

    @property
    def pattern(self) -> str:
        return pattern_text(self.positions)

    def outcome(self):
        """('convert', arch) | ('either', arch, why) | ('refuse', why, is_pattern)."""
        pos, L = self.positions, self.layers
        if all(p == "rope" for p in pos):
            arch = self.model_type if self.model_type in ("qwen2", "qwen3") else "llama"
        elif all(p == "none" for p in pos):
            arch = "granite"
        elif pos == ["none" if (i + 1) % 4 == 0 else "rope" for i in range(L)]:
            arch = "smollm3"
        else:
            return ("refuse", f"layer pattern {self.pattern} (neither all RoPE, all NoPE nor every 4th NoPE)", True)
        if self.sliding:
            return ("refuse", "sliding-window layers (llama / granite / smollm3 in llama.cpp attend globally)", False)
        if self.qk_norm and arch != "qwen3":
            return ("refuse", f"q/k norm tensors: llama.cpp's {arch} has no attn_q_norm / attn_k_norm (src/models/{arch}.cpp)", False)
        uses_rope = "rope" in pos
        if uses_rope and self.partial != 1.0:
            return ("refuse", "partial_rotary_factor != 1: llama.cpp's llama requires rope.dimension_count == head_dim ('invalid n_rot')", False)
        if uses_rope and self.rope_type in ("linear", "yarn", "llama3"):
            return ("either", arch, f"RoPE scaling {self.rope_type}")
        if uses_rope and self.rope_type != "default":
            return ("refuse", f"RoPE scaling {self.rope_type}", False)
        return ("convert", arch)


def permuted_arch(arch: str) -> bool:
    return arch in ("llama", "smollm3")


HF_TO_GGUF = [
    (r"model\.embed_tokens\.weight", "token_embd.weight"),
    (r"model\.norm\.weight", "output_norm.weight"),
    (r"lm_head\.weight", "output.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", "blk.{0}.attn_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", "blk.{0}.ffn_norm.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)", "blk.{0}.attn_q.{1}"),
    (r"model\.layers\.(\d+)\.self_attn\.k_proj\.(weight|bias)", "blk.{0}.attn_k.{1}"),
    (r"model\.layers\.(\d+)\.self_attn\.v_proj\.(weight|bias)", "blk.{0}.attn_v.{1}"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)", "blk.{0}.attn_output.{1}"),
    (r"model\.layers\.(\d+)\.self_attn\.q_norm\.weight", "blk.{0}.attn_q_norm.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.k_norm\.weight", "blk.{0}.attn_k_norm.weight"),
    (r"model\.layers\.(\d+)\.mlp\.gate_proj\.(weight|bias)", "blk.{0}.ffn_gate.{1}"),
    (r"model\.layers\.(\d+)\.mlp\.up_proj\.(weight|bias)", "blk.{0}.ffn_up.{1}"),
    (r"model\.layers\.(\d+)\.mlp\.down_proj\.(weight|bias)", "blk.{0}.ffn_down.{1}"),
]


def gguf_name(hf: str) -> str:
    for pat, tmpl in HF_TO_GGUF:
        m = re.fullmatch(pat, hf)
        if m:
            return tmpl.format(*m.groups())
    raise KeyError(f"no GGUF name for {hf}")


def hf_name(gg: str) -> str:
    for pat, tmpl in HF_TO_GGUF:
        rx = re.escape(tmpl).replace(r"\{0\}", r"(\d+)").replace(r"\{1\}", r"(weight|bias)")
        m = re.fullmatch(rx, gg)
        if m:
            hf = pat.replace(r"(\d+)", "{}").replace("(weight|bias)", "{}").replace("\\.", ".")
            return hf.format(*m.groups())
    raise KeyError(f"no HF name for {gg}")


def tensor_type(name_gg: str, ndim: int, ne0: int, type_name: str) -> QT:
    """The ggml type the contract prescribes for one tensor (formats.md §3.4 + the k-quant fallbacks)."""
    if ndim <= 1 or name_gg.endswith("_norm.weight") or not name_gg.endswith(".weight"):
        return QT.F32
    qt = TYPES[type_name][0]
    bs = GGML_QUANT_SIZES[qt][0]
    if ne0 % bs == 0:
        return qt
    if type_name in KQUANT_FALLBACK and ne0 % 32 == 0:
        return TYPES[KQUANT_FALLBACK[type_name]][0]
    return QT.F16


def encode_expected(qt: QT, x: np.ndarray) -> bytes:
    """Reference bytes for the exact types (gguf-py), x float32 in HF orientation [rows, cols]."""
    if qt == QT.F32:
        return np.ascontiguousarray(x, dtype=np.float32).tobytes()
    if qt == QT.F16:
        return x.astype(np.float16).tobytes()
    return np.ascontiguousarray(gguf.quants.quantize(x, qt)).tobytes()


def expected_tensors(spec: Spec, arch: str, type_name: str) -> list[dict]:
    """One dict per GGUF tensor: name, hf, ne, qt, values (permuted f32), n_head for the permutation."""
    out = []
    for hf, a in spec.tensors.items():
        g = gguf_name(hf)
        x = to_f32(a)
        n_head = None
        if permuted_arch(arch):
            if ".self_attn.q_proj." in hf:
                n_head = spec.heads
            elif ".self_attn.k_proj." in hf:
                n_head = spec.kv
        if n_head is not None:
            x = permute(x, n_head)
        ne = list(reversed(x.shape))
        out.append({"name": g, "hf": hf, "ne": ne, "qt": tensor_type(g, x.ndim, ne[0], type_name), "values": x,
                    "n_head": n_head})
    if arch in ("llama", "smollm3") and spec.rope_type == "llama3" and "rope" in spec.positions:
        out.append({"name": "rope_freqs.weight", "hf": None, "ne": [spec.head_dim // 2], "qt": QT.F32,
                    "values": llama3_rope_factors(spec), "n_head": None})
    return out


def llama3_rope_factors(spec: Spec) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.generate_extra_tensors for rope_type llama3."""
    r = spec.rope
    factor, lo, hi = float(r["factor"]), float(r.get("low_freq_factor", 1.0)), float(r.get("high_freq_factor", 4.0))
    old = float(r.get("original_max_position_embeddings", 8192))
    dim = spec.head_dim
    freqs = 1.0 / (spec.theta ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    lw, hw = old / lo, old / hi
    fac = []
    for fr in freqs:
        wl = 2 * math.pi / float(fr)
        if wl < hw:
            fac.append(1.0)
        elif wl > lw:
            fac.append(factor)
        else:
            sm = (old / wl - lo) / (hi - lo)
            fac.append(1.0 / ((1 - sm) / factor + sm))
    return np.array(fac, dtype=np.float32)


def expected_kvs(spec: Spec, arch: str, type_name: str) -> list[tuple]:
    """(key, gguf type names, value) the contract prescribes (value None: type only)."""
    a = arch
    rot = int(spec.head_dim * spec.partial) if arch != "granite" else spec.head_dim
    kvs = [
        ("general.architecture", ["STRING"], arch),
        ("general.type", ["STRING"], "model"),
        ("general.name", ["STRING"], None),
        (f"{a}.block_count", ["UINT32"], spec.layers),
        (f"{a}.context_length", ["UINT32"], spec.max_pos),
        (f"{a}.embedding_length", ["UINT32"], spec.hidden),
        (f"{a}.feed_forward_length", ["UINT32"], spec.inter),
        (f"{a}.attention.head_count", ["UINT32"], spec.heads),
        (f"{a}.attention.head_count_kv", ["UINT32"], spec.kv),
        (f"{a}.rope.freq_base", ["FLOAT32"], f32(spec.theta)),
        (f"{a}.attention.layer_norm_rms_epsilon", ["FLOAT32"], f32(spec.eps)),
        (f"{a}.attention.key_length", ["UINT32"], spec.head_dim),
        (f"{a}.attention.value_length", ["UINT32"], spec.head_dim),
        ("general.file_type", ["UINT32"], TYPES[type_name][1]),
        (f"{a}.vocab_size", ["UINT32"], spec.vocab),
        (f"{a}.rope.dimension_count", ["UINT32"], rot),
        ("general.quantization_version", ["UINT32"], 2),
        ("nopekit.position", ["STRING"], spec.positions),  # compared as a decoded pattern
    ]
    if arch == "granite":
        kvs += [("granite.rope.scaling.finetuned", ["BOOL"], False), ("granite.logit_scale", ["FLOAT32"], 1.0)]
    if "rope" in spec.positions and spec.rope_type in ("linear", "yarn"):
        r = spec.rope
        kvs += [(f"{a}.rope.scaling.type", ["STRING"], spec.rope_type),
                (f"{a}.rope.scaling.factor", ["FLOAT32"], f32(r["factor"]))]
        if spec.rope_type == "yarn":
            kvs.append((f"{a}.rope.scaling.original_context_length", ["UINT32"], int(r["original_max_position_embeddings"])))
    return kvs


# ---------------------------------------------------------------------------
# tokenizer expectations (formats.md §3.5)
# ---------------------------------------------------------------------------


def _components(obj):
    if isinstance(obj, dict):
        if "type" in obj:
            yield obj
        for v in obj.values():
            yield from _components(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _components(v)


def token_content(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


def tokenizer_expect(folder: Path, spec: Spec) -> dict | None:
    """Expected tokenizer.ggml.* values from tokenizer.json / tokenizer_config.json / config.json."""
    if not (folder / "tokenizer.json").exists():
        return None
    tj = read_json(folder / "tokenizer.json")
    tc = read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").exists() else {}
    model = tj["model"]
    comps = [c["type"] for part in ("normalizer", "pre_tokenizer", "decoder") for c in _components(tj.get(part))]
    if model.get("type") != "BPE":
        return {"kind": "unsupported"}
    spm = bool(model.get("byte_fallback")) and ("Metaspace" in comps or "Prepend" in comps)
    bytelevel = "ByteLevel" in comps
    id2tok = {i: t for t, i in model["vocab"].items()}
    added = {a["id"]: a for a in tj.get("added_tokens", [])}
    for i, a in added.items():
        id2tok[i] = a["content"]
    n = spec.vocab
    tokens = [id2tok.get(i, f"[PAD{i}]") for i in range(n)]
    unk = model.get("unk_token")
    types = []
    for i in range(n):
        t = id2tok.get(i)
        if t is None:
            types.append(TT_UNUSED)
        elif spm and t == unk:
            types.append(TT_UNKNOWN)
        elif i in added:
            types.append(TT_CONTROL if added[i].get("special") else TT_USER)
        elif spm and re.fullmatch(r"<0x[0-9A-F]{2}>", t):
            types.append(TT_BYTE)
        else:
            types.append(TT_NORMAL)
    tok2id = {t: i for i, t in id2tok.items()}

    def special(key, cfg_key):
        c = token_content(tc.get(key))
        if c is not None and c in tok2id:
            return tok2id[c]
        v = spec.cfg.get(cfg_key)
        return v if isinstance(v, int) else None

    e = {
        "kind": "spm" if spm else ("bytelevel" if bytelevel else "unsupported"),
        "tokens": tokens,
        "types": types,
        "merges": [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])],
        "bos": special("bos_token", "bos_token_id"),
        "eos": special("eos_token", "eos_token_id"),
        "add_bos": tc.get("add_bos_token"),
        "add_eos": tc.get("add_eos_token"),
    }
    if e["kind"] == "spm":
        e["model"], e["pre"] = "llama", {"default"}
    elif e["kind"] == "bytelevel":
        e["model"] = "gpt2"
        splits = [c for c in _components(tj.get("pre_tokenizer")) if c["type"] == "Split"]
        bl = [c for c in _components(tj.get("pre_tokenizer")) if c["type"] == "ByteLevel"]
        if any((c.get("pattern") or {}).get("Regex") == LLAMA3_PATTERN for c in splits):
            e["pre"] = {"llama-bpe", "llama3", "llama-v3"}
        elif not splits and bl and bl[0].get("use_regex", True):
            e["pre"] = {"gpt-2"}
        else:
            e["pre"] = ACCEPTED_PRE
    return e


# ---------------------------------------------------------------------------
# reading a GGUF
# ---------------------------------------------------------------------------


def read_fields(r: GGUFReader) -> dict:
    """key -> {'types': [...], 'value': contents, 'elem': array element type name or None}."""
    out = {}
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        types = [t.name for t in f.types]
        elem = None
        if types and types[0] == "ARRAY":
            elem = VT(int(f.parts[3][0])).name
        out[key] = {"types": types, "value": f.contents(), "elem": elem}
    return out


def open_gguf(path: Path):
    try:
        r = GGUFReader(str(path))
    except Exception as e:
        raise CheckFail(f"gguf.GGUFReader rejects {path.name}: {type(e).__name__}: {e}")
    fields = read_fields(r)
    tensors = {}
    order = []
    for t in r.tensors:
        tensors[t.name] = {"qt": QT(int(t.tensor_type)), "ne": [int(x) for x in t.shape],
                           "data": np.array(t.data, copy=True)}
        order.append(t.name)
    del r
    return fields, tensors, order


def tensor_values(t: dict) -> np.ndarray:
    """float32 values of a GGUF tensor in numpy (HF) orientation."""
    shape = tuple(reversed(t["ne"]))
    if t["qt"] == QT.F32:
        return t["data"].astype(np.float32).reshape(shape)
    if t["qt"] == QT.F16:
        return t["data"].view(np.float16).astype(np.float32).reshape(shape)
    return gguf.quants.dequantize(t["data"], t["qt"]).astype(np.float32).reshape(shape)


# ---------------------------------------------------------------------------
# k-quants: stored parameters (formats.md §2.6), bounds, and a simple quantiser (self-test)
# ---------------------------------------------------------------------------


def _fp16(b: np.ndarray, off: int) -> np.ndarray:
    return b[:, off:off + 2].copy().view(np.float16).astype(np.float64)[:, 0]


def _scale_min_k4(sc: np.ndarray):
    """12 packed bytes -> (scales [nb, 8], mins [nb, 8]) as in get_scale_min_k4."""
    s = np.zeros((sc.shape[0], 8), np.int64)
    m = np.zeros((sc.shape[0], 8), np.int64)
    b = sc.astype(np.int64)
    for i in range(4):
        s[:, i] = b[:, i] & 63
        m[:, i] = b[:, i + 4] & 63
    for i in range(4, 8):
        s[:, i] = (b[:, i + 4] & 0xF) | ((b[:, i - 4] >> 6) << 4)
        m[:, i] = (b[:, i + 4] >> 4) | ((b[:, i] >> 6) << 4)
    return s, m


def kquant_params(qt: QT, blocks: np.ndarray):
    """Per sub-block (step, lo, hi, n_levels-1), each [nb, n_sub], from the stored fields."""
    if qt in (QT.Q4_K, QT.Q5_K):
        d, dmin = _fp16(blocks, 0), _fp16(blocks, 2)
        s, m = _scale_min_k4(blocks[:, 4:16])
        nmax = 15 if qt == QT.Q4_K else 31
        step = d[:, None] * s
        lo = -dmin[:, None] * m
        return step, lo, lo + nmax * step, nmax
    if qt == QT.Q6_K:
        d = _fp16(blocks, 208)
        sc = blocks[:, 192:208].copy().view(np.int8).astype(np.float64)
        step = d[:, None] * sc
        a, b = -32 * step, 31 * step
        return step, np.minimum(a, b), np.maximum(a, b), 63
    raise ValueError(qt)


def kquant_check(qt: QT, x: np.ndarray, blocks: np.ndarray) -> str:
    """Three checks of a k-quant tensor against its f32 source x [rows, cols] (already permuted).

    1. rounding: every element is decoded to the representable value nearest to it, given the
       block's stored scales/mins: |err| <= max(|step|/2, distance outside [lo, hi]) + fp16 slack
       (llama.cpp's quantize_row_q*_K_ref end with exactly that nearest-code pass);
    2. max error per 256-block <= 1.5 steps of the grid that spans the block's [-amax, amax]
       (step 2 amax / (2^b - 1) for Q4_K/Q5_K, amax / 32 for Q6_K's -32..31 codes; bounds amax/5,
       amax/10.3, amax/21.3): half a step of rounding plus one step of clipping at the grid's ends
       (a scale search, the asymmetric Q6_K range, the int8 sub-scale clamp at 127 can each clip
       the element of opposite sign to the sub-block's max; e.g. 1.25 steps for Q6_K);
    3. RMS error of the tensor <= 1.5 x the uniform-rounding RMS (step/sqrt 12) of the ideal grid
       per sub-block (range / (2^b - 1) for Q4_K/Q5_K's affine 32-element sub-blocks,
       amax / 32 for Q6_K's symmetric 16-element ones): a quantiser one bit short fails (2x).
    """
    bits = KQUANTS[qt]
    xb = x.astype(np.float64).reshape(-1, 256)
    deq = gguf.quants.dequantize(blocks.reshape(-1, GGML_QUANT_SIZES[qt][1]), qt).astype(np.float64).reshape(-1, 256)
    if deq.shape != xb.shape:
        raise CheckFail(f"{deq.size} decoded values for {xb.size} source values")
    err = np.abs(deq - xb)
    step, lo, hi, nmax = kquant_params(qt, blocks.reshape(-1, GGML_QUANT_SIZES[qt][1]))
    sub = 256 // step.shape[1]
    rep = lambda a: np.repeat(a, sub, axis=1)  # noqa: E731
    astep, lo_e, hi_e = np.abs(rep(step)), rep(lo), rep(hi)
    outside = np.maximum(np.maximum(lo_e - xb, xb - hi_e), 0.0)
    slack = astep * (nmax + 1) * 2.0 ** -10 + np.abs(lo_e) * 2.0 ** -10 + np.abs(xb) * 1e-6 + 1e-12
    bad = err > np.maximum(astep / 2, outside) + slack
    if bad.any():
        i = np.argwhere(bad)[0]
        blk, k = int(i[0]), int(i[1])
        raise CheckFail(f"element {blk * 256 + k}: source {xb[blk, k]:.6g}, decoded {deq[blk, k]:.6g}: not the nearest value "
                        f"of its sub-block's grid (step {astep[blk, k]:.3g}, range [{lo_e[blk, k]:.4g}, {hi_e[blk, k]:.4g}]); "
                        f"{int(bad.sum())} such elements")
    amax = np.abs(xb).max(axis=1)
    rel = 1.5 * (1 / 32 if qt == QT.Q6_K else 2 / (2 ** bits - 1))
    bound = rel * amax
    worst = err.max(axis=1)
    over = worst > bound + 1e-12
    if over.any():
        blk = int(np.argmax(worst / np.maximum(bound, 1e-30)))
        raise CheckFail(f"block {blk}: max error {worst[blk]:.4g} > 1.5 grid steps = {rel:.4f} * amax = {bound[blk]:.4g} "
                        f"(amax {amax[blk]:.4g}); {int(over.sum())} of {len(over)} blocks over")
    if qt == QT.Q6_K:
        s16 = xb.reshape(-1, 16)
        ideal = np.abs(s16).max(axis=1) / 32
    else:
        s32 = xb.reshape(-1, 32)
        ideal = (s32.max(axis=1) - np.minimum(s32.min(axis=1), 0.0)) / (2 ** bits - 1)
    rms_ideal = math.sqrt(float(np.mean(ideal ** 2)) / 12)
    rms = math.sqrt(float(np.mean(err ** 2)))
    if rms > 1.5 * rms_ideal:
        raise CheckFail(f"RMS error {rms:.4g} > 1.5 x ideal {rms_ideal:.4g} (ratio {rms / rms_ideal:.2f})")
    return f"max err/amax {float((worst / np.maximum(amax, 1e-30)).max()):.4f} (bound {rel:.4f}), RMS/ideal {rms / rms_ideal:.2f}"


def _pack_scale_min_k4(s: np.ndarray, m: np.ndarray) -> np.ndarray:
    b = np.zeros((s.shape[0], 12), np.uint8)
    for j in range(4):
        b[:, j] = (s[:, j] & 63) | ((s[:, j + 4] >> 4) << 6)
        b[:, j + 4] = (m[:, j] & 63) | ((m[:, j + 4] >> 4) << 6)
    for j in range(4, 8):
        b[:, j + 4] = (s[:, j] & 0xF) | ((m[:, j] & 0xF) << 4)
    return b


def simple_kquant(x: np.ndarray, qt: QT, coarse: bool = False, swap_nibbles: bool = False) -> np.ndarray:
    """A plain k-quant quantiser (no search): per sub-block range -> 6-bit / int8 sub-scales ->
    nearest codes with the stored scales. Only for the self-test's reference converter."""
    rows = x.shape[0]
    xb = x.astype(np.float32).reshape(-1, 256)
    nb = xb.shape[0]
    if qt in (QT.Q4_K, QT.Q5_K):
        nmax = 15 if qt == QT.Q4_K else 31
        levels = (nmax + 1) // 2 - 1 if coarse else nmax
        s32 = xb.reshape(nb, 8, 32)
        mn = np.minimum(s32.min(axis=2), 0.0)
        scale = (s32.max(axis=2) - mn) / levels
        mins = -mn
        ms, mm = scale.max(axis=1), mins.max(axis=1)
        d = (ms / 63).astype(np.float16)
        dmin = (mm / 63).astype(np.float16)
        with np.errstate(divide="ignore", invalid="ignore"):
            sc = np.where(ms[:, None] > 0, np.rint(scale * (63 / ms[:, None])), 0).clip(0, 63).astype(np.int64)
            mq = np.where(mm[:, None] > 0, np.rint(mins * (63 / mm[:, None])), 0).clip(0, 63).astype(np.int64)
            stp = d.astype(np.float32)[:, None] * sc
            off = dmin.astype(np.float32)[:, None] * mq
            q = np.where(stp[:, :, None] > 0, np.rint((s32 + off[:, :, None]) / stp[:, :, None]), 0)
        q = q.clip(0, nmax).astype(np.uint8).reshape(nb, 256)
        out = [d.view(np.uint8).reshape(nb, 2), dmin.view(np.uint8).reshape(nb, 2), _pack_scale_min_k4(sc, mq)]
        lo4 = q & 0xF
        qs = np.zeros((nb, 128), np.uint8)
        for j in range(4):
            a, b = lo4[:, 64 * j:64 * j + 32], lo4[:, 64 * j + 32:64 * j + 64]
            if swap_nibbles:
                a, b = b, a
            qs[:, 32 * j:32 * j + 32] = a | (b << 4)
        if qt == QT.Q5_K:
            hi = (q >> 4) & 1
            qh = np.zeros((nb, 32), np.uint8)
            for j in range(4):
                qh |= hi[:, 64 * j:64 * j + 32] << (2 * j)
                qh |= hi[:, 64 * j + 32:64 * j + 64] << (2 * j + 1)
            out.append(qh)
        out.append(qs)
        return np.concatenate(out, axis=1).reshape(rows, -1)
    if qt == QT.Q6_K:
        s16 = xb.reshape(nb, 16, 16)
        idx = np.abs(s16).argmax(axis=2)
        mx = np.take_along_axis(s16, idx[:, :, None], axis=2)[:, :, 0]
        nlev = 16 if coarse else 32
        scale = np.where(mx != 0, -mx / nlev, 0.0)
        big = np.take_along_axis(scale, np.abs(scale).argmax(axis=1)[:, None], axis=1)[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            isc = np.where(big != 0, -128.0 / big, 0.0)
            d = np.where(isc != 0, 1.0 / isc, 0.0).astype(np.float16)
            sc = np.minimum(127, np.rint(isc[:, None] * scale)).clip(-128, 127).astype(np.int8)
            stp = d.astype(np.float32)[:, None] * sc.astype(np.float32)
            q = np.where(stp[:, :, None] != 0, np.rint(s16 / stp[:, :, None]), 0)
        q = (q.clip(-32, 31) + 32).astype(np.uint8).reshape(nb, 256)
        ql = np.zeros((nb, 128), np.uint8)
        qh = np.zeros((nb, 64), np.uint8)
        for h in range(2):
            y = q[:, 128 * h:128 * h + 128]
            q0, q1, q2, q3 = y[:, 0:32], y[:, 32:64], y[:, 64:96], y[:, 96:128]
            if swap_nibbles:
                q0, q2 = q2, q0
            ql[:, 64 * h:64 * h + 32] = (q0 & 0xF) | ((q2 & 0xF) << 4)
            ql[:, 64 * h + 32:64 * h + 64] = (q1 & 0xF) | ((q3 & 0xF) << 4)
            qh[:, 32 * h:32 * h + 32] = (q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6)
        return np.concatenate([ql, qh, sc.view(np.uint8), d.view(np.uint8).reshape(nb, 2)], axis=1).reshape(rows, -1)
    raise ValueError(qt)


# ---------------------------------------------------------------------------
# reference GGUF writer (the contract in numpy + gguf-py): the reference GGUFs of the GGUF -> HF
# checks, and the self-test's fake nopekit
# ---------------------------------------------------------------------------


class Writer(GGUFWriter):
    """GGUFWriter that also writes an empty array (gguf-py refuses; llama.cpp needs an empty merges array)."""

    def _pack_val(self, val, vtype, add_vtype, sub_type=None):
        if vtype == VT.ARRAY and len(val) == 0 and sub_type is not None:
            return (self._pack("I", vtype) if add_vtype else b"") + self._pack("I", sub_type) + self._pack("Q", 0)
        return super()._pack_val(val, vtype, add_vtype, sub_type)


def spm_scores(e: dict, folder: Path) -> list[float]:
    """SentencePiece-style scores from the merge ranks: -rank of the first merge that yields a token, 0 otherwise."""
    tj = read_json(folder / "tokenizer.json")
    rank = {}
    for i, m in enumerate(tj["model"].get("merges", [])):
        a, b = (m.split(" ", 1) if isinstance(m, str) else m)
        rank.setdefault(a + b, i)
    return [-float(rank[t]) if t in rank else 0.0 for t in e["tokens"]]


def tokenizer_kvs(spec: Spec, breaks=frozenset()) -> list[tuple]:
    e = tokenizer_expect(spec.folder, spec)
    kvs = []
    if e is None:
        kvs.append(("tokenizer.ggml.model", "none", VT.STRING, None))
        for key, v in (("bos", spec.cfg.get("bos_token_id")), ("eos", spec.cfg.get("eos_token_id"))):
            if isinstance(v, int):
                kvs.append((f"tokenizer.ggml.{key}_token_id", v, VT.UINT32, None))
        return kvs
    tokens, types = list(e["tokens"]), list(e["types"])
    if "no_pad" in breaks:
        n = sum(1 for t in types if t != TT_UNUSED)
        tokens, types = tokens[:n], types[:n]
    if "pad_type" in breaks:
        types = [TT_NORMAL if t == TT_UNUSED else t for t in types]
    pre = sorted(e["pre"])[0] if "default" not in e["pre"] else "default"
    if "pre_gpt2" in breaks and e["kind"] == "bytelevel":
        pre = "gpt-2" if pre != "gpt-2" else "llama-bpe"
    kvs += [("tokenizer.ggml.model", e["model"], VT.STRING, None), ("tokenizer.ggml.pre", pre, VT.STRING, None),
            ("tokenizer.ggml.tokens", tokens, VT.ARRAY, VT.STRING)]
    if e["kind"] == "spm":
        scores = [0.0] * len(tokens) if "spm_const_scores" in breaks else spm_scores(e, spec.folder)
        kvs.append(("tokenizer.ggml.scores", scores, VT.ARRAY, VT.FLOAT32))
    kvs.append(("tokenizer.ggml.token_type", types, VT.ARRAY, VT.INT32))
    if e["kind"] == "bytelevel" and not ("no_empty_merges" in breaks and not e["merges"]):
        kvs.append(("tokenizer.ggml.merges", e["merges"], VT.ARRAY, VT.STRING))
    if e["bos"] is not None:
        kvs.append(("tokenizer.ggml.bos_token_id", e["bos"] + (1 if "bos_off" in breaks else 0), VT.UINT32, None))
    if e["eos"] is not None:
        kvs.append(("tokenizer.ggml.eos_token_id", e["eos"], VT.UINT32, None))
    if e["add_bos"] is not None:
        kvs.append(("tokenizer.ggml.add_bos_token", bool(e["add_bos"]), VT.BOOL, None))
    if e["add_eos"] is not None:
        kvs.append(("tokenizer.ggml.add_eos_token", bool(e["add_eos"]), VT.BOOL, None))
    return kvs


def write_reference_gguf(spec: Spec, arch: str, type_name: str, out: Path, tok_kvs: list, position: str,
                         breaks=frozenset(), extra_kvs=()) -> None:
    a = arch
    w = Writer(str(out), arch)
    kv = []
    for key, tps, val in expected_kvs(spec, arch, type_name):
        if key in ("general.architecture", "general.quantization_version", "nopekit.position"):
            continue
        if key == "general.name":
            val = spec.folder.name
        vt = VT[tps[0]]
        if key == "general.file_type" and "file_type" in breaks:
            val = val + 1
        if key == f"{a}.attention.layer_norm_rms_epsilon" and "eps_f64" in breaks:
            vt = VT.FLOAT64
        if key == "granite.logit_scale" and "logit_scale_f64" in breaks:
            vt = VT.FLOAT64
        if key == "granite.rope.scaling.finetuned" and "finetuned_true" in breaks:
            val = True
        kv.append((key, val, vt, None))
    kv += [(k, v, t, s) for k, v, t, s in tok_kvs]
    kv.append(("general.quantization_version", 2, VT.UINT32, None))
    kv.append(("nopekit.position", position, VT.STRING, None))
    kv += list(extra_kvs)
    for key, val, vt, sub in kv:
        w.add_key_value(key, val, vt, sub_type=sub)
    for t in expected_tensors(spec, arch, type_name):
        x = t["values"]
        if t["n_head"] is not None:
            if "no_permute" in breaks:
                x = to_f32(spec.tensors[t["hf"]])
        elif "permute_granite" in breaks and arch == "granite" and (".attn_q." in t["name"] or ".attn_k." in t["name"]):
            x = permute(x, spec.heads if ".attn_q." in t["name"] else spec.kv)
        qt = t["qt"]
        if "norm_f16" in breaks and qt == QT.F32 and x.ndim == 1:
            qt = QT.F16
        if "fallback_f16" in breaks and qt in (QT.Q5_0, QT.Q5_1, QT.Q8_0) and type_name in KQUANT_FALLBACK:
            qt = QT.F16
        if qt == QT.F32:
            w.add_tensor(t["name"], np.ascontiguousarray(x, dtype=np.float32))
        elif qt == QT.F16:
            w.add_tensor(t["name"], x.astype(np.float16))
        elif qt in KQUANTS:
            raw = simple_kquant(x, qt, coarse="kquant_coarse" in breaks, swap_nibbles="kquant_swap" in breaks)
            w.add_tensor(t["name"], raw, raw_shape=raw.shape, raw_dtype=qt)
        else:
            raw = gguf.quants.quantize(x, qt)
            if "quant_bitflip" in breaks and qt == QT.Q8_0:
                raw = raw.copy()
                raw.flat[raw.size // 2] ^= 1
            w.add_tensor(t["name"], raw, raw_shape=raw.shape, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def fake_nopekit(argv: list[str]) -> int:
    """The self-test's stand-in for `nopekit convert` (the contract in numpy); NOPEKIT_FAKE_BREAK
    selects a deliberate defect."""
    breaks = frozenset(filter(None, os.environ.get("NOPEKIT_FAKE_BREAK", "").split(",")))
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--type")
    ap.add_argument("--dtype")
    ap.add_argument("--max-shard-size")
    a = ap.parse_args(argv)
    src, out = Path(a.input), Path(a.output)
    if out.exists():
        print(f"error: {out} exists", file=sys.stderr)
        return 1
    if src.is_dir() and out.suffix == ".gguf":
        if "touch_source" in breaks:
            (src / "config.json").write_text((src / "config.json").read_text() + " ")
        spec = Spec(src)
        oc = spec.outcome()
        if "accept_hybrid" in breaks and oc[0] == "refuse" and oc[2]:
            oc = ("convert", "llama")
        if oc[0] == "refuse" or (oc[0] == "either" and oc[2].endswith("llama3")):
            if "refuse_partial" in breaks:
                Path(str(out) + ".nopekit-partial-1").write_bytes(b"x")
            msg = oc[1] if oc[0] == "refuse" else oc[2]
            if "refuse_no_pattern" in breaks:
                msg = "unsupported model"
            print(f"error: {src}: cannot write a GGUF llama.cpp runs correctly: {msg}", file=sys.stderr)
            return 2 if "refuse_exit2" in breaks else 1
        arch = oc[1]
        type_name = a.type or spec.float_type
        tmp = Path(str(out) + f".nopekit-partial-{os.getpid()}")
        extra = [("selftest.source", str(src.resolve()), VT.STRING, None)]
        position = "every:4" if arch == "smollm3" else spec.pattern
        write_reference_gguf(spec, arch, type_name, tmp, tokenizer_kvs(spec, breaks), position, breaks, extra)
        tmp.rename(out)
        Path(str(out) + ".sha256").write_text(checksum_lines(out.parent, [out.name]))
        if "leave_tmp" in breaks:
            Path(str(out) + ".nopekit-partial-9").write_bytes(b"x")
        return 0
    if src.suffix == ".gguf":
        return fake_to_hf(src, out, a, breaks)
    print("error: unsupported", file=sys.stderr)
    return 1


def fake_to_hf(src: Path, out: Path, a, breaks) -> int:
    fields, tensors, order = open_gguf(src)
    g = lambda k, d=None: fields[k]["value"] if k in fields else d  # noqa: E731
    arch = g("general.architecture")
    L = g(f"{arch}.block_count")
    pos = parse_position(g("nopekit.position", "rope"), L)
    heads, kv = g(f"{arch}.attention.head_count"), g(f"{arch}.attention.head_count_kv")
    vals = {}
    kinds = set()
    for name in order:
        if name == "rope_freqs.weight":
            continue
        t = tensors[name]
        x = tensor_values(t)
        if permuted_arch(arch) and "back_no_unpermute" not in breaks:
            if ".attn_q." in name:
                x = unpermute(x, heads)
            elif ".attn_k." in name:
                x = unpermute(x, kv)
        vals[hf_name(name)] = x
        if x.ndim == 2:
            kinds.add(t["qt"])
    dt = a.dtype or ({QT.F16: "f16", QT.BF16: "bf16"}.get(kinds.pop(), "f32") if len(kinds) == 1 else "f32")
    np_dt = {"f32": np.float32, "f16": np.float16, "bf16": BF16}[dt]
    vals = {k: v.astype(np_dt) for k, v in vals.items()}
    tmp = Path(str(out) + ".nopekit-partial")
    tmp.mkdir()
    if a.max_shard_size and "back_shard_ignore" not in breaks:
        from hf_layout import hf_split
        names = list(vals)
        shards = hf_split([(n, vals[n].nbytes) for n in names], parse_size(a.max_shard_size))
        wm = {}
        for i, sh in enumerate(shards):
            fn = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            stnp.save_file({n: vals[n] for n in sh}, str(tmp / fn), metadata={"format": "pt"})
            wm.update({n: fn for n in sh})
        write_json(tmp / "model.safetensors.index.json", {"metadata": {"total_size": sum(v.nbytes for v in vals.values())}, "weight_map": wm})
    else:
        stnp.save_file(vals, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    eps = g(f"{arch}.attention.layer_norm_rms_epsilon")
    cfg = {
        "architectures": ["LlamaForCausalLM" if all(p == "rope" for p in pos) else "SmolLM3ForCausalLM"],
        "model_type": "llama" if all(p == "rope" for p in pos) else "smollm3",
        "hidden_size": g(f"{arch}.embedding_length"), "num_hidden_layers": L, "num_attention_heads": heads,
        "num_key_value_heads": kv, "head_dim": g(f"{arch}.attention.key_length"),
        "intermediate_size": g(f"{arch}.feed_forward_length"), "vocab_size": g(f"{arch}.vocab_size"),
        "rms_norm_eps": eps if "back_eps_double" in breaks else float(str(np.float32(eps))),
        "rope_theta": float(str(np.float32(g(f"{arch}.rope.freq_base")))),
        "max_position_embeddings": g(f"{arch}.context_length"),
        "tie_word_embeddings": "output.weight" not in tensors,
        "torch_dtype": {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[dt],
        "nopekit_position": g("nopekit.position", "rope"),
    }
    if arch in ("qwen2", "qwen3"):
        cfg["model_type"] = arch
    if cfg["model_type"] == "smollm3":
        cfg["no_rope_layers"] = [1 if p == "rope" else 0 for p in pos]
    if "back_model_type" in breaks:
        cfg["model_type"] = "llama"
    if "back_no_pad" not in breaks:
        cfg["pad_token_id"] = None
    st = g(f"{arch}.rope.scaling.type")
    if st:
        cfg["rope_scaling"] = {"rope_type": st, "factor": float(str(np.float32(g(f"{arch}.rope.scaling.factor"))))}
        if st == "yarn":
            cfg["rope_scaling"]["original_max_position_embeddings"] = g(f"{arch}.rope.scaling.original_context_length")
    for k in ("bos", "eos"):
        v = g(f"tokenizer.ggml.{k}_token_id")
        if v is not None:
            cfg[f"{k}_token_id"] = v
    write_json(tmp / "config.json", cfg)
    tokdir = g("selftest.tokenizer_dir") or g("selftest.source")
    if tokdir and (Path(tokdir) / "tokenizer.json").exists():
        tj = read_json(Path(tokdir) / "tokenizer.json")
        if "back_tok_ignore_merges" in breaks and tj["model"].get("ignore_merges"):
            tj["model"]["ignore_merges"] = False
        write_json(tmp / "tokenizer.json", tj)
        if (Path(tokdir) / "tokenizer_config.json").exists():
            shutil.copyfile(Path(tokdir) / "tokenizer_config.json", tmp / "tokenizer_config.json")
    (tmp / "SHA256SUMS").write_text(checksum_lines(tmp, folder_record_names(tmp)))
    tmp.rename(out)
    return 0


# ---------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------

OWNED = ["src", "gguf", "hf", "refuse", "ref"]
PRODUCED: set[str] = set()  # outputs of successful conversions, relative to WORKDIR
SWEEP_CASES = {"organism", "llama_gqa4_tied_bias", "kq"}
# F16 / BF16 sources have many exact rounding ties: the block quantisers must round exactly as gguf-py
EXTRA_TYPES = {"llama_gqa2_nope": ["q8_0", "q4_k"], "tok_spm_normalizer": ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"],
               "tok_gpt2": ["bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q6_k"]}


def llama_cfg(**kw) -> dict:
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 61, "hidden_size": 64,
         "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "head_dim": 16, "hidden_act": "silu", "max_position_embeddings": 512, "rms_norm_eps": 1e-05,
         "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "rope_theta": 10000.0,
         "rope_scaling": None, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
    c.update(kw)
    return c


def random_weights(c: dict, rng, qkv_bias=False, qk_norm=False) -> dict:
    D, I, V, hd = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["head_dim"]
    H, KV = c["num_attention_heads"], c["num_key_value_heads"]

    def n(*shape, std=1.0, mean=0.0):
        return (mean + std * rng.standard_normal(shape)).astype(np.float32)

    W = {"model.embed_tokens.weight": n(V, D, std=0.5)}
    for li in range(c["num_hidden_layers"]):
        p = f"model.layers.{li}."
        W[p + "input_layernorm.weight"] = n(D, std=0.1, mean=1.0)
        W[p + "self_attn.q_proj.weight"] = n(H * hd, D, std=1.5 / math.sqrt(D))
        W[p + "self_attn.k_proj.weight"] = n(KV * hd, D, std=1.5 / math.sqrt(D))
        W[p + "self_attn.v_proj.weight"] = n(KV * hd, D, std=1 / math.sqrt(D))
        W[p + "self_attn.o_proj.weight"] = n(D, H * hd, std=1 / math.sqrt(H * hd))
        if qkv_bias:
            W[p + "self_attn.q_proj.bias"] = n(H * hd, std=0.3)
            W[p + "self_attn.k_proj.bias"] = n(KV * hd, std=0.3)
            W[p + "self_attn.v_proj.bias"] = n(KV * hd, std=0.1)
        if qk_norm:
            W[p + "self_attn.q_norm.weight"] = n(hd, std=0.2, mean=1.5)
            W[p + "self_attn.k_norm.weight"] = n(hd, std=0.2, mean=1.5)
        W[p + "post_attention_layernorm.weight"] = n(D, std=0.1, mean=1.0)
        W[p + "mlp.gate_proj.weight"] = n(I, D, std=1 / math.sqrt(D))
        W[p + "mlp.up_proj.weight"] = n(I, D, std=1 / math.sqrt(D))
        W[p + "mlp.down_proj.weight"] = n(D, I, std=1 / math.sqrt(I))
    W["model.norm.weight"] = n(D, std=0.1, mean=1.0)
    if not c["tie_word_embeddings"]:
        W["lm_head.weight"] = n(V, D, std=2 / math.sqrt(D))
    return W


def write_folder(folder: Path, cfg: dict, weights: dict, dtype=np.float32, tokenizer: Path | None = None) -> None:
    folder.mkdir(parents=True)
    write_json(folder / "config.json", cfg)
    stnp.save_file({k: v.astype(dtype) for k, v in weights.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer is not None:
        for fn in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(tokenizer / fn, folder / fn)


def copy_folder(src: Path, dst: Path, edit=None) -> None:
    dst.mkdir(parents=True)
    for p in sorted(src.iterdir()):
        if p.name == "config.json" or p.name.startswith("tokenizer") or (p.name.startswith("model") and p.suffix in (".safetensors", ".json")):
            shutil.copyfile(p, dst / p.name)
    if edit is not None:
        c = read_json(dst / "config.json")
        edit(c)
        write_json(dst / "config.json", c)


def build_sources(fx: Path, src: Path) -> list[str]:
    """Copies / builds every source folder under src; returns the case names in run order."""
    names = []
    for d in sorted((fx / "engine").iterdir()):
        if (d / "config.json").exists():
            copy_folder(d, src / d.name)
            names.append(d.name)
    copy_folder(fx / "organism", src / "organism")
    names.insert(0, "organism")
    rng = np.random.default_rng(20240611)
    kc = llama_cfg(architectures=["SmolLM3ForCausalLM"], model_type="smollm3", vocab_size=300, hidden_size=256,
                   intermediate_size=288, num_hidden_layers=4, head_dim=64, rms_norm_eps=1e-06, rope_theta=100000.0,
                   no_rope_layers=[1, 1, 1, 0], no_rope_layer_interval=4)
    write_folder(src / "kq", kc, random_weights(kc, rng))
    copy_folder(src / "llama_mha_rope", src / "mistral",
                lambda c: c.update(model_type="mistral", architectures=["MistralForCausalLM"], sliding_window=None))
    qc = llama_cfg(architectures=["Qwen2ForCausalLM"], model_type="qwen2", rms_norm_eps=1e-06, rope_theta=1000000.0,
                   use_sliding_window=False, sliding_window=None)
    write_folder(src / "qwen2", qc, random_weights(qc, rng, qkv_bias=True))
    copy_folder(src / "qknorm_nope", src / "qwen3_rope", lambda c: c.pop("nopekit_position"))
    tk = fx / "tokenizers"
    for name, tok, vocab, dtype, extra in [
        ("tok_spm_metaspace", "spm_metaspace", 1000, np.float32, {}),
        ("tok_spm_normalizer", "spm_normalizer", 1000, np.float16, {"torch_dtype": "float16"}),
        ("tok_llama3", "bytelevel_llama3", 1508, np.float32, {"bos_token_id": 1500, "eos_token_id": 1501, "rope_theta": 500000.0}),
        ("tok_gpt2", "bytelevel_gpt2", 1004, BF16, {"bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "bfloat16",
                                                   "nopekit_position": "none"}),
    ]:
        c = llama_cfg(vocab_size=vocab, **extra)
        write_folder(src / name, c, random_weights(c, rng), dtype=dtype, tokenizer=tk / tok)
    names += ["kq", "mistral", "qwen2", "qwen3_rope", "tok_spm_metaspace", "tok_spm_normalizer", "tok_llama3", "tok_gpt2"]
    copy_folder(src / "smollm3_every4", src / "pat_smollm3_layer0", lambda c: c.update(no_rope_layers=[0, 1, 1, 1]))
    copy_folder(src / "llama_gqa2_nope", src / "pat_gqa2_layer1", lambda c: c.update(nopekit_position="layers:1"))
    copy_folder(src / "organism", src / "pat_organism_every2", lambda c: c.update(nopekit_position="every:2"))
    names += ["pat_smollm3_layer0", "pat_gqa2_layer1", "pat_organism_every2"]
    # HF truth of the reference GGUFs (GGUF -> HF only)
    c = llama_cfg(vocab_size=1508, bos_token_id=1500, eos_token_id=1501)
    write_folder(src / "ref_bpe", c, random_weights(c, rng))
    c = llama_cfg(vocab_size=1000, nopekit_position="none", torch_dtype="float16", tie_word_embeddings=True)
    write_folder(src / "ref_spm", c, random_weights(c, rng), dtype=np.float16)
    return names


def fixture_kvs(path: Path) -> list[tuple]:
    """The tokenizer.ggml.* entries of a fixture GGUF, for a reference GGUF."""
    r = GGUFReader(str(path))
    out = []
    for key, f in r.fields.items():
        if key.startswith("tokenizer."):
            types = [t.name for t in f.types]
            out.append((key, f.contents(), VT[types[0]], VT[types[1]] if len(types) > 1 else None))
    return out


def texts_for_round_trip(fx: Path) -> list[str]:
    return EXTRA_TEXTS + [rec["text"] for rec in read_json(fx / "tokenizers" / "bytelevel_llama3" / "expected.json")]


# ---------------------------------------------------------------------------
# checks: HF -> GGUF
# ---------------------------------------------------------------------------


def named_pattern(err: str, spec: Spec) -> bool:
    """stderr names the pattern: a nopekit pattern string in it decodes to the model's per-layer
    pattern (e.g. "every:2" for NoPE on layer 1 of 3), or it says "layer" and lists every NoPE layer."""
    for m in re.finditer(r"\b(every:\d+|layers:\d+(?:,\d+)*)", err):
        try:
            if parse_position(m.group(1), spec.layers) == spec.positions:
                return True
        except ValueError:
            pass
    nope = {str(i) for i, p in enumerate(spec.positions) if p == "none"}
    return "layer" in err.lower() and nope <= set(re.findall(r"\d+", err))


def check_refusal(r: Runner, work: Path, case: str, spec: Spec, why: str, is_pattern: bool, args=()) -> None:
    out = Path("refuse") / f"{case}.gguf"

    def refused():
        before = tree(work / "refuse")
        proc, cmdline = r.run("convert", f"src/{case}", out, *args)
        if proc is None:
            raise CheckFail(cmdline)
        err = proc.stderr.decode("utf-8", "replace").strip()
        if proc.returncode == 0:
            raise CheckFail(f"`{cmdline}` exited 0; expected a refusal: {why}")
        if is_pattern and proc.returncode != 1:
            raise CheckFail(f"exit code {proc.returncode}, the contract says 1 for a refused layer pattern; stderr: {err[-300:]!r}")
        if not err:
            raise CheckFail("nothing on stderr")
        said = err.replace(str(work / "src" / case), "").replace(f"src/{case}", "").replace(case, "")  # not the path's digits
        if is_pattern and not named_pattern(said, spec) and not (spec.sliding and "sliding" in said.lower()):
            raise CheckFail(f"stderr does not name the pattern {spec.pattern} (NoPE layers "
                            f"{[i for i, p in enumerate(spec.positions) if p == 'none']}): {err[-300:]!r}")
        after = tree(work / "refuse")
        if after != before:
            raise CheckFail(f"left files behind: {sorted(after - before)[:6]}; removed {sorted(before - after)[:6]}")
        return f"exit {proc.returncode}: {err.splitlines()[-1][:150]}"

    label = f"src/{case}{' ' + ' '.join(args) if args else ''}"
    r.check(f"convert {label} -> GGUF refused ({'pattern ' + spec.pattern if is_pattern else why}): "
            f"{('exit 1, stderr names the pattern' + (' or the sliding window' if spec.sliding else '')) if is_pattern else 'non-zero exit, a message'}, no OUT and no OUT.* left", refused)


def forward(r: Runner, work: Path, case: str, spec: Spec, tname: str | None, fx: Path) -> dict | None:
    """Convert src/CASE to gguf/CASE.TNAME.gguf and check it. Returns the state for the way back."""
    oc = spec.outcome()
    if oc[0] == "refuse":
        if tname is None:
            check_refusal(r, work, case, spec, oc[1], oc[2])
            if oc[2] and case.startswith("pat_"):
                check_refusal(r, work, case, spec, oc[1], oc[2], ("--type", "q4_k"))
        return None
    arch = oc[1]
    type_name = tname or spec.float_type
    tag = tname or "default"
    out = Path("gguf") / f"{case}.{tag}.gguf"
    args = ["--type", tname] if tname else []
    before = tree(work / "gguf")
    proc, cmdline = r.run("convert", f"src/{case}", out, *args)
    label = f"{case}.{tag}.gguf"
    if oc[0] == "either" and proc is not None and proc.returncode != 0:
        def clean_refusal():
            err = proc.stderr.decode("utf-8", "replace").strip()
            if not err:
                raise CheckFail("non-zero exit without a message")
            after = tree(work / "gguf")
            if after != before:
                raise CheckFail(f"left files behind: {sorted(after - before)[:6]}")
            if spec.rope_type not in err and "rope" not in err.lower():
                raise CheckFail(f"the message does not name the RoPE scaling ({spec.rope_type}): {err[-200:]!r}")
            return f"refused ({oc[2]}), exit {proc.returncode}: {err.splitlines()[-1][:140]}"
        r.check(f"convert src/{case} ({oc[2]}): written as llama.cpp does, or refused cleanly naming it", clean_refusal)
        return None
    PRODUCED.add(str(out))
    st = {"arch": arch, "type": type_name, "tname": tname, "path": work / out, "rel": out}
    if not r.check(f"convert src/{case} {out}{' ' + ' '.join(args) if args else ''} exits 0 (arch {arch})", expect_success, proc, cmdline):
        return None

    def readable():
        st["layout"] = layout_check(work / out)
        st["fields"], st["tensors"], st["order"] = open_gguf(work / out)
        return st["layout"]

    if not r.check(f"{label}: gguf.GGUFReader and the strict layout check accept it", readable):
        return None
    PRODUCED.add(str(out) + ".sha256")
    r.check(f"{label}: {out.name}.sha256 beside it holds its sha256, as sha256sum prints it",
            lambda: check_record(work / (str(out) + ".sha256"), [out.name]))
    r.check(f"{label}: metadata keys, llama.cpp types, values from config.json ({arch}, file_type {TYPES[type_name][1]})",
            check_metadata, st, spec)
    exp = expected_tensors(spec, arch, type_name)
    r.check(f"{label}: tensor names (§3.1), ne, types (1-D F32, 2-D {type_name} with fallbacks)", check_tensor_layout, st, exp)
    perm = "Q/K rows and biases permuted" if permuted_arch(arch) else "Q/K not permuted"
    r.check(f"{label}: tensor data ({perm}; {data_rule(type_name)})", check_tensor_data, st, exp)
    if tname is None:
        tok_checks(r, label, st, spec, fx)
    return st


def data_rule(type_name: str) -> str:
    qt = TYPES[type_name][0]
    if qt in (QT.F32, QT.F16):
        return "exact"
    if qt in KQUANTS:
        return "k-quant: nearest code given the stored scales, max error, RMS error bounds"
    return "bytes == gguf.quants.quantize"


def check_metadata(st: dict, spec: Spec):
    f = st["fields"]
    arch = st["arch"]
    problems = []
    for key, types, val in expected_kvs(spec, arch, st["type"]):
        if key not in f:
            problems.append(f"{key} missing")
            continue
        got = f[key]
        if got["types"] != types:
            problems.append(f"{key} typed {got['types']}, llama.cpp writes {types}")
            continue
        v = got["value"]
        if key == "general.name":
            if not v:
                problems.append("general.name is empty")
        elif key == "nopekit.position":
            try:
                dec = parse_position(v, spec.layers)
            except ValueError as e:
                problems.append(f"nopekit.position {v!r}: {e}")
                continue
            if dec != val:
                problems.append(f"nopekit.position {v!r} decodes to {pattern_text(dec)}, config.json says {pattern_text(val)}")
        elif isinstance(val, float):
            if f32(v) != val:
                problems.append(f"{key} = {v!r}, expected {val!r}")
        elif v != val:
            problems.append(f"{key} = {v!r}, expected {val!r}")
    if arch == "granite":
        neutral = {"granite.residual_scale": 1.0, "granite.embedding_scale": 1.0,
                   "granite.attention.scale": f32(1 / math.sqrt(spec.head_dim))}
        for k, nv in neutral.items():
            if k in f and f32(f[k]["value"]) != nv:
                problems.append(f"{k} = {f[k]['value']!r} (llama.cpp would scale by it; leave it out)")
    if problems:
        raise CheckFail("; ".join(problems[:6]) + (f" (+{len(problems) - 6} more)" if len(problems) > 6 else ""))
    return f"{len(f)} keys, nopekit.position {f['nopekit.position']['value']!r}"


def check_tensor_layout(st: dict, exp: list[dict]):
    got = st["tensors"]
    want = {t["name"]: t for t in exp}
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        raise CheckFail(f"missing {missing[:6]}, unexpected {extra[:6]}")
    problems = []
    for name, t in want.items():
        g = got[name]
        if g["ne"] != t["ne"]:
            problems.append(f"{name} ne {g['ne']}, expected {t['ne']}")
        if g["qt"] != t["qt"]:
            problems.append(f"{name} is {g['qt'].name}, expected {t['qt'].name} (row length {t['ne'][0]})")
    if problems:
        raise CheckFail("; ".join(problems[:6]) + (f" (+{len(problems) - 6} more)" if len(problems) > 6 else ""))
    counts = {}
    for t in exp:
        counts[t["qt"].name] = counts.get(t["qt"].name, 0) + 1
    return f"{len(exp)} tensors: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def check_tensor_data(st: dict, exp: list[dict]):
    got = st["tensors"]
    problems, details = [], []
    for t in exp:
        g = got.get(t["name"])
        if g is None or g["qt"] != t["qt"] or g["ne"] != t["ne"]:
            problems.append(f"{t['name']}: missing or of the wrong type/shape (see the layout check)")
            continue
        raw = np.ascontiguousarray(g["data"])
        if t["qt"] in KQUANTS:
            try:
                details.append(f"{t['name']} {kquant_check(t['qt'], t['values'], raw.view(np.uint8).reshape(-1))}")
            except CheckFail as e:
                hint = ""
                if t["n_head"] is not None:
                    try:
                        kquant_check(t["qt"], unpermute(t["values"], t["n_head"]), raw.view(np.uint8).reshape(-1))
                        hint = " (matches the UNpermuted rows)"
                    except CheckFail:
                        pass
                problems.append(f"{t['name']} ({t['qt'].name}): {e}{hint}")
            continue
        want = encode_expected(t["qt"], t["values"])
        have = raw.tobytes()
        if have != want:
            hint = ""
            if t["n_head"] is not None and have == encode_expected(t["qt"], unpermute(t["values"], t["n_head"])):
                hint = ": equals the source WITHOUT the Q/K permutation"
            elif t["n_head"] is None and t["values"].shape[0] % 2 == 0 and (".attn_q." in t["name"] or ".attn_k." in t["name"]):
                hint = ": not permuted is expected for this arch"
            n = min(len(have), len(want))
            i = next((k for k in range(n) if have[k] != want[k]), n)
            problems.append(f"{t['name']} ({t['qt'].name}): {len(have)} bytes vs {len(want)} expected, first difference at byte {i}{hint}")
    if problems:
        raise CheckFail("; ".join(problems[:4]) + (f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""))
    kq = [d for d in details]
    return (f"{len(exp)} tensors" + (f"; worst k-quant: {max(kq, key=lambda s: float(s.split('max err/amax ')[1].split()[0]))}" if kq else ""))


def tok_checks(r: Runner, label: str, st: dict, spec: Spec, fx: Path) -> None:
    e = tokenizer_expect(spec.folder, spec)
    f = st["fields"]

    def val(key, types):
        if key not in f:
            raise CheckFail(f"{key} missing")
        if f[key]["types"] != types and not (types[0] == "ARRAY" and f[key]["types"] == ["ARRAY"] and f[key]["elem"] == types[1]):
            raise CheckFail(f"{key} typed {f[key]['types']} (elements {f[key]['elem']}), expected {types}")
        return f[key]["value"]

    if e is None:
        def no_tok():
            m = val("tokenizer.ggml.model", ["STRING"])
            out = [f"tokenizer.ggml.model {m!r}"]
            for k in ("bos", "eos"):
                v = spec.cfg.get(f"{k}_token_id")
                if isinstance(v, int):
                    got = val(f"tokenizer.ggml.{k}_token_id", ["UINT32"])
                    if got != v:
                        raise CheckFail(f"tokenizer.ggml.{k}_token_id = {got}, config.json has {v}")
                    out.append(f"{k} {got}")
            return ", ".join(out)
        r.check(f"{label}: no tokenizer.json: tokenizer.ggml.model written (llama.cpp's vocab loader requires it), "
                "bos/eos ids from config.json", no_tok)
        return

    def arrays():
        if e["kind"] == "unsupported":
            raise CheckFail("this script does not know the tokenizer kind")
        m = val("tokenizer.ggml.model", ["STRING"])
        if m != e["model"]:
            raise CheckFail(f"tokenizer.ggml.model {m!r}, expected {e['model']!r}")
        pre = val("tokenizer.ggml.pre", ["STRING"])
        if pre not in e["pre"]:
            raise CheckFail(f"tokenizer.ggml.pre {pre!r}, expected one of {sorted(e['pre'])}")
        toks = val("tokenizer.ggml.tokens", ["ARRAY", "STRING"])
        if toks != e["tokens"]:
            if len(toks) != len(e["tokens"]):
                raise CheckFail(f"{len(toks)} tokens, expected {len(e['tokens'])} (the model's vocab_size, padded with [PAD{{i}}])")
            i = next(i for i in range(len(toks)) if toks[i] != e["tokens"][i])
            raise CheckFail(f"token {i} is {toks[i]!r}, expected {e['tokens'][i]!r}")
        types = val("tokenizer.ggml.token_type", ["ARRAY", "INT32"])
        if types != e["types"]:
            i = next((i for i in range(min(len(types), len(e["types"]))) if types[i] != e["types"][i]), None)
            if i is None:
                raise CheckFail(f"{len(types)} token types for {len(e['types'])} tokens")
            raise CheckFail(f"token {i} ({e['tokens'][i]!r}) has type {types[i]}, expected {e['types'][i]} "
                            "(1 normal, 2 unknown, 3 control = special added, 4 user-defined = other added, 5 unused = [PAD], 6 byte)")
        extra = ""
        if e["kind"] == "bytelevel":
            merges = val("tokenizer.ggml.merges", ["ARRAY", "STRING"])
            if merges != e["merges"]:
                i = next((i for i in range(min(len(merges), len(e["merges"]))) if merges[i] != e["merges"][i]), None)
                raise CheckFail(f"{len(merges)} merges, expected {len(e['merges'])}" + (f"; merge {i} is {merges[i]!r}, expected {e['merges'][i]!r}" if i is not None else ""))
            extra = f", {len(merges)} merges"
        else:
            scores = val("tokenizer.ggml.scores", ["ARRAY", "FLOAT32"])
            if len(scores) != len(toks) or not all(math.isfinite(s) for s in scores):
                raise CheckFail(f"{len(scores)} scores for {len(toks)} tokens, or non-finite scores")
            extra = f", {len(scores)} scores"
        n_pad = sum(1 for t in e["types"] if t == TT_UNUSED)
        return f"{m}/{pre}, {len(toks)} tokens ({n_pad} [PAD]){extra}"

    def specials():
        out = []
        for k in ("bos", "eos"):
            if e[k] is not None:
                got = val(f"tokenizer.ggml.{k}_token_id", ["UINT32"])
                if got != e[k]:
                    raise CheckFail(f"tokenizer.ggml.{k}_token_id = {got}, expected {e[k]}")
                out.append(f"{k} {got}")
        for k in ("add_bos", "add_eos"):
            if e[k] is not None:
                got = val(f"tokenizer.ggml.{k}_token", ["BOOL"])
                if got != bool(e[k]):
                    raise CheckFail(f"tokenizer.ggml.{k}_token = {got}, tokenizer_config.json has {e[k]}")
                out.append(f"{k} {got}")
        return ", ".join(out)

    r.check(f"{label}: tokenizer.ggml model, pre, tokens (by id, [PAD] padded), token types, "
            f"{'merges' if e['kind'] == 'bytelevel' else 'scores'}", arrays)
    r.check(f"{label}: tokenizer.ggml bos/eos ids (UINT32), add_bos/add_eos (BOOL)", specials)
    tj = read_json(spec.folder / "tokenizer.json")
    tk = fx / "tokenizers"
    same_as = None
    for cand in ("spm_metaspace", "spm_normalizer", "bytelevel_llama3"):
        if read_json(tk / cand / "tokenizer.json")["model"]["vocab"] == tj["model"]["vocab"]:
            same_as = cand
    if same_as is None or spec.vocab != len(e["tokens"]) or any(t == TT_UNUSED for t in e["types"]):
        return
    ref = tk / ("gguf_bpe.gguf" if same_as == "bytelevel_llama3" else "gguf_spm.gguf")

    def same_as_fixture():
        rf = read_fields(GGUFReader(str(ref)))
        keys = ["tokenizer.ggml.tokens", "tokenizer.ggml.token_type"]
        keys += ["tokenizer.ggml.merges", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"] \
            if same_as == "bytelevel_llama3" else ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"]
        for k in keys:
            if k not in f:
                raise CheckFail(f"{k} missing")
            if f[k]["value"] != rf[k]["value"]:
                a, b = f[k]["value"], rf[k]["value"]
                if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
                    i = next(i for i in range(len(a)) if a[i] != b[i])
                    raise CheckFail(f"{k}[{i}] = {a[i]!r}, {ref.name} has {b[i]!r}")
                raise CheckFail(f"{k} differs from {ref.name}: {str(a)[:80]} vs {str(b)[:80]}")
        return f"{', '.join(k.split('.')[-1] for k in keys)} equal"

    r.check(f"{label}: tokenizer arrays equal fixtures/tokenizers/{ref.name} (same vocabulary, llama.cpp conventions)", same_as_fixture)
    if e["kind"] != "spm":
        return

    def spm_port():
        import make_tokenizer_fixtures as mtf
        toks = f["tokenizer.ggml.tokens"]["value"]
        scores = f["tokenizer.ggml.scores"]["value"]
        types = f["tokenizer.ggml.token_type"]["value"]
        bos = f["tokenizer.ggml.bos_token_id"]["value"]
        asp = f.get("tokenizer.ggml.add_space_prefix", {"value": True})["value"]
        port = mtf.LlamaCppSPM(toks, scores, types, bos, add_space_prefix=asp)
        recs = read_json(tk / "gguf_spm.expected.json")
        bad = [rec["text"] for rec in recs if port.tokenize(rec["text"], add_special=True, parse_special=True) != rec["ids"]]
        if bad:
            raise CheckFail(f"{len(bad)} of {len(recs)} texts tokenize differently, e.g. {bad[:3]!r} (scores must order the merges)")
        return f"{len(recs)} texts"

    r.check(f"{label}: llama.cpp's SPM tokenizer (port in make_tokenizer_fixtures.py) with these tokens/scores/types "
            "gives gguf_spm.expected.json's ids", spm_port)


# ---------------------------------------------------------------------------
# checks: GGUF -> HF
# ---------------------------------------------------------------------------

# transformers 5.24 config defaults the rebuilt config.json inherits when it leaves a field out
PAD_DEFAULT = {"smollm3": 128004}
MODEL_TYPE_TIED_DEFAULT = {"llama": False, "mistral": False, "qwen2": False, "qwen3": False, "smollm3": True}


def eff(c: dict, key: str):
    """A config field as transformers reads it (defaults, v5 rope_parameters, dtype/torch_dtype)."""
    if key == "num_key_value_heads":
        return c.get(key) or c.get("num_attention_heads")
    if key == "head_dim":
        return c.get(key) or c["hidden_size"] // c["num_attention_heads"]
    if key == "rope_theta":
        return c.get("rope_theta", (c.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    if key == "tie_word_embeddings":
        return c.get(key, MODEL_TYPE_TIED_DEFAULT.get(c.get("model_type"), False))
    if key == "torch_dtype":
        return c.get("torch_dtype", c.get("dtype"))
    return c.get(key)


def rope_kind(c: dict):
    rp = {**(c.get("rope_scaling") or {}), **(c.get("rope_parameters") or {})}
    t = rp.get("rope_type", rp.get("type", "default")) or "default"
    return t, (float(rp["factor"]) if "factor" in rp and t != "default" else None)


def expected_back_values(spec: Spec, st: dict) -> dict:
    """HF name -> float32 values the GGUF -> HF conversion must give (before --dtype rounding)."""
    arch, qt_req = st["arch"], TYPES[st["type"]][0]
    exp = {}
    for g, t in st["tensors"].items():
        if g == "rope_freqs.weight":
            continue
        try:
            hf = hf_name(g)
        except KeyError:
            continue
        src = to_f32(spec.tensors[hf]) if hf in spec.tensors else None
        n_head = None
        if permuted_arch(arch) and (".attn_q." in g or ".attn_k." in g):
            n_head = spec.heads if ".attn_q." in g else spec.kv
        if t["qt"] == QT.F32 and src is not None:
            exp[hf] = src  # the contract: an F32 round trip is bit-identical to the source
        elif t["qt"] == QT.Q8_0 and qt_req == QT.Q8_0 and src is not None:
            x = permute(src, n_head) if n_head else src
            v = gguf.quants.dequantize(gguf.quants.quantize(x, QT.Q8_0), QT.Q8_0).reshape(x.shape)
            exp[hf] = unpermute(v, n_head) if n_head else v
        else:
            v = tensor_values(t)
            exp[hf] = unpermute(v, n_head) if n_head else v
    return exp


def read_hf_out(folder: Path) -> dict:
    if not folder.is_dir():
        raise CheckFail(f"{folder.name} was not created")
    try:
        return load_hf_tensors(folder)
    except Exception as e:
        raise CheckFail(f"PyPI safetensors cannot load the weights: {type(e).__name__}: {e}")


def backward(r: Runner, work: Path, case: str, spec: Spec, st: dict, fx: Path, texts: list[str], args=(), tag_extra="",
             tok_records: Path | None = None) -> None:
    gg = st["rel"]
    tag = gg.name[:-len(".gguf")] + tag_extra
    out = Path("hf") / tag
    proc, cmdline = r.run("convert", gg, out, *args)
    PRODUCED.add(str(out))
    label = f"hf/{tag}"
    if not r.check(f"convert {gg} {out}{' ' + ' '.join(args) if args else ''} exits 0", expect_success, proc, cmdline):
        return
    r.check(f"{label}: SHA256SUMS lists every other file with its sha256, as sha256sum prints them",
            lambda: check_record(work / out / "SHA256SUMS", folder_record_names(work / out)))
    dtype_arg = dict(zip(args[::2], args[1::2])).get("--dtype")
    # without --dtype: F32, or the stored float type (of the tensor, or of the file: general.file_type 1 / 32)
    file_float = {{1: "f16", 32: "bf16"}.get((st["fields"].get("general.file_type") or {}).get("value"), "f32")}
    exp = expected_back_values(spec, st)
    state = {}

    def tensors():
        got = read_hf_out(work / out)
        state["got"] = got
        want = set(spec.tensors)
        missing, extra = sorted(want - set(got)), sorted(set(got) - want)
        if missing or extra:
            raise CheckFail(f"missing {missing[:5]}, unexpected {extra[:5]}")
        problems = []
        kinds = set()
        for name in spec.tensors:
            a = got[name]
            if tuple(a.shape) != tuple(spec.tensors[name].shape):
                problems.append(f"{name} shape {a.shape}, expected {spec.tensors[name].shape}")
                continue
            stored = st["tensors"][gguf_name(name)]["qt"]
            dn = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16", np.dtype(BF16): "bf16"}.get(a.dtype)
            allowed = {dtype_arg} if dtype_arg else ({"f32"} | {stored.name.lower()} & {"f16", "bf16"} | file_float)
            if dn not in allowed:
                problems.append(f"{name} is {a.dtype}, expected {' or '.join(sorted(allowed))}")
                continue
            if a.ndim == 2:
                kinds.add(dn)
            w = exp[name].astype(a.dtype)
            if not np.array_equal(a.view(np.uint8), np.ascontiguousarray(w).view(np.uint8)):
                diff = np.abs(a.astype(np.float64) - w.astype(np.float64))
                i = np.unravel_index(int(np.argmax(diff)), diff.shape)
                hint = ""
                if ".q_proj." in name or ".k_proj." in name:
                    nh = spec.heads if ".q_proj." in name else spec.kv
                    if a.ndim >= 1 and np.array_equal(a.astype(np.float32), permute(exp[name], nh).astype(a.dtype).astype(np.float32)):
                        hint = " (equals the PERMUTED rows: not un-permuted)"
                problems.append(f"{name}: {int((diff > 0).sum())} values differ, max |d| {diff.max():.3g} at {tuple(map(int, i))} "
                                f"(got {a[i]!r}, expected {w[i]!r}){hint}")
        if problems:
            raise CheckFail("; ".join(problems[:4]) + (f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""))
        state["kinds"] = kinds
        return f"{len(got)} tensors, {'/'.join(sorted(kinds))}"

    rule = ("bit-identical to the source" if st["tensors"] and all(t["qt"] == QT.F32 for t in st["tensors"].values()) else
            "== dequantize(quantize(permuted source)) un-permuted" if TYPES[st["type"]][0] == QT.Q8_0 else
            "== the GGUF's values un-permuted")
    r.check(f"{label}: HF names and shapes; values {rule}{', rounded to ' + dtype_arg if dtype_arg else ''}", tensors)

    def config():
        p = work / out / "config.json"
        if not p.exists():
            raise CheckFail("config.json missing")
        c = read_json(p)
        problems = []
        te = tokenizer_expect(spec.folder, spec) if spec.has_tokenizer else None
        for k in HF_FIELDS:
            want = eff(spec.cfg, k)
            if k in ("bos_token_id", "eos_token_id") and want is None and te is not None:
                want = te[k[:3]]
            if k == "torch_dtype":  # names the dtype of the written weights (== the source's for a default F32 round trip)
                kinds = set(state.get("kinds") or ())
                if len(kinds) != 1:
                    continue
                want = DTYPE_NAMES[kinds.pop().upper()]
            if want is None:
                continue
            got = eff(c, k)
            if got != want or type(got) is not type(want) and not (isinstance(got, (int, float)) and isinstance(want, (int, float))):
                hint = " (the float32 value printed as a double; write the shortest decimal that round-trips float32)" \
                    if isinstance(got, float) and isinstance(want, float) and f32(got) == f32(want) else ""
                problems.append(f"{k} = {got!r}, source has {want!r}{hint}")
        allrope = all(p == "rope" for p in spec.positions)
        want_mt = spec.model_type if spec.model_type in ("qwen2", "qwen3") and allrope else ("llama" if allrope else "smollm3")
        if c.get("model_type") != want_mt:
            problems.append(f"model_type {c.get('model_type')!r}, expected {want_mt!r}")
        if not allrope:
            nrl = [1 if p == "rope" else 0 for p in spec.positions]
            if c.get("no_rope_layers") != nrl:
                problems.append(f"no_rope_layers {c.get('no_rope_layers')!r}, expected {nrl} (1 = RoPE)")
        np_ = c.get("nopekit_position")
        if not isinstance(np_, str):
            problems.append(f"nopekit_position missing ({np_!r})")
        else:
            try:
                if parse_position(np_, spec.layers) != spec.positions:
                    problems.append(f"nopekit_position {np_!r}, expected {spec.pattern}")
            except ValueError as e:
                problems.append(f"nopekit_position {np_!r}: {e}")
        if "rope" in spec.positions and rope_kind(spec.cfg) != rope_kind(c):
            problems.append(f"RoPE scaling {rope_kind(c)}, source has {rope_kind(spec.cfg)}")
        if problems:
            raise CheckFail("; ".join(problems))
        return f"model_type {c.get('model_type')}, nopekit_position {np_!r}"

    r.check(f"{label}: config.json fields equal the source's; model_type / no_rope_layers / nopekit_position", config)

    def pad_id():
        c = read_json(work / out / "config.json")
        mt = c.get("model_type")
        pad = c["pad_token_id"] if "pad_token_id" in c else PAD_DEFAULT.get(mt)
        if pad is not None and not (isinstance(pad, int) and 0 <= pad < int(c.get("vocab_size", 0))):
            how = "states" if "pad_token_id" in c else f"leaves out pad_token_id, so transformers' {mt} default"
            raise CheckFail(f"config.json {how} pad_token_id {pad}, outside the vocabulary of {c.get('vocab_size')}: "
                            "transformers refuses to build the embedding (padding_idx); write \"pad_token_id\": null (or the real id)")
        return f"pad_token_id {pad!r}"

    r.check(f"{label}: config.json pad_token_id (stated, or its model_type's transformers default) is null or inside the vocabulary", pad_id)

    if "--max-shard-size" in args:
        limit = parse_size(dict(zip(args[::2], args[1::2]))["--max-shard-size"])

        def shards():
            d = work / out
            files = sorted(p.name for p in d.glob("*.safetensors"))
            n = len(files)
            want = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
            if n < 2 or files != want:
                raise CheckFail(f"shard files {files}; expected model-0000i-of-0000N.safetensors, N >= 2")
            idx = d / "model.safetensors.index.json"
            if not idx.exists():
                raise CheckFail("model.safetensors.index.json missing")
            ix = read_json(idx)
            wm = ix.get("weight_map", {})
            total = 0
            for fn in files:
                items = safetensors.deserialize((d / fn).read_bytes())
                nb = sum(len(info["data"]) for _, info in items)
                total += nb
                if nb > limit and len(items) > 1:
                    raise CheckFail(f"{fn} holds {nb} tensor bytes > {limit} in {len(items)} tensors")
                for name, _ in items:
                    if wm.get(name) != fn:
                        raise CheckFail(f"weight_map[{name!r}] = {wm.get(name)!r}, the tensor is in {fn}")
            if set(wm) != set(state.get("got", wm)):
                raise CheckFail("weight_map names differ from the stored tensors")
            if (ix.get("metadata") or {}).get("total_size") != total:
                raise CheckFail(f"metadata.total_size {(ix.get('metadata') or {}).get('total_size')}, tensor bytes {total}")
            return f"{n} shards, total_size {total}"

        r.check(f"{label}: shards of <= {limit} bytes, named model-0000i-of-0000N, index weight_map and total_size", shards)

    if tok_records is not None:
        r.check(f"{label}: tokenizer.json rebuilt from the GGUF vocabulary encodes and decodes like {tok_records.relative_to(fx.parent) if fx.parent in tok_records.parents else tok_records.name}",
                tok_vs_records, work / out, tok_records)
    elif spec.has_tokenizer:
        r.check(f"{label}: tokenizer.json rebuilt from the GGUF loads in PyPI tokenizers; {len(texts)} texts encode (with and "
                "without special tokens) and decode exactly as the original", tok_round_trip, work / out, spec.folder, texts)
        r.check(f"{label}: tokenizer_config.json keeps add_bos_token, add_eos_token, bos_token, eos_token", tok_config, work / out, spec.folder)


def load_tokenizer(p: Path):
    from tokenizers import Tokenizer
    if not p.exists():
        raise CheckFail(f"{p.name} missing")
    try:
        return Tokenizer.from_file(str(p))
    except Exception as e:
        raise CheckFail(f"PyPI tokenizers rejects {p.name}: {type(e).__name__}: {e}")


def gguf_cannot_say(src: Path):
    """Texts whose tokenization GGUF cannot carry, as nopekit's converter announces (notes on
    stderr; the Swift ConvertVocabularyTests hold the same rule): an added token that absorbs
    the space beside it (lstrip/rstrip), and a Metaspace pre-tokenizer's own rule for the ▁ it
    prepends (not before a text starting with a space or ▁, its own choice beside special
    tokens), where llama.cpp always prepends one at the start and after a special token."""
    tj = read_json(src / "tokenizer.json")
    stripping = [a["content"] for a in tj.get("added_tokens", []) if a.get("lstrip") or a.get("rstrip")]
    specials = [a["content"] for a in tj.get("added_tokens", []) if a.get("special")]

    def has_type(node, name):
        if isinstance(node, dict):
            return node.get("type") == name or any(has_type(v, name) for v in node.values())
        if isinstance(node, list):
            return any(has_type(v, name) for v in node)
        return False
    metaspace = has_type(tj.get("pre_tokenizer"), "Metaspace") and not has_type(tj.get("normalizer"), "Prepend")

    def excused(t: str) -> bool:
        if any(s in t for s in stripping):
            return True
        return metaspace and (t[:1].isspace() or t.startswith("▁") or any(s in t for s in specials))
    return excused


def tok_round_trip(out: Path, src: Path, texts: list[str]):
    orig = load_tokenizer(src / "tokenizer.json")
    new = load_tokenizer(out / "tokenizer.json")
    excused = gguf_cannot_say(src)
    bad = []
    skipped = 0
    for t in texts:
        if excused(t):
            skipped += 1
            continue
        for special in (False, True):
            a, b = orig.encode(t, add_special_tokens=special).ids, new.encode(t, add_special_tokens=special).ids
            if a != b:
                bad.append(f"encode({t[:40]!r}, add_special_tokens={special}): {b[:10]}.. vs original {a[:10]}..")
                break
            for skip in (False, True):
                da, db = orig.decode(a, skip_special_tokens=skip), new.decode(a, skip_special_tokens=skip)
                if da != db:
                    bad.append(f"decode(ids of {t[:40]!r}, skip_special_tokens={skip}): {db[:40]!r} vs original {da[:40]!r}")
                    break
    if bad:
        raise CheckFail(f"{len(bad)} of {len(texts)} texts differ: " + "; ".join(bad[:3]))
    return (f"{len(texts) - skipped} texts ({skipped} excused: what GGUF cannot carry), vocabulary {new.get_vocab_size()}"
            f" (original {orig.get_vocab_size()})")


def tok_vs_records(out: Path, records: Path):
    new = load_tokenizer(out / "tokenizer.json")
    recs = read_json(records)
    bad = []
    for rec in recs:
        ids = new.encode(rec["text"]).ids
        if ids != rec["ids"]:
            bad.append(f"encode({rec['text'][:40]!r}): {ids[:10]}.. vs {rec['ids'][:10]}..")
            continue
        for skip, key in ((False, "decoded"), (True, "decoded_skip")):
            d = new.decode(rec["ids"], skip_special_tokens=skip)
            if d != rec[key]:
                bad.append(f"decode(ids of {rec['text'][:40]!r}, skip_special_tokens={skip}): {d[:40]!r} vs {rec[key][:40]!r}")
                break
    if bad:
        raise CheckFail(f"{len(bad)} of {len(recs)} texts differ: " + "; ".join(bad[:3]))
    return f"{len(recs)} texts"


def tok_config(out: Path, src: Path):
    if not (src / "tokenizer_config.json").exists():
        return "source has none"
    p = out / "tokenizer_config.json"
    if not p.exists():
        raise CheckFail("tokenizer_config.json missing")
    a, b = read_json(src / "tokenizer_config.json"), read_json(p)
    problems = []
    for k in ("add_bos_token", "add_eos_token", "bos_token", "eos_token"):
        if k in a and token_content(a[k]) != token_content(b.get(k)):
            problems.append(f"{k} = {b.get(k)!r}, source has {a[k]!r}")
    if problems:
        raise CheckFail("; ".join(problems))
    return ", ".join(f"{k} {token_content(b.get(k))!r}" for k in ("add_bos_token", "add_eos_token", "bos_token", "eos_token") if k in a)


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------


def reference_ggufs(work: Path, fx: Path, selftest: bool) -> list[tuple]:
    """(case, spec, state, records) for the gguf-py-written reference GGUFs."""
    out = []
    for case, arch, tname, kvfile, position, records, tokdir in [
        ("ref_bpe", "llama", "q8_0", "gguf_bpe.gguf", "rope", "bytelevel_llama3/expected.json", "bytelevel_llama3"),
        ("ref_spm", "granite", "f16", "gguf_spm.gguf", "none", "gguf_spm.expected.json", "spm_normalizer"),
    ]:
        spec = Spec(work / "src" / case)
        rel = Path("ref") / f"{case}.{tname}.gguf"
        extra = [("selftest.tokenizer_dir", str((fx / "tokenizers" / tokdir).resolve()), VT.STRING, None)] if selftest else []
        write_reference_gguf(spec, arch, tname, work / rel, fixture_kvs(fx / "tokenizers" / kvfile), position, extra_kvs=extra)
        fields, tensors, order = open_gguf(work / rel)
        st = {"arch": arch, "type": tname, "tname": tname, "path": work / rel, "rel": rel, "fields": fields, "tensors": tensors}
        out.append((case, spec, st, fx / "tokenizers" / records))
    return out


def run_checks(args) -> int:
    t0 = time.monotonic()
    logging.getLogger("gguf").setLevel(logging.ERROR)
    nopekit = args.nopekit.resolve()
    work = args.workdir.resolve()
    fx = args.fixtures.resolve()
    r = Runner(nopekit, work, args.timeout)
    print(f"interop: gguf {importlib.metadata.version('gguf')}, safetensors {importlib.metadata.version('safetensors')}, "
          f"tokenizers {importlib.metadata.version('tokenizers')}, numpy {np.__version__}; nopekit {nopekit}; workdir {work}")

    if not r.check_binary():
        print(f"interop: {r.passed} passed, {r.failed} failed")
        return 1
    work.mkdir(parents=True, exist_ok=True)
    for name in OWNED:
        p = work / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    for name in ("gguf", "hf", "refuse", "ref"):
        (work / name).mkdir()
    names = build_sources(fx, work / "src")
    only = set(filter(None, (args.only or "").split(",")))
    if only:
        names = [n for n in names if n in only]
    hashes = {p: sha256_file(p) for p in sorted((work / "src").rglob("*")) if p.is_file()}
    texts = texts_for_round_trip(fx)
    proc, _ = r.run("convert", "--help")
    if proc is not None and b"--type" not in proc.stdout + proc.stderr:
        r.note("`nopekit convert --help` does not mention --type: HF -> GGUF not implemented in this binary?")

    for case in names:
        spec = Spec(work / "src" / case)
        r.note(f"{case}: {spec.model_type}, {spec.layers} layers, positions {spec.pattern}, {spec.float_type} -> {spec.outcome()[:2]}")
        st = forward(r, work, case, spec, None, fx)
        if st is not None:
            backward(r, work, case, spec, st, fx, texts)
            if case == "organism":
                backward(r, work, case, spec, st, fx, texts, ("--dtype", "bf16"), ".bf16")
                backward(r, work, case, spec, st, fx, texts, ("--dtype", "f16"), ".f16")
                backward(r, work, case, spec, st, fx, texts, ("--max-shard-size", "2M"), ".sharded")
        for t in (ALL_TYPES if case in SWEEP_CASES else EXTRA_TYPES.get(case, [])):
            st = forward(r, work, case, spec, t, fx)
            if st is not None:
                backward(r, work, case, spec, st, fx, texts)

    if not only or only & {"ref_bpe", "ref_spm"}:
        for case, spec, st, records in reference_ggufs(work, fx, args.fake):
            if only and case not in only:
                continue
            r.note(f"{case}: reference GGUF written with gguf-py ({st['arch']}, {st['type']}, tokenizer keys of {records.name})")
            backward(r, work, case, spec, st, fx, texts, tok_records=records)

    def untouched():
        changed = [str(p.relative_to(work)) for p, h in hashes.items() if not p.exists() or sha256_file(p) != h]
        if changed:
            raise CheckFail(f"source files changed: {changed[:6]}")
        return f"{len(hashes)} files"

    r.check("sources unchanged (sha256 of every file under WORKDIR/src)", untouched)

    def no_leftovers():
        extra = sorted(f"{d}/{p.name}" for d in ("gguf", "hf", "refuse") for p in (work / d).iterdir()
                       if f"{d}/{p.name}" not in PRODUCED)
        if extra:
            raise CheckFail(f"entries no conversion produced (temporaries?): {extra[:8]}")
        return f"{len(PRODUCED)} outputs, nothing else"

    r.check("WORKDIR/gguf, hf, refuse hold only the outputs of the conversions (no temporaries left)", no_leftovers)
    print(f"elapsed {time.monotonic() - t0:.1f}s")
    print(f"interop: {r.passed} passed, {r.failed} failed")
    return 0 if r.failed == 0 else 1


# ---------------------------------------------------------------------------
# self-test
# ---------------------------------------------------------------------------

# break -> substrings of the check names that must FAIL (and no others)
BREAKS = {
    "no_permute": ["tensor data", "values bit-identical", "values =="],
    "permute_granite": ["tensor data", "values bit-identical", "values =="],
    "norm_f16": ["tensor names (§3.1)", "tensor data", "exits 0", "values"],
    "file_type": ["metadata keys"],
    "eps_f64": ["metadata keys"],
    "logit_scale_f64": ["metadata keys"],
    "finetuned_true": ["metadata keys"],
    "quant_bitflip": ["tensor data", "values =="],
    "kquant_swap": ["tensor data"],
    "kquant_coarse": ["tensor data"],
    "fallback_f16": ["tensor names (§3.1)", "tensor data"],
    "no_pad": ["tokenizer.ggml model"],
    "pad_type": ["tokenizer.ggml model"],
    "no_empty_merges": ["tokenizer.ggml model"],
    "pre_gpt2": ["tokenizer.ggml model", "equal fixtures/tokenizers/gguf_bpe"],
    "bos_off": ["bos/eos ids", "equal fixtures/tokenizers", "config.json fields", "llama.cpp's SPM"],
    "spm_const_scores": ["llama.cpp's SPM tokenizer"],
    "refuse_exit2": ["refused (pattern"],
    "refuse_partial": ["refused", "no temporaries left"],
    "refuse_no_pattern": ["refused (pattern"],
    "accept_hybrid": ["refused (pattern", "no temporaries left"],
    "back_no_unpermute": ["values"],
    "back_eps_double": ["config.json fields"],
    "back_model_type": ["config.json fields"],
    "back_no_pad": ["pad_token_id"],
    "back_tok_ignore_merges": ["encodes and decodes like"],
    "back_shard_ignore": ["shards of"],
    "touch_source": ["sources unchanged"],
    "leave_tmp": ["no temporaries left"],
}


def self_test(args) -> int:
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    wrapper = work / "fake-nopekit"
    wrapper.write_text(f"#!/bin/sh\nexec \"{sys.executable}\" \"{Path(__file__).resolve()}\" --fake-nopekit \"$@\"\n")
    wrapper.chmod(0o755)
    base = [sys.executable, str(Path(__file__).resolve()), "--nopekit", str(wrapper), "--fixtures", str(args.fixtures),
            "--timeout", str(args.timeout), "--fake"]
    ok = True

    def run(brk: str, only: str | None):
        env = {**os.environ, "NOPEKIT_FAKE_BREAK": brk}
        cmd = base + ["--workdir", str(work / "run")] + (["--only", only] if only else [])
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        fails = [ln[5:] for ln in p.stdout.splitlines() if ln.startswith("FAIL ")]
        passes = sum(1 for ln in p.stdout.splitlines() if ln.startswith("PASS "))
        return p, fails, passes

    subset = args.only
    p, fails, passes = run("", subset)
    print(f"self-test: reference converter: {passes} passed, {len(fails)} failed")
    for f in fails:
        print(f"  unexpected FAIL {f}")
    if fails or p.returncode != 0:
        ok = False
        if p.stderr.strip():
            print(p.stderr[-2000:])
    for brk, want in BREAKS.items():
        if args.breaks and brk not in args.breaks.split(","):
            continue
        only = subset or BREAK_CASES.get(brk)
        p, fails, passes = run(brk, only)
        caught = [w for w in want if any(w in f for f in fails)]
        stray = [f for f in fails if not any(w in f for w in want)]
        status = "ok" if fails and not stray else "NOT CAUGHT" if not fails else "STRAY"
        print(f"self-test: break {brk}: {len(fails)} FAIL lines ({status}); caught by {caught}")
        for f in stray[:5]:
            print(f"  stray FAIL {f[:300]}")
        if not fails or stray:
            ok = False
            if not fails and p.stderr.strip():
                print(p.stderr[-1500:])
    print("self-test: " + ("all good" if ok else "PROBLEMS"))
    return 0 if ok else 1


# the cases a break can show on (keeps the self-test short)
BREAK_CASES = {
    "no_permute": "llama_mha_rope,smollm3_every4",
    "permute_granite": "organism,llama_gqa2_nope",
    "norm_f16": "llama_mha_rope",
    "file_type": "llama_mha_rope",
    "eps_f64": "llama_mha_rope",
    "logit_scale_f64": "llama_gqa2_nope",
    "finetuned_true": "llama_gqa2_nope",
    "quant_bitflip": "llama_gqa4_tied_bias",
    "kquant_swap": "kq",
    "kquant_coarse": "kq",
    "fallback_f16": "kq",
    "no_pad": "tok_gpt2",
    "pad_type": "tok_gpt2",
    "no_empty_merges": "organism",
    "pre_gpt2": "tok_llama3",
    "bos_off": "tok_spm_metaspace,tok_llama3",
    "spm_const_scores": "tok_spm_metaspace",
    "refuse_exit2": "pat_gqa2_layer1,window_hybrid",
    "refuse_partial": "pat_gqa2_layer1,qknorm_nope,rope_llama3_scaling",
    "refuse_no_pattern": "pat_smollm3_layer0",
    "accept_hybrid": "pat_organism_every2",
    "back_no_unpermute": "llama_mha_rope",
    "back_eps_double": "llama_mha_rope",
    "back_model_type": "smollm3_every4",
    "back_no_pad": "llama_gqa2_nope",
    "back_tok_ignore_merges": "ref_bpe",
    "back_shard_ignore": "organism",
    "touch_source": "llama_mha_rope",
    "leave_tmp": "llama_mha_rope",
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--fake-nopekit"]:
        logging.getLogger("gguf").setLevel(logging.ERROR)
        return fake_nopekit(argv[1:])
    ap = argparse.ArgumentParser(description="nopekit convert HF <-> GGUF interop check")
    ap.add_argument("--nopekit", type=Path, help="path to the nopekit executable")
    ap.add_argument("--workdir", required=True, type=Path, help="scratch directory (created; its src, gguf, hf, refuse, ref entries are replaced)")
    ap.add_argument("--fixtures", type=Path, default=REPO / "fixtures", help="the fixtures directory")
    ap.add_argument("--timeout", type=float, default=120.0, help="per-command timeout in seconds")
    ap.add_argument("--only", help="comma-separated case names (default: all)")
    ap.add_argument("--self-test", action="store_true", help="check this script against its reference converter and broken variants")
    ap.add_argument("--breaks", help="with --self-test: only these breaks")
    ap.add_argument("--fake", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test(args)
    if args.nopekit is None:
        ap.error("--nopekit is required")
    return run_checks(args)


if __name__ == "__main__":
    sys.exit(main())
