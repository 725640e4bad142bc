"""The Hugging Face checkpoint layout the reference and interop scripts share: the tiny Llama
config of the sharded fixtures, the Llama state_dict names and shapes, huggingface_hub's shard
split and the size rule of `--max-shard-size`. Standard library only, so the CI interop checks
can import it from their venv."""
from __future__ import annotations

import re

TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "head_dim": 8,
    "hidden_act": "silu",
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 4,
    "num_hidden_layers": 3,
    "num_key_value_heads": 2,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 50,
}


def llama_tensor_shapes(cfg):
    """HF Llama state_dict names and shapes, in module (state_dict) order; no lm_head when tied."""
    h, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd, nh, nkv = cfg["head_dim"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    out = [("model.embed_tokens.weight", (v, h))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "self_attn.q_proj.weight", (nh * hd, h)),
            (p + "self_attn.k_proj.weight", (nkv * hd, h)),
            (p + "self_attn.v_proj.weight", (nkv * hd, h)),
            (p + "self_attn.o_proj.weight", (h, nh * hd)),
            (p + "mlp.gate_proj.weight", (inter, h)),
            (p + "mlp.up_proj.weight", (inter, h)),
            (p + "mlp.down_proj.weight", (h, inter)),
            (p + "input_layernorm.weight", (h,)),
            (p + "post_attention_layernorm.weight", (h,)),
        ]
    out.append(("model.norm.weight", (h,)))
    if not cfg["tie_word_embeddings"]:
        out.append(("lm_head.weight", (v, h)))
    return out


def hf_split(sizes, max_bytes):
    """huggingface_hub split_torch_state_dict_into_shards greedy rule.

    ``sizes``: list of (name, nbytes) in state_dict order.  Returns a list of
    shards, each a list of names.
    """
    shards, current, current_size = [], [], 0
    for name, nbytes in sizes:
        if nbytes > max_bytes:  # too big: its own shard, appended right away
            shards.append([name])
            continue
        if current and current_size + nbytes > max_bytes:
            shards.append(current)
            current, current_size = [], 0
        current.append(name)
        current_size += nbytes
    if current:
        shards.append(current)
    return shards


def parse_size(text: str) -> int:
    """'150K' -> 150000, '20KiB' -> 20480, '2GB' -> 2e9 (same rule as nopekit)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:([KMGT])(i?))?[Bb]?\s*", text, flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"bad size {text!r}")
    value = int(m.group(1))
    if m.group(2):
        value *= (1024 if m.group(3) else 1000) ** ("KMGT".index(m.group(2).upper()) + 1)
    return value
