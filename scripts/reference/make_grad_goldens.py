"""Generate the gradient goldens under ``fixtures/grads/``.

Run from the repository root (overwrites what it generates; needs torch,
``pip install -r scripts/reference/requirements-torch.txt``)::

    .venv/bin/python scripts/reference/make_grad_goldens.py [--no-crosscheck] [--only CASE ...]

For every case it builds a tiny random Llama-family model (same weight recipe as
``make_engine_goldens.py``) and writes ``fixtures/grads/<case>/``:

``config.json`` + ``model.safetensors``
    A Hugging Face checkpoint, same format as ``fixtures/engine`` (F32, HF names, [out, in]; tied
    models have no ``lm_head.weight``; NoPE layers stated by ``"nopekit_position"``).
``golden.safetensors``
    ``input_ids`` I32 [B, T]; ``lambda`` F32 [L, H]; ``loss`` F32 [] = mean cross-entropy (nats) over
    all B*(T-1) next-token predictions; ``grad.<hf name>`` F32 (same shape as the weight) = d loss /
    d weight for every tensor of model.safetensors; ``grad.lambda`` F32 [L, H] = d loss / d lambda.

The gradients are torch autograd through ``llama_reference.forward`` (the float64 reference forward
behind ``fixtures/engine``), run in float64 on the float64 values of the float32 checkpoint
weights and lambda, loss in float64, rounded to float32 at the end. ``forward`` is decorated with
``@torch.no_grad()``; we call the undecorated function (``forward.__wrapped__``) under
``torch.enable_grad()``, so the maths is exactly the forward behind the engine goldens.

With crosscheck on (default) it writes ``fixtures/grads/crosscheck.txt``:

- every gradient against central finite differences (fourth-order stencil, float64) on a few
  coordinates per tensor (the coordinate with the largest |grad| plus random ones);
- the lambda identity d loss / d lambda[l, h] = (1 / lambda[l, h]) * sum over the q_proj rows r of
  head h and inputs i of W_q[r, i] * grad W_q[r, i] (valid without q-norm: lambda scales a linear
  function of W_q; RoPE is linear so the order does not matter);
- what a correct float32 backward lands at: the same autograd run in float32 (torch CPU) against
  the float64 golden.

Deterministic: fixed seeds, float64 maths, one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_reference as ref  # noqa: E402
import make_engine_goldens as meg  # noqa: E402  (weights recipe, config.json, safetensors writer)

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "fixtures" / "grads"
MADE_BY = "scripts/reference/make_grad_goldens.py"
VOCAB = 37
BATCH = 2

torch.set_num_threads(1)

CASES = [
    dict(name="nope_gqa2_lambda",
         what="Llama, 4 heads / 2 KV heads (head_dim 8), every layer NoPE, untied, lambda != 1",
         hidden=32, layers=2, heads=4, kv_heads=2, intermediate=64, T=19, positions=["none", "none"], lam=True),
    dict(name="rope_mha",
         what="Llama, MHA 4 heads (head_dim 8), RoPE theta 10000 on every layer, untied, lambda = 1",
         hidden=32, layers=2, heads=4, kv_heads=4, intermediate=64, T=19, positions=["rope", "rope"], lam=False),
    dict(name="hybrid_tied_lambda",
         what="Llama, 6 heads / 2 KV heads (head_dim 8), layer 0 RoPE theta 10000, layer 1 NoPE "
              "(nopekit_position \"layers:1\"), tied embeddings (no lm_head.weight: the embedding gradient "
              "sums the lookup and the LM-head uses), lambda != 1",
         hidden=48, layers=2, heads=6, kv_heads=2, intermediate=64, T=19, positions=["rope", "none"], lam=True,
         tied=True),
    dict(name="nope_t70",
         what="Llama, 4 heads / 2 KV heads (head_dim 8), every layer NoPE, T = 70 (several attention tiles), "
              "untied, lambda != 1",
         hidden=32, layers=2, heads=4, kv_heads=2, intermediate=64, T=70, positions=["none", "none"], lam=True),
]


def ref_config(case: dict) -> ref.RefConfig:
    return ref.RefConfig(vocab=VOCAB, hidden=case["hidden"], layers=case["layers"], heads=case["heads"],
                         kv_heads=case["kv_heads"], head_dim=case["hidden"] // case["heads"],
                         intermediate=case["intermediate"], norm_eps=1e-5, tied=case.get("tied", False),
                         positions=list(case["positions"]), rope=ref.RopeSpec(theta=10000.0))


def config_from_json(conf: dict) -> ref.RefConfig:
    """RefConfig of one of our folders (Llama config.json with nopekit_position)."""
    L = conf["num_hidden_layers"]
    np_ = conf.get("nopekit_position", "rope")
    if np_ == "rope":
        positions = ["rope"] * L
    elif np_ == "none":
        positions = ["none"] * L
    elif np_.startswith("layers:"):
        nope = {int(x) for x in np_[len("layers:"):].split(",")}
        positions = ["none" if i in nope else "rope" for i in range(L)]
    elif np_.startswith("every:"):
        n = int(np_[len("every:"):])
        positions = ["none" if (i + 1) % n == 0 else "rope" for i in range(L)]
    else:
        raise ValueError(np_)
    return ref.RefConfig(vocab=conf["vocab_size"], hidden=conf["hidden_size"], layers=L,
                         heads=conf["num_attention_heads"], kv_heads=conf["num_key_value_heads"],
                         head_dim=conf["head_dim"], intermediate=conf["intermediate_size"],
                         norm_eps=conf["rms_norm_eps"], tied=conf["tie_word_embeddings"],
                         attention_bias=conf.get("attention_bias", False), mlp_bias=conf.get("mlp_bias", False),
                         positions=positions, rope=ref.RopeSpec(theta=conf.get("rope_theta", 10000.0)))


def load_case(folder: Path):
    """(cfg, weights {name: float32 ndarray}, input_ids int32 [B, T], lambda float32 [L, H]) of a written case."""
    cfg = config_from_json(json.loads((folder / "config.json").read_text()))
    W = load_file(str(folder / "model.safetensors"))
    g = load_file(str(folder / "golden.safetensors"))
    return cfg, W, g["input_ids"], g["lambda"]


# the undecorated reference forward (``forward`` itself runs under @torch.no_grad())
_forward = ref.forward.__wrapped__


def mean_loss(cfg: ref.RefConfig, W: dict, ids: torch.Tensor, lam: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) over all B*(T-1) predictions, differentiable."""
    with torch.enable_grad():
        return _forward(cfg, W, ids, lam, dtype=dtype)["losses"].mean()


