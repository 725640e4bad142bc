"""Times one temperature-search step (forward + backward into a per-head scale only) of an all-NoPE Llama in
PyTorch on the CPU: the peer baseline for nopekit's temperature search.

Usage:
    .venv/bin/python scripts/bench/torch_search_step.py --shape organism|tinyllama --length 1024 \\
        [--threads 2] [--repeat 3] [--warmup 1] [--layers N] [--gqa native|repeat] [--seed 0] [--json]
    .venv/bin/python scripts/bench/torch_search_step.py --model DIR --length 1024 [...]
    .venv/bin/python scripts/bench/torch_search_step.py --check        # gradient sanity check, tiny config

Needs torch and transformers (``scripts/reference/requirements-torch.txt``; transformers only to build
the random ``--shape`` models, as ``torch_forward.py`` does).

One step, for ONE sequence of ``--length`` random token ids, every weight frozen (plain float32
tensors, ``requires_grad=False``) and only the scale ``s`` [L, H] requiring grad:

    s.grad = None
    x = embed[ids]                                                     # [1, T, D]
    per layer l:
        h = rms_norm(x, input_layernorm)
        q, k, v = q_proj(h), k_proj(h), v_proj(h)                      # [1, heads, T, hd], no RoPE (NoPE)
        q = q * s[l][None, :, None, None]                              # per-head temperature
        a = scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)   # 1/sqrt(hd) inside
        x = x + o_proj(a)
        x = x + down(silu(gate(h2)) * up(h2)),  h2 = rms_norm(x, post_attention_layernorm)
    logits = lm_head(rms_norm(x, norm))                                # [T, V], every position
    loss = cross_entropy(logits[:-1], ids[1:])                         # mean over T-1 next tokens
    loss.backward()                                                    # fills s.grad only
    loss.item()

This is the maths of ``scripts/reference/llama_reference.py`` (``lam`` = ``s``, positions all "none"), written
the way a PyTorch user would: ``F.linear``, ``F.rms_norm``, SDPA (causal; GQA by ``enable_gqa=True``, or
``--gqa repeat`` for ``repeat_interleave`` of K/V). Autograd does not form weight gradients (no leaf weight
requires grad) but still back-propagates through every layer down to layer 0's queries.

Shapes (random weights via transformers' ``LlamaForCausalLM`` init, std 0.02, norms 1, untied head):
    tinyllama: 22 layers, hidden 2048, 32 heads x 64, 4 KV heads, MLP 5632, vocab 32000, eps 1e-5 (4.4 GB f32)
    organism:  4 layers, hidden 192, 6 heads x 32, 2 KV heads, MLP 512, vocab 258, eps 1e-6
``--model DIR`` loads an HF folder instead (config.json + model.safetensors or a sharded index; F32/BF16/F16
are converted to float32; ``lm_head.weight`` missing or ``tie_word_embeddings`` means tied); its RoPE
settings are ignored, every layer runs NoPE.

Reported: median and min seconds per step over ``--repeat`` timed steps after ``--warmup`` untimed ones
(default 1); forward-only seconds (the same forward and loss under ``torch.no_grad()``, median over the
same counts); step_to_forward = step median / forward median; peak RSS (``ru_maxrss``) after building the
model and after all runs.

``--check`` builds a tiny random config, compares the float32 ``s.grad`` with a central finite difference of
the loss (float64, one coordinate) and with float64 autograd, and the loss with ``llama_reference.forward``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

SHAPES = {
    "tinyllama": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                      num_attention_heads=32, num_key_value_heads=4, head_dim=64, max_position_embeddings=2048,
                      rms_norm_eps=1e-5, tie_word_embeddings=False),
    "organism": dict(vocab_size=258, hidden_size=192, intermediate_size=512, num_hidden_layers=4,
                     num_attention_heads=6, num_key_value_heads=2, head_dim=32, max_position_embeddings=2048,
                     rms_norm_eps=1e-6, tie_word_embeddings=False),
}


def peak_rss_bytes() -> int:
    """ru_maxrss of this process in bytes (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


# ---------------------------------------------------------------------------------------------
# model: a config dict (HF names) and a dict of plain tensors (HF names)


def random_model(shape: dict, dtype):
    """Random weights from transformers' LlamaForCausalLM init (as torch_forward.py), as plain tensors."""
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    transformers.utils.logging.set_verbosity_error()
    model = LlamaForCausalLM._from_config(LlamaConfig(**shape), attn_implementation="sdpa", dtype=dtype)
    weights = {k: v.detach().requires_grad_(False) for k, v in model.state_dict().items()}
    del model  # the tensors keep the storage
    return weights


def load_model(path: str):
    """HF folder -> (config dict, float32 weights)."""
    import torch
    from safetensors.torch import load_file

    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    cfg = cfg.get("text_config", cfg) if "num_hidden_layers" not in cfg else cfg
    files = [os.path.join(path, "model.safetensors")]
    index = os.path.join(path, "model.safetensors.index.json")
    if not os.path.exists(files[0]) and os.path.exists(index):
        with open(index) as f:
            files = [os.path.join(path, n) for n in sorted(set(json.load(f)["weight_map"].values()))]
    weights = {}
    for fn in files:
        for k, v in load_file(fn).items():
            weights[k] = v.to(torch.float32) if v.dtype != torch.float32 else v
    H = cfg["num_attention_heads"]
    shape = dict(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
                 intermediate_size=cfg["intermediate_size"], num_hidden_layers=cfg["num_hidden_layers"],
                 num_attention_heads=H, num_key_value_heads=cfg.get("num_key_value_heads", H),
                 head_dim=cfg.get("head_dim") or cfg["hidden_size"] // H, rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
                 tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)) or "lm_head.weight" not in weights)
    return shape, weights


