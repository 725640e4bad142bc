"""Generate the golden file for the verification metrics under ``fixtures/verify/``.

Run from the repository root (overwrites the two files it writes; needs torch, transformers and tokenizers,
``pip install -r scripts/reference/requirements-torch.txt``)::

    .venv/bin/python scripts/reference/make_verify_fixtures.py

It writes:

``fixtures/verify/organism.temps.json``
    A fixed ``nopekit.temperatures/1`` table for the model organism (``fixtures/organism``: Llama, 4 layers,
    6 heads of 32, every layer NoPE). The scales are multiples of 1/16 between 1 and 2.5 (exact in float32);
    layer 1 is ``null`` (all 1). λ[l][h] multiplies the attention logits of head h in layer l.
``fixtures/verify/expected.json``
    What nopekit's verification metrics must produce on the organism, computed with the float64 reference
    forward of ``llama_reference.py``:

    - ``perplexity``: two protocols over the byte ids of ``fixtures/verify/eval.txt``. ``sliding`` is the
      HeadScale paper's run_ppl.py (windows ``ids[end-L:end]`` for ``end in range(L, N+1, S)``, only the last
      S targets of each window scored, no BOS). ``chunks`` is llama.cpp's perplexity (chunk c is
      ``ids[c*L:(c+1)*L]`` with its first token replaced by BOS; the targets at positions L//2+1 .. L-1 are
      scored). Windows are taken in order until the number of scored tokens reaches the budget
      (``max_tokens``; whole windows only). Each case gives the number of windows, of scored tokens, the mean
      negative log-likelihood, the perplexity and llama.cpp's standard error of the perplexity.
    - ``entropy``: the mean attention entropy (bits) per layer and head over the first 4 chunks of the
      ``chunks`` protocol, all query positions.
    - ``passkey``: prompt and answer token ids of the passkey construction (SplitMix64 keys, depths and filler
      draws, binary search for the filler count) for three tokenizers.

The script checks its own numbers (assertions, see ``self_checks``): the per-token losses against
``torch.nn.functional.cross_entropy`` and against ``llama_reference``'s own losses, batched against unbatched
windows, budgeted cases against prefixes of the unbudgeted ones, entropies against ``0 ≤ H ≤ log2(position+1)``,
and one chunk's logits (with the temperatures) against transformers' ``SmolLM3ForCausalLM`` with
``no_rope_layers`` all 0 (NoPE) in float64 with ``make_engine_goldens``' precision patches.

Deterministic: fixed table, fixed seeds, float64 maths, one thread. About 40 s (peak RSS about 1 GB).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tokenizers
import torch
from safetensors.numpy import load_file
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_reference as ref  # noqa: E402
import make_engine_goldens as meg  # noqa: E402  (transformers cross-check helpers)
import make_grad_goldens as mgg  # noqa: E402  (config_from_json: config.json with nopekit_position -> RefConfig)

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "fixtures" / "verify"
MODEL = REPO / "fixtures" / "organism"
EVAL_TEXT = OUT / "eval.txt"
MADE_BY = "scripts/reference/make_verify_fixtures.py"

torch.set_num_threads(1)  # deterministic, and leaves the other core alone

BOS = 256  # the organism's BOS id (config.json bos_token_id; its tokenizer maps byte b to id b)
STRIDE = 32  # sliding-window stride S
LENGTHS = (64, 160)  # window lengths L of the perplexity and entropy cases
DEFAULT_MAX_TOKENS = 640  # budget of the cases without an explicit budget (keeps the Swift debug-build test short)
BUDGET_LENGTH, BUDGET_MAX_TOKENS = 64, 200  # the explicit-budget cases
ENTROPY_WINDOWS = 4
BATCH = 16  # windows per forward call (only speed; checked not to change the numbers)

# ---------------------------------------------------------------------------------------------
# the temperature table

# fixed λ per layer and head: multiples of 1/16 in [1, 2.5], so exact in float32; layer 1 is null (= all 1)
SCALES = [
    [1.0, 1.25, 1.5, 2.0, 1.125, 1.75],
    None,
    [1.0625, 2.5, 1.0, 1.375, 1.5, 1.1875],
    [1.3125, 1.0, 2.25, 1.5625, 1.0, 1.4375],
]


def temperature_table(cfg: ref.RefConfig) -> dict:
    """The table in nopekit's ``nopekit.temperatures/1`` format (key order as nopekit writes it)."""
    assert len(SCALES) == cfg.layers and all(s is None or len(s) == cfg.heads for s in SCALES)
    for s in SCALES:
        for x in s or []:
            assert 1.0 <= x <= 2.5 and (x * 16).is_integer() and float(np.float32(x)) == x
    return {"format": "nopekit.temperatures/1", "method": "headscale",
            "model": {"architecture": "llama", "layers": cfg.layers, "heads": cfg.heads, "head_dim": cfg.head_dim},
            "training_length": 256, "target_length": 1024, "scales": SCALES, "search": {}}


