"""Generate the engine goldens under ``fixtures/engine/``.

Run from the repository root (overwrites everything it generates; needs torch and transformers,
``pip install -r scripts/reference/requirements-torch.txt``)::

    .venv/bin/python scripts/reference/make_engine_goldens.py [--no-crosscheck] [--only CASE ...] [--out DIR]

For every case it builds a tiny random Llama-family model and writes ``fixtures/engine/<case>/``:

``config.json`` + ``model.safetensors``
    A Hugging Face checkpoint (F32, HF tensor names, tied models have no ``lm_head.weight``),
    loadable by transformers 5.24.0 and by nopekit's reader. Llama/Qwen3 NoPE layers are stated with
    nopekit's own field ``"nopekit_position"`` (transformers ignores it); SmolLM3 uses its
    ``no_rope_layers`` (1 = the layer uses RoPE). Sliding-window layers are stated as transformers
    does: ``"layer_types"`` (``"sliding_attention"`` / ``"full_attention"`` per layer) plus
    ``"sliding_window": W``; nopekit decodes that pair into per-layer windows for any model type.
``golden.safetensors``
    ``input_ids`` I32 [B, T]; ``logits`` F32 [B, T, V]; ``losses`` F32 [B, T-1] (cross-entropy in
    nats of input_ids[:, t+1] from position t); ``entropy`` F32 [L, B, H, T] (attention entropy in
    bits over keys j <= i, and j > i - W on a layer with sliding window W); ``hidden`` F32 [L+1, B, T, D] (``hidden[0]`` = token embeddings,
    ``hidden[l+1]`` = residual stream after layer l, all BEFORE the final norm; unlike HF's
    ``output_hidden_states``, whose last entry is after the final norm); ``lambda`` F32 [L, H]
    (per-head temperature multipliers, 1.0 where none).
``case.json``
    What the case is: shapes, GQA ratio, flags, positions, RoPE settings with the inverse
    frequencies, lambda, seed, how transformers expresses it, tolerance notes with measured
    float32-vs-float64 reference errors.

The numbers come from ``llama_reference.py`` (our own float64 forward), rounded to float32 at the
end. With crosscheck on (default), every case is also run through transformers' own model classes
in float64, and the results go to ``fixtures/engine/crosscheck.txt``:

- ``inv_freq``: our RoPE port run in float32 must equal transformers' ``inv_freq`` buffer bit for bit
  (transformers computes it in float32), and ``attention_scaling`` must match;
- ``hf64*``: transformers in float64 with three precision patches that do not change the math
  (its RMSNorm casts to float32 -> kept in float64; eager softmax forced to float32 -> float64;
  RoPE angles in float32 -> float64 with our float64 inv_freq, validated by the check above).
  Logits, hidden states and attention entropies must agree to ~1e-12;
- ``hf64-stock``: transformers in float64 as shipped (differences ~1e-6 from its float32 casts);
- ``hf32-sdpa``: transformers in float32 with SDPA, what a user runs (differences ~1e-5).

The transformers class per case: LlamaForCausalLM (RoPE cases, incl. linear/llama3/yarn),
SmolLM3ForCausalLM (the every:4 case; Llama cases with NoPE layers via ``no_rope_layers``, 0 on the NoPE
layers, and for sliding windows its ``use_sliding_window`` with our ``layer_types``), Qwen3ForCausalLM
(q/k norm; its NoPE via a patched ``apply_rotary_pos_emb``, plus an unpatched RoPE variant against our
reference with RoPE on), Phi3ForCausalLM (partial rotary; fused qkv/gate_up weights). lambda is
baked into q_proj rows (and bias) for models without q-norm, and applied by a forward hook on
``q_norm`` for Qwen3 (a per-head factor cannot be baked into Qwen3's shared q_norm weight).

Deterministic: fixed seeds, float64 maths, one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_reference as ref  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "fixtures" / "engine"
MADE_BY = "scripts/reference/make_engine_goldens.py"
VOCAB = 61
BATCH = 2

torch.set_num_threads(1)

# ---------------------------------------------------------------------------------------------
# cases

CASES = [
    dict(name="llama_mha_rope",
         what="Llama, MHA (GQA ratio 1), RoPE theta 10000 on every layer, untied, no biases",
         model_type="llama", hidden=64, layers=2, heads=4, kv_heads=4, intermediate=64, T=37,
         positions="rope", rope=dict(theta=10000.0), eps=1e-5),
    dict(name="llama_gqa2_nope",
         what="Llama, 4 heads / 2 KV heads, every layer NoPE (nopekit_position \"none\")",
         model_type="llama", hidden=48, layers=3, heads=4, kv_heads=2, intermediate=96, T=37,
         positions="none", eps=1e-5),
    dict(name="llama_gqa4_tied_bias",
         what="Llama, 8 heads / 2 KV heads (head_dim 8), tied embeddings, attention_bias and mlp_bias, "
              "RoPE on every layer, lambda != 1 (must scale the q bias too)",
         model_type="llama", hidden=64, layers=2, heads=8, kv_heads=2, intermediate=96, T=37,
         positions="rope", rope=dict(theta=10000.0), tied=True, attention_bias=True, mlp_bias=True,
         lam="all", eps=1e-5),
    dict(name="qknorm_nope",
         what="Qwen3-style per-head q/k RMSNorm (weights of size head_dim, before RoPE), explicit "
              "head_dim 16 with hidden 48 (q_proj is 64x48), every layer NoPE, lambda != 1 (after q-norm)",
         model_type="qwen3", hidden=48, layers=2, heads=4, kv_heads=2, head_dim=16, intermediate=96, T=37,
         positions="none", qk_norm=True, rope=dict(theta=10000.0), lam="all", eps=1e-6),
    dict(name="smollm3_every4",
         what="SmolLM3: 4 layers, RoPE except layer 3 NoPE (no_rope_layers [1,1,1,0]), tied, "
              "lambda != 1 on the NoPE layer only",
         model_type="smollm3", hidden=48, layers=4, heads=4, kv_heads=2, intermediate=64, T=37,
         positions="smollm3", rope=dict(theta=100000.0), tied=True, lam="nope", eps=1e-6),
    dict(name="nope_lambda",
         what="Llama, 6 heads / 2 KV heads (GQA ratio 3, head_dim 8), every layer NoPE, lambda in [0.8, 2.2] "
              "per layer and head",
         model_type="llama", hidden=48, layers=3, heads=6, kv_heads=2, intermediate=96, T=37,
         positions="none", lam="all", eps=1e-5),
    dict(name="rope_llama3_scaling",
         what="Llama, RoPE with rope_scaling llama3 (factor 8, low_freq_factor 1, high_freq_factor 4, "
              "original_max_position_embeddings 16), head_dim 32 so two frequencies fall in the smoothed band",
         model_type="llama", hidden=64, layers=2, heads=2, kv_heads=1, intermediate=64, T=37,
         positions="rope", rope=dict(theta=10000.0, rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                     high_freq_factor=4.0, original_max_position_embeddings=16),
         max_pos=128, eps=1e-5),
    dict(name="rope_partial_rotary",
         what="Llama config with partial_rotary_factor 0.5: the first 8 of 16 dims of each head are "
              "rotated (rotate_half pairing within those 8), dims 8..15 pass through",
         model_type="llama", hidden=64, layers=2, heads=4, kv_heads=2, intermediate=64, T=37,
         positions="rope", rope=dict(theta=10000.0, partial_rotary_factor=0.5), eps=1e-5),
    dict(name="rope_linear",
         what="Llama, RoPE with linear scaling factor 2 (inv_freq / 2), v5 config format (rope_parameters)",
         model_type="llama", hidden=48, layers=2, heads=4, kv_heads=4, intermediate=96, T=37,
         positions="rope", rope=dict(theta=10000.0, rope_type="linear", factor=2.0), v5_format=True,
         max_pos=64, eps=1e-5),
    dict(name="rope_yarn",
         what="Llama, RoPE with yarn (factor 4, original_max_position_embeddings 16, beta_fast 32, "
              "beta_slow 1, attention_factor default 0.1 ln 4 + 1, applied to cos and sin), theta 500 and "
              "head_dim 32 so the ramp has intermediate values, v5 config format (rope_parameters)",
         model_type="llama", hidden=64, layers=2, heads=2, kv_heads=2, intermediate=64, T=37,
         positions="rope", rope=dict(theta=500.0, rope_type="yarn", factor=4.0, original_max_position_embeddings=16,
                                     beta_fast=32.0, beta_slow=1.0), v5_format=True, max_pos=64, eps=1e-5),
    dict(name="long_nope_t130",
         what="Llama, 4 heads / 2 KV heads, every layer NoPE, T = 130 (several attention tiles), lambda != 1",
         model_type="llama", hidden=48, layers=2, heads=4, kv_heads=2, intermediate=96, T=130,
         positions="none", lam="all", eps=1e-5),
    dict(name="window_hybrid",
         what="Llama, 4 layers, 4 heads / 2 KV heads (head_dim 8): layers 0 and 2 RoPE theta 10000 with a sliding "
              "window of 8 keys (query i sees keys i-7..i), layers 1 and 3 NoPE with global causal attention "
              "(nopekit_position \"layers:1,3\", layer_types + sliding_window 8), T = 40 > window, lambda != 1",
         model_type="llama", hidden=32, layers=4, heads=4, kv_heads=2, intermediate=64, T=40,
         positions=["rope", "none", "rope", "none"], windows=[8, None, 8, None], lam="all", eps=1e-5),
]


def ref_config(case: dict) -> ref.RefConfig:
    L = case["layers"]
    pos = case["positions"]
    if isinstance(pos, list):  # explicit, one entry per layer
        assert len(pos) == L and set(pos) <= {"rope", "none"}, pos
        positions = list(pos)
    elif pos == "rope":
        positions = ["rope"] * L
    elif pos == "none":
        positions = ["none"] * L
    elif pos == "smollm3":  # every 4th layer NoPE
        positions = ["none" if (i + 1) % 4 == 0 else "rope" for i in range(L)]
    else:
        raise ValueError(pos)
    return ref.RefConfig(
        vocab=VOCAB, hidden=case["hidden"], layers=L, heads=case["heads"], kv_heads=case["kv_heads"],
        head_dim=case.get("head_dim", case["hidden"] // case["heads"]), intermediate=case["intermediate"],
        norm_eps=case["eps"], tied=case.get("tied", False), attention_bias=case.get("attention_bias", False),
        mlp_bias=case.get("mlp_bias", False), qk_norm=case.get("qk_norm", False), positions=positions,
        rope=ref.RopeSpec(**{"theta": 10000.0, **case.get("rope", {})}), windows=list(case.get("windows", [])))


# ---------------------------------------------------------------------------------------------
# weights, inputs, lambda


def make_weights(cfg: ref.RefConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random float32 weights under HF names. Scales keep activations O(1) and attention peaked
    enough that entropies and temperatures matter."""
    D, I, V, hd = cfg.hidden, cfg.intermediate, cfg.vocab, cfg.head_dim
    H, KV = cfg.heads, cfg.kv_heads

    def n(*shape, std=1.0, mean=0.0):
        return (mean + std * rng.standard_normal(shape)).astype(np.float32)

    # tied: the embedding is also the LM head, keep its logits O(1)
    W: dict[str, np.ndarray] = {"model.embed_tokens.weight": n(V, D, std=0.3 if cfg.tied else 1.0)}
    qk_std = 1.0 if cfg.qk_norm else 1.5
    for li in range(cfg.layers):
        p = f"model.layers.{li}."
        W[p + "input_layernorm.weight"] = n(D, std=0.1, mean=1.0)
        W[p + "self_attn.q_proj.weight"] = n(H * hd, D, std=qk_std / math.sqrt(D))
        W[p + "self_attn.k_proj.weight"] = n(KV * hd, D, std=qk_std / math.sqrt(D))
        W[p + "self_attn.v_proj.weight"] = n(KV * hd, D, std=1 / math.sqrt(D))
        W[p + "self_attn.o_proj.weight"] = n(D, H * hd, std=1 / math.sqrt(H * hd))
        if cfg.attention_bias:
            W[p + "self_attn.q_proj.bias"] = n(H * hd, std=0.3)
            W[p + "self_attn.k_proj.bias"] = n(KV * hd, std=0.3)
            W[p + "self_attn.v_proj.bias"] = n(KV * hd, std=0.1)
            W[p + "self_attn.o_proj.bias"] = n(D, std=0.1)
        if cfg.qk_norm:
            W[p + "self_attn.q_norm.weight"] = n(hd, std=0.2, mean=1.5)
            W[p + "self_attn.k_norm.weight"] = n(hd, std=0.2, mean=1.5)
        W[p + "post_attention_layernorm.weight"] = n(D, std=0.1, mean=1.0)
        W[p + "mlp.gate_proj.weight"] = n(I, D, std=1 / math.sqrt(D))
        W[p + "mlp.up_proj.weight"] = n(I, D, std=1 / math.sqrt(D))
        W[p + "mlp.down_proj.weight"] = n(D, I, std=1 / math.sqrt(I))
        if cfg.mlp_bias:
            W[p + "mlp.gate_proj.bias"] = n(I, std=0.1)
            W[p + "mlp.up_proj.bias"] = n(I, std=0.1)
            W[p + "mlp.down_proj.bias"] = n(D, std=0.1)
    W["model.norm.weight"] = n(D, std=0.1, mean=1.0)
    if not cfg.tied:
        W["lm_head.weight"] = n(V, D, std=2 / math.sqrt(D))
    return W


