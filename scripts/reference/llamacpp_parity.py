#!/usr/bin/env python3
"""llama.cpp parity check: does stock llama.cpp run a GGUF written from a Hugging Face folder exactly like
the source model?

Dev-time only (not CI). Needs the venv of ``requirements-llamacpp.txt`` (llama-cpp-python built from
source, torch for the reference forward)::

    nice -n 19 /work/venv-llamacpp/bin/python scripts/reference/llamacpp_parity.py \\
        --nopekit .build/debug/nopekit --workdir /tmp/parity [--writer nopekit|python] \\
        [--cases organism:f32,f16 organism-baked llama_gqa2_nope smollm3_every4 llama_mha_rope] \\
        [--text fixtures/verify/eval.txt] [--kv f16,f32] [--flash-attn off|on]

For every case (a Hugging Face folder: config.json + model.safetensors) and every requested GGUF type:

1. the GGUF is written, by ``nopekit convert HF OUT.gguf --type T`` (``--writer nopekit``, the default) or
   by this script's own gguf-py writer (``--writer python``, a second opinion that follows formats.md §3:
   all-NoPE -> ``granite`` with ``rope.scaling.finetuned = false`` and ``logit_scale = 1.0``, Q/K not
   permuted; RoPE except every 4th layer -> ``smollm3``, Q/K permuted; all RoPE -> ``llama``, Q/K permuted;
   any other layer pattern has no stock llama.cpp architecture and is refused);
2. a token sequence is chosen: the organism gets BOS (256) + the bytes of ``--text`` (byte b is id b), up to
   its max_position_embeddings; an engine fixture gets a fixed seeded random sequence inside its vocabulary
   (its first token is its bos_token_id), of length min(256, max_position_embeddings);
3. llama.cpp (llama-cpp-python, CPU, 2 threads) evaluates the ids and returns the logits of every position,
   once per KV-cache type of ``--kv`` (f16 is llama.cpp's default; f32 removes the cache's rounding);
4. the reference is ``llama_reference.forward`` (our PyTorch float64 forward, with the NoPE layers) on the
   source folder's weights, rounded first to the type each tensor has in the GGUF (gguf.quants, so an F16
   GGUF is compared with the F16-rounded model); for ``organism-baked`` it is the *unbaked* organism with the
   temperature table applied at run time (what the baked model must compute); nopekit's own loss
   (``nopekit score --tokens``) on the source folder is reported next to it when ``--nopekit`` is given;
5. per run: mean NLL (nats, over the T-1 next-token predictions) of llama.cpp and of the reference,
   max |Δlogit| over all positions and vocabulary entries, and top-1 agreement over the T positions.

A run PASSES when |loss_llama.cpp - loss_ref| <= REL_LOSS_TOL * loss_ref  and  top-1 agreement >= TOP1_MIN
(the constants below: 2e-3 and 99%). Block-quantised types (q8_0, q4_0, q4_k, ...) are held to
REL_LOSS_TOL_QUANT and TOP1_MIN_QUANT (1e-2, 95%), because llama.cpp multiplies them with Q8-quantised
activations; their "dequantised twin" (the same GGUF with every tensor that is not F32 dequantised to F32) is
held to the strict limits and is the real check of the file. gguf.quants cannot quantise the K-quants, so for those tensors the reference takes the weights
from the GGUF itself (dequantised, un-permuted; results.json lists them under "weights_from_file"): such rows
check how llama.cpp reads the file, not the quantisation.

With ``--writer nopekit`` each GGUF that the Python writer can also produce is compared with it (tensors
byte for byte, metadata keys and values; results.json "python_writer_diff"), and nopekit's loss on its own
GGUF (``nopekit score OUT.gguf``) is reported too. Negative controls: the all-NoPE organism GGUF and the every-4th-NoPE smollm3 GGUF are
re-labelled ``general.architecture = llama`` (gguf-py reader -> writer, keys renamed, tensors byte for byte),
so llama.cpp applies RoPE on every layer; each of them must FAIL, which shows that the check can fail.

The script prints a Markdown table, writes ``WORKDIR/results.json``, and exits 0 only when every case passes
and every negative control fails.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from byte_level import byte_to_unicode  # noqa: E402

# ---------------------------------------------------------------------------------------------
# thresholds

REL_LOSS_TOL = 2e-3  # |Δ mean NLL| <= 2e-3 · reference mean NLL
TOP1_MIN = 0.99  # at least 99% of the positions have the same argmax
# Block-quantised files (q8_0, q4_0, q4_k, ...): llama.cpp multiplies their weights with activations
# quantised to Q8 blocks (ggml's vec_dot_type), an error the file does not cause; on the random-weight engine
# fixtures, whose logits are nearly tied, that flips up to 3% of the argmaxes. Such a run is held to these
# looser limits (still far from a wrong-RoPE model), and the file's "dequantised twin" (the same GGUF with
# every tensor that is not F32 dequantised to F32 by gguf.quants) is held to REL_LOSS_TOL and TOP1_MIN: that
# row is the check of the file's contents.
REL_LOSS_TOL_QUANT = 1e-2
TOP1_MIN_QUANT = 0.95
FLOAT_TYPES = {"f32", "f16", "bf16"}

ORGANISM_BOS = 256
ENGINE_SEED = 20241201
ENGINE_MAX_T = 256

FIX = REPO / "fixtures"
CASES = {
    # name: (source folder, default types)
    "organism": (FIX / "organism", ["f32", "f16"]),
    "organism-baked": (FIX / "organism", ["f32"]),  # baked from the organism with TEMPS
    "llama_gqa2_nope": (FIX / "engine" / "llama_gqa2_nope", ["f32"]),
    "smollm3_every4": (FIX / "engine" / "smollm3_every4", ["f32"]),
    "llama_mha_rope": (FIX / "engine" / "llama_mha_rope", ["f32"]),
}
DEFAULT_CASES = ["organism", "organism-baked", "llama_gqa2_nope", "smollm3_every4", "llama_mha_rope"]
TEMPS = FIX / "verify" / "organism.temps.json"
EVAL_TEXT = FIX / "verify" / "eval.txt"
# negative controls: (name, case whose f32 GGUF is re-labelled, new architecture)
NEGATIVES = [("organism-as-llama", "organism", "llama"), ("smollm3_every4-as-llama", "smollm3_every4", "llama")]

# ---------------------------------------------------------------------------------------------
# Hugging Face config -> layer pattern and reference config


def load_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def rope_theta(conf: dict) -> float:
    if "rope_parameters" in conf and conf["rope_parameters"]:
        return float(conf["rope_parameters"].get("rope_theta", 10000.0))
    return float(conf.get("rope_theta", 10000.0))


def rope_type(conf: dict) -> str:
    rp = conf.get("rope_parameters") or {}
    rs = conf.get("rope_scaling") or {}
    return rp.get("rope_type") or rs.get("rope_type") or rs.get("type") or "default"


def positions_of(conf: dict) -> list[str]:
    """Per layer "rope" or "none", as nopekit reads config.json (nopekit_position; SmolLM3's no_rope_layers)."""
    L = conf["num_hidden_layers"]
    spec = conf.get("nopekit_position")
    if spec is not None:
        if spec == "none":
            return ["none"] * L
        if spec == "rope":
            return ["rope"] * L
        if spec.startswith("every:"):
            n = int(spec[len("every:"):])
            return ["none" if (i + 1) % n == 0 else "rope" for i in range(L)]
        if spec.startswith("layers:"):
            nope = {int(x) for x in spec[len("layers:"):].split(",")}
            return ["none" if i in nope else "rope" for i in range(L)]
        raise ValueError(f"nopekit_position {spec!r}")
    if conf.get("model_type") == "smollm3":
        flags = conf.get("no_rope_layers")
        if flags is None:
            n = conf.get("no_rope_layer_interval", 4)
            return ["none" if (i + 1) % n == 0 else "rope" for i in range(L)]
        return ["rope" if f else "none" for f in flags]
    return ["rope"] * L


def head_dim_of(conf: dict) -> int:
    return conf.get("head_dim") or conf["hidden_size"] // conf["num_attention_heads"]


def ref_config(conf: dict):
    import llama_reference as ref

    if rope_type(conf) != "default":
        raise SystemExit(f"the parity script handles default RoPE only, got {rope_type(conf)!r}")
    if conf.get("layer_types") and any(t != "full_attention" for t in conf["layer_types"]):
        raise SystemExit("sliding-window layers are not handled by the parity script")
    L = conf["num_hidden_layers"]
    return ref.RefConfig(
        vocab=conf["vocab_size"], hidden=conf["hidden_size"], layers=L, heads=conf["num_attention_heads"],
        kv_heads=conf.get("num_key_value_heads", conf["num_attention_heads"]), head_dim=head_dim_of(conf),
        intermediate=conf["intermediate_size"], norm_eps=conf["rms_norm_eps"],
        tied=bool(conf.get("tie_word_embeddings", False)), attention_bias=bool(conf.get("attention_bias", False)),
        mlp_bias=bool(conf.get("mlp_bias", False)), qk_norm=conf.get("model_type") == "qwen3",
        positions=positions_of(conf), rope=ref.RopeSpec(theta=rope_theta(conf)))


def stock_arch(positions: list[str]) -> str:
    """The stock llama.cpp architecture that runs this layer pattern (formats.md §3.6)."""
    L = len(positions)
    if all(p == "none" for p in positions):
        return "granite"
    if all(p == "rope" for p in positions):
        return "llama"
    if positions == ["none" if (i + 1) % 4 == 0 else "rope" for i in range(L)]:
        return "smollm3"
    raise SystemExit(f"no stock llama.cpp architecture runs the layer pattern {positions}")


def load_weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    index = folder / "model.safetensors.index.json"
    if index.exists():
        files = sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
    else:
        files = [folder / "model.safetensors"] if (folder / "model.safetensors").exists() else []
    if not files:
        raise SystemExit(f"{folder}: no .safetensors")
    W: dict[str, np.ndarray] = {}
    for f in files:
        W.update(load_file(str(f)))
    return W


# ---------------------------------------------------------------------------------------------
# HF <-> llama.cpp tensor names (formats.md §3.1)

_LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight", "self_attn.o_proj.bias": "attn_output.bias",
    "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.gate_proj.bias": "ffn_gate.bias",
    "mlp.up_proj.weight": "ffn_up.weight", "mlp.up_proj.bias": "ffn_up.bias",
    "mlp.down_proj.weight": "ffn_down.weight", "mlp.down_proj.bias": "ffn_down.bias",
}
_TOP_MAP = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
            "lm_head.weight": "output.weight"}


