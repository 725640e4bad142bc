"""A compact, readable float64 reference forward for Llama-family decoders.

This is the oracle behind ``fixtures/engine/`` (see ``make_engine_goldens.py``). It is written
llm.c-style: one function per step, no caches, no masks objects, no kernels, so that every number
nopekit's engine produces can be traced to a line here. It covers what nopekit's engine covers:

- token embedding;
- RMSNorm with weight: ``x * rsqrt(mean(x^2) + eps) * w`` (computed in the forward dtype, float64
  for the goldens; transformers casts to float32 inside its RMSNorm, we do not);
- attention with GQA (KV head ``h // (H / KV)`` serves query head ``h``, HF's ``repeat_kv``), optional
  q/k/v/o biases, optional per-head q/k RMSNorm over ``head_dim`` (Qwen3 ``q_norm``/``k_norm``,
  applied before RoPE), RoPE or NoPE per layer, causal softmax, optionally restricted per layer to a
  sliding window (see ``attention_mask``);
- nopekit's per-head temperature: the attention logits of query head ``h`` are
  ``lam[h] * (q . k) / sqrt(head_dim)``, i.e. ``lam[h]`` multiplies query head ``h`` after q-norm
  and after RoPE;
- SwiGLU MLP ``down(silu(gate(x)) * up(x))`` with optional biases;
- pre-norm residuals, final norm, LM head (or the tied embedding).

RoPE follows transformers (``rotate_half`` convention, ``modeling_rope_utils.py`` of
transformers 5.24.0 for the inverse frequencies), see ``rope_inv_freq`` and ``apply_rope``:

- pairing: within the ``rotary_dim = int(head_dim * partial_rotary_factor)`` first dims of a head,
  dim ``i`` pairs with dim ``i + rotary_dim/2`` (``i < rotary_dim/2``), both using frequency
  ``inv_freq[i]``: ``out[i] = x[i] cos - x[i+r/2] sin``, ``out[i+r/2] = x[i+r/2] cos + x[i] sin``,
  angle = ``position * inv_freq[i]``. Dims ``rotary_dim..head_dim-1`` pass through unchanged
  (transformers' Phi3 / GLM / NeoX convention for partial rotary).
- ``cos`` and ``sin`` are multiplied by ``attention_scaling`` (only yarn and longrope have one
  != 1; for yarn it is HF's ``attention_factor``/mscale, so q.k scales by its square).

``rope_inv_freq`` repeats transformers' operations in the same order, so in float32 it reproduces
transformers' ``inv_freq`` buffer bit for bit (``make_engine_goldens.py`` checks this); the goldens
use it in float64. Positions are ``0..T-1`` for every batch row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

# ---------------------------------------------------------------------------------------------
# configuration


@dataclass
class RopeSpec:
    """RoPE settings, named as in transformers' ``rope_parameters``."""

    theta: float = 10000.0
    rope_type: str = "default"  # default | linear | llama3 | yarn
    factor: float | None = None
    low_freq_factor: float | None = None  # llama3
    high_freq_factor: float | None = None  # llama3
    original_max_position_embeddings: int | None = None  # llama3, yarn
    beta_fast: float | None = None  # yarn (default 32)
    beta_slow: float | None = None  # yarn (default 1)
    attention_factor: float | None = None  # yarn (default from factor, mscale, mscale_all_dim)
    mscale: float | None = None  # yarn
    mscale_all_dim: float | None = None  # yarn
    truncate: bool = True  # yarn
    partial_rotary_factor: float = 1.0


@dataclass
class RefConfig:
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    norm_eps: float = 1e-5
    tied: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    # one entry per layer: "rope" or "none" (NoPE)
    positions: list[str] = field(default_factory=list)
    rope: RopeSpec = field(default_factory=RopeSpec)
    # one entry per layer: the sliding attention window W (query i sees keys i-W < j <= i, W keys
    # including itself, as transformers' ``sliding_window``) or None for global causal attention.
    # Empty (the default) means every layer is global.
    windows: list[int | None] = field(default_factory=list)

    def window(self, li: int) -> int | None:
        """Sliding window of layer li, None for global attention."""
        return self.windows[li] if li < len(self.windows) else None

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.rope.partial_rotary_factor)


# ---------------------------------------------------------------------------------------------
# RoPE: inverse frequencies (ported from transformers 5.24.0 modeling_rope_utils.py)