def loss_and_grads(cfg, W: dict[str, np.ndarray], ids: np.ndarray, lam: np.ndarray, dtype=torch.float64):
    """(loss, {name: grad}, grad_lambda) by autograd, leaves are the checkpoint values in ``dtype``."""
    P = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in W.items()}
    lam_t = torch.tensor(lam, dtype=dtype, requires_grad=True)
    loss = mean_loss(cfg, P, torch.from_numpy(ids), lam_t, dtype)
    if not loss.requires_grad:
        raise RuntimeError("reference forward did not build a graph")
    names = list(P)
    grads = torch.autograd.grad(loss, [P[k] for k in names] + [lam_t])
    for g in grads:
        if not torch.isfinite(g).all():
            raise RuntimeError("non-finite gradient")
    return loss.detach(), dict(zip(names, grads[:-1])), grads[-1]


# ---------------------------------------------------------------------------------------------
# finite differences


FD_H = 1e-4
FD_RANDOM = 4  # random coordinates per tensor, plus the one with the largest |grad|
ZERO = 1e-9  # coordinates with max(|autograd|, |fd|) < ZERO count as zero gradients (abs error only)


def fd_check(cfg, W: dict[str, np.ndarray], ids, lam, grads: dict, g_lam, rng: np.random.Generator):
    """Fourth-order central differences of the float64 loss:
    f'(x) ~ (-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / (12 h), h = FD_H."""
    base = {k: torch.tensor(v, dtype=torch.float64) for k, v in W.items()}
    lam64 = torch.tensor(lam, dtype=torch.float64)
    ids_t = torch.from_numpy(ids)

    def f(name, idx, delta):
        if name == "lambda":
            l2 = lam64.clone()
            l2[idx] += delta
            return float(mean_loss(cfg, base, ids_t, l2))
        w2 = dict(base)
        t = base[name].clone()
        t[idx] += delta
        w2[name] = t
        return float(mean_loss(cfg, w2, ids_t, lam64))

    rows = []
    items = [(k, grads[k].numpy()) for k in W] + [("lambda", g_lam.numpy())]
    for name, g in items:
        coords = [np.unravel_index(int(np.argmax(np.abs(g))), g.shape)]
        flat = rng.choice(g.size, size=min(FD_RANDOM, g.size), replace=False)
        coords += [np.unravel_index(int(i), g.shape) for i in sorted(flat)]
        worst_rel, worst_abs, worst_at, zeros = 0.0, 0.0, None, 0
        for c in coords:
            c = tuple(int(x) for x in c)
            h = FD_H
            fd = (-f(name, c, 2 * h) + 8 * f(name, c, h) - 8 * f(name, c, -h) + f(name, c, -2 * h)) / (12 * h)
            ad = float(g[c])
            a = abs(ad - fd)
            worst_abs = max(worst_abs, a)
            if max(abs(ad), abs(fd)) < ZERO:
                zeros += 1
                continue
            r = a / max(abs(ad), abs(fd))
            if r >= worst_rel:
                worst_rel, worst_at = r, (c, ad, fd)
        rows.append((name, len(coords), worst_rel, worst_abs, float(np.abs(g).max()), worst_at, zeros))
    return rows


