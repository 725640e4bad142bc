"""Dev-time check of ``nopekit convert`` (HF <-> GGUF) with transformers and our float64 reference.

Not part of CI (needs torch + transformers, ``pip install -r scripts/reference/requirements-torch.txt``).
Usage, from the repository root::

    .venv/bin/python scripts/reference/check_convert_transformers.py \
        --nopekit .build/debug/nopekit --workdir /tmp/check-convert-tf [--only CASE,CASE] [--timeout 120]

Sources: the same folders as scripts/interop/check_convert.py builds (fixtures/engine/*,
fixtures/organism, and its synthetic kq / mistral / qwen2 / qwen3_rope / tok_* cases), written to
WORKDIR/src. For every source nopekit converts (cwd = WORKDIR)::

    NOPEKIT convert src/CASE gguf/CASE.f32.gguf            NOPEKIT convert gguf/CASE.f32.gguf hf/CASE.f32
    NOPEKIT convert src/CASE gguf/CASE.q8_0.gguf --type q8_0 ...                 hf/CASE.q8_0

and checks:

* logits: transformers (``AutoModelForCausalLM.from_pretrained(hf/CASE.f32, dtype=float32)``; a
  model with NoPE layers comes back as ``smollm3`` with ``no_rope_layers``) against
  ``llama_reference.forward`` in float64 on the SOURCE folder's weights and config (positions from
  nopekit_position / no_rope_layers), |d| <= 1e-4 * max(1, max |ref|) ("1e-4 relative"); input ids
  are the engine golden's where there is one (their lambda is not applied), else seeded;
* the same for hf/CASE.q8_0, with the reference run on that folder's (dequantised) weights and the
  source config (the q8_0 logit drift from the F32 reference is printed as a NOTE);
* where transformers' own GGUF loader knows the architecture (llama, mistral, qwen2, qwen3),
  ``AutoModelForCausalLM.from_pretrained(gguf/, gguf_file=CASE.f32.gguf)`` against the same
  reference: an independent reading of nopekit's HF -> GGUF output (names, Q/K permutation).
  ``from_pretrained(gguf_file=...)`` itself needs accelerate, so the same steps are run by hand
  (AutoConfig from the GGUF, ``load_gguf_checkpoint``, ``load_state_dict``); keys llama.cpp reads but
  transformers 5.24's GGUF config mapping does not (rope.scaling.*, qwen3 attention.key_length,
  attention/mlp bias flags) are taken from the GGUF and named in a NOTE; a GGUF whose general.name
  contains "mistral" is skipped (transformers routes it to a mapping gguf-py lacks);
* tokenizers: for a source with tokenizer.json, transformers' GGUF tokenizer
  (``AutoTokenizer.from_pretrained(dir, gguf_file=...)`` on a vocabulary-only copy of the GGUF's
  tokenizer.* keys labelled llama, since transformers cannot read granite / smollm3 GGUFs) and
  ``AutoTokenizer.from_pretrained(hf/CASE.f32)`` (nopekit's rebuilt tokenizer.json) encode the
  texts of fixtures/tokenizers/bytelevel_llama3/expected.json (+ a few) to the same ids, except
  where transformers' GGUF tokenizer is the odd one out (differs from AutoTokenizer of the original
  folder while nopekit's rebuild does not); the pairwise counts (and PyPI tokenizers on the two
  tokenizer.json files) are printed as NOTEs.

Prints PASS/FAIL/NOTE lines and ends with ``check_convert_transformers: N passed, M failed``; exit 0
iff M == 0.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "scripts" / "interop"))
import llama_reference as ref  # noqa: E402
import check_convert as cc  # noqa: E402
from harness import CheckFail, Runner, expect_success  # noqa: E402

from gguf import GGUFReader, GGUFValueType as VT  # noqa: E402

TF_GGUF_ARCHS = {"llama", "mistral", "qwen2", "qwen3"}
REL_TOL = 1e-4
torch.set_num_threads(1)


def ref_config(spec: cc.Spec) -> ref.RefConfig:
    r = spec.rope
    rs = ref.RopeSpec(theta=spec.theta, rope_type=spec.rope_type, factor=r.get("factor"),
                      low_freq_factor=r.get("low_freq_factor"), high_freq_factor=r.get("high_freq_factor"),
                      original_max_position_embeddings=r.get("original_max_position_embeddings"),
                      beta_fast=r.get("beta_fast"), beta_slow=r.get("beta_slow"),
                      attention_factor=r.get("attention_factor"), partial_rotary_factor=spec.partial)
    names = spec.tensors
    return ref.RefConfig(
        vocab=spec.vocab, hidden=spec.hidden, layers=spec.layers, heads=spec.heads, kv_heads=spec.kv,
        head_dim=spec.head_dim, intermediate=spec.inter, norm_eps=spec.eps, tied=spec.tied,
        attention_bias=any(".q_proj.bias" in n for n in names), mlp_bias=any(".mlp.gate_proj.bias" in n for n in names),
        qk_norm=spec.qk_norm, positions=list(spec.positions), rope=rs)


def input_ids(case: str, spec: cc.Spec, fx: Path) -> torch.Tensor:
    golden = fx / "engine" / case / "golden.safetensors"
    if golden.exists():
        import safetensors.numpy as stnp
        return torch.from_numpy(stnp.load_file(str(golden))["input_ids"].astype(np.int64))
    rng = np.random.default_rng(7)
    return torch.from_numpy(rng.integers(0, spec.vocab, size=(2, 37)).astype(np.int64))


def reference_logits(cfg: ref.RefConfig, weights: dict, ids: torch.Tensor) -> torch.Tensor:
    W = {k: torch.from_numpy(np.asarray(v).astype(np.float64)) for k, v in weights.items()}
    return ref.forward(cfg, W, ids, dtype=torch.float64)["logits"]


def compare(got: torch.Tensor, want: torch.Tensor) -> str:
    d = (got.double() - want.double()).abs().max().item()
    scale = max(1.0, want.abs().max().item())
    if not d <= REL_TOL * scale:
        raise CheckFail(f"max |logits - reference| = {d:.3g} > {REL_TOL:g} * {scale:.3g}")
    return f"max |d| {d:.2e} (limit {REL_TOL * scale:.2e})"


def tf_logits_from_folder(folder: Path, ids: torch.Tensor):
    from transformers import AutoModelForCausalLM
    model, info = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
    if bad:
        raise CheckFail(f"{type(model).__name__}: {bad}")
    with torch.inference_mode():
        return model.eval()(input_ids=ids).logits, type(model).__name__


def vocab_only_copy(src: Path, dst: Path) -> None:
    """The tokenizer.* keys of a GGUF in a tensor-less llama GGUF (transformers reads only a few archs)."""
    r = GGUFReader(str(src))
    w = cc.Writer(str(dst), "llama")
    for key, f in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        types = [t.name for t in f.types]
        sub = VT[types[1]] if len(types) > 1 else (VT(int(f.parts[3][0])) if types[0] == "ARRAY" else None)
        w.add_key_value(key, f.contents(), VT[types[0]], sub_type=sub)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tokenizer_checks(r: Runner, work: Path, case: str, gguf_rel: Path, hf_rel: Path, texts: list[str]) -> None:
    from transformers import AutoTokenizer

    state = {}

    def gguf_tok():
        vo = work / "vocab" / f"{case}.gguf"
        vocab_only_copy(work / gguf_rel, vo)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state["gg"] = AutoTokenizer.from_pretrained(str(vo.parent), gguf_file=vo.name)
        return type(state["gg"]).__name__

    if not r.check(f"{case}: transformers builds a tokenizer from {gguf_rel.name}'s tokenizer.ggml.* keys", gguf_tok):
        return

    def same():
        ours = AutoTokenizer.from_pretrained(str(work / hf_rel))
        orig = AutoTokenizer.from_pretrained(str(work / "src" / case))
        gg = state["gg"]
        bad, vs_orig_ours, vs_orig_gg = [], [], []
        from tokenizers import Tokenizer
        raw_original = Tokenizer.from_file(str(work / "src" / case / "tokenizer.json"))
        # What GGUF cannot carry (announced by the converter; same rule as check_convert.py).
        excused = cc.gguf_cannot_say(work / "src" / case)
        for t in texts:
            a, b, o = ours(t).input_ids, gg(t).input_ids, orig(t).input_ids
            # transformers' AutoTokenizer may rebuild a tokenizer.json its own way (LlamaTokenizer
            # swaps a legacy normaliser for Metaspace): the file itself, read by PyPI tokenizers,
            # is the other reference.
            if a != b and a != o and a != raw_original.encode(t).ids and not excused(t):
                bad.append(f"{t[:40]!r}: ours {a[:8]}.. transformers-GGUF {b[:8]}.. original {o[:8]}..")
            if a != o:
                vs_orig_ours.append(t)
            if b != o:
                vs_orig_gg.append(t)
        raw_o, raw_n = Tokenizer.from_file(str(work / "src" / case / "tokenizer.json")), Tokenizer.from_file(str(work / hf_rel / "tokenizer.json"))
        raw_diff = [t for t in texts if raw_o.encode(t).ids != raw_n.encode(t).ids]
        r.note(f"{case}: PyPI tokenizers, rebuilt vs original tokenizer.json: {len(raw_diff)} texts differ; transformers "
               f"AutoTokenizer classes: original {type(orig).__name__}, rebuilt {type(ours).__name__}, GGUF {type(gg).__name__}")
        r.note(f"{case}: vs AutoTokenizer of the original folder: nopekit's rebuild differs on {len(vs_orig_ours)} texts"
               f"{' ' + repr(vs_orig_ours[:3]) if vs_orig_ours else ''}, transformers' GGUF tokenizer on {len(vs_orig_gg)}"
               f"{' ' + repr(vs_orig_gg[:3]) if vs_orig_gg else ''}")
        if bad:
            raise CheckFail(f"{len(bad)} of {len(texts)} texts differ: " + "; ".join(bad[:3]))
        return f"{len(texts)} texts"

    r.check(f"{case}: nopekit's rebuilt tokenizer.json == transformers' GGUF tokenizer (ids with special tokens), "
            "or the original tokenizer.json read by PyPI tokenizers, except what GGUF cannot carry", same)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nopekit", required=True, type=Path)
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--fixtures", type=Path, default=REPO / "fixtures")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--only", help="comma-separated case names")
    args = ap.parse_args(argv)
    logging.getLogger("gguf").setLevel(logging.ERROR)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    t0 = time.monotonic()
    work, fx = args.workdir.resolve(), args.fixtures.resolve()
    r = Runner(args.nopekit.resolve(), work, args.timeout)
    import transformers
    print(f"check_convert_transformers: torch {torch.__version__}, transformers {transformers.__version__}; nopekit {args.nopekit}; workdir {work}")
    work.mkdir(parents=True, exist_ok=True)
    for name in ("src", "gguf", "hf", "vocab", "ref", "refuse"):
        if (work / name).exists():
            shutil.rmtree(work / name)
    for name in ("gguf", "hf", "vocab"):
        (work / name).mkdir()
    names = cc.build_sources(fx, work / "src")
    only = set(filter(None, (args.only or "").split(",")))
    texts = cc.texts_for_round_trip(fx)

    for case in names:
        if only and case not in only:
            continue
        spec = cc.Spec(work / "src" / case)
        oc = spec.outcome()
        if oc[0] == "refuse":
            continue
        cfg = ref_config(spec)
        ids = input_ids(case, spec, fx)
        ref64 = reference_logits(cfg, spec.tensors, ids)
        for tname in ("f32", "q8_0"):
            gg = Path("gguf") / f"{case}.{tname}.gguf"
            hf = Path("hf") / f"{case}.{tname}"
            proc, cmd = r.run("convert", f"src/{case}", gg, "--type", tname)
            if oc[0] == "either" and proc is not None and proc.returncode != 0:
                r.note(f"{case}: refused ({oc[2]}): {proc.stderr.decode(errors='replace').strip().splitlines()[-1][:160]}")
                break
            if not r.check(f"convert src/{case} {gg} --type {tname} exits 0", expect_success, proc, cmd):
                continue
            proc, cmd = r.run("convert", gg, hf)
            if not r.check(f"convert {gg} {hf} exits 0", expect_success, proc, cmd):
                continue

            def logits(hf=hf, tname=tname):
                got, cls = tf_logits_from_folder(work / hf, ids)
                if tname == "f32":
                    want = ref64
                else:
                    want = reference_logits(cfg, cc.load_hf_tensors(work / hf), ids)
                    drift = (want - ref64).abs().max().item()
                    r.note(f"{case}: q8_0 round trip moves the reference logits by {drift:.3g} (max |logit| {ref64.abs().max().item():.3g})")
                return f"{cls}: " + compare(got, want)

            what = "the float64 reference on the source" if tname == "f32" else "the float64 reference on its own (dequantised) weights"
            r.check(f"{case}.{tname}: transformers on hf/{case}.{tname} (float32) == {what}, 1e-4 relative", logits)

            arch = cc.read_fields(GGUFReader(str(work / gg)))["general.architecture"]["value"]
            if tname == "f32" and arch in TF_GGUF_ARCHS and "mistral" in case:
                r.note(f"{gg.name}: transformers 5.24 sends a GGUF whose general.name contains 'mistral' to a mistral path "
                       "its gguf-py mapping lacks (NotImplementedError); not read back")
            elif tname == "f32" and arch in TF_GGUF_ARCHS:
                def from_gguf(gg=gg):
                    # from_pretrained(gguf_file=...) needs accelerate; the same reading without it:
                    # transformers' GGUF config, name mapping, reverse Q/K permutation, dequantisation
                    from transformers import AutoConfig, AutoModelForCausalLM
                    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
                    rd = GGUFReader(str(work / gg))
                    names = [t.name for t in rd.tensors]
                    kv = {k: f.contents() for k, f in rd.fields.items()}
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        tcfg = AutoConfig.from_pretrained(str((work / gg).parent), gguf_file=gg.name)
                        # keys llama.cpp reads that transformers 5.24's GGUF config mapping does not
                        patched = []
                        if f"{arch}.rope.scaling.type" in kv:
                            rp = {"rope_type": kv[f"{arch}.rope.scaling.type"], "rope_theta": kv[f"{arch}.rope.freq_base"],
                                  "factor": kv[f"{arch}.rope.scaling.factor"]}
                            if f"{arch}.rope.scaling.original_context_length" in kv:
                                rp["original_max_position_embeddings"] = kv[f"{arch}.rope.scaling.original_context_length"]
                            tcfg.rope_parameters = rp
                            patched.append("rope.scaling.*")
                        if arch == "qwen3" and f"{arch}.attention.key_length" in kv:
                            tcfg.head_dim = kv[f"{arch}.attention.key_length"]
                            patched.append("attention.key_length")
                        if patched:
                            r.note(f"{gg.name}: transformers' GGUF config mapping ignores {', '.join(patched)}; taken from the GGUF")
                        if any(n.endswith("attn_q.bias") for n in names) and tcfg.model_type != "qwen2":
                            tcfg.attention_bias = True  # no GGUF key for it
                        if any(n.endswith("ffn_gate.bias") for n in names):
                            tcfg.mlp_bias = True
                        model = AutoModelForCausalLM.from_config(tcfg, dtype=torch.float32)
                        sd = load_gguf_checkpoint(str(work / gg), return_tensors=True, model_to_load=model)["tensors"]
                    missing, unexpected = model.load_state_dict({k: torch.as_tensor(v) for k, v in sd.items()}, strict=False)
                    missing = [k for k in missing if not (k == "lm_head.weight" and tcfg.tie_word_embeddings)]
                    if missing or unexpected:
                        raise CheckFail(f"missing {missing[:4]}, unexpected {unexpected[:4]}")
                    if tcfg.tie_word_embeddings:
                        model.tie_weights()
                    with torch.inference_mode():
                        got = model.eval()(input_ids=ids).logits
                    return f"{type(model).__name__}: " + compare(got, ref64)

                r.check(f"{case}.f32: transformers' GGUF loader on {gg.name} ({arch}) == the float64 reference on the source, 1e-4 relative", from_gguf)
            if tname == "f32" and spec.has_tokenizer:
                tokenizer_checks(r, work, case, gg, hf, texts)

    print(f"elapsed {time.monotonic() - t0:.1f}s")
    print(f"check_convert_transformers: {r.passed} passed, {r.failed} failed")
    return 0 if r.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