def rope_inv_freq(cfg: RefConfig, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, float]:
    """Returns ``(inv_freq [rotary_dim/2], attention_scaling)``.

    Same operations, in the same order, as transformers; transformers always runs them in float32
    (``dtype=torch.float``), we run them in ``dtype``.
    """
    r = cfg.rope
    base = r.theta
    dim = cfg.rotary_dim
    # exponents 0, 2, 4, ... dim-2 over dim
    expo = torch.arange(0, dim, 2, dtype=torch.int64).to(dtype) / dim
    attention_factor = 1.0

    if r.rope_type == "default":
        # inv_freq[i] = 1 / base^(2i/dim)
        inv_freq = 1.0 / (base ** expo)

    elif r.rope_type == "linear":
        # position interpolation: inv_freq[i] = (1 / base^(2i/dim)) / factor
        inv_freq = 1.0 / (base ** expo)
        inv_freq = inv_freq / r.factor

    elif r.rope_type == "llama3":
        inv_freq = 1.0 / (base ** expo)
        factor = r.factor
        low_freq_factor = r.low_freq_factor
        high_freq_factor = r.high_freq_factor
        old_context_len = r.original_max_position_embeddings
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        # wavelen < high_freq_wavelen: keep; wavelen > low_freq_wavelen: divide by factor
        inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        # in between: interpolate with smooth = (old_context_len / wavelen - low) / (high - low)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
        is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        inv_freq = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)

    elif r.rope_type == "yarn":
        factor = r.factor
        omax = r.original_max_position_embeddings

        def get_mscale(scale: float, mscale: float = 1.0) -> float:
            if scale <= 1:
                return 1.0
            return 0.1 * mscale * math.log(scale) + 1.0

        attention_factor = r.attention_factor
        if attention_factor is None:
            if r.mscale and r.mscale_all_dim:
                attention_factor = float(get_mscale(factor, r.mscale) / get_mscale(factor, r.mscale_all_dim))
            else:
                attention_factor = get_mscale(factor)  # 0.1 * ln(factor) + 1
        beta_fast = r.beta_fast or 32
        beta_slow = r.beta_slow or 1

        def find_correction_dim(num_rotations: float) -> float:
            # the dim index whose wavelength makes num_rotations turns over omax positions
            return (dim * math.log(omax / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

        low = find_correction_dim(beta_fast)
        high = find_correction_dim(beta_slow)
        if r.truncate:
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001  # as transformers: avoid a division by zero

        pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype) / dim)
        inv_freq_extrapolation = 1.0 / pos_freqs
        inv_freq_interpolation = 1.0 / (factor * pos_freqs)
        ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.int64).to(dtype) - low) / (high - low), 0, 1)
        extrapolation_factor = 1 - ramp  # 1 for i <= low (high frequencies), 0 for i >= high
        inv_freq = inv_freq_interpolation * (1 - extrapolation_factor) + inv_freq_extrapolation * extrapolation_factor

    else:
        raise ValueError(f"rope_type {r.rope_type!r} is not implemented in the reference")

    return inv_freq, float(attention_factor)


