"""Times a full forward of a TinyLlama-shaped random Llama in PyTorch on the CPU: the peer baseline.

Usage:
    .venv/bin/python scripts/bench/torch_forward.py --shape tinyllama --length 2048 \\
        [--threads 2] [--dtype float32] [--repeat 3] [--warmup 1] [--batch 1] [--layers N] \\
        [--attn sdpa] [--seed 0] [--json]

Needs torch and transformers (``scripts/reference/requirements-torch.txt``). The model is
transformers' ``LlamaForCausalLM`` with ``attn_implementation="sdpa"`` (what a user would pick on a
CPU), random weights (transformers' init, std 0.02), built in ``--dtype`` directly, in eval mode, run
under ``torch.inference_mode()`` with ``use_cache=False``. A forward is one call on ``--batch`` x
``--length`` random token ids and includes the LM head on every position (all ``T x vocab`` logits,
as a perplexity or temperature-search pass needs them).

Shape ``tinyllama`` (TinyLlama-1.1B): 22 layers, hidden 2048, 32 heads, 4 KV heads (head_dim 64),
intermediate 5632, vocab 32000, untied; 1,100,048,384 parameters, 4.4 GB in float32.

Reported: seconds per forward (each timed run, best and median), tokens/s (batch*length / seconds),
GFLOP/s, RSS after building the model and peak RSS (VmHWM; reset after the build when the kernel
allows it, so the forward peak is separate from the build peak).

FLOP count of one forward (multiply-add = 2 FLOP; embedding lookup, norms, activations, softmax and
RoPE not counted):

    matmul    = 2 * B * T * P,  P = L * (D*H*hd + 2*D*KV*hd + H*hd*D + 3*D*I) + V*D
                (q, k, v, o projections, gate/up/down, LM head; P = 1,034,420,224 for tinyllama)
    attention = L * B * H * 4 * hd * T*(T+1)/2
                (q.k and p.v over the causal half, key j <= query i: 2*hd FLOP each, per head)
    total     = matmul + attention

SDPA on CPU may compute more than the causal half; GFLOP/s counts only the useful work above.
Running the 2048-token benchmark takes minutes on 2 cores; ``--length 256`` is a quick check.
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
                      num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False),
}


def rss_kib(field: str) -> int | None:
    """VmRSS / VmHWM from /proc/self/status in KiB (None if unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def flops(shape: dict, batch: int, length: int) -> dict:
    D, L, V, I = shape["hidden_size"], shape["num_hidden_layers"], shape["vocab_size"], shape["intermediate_size"]
    H, KV = shape["num_attention_heads"], shape["num_key_value_heads"]
    hd = D // H
    P = L * (D * H * hd + 2 * D * KV * hd + H * hd * D + 3 * D * I) + V * D
    matmul = 2 * batch * length * P
    attention = L * batch * H * 4 * hd * length * (length + 1) // 2
    return {"matmul_params": P, "matmul_flop": matmul, "attention_flop": attention, "total_flop": matmul + attention}


def main() -> int:
    ap = argparse.ArgumentParser(description="PyTorch CPU forward timing of a TinyLlama-shaped random Llama")
    ap.add_argument("--shape", default="tinyllama", choices=sorted(SHAPES))
    ap.add_argument("--length", type=int, default=2048, help="tokens per sequence (default 2048)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--repeat", type=int, default=3, help="timed forwards (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed forwards first (default 1)")
    ap.add_argument("--layers", type=int, help="override the layer count (quick runs)")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    transformers.utils.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dtype = getattr(torch, args.dtype)

    shape = dict(SHAPES[args.shape])
    if args.layers:
        shape["num_hidden_layers"] = args.layers
    shape["max_position_embeddings"] = max(shape["max_position_embeddings"], args.length)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))

    rss_start = rss_kib("VmRSS")
    t0 = time.perf_counter()
    config = LlamaConfig(**shape)
    model = LlamaForCausalLM._from_config(config, attn_implementation=args.attn, dtype=dtype).eval()
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    rss_model = rss_kib("VmRSS")
    peak_build = rss_kib("VmHWM")
    peak_reset = reset_peak_rss()
    log(f"built {args.shape} ({shape['num_hidden_layers']} layers, {n_params:,} parameters, {args.dtype}, "
        f"attn {args.attn}) in {build_s:.1f} s; RSS {rss_model / 1024:.0f} MiB")

    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, shape["vocab_size"], (args.batch, args.length), generator=gen)
    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.repeat):
            t = time.perf_counter()
            out = model(input_ids=ids, use_cache=False)
            _ = out.logits[0, -1, 0].item()
            dt = time.perf_counter() - t
            del out
            if i >= args.warmup:
                times.append(dt)
            log(f"  {'warmup' if i < args.warmup else 'run'} {i + 1 - (0 if i < args.warmup else args.warmup)}: {dt:.2f} s")

    peak_forward = rss_kib("VmHWM") if peak_reset else None
    peak_total = max(x for x in (peak_build, peak_forward, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) if x)
    f = flops(shape, args.batch, args.length)
    best, median = min(times), statistics.median(times)
    tokens = args.batch * args.length
    result = {
        "tool": "torch_forward",
        "shape": args.shape,
        "layers": shape["num_hidden_layers"],
        "parameters": n_params,
        "batch": args.batch,
        "length": args.length,
        "dtype": args.dtype,
        "attn_implementation": args.attn,
        "threads": args.threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "build_seconds": round(build_s, 3),
        "seconds": [round(t, 4) for t in times],
        "seconds_best": round(best, 4),
        "seconds_median": round(median, 4),
        "tokens_per_second_best": round(tokens / best, 2),
        "tokens_per_second_median": round(tokens / median, 2),
        "gflop_per_forward": round(f["total_flop"] / 1e9, 2),
        "gflop_matmul": round(f["matmul_flop"] / 1e9, 2),
        "gflop_attention": round(f["attention_flop"] / 1e9, 2),
        "gflops_best": round(f["total_flop"] / best / 1e9, 2),
        "gflops_median": round(f["total_flop"] / median / 1e9, 2),
        "matmul_params": f["matmul_params"],
        "flop_formula": "2*B*T*P + L*B*H*4*hd*T*(T+1)/2, P = L*(D*H*hd + 2*D*KV*hd + H*hd*D + 3*D*I) + V*D",
        "rss_start_mib": round(rss_start / 1024, 1) if rss_start else None,
        "rss_after_build_mib": round(rss_model / 1024, 1) if rss_model else None,
        "peak_rss_build_mib": round(peak_build / 1024, 1) if peak_build else None,
        "peak_rss_forward_mib": round(peak_forward / 1024, 1) if peak_forward else None,
        "peak_rss_mib": round(peak_total / 1024, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.shape} B={args.batch} T={args.length} {args.dtype} {args.attn}, {args.threads} threads "
              f"(torch {torch.__version__}, {result['cpu_capability']})")
        print(f"  seconds per forward: best {best:.3f}, median {median:.3f} ({len(times)} runs)")
        print(f"  tokens/s: best {tokens / best:.1f}, median {tokens / median:.1f}")
        print(f"  GFLOP per forward {result['gflop_per_forward']} (matmul {result['gflop_matmul']}, attention "
              f"{result['gflop_attention']}); GFLOP/s best {result['gflops_best']}, median {result['gflops_median']}")
        print(f"  RSS after build {result['rss_after_build_mib']} MiB; peak during forwards "
              f"{result['peak_rss_forward_mib']} MiB; peak overall {result['peak_rss_mib']} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