def make_lambda(case: dict, cfg: ref.RefConfig, rng: np.random.Generator) -> np.ndarray:
    lam = np.ones((cfg.layers, cfg.heads), dtype=np.float32)
    which = case.get("lam")
    for li in range(cfg.layers):
        if which == "all" or (which == "nope" and cfg.positions[li] == "none"):
            lam[li] = rng.uniform(0.8, 2.2, cfg.heads).astype(np.float32)
    return lam


# ---------------------------------------------------------------------------------------------
# config.json


def config_json(case: dict, cfg: ref.RefConfig) -> dict:
    mt = case["model_type"]
    arch = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM", "smollm3": "SmolLM3ForCausalLM"}[mt]
    r = cfg.rope
    c = {
        "architectures": [arch],
        "model_type": mt,
        "vocab_size": cfg.vocab,
        "hidden_size": cfg.hidden,
        "intermediate_size": cfg.intermediate,
        "num_hidden_layers": cfg.layers,
        "num_attention_heads": cfg.heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": case.get("max_pos", 256),
        "rms_norm_eps": cfg.norm_eps,
        "tie_word_embeddings": cfg.tied,
        "attention_bias": cfg.attention_bias,
        "attention_dropout": 0.0,
    }
    if mt in ("llama", "smollm3"):
        c["mlp_bias"] = cfg.mlp_bias
    elif cfg.mlp_bias:
        # transformers' Qwen3 MLP has no biases; nopekit reads mlp_bias for every model type
        c["mlp_bias"] = True
    windowed = any(w is not None for w in cfg.windows)
    if mt == "qwen3":
        c["use_sliding_window"] = windowed
        c["sliding_window"] = None
    if mt == "smollm3":
        c["no_rope_layers"] = [1 if p == "rope" else 0 for p in cfg.positions]
        c["no_rope_layer_interval"] = 4
        c["use_sliding_window"] = windowed
        c["sliding_window"] = None
    if windowed:
        # transformers' per-layer form (Gemma, Cohere 2, Qwen 3, SmolLM3, ...): one window size for all
        # "sliding_attention" layers; nopekit decodes it for any model type
        sizes = {w for w in cfg.windows if w is not None}
        if len(sizes) != 1 or len(cfg.windows) != cfg.layers:
            raise ValueError(f"layer_types + sliding_window express one window size per model, got {cfg.windows}")
        c["layer_types"] = ["full_attention" if w is None else "sliding_attention" for w in cfg.windows]
        c["sliding_window"] = sizes.pop()

    scaling = None
    if r.rope_type != "default":
        scaling = {"rope_type": r.rope_type, "factor": r.factor}
        for k in ("low_freq_factor", "high_freq_factor", "original_max_position_embeddings", "beta_fast", "beta_slow"):
            if getattr(r, k) is not None:
                scaling[k] = getattr(r, k)
    if case.get("v5_format"):
        # transformers >= 5: theta and scaling together in rope_parameters
        c["rope_parameters"] = {"rope_type": r.rope_type, "rope_theta": r.theta, **({k: v for k, v in scaling.items() if k != "rope_type"} if scaling else {})}
    else:
        c["rope_theta"] = r.theta
        c["rope_scaling"] = scaling
    if r.partial_rotary_factor != 1.0:
        c["partial_rotary_factor"] = r.partial_rotary_factor

    if mt != "smollm3" and "none" in cfg.positions:
        c["nopekit_position"] = "none" if all(p == "none" for p in cfg.positions) else \
            "layers:" + ",".join(str(i) for i, p in enumerate(cfg.positions) if p == "none")
    c["pad_token_id"] = None
    c["bos_token_id"] = 1
    c["eos_token_id"] = 2
    c["dtype" if case.get("v5_format") else "torch_dtype"] = "float32"
    return c


