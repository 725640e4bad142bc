"""Generate the optimizer golden under ``fixtures/grads/adamw/``.

Run from the repository root, after ``make_grad_goldens.py`` (it starts from that script's case
``nope_gqa2_lambda``)::

    .venv/bin/python scripts/reference/make_adamw_golden.py

Five training steps of ``torch.optim.AdamW`` (single-tensor path, ``foreach=False``) in float64 on
the model of ``fixtures/grads/nope_gqa2_lambda/`` (its ``model.safetensors`` widened to float64),
with its ``input_ids`` as the one fixed batch at every step and its ``lambda`` held fixed (not
trained). Per step t = 1..5:

1. lr_t from the schedule (linear warmup over 2 steps, then cosine decay to 10 % of the peak at
   step 5; see ``lr_at``), set on both parameter groups;
2. loss_t = mean cross-entropy (nats) over all B*(T-1) predictions of the float64 reference forward
   (``make_grad_goldens.mean_loss``); backward;
3. ``torch.nn.utils.clip_grad_norm_(params, max_norm=1.0, foreach=False)``; its return value (the
   global L2 norm before clipping) is grad_norm_t;
4. ``optimizer.step()``: AdamW(lr=lr_t, betas=(0.9, 0.95), eps=1e-8), weight decay 0.1 on the 2-D
   weights (embedding, q/k/v/o, gate/up/down, lm_head), 0 on the 1-D RMSNorm weights.

Writes ``golden.safetensors`` (see GOLDEN_DOC), ``schedule.json`` (the formulas and per-step numbers)
and ``README.md`` (the exact update equations). It also re-runs the five steps with a hand-written
implementation of the README equations (float64, no torch.optim) and with torch in float32, and
records how far those land from the golden (README, "Checks").
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_grad_goldens as mgg  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "fixtures" / "grads" / "nope_gqa2_lambda"
OUT = REPO / "fixtures" / "grads" / "adamw"
MADE_BY = "scripts/reference/make_adamw_golden.py"

torch.set_num_threads(1)

STEPS = 5
PEAK_LR = 2e-3
WARMUP = 2
MIN_RATIO = 0.1
BETAS = (0.9, 0.95)
EPS = 1e-8
WD = 0.1
MAX_NORM = 1.0
CLIP_EPS = 1e-6  # torch's clip_grad_norm_: scale = min(1, max_norm / (norm + 1e-6))


def lr_at(t: int) -> tuple[float, dict]:
    """Learning rate of step t (1-based) and how it was computed."""
    if t <= WARMUP:
        return PEAK_LR * t / WARMUP, {"phase": "warmup", "formula": f"peak * t / {WARMUP}"}
    progress = (t - WARMUP) / (STEPS - WARMUP)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    lr = PEAK_LR * (MIN_RATIO + (1.0 - MIN_RATIO) * cosine)
    return lr, {"phase": "cosine", "progress": progress, "cosine": cosine,
                "formula": f"peak * ({MIN_RATIO} + {1 - MIN_RATIO} * 0.5 * (1 + cos(pi * (t - {WARMUP}) / "
                           f"{STEPS - WARMUP})))"}


def decays(name: str, shape) -> bool:
    return len(shape) == 2


def train_torch(cfg, W: dict, ids, lam, dtype) -> dict:
    names = sorted(W)
    P = {k: torch.tensor(W[k], dtype=dtype, requires_grad=True) for k in names}
    lam_t = torch.tensor(lam, dtype=dtype)  # fixed
    ids_t = torch.from_numpy(ids)
    groups = [{"params": [P[k] for k in names if decays(k, W[k].shape)], "weight_decay": WD},
              {"params": [P[k] for k in names if not decays(k, W[k].shape)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=PEAK_LR, betas=BETAS, eps=EPS, weight_decay=WD, foreach=False)
    params = [P[k] for k in names]
    rec = {"losses": [], "lr": [], "grad_norm": [], "clip_scale": [], "step1": None}
    for t in range(1, STEPS + 1):
        lr, _ = lr_at(t)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss = mgg.mean_loss(cfg, P, ids_t, lam_t, dtype)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, MAX_NORM, foreach=False)
        opt.step()
        rec["losses"].append(float(loss.detach()))
        rec["lr"].append(lr)
        rec["grad_norm"].append(float(gn))
        rec["clip_scale"].append(min(1.0, MAX_NORM / (float(gn) + CLIP_EPS)))
        if t == 1:
            rec["step1"] = {k: P[k].detach().clone() for k in names}
    with torch.no_grad():
        rec["final_loss"] = float(mgg.mean_loss(cfg, P, ids_t, lam_t, dtype))
    rec["final"] = {k: P[k].detach() for k in names}
    return rec


def train_by_hand(cfg, W: dict, ids, lam) -> dict:
    """The README equations, float64, without torch.optim / clip_grad_norm_."""
    names = sorted(W)
    p = {k: torch.tensor(W[k], dtype=torch.float64) for k in names}
    m = {k: torch.zeros_like(p[k]) for k in names}
    v = {k: torch.zeros_like(p[k]) for k in names}
    lam_t = torch.tensor(lam, dtype=torch.float64)
    ids_t = torch.from_numpy(ids)
    b1, b2 = BETAS
    rec = {"losses": [], "grad_norm": []}
    for t in range(1, STEPS + 1):
        lr, _ = lr_at(t)
        leaves = {k: p[k].clone().requires_grad_(True) for k in names}
        loss = mgg.mean_loss(cfg, leaves, ids_t, lam_t)
        grads = dict(zip(names, torch.autograd.grad(loss, [leaves[k] for k in names])))
        norm = math.sqrt(sum(float((grads[k] ** 2).sum()) for k in names))
        scale = min(1.0, MAX_NORM / (norm + CLIP_EPS))
        for k in names:
            g = grads[k] * scale
            wd = WD if decays(k, W[k].shape) else 0.0
            p[k] = p[k] * (1 - lr * wd)
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
            p[k] = p[k] - (lr / bc1) * m[k] / (v[k].sqrt() / math.sqrt(bc2) + EPS)
        rec["losses"].append(float(loss.detach()))
        rec["grad_norm"].append(norm)
    rec["final"] = p
    return rec


GOLDEN_DOC = {
    "input_ids": "I32 [B, T], the fixed batch of every step (= nope_gqa2_lambda's input_ids)",
    "lambda": "F32 [L, H], fixed, not trained (= nope_gqa2_lambda's lambda)",
    "losses": "F32 [5] loss_t before step t: mean cross-entropy (nats) of the weights after t-1 steps",
    "lr": "F32 [5] lr_t used by step t",
    "grad_norm": "F32 [5] global L2 norm of all weight gradients before clipping (clip_grad_norm_'s return value)",
    "clip_scale": "F32 [5] factor the gradients were multiplied by: min(1, 1 / (grad_norm + 1e-6))",
    "final_loss": "F32 [] loss of the final weights (after step 5) on the same batch",
    "step1.<hf name>": "F32 the weights after step 1 (to localize a mismatch)",
    "final.<hf name>": "F32 the weights after step 5",
}


def main() -> int:
    cfg, W, ids, lam = mgg.load_case(SRC)
    names = sorted(W)
    rec = train_torch(cfg, W, ids, lam, torch.float64)

    OUT.mkdir(parents=True, exist_ok=True)
    golden = {
        "input_ids": ids,
        "lambda": lam,
        "losses": np.array(rec["losses"], dtype=np.float32),
        "lr": np.array(rec["lr"], dtype=np.float32),
        "grad_norm": np.array(rec["grad_norm"], dtype=np.float32),
        "clip_scale": np.array(rec["clip_scale"], dtype=np.float32),
        "final_loss": np.array(rec["final_loss"], dtype=np.float32),
    }
    for k in names:
        golden["step1." + k] = rec["step1"][k].float().numpy()
    for k in names:
        golden["final." + k] = rec["final"][k].float().numpy()
    mgg.save_safetensors(OUT / "golden.safetensors", golden)

    # checks: the README equations by hand (float64), and torch in float32
    hand = train_by_hand(cfg, W, ids, lam)
    hand_w = max(float((hand["final"][k] - rec["final"][k]).abs().max()) for k in names)
    hand_l = max(abs(a - b) for a, b in zip(hand["losses"], rec["losses"]))
    hand_n = max(abs(a - b) for a, b in zip(hand["grad_norm"], rec["grad_norm"]))
    r32 = train_torch(cfg, W, ids, lam, torch.float32)
    f32_w = max(float((r32["final"][k].double() - rec["final"][k]).abs().max()) for k in names)
    f32_l = max(abs(a - b) for a, b in zip(r32["losses"], rec["losses"]))
    f32_n = max(abs(a - b) / b for a, b in zip(r32["grad_norm"], rec["grad_norm"]))
    moved = max(float((rec["final"][k] - torch.tensor(W[k], dtype=torch.float64)).abs().max()) for k in names)

    steps = []
    for t in range(1, STEPS + 1):
        lr, how = lr_at(t)
        steps.append({"step": t, "lr": lr, **how, "loss_before": rec["losses"][t - 1],
                      "grad_norm_before_clip": rec["grad_norm"][t - 1], "clip_scale": rec["clip_scale"][t - 1],
                      "bias_correction1": 1 - BETAS[0] ** t, "bias_correction2": 1 - BETAS[1] ** t})
    schedule = {
        "made_by": MADE_BY,
        "model": "fixtures/grads/nope_gqa2_lambda (model.safetensors; input_ids and lambda from its golden)",
        "steps": STEPS,
        "peak_lr": PEAK_LR,
        "warmup_steps": WARMUP,
        "min_lr": PEAK_LR * MIN_RATIO,
        "lr_formula": {
            "t <= 2 (warmup)": "lr_t = peak * t / 2",
            "t > 2 (cosine)": "lr_t = peak * (0.1 + 0.9 * 0.5 * (1 + cos(pi * (t - 2) / 3)))",
            "t": "1-based step number; step t uses lr_t",
        },
        "optimizer": {"name": "torch.optim.AdamW", "betas": list(BETAS), "eps": EPS, "weight_decay": WD,
                      "weight_decay_applies_to": "2-D tensors only (embed_tokens, q/k/v/o_proj, gate/up/down_proj, "
                                                 "lm_head); the RMSNorm weights (1-D) have weight_decay 0",
                      "implementation": "single-tensor (foreach=False), amsgrad=False, maximize=False"},
        "clipping": {"max_norm": MAX_NORM, "norm": "global L2 over all weight gradients",
                     "scale": "min(1, max_norm / (norm + 1e-6))"},
        "trained": "the weights only; lambda fixed",
        "final_loss": rec["final_loss"],
        "per_step": steps,
    }
    mgg.meg.write_json(OUT / "schedule.json", schedule)

    lr_rows = "\n".join(
        f"| {s['step']} | {s['phase']} | {s['lr']:.6g} | {s['loss_before']:.9f} | {s['grad_norm_before_clip']:.9f} "
        f"| {s['clip_scale']:.9f} |" for s in steps)
    readme = f"""# AdamW golden (`{MADE_BY}`)

