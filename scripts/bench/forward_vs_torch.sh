#!/usr/bin/env bash
# nopekit vs PyTorch on the same TinyLlama-shaped random forward, in one run:
# `nopekit bench forward` then scripts/bench/torch_forward.py (transformers LlamaForCausalLM,
# SDPA, float32), both on 2 threads, and their ratio.
# Usage: scripts/bench/forward_vs_torch.sh [LENGTH]   (needs `make release` and
# `.venv/bin/pip install -r scripts/reference/requirements-torch.txt`; takes a few minutes)
set -euo pipefail
cd "$(dirname "$0")/../.."
length=${1:-2048}
.build/release/nopekit bench forward --length "$length" --repeat 2 --json 2>/dev/null > /tmp/nopekit-forward.json
.venv/bin/python scripts/bench/torch_forward.py --shape tinyllama --length "$length" --threads 2 --repeat 2 --json > /tmp/torch-forward.json 2>/dev/null
.venv/bin/python - <<'PY'
import json
ours = json.load(open("/tmp/nopekit-forward.json"))
torch = json.load(open("/tmp/torch-forward.json"))
print(f"length {ours['length']}: nopekit {ours['seconds']:.2f} s ({ours['gflops']:.0f} GFLOP/s, "
      f"{100 * ours['ratio_to_sgemm']:.0f}% of sgemm {ours['sgemm_gflops']:.0f}), "
      f"PyTorch {torch['seconds_best']:.2f} s ({torch['gflops_best']:.0f} GFLOP/s); "
      f"nopekit/PyTorch speed = {torch['seconds_best'] / ours['seconds']:.2f}")
PY
