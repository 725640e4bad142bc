"""Compare two GGUF files tensor by tensor (names, types, shapes, bytes) and key by key.

Used to hold nopekit's HF → GGUF converter against llama.cpp's own convert_hf_to_gguf.py on the
same folder (scripts/bench/convert_gguf.sh): for F32/F16/BF16/Q8_0 output every tensor must be
byte-identical (llama.cpp quantises Q8_0 with gguf-py, which is bit-exact with ggml).

Usage: .venv/bin/python scripts/reference/compare_gguf.py OURS.gguf THEIRS.gguf
Exit status 1 if any tensor differs.
"""
import sys

import numpy as np
from gguf import GGUFReader


def main() -> int:
    ours, theirs = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
    a = {t.name: t for t in ours.tensors}
    b = {t.name: t for t in theirs.tensors}
    print(f"tensors: ours {len(a)}, theirs {len(b)}; only ours {sorted(set(a) - set(b))}, only theirs {sorted(set(b) - set(a))}")
    differing = []
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        same = (x.tensor_type == y.tensor_type and list(x.shape) == list(y.shape)
                and np.array_equal(np.asarray(x.data).view(np.uint8), np.asarray(y.data).view(np.uint8)))
        if not same:
            differing.append(f"{name}: {x.tensor_type.name} {list(x.shape)} vs {y.tensor_type.name} {list(y.shape)}")
    print(f"tensors byte-identical: {len(set(a) & set(b)) - len(differing)} of {len(set(a) & set(b))}")
    for d in differing[:10]:
        print("  differs:", d)
    keys_a = [k for k in ours.fields if not k.startswith("GGUF.")]
    keys_b = [k for k in theirs.fields if not k.startswith("GGUF.")]
    print("keys only ours:", [k for k in keys_a if k not in keys_b])
    print("keys only theirs:", [k for k in keys_b if k not in keys_a])
    for k in keys_a:
        if k not in keys_b:
            continue
        va, vb = ours.fields[k].contents(), theirs.fields[k].contents()
        if isinstance(va, list):
            n = sum(1 for x, y in zip(va, vb) if x != y)
            if n or len(va) != len(vb):
                print(f"key {k}: {len(va)} entries in ours, {len(vb)} in theirs; {n} of the common ones differ"
                      f" (first: {[(i, x, y) for i, (x, y) in enumerate(zip(va, vb)) if x != y][:3]})")
        elif va != vb:
            print(f"key {k}: ours {va!r}, theirs {vb!r}")
    return 1 if differing or set(a) != set(b) else 0


if __name__ == "__main__":
    sys.exit(main())