def rope_cos_sin(inv_freq: torch.Tensor, attention_scaling: float, seq_len: int,
                 dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape [T, rotary_dim]: angle[t, i] = t * inv_freq[i mod rotary_dim/2]."""
    pos = torch.arange(seq_len, dtype=torch.int64).to(dtype)
    freqs = pos[:, None] * inv_freq.to(dtype)[None, :]  # [T, rotary_dim/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [T, rotary_dim]
    return emb.cos() * attention_scaling, emb.sin() * attention_scaling


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[x1, x2] -> [-x2, x1], halves of the last dim."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, heads, T, head_dim]; rotates the first cos.shape[-1] dims, passes the rest through."""
    r = cos.shape[-1]
    x_rot, x_pass = x[..., :r], x[..., r:]
    x_rot = x_rot * cos + rotate_half(x_rot) * sin
    return torch.cat((x_rot, x_pass), dim=-1)


# ---------------------------------------------------------------------------------------------
# building blocks


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    y = x @ w.T  # w is [out, in] as in HF checkpoints
    return y + b if b is not None else y


def silu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def attention_mask(T: int, window: int | None) -> torch.Tensor:
    """[T, T] bool, True where query i may attend to key j.

    Causal: ``j <= i``. With a sliding window ``W`` (transformers' ``sliding_window`` semantics, as
    its ``sliding_window_overlay``: ``kv_idx > q_idx - W``) also ``j > i - W``, so query i sees the
    ``min(i + 1, W)`` keys ``i-W+1 .. i``, itself included; ``W >= T`` is the same as no window.
    """
    allowed = torch.ones(T, T, dtype=torch.bool).tril()  # j <= i
    if window is not None:
        if window < 1:
            raise ValueError(f"sliding window must be >= 1, got {window}")
        allowed &= ~torch.ones(T, T, dtype=torch.bool).tril(-window)  # drop j <= i - W
    return allowed


def attention(cfg: RefConfig, W: dict, li: int, x: torch.Tensor, lam: torch.Tensor,
              cos: torch.Tensor | None, sin: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One attention block on normed input x [B, T, D]. Returns (output [B, T, D], probs [B, H, T, T])."""
    B, T, _ = x.shape
    H, KV, hd = cfg.heads, cfg.kv_heads, cfg.head_dim
    p = f"model.layers.{li}.self_attn."
    g = lambda n: W.get(p + n)  # noqa: E731

    q = linear(x, g("q_proj.weight"), g("q_proj.bias")).view(B, T, H, hd)
    k = linear(x, g("k_proj.weight"), g("k_proj.bias")).view(B, T, KV, hd)
    v = linear(x, g("v_proj.weight"), g("v_proj.bias")).view(B, T, KV, hd)
    if cfg.qk_norm:  # per head, over head_dim, weight shared by all heads
        q = rms_norm(q, g("q_norm.weight"), cfg.norm_eps)
        k = rms_norm(k, g("k_norm.weight"), cfg.norm_eps)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, T, hd]

    if cfg.positions[li] == "rope":
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)

    # nopekit's temperature: scale query head h by lam[h] (after q-norm and RoPE)
    q = q * lam.to(q.dtype)[None, :, None, None]

    # GQA: query head h reads KV head h // (H / KV)
    rep = H // KV
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)

    scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)  # [B, H, T, T]
    allowed = attention_mask(T, cfg.window(li))  # causal, and the layer's sliding window if any
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1)  # exactly 0 above the diagonal and outside the window
    out = (probs @ v).transpose(1, 2).reshape(B, T, H * hd)
    out = linear(out, g("o_proj.weight"), g("o_proj.bias"))
    return out, probs


def mlp(cfg: RefConfig, W: dict, li: int, x: torch.Tensor) -> torch.Tensor:
    p = f"model.layers.{li}.mlp."
    g = lambda n: W.get(p + n)  # noqa: E731
    gate = linear(x, g("gate_proj.weight"), g("gate_proj.bias"))
    up = linear(x, g("up_proj.weight"), g("up_proj.bias"))
    return linear(silu(gate) * up, g("down_proj.weight"), g("down_proj.bias"))


def entropy_bits(probs: torch.Tensor) -> torch.Tensor:
    """-sum_j p log2 p over the last dim, with 0 log 0 = 0 (the masked keys). [B, H, T]."""
    plogp = torch.where(probs > 0, probs * torch.log2(torch.where(probs > 0, probs, 1.0)), 0.0)
    return -plogp.sum(-1)


# ---------------------------------------------------------------------------------------------
# the model


@torch.no_grad()
def forward(cfg: RefConfig, weights: dict, input_ids: torch.Tensor, lam: torch.Tensor | None = None,
            dtype: torch.dtype = torch.float64) -> dict:
    """Full forward over input_ids [B, T] (positions 0..T-1).

    weights: HF tensor names -> tensors (any float dtype; converted to ``dtype``).
    lam: [L, H] temperature multipliers, or None for all 1.

    Returns float tensors in ``dtype``:
      logits  [B, T, V]
      losses  [B, T-1]   cross-entropy (nats) of input_ids[:, t+1] given positions <= t
      hidden  [L+1, B, T, D]  hidden[0] = embeddings, hidden[l+1] = residual stream after layer l,
                              all BEFORE the final norm
      final_normed [B, T, D]   final_norm(hidden[L]) (what HF's last hidden_states entry holds)
      probs   [L, B, H, T, T]  post-softmax attention probabilities
      entropy [L, B, H, T]     attention entropy in bits (over the keys the query sees: j <= i, and
                               j > i - W on a layer with sliding window W)
    """
    W = {k: v.to(dtype) for k, v in weights.items()}
    B, T = input_ids.shape
    L, H = cfg.layers, cfg.heads
    if lam is None:
        lam = torch.ones(L, H, dtype=dtype)
    lam = lam.to(dtype)

    cos = sin = None
    if "rope" in cfg.positions:
        inv_freq, scaling = rope_inv_freq(cfg, dtype)
        cos, sin = rope_cos_sin(inv_freq, scaling, T, dtype)

    x = W["model.embed_tokens.weight"][input_ids.long()]  # [B, T, D]
    hidden = [x]
    all_probs = []
    for li in range(L):
        p = f"model.layers.{li}."
        a, probs = attention(cfg, W, li, rms_norm(x, W[p + "input_layernorm.weight"], cfg.norm_eps), lam[li], cos, sin)
        x = x + a
        x = x + mlp(cfg, W, li, rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg.norm_eps))
        hidden.append(x)
        all_probs.append(probs)

    final = rms_norm(x, W["model.norm.weight"], cfg.norm_eps)
    head = W["model.embed_tokens.weight"] if cfg.tied else W["lm_head.weight"]
    logits = final @ head.T

    logp = torch.log_softmax(logits, dim=-1)
    targets = input_ids[:, 1:].long()
    losses = -logp[:, :-1, :].gather(-1, targets[..., None])[..., 0]

    probs = torch.stack(all_probs)
    return {
        "logits": logits,
        "losses": losses,
        "hidden": torch.stack(hidden),
        "final_normed": final,
        "probs": probs,
        "entropy": entropy_bits(probs),
    }