def gguf_name(hf: str) -> str:
    if hf in _TOP_MAP:
        return _TOP_MAP[hf]
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", hf)
    if m and m.group(2) in _LAYER_MAP:
        return f"blk.{m.group(1)}.{_LAYER_MAP[m.group(2)]}"
    raise SystemExit(f"no llama.cpp name for tensor {hf!r}")


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate_half row order -> ggml adjacent pairs (convert_hf_to_gguf's LlamaModel.permute, formats.md §3.3)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
             .swapaxes(1, 2).reshape(w.shape))


# ---------------------------------------------------------------------------------------------
# GGUF types and rounding


PYTHON_WRITER_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")  # what gguf.quants quantises


def qtype(name: str):
    import gguf

    return {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
            "bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0,
            "q4_0": gguf.GGMLQuantizationType.Q4_0, "q4_1": gguf.GGMLQuantizationType.Q4_1,
            "q5_0": gguf.GGMLQuantizationType.Q5_0, "q5_1": gguf.GGMLQuantizationType.Q5_1}[name]


def file_type(name: str) -> int:
    import gguf

    F = gguf.LlamaFileType
    return {"f32": F.ALL_F32, "f16": F.MOSTLY_F16, "bf16": F.MOSTLY_BF16, "q8_0": F.MOSTLY_Q8_0,
            "q4_0": F.MOSTLY_Q4_0, "q4_1": F.MOSTLY_Q4_1, "q5_0": F.MOSTLY_Q5_0, "q5_1": F.MOSTLY_Q5_1}[name]