# ---------------------------------------------------------------------------------------------
# transformers cross-check


def bake_lambda_into_q_proj(model, cfg: ref.RefConfig, lam: torch.Tensor) -> None:
    """nopekit's bake: scale the q_proj rows (and bias) of head h by lam[h] (models without q-norm)."""
    for li, layer in enumerate(model.model.layers):
        q = layer.self_attn.q_proj
        q.weight.data.view(cfg.heads, cfg.head_dim, -1).mul_(lam[li].to(q.weight.dtype)[:, None, None])
        if q.bias is not None:
            q.bias.data.view(cfg.heads, cfg.head_dim).mul_(lam[li].to(q.bias.dtype)[:, None])


def hook_lambda_after_q_norm(model, cfg: ref.RefConfig, lam: torch.Tensor) -> list:
    """Qwen3: scale q_norm's output [B, T, H, hd] per head (q_norm's weight is shared by all heads)."""
    handles = []
    for li, layer in enumerate(model.model.layers):
        f = lam[li]
        handles.append(layer.self_attn.q_norm.register_forward_hook(
            lambda m, inp, out, f=f: out * f.to(out.dtype)[None, None, :, None]))
    return handles


def f64_rms_forward(self, x):
    # same formula as transformers' RMSNorm, without its cast to float32
    return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))