def prepare(shape: dict, weights: dict):
    """Per-layer tuples of plain tensors, so the timed loop does no dict look-ups by string."""
    layers = []
    for li in range(shape["num_hidden_layers"]):
        p = f"model.layers.{li}."
        g = lambda n: weights[p + n]  # noqa: E731
        if any((p + f"self_attn.{n}_proj.bias") in weights for n in "qkvo") or (p + "mlp.gate_proj.bias") in weights:
            raise SystemExit("biases are not supported by this benchmark")
        layers.append((g("input_layernorm.weight"), g("self_attn.q_proj.weight"), g("self_attn.k_proj.weight"),
                       g("self_attn.v_proj.weight"), g("self_attn.o_proj.weight"),
                       g("post_attention_layernorm.weight"), g("mlp.gate_proj.weight"), g("mlp.up_proj.weight"),
                       g("mlp.down_proj.weight")))
    embed = weights["model.embed_tokens.weight"]
    head = embed if shape["tie_word_embeddings"] else weights["lm_head.weight"]
    return dict(embed=embed, layers=layers, norm=weights["model.norm.weight"], head=head,
                H=shape["num_attention_heads"], KV=shape["num_key_value_heads"], hd=shape["head_dim"],
                eps=shape["rms_norm_eps"])


def search_loss(m: dict, ids, s, gqa: str = "native"):
    """Mean next-token cross-entropy of ONE sequence ids [T] with per-head scales s [L, H]."""
    import torch
    import torch.nn.functional as F

    H, KV, hd, eps = m["H"], m["KV"], m["hd"], m["eps"]
    T = ids.shape[0]
    x = m["embed"][ids][None]  # [1, T, D]
    D = x.shape[-1]
    for li, (ln1, wq, wk, wv, wo, ln2, wg, wu, wd) in enumerate(m["layers"]):
        h = F.rms_norm(x, (D,), ln1, eps)
        q = F.linear(h, wq).view(1, T, H, hd).transpose(1, 2)
        k = F.linear(h, wk).view(1, T, KV, hd).transpose(1, 2)
        v = F.linear(h, wv).view(1, T, KV, hd).transpose(1, 2)
        q = q * s[li][None, :, None, None]  # the temperature of each query head (NoPE: no rotation)
        if gqa == "native":
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            a = F.scaled_dot_product_attention(q, k.repeat_interleave(H // KV, dim=1),
                                               v.repeat_interleave(H // KV, dim=1), is_causal=True)
        x = x + F.linear(a.transpose(1, 2).reshape(1, T, H * hd), wo)
        h = F.rms_norm(x, (D,), ln2, eps)
        x = x + F.linear(F.silu(F.linear(h, wg)) * F.linear(h, wu), wd)
    logits = F.linear(F.rms_norm(x, (D,), m["norm"], eps), m["head"])[0]  # [T, V]
    return F.cross_entropy(logits[:-1], ids[1:])


# ---------------------------------------------------------------------------------------------
# --check: gradient sanity on a tiny random config


def check(args) -> int:
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
    import llama_reference as ref

    torch.manual_seed(args.seed)
    shape = dict(vocab_size=50, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, max_position_embeddings=64, rms_norm_eps=1e-5,
                 tie_word_embeddings=False)
    w64 = random_model(shape, torch.float64)
    # std 0.02 makes attention nearly uniform and the gradient tiny; larger weights exercise the maths
    w64 = {k: (v if v.dim() == 1 else v * 10.0) for k, v in w64.items()}
    T, L, H = 24, shape["num_hidden_layers"], shape["num_attention_heads"]
    ids = torch.randint(0, shape["vocab_size"], (T,), generator=torch.Generator().manual_seed(args.seed))
    s0 = 1.0 + 0.2 * torch.randn(L, H, dtype=torch.float64, generator=torch.Generator().manual_seed(args.seed + 1))

    m64 = prepare(shape, w64)
    m32 = prepare(shape, {k: v.float() for k, v in w64.items()})
    ok = True
    for gqa in ("native", "repeat"):
        s32 = s0.float().clone().requires_grad_(True)
        loss32 = search_loss(m32, ids, s32, gqa)
        loss32.backward()
        s64 = s0.clone().requires_grad_(True)
        loss64 = search_loss(m64, ids, s64, gqa)
        loss64.backward()
        rel_auto = ((s32.grad.double() - s64.grad).norm() / s64.grad.norm()).item()
        print(f"[{gqa}] loss f32 {loss32.item():.6f}, f64 {loss64.item():.9f}; "
              f"|s.grad| {s64.grad.norm().item():.3e}; f32 vs f64 autograd, rel. error (all {L * H}) {rel_auto:.2e}")
        ok &= rel_auto < 1e-3
        for (l, h) in ((0, 1), (L - 1, H - 1)):
            eps = 1e-5
            with torch.no_grad():
                sp, sm = s0.clone(), s0.clone()
                sp[l, h] += eps
                sm[l, h] -= eps
                fd = (search_loss(m64, ids, sp, gqa) - search_loss(m64, ids, sm, gqa)).item() / (2 * eps)
            g32, g64 = s32.grad[l, h].item(), s64.grad[l, h].item()
            r32, r64 = abs(g32 - fd) / abs(fd), abs(g64 - fd) / abs(fd)
            print(f"[{gqa}]   s[{l},{h}]: finite diff {fd:+.9e}, grad f64 {g64:+.9e} (rel err {r64:.2e}), "
                  f"grad f32 {g32:+.9e} (rel err {r32:.2e})")
            ok &= r64 < 1e-6 and r32 < 1e-3

    # the loss against the float64 reference forward (lam = s, every layer NoPE)
    cfg = ref.RefConfig(vocab=shape["vocab_size"], hidden=shape["hidden_size"], layers=L, heads=H,
                        kv_heads=shape["num_key_value_heads"], head_dim=shape["head_dim"],
                        intermediate=shape["intermediate_size"], norm_eps=shape["rms_norm_eps"],
                        positions=["none"] * L)
    ref_loss = ref.forward(cfg, w64, ids[None], lam=s0)["losses"].mean().item()
    with torch.no_grad():
        ours = search_loss(m64, ids, s0).item()
    print(f"loss vs llama_reference (f64): {ours:.12f} vs {ref_loss:.12f}, abs diff {abs(ours - ref_loss):.1e}")
    ok &= abs(ours - ref_loss) < 1e-10
    print("check", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description="PyTorch CPU timing of one temperature-search step (grad into s [L, H])")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--shape", choices=sorted(SHAPES), help="random model of this shape (default tinyllama)")
    src.add_argument("--model", help="HF folder (config.json + model.safetensors); run all-NoPE")
    ap.add_argument("--length", type=int, default=1024, help="tokens in the sequence (default 1024)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--repeat", type=int, default=3, help="timed steps, and timed forwards (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps/forwards first (default 1)")
    ap.add_argument("--layers", type=int, help="override the layer count of --shape (quick runs)")
    ap.add_argument("--gqa", default="native", choices=["native", "repeat"],
                    help="SDPA enable_gqa=True (default) or repeat_interleave of K/V")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="gradient sanity check on a tiny config, then exit")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.check:
        return check(args)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))

    t0 = time.perf_counter()
    if args.model:
        shape, weights = load_model(args.model)
        name = os.path.basename(os.path.normpath(args.model))
    else:
        name = args.shape or "tinyllama"
        shape = dict(SHAPES[name])
        if args.layers:
            shape["num_hidden_layers"] = args.layers
        shape["max_position_embeddings"] = max(shape["max_position_embeddings"], args.length)
        weights = random_model(shape, torch.float32)
    m = prepare(shape, weights)
    build_s = time.perf_counter() - t0
    n_params = sum(v.numel() for v in weights.values())
    rss_build = peak_rss_bytes()
    L, H = shape["num_hidden_layers"], shape["num_attention_heads"]
    log(f"built {name} ({L} layers, {H} heads x {shape['head_dim']}, {shape['num_key_value_heads']} KV heads, "
        f"{n_params:,} parameters, float32) in {build_s:.1f} s; peak RSS {rss_build / 2**20:.0f} MiB")

    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, shape["vocab_size"], (args.length,), generator=gen)
    s = torch.ones(L, H, dtype=torch.float32, requires_grad=True)

    step_times, losses = [], []
    for i in range(args.warmup + args.repeat):
        t = time.perf_counter()
        s.grad = None
        loss = search_loss(m, ids, s, args.gqa)
        loss.backward()
        lv = loss.item()
        dt = time.perf_counter() - t
        del loss
        if i >= args.warmup:
            step_times.append(dt)
        losses.append(lv)
        log(f"  step {'warmup' if i < args.warmup else 'run'} {i + 1 - (0 if i < args.warmup else args.warmup)}: {dt:.3f} s, loss {lv:.5f}, "
            f"|s.grad| {s.grad.norm().item():.3e}")
    grad_norm = s.grad.norm().item()

    fwd_times = []
    with torch.no_grad():
        for i in range(args.warmup + args.repeat):
            t = time.perf_counter()
            lv = search_loss(m, ids, s, args.gqa).item()
            dt = time.perf_counter() - t
            if i >= args.warmup:
                fwd_times.append(dt)
            log(f"  forward {'warmup' if i < args.warmup else 'run'} {i + 1 - (0 if i < args.warmup else args.warmup)}: {dt:.3f} s, loss {lv:.5f}")

    step_med, fwd_med = statistics.median(step_times), statistics.median(fwd_times)
    rss_end = peak_rss_bytes()
    result = {
        "tool": "torch_search_step",
        "shape": name,
        "layers": L,
        "heads": H,
        "parameters": n_params,
        "length": args.length,
        "threads": args.threads,
        "gqa": args.gqa,
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "build_seconds": round(build_s, 3),
        "step_seconds_all": [round(t, 4) for t in step_times],
        "step_seconds": round(step_med, 4),
        "step_seconds_min": round(min(step_times), 4),
        "forward_seconds_all": [round(t, 4) for t in fwd_times],
        "forward_seconds": round(fwd_med, 4),
        "forward_seconds_min": round(min(fwd_times), 4),
        "step_to_forward": round(step_med / fwd_med, 3),
        "tokens_per_second_step": round(args.length / step_med, 2),
        "loss": round(losses[-1], 6),
        "s_grad_norm": grad_norm,
        "peak_rss_after_build_bytes": rss_build,
        "peak_rss_bytes": rss_end,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{name} T={args.length}, {args.threads} threads, gqa {args.gqa} (torch {torch.__version__}, "
              f"{result['cpu_capability']})")
        print(f"  step (fwd+bwd into s): median {step_med:.3f} s, min {min(step_times):.3f} s ({len(step_times)} runs)")
        print(f"  forward (no_grad): median {fwd_med:.3f} s; step/forward {result['step_to_forward']}")
        print(f"  peak RSS after build {rss_build / 2**20:.0f} MiB, after runs {rss_end / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