def python_writer_type(gname: str, arr: np.ndarray, outtype: str):
    """convert_hf_to_gguf's rule (formats.md §3.4): 1-D, norms and biases F32; the rest the outtype, F16 when a
    row is not a whole number of blocks."""
    import gguf

    if arr.ndim <= 1 or gname.endswith("_norm.weight") or not gname.endswith(".weight"):
        return gguf.GGMLQuantizationType.F32
    t = qtype(outtype)
    block = gguf.GGML_QUANT_SIZES[t][0]
    if arr.shape[-1] % block != 0:
        return gguf.GGMLQuantizationType.F16
    return t


def round_to(arr: np.ndarray, t) -> np.ndarray:
    """float32 values the GGUF holds for arr stored as type t (gguf.quants: bit-exact with ggml's reference)."""
    import gguf

    a = np.ascontiguousarray(arr, dtype=np.float32)
    if t == gguf.GGMLQuantizationType.F32:
        return a
    if t == gguf.GGMLQuantizationType.F16:
        return a.astype(np.float16).astype(np.float32)
    return gguf.quants.dequantize(gguf.quants.quantize(a, t), t).astype(np.float32)


def encode(arr: np.ndarray, t) -> np.ndarray:
    import gguf

    a = np.ascontiguousarray(arr, dtype=np.float32)
    if t == gguf.GGMLQuantizationType.F32:
        return a
    if t == gguf.GGMLQuantizationType.F16:
        return a.astype(np.float16)
    return gguf.quants.quantize(a, t)


# ---------------------------------------------------------------------------------------------
# tokenizer (organism: byte-level BPE without merges; byte b is id b)




def hf_tokenizer(folder: Path) -> dict | None:
    p = folder / "tokenizer.json"
    if not p.exists():
        return None
    return json.loads(p.read_text())


def byte_ids(tok: dict, data: bytes) -> list[int]:
    """ids of data for a ByteLevel BPE tokenizer without merges (the organism's), checked to be that shape."""
    model = tok["model"]
    if model.get("type") != "BPE" or model.get("merges") or (tok.get("pre_tokenizer") or {}).get("type") != "ByteLevel":
        raise SystemExit("--text needs the organism's byte-level tokenizer (BPE, ByteLevel, no merges)")
    vocab = model["vocab"]
    b2u = byte_to_unicode()
    return [vocab[b2u[b]] for b in data]


def gguf_vocab(tok: dict, vocab_size: int) -> tuple[list[str], list[int]]:
    """(tokens, token types) of a gpt2 GGUF vocabulary for a merge-less ByteLevel tokenizer."""
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [5] * vocab_size  # UNUSED
    for piece, i in tok["model"]["vocab"].items():
        tokens[i] = piece
        types[i] = 1  # NORMAL
    for a in tok.get("added_tokens", []):
        tokens[a["id"]] = a["content"]
        types[a["id"]] = 3 if a.get("special") else 4  # CONTROL / USER_DEFINED
    return tokens, types


# ---------------------------------------------------------------------------------------------
# the Python GGUF writer (--writer python)