def f64_rotary_forward(self, x, position_ids):
    freqs = position_ids[..., None].to(x.dtype) * self.inv_freq.to(x.dtype)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling


@contextlib.contextmanager
def float64_softmax():
    """transformers' eager attention calls softmax(..., dtype=torch.float32); keep float64."""
    orig = torch.nn.functional.softmax

    def softmax(input, dim=None, _stacklevel=3, dtype=None):
        if input.dtype == torch.float64:
            dtype = None
        return orig(input, dim=dim, dtype=dtype)

    torch.nn.functional.softmax = softmax
    try:
        yield
    finally:
        torch.nn.functional.softmax = orig


def precision_patch(model, inv_freq64: torch.Tensor) -> None:
    for m in model.modules():
        name = type(m).__name__
        if name.endswith("RMSNorm"):
            m.forward = types.MethodType(f64_rms_forward, m)
        elif name.endswith("RotaryEmbedding"):
            m.inv_freq = inv_freq64.clone()
            m.forward = types.MethodType(f64_rotary_forward, m)


@contextlib.contextmanager
def qwen3_nope():
    """Qwen3 has no NoPE switch: make its apply_rotary_pos_emb the identity."""
    from transformers.models.qwen3 import modeling_qwen3 as mq
    orig = mq.apply_rotary_pos_emb
    mq.apply_rotary_pos_emb = lambda q, k, cos, sin, unsqueeze_dim=1: (q, k)
    try:
        yield
    finally:
        mq.apply_rotary_pos_emb = orig


