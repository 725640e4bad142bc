"""Checks a `nopekit convert --dtype bf16` output against its F32 source with PyPI safetensors.

Usage: .venv/bin/python scripts/bench/check_convert_bf16.py SRC_F32_FOLDER OUT_BF16_FOLDER

Every tensor of the output must be BF16 with the source's shape, and its bits must equal
ml_dtypes' round-to-nearest-even conversion of the source F32 values (numpy + ml_dtypes, not
nopekit's code). Reads one shard at a time with `safetensors.deserialize`, so memory stays at
about two shards. Prints one line per shard and a final `N passed, M failed` line.
"""
import json
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import safetensors


def shards(folder: Path):
    index = folder / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        return sorted(set(weight_map.values())), weight_map
    return ["model.safetensors"], None


def load(path: Path):
    return {name: info for name, info in safetensors.deserialize(path.read_bytes())}


def main():
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    src_files, src_map = shards(src)
    out_files, out_map = shards(out)
    passed = failed = 0
    out_names = set(out_map) if out_map else None
    src_names = set(src_map) if src_map else None
    if out_names is not None and src_names is not None and out_names != src_names:
        print(f"FAIL tensor names differ: {sorted(out_names ^ src_names)[:5]}")
        failed += 1
    # Group the check by source shard so each source shard is read once.
    out_cache = {}
    for sf in src_files:
        source = load(src / sf)
        bad = []
        for name, info in source.items():
            target_file = out_map[name] if out_map else "model.safetensors"
            if target_file not in out_cache:
                out_cache.clear()
                out_cache[target_file] = load(out / target_file)
            got = out_cache[target_file][name]
            x = np.frombuffer(info["data"], dtype=np.float32).reshape(info["shape"])
            expected = x.astype(ml_dtypes.bfloat16).view(np.uint16)
            actual = np.frombuffer(got["data"], dtype=np.uint16).reshape(got["shape"])
            if got["dtype"] not in ("bfloat16", "BF16") or list(got["shape"]) != list(info["shape"]) or not np.array_equal(expected, actual):
                bad.append(name)
        if bad:
            failed += 1
            print(f"FAIL {sf}: {len(bad)} tensors differ, e.g. {bad[:3]}")
        else:
            passed += 1
            print(f"PASS {sf}: {len(source)} tensors equal ml_dtypes RNE bf16 bit for bit")
        del source
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