def write_gguf_python(folder: Path, out: Path, outtype: str) -> dict:
    """Write folder as a GGUF that stock llama.cpp runs as the source model (formats.md §3)."""
    import gguf

    conf = load_config(folder)
    positions = positions_of(conf)
    arch = stock_arch(positions)
    if rope_type(conf) != "default" and arch != "granite":
        raise SystemExit("the Python writer handles default RoPE only")
    W = load_weights(folder)
    L, H = conf["num_hidden_layers"], conf["num_attention_heads"]
    KV = conf.get("num_key_value_heads", H)
    hd = head_dim_of(conf)
    V = conf["vocab_size"]

    w = gguf.GGUFWriter(str(out), arch)
    w.add_type("model")
    w.add_name(folder.name)
    w.add_block_count(L)
    w.add_context_length(conf.get("max_position_embeddings", 2048))
    w.add_embedding_length(conf["hidden_size"])
    w.add_feed_forward_length(conf["intermediate_size"])
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_rope_freq_base(rope_theta(conf))
    w.add_layer_norm_rms_eps(conf["rms_norm_eps"])
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_file_type(int(file_type(outtype)))
    w.add_vocab_size(V)
    w.add_rope_dimension_count(hd)  # granite asserts it equals head_dim
    if arch == "granite":
        # RoPE off on every layer (granite's rope_finetuned switch), logits not scaled; no residual,
        # embedding or attention multipliers (absent = off)
        w.add_bool(f"{arch}.rope.scaling.finetuned", False)
        w.add_logit_scale(1.0)

    tok = hf_tokenizer(folder)
    if tok is not None and tok["model"].get("type") == "BPE" and not tok["model"].get("merges"):
        tokens, types = gguf_vocab(tok, V)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types(types)
        # llama.cpp requires the merges key and gguf-py cannot write an empty array: one merge of two
        # special tokens, which byte-level pre-tokenized text never contains, so it never applies
        specials = [a["content"] for a in tok.get("added_tokens", [])]
        w.add_token_merges([f"{specials[0]} {specials[-1]}"] if len(specials) >= 1 else ["Ā ā"])
        if conf.get("bos_token_id") is not None:
            w.add_bos_token_id(conf["bos_token_id"])
        eos = conf.get("eos_token_id")
        if isinstance(eos, list):
            eos = eos[0] if eos else None
        if eos is not None:
            w.add_eos_token_id(eos)
        tc = folder / "tokenizer_config.json"
        if tc.exists():
            tcj = json.loads(tc.read_text())
            w.add_add_bos_token(bool(tcj.get("add_bos_token", False)))
    else:
        # no usable vocabulary: llama.cpp makes {arch}.vocab_size dummy tokens; ids are passed as ids
        w.add_tokenizer_model("none")
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    types: dict[str, str] = {}
    for name in sorted(W):  # safetensors order: lm_head, then model.* by name
        arr = W[name].astype(np.float32)
        g = gguf_name(name)
        if arch != "granite":
            if name.endswith("self_attn.q_proj.weight") or name.endswith("self_attn.q_proj.bias"):
                arr = permute_rows(arr, H)
            elif name.endswith("self_attn.k_proj.weight") or name.endswith("self_attn.k_proj.bias"):
                arr = permute_rows(arr, KV)
        t = python_writer_type(g, arr, outtype)
        types[g] = t.name
        data = encode(arr, t)
        w.add_tensor(g, data, raw_dtype=t if data.dtype == np.uint8 else None)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"architecture": arch, "tensor_types": types}


# ---------------------------------------------------------------------------------------------
# GGUF inspection and re-labelling (negative control)


def gguf_summary(path: Path) -> dict:
    import gguf

    r = gguf.GGUFReader(str(path))
    f = r.fields
    arch = f["general.architecture"].contents()
    kv = {}
    for k in f:
        if k.startswith("GGUF.") or k.startswith("tokenizer.ggml.") and k.endswith(("tokens", "token_type", "merges", "scores")):
            continue
        try:
            v = f[k].contents()
        except Exception:  # noqa: BLE001
            v = "?"
        kv[k] = v
    return {"architecture": arch, "kv": kv,
            "tensor_types": {t.name: t.tensor_type.name for t in r.tensors}}


def copy_gguf(src: Path, dst: Path, new_arch: str | None = None, dequantize: bool = False) -> None:
    """Copy src to dst through gguf-py's reader and writer.

    new_arch: general.architecture = new_arch, {old}.* keys renamed to {new}.*, the keys only granite reads
    dropped (the negative control). dequantize: every tensor that is not F32 dequantised to F32 by gguf.quants,
    general.file_type 0 (the "dequantised twin" of a quantised file). Other tensors byte for byte.
    """
    import gguf

    r = gguf.GGUFReader(str(src))
    old = r.fields["general.architecture"].contents()
    arch = new_arch or old
    drop = set()
    if new_arch:
        drop = {f"{old}.{s}" for s in ("logit_scale", "rope.scaling.finetuned", "residual_scale", "embedding_scale",
                                        "attention.scale")}
    VT = gguf.GGUFValueType
    Q = gguf.GGMLQuantizationType

    class Writer(gguf.GGUFWriter):
        """gguf-py 0.19.0's writer refuses empty arrays, which GGUF and llama.cpp allow (nopekit writes an empty
        tokenizer.ggml.merges for a byte-level vocabulary without merges): pack them as type, count 0."""

        def _pack_val(self, val, vtype, add_vtype, sub_type=None):  # noqa: ANN001, ANN202
            if vtype == VT.ARRAY and len(val) == 0:
                return (self._pack("I", vtype) if add_vtype else b"") + self._pack("I", sub_type) + self._pack("Q", 0)
            return super()._pack_val(val, vtype, add_vtype, sub_type)

    w = Writer(str(dst), arch)
    for key, field in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in drop:
            continue
        nkey = arch + key[len(old):] if key.startswith(old + ".") else key
        main = field.types[0]
        if dequantize and key == "general.file_type":
            w.add_key_value(key, int(gguf.LlamaFileType.ALL_F32), main)
        elif main == VT.ARRAY:
            sub = VT(int(field.parts[3][0]))  # parts: key length, key, type, element type, count, items
            if sub == VT.STRING:
                val = [bytes(field.parts[i]) for i in field.data]
            else:
                val = [field.parts[i].tolist()[0] for i in field.data]
            w.add_key_value(nkey, val, VT.ARRAY, sub_type=sub)
        elif main == VT.STRING:
            w.add_key_value(nkey, bytes(field.parts[field.data[0]]), VT.STRING)
        else:
            w.add_key_value(nkey, field.parts[field.data[0]].tolist()[0], main)
    for t in r.tensors:
        data = np.array(t.data)
        if dequantize and t.tensor_type != Q.F32:
            w.add_tensor(t.name, gguf.quants.dequantize(data, t.tensor_type).astype(np.float32))
        else:
            w.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def writer_diff(folder: Path, nk_path: Path, t: str, work: Path) -> dict:
    """nopekit's GGUF against this script's Python writer's GGUF of the same folder and type: tensors (name,
    type, shape, bytes; order ignored) and metadata (keys, values; tokenizer arrays compared whole)."""
    import gguf

    py_path = work / f"{nk_path.stem}.python.gguf"
    if py_path.exists():
        py_path.unlink()
    try:
        write_gguf_python(folder, py_path, t)
    except (SystemExit, Exception) as e:  # noqa: BLE001
        return {"error": f"python writer: {e}"}
    a, b = gguf.GGUFReader(str(nk_path)), gguf.GGUFReader(str(py_path))
    ta = {x.name: x for x in a.tensors}
    tb = {x.name: x for x in b.tensors}
    differing = [n for n in ta if n in tb and (ta[n].tensor_type != tb[n].tensor_type
                                                or list(ta[n].shape) != list(tb[n].shape)
                                                or np.array(ta[n].data).tobytes() != np.array(tb[n].data).tobytes())]

    def kv(r):  # noqa: ANN001, ANN202
        out = {}
        for k, f in r.fields.items():
            if k.startswith("GGUF."):
                continue
            try:
                out[k] = f.contents()
            except Exception:  # noqa: BLE001
                out[k] = [bytes(f.parts[i]) for i in f.data]
        return out

    ka, kb = kv(a), kv(b)
    return {"tensors_only_nopekit": sorted(set(ta) - set(tb)), "tensors_only_python": sorted(set(tb) - set(ta)),
            "tensors_differing": differing, "tensor_order_same": list(ta) == list(tb),
            "kv_only_nopekit": [k for k in ka if k not in kb], "kv_only_python": [k for k in kb if k not in ka],
            "kv_values_differing": [k for k in ka if k in kb and ka[k] != kb[k] and k != "general.name"]}