def hf_state_dict(case: dict, cfg: ref.RefConfig, W: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    sd = {k: torch.from_numpy(v.copy()) for k, v in W.items()}
    if cfg.tied:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    return sd


def phi3_state_dict(cfg: ref.RefConfig, W: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Phi3 fuses q|k|v into qkv_proj and gate|up into gate_up_proj (gate first)."""
    sd = {}
    t = lambda k: torch.from_numpy(W[k].copy())  # noqa: E731
    sd["model.embed_tokens.weight"] = t("model.embed_tokens.weight")
    sd["model.norm.weight"] = t("model.norm.weight")
    sd["lm_head.weight"] = t("lm_head.weight")
    for li in range(cfg.layers):
        p = f"model.layers.{li}."
        sd[p + "input_layernorm.weight"] = t(p + "input_layernorm.weight")
        sd[p + "post_attention_layernorm.weight"] = t(p + "post_attention_layernorm.weight")
        sd[p + "self_attn.qkv_proj.weight"] = torch.cat([t(p + f"self_attn.{n}_proj.weight") for n in "qkv"])
        sd[p + "self_attn.o_proj.weight"] = t(p + "self_attn.o_proj.weight")
        sd[p + "mlp.gate_up_proj.weight"] = torch.cat([t(p + "mlp.gate_proj.weight"), t(p + "mlp.up_proj.weight")])
        sd[p + "mlp.down_proj.weight"] = t(p + "mlp.down_proj.weight")
    return sd


def build_hf(case: dict, cfg: ref.RefConfig, W, folder: Path, dtype, attn: str, variant: str):
    """Returns (model, description). variant: 'native' (the golden's semantics) or 'as_shipped' (stock from_pretrained of the folder)."""
    from transformers import AutoModelForCausalLM, Phi3Config, SmolLM3Config

    mt = case["model_type"]
    if variant == "as_shipped":
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation=attn)
        return model.eval(), f"{type(model).__name__}.from_pretrained(folder), unpatched"
    if case["name"] == "rope_partial_rotary":
        pc = Phi3Config(
            vocab_size=cfg.vocab, hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
            num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.kv_heads,
            rms_norm_eps=cfg.norm_eps, tie_word_embeddings=False, max_position_embeddings=256,
            original_max_position_embeddings=256,
            rope_parameters={"rope_type": "default", "rope_theta": cfg.rope.theta,
                             "partial_rotary_factor": cfg.rope.partial_rotary_factor},
            pad_token_id=None, bos_token_id=1, eos_token_id=2)
        model = AutoModelForCausalLM.from_config(pc, attn_implementation=attn, dtype=dtype)
        missing, unexpected = model.load_state_dict(phi3_state_dict(cfg, W), strict=True)
        return model.eval(), "Phi3ForCausalLM (fused qkv_proj/gate_up_proj built from the checkpoint)"
    if mt == "llama" and "none" in cfg.positions:
        conf = json.loads((folder / "config.json").read_text())
        for k in ("architectures", "model_type", "nopekit_position", "torch_dtype", "dtype", "rope_scaling",
                  "rope_parameters", "rope_theta"):
            conf.pop(k, None)
        no_rope = [1 if p == "rope" else 0 for p in cfg.positions]
        if "layer_types" in conf:  # SmolLM3 applies sliding_window only with use_sliding_window
            conf["use_sliding_window"] = True
        sc = SmolLM3Config(**conf, no_rope_layers=no_rope,
                           rope_parameters={"rope_type": "default", "rope_theta": cfg.rope.theta})
        model = AutoModelForCausalLM.from_config(sc, attn_implementation=attn, dtype=dtype)
        model.load_state_dict(hf_state_dict(case, cfg, W), strict=True)
        if "layer_types" in conf:
            return model.eval(), (f"SmolLM3ForCausalLM with no_rope_layers {no_rope}, use_sliding_window true, "
                                  f"layer_types {conf['layer_types']}, sliding_window {conf['sliding_window']} "
                                  "(same weights)")
        return model.eval(), "SmolLM3ForCausalLM with no_rope_layers all 0 (same weights)"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation=attn)
    desc = f"{type(model).__name__}.from_pretrained(folder)"
    if mt == "qwen3" and variant == "native":
        desc += " with apply_rotary_pos_emb patched to the identity (NoPE)"
    return model.eval(), desc


def as_shipped_config(case: dict, cfg: ref.RefConfig) -> ref.RefConfig | None:
    """What stock transformers computes for the folder when that differs from the golden."""
    if "none" in cfg.positions and case["model_type"] in ("llama", "qwen3"):
        # LlamaForCausalLM has no sliding window either: it attends globally on every layer
        windows = [] if case["model_type"] == "llama" else cfg.windows
        return ref.RefConfig(**{**cfg.__dict__, "positions": ["rope"] * cfg.layers, "windows": windows})
    if cfg.rope.partial_rotary_factor != 1.0:
        return ref.RefConfig(**{**cfg.__dict__, "rope": ref.RopeSpec(**{**cfg.rope.__dict__, "partial_rotary_factor": 1.0})})
    return None


def alt_what(case: dict) -> str:
    if case["name"] == "rope_partial_rotary":
        return "full rotary (partial_rotary_factor ignored)"
    if case.get("windows") and case["model_type"] == "llama":
        return "RoPE and global attention on every layer (nopekit_position, layer_types and sliding_window ignored)"
    return "RoPE on every layer (nopekit_position ignored)"


def run_hf(case, cfg, W, folder, ids, lam, *, dtype, attn, precise, variant="native"):
    model, desc = build_hf(case, cfg, W, folder, dtype, attn, variant)
    hf_inv = None
    rot = [m for m in model.modules() if type(m).__name__.endswith("RotaryEmbedding")]
    if rot:
        hf_inv = (rot[0].inv_freq.detach().clone(), float(rot[0].attention_scaling))
    handles = []
    if bool((lam == 1).all()):
        pass
    elif cfg.qk_norm:
        handles = hook_lambda_after_q_norm(model, cfg, lam)
    else:
        bake_lambda_into_q_proj(model, cfg, lam)
    if precise:
        inv64, _ = ref.rope_inv_freq(cfg, torch.float64)
        precision_patch(model, inv64)
    nope = case["model_type"] == "qwen3" and variant == "native"
    with torch.inference_mode(), (float64_softmax() if precise else contextlib.nullcontext()), \
            (qwen3_nope() if nope else contextlib.nullcontext()):
        out = model(input_ids=torch.from_numpy(ids).long(), output_hidden_states=True,
                    output_attentions=(attn == "eager"))
    for h in handles:
        h.remove()
    return out, hf_inv, desc


def max_abs(a, b) -> float:
    return float((a.double() - b.double()).abs().max())


def crosscheck(case, cfg, W, folder, ids, lam_t, gold64: dict, lines: list[str]) -> dict:
    name = case["name"]
    res = {}
    L = cfg.layers

    # loadability of the folder itself by transformers (no missing/unexpected keys)
    from transformers import AutoModelForCausalLM
    m, info = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
    res["loads"] = f"{type(m).__name__}, " + ("no missing/unexpected keys" if not bad else f"PROBLEM {bad}")
    del m

    variants = [("native", cfg, gold64)]
    alt = as_shipped_config(case, cfg)
    if alt is not None:
        gold_alt = ref.forward(alt, {k: torch.from_numpy(v) for k, v in W.items()}, torch.from_numpy(ids), lam_t)
        variants.append(("as_shipped", alt, gold_alt))

    for variant, vcfg, g in variants:
        tag = "" if variant == "native" else f" [{variant}]"
        # 1. precise: float64 + precision patches, eager attention (returns the probabilities)
        out, hf_inv, desc = run_hf(case, vcfg, W, folder, ids, lam_t, dtype=torch.float64, attn="eager",
                                   precise=True, variant=variant)
        hs = out.hidden_states
        ent = torch.stack([ref.entropy_bits(a) for a in out.attentions])
        if variant == "as_shipped":
            r = {"via": desc, "logits": max_abs(out.logits, g["logits"]),
                 "logits_vs_golden": max_abs(out.logits, gold64["logits"])}
            res[variant] = r
            lines.append(f"  stock transformers on this folder: {desc}")
            lines.append(f"    it computes {alt_what(case)}: max|d| logits vs our reference of that = {r['logits']:.3e}, "
                         f"vs the golden = {r['logits_vs_golden']:.3e}")
            continue
        r = {
            "via": desc,
            "logits": max_abs(out.logits, g["logits"]),
            "hidden": max(max_abs(hs[i], g["hidden"][i]) for i in range(L)),
            "final_normed": max_abs(hs[L], g["final_normed"]),
            "entropy_bits": max_abs(ent, g["entropy"]),
        }
        if hf_inv is not None and "rope" in vcfg.positions:
            mine32, sc = ref.rope_inv_freq(vcfg, torch.float32)
            r["inv_freq_f32_bitexact"] = bool(torch.equal(mine32, hf_inv[0].float())) if hf_inv[0].dtype == torch.float32 \
                else bool(torch.equal(mine32.double(), hf_inv[0].double()))
            r["inv_freq_f32_max_abs"] = max_abs(mine32, hf_inv[0])
            r["attention_scaling"] = (sc, hf_inv[1])
        # 2. stock float64 (transformers' own float32 casts inside)
        out, _, _ = run_hf(case, vcfg, W, folder, ids, lam_t, dtype=torch.float64, attn="eager", precise=False,
                           variant=variant)
        r["stock64_logits"] = max_abs(out.logits, g["logits"])
        # 3. float32 SDPA, what a user runs
        out, _, _ = run_hf(case, vcfg, W, folder, ids, lam_t, dtype=torch.float32, attn="sdpa", precise=False,
                           variant=variant)
        r["stock32_sdpa_logits"] = max_abs(out.logits, g["logits"])
        res[variant] = r

        lines.append(f"{name}{tag}")
        lines.append(f"  via: {desc}; lambda: "
                     + ("none" if bool((lam_t == 1).all()) else
                        "hook on q_norm output" if cfg.qk_norm else "baked into q_proj rows/bias"))
        if "inv_freq_f32_bitexact" in r:
            lines.append(f"  inv_freq (our port in float32 vs transformers' buffer): bit-exact={r['inv_freq_f32_bitexact']} "
                         f"max|d|={r['inv_freq_f32_max_abs']:.3e}; attention_scaling ours={r['attention_scaling'][0]!r} "
                         f"hf={r['attention_scaling'][1]!r}")
        lines.append(f"  hf64 precise  max|d| logits={r['logits']:.3e} hidden[0..L-1]={r['hidden']:.3e} "
                     f"final_normed={r['final_normed']:.3e} entropy_bits={r['entropy_bits']:.3e}")
        lines.append(f"  hf64 stock    max|d| logits={r['stock64_logits']:.3e}")
        lines.append(f"  hf32 sdpa     max|d| logits={r['stock32_sdpa_logits']:.3e}")
    lines.append(f"  folder loads with AutoModelForCausalLM: {res['loads']}")
    return res


# ---------------------------------------------------------------------------------------------
# per case


GOLDEN_DOC = {
    "input_ids": "I32 [B, T] token ids; positions are 0..T-1 in every row",
    "logits": "F32 [B, T, V] LM logits",
    "losses": "F32 [B, T-1] cross-entropy in nats: -log_softmax(logits[b, t])[input_ids[b, t+1]]",
    "entropy": "F32 [L, B, H, T] attention entropy in bits, -sum_{j<=i} p_ij log2 p_ij, of the post-softmax "
               "probabilities of query position i, per layer and query head (0 at i = 0)",
    "hidden": "F32 [L+1, B, T, D] hidden[0] = token embeddings; hidden[l+1] = residual stream after layer l "
              "(after its MLP residual add). All BEFORE the final norm: hidden[L] is NOT HF's last "
              "output_hidden_states entry (that one is model.norm(hidden[L]))",
    "lambda": "F32 [L, H] per-head temperature multipliers used: logits of head h are lambda[l,h] * q.k / "
              "sqrt(head_dim), lambda applied to the query after q-norm and RoPE (1.0 = none)",
}


GOLDEN_DOC_WINDOW_ENTROPY = (
    "F32 [L, B, H, T] attention entropy in bits, -sum_j p_ij log2 p_ij over the keys query position i sees "
    "(j <= i, and j > i - W on a layer with sliding window W), per layer and query head (0 at i = 0)")


def sensitivity(cfg: ref.RefConfig, W: dict, Wt: dict, ids_t, lam: np.ndarray, g64: dict) -> dict:
    """max|d| of the logits if an engine made one plausible mistake (our reference, float64)."""
    def with_(**kw):
        return ref.RefConfig(**{**cfg.__dict__, **kw})

    def rope_with(**kw):
        return with_(rope=ref.RopeSpec(**{**cfg.rope.__dict__, **kw}))

    def d(c=cfg, w=Wt, l=lam):
        return max_abs(ref.forward(c, w, ids_t, torch.from_numpy(l))["logits"], g64["logits"])

    out = {}
    flipped = ["none" if p == "rope" else "rope" for p in cfg.positions]
    out["positions_flipped (RoPE<->NoPE on every layer)"] = d(with_(positions=flipped))
    if cfg.kv_heads > 1 and cfg.heads != cfg.kv_heads:
        # query head h reading KV head h % KV instead of h // (H/KV)
        rep = cfg.heads // cfg.kv_heads
        # the mistaken engine's old head perm[h] reads KV head perm[h] % KV = h // rep, so it equals a correct
        # engine on a model whose query head h is the old head perm[h]
        perm = [(h % rep) * cfg.kv_heads + h // rep for h in range(cfg.heads)]
        w2 = dict(Wt)
        for li in range(cfg.layers):
            p = f"model.layers.{li}.self_attn."
            w2[p + "q_proj.weight"] = Wt[p + "q_proj.weight"].view(cfg.heads, cfg.head_dim, -1)[perm].reshape(-1, cfg.hidden)
            if p + "q_proj.bias" in Wt:
                w2[p + "q_proj.bias"] = Wt[p + "q_proj.bias"].view(cfg.heads, cfg.head_dim)[perm].reshape(-1)
            w2[p + "o_proj.weight"] = Wt[p + "o_proj.weight"].view(cfg.hidden, cfg.heads, cfg.head_dim)[:, perm].reshape(cfg.hidden, -1)
        out["gqa_interleaved (query head h reads KV head h % KV)"] = d(w=w2, l=lam[:, perm])
    if not (lam == 1).all():
        out["lambda_ignored"] = d(l=np.ones_like(lam))
        if cfg.attention_bias:
            w2 = dict(Wt)
            for li in range(cfg.layers):
                p = f"model.layers.{li}.self_attn.q_proj.weight"
                w2[p] = Wt[p] * torch.from_numpy(np.repeat(lam[li], cfg.head_dim))[:, None]
            out["lambda_on_q_weight_but_not_q_bias"] = d(w=w2, l=np.ones_like(lam))
    if any(w is not None for w in cfg.windows):
        out["window_ignored (global attention on every layer)"] = d(with_(windows=[]))
        out["window_one_key_more (i-W <= j <= i)"] = d(with_(windows=[None if w is None else w + 1 for w in cfg.windows]))
        out["window_one_key_less (i-W+1 < j <= i)"] = d(with_(windows=[None if w is None else w - 1 for w in cfg.windows]))
    if "rope" in cfg.positions:
        if cfg.rope.rope_type != "default":
            out["rope_scaling_ignored (plain RoPE, same theta)"] = d(rope_with(rope_type="default"))
        if cfg.rope.rope_type == "yarn":
            out["yarn_attention_factor_ignored (cos/sin not scaled)"] = d(rope_with(attention_factor=1.0))
        if cfg.rope.partial_rotary_factor != 1.0:
            out["partial_rotary_ignored (all dims rotated)"] = d(rope_with(partial_rotary_factor=1.0))
    return out


def save_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata={"format": "pt"})
    path.chmod(0o644)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def build_case(idx: int, case: dict, do_crosscheck: bool, lines: list[str]) -> dict:
    name = case["name"]
    seed = 1000 + idx
    rng = np.random.default_rng(seed)
    cfg = ref_config(case)
    W = make_weights(cfg, rng)
    T = case["T"]
    ids = rng.integers(0, VOCAB, size=(BATCH, T)).astype(np.int32)
    lam = make_lambda(case, cfg, rng)

    Wt = {k: torch.from_numpy(v) for k, v in W.items()}
    ids_t, lam_t = torch.from_numpy(ids), torch.from_numpy(lam)
    g64 = ref.forward(cfg, Wt, ids_t, lam_t, dtype=torch.float64)
    g32 = ref.forward(cfg, Wt, ids_t, lam_t, dtype=torch.float32)

    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    conf = config_json(case, cfg)
    write_json(folder / "config.json", conf)
    save_safetensors(folder / "model.safetensors", W)
    golden = {
        "input_ids": ids,
        "logits": g64["logits"].float().numpy(),
        "losses": g64["losses"].float().numpy(),
        "entropy": g64["entropy"].float().numpy(),
        "hidden": g64["hidden"].float().numpy(),
        "lambda": lam,
    }
    save_safetensors(folder / "golden.safetensors", golden)

    # how far a float32 evaluation of the same maths lands (our reference in float32)
    f32err = {
        "logits_max_abs": max_abs(g32["logits"], g64["logits"]),
        "losses_max_abs": max_abs(g32["losses"], g64["losses"]),
        "entropy_bits_max_abs": max_abs(g32["entropy"], g64["entropy"]),
        "hidden_max_abs": max_abs(g32["hidden"], g64["hidden"]),
        "hidden_max_abs_value": float(g64["hidden"].abs().max()),
        "logits_max_abs_value": float(g64["logits"].abs().max()),
    }

    sens = sensitivity(cfg, W, Wt, ids_t, lam, g64)

    inv_freq, scaling = ref.rope_inv_freq(cfg, torch.float64)
    r = cfg.rope
    rope_info = {
        "theta": r.theta, "rope_type": r.rope_type, "partial_rotary_factor": r.partial_rotary_factor,
        "rotary_dim": cfg.rotary_dim,
        "pairing": f"rotate_half within the first {cfg.rotary_dim} dims of each head: dim i pairs with "
                   f"dim i+{cfg.rotary_dim // 2} (i < {cfg.rotary_dim // 2}), both at angle pos*inv_freq[i]"
                   + (f"; dims {cfg.rotary_dim}..{cfg.head_dim - 1} pass through" if cfg.rotary_dim < cfg.head_dim else ""),
        "inv_freq": [float(x) for x in inv_freq],
        "attention_scaling": scaling,
        "attention_scaling_note": "cos and sin are both multiplied by attention_scaling, so q.k is scaled by its square"
                                  if scaling != 1.0 else "1.0 (no scaling of cos/sin)",
    }
    for k in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings", "beta_fast", "beta_slow"):
        if getattr(r, k) is not None:
            rope_info[k] = getattr(r, k)
    if r.rope_type == "yarn":
        rope_info["yarn_defaults_used"] = {"attention_factor": "0.1*ln(factor)+1 (no mscale/mscale_all_dim)",
                                           "truncate": True}
    if "rope" not in cfg.positions:
        rope_info = {"note": "no layer uses RoPE; config still carries rope_theta for transformers",
                     "theta": r.theta}

    windowed = any(w is not None for w in cfg.windows)
    info = {
        "case": name,
        "what": case["what"],
        "made_by": MADE_BY,
        "seed": seed,
        "seed_use": "numpy default_rng(seed): weights (make_weights order), then input_ids, then lambda",
        "shape": {"batch": BATCH, "seq_len": T, "vocab": VOCAB, "hidden": cfg.hidden, "layers": cfg.layers,
                  "heads": cfg.heads, "kv_heads": cfg.kv_heads, "head_dim": cfg.head_dim,
                  "intermediate": cfg.intermediate},
        "gqa_ratio": cfg.heads // cfg.kv_heads,
        "model_type": case["model_type"],
        "tied_embeddings": cfg.tied,
        "attention_bias": cfg.attention_bias,
        "mlp_bias": cfg.mlp_bias,
        "qk_norm": cfg.qk_norm,
        "norm_eps": cfg.norm_eps,
        "positions": cfg.positions,
        "positions_stated_by": ("no_rope_layers (1 = RoPE)" if case["model_type"] == "smollm3" else
                                f"nopekit_position \"{conf['nopekit_position']}\"" if "nopekit_position" in conf else
                                "nothing (Llama default: RoPE everywhere)"),
        **({"windows": cfg.windows,
            "windows_meaning": "per layer: sliding window W (query i attends to keys i-W < j <= i, W keys including "
                               "itself; transformers' sliding_window) or null for global causal attention",
            "windows_stated_by": f"layer_types {conf['layer_types']} + sliding_window {conf['sliding_window']}"}
           if windowed else {}),
        "config_format": ("transformers v5 rope_parameters {rope_type, rope_theta, ...}" if case.get("v5_format")
                          else "legacy top-level rope_theta + rope_scaling"),
        "rope": rope_info,
        "lambda": ("1.0 everywhere" if bool((lam == 1).all()) else
                   {"values": [[float(x) for x in row] for row in lam],
                    "which": "every layer" if case.get("lam") == "all" else "NoPE layers only"}),
        "golden": {k: {"dtype": {np.int32: "I32"}.get(v.dtype.type, "F32"), "shape": list(v.shape),
                       "meaning": GOLDEN_DOC_WINDOW_ENTROPY if k == "entropy" and windowed else GOLDEN_DOC[k]}
                   for k, v in golden.items()},
        "reference": "scripts/reference/llama_reference.py, float64 throughout (RMSNorm, RoPE angles, softmax), "
                     "weights are the float32 checkpoint values, result rounded to float32"
                     + ("; the sliding window is a mask on the logits (-inf outside i-W < j <= i) before the softmax"
                        if windowed else ""),
        "tolerance": {
            "reference_float32_vs_float64": f32err,
            "sensitivity_logits_max_abs": sens,
            "notes": "reference_float32_vs_float64 is our own forward run in float32 (torch CPU, same weights) "
                     "against the float64 golden: the size of error a correct float32 engine makes. "
                     "Suggested checks for a float32 engine: logits and hidden |d| <= 1e-4 * max(1, |x|max), "
                     "losses <= 1e-4, entropy <= 1e-4 bits; a wrong RoPE pairing, scaling, GQA mapping, bias "
                     "or lambda placement gives errors of 1e-2 or more (sensitivity_logits_max_abs: how far the "
                     "logits move under some plausible engine mistakes, from our reference).",
        },
    }
    if case["model_type"] == "llama" and "none" in cfg.positions and windowed:
        info["transformers_note"] = ("transformers ignores nopekit_position, layer_types and sliding_window here: "
                                     "LlamaForCausalLM loads this folder as a RoPE model with global attention on "
                                     "every layer. The same model in transformers is SmolLM3ForCausalLM with "
                                     "no_rope_layers 0 on the NoPE layers, use_sliding_window true and the same "
                                     "layer_types and sliding_window (used by the cross-check).")
    elif case["model_type"] == "llama" and "none" in cfg.positions:
        info["transformers_note"] = ("transformers ignores nopekit_position: LlamaForCausalLM loads this folder as a "
                                     "RoPE model. The same model in transformers is SmolLM3ForCausalLM with "
                                     "no_rope_layers all 0 (used by the cross-check).")
    if case["model_type"] == "qwen3":
        info["transformers_note"] = ("transformers ignores nopekit_position: Qwen3ForCausalLM loads this folder with "
                                     "RoPE. The cross-check patches its apply_rotary_pos_emb to the identity. "
                                     "lambda cannot be baked into Qwen3's q_norm weight (shared by all heads) nor "
                                     "into q_proj (the norm removes the scale): it must be applied after q_norm.")
    if case["name"] == "rope_partial_rotary":
        info["transformers_note"] = ("LlamaForCausalLM's default RoPE ignores partial_rotary_factor (it rotates all "
                                     "16 dims), so stock transformers computes something else for this folder. "
                                     "The transformers model with this convention is Phi3ForCausalLM (fused "
                                     "qkv_proj/gate_up_proj), used by the cross-check. partial_rotary_factor is "
                                     "written top level (transformers v5 also accepts it there).")
    if case["model_type"] == "smollm3":
        info["transformers_note"] = ("SmolLM3ForCausalLM loads this folder natively. Its defaults differ from "
                                     "Llama's: tie_word_embeddings defaults to true and pad_token_id to 128004 "
                                     "(out of range here, so written as null).")

    if do_crosscheck:  # results go to crosscheck.txt only, so --no-crosscheck rewrites identical files
        crosscheck(case, cfg, W, folder, ids, lam_t, g64, lines)
    write_json(folder / "case.json", info)
    size = sum(f.stat().st_size for f in folder.iterdir())
    print(f"{name}: {size / 1024:.0f} KiB, f32-vs-f64 logits {f32err['logits_max_abs']:.2e}", flush=True)
    return info


def set_out(path: Path) -> None:
    global OUT
    OUT = path.resolve()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-crosscheck", action="store_true", help="skip the transformers cross-check")
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    ap.add_argument("--out", type=Path, help=f"output folder (default {OUT.relative_to(REPO)}), e.g. a scratch "
                                             "folder to compare a full run with the committed fixtures")
    args = ap.parse_args()
    unknown = set(args.only or []) - {c["name"] for c in CASES}
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    if args.out is not None:
        set_out(args.out)
    import transformers

    transformers.utils.logging.disable_progress_bar()
    OUT.mkdir(parents=True, exist_ok=True)
    lines = [
        f"Cross-check of fixtures/engine goldens ({MADE_BY}) against transformers {transformers.__version__}, "
        f"torch {torch.__version__}, 1 thread.",
        "max|d| = max absolute difference to our float64 reference (llama_reference.py), before rounding to float32.",
        "hf64 precise: transformers in float64, eager attention, with precision-only patches (RMSNorm without the",
        "  float32 cast, softmax in float64, RoPE angles in float64 from our float64 inv_freq); lambda applied as",
        "  stated. hidden[0..L-1] = HF hidden_states[0..L-1]; final_normed = HF hidden_states[L] vs",
        "  model.norm(golden hidden[L]); entropy from HF's returned attention probabilities.",
        "hf64 stock: transformers in float64 as shipped (float32 inside RMSNorm, RoPE and eager softmax).",
        "hf32 sdpa: transformers in float32 with attn_implementation='sdpa'.",
        "",
    ]
    header = len(lines)
    for i, case in enumerate(CASES):
        if args.only and case["name"] not in args.only:
            continue
        build_case(i, case, not args.no_crosscheck, lines)
    if not args.no_crosscheck and not args.only:
        (OUT / "crosscheck.txt").write_text("\n".join(lines) + "\n")
    elif not args.no_crosscheck:  # a partial run leaves crosscheck.txt alone and shows its sections here
        print("\n".join(lines[header:]))
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"total {total / 1024:.0f} KiB in {OUT.relative_to(REPO) if OUT.is_relative_to(REPO) else OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
