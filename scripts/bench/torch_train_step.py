"""Times one training step (forward + backward + AdamW) of a small all-NoPE decoder in PyTorch CPU: the peer baseline
for nopekit's trainer.

Usage:
    .venv/bin/python scripts/bench/torch_train_step.py [--threads 2] [--batch 16] [--length 256] \\
        [--steps 10] [--warmup 3] [--attn sdpa] [--tied] [--optimizer-impl default] [--seed 0] [--json]

Needs torch and transformers (``scripts/reference/requirements-torch.txt``).

Model: transformers' ``SmolLM3ForCausalLM`` with ``no_rope_layers`` all 0 (every layer NoPE), float32,
``attn_implementation="sdpa"`` (causal), random weights (transformers' init, std 0.02), train mode
(dropout is 0). Shape: 4 layers, d_model 192, 6 query heads of 32, 2 KV heads, SwiGLU 512, vocab 258
(256 bytes + BOS/EOS), RMSNorm eps 1e-6, untied LM head (``--tied`` ties it). No λ (all 1): a
per-head λ costs nothing here, it can be folded into q_proj rows.

One training step, timed as a whole with ``time.perf_counter``:

    opt.zero_grad(set_to_none=True)
    logits = model(input_ids=ids, use_cache=False).logits                  # [B, T, V]
    loss = cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))   # mean over B*(T-1)
    loss.backward()
    clip_grad_norm_(model.parameters(), 1.0)
    opt.step()        # AdamW(lr 2e-3, betas (0.9, 0.95), eps 1e-8), weight decay 0.1 on 2-D weights only
    loss.item()

The same batch (random ids, fixed seed) every step. Reported: median (and min) seconds per step over
``--steps`` steps after ``--warmup`` untimed ones, tokens/s = batch*length / median, the medians of
the step's parts (forward incl. loss, backward, clip + AdamW), and forward-only seconds (the same
forward and loss under ``torch.inference_mode()``, no graph; median over the same counts).

FLOP estimate (multiply-add = 2 FLOP; matmuls and causal attention only):
    forward = 2*B*T*P + L*B*H*4*hd*T*(T+1)/2,  P = L*(D*H*hd + 2*D*KV*hd + H*hd*D + 3*D*I) + V*D
    train step ~ 3 * forward (backward = 2 x forward)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

SHAPE = dict(vocab_size=258, hidden_size=192, intermediate_size=512, num_hidden_layers=4,
             num_attention_heads=6, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6)


def flops(s: dict, B: int, T: int) -> dict:
    D, L, V, I = s["hidden_size"], s["num_hidden_layers"], s["vocab_size"], s["intermediate_size"]
    H, KV, hd = s["num_attention_heads"], s["num_key_value_heads"], s["head_dim"]
    P = L * (D * H * hd + 2 * D * KV * hd + H * hd * D + 3 * D * I) + V * D
    fwd = 2 * B * T * P + L * B * H * 4 * hd * T * (T + 1) // 2
    return {"matmul_params": P, "forward_flop": fwd, "train_step_flop": 3 * fwd}


def main() -> int:
    ap = argparse.ArgumentParser(description="PyTorch CPU training-step timing of a small all-NoPE decoder")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--tied", action="store_true", help="tie the LM head to the embedding")
    ap.add_argument("--optimizer-impl", default="default", choices=["default", "single", "foreach", "fused"],
                    help="AdamW path: torch's default choice (single-tensor on CPU), or forced")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import SmolLM3Config, SmolLM3ForCausalLM

    transformers.utils.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))

    L = SHAPE["num_hidden_layers"]
    config = SmolLM3Config(**SHAPE, no_rope_layers=[0] * L, max_position_embeddings=max(2048, args.length),
                           tie_word_embeddings=args.tied, pad_token_id=None, bos_token_id=256, eos_token_id=257,
                           attention_dropout=0.0)
    model = SmolLM3ForCausalLM._from_config(config, attn_implementation=args.attn, dtype=torch.float32)
    model.train()
    assert all(not layer.self_attn.use_rope for layer in model.model.layers), "expected every layer NoPE"
    n_params = sum(p.numel() for p in model.parameters())
    V = SHAPE["vocab_size"]

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() == 2]
    no_decay = [p for p in params if p.dim() != 2]
    impl = {"default": {}, "single": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=2e-3, betas=(0.9, 0.95), eps=1e-8, **impl[args.optimizer_impl])

    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, V, (args.batch, args.length), generator=gen)
    targets = ids[:, 1:].reshape(-1)

    def forward_loss():
        logits = model(input_ids=ids, use_cache=False).logits
        return F.cross_entropy(logits[:, :-1].reshape(-1, V), targets)

    log(f"SmolLM3ForCausalLM all-NoPE, {n_params:,} parameters, float32, attn {args.attn}, "
        f"{'tied' if args.tied else 'untied'}, B={args.batch} T={args.length}, {args.threads} threads")
    steps, parts, losses = [], {"forward": [], "backward": [], "optimizer": []}, []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = forward_loss()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        lv = loss.item()
        t3 = time.perf_counter()
        losses.append(lv)
        if i >= args.warmup:
            steps.append(t3 - t0)
            parts["forward"].append(t1 - t0)
            parts["backward"].append(t2 - t1)
            parts["optimizer"].append(t3 - t2)
        log(f"  {'warmup' if i < args.warmup else 'step'} {i + 1}: {t3 - t0:.3f} s (loss {lv:.4f})")

    fwd = []
    with torch.inference_mode():
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            _ = forward_loss().item()
            dt = time.perf_counter() - t0
            if i >= args.warmup:
                fwd.append(dt)
    used = {k: v for k, v in opt.defaults.items() if k in ("foreach", "fused")}
    if used.get("fused"):
        path = "fused"
    elif used.get("foreach") is None:
        try:  # what torch picks when neither is given (private helper; single-tensor on CPU in torch 2.13)
            from torch.optim.optimizer import _default_to_fused_or_foreach
            path = "foreach" if _default_to_fused_or_foreach(params, False, False)[1] else "single-tensor"
        except Exception:  # noqa: BLE001
            path = "torch default (unresolved)"
    else:
        path = "foreach" if used["foreach"] else "single-tensor"

    f = flops(SHAPE, args.batch, args.length)
    med = statistics.median(steps)
    fmed = statistics.median(fwd)
    tokens = args.batch * args.length
    result = {
        "tool": "torch_train_step",
        "model": "transformers SmolLM3ForCausalLM, no_rope_layers all 0 (every layer NoPE)",
        "shape": {**SHAPE, "tied": args.tied},
        "parameters": n_params,
        "batch": args.batch,
        "length": args.length,
        "tokens_per_step": tokens,
        "dtype": "float32",
        "attn_implementation": args.attn,
        "optimizer": "AdamW lr 2e-3 betas (0.9, 0.95) eps 1e-8 wd 0.1 (2-D weights), clip_grad_norm_ 1.0",
        "optimizer_impl": args.optimizer_impl,
        "optimizer_flags": used,
        "optimizer_path": path,
        "threads": args.threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "step_seconds": [round(t, 4) for t in steps],
        "step_seconds_median": round(med, 4),
        "step_seconds_min": round(min(steps), 4),
        "tokens_per_second": round(tokens / med, 1),
        "step_parts_median_seconds": {k: round(statistics.median(v), 4) for k, v in parts.items()},
        "forward_only_seconds_median": round(fmed, 4),
        "forward_only_seconds_min": round(min(fwd), 4),
        "forward_only_tokens_per_second": round(tokens / fmed, 1),
        "gflop_forward": round(f["forward_flop"] / 1e9, 3),
        "gflop_train_step_estimate": round(f["train_step_flop"] / 1e9, 3),
        "gflops_train_step": round(f["train_step_flop"] / med / 1e9, 2),
        "gflops_forward_only": round(f["forward_flop"] / fmed / 1e9, 2),
        "loss_first": round(losses[0], 5),
        "loss_last": round(losses[-1], 5),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"train step: median {med:.4f} s (min {min(steps):.4f}) over {len(steps)} steps, "
              f"{tokens / med:.0f} tokens/s, ~{result['gflops_train_step']} GFLOP/s")
        print(f"  parts (median): {result['step_parts_median_seconds']}")
        print(f"forward only: median {fmed:.4f} s, {tokens / fmed:.0f} tokens/s")
        print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} steps on one batch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