def short_diff(d: dict) -> str:
    if "error" in d:
        return d["error"]
    parts = ["tensors identical" if not (d["tensors_only_nopekit"] or d["tensors_only_python"] or d["tensors_differing"])
             else f"tensors differ: {d['tensors_differing'] + d['tensors_only_nopekit'] + d['tensors_only_python']}"]
    for k in ("kv_only_nopekit", "kv_only_python", "kv_values_differing"):
        if d[k]:
            parts.append(f"{k} {d[k]}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# nopekit


def run(cmd: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stderr.strip()[-2000:]}")
    return p


def nopekit_has_gguf_convert(nopekit: str) -> bool:
    p = subprocess.run([nopekit, "convert", "--help"], capture_output=True, text=True)
    return p.returncode == 0 and "--type" in p.stdout


def nopekit_convert(nopekit: str, folder: Path, out: Path, t: str) -> None:
    run([nopekit, "convert", str(folder), str(out), "--type", t])


def nopekit_bake(nopekit: str, folder: Path, temps: Path, out: Path) -> None:
    run([nopekit, "bake", str(folder), "--temps", str(temps), "--out", str(out)])


def python_bake(folder: Path, temps: Path, out: Path) -> None:
    """Stand-in for `nopekit bake` (only with --writer python and no --nopekit): rows h·hd … h·hd+hd-1 of
    q_proj (and its bias) times float32(s[l][h])."""
    from safetensors.numpy import save_file

    conf = load_config(folder)
    table = json.loads(temps.read_text())
    W = load_weights(folder)
    hd, H = head_dim_of(conf), conf["num_attention_heads"]
    for li, row in enumerate(table["scales"]):
        if row is None:
            continue
        for suffix in ("weight", "bias"):
            k = f"model.layers.{li}.self_attn.q_proj.{suffix}"
            if k in W:
                a = W[k].astype(np.float32).copy()
                for h, s in enumerate(row):
                    a[h * hd:(h + 1) * hd] *= np.float32(s)
                W[k] = a
    out.mkdir(parents=True)
    for f in folder.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy2(f, out / f.name)
    save_file(W, str(out / "model.safetensors"), metadata={"format": "pt"})


def nopekit_score(nopekit: str, model: Path, tokens_file: Path) -> dict:
    p = run([nopekit, "score", str(model), "--tokens", str(tokens_file), "--json", "--per-token", "--threads", "2"])
    return json.loads(p.stdout)


# ---------------------------------------------------------------------------------------------
# reference forward


def unpermute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of permute_rows."""
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
             .swapaxes(1, 2).reshape(w.shape))


def file_weight(path: Path, gname: str, hf_name: str, conf: dict) -> np.ndarray:
    """One tensor of the GGUF at path, dequantised to float32 in HF layout (Q/K rows un-permuted unless the
    file is granite, whose NoPE rows stay in HF order)."""
    import gguf

    r = gguf.GGUFReader(str(path))
    t = next(t for t in r.tensors if t.name == gname)
    a = gguf.quants.dequantize(np.array(t.data), t.tensor_type).astype(np.float32)
    if r.fields["general.architecture"].contents() != "granite":
        H = conf["num_attention_heads"]
        if ".q_proj." in hf_name:
            a = unpermute_rows(a, H)
        elif ".k_proj." in hf_name:
            a = unpermute_rows(a, conf.get("num_key_value_heads", H))
    return a


def reference_logits(folder: Path, ids: list[int], lam: np.ndarray | None,
                     tensor_types: dict[str, str] | None, gguf_path: Path | None = None,
                     notes: dict | None = None) -> np.ndarray:
    """llama_reference.forward (float64) logits [T, V] of folder's weights, each rounded to its GGUF type by
    gguf.quants. A type gguf.quants cannot quantise (the K-quants) is taken from the GGUF itself (dequantised,
    un-permuted); notes["weights_from_file"] then lists those tensors."""
    import gguf
    import torch

    import llama_reference as ref

    torch.set_num_threads(1)
    conf = load_config(folder)
    cfg = ref_config(conf)
    W = load_weights(folder)
    Wt = {}
    from_file = []
    for name, arr in W.items():
        a = arr.astype(np.float32)
        if tensor_types is not None:
            g = gguf_name(name)
            t = gguf.GGMLQuantizationType[tensor_types[g]]
            try:
                a = round_to(a, t)
            except NotImplementedError:
                if gguf_path is None:
                    raise
                a = file_weight(gguf_path, g, name, conf)
                from_file.append(g)
        Wt[name] = torch.from_numpy(np.ascontiguousarray(a))
    if notes is not None and from_file:
        notes["weights_from_file"] = from_file
    x = torch.tensor([ids], dtype=torch.long)
    lam_t = None if lam is None else torch.tensor(lam, dtype=torch.float64)
    out = ref.forward(cfg, Wt, x, lam=lam_t, dtype=torch.float64)
    return out["logits"][0].numpy()


def lambda_of(table: dict, heads: int) -> np.ndarray:
    return np.array([[float(np.float32(s)) for s in row] if row is not None else [1.0] * heads
                     for row in table["scales"]], dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# llama.cpp


GGML_TYPE = {"f32": 0, "f16": 1}


def llamacpp_logits(path: Path, ids: list[int], kv: str, flash_attn: str, threads: int) -> tuple[np.ndarray, dict]:
    """Logits [T, V] of every position from llama-cpp-python (CPU)."""
    import llama_cpp

    kw = dict(model_path=str(path), n_ctx=len(ids), n_batch=len(ids), n_ubatch=len(ids), logits_all=True,
              n_gpu_layers=0, verbose=False, n_threads=threads, n_threads_batch=threads,
              type_k=GGML_TYPE[kv], type_v=GGML_TYPE[kv])
    kw["flash_attn"] = flash_attn == "on"  # llama_cpp.Llama's default is off
    llm = llama_cpp.Llama(**kw)
    try:
        llm.eval(ids)
        logits = np.array(llm.scores[: len(ids)], dtype=np.float64)
        info = {"n_vocab": llm.n_vocab(), "n_ctx": llm.n_ctx()}
        try:
            info["arch"] = llm.metadata.get("general.architecture")
        except Exception:  # noqa: BLE001
            pass
        return logits, info
    finally:
        llm.close() if hasattr(llm, "close") else None
        del llm


@contextlib.contextmanager
def quiet_stderr():
    """Silence the C library's own stderr lines (llama.cpp logs some warnings even with verbose=False)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def llamacpp_tokenize(path: Path, data: bytes) -> list[int] | None:
    """llama.cpp's own tokenization of data (no BOS, no special parsing), or None without a vocabulary."""
    import llama_cpp

    with quiet_stderr():
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return llm.tokenize(data, add_bos=False, special=False)
    except Exception:  # noqa: BLE001
        return None
    finally:
        llm.close() if hasattr(llm, "close") else None


# ---------------------------------------------------------------------------------------------
# metrics


def mean_nll(logits: np.ndarray, ids: list[int]) -> float:
    z = logits[:-1].astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    tgt = np.asarray(ids[1:])
    return float(-logp[np.arange(len(tgt)), tgt].mean())


def compare(lc: np.ndarray, rf: np.ndarray, ids: list[int], rel_tol: float = REL_LOSS_TOL,
            top1_min: float = TOP1_MIN) -> dict:
    loss_lc, loss_rf = mean_nll(lc, ids), mean_nll(rf, ids)
    d = abs(loss_lc - loss_rf)
    top1 = float((lc.argmax(-1) == rf.argmax(-1)).mean())
    ok = d <= rel_tol * loss_rf and top1 >= top1_min
    return {"loss_llamacpp": loss_lc, "loss_ref": loss_rf, "dloss": loss_lc - loss_rf,
            "dloss_rel": d / loss_rf, "max_dlogit": float(np.abs(lc - rf).max()), "top1": top1,
            "rel_tol": rel_tol, "top1_min": top1_min, "pass": bool(ok)}


# ---------------------------------------------------------------------------------------------
# cases


def parse_cases(specs: list[str]) -> list[tuple[str, list[str]]]:
    out = []
    for s in specs:
        name, _, types = s.partition(":")
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; known: {', '.join(CASES)}")
        out.append((name, types.split(",") if types else list(CASES[name][1])))
    return out


def tokens_for(case: str, folder: Path, text: Path) -> tuple[list[int], str]:
    conf = load_config(folder)
    max_t = conf.get("max_position_embeddings", ENGINE_MAX_T)
    tok = hf_tokenizer(folder)
    if case.startswith("organism"):
        bos = conf.get("bos_token_id", ORGANISM_BOS)
        ids = [bos] + byte_ids(tok, text.read_bytes()[: max_t - 1])
        return ids, f"BOS + first {len(ids) - 1} bytes of {text.name}"
    T = min(ENGINE_MAX_T, max_t)
    rng = np.random.default_rng(ENGINE_SEED)
    ids = rng.integers(0, conf["vocab_size"], T).tolist()
    bos = conf.get("bos_token_id")
    if bos is not None:
        ids[0] = int(bos)
    return ids, f"{T} seeded random ids (seed {ENGINE_SEED})"


def md_table(rows: list[dict]) -> str:
    head = ("| case | type | arch | KV cache | T | loss llama.cpp | loss reference | Δloss / loss | max abs Δlogit "
            "| top-1 | loss nopekit (HF) | loss nopekit (GGUF) | expected | result |")
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['type']} | {r.get('arch', '?')} | {r.get('kv', '')} | | | | | | | | | "
                         f"{r['expect']} | ERROR: {r['error'][:120]} |")
            continue
        nk = f"{r['loss_nopekit']:.6f}" if r.get("loss_nopekit") is not None else "–"
        ng = f"{r['loss_nopekit_gguf']:.6f}" if r.get("loss_nopekit_gguf") is not None else \
            ("error" if r.get("nopekit_gguf_error") else "–")
        verdict = "pass" if r["pass"] else "FAIL"
        ok = (r["pass"] if r["expect"] == "pass" else not r["pass"])
        lines.append(
            f"| {r['case']} | {r['type']} | {r['arch']} | {r['kv']} | {r['T']} | {r['loss_llamacpp']:.6f} | "
            f"{r['loss_ref']:.6f} | {r['dloss_rel']:.2e} | {r['max_dlogit']:.2e} | {100 * r['top1']:.1f}% | {nk} | "
            f"{ng} | {r['expect']} | {verdict}{'' if ok else ' (unexpected)'} |")
    return "\n".join(lines)


