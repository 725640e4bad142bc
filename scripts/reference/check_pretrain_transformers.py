"""Dev-time check: transformers runs what `nopekit pretrain` writes exactly as nopekit does.

    .venv/bin/python scripts/reference/check_pretrain_transformers.py --nopekit .build/debug/nopekit --workdir /tmp/check-pretrain-tf

Trains two micro organisms for 3 steps (cwd = WORKDIR): all-NoPE, and the local-RoPE +
global-NoPE hybrid (`--position layers:1 --sliding-window 8`), whose config.json is SmolLM3's
(`no_rope_layers`, `use_sliding_window`, `layer_types`). For each, a 90-byte text (longer than the
window and than the training length) is scored by `nopekit score --json` and by
transformers' `AutoModelForCausalLM` (float32) on BOS + the UTF-8 bytes; the mean losses must agree
to 1e-5 nats. A config transformers misread (RoPE on a NoPE layer, no window) moves the loss by
far more. Needs torch and transformers (scripts/reference/requirements-torch.txt), so it is not
part of `make test`.
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import transformers

TEXT = ("The pass key is 41235. Remember it. " * 3)[:90]


def nopekit_loss(nopekit: Path, folder: Path, text_file: Path) -> float:
    out = subprocess.run([str(nopekit), "score", str(folder), "--text", str(text_file), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["mean_loss"]


def transformers_loss(folder: Path) -> tuple[float, str]:
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    ids = torch.tensor([[256] + list(TEXT.encode())])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    return float(torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])), type(model).__name__


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nopekit", required=True, type=Path)
    ap.add_argument("--workdir", required=True, type=Path)
    args = ap.parse_args()
    nopekit = args.nopekit.resolve()
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    text_file = work / "text.txt"
    text_file.write_text(TEXT)
    failed = 0
    for name, extra in [("nope", ["--position", "none"]), ("hybrid", ["--position", "layers:1", "--sliding-window", "8"])]:
        folder = work / name
        subprocess.run([str(nopekit), "pretrain", "--out", str(folder), "--preset", "micro", "--steps", "3", "--length", "32",
                        "--batch", "2", "--eval-every", "3", *extra], check=True, capture_output=True)
        ours = nopekit_loss(nopekit, folder, text_file)
        theirs, cls = transformers_loss(folder)
        ok = abs(ours - theirs) <= 1e-5
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name}: nopekit {ours:.7f}, transformers {cls} {theirs:.7f} nats")
    print(f"check_pretrain_transformers: {2 - failed} passed, {failed} failed (torch {torch.__version__}, transformers {transformers.__version__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
