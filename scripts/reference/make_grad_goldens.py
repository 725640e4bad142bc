"""Generate the gradient goldens under ``fixtures/grads/``.

Run from the repository root (overwrites what it generates; needs torch,
``pip install -r scripts/reference/requirements-torch.txt``)::

    .venv/bin/python scripts/reference/make_grad_goldens.py [--no-crosscheck] [--only CASE ...] [--out DIR]

For every case it builds a tiny random Llama-family model (same weight recipe as
``make_engine_goldens.py``) and writes ``fixtures/grads/<case>/``:

``config.json`` + ``model.safetensors``
    A Hugging Face checkpoint, same format as ``fixtures/engine`` (F32, HF names, [out, in]; tied
    models have no ``lm_head.weight``; NoPE layers stated by ``"nopekit_position"``; sliding windows
    by ``"layer_types"`` + ``"sliding_window"``; q/k-norm by ``model_type`` ``"qwen3"``, whose
    ``attention_bias`` covers q, k, v and o; MLP biases by ``"mlp_bias"``).
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
- the lambda identity d loss / d lambda[l, h] = (1 / lambda[l, h]) * (sum over the q_proj rows r of
  head h and inputs i of W_q[r, i] * grad W_q[r, i], plus sum over those rows of b_q[r] * grad b_q[r]
  when q_proj has a bias) (valid without q-norm: lambda scales the affine map W_q x + b_q as a whole;
  RoPE is linear so the order does not matter). With q-norm the norm removes any scale of W_q, and
  lambda multiplies the q-norm output, whose weight w (size head_dim) all heads share: scaling w by c
  equals scaling every lambda[l, :] by c, so per layer sum_h lambda[l, h] * d loss / d lambda[l, h] =
  sum_d w[d] * d loss / d w[d];
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
    dict(name="qknorm_bias_lambda",
         what="Qwen3-style per-head q/k RMSNorm (q_norm/k_norm weights [head_dim], before RoPE; lambda after it), "
              "4 heads / 2 KV heads (head_dim 8), every layer NoPE, attention_bias (q, k, v and o biases) and "
              "mlp_bias (gate, up, down biases), untied, lambda != 1",
         model_type="qwen3", hidden=32, layers=2, heads=4, kv_heads=2, intermediate=64, T=19,
         positions=["none", "none"], lam=True, qk_norm=True, attention_bias=True, mlp_bias=True),
    dict(name="window_hybrid_lambda",
         what="Llama, 4 layers, 4 heads / 2 KV heads (head_dim 8): layers 0 and 2 RoPE theta 10000 with a sliding "
              "window of 8 keys (query i sees keys i-7..i), layers 1 and 3 NoPE with global causal attention "
              "(nopekit_position \"layers:1,3\", layer_types + sliding_window 8), T = 40 > window, untied, "
              "lambda != 1",
         hidden=32, layers=4, heads=4, kv_heads=2, intermediate=64, T=40, positions=["rope", "none", "rope", "none"],
         windows=[8, None, 8, None], lam=True),
]


def ref_config(case: dict) -> ref.RefConfig:
    return ref.RefConfig(vocab=VOCAB, hidden=case["hidden"], layers=case["layers"], heads=case["heads"],
                         kv_heads=case["kv_heads"], head_dim=case["hidden"] // case["heads"],
                         intermediate=case["intermediate"], norm_eps=1e-5, tied=case.get("tied", False),
                         attention_bias=case.get("attention_bias", False), mlp_bias=case.get("mlp_bias", False),
                         qk_norm=case.get("qk_norm", False), positions=list(case["positions"]),
                         rope=ref.RopeSpec(theta=10000.0), windows=list(case.get("windows", [])))


def windows_from_json(conf: dict, L: int) -> list[int | None]:
    """Per-layer sliding windows as nopekit decodes them (``ModelConfig.decodeWindows``, as transformers
    assigns them): ``layer_types`` where given ("sliding_attention" layers get ``sliding_window``, any
    other type is global), for any model type; otherwise Mistral's ``sliding_window`` on every layer, and
    Qwen 2/3 / SmolLM3's on layers >= ``max_window_layers`` when ``use_sliding_window``. [] = all global."""
    window = conf.get("sliding_window")
    types = conf.get("layer_types")
    if types is not None:
        if len(types) != L:
            raise ValueError(f"layer_types names {len(types)} layers, the model has {L}")
        if "sliding_attention" in types and not window:
            raise ValueError("layer_types has sliding_attention layers but no sliding_window size")
        return [window if t == "sliding_attention" else None for t in types]
    if not window:
        return []
    mt = conf.get("model_type")
    if mt == "mistral":
        return [window] * L
    if mt in ("qwen2", "qwen3", "smollm3") and conf.get("use_sliding_window"):
        first = max(0, conf.get("max_window_layers") or 0)
        return [window if i >= first else None for i in range(L)]
    return []