def llamacpp_rows(base: dict, path: Path, ids: list[int], ref: np.ndarray, kvs: list[str], args, nk,
                  quantised: bool = False) -> list[dict]:
    """One row per KV-cache type: llama.cpp's logits on path against the reference."""
    rows = []
    for kv in kvs:
        try:
            lc, info = llamacpp_logits(path, ids, kv, args.flash_attn, args.threads)
            limits = (REL_LOSS_TOL_QUANT, TOP1_MIN_QUANT) if quantised else (REL_LOSS_TOL, TOP1_MIN)
            r = {**base, "kv": kv, **compare(lc, ref, ids, *limits), "loss_nopekit": nk, "llamacpp": info}
        except Exception as e:  # noqa: BLE001
            r = {**base, "kv": kv, "error": f"{type(e).__name__}: {e}"}
        rows.append(r)
        exp = " (expected FAIL)" if base["expect"] == "fail" else ""
        print(f"  {base['case']} {base['type']} kv={kv}: " + (
            f"loss {r['loss_llamacpp']:.6f} vs {r['loss_ref']:.6f}, max|Δlogit| {r['max_dlogit']:.2e}, "
            f"top-1 {100 * r['top1']:.1f}% -> {'pass' if r['pass'] else 'FAIL'}{exp}" if "error" not in r else r["error"]),
            flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nopekit", help="the nopekit binary (needed for --writer nopekit, bake and nopekit's loss)")
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--writer", choices=["nopekit", "python"], default="nopekit")
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES,
                    help="case[:type,type] (default types: organism f32,f16; others f32)")
    ap.add_argument("--text", type=Path, default=EVAL_TEXT, help="text for the organism cases (bytes)")
    ap.add_argument("--temps", type=Path, default=TEMPS, help="temperature table of organism-baked")
    ap.add_argument("--kv", default="f16,f32", help="KV-cache types to run (f16 = llama.cpp's default)")
    ap.add_argument("--flash-attn", choices=["on", "off"], default="off",
                    help="llama.cpp's flash attention (llama_cpp.Llama's default: off)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-negative", action="store_true", help="skip the negative controls")
    args = ap.parse_args()

    import gguf
    import llama_cpp

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    nopekit = str(Path(args.nopekit).resolve()) if args.nopekit else None
    if args.writer == "nopekit":
        if not nopekit:
            raise SystemExit("--writer nopekit needs --nopekit")
        if not nopekit_has_gguf_convert(nopekit):
            raise SystemExit(f"{nopekit} convert has no --type (no HF -> GGUF converter yet); use --writer python")
    kvs = args.kv.split(",")
    cases = parse_cases(args.cases)
    if not args.no_negative:  # the negative controls re-label the f32 GGUF of their case
        for _, base_case, _ in NEGATIVES:
            listed = [ts for c, ts in cases if c == base_case]
            if not listed:
                cases.append((base_case, ["f32"]))
            elif "f32" not in listed[0]:
                listed[0].append("f32")

    env = {"llama_cpp_python": llama_cpp.__version__, "gguf": importlib.metadata.version("gguf"),
           "writer": args.writer, "nopekit": nopekit, "flash_attn": args.flash_attn,
           "thresholds": {"rel_loss": REL_LOSS_TOL, "top1": TOP1_MIN, "rel_loss_quantised": REL_LOSS_TOL_QUANT,
                          "top1_quantised": TOP1_MIN_QUANT}, "text": str(args.text)}
    try:
        env["system_info"] = llama_cpp.llama_print_system_info().decode()
    except Exception:  # noqa: BLE001
        pass
    if nopekit:
        env["nopekit_version"] = subprocess.run([nopekit, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"llama-cpp-python {env['llama_cpp_python']}, writer {args.writer}, workdir {work}", flush=True)

    rows: list[dict] = []
    made: dict[tuple[str, str], Path] = {}
    for case, types in cases:
        src = CASES[case][0]
        folder = src
        lam = None
        ref_folder = src
        if case == "organism-baked":
            folder = work / "organism-baked"
            if folder.exists():
                shutil.rmtree(folder)
            if nopekit:
                nopekit_bake(nopekit, src, args.temps, folder)
            else:
                python_bake(src, args.temps, folder)
            conf = load_config(src)
            lam = lambda_of(json.loads(args.temps.read_text()), conf["num_attention_heads"])
        ids, what = tokens_for(case, src, args.text)
        tok_file = work / f"{case}.tokens.json"
        tok_file.write_text(json.dumps(ids))
        nk = None
        if nopekit:
            try:
                nk = nopekit_score(nopekit, folder, tok_file)["mean_loss"]
            except Exception as e:  # noqa: BLE001
                print(f"  nopekit score {case}: {e}", flush=True)
        for t in types:
            out = work / f"{case}-{t}.gguf"
            if out.exists():
                out.unlink()
            base = {"case": case, "type": t, "writer": args.writer, "tokens": what, "T": len(ids), "expect": "pass",
                    "gguf": str(out)}
            try:
                t0 = time.time()
                if args.writer == "nopekit":
                    nopekit_convert(nopekit, folder, out, t)
                else:
                    write_gguf_python(folder, out, t)
                summ = gguf_summary(out)
                base["arch"] = summ["architecture"]
                base["convert_seconds"] = round(time.time() - t0, 3)
                base["gguf_kv"] = {k: v for k, v in summ["kv"].items() if not k.startswith("tokenizer.")}
                made[(case, t)] = out
                notes: dict = {}
                ref = reference_logits(ref_folder, ids, lam, summ["tensor_types"], out, notes)
                base.update(notes)
                if args.writer == "nopekit" and t in PYTHON_WRITER_TYPES:
                    base["python_writer_diff"] = writer_diff(folder, out, t, work)
                    print(f"  {case} {t}: nopekit vs the Python writer: {short_diff(base['python_writer_diff'])}",
                          flush=True)
                if lam is not None:
                    # the baked folder's own weights, run without λ, must be the source run with λ
                    baked = reference_logits(folder, ids, None, summ["tensor_types"], out)
                    base["baked_weights_ref_max_dlogit"] = float(np.abs(baked - ref).max())
                if case.startswith("organism"):
                    lt = llamacpp_tokenize(out, args.text.read_bytes()[: len(ids) - 1])
                    base["llamacpp_tokenize_matches"] = None if lt is None else (lt == ids[1:])
                    print(f"  {case} {t}: llama.cpp's tokenizer gives our ids: {base['llamacpp_tokenize_matches']}",
                          flush=True)
                if nopekit:
                    try:  # nopekit reading its own (or our) GGUF back
                        base["loss_nopekit_gguf"] = nopekit_score(nopekit, out, tok_file)["mean_loss"]
                    except Exception as e:  # noqa: BLE001
                        base["loss_nopekit_gguf"] = None
                        base["nopekit_gguf_error"] = str(e)[-300:]
            except Exception as e:  # noqa: BLE001
                rows.append({**base, "error": f"{type(e).__name__}: {e}", "kv": ""})
                print(f"  {case} {t}: {e}", flush=True)
                continue
            quantised = t not in FLOAT_TYPES
            rows += llamacpp_rows(base, out, ids, ref, kvs, args, nk, quantised)
            if quantised:
                twin = work / f"{case}-{t}-dequantised.gguf"
                if twin.exists():
                    twin.unlink()
                try:
                    copy_gguf(out, twin, dequantize=True)
                except Exception as e:  # noqa: BLE001
                    rows.append({**base, "type": f"{t}→f32 twin", "kv": "", "error": f"{type(e).__name__}: {e}"})
                    continue
                rows += llamacpp_rows({**base, "type": f"{t}→f32 twin", "gguf": str(twin)}, twin, ids, ref, kvs, args,
                                      nk)

    if not args.no_negative:
        for name, base_case, arch in NEGATIVES:
            src = made.get((base_case, "f32"))
            base = {"case": name, "type": "f32", "writer": args.writer, "expect": "fail", "arch": arch}
            if src is None:
                rows.append({**base, "kv": "", "error": f"no f32 GGUF of {base_case}"})
                continue
            out = work / f"{name}.gguf"
            if out.exists():
                out.unlink()
            ids = json.loads((work / f"{base_case}.tokens.json").read_text())
            try:
                copy_gguf(src, out, new_arch=arch)
                ref = reference_logits(CASES[base_case][0], ids, None, gguf_summary(out)["tensor_types"])
            except Exception as e:  # noqa: BLE001
                rows.append({**base, "kv": "", "error": f"{type(e).__name__}: {e}"})
                continue
            rows += llamacpp_rows({**base, "T": len(ids), "gguf": str(out)}, out, ids, ref, kvs, args, None)

    table = md_table(rows)
    print()
    print(f"Thresholds: |Δloss| <= {REL_LOSS_TOL:g} · loss_ref and top-1 agreement >= {TOP1_MIN:.0%}; a block-quantised "
          f"file itself {REL_LOSS_TOL_QUANT:g} and {TOP1_MIN_QUANT:.0%}, its dequantised twin the strict limits.")
    print()
    print(table)
    good = all("error" not in r and (r["pass"] == (r["expect"] == "pass")) for r in rows)
    (work / "results.json").write_text(json.dumps({"env": env, "rows": rows, "ok": good}, indent=1, default=str))
    print(f"\n{'OK' if good else 'NOT OK'}: results in {work / 'results.json'}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
