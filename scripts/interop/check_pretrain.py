"""CI interop check of `nopekit pretrain` output: PyPI `tokenizers` loads the byte-level
tokenizer.json and tokenizes exactly as nopekit's vocabulary says (BOS + UTF-8 bytes), and PyPI
`safetensors` loads the weights with the shapes config.json implies.

Usage: .venv/bin/python scripts/interop/check_pretrain.py --nopekit BIN --workdir DIR
Prints PASS/FAIL lines and `interop: N passed, M failed`.
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import CheckFail, Runner, expect_success  # noqa: E402

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nopekit", required=True, type=Path)
    ap.add_argument("--workdir", required=True, type=Path)
    args = ap.parse_args()
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    runner = Runner(args.nopekit.resolve(), work, 300)
    out = work / "micro"

    def trains():
        proc, cmd = runner.run("pretrain", "--out", "micro", "--preset", "micro", "--steps", "3", "--length", "32", "--batch", "2", "--eval-every", "3")
        expect_success(proc, cmd)
        for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "TRAINING.md"]:
            if not (out / name).exists():
                raise CheckFail(f"{name} missing")
        return "3 steps"

    def tokenizer_loads():
        tok = Tokenizer.from_file(str(out / "tokenizer.json"))
        texts = ["The pass key is 12345. Remember it.", "héllo wörld 😀\n\t", ""]
        for t in texts:
            ids = tok.encode(t).ids
            want = [256] + list(t.encode("utf-8"))
            if ids != want:
                raise CheckFail(f"{t!r}: {ids[:12]} vs {want[:12]}")
            if tok.decode(ids, skip_special_tokens=True) != t:
                raise CheckFail(f"decode of {t!r} differs")
        return f"{len(texts)} texts, vocabulary {tok.get_vocab_size()}"

    def weights_load():
        cfg = json.loads((out / "config.json").read_text())
        if cfg.get("nopekit_position") != "none":
            raise CheckFail(f"nopekit_position is {cfg.get('nopekit_position')!r}")
        tensors = dict(safetensors.deserialize((out / "model.safetensors").read_bytes()))
        emb = tensors["model.embed_tokens.weight"]
        if list(emb["shape"]) != [cfg["vocab_size"], cfg["hidden_size"]]:
            raise CheckFail(f"embedding shape {emb['shape']}")
        values = np.frombuffer(emb["data"], dtype=np.float32)
        if not np.isfinite(values).all():
            raise CheckFail("non-finite weights")
        return f"{len(tensors)} tensors"

    for name, fn in [("pretrain --preset micro writes an HF folder", trains),
                     ("PyPI tokenizers loads tokenizer.json: BOS + UTF-8 bytes, exact decode", tokenizer_loads),
                     ("PyPI safetensors loads the weights with config.json's shapes", weights_load)]:
        if not runner.check(name, fn) and name.startswith("pretrain"):
            break
    print(f"interop: {runner.passed} passed, {runner.failed} failed")
    sys.exit(1 if runner.failed else 0)


if __name__ == "__main__":
    main()