def config_from_json(conf: dict) -> ref.RefConfig:
    """RefConfig of one of our folders (Llama or Qwen3 config.json with nopekit_position, optional
    layer_types + sliding_window)."""
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
                         qk_norm=conf.get("model_type") == "qwen3" or bool(conf.get("use_qk_norm", False)),
                         positions=positions, rope=ref.RopeSpec(theta=conf.get("rope_theta", 10000.0)),
                         windows=windows_from_json(conf, L))


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
    """Without q-norm: max |dL/dlam - (1/lam) (sum_{rows of head h} W_q * dL/dW_q [+ b_q * dL/db_q])| / max|dL/dlam|.

    With q-norm (``qk_norm_lambda_identity``): per layer, sum_h lam * dL/dlam against q_norm.w . dL/dq_norm.w."""
    if cfg.qk_norm:
        return qk_norm_lambda_identity(cfg, W, lam, grads, g_lam)
    worst = 0.0
    for li in range(cfg.layers):
        k = f"model.layers.{li}.self_attn.q_proj.weight"
        wq = torch.tensor(W[k], dtype=torch.float64).view(cfg.heads, cfg.head_dim, -1)
        gq = grads[k].view(cfg.heads, cfg.head_dim, -1)
        s = (wq * gq).sum((1, 2))
        kb = f"model.layers.{li}.self_attn.q_proj.bias"
        if kb in W:  # lambda scales W_q x + b_q, so the bias joins the sum
            s = s + (torch.tensor(W[kb], dtype=torch.float64).view(cfg.heads, cfg.head_dim)
                     * grads[kb].view(cfg.heads, cfg.head_dim)).sum(1)
        pred = s / torch.tensor(lam[li], dtype=torch.float64)
        worst = max(worst, float((pred - g_lam[li]).abs().max()))
    return worst / float(g_lam.abs().max())


def qk_norm_lambda_identity(cfg, W: dict[str, np.ndarray], lam: np.ndarray, grads: dict, g_lam) -> float:
    """q = lam[h] * rope(rmsnorm(q_raw[h]) * w), w = q_norm.weight shared by all heads. The norm makes
    the loss blind to the scale of W_q and b_q, but w -> c w has the same effect as lam[l, :] -> c lam[l, :],
    so d/dc at c = 1 gives, per layer, sum_h lam[l, h] dL/dlam[l, h] = sum_d w[d] dL/dw[d].
    Returns max over layers |lhs - rhs| / max over layers sum_h |lam[l, h] dL/dlam[l, h]|."""
    lam64 = torch.tensor(lam, dtype=torch.float64)
    worst, scale = 0.0, 0.0
    for li in range(cfg.layers):
        k = f"model.layers.{li}.self_attn.q_norm.weight"
        rhs = float((torch.tensor(W[k], dtype=torch.float64) * grads[k]).sum())
        lhs = float((lam64[li] * g_lam[li]).sum())
        worst = max(worst, abs(lhs - rhs))
        scale = max(scale, float((lam64[li] * g_lam[li]).abs().sum()))
    return worst / scale


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
    mcase = {"model_type": case.get("model_type", "llama")}
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
    flags = "".join(f" {k}" for k in ("attention_bias", "mlp_bias", "qk_norm") if getattr(cfg, k))
    lines.append(f"  B={BATCH} T={case['T']} V={VOCAB} D={cfg.hidden} L={cfg.layers} H={cfg.heads} KV={cfg.kv_heads} "
                 f"hd={cfg.head_dim} I={cfg.intermediate} positions={cfg.positions} seed={seed}"
                 + (f" windows={cfg.windows}" if cfg.windows else "") + flags)
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
    if cfg.qk_norm:
        lines.append(f"  lambda identity (q-norm) sum_h lam[l,h]*dL/dlam[l,h] = sum_d q_norm.w[d]*dL/dq_norm.w[d] per layer: "
                     f"max|d| / max_l sum_h |lam*dL/dlam| = {li:.2e}")
    elif cfg.attention_bias:
        lines.append(f"  lambda identity dL/dlam[l,h] = (sum_(head h rows) W_q*dL/dW_q + b_q*dL/db_q) / lam[l,h]: "
                     f"max|d| / max|dL/dlam| = {li:.2e}")
    else:
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


def set_out(path: Path) -> None:
    global OUT
    OUT = path.resolve()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-crosscheck", action="store_true", help="skip the finite-difference cross-check")
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    ap.add_argument("--out", type=Path, help=f"output folder (default {OUT.relative_to(REPO)}), e.g. a scratch "
                                             "folder to compare a full run with the committed fixtures")
    args = ap.parse_args()
    unknown = set(args.only or []) - {c["name"] for c in CASES}
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    if args.out is not None:
        set_out(args.out)
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
    header = len(lines)
    for i, case in enumerate(CASES):
        if args.only and case["name"] not in args.only:
            continue
        build_case(i, case, not args.no_crosscheck, lines)
    if not args.no_crosscheck and not args.only:
        (OUT / "crosscheck.txt").write_text("\n".join(lines))
    elif not args.no_crosscheck:  # a partial run leaves crosscheck.txt alone and shows its sections here
        print("\n".join(lines[header:]))
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"total {total / 1024:.0f} KiB in {OUT.relative_to(REPO) if OUT.is_relative_to(REPO) else OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
