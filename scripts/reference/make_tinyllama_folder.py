"""Write a RANDOM TinyLlama-1.1B-shaped Hugging Face checkpoint folder.

For size / peak-RSS benchmarks of nopekit's safetensors code (never committed).
Shapes follow TinyLlama-1.1B: 22 layers, hidden 2048, 32 heads, 4 KV heads,
head_dim 64, intermediate 5632, vocab 32000, untied lm_head, model_type llama,
max_position_embeddings 2048.  Values are N(0, 0.02) drawn in float32 (one
seeded generator per tensor, so values do not depend on the shard size); with
``--dtype bf16`` they are rounded to bfloat16 with round-to-nearest-even
(ml_dtypes.bfloat16).

Usage (from the repository root)::

    .venv/bin/python scripts/reference/make_tinyllama_folder.py OUT_DIR \
        [--dtype bf16|f32] [--max-shard-size 2GB] [--seed 0] [--num-layers 22]

``--max-shard-size`` takes bytes with an optional suffix: K/M/G/T are decimal
(1000**n), KiB/MiB/GiB/TiB binary (1024**n), a trailing B is optional
("2GB" == "2G" == 2_000_000_000).  ``--num-layers`` exists only to make quick
test runs; the default is the real 22.

Sharding follows huggingface_hub's greedy rule: tensors in module order
(embed_tokens; per layer q,k,v,o,gate,up,down,input_layernorm,
post_attention_layernorm; norm; lm_head); a new shard starts when adding the
tensor would exceed the limit; a tensor larger than the limit gets a shard of
its own.  Files are ``model-0000i-of-0000N.safetensors``, each written with
``safetensors.serialize_file`` (the reference writer) and metadata
{"format": "pt"}, plus ``model.safetensors.index.json`` (indent=2,
sort_keys=True, trailing newline; total_size = sum of tensor bytes) and
``config.json``.  If everything fits in one shard the file is called
``model.safetensors`` and no index is written (as transformers does).

Memory: only one shard's tensors (plus one float32 temporary) are alive at a
time, so peak RSS is about max-shard-size + the largest float32 tensor
(~0.26 GB for the embedding).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np
import safetensors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_layout import hf_split, llama_tensor_shapes, parse_size  # noqa: E402

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 5632,
    "max_position_embeddings": 2048,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 22,
    "num_key_value_heads": 4,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 32000,
}

DTYPES = {
    # cli name: (TensorSpec dtype, numpy dtype, config torch_dtype)
    "bf16": ("bfloat16", ml_dtypes.bfloat16, "bfloat16"),
    "f32": ("float32", np.float32, "float32"),
}


def size_argument(text: str) -> int:
    """--max-shard-size: hf_layout.parse_size with argparse's error."""
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (examples: 2GB, 500M, 20KiB, 1048576)") from None


def make_tensor(seed: int, index: int, shape, np_dtype):
    rng = np.random.default_rng([seed, index])
    a = rng.standard_normal(shape, dtype=np.float32)
    a *= np.float32(0.02)
    if np_dtype is np.float32:
        return a
    return a.astype(np_dtype)  # ml_dtypes: round-to-nearest-even


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--max-shard-size", type=size_argument, default=parse_size("2GB"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-layers", type=int, default=CONFIG["num_hidden_layers"], help="for quick tests only (default 22)")
    args = ap.parse_args(argv)

    ts_dtype, np_dtype, torch_dtype = DTYPES[args.dtype]
    itemsize = np.dtype(np_dtype).itemsize
    cfg = dict(CONFIG, num_hidden_layers=args.num_layers, torch_dtype=torch_dtype)
    shapes = llama_tensor_shapes(cfg)
    index_of = {name: i for i, (name, _) in enumerate(shapes)}
    shape_of = dict(shapes)
    sizes = [(name, int(np.prod(shape)) * itemsize) for name, shape in shapes]
    total_size = sum(s for _, s in sizes)
    plan = hf_split(sizes, args.max_shard_size)
    nsh = len(plan)

    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    for stale in list(out.glob("model-*-of-*.safetensors")) + [out / "model.safetensors", out / "model.safetensors.index.json"]:
        if stale.exists():
            stale.unlink()

    t0 = time.monotonic()
    weight_map = {}
    shard_info = []
    for i, names in enumerate(plan, start=1):
        fname = "model.safetensors" if nsh == 1 else f"model-{i:05d}-of-{nsh:05d}.safetensors"
        arrays = {}
        specs = {}
        for name in names:
            a = make_tensor(args.seed, index_of[name], shape_of[name], np_dtype)
            arrays[name] = a  # keeps the buffer alive during serialize_file
            specs[name] = safetensors.TensorSpec(dtype=ts_dtype, shape=list(a.shape), data_ptr=a.ctypes.data, data_len=a.nbytes)
            weight_map[name] = fname
        safetensors.serialize_file(specs, str(out / fname), metadata={"format": "pt"})
        nbytes = sum(a.nbytes for a in arrays.values())
        del specs, arrays
        fsize = (out / fname).stat().st_size
        shard_info.append((fname, len(names), nbytes, fsize))
        print(f"  wrote {fname}: {len(names)} tensors, {nbytes} tensor bytes, {fsize} file bytes, peak RSS {peak_rss_mb():.0f} MB", flush=True)

    if nsh > 1:
        index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

    params = total_size // itemsize
    print(
        f"tinyllama folder: {out}\n"
        f"  dtype {args.dtype}, seed {args.seed}, layers {args.num_layers}, {len(shapes)} tensors, {params} parameters\n"
        f"  total_size {total_size} bytes ({total_size / 1e9:.3f} GB), {nsh} shard(s), max shard size {args.max_shard_size}\n"
        f"  elapsed {time.monotonic() - t0:.1f} s, peak RSS {peak_rss_mb():.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