def lambda_of(table: dict, cfg: ref.RefConfig) -> torch.Tensor:
    """λ [L, H] float64 from a table: a null layer is all 1."""
    rows = [s if s is not None else [1.0] * cfg.heads for s in table["scales"]]
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# perplexity


def windows_of(protocol: str, ids: list[int], L: int) -> tuple[list[list[int]], slice]:
    """All windows of a protocol, in order, as token lists of length L, and the slice of the per-position
    losses (loss[t] = -log p(window[t+1] | window[:t+1]), t = 0..L-2) that each window scores."""
    N = len(ids)
    if protocol == "sliding":
        # run_ppl.py: ids[end-L:end] for end in range(L, N+1, S); the last S targets (positions L-S .. L-1),
        # i.e. losses at t = L-S-1 .. L-2. No BOS.
        wins = [ids[end - L:end] for end in range(L, N + 1, STRIDE)]
        return wins, slice(L - STRIDE - 1, L - 1)
    if protocol == "chunks":
        # llama.cpp perplexity: chunk c = ids[c*L:(c+1)*L] with its first token replaced by BOS; the losses
        # at j = L//2 .. L-2 (logits at j predict token j+1), L-1-L//2 per chunk.
        wins = [[BOS] + ids[c * L + 1:(c + 1) * L] for c in range(N // L)]
        return wins, slice(L // 2, L - 1)
    raise ValueError(protocol)


def take_budget(n_windows: int, per_window: int, max_tokens: int | None) -> int:
    """How many windows to take: in order, stopping before the next one once ≥ max_tokens are scored
    (whole windows only, so the last one may overshoot). None = all."""
    taken = scored = 0
    while taken < n_windows and (max_tokens is None or scored < max_tokens):
        taken += 1
        scored += per_window
    return taken


def token_losses(cfg, W, batch: list[list[int]], lam: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Per-position losses [B, T-1] (nats) as logsumexp(logits) - logit[target], in float64, and the forward."""
    x = torch.tensor(batch, dtype=torch.long)
    out = ref.forward(cfg, W, x, lam=lam)
    logits = out["logits"][:, :-1, :]
    tgt = x[:, 1:]
    losses = torch.logsumexp(logits, dim=-1) - logits.gather(-1, tgt[..., None])[..., 0]
    return losses, out


def perplexity_case(cfg, W, ids, protocol: str, L: int, lam: torch.Tensor | None, max_tokens: int | None) -> tuple[dict, np.ndarray]:
    wins, sl = windows_of(protocol, ids, L)
    per = sl.stop - sl.start
    n = take_budget(len(wins), per, max_tokens)
    nll = []
    for b in range(0, n, BATCH):
        losses, _ = token_losses(cfg, W, wins[b:min(n, b + BATCH)], lam)
        nll.append(losses[:, sl].reshape(-1))  # window-major, position order within a window
    nll = torch.cat(nll).numpy()
    assert nll.dtype == np.float64 and len(nll) == n * per
    mean = float(nll.mean())
    ppl = math.exp(mean)
    # llama.cpp: se(ppl) = ppl * sqrt((<nll^2> - <nll>^2) / (count - 1))
    var = float((nll * nll).mean()) - mean * mean
    se = ppl * math.sqrt(var / (len(nll) - 1))
    case = {"protocol": protocol, "length": L}
    if protocol == "sliding":
        case["stride"] = STRIDE
    case.update({"temps": lam is not None, "max_tokens": max_tokens, "windows": n, "scored": len(nll),
                 "mean_nll": mean, "perplexity": ppl, "standard_error": se,
                 "nll_first": [float(v) for v in nll[:4]]})
    return case, nll


# ---------------------------------------------------------------------------------------------
# attention entropy


def entropy_case(cfg, W, ids, L: int, lam: torch.Tensor | None) -> dict:
    wins, _ = windows_of("chunks", ids, L)
    x = torch.tensor(wins[:ENTROPY_WINDOWS], dtype=torch.long)
    ent = ref.forward(cfg, W, x, lam=lam)["entropy"]  # [layers, B, H, T] bits
    # a query at position i sees i+1 keys, so 0 <= H <= log2(i+1)
    bound = torch.log2(torch.arange(1, L + 1, dtype=torch.float64))
    assert (ent >= -1e-12).all() and (ent <= bound + 1e-12).all(), "entropy outside [0, log2(position+1)]"
    mean = ent.mean(dim=(1, 3))  # [layers, H]
    return {"length": L, "temps": lam is not None, "windows": ENTROPY_WINDOWS, "log2_length": math.log2(L),
            "mean_bits": [[float(v) for v in row] for row in mean]}


# ---------------------------------------------------------------------------------------------
# passkey prompts

MASK64 = (1 << 64) - 1


class SplitMix64:
    """SplitMix64 over uint64 (all arithmetic mod 2^64); state = seed."""

    def __init__(self, seed: int):
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


HEADSCALE_TEMPLATE = {
    "task": "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
            "I will quiz you about the important information there.",
    "filler": [" The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."],
    "needle": "\nThe pass key is {key}. Remember it. {key} is the pass key.\n",
    "question": "\nWhat is the pass key? The pass key is",
    "answer_prefix": " ",
}
TEMPLATE_FIELDS = ("task", "filler", "needle", "question", "answer_prefix")


class PromptBuilder:
    """text(n) and count(n) of one prompt (fixed key, depth fraction and filler stream)."""

    def __init__(self, tok: Tokenizer, template: dict, key: int, fraction: float, filler_seed: int):
        self.tok, self.t, self.key, self.fraction = tok, template, key, fraction
        self.rng = SplitMix64(filler_seed)
        self.fillers: list[str] = []  # slot j = pool[g.next() % len(pool)], drawn sequentially

    def filler(self, n: int) -> list[str]:
        pool = self.t["filler"]
        while len(self.fillers) < n:
            self.fillers.append(pool[self.rng.next() % len(pool)])
        return self.fillers[:n]

    def k(self, n: int) -> int:
        return math.floor(n * self.fraction)

    def text(self, n: int) -> str:
        f, k = self.filler(n), self.k(n)
        needle = self.t["needle"].replace("{key}", str(self.key))
        return self.t["task"] + "".join(f[:k]) + needle + "".join(f[k:n]) + self.t["question"]

    def count(self, n: int) -> int:
        return len(self.tok.encode(self.text(n)).ids)  # add_special_tokens=True

    def fit(self, length: int) -> int:
        """The largest filler count n with count(n) <= length (doubling, then bisection)."""
        if self.count(0) > length:
            raise ValueError(f"count(0) = {self.count(0)} > length {length}")
        hi = 1
        while self.count(hi) <= length:
            hi *= 2
        lo = hi // 2 if hi > 1 else 0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.count(mid) <= length:
                lo = mid
            else:
                hi = mid
        return lo


def passkey_prompts(tok: Tokenizer, template: dict, lengths: list[int], trials: int, seed: int) -> list[dict]:
    main = SplitMix64(seed)
    prompts = []
    for length in lengths:
        for d in range(10):
            for t in range(trials):
                key = 10000 + main.next() % 90000
                u = (main.next() >> 11) / 2**53
                filler_seed = main.next()
                fraction = (d + u) / 10
                pb = PromptBuilder(tok, template, key, fraction, filler_seed)
                n = pb.fit(length)
                text = pb.text(n)
                prompt = tok.encode(text).ids
                full = tok.encode(text + template["answer_prefix"] + str(key)).ids
                fallback = full[:len(prompt)] != prompt  # the answer's tokens merged into the prompt's tail
                if not fallback:
                    answer = full[len(prompt):]
                else:
                    answer = tok.encode(template["answer_prefix"] + str(key), add_special_tokens=False).ids
                assert len(prompt) <= length and pb.count(n + 1) > length
                prompts.append({"length": length, "depth": d, "trial": t, "key": key, "fraction": fraction,
                                "filler_seed": str(filler_seed), "n": n, "k": pb.k(n),
                                "prompt_ids": prompt, "answer_ids": answer, "answer_fallback": fallback})
    return prompts


def passkey_section() -> dict:
    organism_template = json.loads((MODEL / "passkey_prompt.json").read_text())
    organism_template = {f: organism_template[f] for f in TEMPLATE_FIELDS}
    # The brief asked for lengths [128, 300] (organism) and [96, 200] (the others); the shortest prompt,
    # count(0), is 244 / 153 / about 130 tokens, so 128 and 96 cannot hold one. They are recorded under "errors"
    # (the construction must refuse them) and 512 replaces them. At 200 spm_metaspace fits no filler (n = 0).
    specs = [
        ("organism", "fixtures/organism/tokenizer.json", organism_template, [300, 512], 2, 42, 128),
        ("spm_metaspace", "fixtures/tokenizers/spm_metaspace/tokenizer.json", HEADSCALE_TEMPLATE, [200, 512], 2, 7, 96),
        ("bytelevel_llama3", "fixtures/tokenizers/bytelevel_llama3/tokenizer.json", HEADSCALE_TEMPLATE, [200, 512], 2, 7, 96),
    ]
    cases, errors = [], []
    for name, path, template, lengths, trials, seed, too_short in specs:
        tok = Tokenizer.from_file(str(REPO / path))
        cases.append({"name": name, "tokenizer": path, "template": template, "lengths": lengths,
                      "trials": trials, "seed": seed,
                      "prompts": passkey_prompts(tok, template, lengths, trials, seed)})
        # a length below count(0): the construction must refuse (the first prompt already fails)
        try:
            passkey_prompts(tok, template, [too_short], trials, seed)
            raise AssertionError(f"length {too_short} should not fit {name}")
        except ValueError as e:
            errors.append({"name": name, "tokenizer": path, "lengths": [too_short], "trials": trials, "seed": seed,
                           "error": str(e)})
    g = SplitMix64(42)
    rng_check = {"seed": "42", "first": [str(g.next()) for _ in range(4)]}
    return {"splitmix64": rng_check, "cases": cases, "errors": errors}


# ---------------------------------------------------------------------------------------------
# self checks


def self_checks(cfg, W, Wnp: dict, ids, lam: torch.Tensor, results: dict) -> list[str]:
    """Independent paths for the numbers above; returns one line per check (all are asserted)."""
    import torch.nn.functional as F

    lines = []
    # 1. one chunk (L = 160, with λ): losses = cross_entropy, = llama_reference's log_softmax losses,
    #    and the same whether the window runs alone or in a batch
    wins, sl = windows_of("chunks", ids, 160)
    losses, out = token_losses(cfg, W, wins[2:3], lam)
    x = torch.tensor(wins[2:3], dtype=torch.long)
    ce = F.cross_entropy(out["logits"][0, sl], x[0, sl.start + 1:sl.stop + 1], reduction="sum")
    mine = losses[0, sl].sum()
    assert abs(float(mine - ce)) <= 1e-12 * float(ce), (float(mine), float(ce))
    assert torch.allclose(losses, out["losses"], rtol=0, atol=1e-12)
    batched, _ = token_losses(cfg, W, wins[0:BATCH], lam)
    assert torch.allclose(batched[2], losses[0], rtol=0, atol=1e-12)
    lines.append(f"chunk 2, L 160, λ: sum loss {float(mine):.12f} = cross_entropy {float(ce):.12f}; "
                 f"matches reference losses and the batched run (≤ 1e-12)")

    # 2. budgeted cases = prefixes of the unbudgeted ones
    for protocol in ("sliding", "chunks"):
        for temps in (False, True):
            full = results[(protocol, BUDGET_LENGTH, temps, DEFAULT_MAX_TOKENS)]
            part = results[(protocol, BUDGET_LENGTH, temps, BUDGET_MAX_TOKENS)]
            assert np.array_equal(full[:len(part)], part)
    lines.append("budgeted cases are prefixes of the unbudgeted ones")

    # 3. transformers: SmolLM3ForCausalLM, no_rope_layers all 0 (NoPE), float64, eager, make_engine_goldens'
    #    precision patches, λ baked into q_proj rows; same chunk
    import transformers
    transformers.utils.logging.disable_progress_bar()
    # build_hf reads the folder's config.json; the organism's has no pad_token_id, and SmolLM3's default
    # (128004) lies outside the vocabulary, so hand it a copy with pad_token_id null
    with tempfile.TemporaryDirectory() as tmp:
        conf = json.loads((MODEL / "config.json").read_text())
        (Path(tmp) / "config.json").write_text(json.dumps({**conf, "pad_token_id": None}))
        hf, _, desc = meg.run_hf({"name": "organism", "model_type": "llama"}, cfg, Wnp, Path(tmp), x.numpy(), lam,
                                 dtype=torch.float64, attn="eager", precise=True)
    d = float((hf.logits - out["logits"]).abs().max())
    assert d < 1e-10, d
    lines.append(f"transformers {transformers.__version__} {desc}, float64 precise, λ baked: max|Δlogits| {d:.1e}")
    return lines


# ---------------------------------------------------------------------------------------------
# output


def dump(obj, indent: int = 0) -> str:
    """JSON with objects one key per line and lists of scalars (and lists of such lists) on one line."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {dump(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        flat = all(not isinstance(v, (dict, list)) for v in obj)
        rows = all(isinstance(v, list) and all(not isinstance(u, (dict, list)) for u in v) for v in obj)
        if flat or rows:
            return json.dumps(obj, ensure_ascii=False)
        return "[\n" + ",\n".join(inner + dump(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


DOC = {
    "model": "The model folder (Llama, every layer NoPE, F32 weights); every number comes from llama_reference.forward in float64.",
    "temperatures": "The temperature table written beside this file; lambda is it as [layers][heads] (null layer = 1), multiplying each head's attention logits.",
    "eval": "The evaluation stream: ids = organism tokenizer encode(eval.txt, add_special_tokens=False); tokens is its length N and first_ids its first 8 ids.",
    "perplexity": "One record per case: protocol (sliding = run_ppl.py windows ids[end-L:end], end in range(L, N+1, stride), last stride targets scored, no BOS; chunks = llama.cpp, ids[c*L:(c+1)*L] with the first token replaced by bos, losses at positions L//2..L-2 scored), length L, stride (sliding only), temps (whether lambda is applied), max_tokens (windows are taken in order until at least max_tokens are scored, whole windows; cases without an explicit budget use default_max_tokens), windows (how many were used), scored (token count), mean_nll (nats, loss = logsumexp(logits) - logit[target]), perplexity = exp(mean_nll), standard_error = perplexity * sqrt((mean(nll^2) - mean_nll^2) / (scored - 1)), nll_first (the first 4 scored losses, for debugging).",
    "default_max_tokens": "The budget of the cases given no explicit budget, which keeps the Swift test (a debug build) short.",
    "entropy": "Per length L and temps: the attention entropy in bits (-sum p log2 p over the keys a query sees) of the first `windows` chunks of the chunks protocol, mean over those windows and all L query positions, as mean_bits [layers][heads]; log2_length = log2(L), the uniform-attention entropy of the last query.",
    "passkey": "Prompt and answer token ids of the passkey construction: splitmix64 gives the first outputs of SplitMix64(seed) as decimal strings; each case names its tokenizer, template, lengths, trials and seed and lists per prompt (length, depth, trial order) the key, fraction = (depth + u) / 10, filler_seed (decimal string), n fillers, k = floor(n * fraction) fillers before the needle, prompt_ids, answer_ids and answer_fallback (true when encode(text + answer_prefix + key) does not start with prompt_ids, so answer_ids is encode(answer_prefix + key) without special tokens); errors lists grids that must be refused because count(0) exceeds a length.",
    "self_checks": "What the generating script verified before writing this file (all asserted).",
}


def main() -> int:
    t0 = time.time()
    cfg = mgg.config_from_json(json.loads((MODEL / "config.json").read_text()))
    assert cfg.positions == ["none"] * 4 and (cfg.layers, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.vocab) == (4, 6, 2, 32, 258)
    W = load_file(str(MODEL / "model.safetensors"))
    Wt = {k: torch.from_numpy(v).to(torch.float64) for k, v in W.items()}

    table = temperature_table(cfg)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "organism.temps.json").write_text(json.dumps(table) + "\n")
    lam = lambda_of(table, cfg)

    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    ids = tok.encode(EVAL_TEXT.read_text(), add_special_tokens=False).ids
    assert all(0 <= i < 256 for i in ids)

    # perplexity: per protocol and length, without and with λ; then the explicit budget
    plan = []
    for protocol in ("sliding", "chunks"):
        for L in LENGTHS:
            for temps in (False, True):
                plan.append((protocol, L, temps, DEFAULT_MAX_TOKENS))
    for protocol in ("sliding", "chunks"):
        for temps in (False, True):
            plan.append((protocol, BUDGET_LENGTH, temps, BUDGET_MAX_TOKENS))
    ppl, nlls = [], {}
    for protocol, L, temps, max_tokens in plan:
        case, nll = perplexity_case(cfg, Wt, ids, protocol, L, lam if temps else None, max_tokens)
        ppl.append(case)
        nlls[(protocol, L, temps, max_tokens)] = nll
    t_ppl = time.time() - t0

    entropy = [entropy_case(cfg, Wt, ids, L, lam if temps else None) for L in LENGTHS for temps in (False, True)]
    passkey = passkey_section()
    checks = self_checks(cfg, Wt, W, ids, lam, nlls)

    expected = {
        "made_by": MADE_BY,
        "versions": {"torch": torch.__version__, "tokenizers": tokenizers.__version__, "numpy": np.__version__},
        "doc": DOC,
        "model": "fixtures/organism",
        "temperatures": "fixtures/verify/organism.temps.json",
        "lambda": lam.tolist(),
        "eval": {"text": "fixtures/verify/eval.txt", "tokenizer": "fixtures/organism/tokenizer.json",
                 "bos": BOS, "tokens": len(ids), "first_ids": ids[:8]},
        "default_max_tokens": DEFAULT_MAX_TOKENS,
        "perplexity": ppl,
        "entropy": entropy,
        "passkey": passkey,
        "self_checks": checks,
    }
    path = OUT / "expected.json"
    path.write_text(dump(expected) + "\n")
    size = path.stat().st_size
    assert size < 1_000_000, size

    print(f"eval: N = {len(ids)} tokens, first ids {ids[:8]}")
    for c in ppl:
        print(f"  {c['protocol']:7s} L {c['length']:3d} temps {str(c['temps']):5s} max {str(c['max_tokens']):4s} "
              f"windows {c['windows']:3d} scored {c['scored']:5d}  ppl {c['perplexity']:.6f} ± {c['standard_error']:.6f}")
    for e in entropy:
        means = [sum(r) / len(r) for r in e["mean_bits"]]
        print(f"  entropy L {e['length']:3d} temps {str(e['temps']):5s} per-layer mean bits "
              + " ".join(f"{m:.3f}" for m in means) + f" (log2 L {e['log2_length']:.3f})")
    for c in passkey["cases"]:
        p = c["prompts"][0]
        print(f"  passkey {c['name']}: {len(c['prompts'])} prompts; first: key {p['key']} n {p['n']} k {p['k']} "
              f"len(prompt) {len(p['prompt_ids'])} answer {p['answer_ids']}; "
              f"{sum(q['answer_fallback'] for q in c['prompts'])} answers by the fallback")
    for line in checks:
        print(f"  check: {line}")
    print(f"wrote {path.relative_to(REPO)} ({size / 1024:.0f} KiB) and organism.temps.json; "
          f"perplexity {t_ppl:.1f} s, total {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
