#!/usr/bin/env bash
# One training step of the tiny model organism (1.7 M parameters, batch 16 × 256) in nopekit and
# in PyTorch CPU (float32, 2 threads), timed in one run, and their ratio.
# Usage: scripts/bench/train_vs_torch.sh   (needs `make release` and the torch requirements:
# `.venv/bin/pip install -r scripts/reference/requirements-torch.txt`)
set -euo pipefail
cd "$(dirname "$0")/../.."
.build/release/nopekit bench train --steps 10 --json 2>/dev/null > /tmp/nopekit-train.json
.venv/bin/python scripts/bench/torch_train_step.py --threads 2 --batch 16 --length 256 --json > /tmp/torch-train.json 2>/dev/null
.venv/bin/python - <<'PY'
import json
ours = json.load(open("/tmp/nopekit-train.json"))
torch = json.load(open("/tmp/torch-train.json"))
t = torch.get("seconds_per_step_median") or torch.get("step_seconds_median") or torch.get("seconds_median")
print(f"nopekit {ours['seconds_per_step']:.3f} s/step ({ours['tokens_per_s']:.0f} tokens/s, step = {ours['step_to_forward_ratio']:.2f} × forward); "
      f"PyTorch {t:.3f} s/step; nopekit/PyTorch speed = {t / ours['seconds_per_step']:.2f}")
PY