def lambda_identity(cfg, W: dict[str, np.ndarray], lam: np.ndarray, grads: dict, g_lam) -> float:
    """max |dL/dlam - (1/lam) sum_{rows of head h} W_q * dL/dW_q| / max|dL/dlam|."""
    worst = 0.0
    for li in range(cfg.layers):
        k = f"model.layers.{li}.self_attn.q_proj.weight"
        wq = torch.tensor(W[k], dtype=torch.float64).view(cfg.heads, cfg.head_dim, -1)
        gq = grads[k].view(cfg.heads, cfg.head_dim, -1)
        pred = (wq * gq).sum((1, 2)) / torch.tensor(lam[li], dtype=torch.float64)
        worst = max(worst, float((pred - g_lam[li]).abs().max()))
    return worst / float(g_lam.abs().max())


def save_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """As make_engine_goldens.save_safetensors, but keeps 0-d arrays 0-d (np.ascontiguousarray makes them [1])."""
    save_file({k: (v.copy() if v.ndim == 0 else np.ascontiguousarray(v)) for k, v in tensors.items()}, str(path),
              metadata={"format": "pt"})
    path.chmod(0o644)


# ---------------------------------------------------------------------------------------------


GOLDEN_DOC = {
    "input_ids": "I32 [B, T] token ids; positions 0..T-1 in every row",
    "lambda": "F32 [L, H] per-head temperatures: logits of head h = lambda[l, h] * q.k / sqrt(head_dim), "
              "applied to the query after q-norm and RoPE",
    "loss": "F32 [] mean over all B*(T-1) predictions of -log_softmax(logits[b, t])[input_ids[b, t+1]] (nats)",
    "grad.<hf name>": "F32, shape of the weight: d loss / d weight (float64 autograd, rounded)",
    "grad.lambda": "F32 [L, H] d loss / d lambda",
}