Five optimizer steps in float64 from the model of `fixtures/grads/nope_gqa2_lambda/` (its
`model.safetensors`), on one fixed batch (that case's `input_ids`, the same at every step), with
λ held at that case's values and **not trained**. Only the weights are trained.

## One step t (t = 1..5)

1. `lr_t` from the schedule below.
2. `loss_t` = mean cross-entropy in nats over all B·(T−1) next-token predictions (the float64
   reference forward, `llama_reference.py`); `g` = d loss_t / d p for every weight p (autograd).
3. Global clipping (`torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)`):
   `N_t = sqrt(Σ over all weights and coordinates g²)` (stored as `grad_norm`, before clipping);
   `s_t = min(1, 1.0 / (N_t + 1e-6))` (stored as `clip_scale`; note torch's `+ 1e-6`); `g ← s_t · g`.
4. AdamW (torch's `_single_tensor_adam` with `decoupled_weight_decay=True`), per weight tensor p
   with its moments m, v (zero before step 1), β1 = 0.9, β2 = 0.95, ε = 1e-8:

```
p ← p · (1 − lr_t · wd)                 # decoupled weight decay first; wd = 0.1 for 2-D weights, 0 for norms
m ← β1 · m + (1 − β1) · g               # torch: m.lerp_(g, 1 − β1)
v ← β2 · v + (1 − β2) · g²
bc1 = 1 − β1^t,  bc2 = 1 − β2^t
p ← p − (lr_t / bc1) · m / (sqrt(v) / sqrt(bc2) + ε)
```

ε is added after dividing sqrt(v) by sqrt(bc2), i.e. to the bias-corrected root, as torch does.
Weight decay applies to the 2-D tensors only: `model.embed_tokens.weight`, `q/k/v/o_proj.weight`,
`gate/up/down_proj.weight`, `lm_head.weight`. It does not apply to the RMSNorm weights
(`input_layernorm`, `post_attention_layernorm`, `model.norm`), which are the 1-D tensors.

## Learning-rate schedule (peak 2e-3, warmup 2 steps, cosine to 10 % of peak at step 5)

```
t ≤ 2:  lr_t = 2e-3 · t / 2
t > 2:  lr_t = 2e-3 · (0.1 + 0.9 · 0.5 · (1 + cos(π · (t − 2) / 3)))
```

| step t | phase | lr_t | loss before the step | grad norm before clipping | clip scale |
|---|---|---|---|---|---|
{lr_rows}

Loss after step 5 (`final_loss`): {rec['final_loss']:.9f}. `schedule.json` has the same numbers and the bias
corrections per step.

## `golden.safetensors`

""" + "\n".join(f"- `{k}`: {v}" for k, v in GOLDEN_DOC.items()) + f"""

The tensors are the float64 results rounded to float32. The weight names are the HF names of
`model.safetensors` (`final.model.layers.0.self_attn.q_proj.weight`, ...); no `lambda` is trained, so
there is no `final.lambda`.

## Checks (from the generator)

- The equations above, written out by hand in float64 (no torch.optim, no clip_grad_norm_), against
  torch: max|d| final weights {hand_w:.2e}, losses {hand_l:.2e}, grad norms {hand_n:.2e}.
- The same five steps in torch float32 (what a correct float32 trainer can reach) against this golden:
  max|d| final weights {f32_w:.2e} (the weights moved by up to {moved:.2e} from their start),
  losses {f32_l:.2e}, grad norms (relative) {f32_n:.2e}.
"""
    (OUT / "README.md").write_text(readme)
    print(readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