def build_case(idx: int, case: dict, do_crosscheck: bool, lines: list[str]) -> None:
    name = case["name"]
    seed = 2000 + idx
    rng = np.random.default_rng(seed)
    cfg = ref_config(case)
    W = meg.make_weights(cfg, rng)
    ids = rng.integers(0, VOCAB, size=(BATCH, case["T"])).astype(np.int32)
    lam = meg.make_lambda({"lam": "all" if case["lam"] else None}, cfg, rng)

    loss, grads, g_lam = loss_and_grads(cfg, W, ids, lam, torch.float64)

    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    mcase = {"model_type": "llama"}
    meg.write_json(folder / "config.json", meg.config_json(mcase, cfg))
    meg.save_safetensors(folder / "model.safetensors", W)
    golden = {"input_ids": ids, "lambda": lam, "loss": np.array(float(loss), dtype=np.float32)}
    for k in W:
        golden["grad." + k] = grads[k].float().numpy()
    golden["grad.lambda"] = g_lam.float().numpy()
    save_safetensors(folder / "golden.safetensors", golden)

    # the written folder must round-trip to the same config and weights
    cfg2, W2, ids2, lam2 = load_case(folder)
    assert cfg2 == cfg, (cfg2, cfg)
    assert all(np.array_equal(W[k], W2[k]) for k in W) and set(W) == set(W2)
    assert np.array_equal(ids, ids2) and np.array_equal(lam, lam2)
    assert load_file(str(folder / "golden.safetensors"))["loss"].shape == ()

    size = sum(f.stat().st_size for f in folder.iterdir())
    print(f"{name}: loss {float(loss):.6f}, {size / 1024:.0f} KiB", flush=True)
    if not do_crosscheck:
        return

    lines.append(f"{name}: {case['what']}")
    lines.append(f"  B={BATCH} T={case['T']} V={VOCAB} D={cfg.hidden} L={cfg.layers} H={cfg.heads} KV={cfg.kv_heads} "
                 f"hd={cfg.head_dim} I={cfg.intermediate} positions={cfg.positions} seed={seed}")
    lines.append(f"  loss (float64) = {float(loss):.15f}")
    fd_rng = np.random.default_rng(seed + 500)
    rows = fd_check(cfg, W, ids, lam, grads, g_lam, fd_rng)
    lines.append(f"  finite differences (4th-order central, h={FD_H:g}), per tensor: coordinates checked, "
                 "max rel err, max abs err, max|grad| of the tensor")
    for tname, n, r, a, gmax, (c, ad, fd), zeros in rows:
        lines.append(f"    {tname:48s} n={n}  rel {r:.2e}  abs {a:.2e}  max|g| {gmax:.3e}   (worst rel at {list(c)}: "
                     f"autograd {ad:+.10e} fd {fd:+.10e})" + (f"; {zeros} zero-gradient coordinate(s)" if zeros else ""))
    worst = max(rows, key=lambda r: r[2])
    lines.append(f"  => max rel err over {sum(r[1] for r in rows)} coordinates: {worst[2]:.2e} ({worst[0]}); "
                 f"max abs err {max(r[3] for r in rows):.2e}")
    li = lambda_identity(cfg, W, lam, grads, g_lam)
    lines.append(f"  lambda identity dL/dlam[l,h] = sum_(head h rows) W_q*dL/dW_q / lam[l,h]: "
                 f"max|d| / max|dL/dlam| = {li:.2e}")

    loss32, grads32, g_lam32 = loss_and_grads(cfg, W, ids, lam, torch.float32)
    rel = {k: float((grads32[k].double() - grads[k]).abs().max() / grads[k].abs().max()) for k in grads}
    rel["lambda"] = float((g_lam32.double() - g_lam).abs().max() / g_lam.abs().max())
    wk = max(rel, key=rel.get)
    lines.append(f"  float32 autograd (same reference in float32) vs this golden: |loss d| = "
                 f"{abs(float(loss32) - float(loss)):.2e}; max over tensors of max|d| / max|grad| = {rel[wk]:.2e} "
                 f"({wk}); median {float(np.median(list(rel.values()))):.2e}")
    lines.append("")
    print(f"  fd max rel {worst[2]:.2e}, lambda identity {li:.2e}, f32 {rel[wk]:.2e}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-crosscheck", action="store_true", help="skip the finite-difference cross-check")
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    lines = [
        f"Cross-check of fixtures/grads goldens ({MADE_BY}), torch {torch.__version__}, 1 thread.",
        "The goldens: torch autograd, float64, through llama_reference.forward; loss = mean cross-entropy (nats).",
        "Finite differences: f'(x) ~ (-f(x+2h) + 8f(x+h) - 8f(x-h) + f(x-2h)) / (12h) of the float64 loss, one",
        f"  coordinate at a time; per tensor the coordinate with the largest |grad| plus {FD_RANDOM} uniformly random ones",
        f"  (numpy default_rng(seed+500)). rel err = |autograd - fd| / max(|autograd|, |fd|); coordinates where both are",
        f"  below {ZERO:g} count as zero gradients (abs err only; e.g. embedding rows of tokens absent from input_ids). Autograd",
        "  values are float64 (before the rounding to float32 that the golden stores).",
        "float32 line: the same autograd run in float32 (torch CPU); the error a correct float32 backward makes.",
        "",
    ]
    for i, case in enumerate(CASES):
        if args.only and case["name"] not in args.only:
            continue
        build_case(i, case, not args.no_crosscheck, lines)
    if not args.no_crosscheck and not args.only:
        (OUT / "crosscheck.txt").write_text("\n".join(lines))
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"total {total / 1024:.0f} KiB in {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
