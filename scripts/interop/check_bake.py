"""CI interop check: ``nopekit bake`` against numpy, PyPI safetensors and gguf-py.

Usage (from the repository root; needs numpy, safetensors, gguf and ml_dtypes from
scripts/reference/requirements.txt, no torch)::

    .venv/bin/python scripts/interop/check_bake.py \
        --nopekit .build/release/nopekit --workdir /tmp/nopekit-interop-bake \
        [--fixtures fixtures/bake] [--timeout 60]

    .venv/bin/python scripts/interop/check_bake.py --self-test --workdir /tmp/bake-selftest

What it does (the fixtures come from scripts/reference/make_bake_fixtures.py; the
script writes nothing under them).  It removes its own entries from WORKDIR
(nopekit refuses to overwrite), then runs, with cwd = WORKDIR::

    NOPEKIT bake FIXTURES/<case> --temps FIXTURES/table.temps.json --out WORKDIR/<case>
        for st-f32, st-f16, st-bf16, st-sharded and gguf/tiny-<t>.gguf (--out WORKDIR/tiny-<t>.gguf)
    NOPEKIT bake FIXTURES/paper --from-checkpoint-scales --out WORKDIR/paper

and checks:

* every output loads (``safetensors.deserialize`` / ``safe_open``;
  ``gguf.GGUFReader`` plus the strict layout check of check_gguf.py); the
  tensor set, dtypes/types and shapes equal the source's (paper: minus the
  ``scale_param`` tensors; st-sharded: the same shard files holding the same
  tensors; GGUF: same order, ne and alignment too);
* the scaled tensors (q_proj / attn_q weight and bias of every layer with a
  row; head h = rows h*head_dim ..): F32/F16/BF16 equal the numpy expectation
  bit for bit (``(x.astype(float32) * float32(s)).astype(dtype)``); quantised
  attn_q is within ``2^-11*s*(|d-part|+|min-part|) + 4*eps_f32*|s*old|`` of
  ``s * dequantize(source)`` AND its raw bytes equal the field edit
  (each fp16 scale field f -> ``float16(float64(f) * float64(float32(s)))``:
  Q4_0/Q8_0 d@0, Q4_K d@0 and dmin@2, Q6_K d@208; codes untouched);
* every other tensor is byte-identical to the source; every tensor's sha256
  equals ``FIXTURES/expected.json`` (the generator's independent expectation);
* safetensors ``__metadata__`` = the source's entries + ``nopekit_temperatures``
  (a JSON string of a ``nopekit.temperatures/1`` table whose scales equal the
  applied scales as float32) + ``nopekit_source_sha256``; ``config.json`` =
  the source's (compared as parsed JSON) + ``nopekit_temperatures`` (object)
  + ``nopekit_source_sha256``; every other file of the source folder copied
  byte for byte; st-sharded's index has the source's weight_map and
  total_size; the folder holds exactly the source's file names plus
  ``SHA256SUMS``;
* every output's checksum record is what ``sha256sum`` prints (hashlib
  digests, sorted by name): ``SHA256SUMS`` in a folder listing every other file,
  ``NAME.sha256`` beside a GGUF file;
* GGUF: the source's KVs (key, type, encoded value) in the same order,
  followed by exactly ``nopekit.temperatures`` (STRING, JSON table) and
  ``nopekit.source_sha256`` (STRING);
* the source checksum: sha256 of the one ``.safetensors`` / ``.gguf`` file, or
  for a sharded folder sha256 of the ``sha256sum`` lines ``"<hex>  <name>\\n"``
  of its shard files sorted by name (index and config not included);
* the sources are unchanged (sha256 of every file under FIXTURES);
* refusals: a table for 5 heads written to WORKDIR makes ``bake`` of st-f32
  and of tiny-q8_0.gguf exit non-zero with "does not fit" in its output,
  leaving no output path and no ``*nopekit-partial*`` file behind (WORKDIR's
  file tree is unchanged).

``--self-test`` (no nopekit needed) checks this script: it copies the fixtures to
WORKDIR/selftest-fixtures, replaces nopekit by this script's own numpy bake
(``reference_bake``), expects every check to pass, then re-runs everything with
deliberately broken bakes (a flipped bit, a code byte, truncated fp16 fields, a
swapped head, single-rounded F16, KV order, a dropped key, missing or wrong
metadata, a moved shard, kept scale_param, a missing copied file, a modified
source, a leftover partial file, a refusal without the message) and expects
each to be caught by the named check.

Prints one line per check (PASS/FAIL; NOTE lines are informational only) and
ends with ``interop: N passed, M failed``.  Exit status 0 iff M == 0.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import io
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np
import safetensors
from safetensors import safe_open

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType as VT, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import CheckFail, Runner, check_record, checksum_lines, expect_success, folder_record_names, sha256_file, tree  # noqa: E402
from check_gguf import layout_check, read_gguf  # noqa: E402

BF16 = ml_dtypes.bfloat16
TABLE_FORMAT = "nopekit.temperatures/1"
ST_CASES = ["st-f32", "st-f16", "st-bf16", "st-sharded"]
GGUF_TAGS = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k"]
PAPER = "paper"
ST_KEYS = ("nopekit_temperatures", "nopekit_source_sha256")
GGUF_KEYS = ("nopekit.temperatures", "nopekit.source_sha256")
PLAIN = {"F32": np.float32, "F16": np.float16, "BF16": BF16}
# fp16 fields that scale with the values, per block (formats.md §2.7); the min-term ones separately
SCALE_FIELDS = {"Q4_0": (0,), "Q8_0": (0,), "Q4_K": (0, 2), "Q6_K": (208,)}
MIN_FIELDS = {"Q4_K": (2,)}
PARTIAL_GLOB = "*nopekit-partial*"
HEX64 = re.compile(r"[0-9a-f]{64}")


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def source_checksum(src: Path) -> str:
    """The checksum nopekit must record: one file -> its sha256; several shards ->
    sha256 of their sha256sum lines sorted by name."""
    if src.is_file():
        return sha256_file(src)
    shards = sorted(p.name for p in src.iterdir() if p.name.endswith(".safetensors"))
    if len(shards) == 1:
        return sha256_file(src / shards[0])
    return sha256_bytes("".join(f"{sha256_file(src / n)}  {n}\n" for n in shards).encode())


def load_st(path: Path):
    """(metadata dict or None, {name: (dtype code, shape, raw bytes)}) via the reference reader."""
    try:
        items = safetensors.deserialize(path.read_bytes())
        with safe_open(str(path), framework="np") as f:
            md = f.metadata()
    except Exception as e:
        raise CheckFail(f"PyPI safetensors rejects {path.name}: {type(e).__name__}: {e}")
    return md, {name: (info["dtype"], list(info["shape"]), bytes(info["data"])) for name, info in items}


def load_folder(folder: Path):
    """{'files': [names], 'shards': {file: (metadata, tensors)}, 'config': dict}."""
    if not folder.is_dir():
        raise CheckFail(f"{folder.name} was not created (or is not a folder)")
    files = sorted(p.name for p in folder.iterdir())
    shards = {f: load_st(folder / f) for f in files if f.endswith(".safetensors")}
    if not shards:
        raise CheckFail(f"{folder.name} holds no .safetensors file")
    cfg = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else None
    return {"files": files, "shards": shards, "config": cfg}


def gguf_kv_values(path: Path):
    """{key: (type names, python value)} of a GGUF file (GGUF.* pseudo-keys excluded)."""
    r = GGUFReader(str(path))
    out = {k: ([t.name for t in f.types], f.contents()) for k, f in r.fields.items() if not k.startswith("GGUF.")}
    del r
    return out


# ---------------------------------------------------------------------------
# expectations (numpy)
# ---------------------------------------------------------------------------


def head_rows(scales_row, head_dim: int) -> np.ndarray:
    return np.repeat(np.asarray(scales_row, dtype=np.float32), head_dim)


def expect_plain(raw: bytes, code: str, shape, s_rows: np.ndarray) -> bytes:
    x = np.frombuffer(raw, dtype=PLAIN[code]).reshape(shape)
    s = s_rows.reshape((-1,) + (1,) * (len(shape) - 1))
    y = x.astype(np.float32) * s
    return np.ascontiguousarray(y.astype(PLAIN[code])).tobytes()


def expect_quant(raw: bytes, tname: str, rows: int, s_rows: np.ndarray) -> bytes:
    ts = GGML_QUANT_SIZES[QT[tname]][1]
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows, -1, ts).copy()
    s64 = s_rows.astype(np.float64)[:, None]
    for off in SCALE_FIELDS[tname]:
        f = blocks[:, :, off : off + 2].copy().view(np.float16)[..., 0]
        new = (f.astype(np.float64) * s64).astype(np.float16)
        blocks[:, :, off : off + 2] = new[..., None].view(np.uint8)
    return blocks.tobytes()


def dq(raw: bytes, tname: str, rows: int) -> np.ndarray:
    return gguf.quants.dequantize(np.frombuffer(raw, dtype=np.uint8).reshape(rows, -1), QT[tname]).astype(np.float64)


def with_zeroed(raw: bytes, tname: str, rows: int, offsets) -> bytes:
    ts = GGML_QUANT_SIZES[QT[tname]][1]
    b = np.frombuffer(raw, dtype=np.uint8).reshape(rows, -1, ts).copy()
    for off in offsets:
        b[:, :, off : off + 2] = 0
    return b.tobytes()


def quant_bound(src: bytes, out: bytes, tname: str, rows: int, s_rows: np.ndarray) -> float:
    """Worst |dq(out) - s*dq(src)| / bound; raises CheckFail past the bound."""
    s = s_rows.astype(np.float64)[:, None]
    mins = MIN_FIELDS.get(tname, ())
    ds = tuple(o for o in SCALE_FIELDS[tname] if o not in mins)
    old, new = dq(src, tname, rows), dq(out, tname, rows)
    d_part = dq(with_zeroed(src, tname, rows, mins), tname, rows) if mins else old
    m_part = dq(with_zeroed(src, tname, rows, ds), tname, rows) if mins else 0.0
    want = s * old
    bound = 2.0**-11 * s * (np.abs(d_part) + np.abs(m_part)) + 4 * float(np.finfo(np.float32).eps) * np.abs(want)
    err = np.abs(new - want)
    bad = err > bound
    if bad.any() or not np.all(np.isfinite(new)):
        r, c = np.argwhere(bad | ~np.isfinite(new))[0]
        raise CheckFail(f"element [{r}, {c}] = {new[r, c]!r}, s*source = {want[r, c]!r} (s = {s[r, 0]}), |diff| {err[r, c]:.3e} > bound {bound[r, c]:.3e}; {int(bad.sum())} elements out of bound")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.max(np.where(bound > 0, err / bound, 0.0)))


def first_diff_elem(a: bytes, b: bytes, itemsize: int) -> str:
    if len(a) != len(b):
        return f"{len(a)} bytes, expected {len(b)}"
    x = np.frombuffer(a, np.uint8).reshape(-1, itemsize)
    y = np.frombuffer(b, np.uint8).reshape(-1, itemsize)
    bad = np.nonzero((x != y).any(axis=1))[0]
    return f"{len(bad)} of {len(x)} {'elements' if itemsize <= 4 else 'blocks'} differ, first #{bad[0]}: bytes {x[bad[0]].tobytes().hex()}, expected {y[bad[0]].tobytes().hex()}"


def json_same(a, b) -> bool:
    """Parsed-JSON equality that keeps booleans, null, numbers and strings apart
    (Python's True == 1); ints and floats of equal value are equal."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_same(a[k], b[k]) for k in a)
    return False


def check_table_obj(obj, scales, where: str):
    """The embedded table must be a nopekit.temperatures/1 object whose scales equal `scales` as float32."""
    if not isinstance(obj, dict):
        raise CheckFail(f"{where} is not a JSON object")
    if obj.get("format") != TABLE_FORMAT:
        raise CheckFail(f"{where}: format {obj.get('format')!r}, expected {TABLE_FORMAT!r}")
    got = obj.get("scales")
    if not isinstance(got, list) or len(got) != len(scales):
        raise CheckFail(f"{where}: scales {str(got)[:80]} do not have {len(scales)} rows")
    for l, (g, w) in enumerate(zip(got, scales)):
        if w is None:
            if g is not None:
                raise CheckFail(f"{where}: scales row {l} is {g}, expected null")
            continue
        if not isinstance(g, list) or len(g) != len(w) or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in g):
            raise CheckFail(f"{where}: scales row {l} is {g}, expected {len(w)} numbers")
        if [np.float32(v) for v in g] != [np.float32(v) for v in w]:
            raise CheckFail(f"{where}: scales row {l} is {g}, expected {[float(v) for v in w]} (compared as float32)")


# ---------------------------------------------------------------------------
# the checks of one case
# ---------------------------------------------------------------------------


class Ctx:
    def __init__(self, fixtures: Path, work: Path, table_scales, expected):
        self.fixtures, self.work, self.table_scales, self.expected = fixtures, work, table_scales, expected


def q_layer(name: str):
    m = re.fullmatch(r"model\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)", name) or re.fullmatch(r"blk\.(\d+)\.attn_q\.(weight|bias)", name)
    return int(m.group(1)) if m else None


def check_expected_json(ctx: Ctx, case: str, out_tensors: dict):
    """out_tensors: {name: raw bytes}. Compares with expected.json (if the fixtures have it)."""
    if ctx.expected is None:
        raise CheckFail(f"{ctx.fixtures / 'expected.json'} not found")
    if case not in ctx.expected:
        raise CheckFail(f"expected.json has no case {case!r}")
    want = ctx.expected[case]["tensors"]
    if set(want) != set(out_tensors):
        raise CheckFail(f"tensor set differs from expected.json: missing {sorted(set(want) - set(out_tensors))[:4]}, extra {sorted(set(out_tensors) - set(want))[:4]}")
    bad = [n for n in sorted(want) if sha256_bytes(out_tensors[n]) != want[n]["sha256"]]
    if bad:
        raise CheckFail(f"{len(bad)} tensors differ from expected.json's sha256: {bad[:4]}")
    return f"{len(want)} tensors"


def run_st_case(r: Runner, ctx: Ctx, case: str, from_checkpoint: bool):
    src = ctx.fixtures / case
    out = ctx.work / case
    args = ["bake", src, "--from-checkpoint-scales", "--out", out] if from_checkpoint else ["bake", src, "--temps", ctx.fixtures / "table.temps.json", "--out", out]
    proc, cmdline = r.run(*args)
    r.check(f"bake {case}{' --from-checkpoint-scales' if from_checkpoint else ''} exits 0", expect_success, proc, cmdline)
    st = {}

    def need():
        if "out" not in st:
            raise CheckFail("no readable output")

    def loads():
        st["src"] = load_folder(src)
        st["out"] = load_folder(out)
        n = sum(len(t) for _, t in st["out"]["shards"].values())
        return f"{len(st['out']['shards'])} safetensors file(s), {n} tensors"

    r.check(f"{case}: output folder exists and every .safetensors loads with PyPI safetensors", loads)

    def geometry():
        cfg = st["src"]["config"]
        heads = cfg["num_attention_heads"]
        hd = cfg.get("head_dim") or cfg["hidden_size"] // heads
        if from_checkpoint:
            scales = []
            tensors = {n: v for _, (_, t) in st["src"]["shards"].items() for n, v in t.items()}
            for l in range(cfg["num_hidden_layers"]):
                code, shape, raw = tensors[f"model.layers.{l}.self_attn.scale_param"]
                scales.append([np.float32(v) for v in np.frombuffer(raw, dtype=BF16).astype(np.float32)])
        else:
            scales = ctx.table_scales
        return heads, hd, scales

    def dropped(name):
        return from_checkpoint and name.endswith(".self_attn.scale_param")

    def same_files():
        need()
        want = sorted(st["src"]["files"] + ["SHA256SUMS"])
        if st["out"]["files"] != want:
            raise CheckFail(f"files {st['out']['files']}, the source's plus SHA256SUMS would be {want}")
        return ", ".join(want)

    def record():
        need()
        return check_record(out / "SHA256SUMS", folder_record_names(out))

    def same_layout():
        need()
        for f, (_, src_t) in st["src"]["shards"].items():
            if f not in st["out"]["shards"]:
                raise CheckFail(f"{f} missing")
            out_t = st["out"]["shards"][f][1]
            want = {n: (c, s) for n, (c, s, _) in src_t.items() if not dropped(n)}
            got = {n: (c, s) for n, (c, s, _) in out_t.items()}
            if set(got) != set(want):
                raise CheckFail(f"{f}: missing {sorted(set(want) - set(got))[:4]}, extra {sorted(set(got) - set(want))[:4]}")
            for n in want:
                if got[n] != want[n]:
                    raise CheckFail(f"{f}: {n} is {got[n][0]} {got[n][1]}, source {want[n][0]} {want[n][1]}")
        extra = set(st["out"]["shards"]) - set(st["src"]["shards"])
        if extra:
            raise CheckFail(f"extra files {sorted(extra)}")
        return "same dtypes and shapes" + (", same shard per tensor" if len(st["src"]["shards"]) > 1 else "") + (", scale_param dropped" if from_checkpoint else "")

    def scaled():
        need()
        heads, hd, scales = geometry()
        n, worst = 0, 0.0
        for f, (_, src_t) in st["src"]["shards"].items():
            out_t = st["out"]["shards"][f][1]
            for name, (code, shape, raw) in src_t.items():
                l = q_layer(name)
                if l is None or scales[l] is None:
                    continue
                if code not in PLAIN:
                    raise CheckFail(f"{name}: source dtype {code} not handled by this check")
                if shape[0] != heads * hd:
                    raise CheckFail(f"{name}: {shape[0]} rows, expected heads*head_dim = {heads * hd}")
                s_rows = head_rows(scales[l], hd)
                want = expect_plain(raw, code, shape, s_rows)
                got = out_t.get(name, (None, None, b""))[2]
                if got != want:
                    raise CheckFail(f"{name} ({code}): {first_diff_elem(got, want, np.dtype(PLAIN[code]).itemsize)}")
                x = np.frombuffer(raw, PLAIN[code]).astype(np.float64).reshape(shape[0], -1)
                y = np.frombuffer(got, PLAIN[code]).astype(np.float64).reshape(shape[0], -1)
                e = x * s_rows.astype(np.float64)[:, None]
                nz = e != 0
                worst = max(worst, float(np.max(np.abs(y[nz] - e[nz]) / np.abs(e[nz]))))
                n += 1
        if n == 0:
            raise CheckFail("no scaled tensor found")
        return f"{n} tensors bit-exact, worst relative error {worst:.3e}"

    def untouched():
        need()
        n = 0
        for f, (_, src_t) in st["src"]["shards"].items():
            out_t = st["out"]["shards"][f][1]
            heads, hd, scales = geometry()
            for name, (code, shape, raw) in src_t.items():
                l = q_layer(name)
                if dropped(name) or (l is not None and scales[l] is not None):
                    continue
                if name not in out_t or out_t[name][2] != raw:
                    raise CheckFail(f"{name} differs from the source" if name in out_t else f"{name} missing")
                n += 1
        return f"{n} tensors"

    def vs_expected():
        need()
        return check_expected_json(ctx, case, {n: v[2] for _, (_, t) in st["out"]["shards"].items() for n, v in t.items()})

    def metadata():
        need()
        _, _, scales = geometry()
        for f, (src_md, _) in st["src"]["shards"].items():
            md = st["out"]["shards"][f][0] or {}
            src_md = src_md or {}
            want_keys = set(src_md) | set(ST_KEYS)
            if set(md) != want_keys:
                raise CheckFail(f"{f}: __metadata__ keys {sorted(md)}, expected {sorted(want_keys)}")
            for k, v in src_md.items():
                if md[k] != v:
                    raise CheckFail(f"{f}: __metadata__[{k!r}] = {md[k]!r}, source has {v!r}")
            try:
                obj = json.loads(md["nopekit_temperatures"])
            except Exception as e:
                raise CheckFail(f"{f}: nopekit_temperatures is not JSON: {e}")
            check_table_obj(obj, scales, f"{f}: __metadata__.nopekit_temperatures")
        return f"source entries {sorted((next(iter(st['src']['shards'].values()))[0] or {}))} + {', '.join(ST_KEYS)}"

    def config():
        need()
        _, _, scales = geometry()
        got, want = st["out"]["config"], st["src"]["config"]
        if got is None:
            raise CheckFail("config.json missing or unreadable")
        if set(got) != set(want) | set(ST_KEYS):
            raise CheckFail(f"keys: missing {sorted((set(want) | set(ST_KEYS)) - set(got))}, extra {sorted(set(got) - set(want) - set(ST_KEYS))}")
        for k in want:
            if not json_same(got[k], want[k]):
                raise CheckFail(f"{k!r} is {got[k]!r}, source has {want[k]!r}")
        check_table_obj(got["nopekit_temperatures"], scales, "config.json nopekit_temperatures")
        return None

    def checksum():
        need()
        want = source_checksum(src)
        seen = []
        for f in st["out"]["shards"]:
            seen.append((f"{f} __metadata__", (st["out"]["shards"][f][0] or {}).get("nopekit_source_sha256")))
        seen.append(("config.json", (st["out"]["config"] or {}).get("nopekit_source_sha256")))
        for where, v in seen:
            if not isinstance(v, str) or not HEX64.fullmatch(v):
                raise CheckFail(f"{where}: nopekit_source_sha256 {v!r} is not 64 lowercase hex digits")
            if v != want:
                raise CheckFail(f"{where}: nopekit_source_sha256 {v}, expected {want}")
        rule = "sha256 of the sharded files' sha256sum lines" if len(st["src"]["shards"]) > 1 else "sha256 of the .safetensors file"
        return f"{rule}: {want[:16]}…"

    def copies():
        need()
        others = [f for f in st["src"]["files"] if not f.endswith(".safetensors") and f not in ("config.json", "model.safetensors.index.json")]
        for f in others:
            if not (out / f).is_file() or (out / f).read_bytes() != (src / f).read_bytes():
                raise CheckFail(f"{f} not copied byte for byte")
        return ", ".join(others) if others else "no other files"

    def index():
        need()
        a = json.loads((src / "model.safetensors.index.json").read_text())
        try:
            b = json.loads((out / "model.safetensors.index.json").read_text())
        except Exception as e:
            raise CheckFail(f"model.safetensors.index.json unreadable: {e}")
        if b.get("weight_map") != a["weight_map"]:
            raise CheckFail("weight_map differs from the source's")
        if (b.get("metadata") or {}).get("total_size") != a["metadata"]["total_size"]:
            raise CheckFail(f"total_size {(b.get('metadata') or {}).get('total_size')}, source {a['metadata']['total_size']}")
        return f"{len(a['weight_map'])} entries, total_size {a['metadata']['total_size']}"

    r.check(f"{case}: the folder holds exactly the source's file names and SHA256SUMS", same_files)
    r.check(f"{case}: SHA256SUMS lists every other file with its sha256, as sha256sum prints them", record)
    r.check(f"{case}: tensor names, dtypes and shapes as the source", same_layout)
    r.check(f"{case}: scaled q_proj tensors equal the numpy expectation bit for bit", scaled)
    r.check(f"{case}: every other tensor byte-identical to the source", untouched)
    r.check(f"{case}: every tensor's sha256 as in expected.json", vs_expected)
    r.check(f"{case}: __metadata__ = source entries + nopekit_temperatures (table JSON, scales as applied) + nopekit_source_sha256", metadata)
    r.check(f"{case}: config.json = source config + nopekit_temperatures (object) + nopekit_source_sha256", config)
    r.check(f"{case}: nopekit_source_sha256 is the source checksum", checksum)
    r.check(f"{case}: other source files copied byte for byte", copies)
    if (src / "model.safetensors.index.json").is_file():
        r.check(f"{case}: model.safetensors.index.json keeps weight_map and total_size", index)


def run_gguf_case(r: Runner, ctx: Ctx, fname: str):
    src = ctx.fixtures / "gguf" / fname
    out = ctx.work / fname
    case = f"gguf/{fname}"
    proc, cmdline = r.run("bake", src, "--temps", ctx.fixtures / "table.temps.json", "--out", out)
    r.check(f"bake {case} exits 0", expect_success, proc, cmdline)
    st = {}

    def need():
        if "out" not in st:
            raise CheckFail("no readable output")

    def loads():
        if not out.is_file():
            raise CheckFail(f"{out.name} was not created")
        st["src"] = read_gguf(src)
        o = read_gguf(out)
        summary = layout_check(out)
        st["out"] = o
        st["src_kv"] = gguf_kv_values(src)
        st["out_kv"] = gguf_kv_values(out)
        return summary

    r.check(f"{fname}: gguf.GGUFReader accepts it and the layout check passes", loads)
    r.check(f"{fname}: {out.name}.sha256 beside it holds its sha256, as sha256sum prints it",
            lambda: check_record(out.parent / (out.name + ".sha256"), [out.name]))

    def geometry():
        kv = st["src_kv"]
        arch = kv["general.architecture"][1]
        heads = int(kv[f"{arch}.attention.head_count"][1])
        hd = int(kv[f"{arch}.attention.key_length"][1]) if f"{arch}.attention.key_length" in kv else int(kv[f"{arch}.embedding_length"][1]) // heads
        return heads, hd

    def kvs():
        need()
        got, want = st["out"]["kvs"], st["src"]["kvs"]
        keys = [k for k, _, _ in got]
        wkeys = [k for k, _, _ in want] + list(GGUF_KEYS)
        if keys != wkeys:
            missing = [k for k in wkeys if k not in keys]
            extra = [k for k in keys if k not in wkeys]
            if missing or extra:
                raise CheckFail(f"keys: missing {missing}, extra {extra}")
            i = next(i for i in range(len(keys)) if keys[i] != wkeys[i])
            raise CheckFail(f"key order differs at #{i}: {keys[i]!r}, expected {wkeys[i]!r} (source keys in order, then {', '.join(GGUF_KEYS)})")
        for (k, gt, graw), (_, wt, wraw) in zip(got, want):
            if gt != wt:
                raise CheckFail(f"{k!r} has type {gt}, source has {wt}")
            if graw != wraw:
                raise CheckFail(f"{k!r}: encoded value differs from the source")
        for k in GGUF_KEYS:
            t = st["out_kv"][k][0]
            if t != ["STRING"]:
                raise CheckFail(f"{k} has type {t}, expected STRING")
        if st["out"]["alignment"] != st["src"]["alignment"]:
            raise CheckFail(f"alignment {st['out']['alignment']}, source {st['src']['alignment']}")
        return f"{len(want)} source KVs in order + {', '.join(GGUF_KEYS)}"

    def temps():
        need()
        text = st["out_kv"].get(GGUF_KEYS[0], (None, None))[1]
        try:
            obj = json.loads(text)
        except Exception as e:
            raise CheckFail(f"{GGUF_KEYS[0]} is not JSON: {e}")
        check_table_obj(obj, ctx.table_scales, GGUF_KEYS[0])
        return None

    def checksum():
        need()
        v = st["out_kv"].get(GGUF_KEYS[1], (None, None))[1]
        want = source_checksum(src)
        if not isinstance(v, str) or not HEX64.fullmatch(v):
            raise CheckFail(f"{GGUF_KEYS[1]} = {v!r} is not 64 lowercase hex digits")
        if v != want:
            raise CheckFail(f"{GGUF_KEYS[1]} = {v}, sha256 of the source file is {want}")
        return f"{want[:16]}…"

    def tensor_infos():
        need()
        got = [(n, t, ne) for n, t, ne, _ in st["out"]["tensors"]]
        want = [(n, t, ne) for n, t, ne, _ in st["src"]["tensors"]]
        if got != want:
            if [g[0] for g in got] != [w[0] for w in want]:
                raise CheckFail(f"tensor names/order differ: {[g[0] for g in got][:4]}… vs {[w[0] for w in want][:4]}…")
            i = next(i for i in range(len(got)) if got[i] != want[i])
            raise CheckFail(f"{got[i][0]}: {got[i][1]} ne {got[i][2]}, source {want[i][1]} ne {want[i][2]}")
        return f"{len(got)} tensors, same order, types and ne"

    def scaled_pairs():
        heads, hd = geometry()
        out_by = {n: d for n, _, _, d in st["out"]["tensors"]}
        for name, tname, ne, raw in st["src"]["tensors"]:
            l = q_layer(name)
            if l is None or ctx.table_scales[l] is None:
                continue
            rows = ne[-1] if len(ne) > 1 else ne[0]
            if rows != heads * hd:
                raise CheckFail(f"{name}: {rows} rows, expected heads*head_dim = {heads * hd}")
            yield name, tname, ne, rows, raw, out_by.get(name, b""), head_rows(ctx.table_scales[l], hd)

    def scaled_plain():
        need()
        n = 0
        for name, tname, ne, rows, raw, got, s_rows in scaled_pairs():
            if tname not in PLAIN:
                continue
            shape = list(reversed(ne))
            want = expect_plain(raw, tname, shape, s_rows)
            if got != want:
                raise CheckFail(f"{name} ({tname}): {first_diff_elem(got, want, np.dtype(PLAIN[tname]).itemsize)}")
            n += 1
        return f"{n} tensors bit-exact"

    def scaled_bound():
        need()
        n, worst = 0, 0.0
        for name, tname, ne, rows, raw, got, s_rows in scaled_pairs():
            if tname in PLAIN:
                continue
            if tname not in SCALE_FIELDS:
                raise CheckFail(f"{name}: type {tname} not handled by this check")
            if len(got) != len(raw):
                raise CheckFail(f"{name}: {len(got)} bytes, source {len(raw)}")
            try:
                worst = max(worst, quant_bound(raw, got, tname, rows, s_rows))
            except CheckFail as e:
                raise CheckFail(f"{name} ({tname}): {e}")
            n += 1
        return f"{n} tensors, worst |error| / bound {worst:.4f}"

    def scaled_fields():
        need()
        n = 0
        for name, tname, ne, rows, raw, got, s_rows in scaled_pairs():
            if tname in PLAIN:
                continue
            want = expect_quant(raw, tname, rows, s_rows)
            if got != want:
                ts = GGML_QUANT_SIZES[QT[tname]][1]
                if len(got) == len(want):
                    a = np.frombuffer(got, np.uint8).reshape(-1, ts)
                    b = np.frombuffer(want, np.uint8).reshape(-1, ts)
                    mask = np.ones(ts, bool)
                    for off in SCALE_FIELDS[tname]:
                        mask[off : off + 2] = False
                    if not np.array_equal(a[:, mask], b[:, mask]):
                        blk = int(np.nonzero((a[:, mask] != b[:, mask]).any(axis=1))[0][0])
                        raise CheckFail(f"{name} ({tname}): bytes outside the fp16 scale fields changed (block {blk})")
                raise CheckFail(f"{name} ({tname}): scale fields: {first_diff_elem(got, want, ts)}")
            n += 1
        return f"{n} tensors" if n else "no quantised attn_q in this file"

    def untouched():
        need()
        out_by = {n: d for n, _, _, d in st["out"]["tensors"]}
        n = 0
        for name, _, _, raw in st["src"]["tensors"]:
            l = q_layer(name)
            if l is not None and ctx.table_scales[l] is not None:
                continue
            if out_by.get(name) != raw:
                raise CheckFail(f"{name} differs from the source")
            n += 1
        return f"{n} tensors"

    def vs_expected():
        need()
        return check_expected_json(ctx, case, {n: d for n, _, _, d in st["out"]["tensors"]})

    r.check(f"{fname}: metadata = source KVs (key, type, value, order) + {GGUF_KEYS[0]}, {GGUF_KEYS[1]} (STRING)", kvs)
    r.check(f"{fname}: {GGUF_KEYS[0]} is a table whose scales are the applied ones", temps)
    r.check(f"{fname}: {GGUF_KEYS[1]} is sha256 of the source file", checksum)
    r.check(f"{fname}: tensor infos (names, order, types, ne) as the source", tensor_infos)
    qtype = next((t for n, t, _, _ in read_gguf(src)["tensors"] if q_layer(n) is not None and n.endswith(".weight")), "F32")
    if qtype in PLAIN:
        r.check(f"{fname}: scaled attn_q tensors equal the numpy expectation bit for bit", scaled_plain)
    else:
        r.check(f"{fname}: scaled attn_q bias equals the numpy expectation bit for bit", scaled_plain)
        r.check(f"{fname}: dequantized attn_q within the fp16 bound of s*dequantize(source)", scaled_bound)
        r.check(f"{fname}: attn_q raw bytes equal the scale-field edit (codes untouched)", scaled_fields)
    r.check(f"{fname}: every other tensor byte-identical to the source", untouched)
    r.check(f"{fname}: every tensor's sha256 as in expected.json", vs_expected)


def run_refusal(r: Runner, ctx: Ctx, src_rel: str, out_name: str, bad_table: Path, fixture_tree_before):
    def refuse():
        before = tree(ctx.work)
        proc, cmdline = r.run("bake", ctx.fixtures / src_rel, "--temps", bad_table, "--out", ctx.work / out_name)
        if proc is None:
            raise CheckFail(cmdline)
        if proc.returncode == 0:
            raise CheckFail(f"`{cmdline}` exited 0")
        text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        if "does not fit" not in text:
            raise CheckFail(f"output does not contain 'does not fit': {text.strip()[-300:]!r}")
        if (ctx.work / out_name).exists():
            raise CheckFail(f"{out_name} exists after the refusal")
        after = tree(ctx.work)
        if after != before:
            raise CheckFail(f"WORKDIR changed: new {sorted(after - before)[:6]}, removed {sorted(before - after)[:6]}")
        if tree(ctx.fixtures) != fixture_tree_before:
            raise CheckFail("the fixtures folder's file tree changed")
        left = [str(p) for root in (ctx.work, ctx.fixtures) for p in root.rglob(PARTIAL_GLOB)]
        if left:
            raise CheckFail(f"partial files left: {left[:4]}")
        last = text.strip().splitlines()[-1][:140] if text.strip() else ""
        return f"exit {proc.returncode}: {last}"

    r.check(f"bake {src_rel} with a 5-head table: non-zero exit, 'does not fit', nothing left behind", refuse)


def bad_table_text() -> str:
    return json.dumps({"format": TABLE_FORMAT, "method": "headscale", "model": {"architecture": "llama", "layers": 3, "heads": 5, "head_dim": 16},
                       "training_length": 32, "target_length": 128, "scales": [[1.5] * 5, None, [2.0] * 5], "search": {}}) + "\n"


def owned(work: Path):
    names = ST_CASES + [PAPER, "bad.temps.json", "refused-st", "refused.gguf", "cross.gguf", "cross-hf"] + [f"tiny-{t}.gguf" for t in GGUF_TAGS]
    out = [work / n for n in names]
    out += list(work.glob(".*nopekit-partial*")) + list(work.glob(PARTIAL_GLOB))
    return out


def clean(work: Path):
    for p in owned(work):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def llamacpp_unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of convert_hf_to_gguf.py's LlamaModel.permute (rows of one head interleaved)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def run_cross_format(r: Runner, ctx: Ctx):
    """bake --format: HF F32 -> GGUF read by PyPI gguf (q rows = numpy's float32 product after
    undoing llama.cpp's Q permutation), GGUF Q8_0 -> HF folder read by PyPI safetensors (q rows
    = s * gguf.quants.dequantize(source) within one fp16 rounding of the block scales), with the
    provenance in both."""
    table = ctx.fixtures / "table.temps.json"
    src = ctx.fixtures / "st-f32"
    out = ctx.work / "cross.gguf"
    proc, cmdline = r.run("bake", src, "--temps", table, "--out", out, "--format", "gguf")
    if not r.check("bake st-f32 --format gguf exits 0", expect_success, proc, cmdline):
        return

    def to_gguf():
        cfg = json.loads((src / "config.json").read_text())
        heads, hd = cfg["num_attention_heads"], cfg["head_dim"]
        source = load_st(src / "model.safetensors")[1]
        reader = gguf.GGUFReader(str(out))
        kv = gguf_kv_values(out)
        tensors = {t.name: t for t in reader.tensors}
        checked = 0
        for layer, row in enumerate(ctx.table_scales):
            if row is None:
                continue
            t = tensors[f"blk.{layer}.attn_q.weight"]
            got = llamacpp_unpermute(np.asarray(t.data, dtype=np.float32).reshape(heads * hd, -1), heads)
            code, shape, raw = source[f"model.layers.{layer}.self_attn.q_proj.weight"]
            w = np.frombuffer(raw, dtype=PLAIN[code]).reshape(shape)
            want = (w.astype(np.float32) * head_rows(row, hd)[:, None]).astype(np.float32)
            if got.tobytes() != want.tobytes():
                raise CheckFail(f"blk.{layer}.attn_q.weight: {first_diff_elem(got.tobytes(), want.tobytes(), 4)}")
            checked += 1
        if kv.get("nopekit.source_sha256", (None, None))[1] != source_checksum(src / "model.safetensors"):
            raise CheckFail("nopekit.source_sha256 is not the source's sha256")
        check_table_obj(json.loads(kv["nopekit.temperatures"][1]), ctx.table_scales, "nopekit.temperatures")
        return f"{checked} q tensors equal numpy's product, provenance present"

    r.check("bake --format gguf: PyPI gguf reads it; scaled q rows exact; provenance", to_gguf)
    r.check("bake --format gguf: NAME.sha256 beside it holds its sha256",
            lambda: check_record(out.parent / (out.name + ".sha256"), [out.name]))

    gsrc = ctx.fixtures / "gguf" / "tiny-q8_0.gguf"
    hf = ctx.work / "cross-hf"
    proc, cmdline = r.run("bake", gsrc, "--temps", table, "--out", hf, "--format", "safetensors")
    if not r.check("bake tiny-q8_0.gguf --format safetensors exits 0", expect_success, proc, cmdline):
        return

    def to_hf():
        folder = load_folder(hf)
        cfg = folder["config"]
        if cfg.get("nopekit_source_sha256") != source_checksum(gsrc):
            raise CheckFail("config.json nopekit_source_sha256 is not the source's sha256")
        check_table_obj(cfg.get("nopekit_temperatures"), ctx.table_scales, "config.json nopekit_temperatures")
        meta, tensors = next(iter(folder["shards"].values()))
        if meta.get("nopekit_source_sha256") != cfg["nopekit_source_sha256"]:
            raise CheckFail("__metadata__ nopekit_source_sha256 differs from config.json's")
        heads, hd = cfg["num_attention_heads"], cfg["head_dim"]
        reader = gguf.GGUFReader(str(gsrc))
        src_t = {t.name: t for t in reader.tensors}
        worst = 0.0
        for layer, row in enumerate(ctx.table_scales):
            if row is None:
                continue
            t = src_t[f"blk.{layer}.attn_q.weight"]
            deq = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(heads * hd, -1)
            want = llamacpp_unpermute(deq, heads) * head_rows(row, hd)[:, None]
            code, shape, raw = tensors[f"model.layers.{layer}.self_attn.q_proj.weight"]
            got = np.frombuffer(raw, dtype=PLAIN[code]).reshape(shape).astype(np.float32)
            rel = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))
            worst = max(worst, rel)
        if worst > 2.0 ** -11:
            raise CheckFail(f"q rows differ from s * dequantize(source) by {worst:.3g} (> 2^-11)")
        return f"worst relative difference {worst:.2g} (fp16 scale rounding)"

    r.check("bake --format safetensors: PyPI safetensors reads it; q rows = s * dequantize; provenance", to_hf)
    r.check("bake --format safetensors: SHA256SUMS lists every other file with its sha256",
            lambda: check_record(hf / "SHA256SUMS", folder_record_names(hf)))


def run_all(r: Runner, fixtures: Path, work: Path, cross_format: bool = True) -> None:
    """Every check; ``cross_format`` off for the self-test, whose numpy bake keeps the source's format."""
    """Every bake and check.  Counts go to r.passed / r.failed."""
    fixtures, work = fixtures.resolve(), work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    clean(work)

    def fixtures_ok():
        missing = [p for p in ["table.temps.json"] + ST_CASES + [PAPER] + [f"gguf/tiny-{t}.gguf" for t in GGUF_TAGS] if not (fixtures / p).exists()]
        if missing:
            raise CheckFail(f"missing under {fixtures}: {missing} (run scripts/reference/make_bake_fixtures.py or pass --fixtures)")
        return str(fixtures)

    if not r.check("fixtures present", fixtures_ok):
        return
    table = json.loads((fixtures / "table.temps.json").read_text())
    table_scales = [None if row is None else [np.float32(v) for v in row] for row in table["scales"]]
    exp_path = fixtures / "expected.json"
    expected = json.loads(exp_path.read_text()) if exp_path.is_file() else None
    ctx = Ctx(fixtures, work, table_scales, expected)
    hashes_before = {p: sha256_file(p) for p in sorted(fixtures.rglob("*")) if p.is_file()}
    fixture_tree = tree(fixtures)

    for case in ST_CASES:
        run_st_case(r, ctx, case, from_checkpoint=False)
    run_st_case(r, ctx, PAPER, from_checkpoint=True)
    for t in GGUF_TAGS:
        run_gguf_case(r, ctx, f"tiny-{t}.gguf")
    if cross_format:
        run_cross_format(r, ctx)

    bad = work / "bad.temps.json"
    bad.write_text(bad_table_text())
    run_refusal(r, ctx, "st-f32", "refused-st", bad, fixture_tree)
    run_refusal(r, ctx, "gguf/tiny-q8_0.gguf", "refused.gguf", bad, fixture_tree)

    def no_partials():
        left = [str(p) for root in (work, fixtures) for p in root.rglob(PARTIAL_GLOB)]
        if left:
            raise CheckFail(f"partial files left: {left[:4]}")
        return None

    def untouched():
        now = {p: sha256_file(p) for p in sorted(fixtures.rglob("*")) if p.is_file()}
        changed = sorted(str(p.relative_to(fixtures)) for p in set(now) | set(hashes_before) if now.get(p) != hashes_before.get(p))
        if changed:
            raise CheckFail(f"fixture files changed, added or removed: {changed[:6]}")
        return f"{len(now)} files"

    r.check(f"no {PARTIAL_GLOB} files left in WORKDIR or the fixtures", no_partials)
    r.check("sources unchanged (sha256 of every file under the fixtures)", untouched)


# ---------------------------------------------------------------------------
# --self-test: this script's own numpy bake stands in for nopekit
# ---------------------------------------------------------------------------

TS_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


class Refuse(Exception):
    pass


def _scale_plain(raw, code, shape, s_rows, mutation):
    if mutation == "f16-single-rounding" and code == "F16":
        x = np.frombuffer(raw, np.float16).reshape(shape)
        s = s_rows.astype(np.float64).reshape((-1,) + (1,) * (len(shape) - 1))
        return np.ascontiguousarray((x.astype(np.float64) * s).astype(np.float16)).tobytes()
    # an element loop in Python floats: a different code path from expect_plain
    x = np.frombuffer(raw, PLAIN[code]).reshape(shape[0], -1)
    y = np.empty(x.shape, dtype=PLAIN[code])
    for i in range(x.shape[0]):
        s = np.float32(s_rows[i])
        y[i] = (x[i].astype(np.float32) * s).astype(PLAIN[code])
    return y.tobytes()


def _scale_quant(raw, tname, rows, s_rows, mutation):
    bs, ts = GGML_QUANT_SIZES[QT[tname]]
    b = bytearray(raw)
    per_row = len(raw) // rows
    for r_ in range(rows):
        s = float(s_rows[r_])
        for blk in range(r_ * per_row, (r_ + 1) * per_row, ts):
            for off in SCALE_FIELDS[tname]:
                o = blk + off
                old = float(np.frombuffer(bytes(b[o : o + 2]), np.float16)[0])
                new = np.float16(old * s)  # Python float product: exact; one rounding
                if mutation == "quant-truncate" and abs(float(new)) > abs(old * s):
                    new = np.nextafter(new, np.float16(0))  # round toward zero instead
                b[o : o + 2] = np.array([new], np.float16).tobytes()
    if mutation == "quant-code":
        b[ts * 3 + (ts - 1 if tname != "Q6_K" else 5)] ^= 0x11
    return bytes(b)


def _table_for(src: Path, temps: Path | None, from_checkpoint: bool, heads: int, hd: int, layers: int, scale_params):
    if from_checkpoint:
        if scale_params is None:
            raise Refuse(f"{src}: no scale_param tensors")
        scales = scale_params
        obj = {"format": TABLE_FORMAT, "method": "checkpoint", "model": {"architecture": "llama", "layers": layers, "heads": heads, "head_dim": hd},
               "scales": [[float(v) for v in row] for row in scales], "search": {}}
        return obj, scales
    obj = json.loads(Path(temps).read_text())
    m = obj["model"]
    if (m["layers"], m["heads"], m["head_dim"]) != (layers, heads, hd):
        raise Refuse(f"{temps}: does not fit this model: table is for {m['layers']} layers x {m['heads']} heads of {m['head_dim']}, the model has {layers} x {heads} of {hd}")
    return obj, [None if row is None else [np.float32(v) for v in row] for row in obj["scales"]]


def _bake_folder(src: Path, out: Path, temps, from_checkpoint: bool, mutation: str):
    cfg = json.loads((src / "config.json").read_text())
    heads, layers = cfg["num_attention_heads"], cfg["num_hidden_layers"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // heads
    files = sorted(p.name for p in src.iterdir())
    shards = [f for f in files if f.endswith(".safetensors")]
    loaded = {f: load_st(src / f) for f in shards}
    sp = None
    if from_checkpoint:
        allt = {n: v for _, (_, t) in loaded.items() for n, v in t.items()}
        if all(f"model.layers.{l}.self_attn.scale_param" in allt for l in range(layers)):
            sp = [[np.float32(v) for v in np.frombuffer(allt[f"model.layers.{l}.self_attn.scale_param"][2], BF16).astype(np.float32)] for l in range(layers)]
    obj, scales = _table_for(src, temps, from_checkpoint, heads, hd, layers, sp)
    sha = source_checksum(src)
    if mutation == "wrong-source-sha":
        sha = sha256_file(src / "config.json")
    tmp = out.parent / f".{out.name}.nopekit-partial"
    tmp.mkdir()
    moved = None
    for f in shards:
        md, tensors = loaded[f]
        new_md = dict(md or {})
        new_md["nopekit_temperatures"] = json.dumps(obj)
        if mutation != "st-metadata-missing":
            new_md["nopekit_source_sha256"] = sha
        out_t = {}
        for name, (code, shape, raw) in tensors.items():
            if from_checkpoint and name.endswith(".self_attn.scale_param") and mutation != "paper-keep-scale-param":
                continue
            l = q_layer(name)
            if l is not None and scales[l] is not None:
                s_rows = head_rows(scales[l], hd)
                raw = _scale_plain(raw, code, shape, s_rows, mutation)
            if mutation == "flip-unchanged" and name == "lm_head.weight":
                raw = bytes([raw[0] ^ 1]) + raw[1:]
            out_t[name] = (code, shape, raw)
        if mutation == "shard-move" and len(shards) > 1:
            if f == shards[-1] and "lm_head.weight" in out_t:
                moved = out_t.pop("lm_head.weight")
        tensors_by_file = out_t
        loaded[f] = (new_md, tensors_by_file)
    if moved is not None:
        loaded[shards[0]][1]["lm_head.weight"] = moved
    for f in shards:
        md, t = loaded[f]
        keep = {n: np.frombuffer(raw, np.uint8).copy() for n, (_, _, raw) in t.items()}
        specs = {n: safetensors.TensorSpec(dtype=TS_DTYPE[code], shape=list(shape), data_ptr=keep[n].ctypes.data, data_len=keep[n].nbytes) for n, (code, shape, _) in t.items()}
        safetensors.serialize_file(specs, str(tmp / f), md)
        del keep
    new_cfg = dict(cfg)
    new_cfg["nopekit_temperatures"] = obj
    new_cfg["nopekit_source_sha256"] = sha
    if mutation == "config-extra-key":
        new_cfg["nopekit_extra"] = True
    (tmp / "config.json").write_text(json.dumps(new_cfg, indent=2) + "\n")
    for f in files:
        if f.endswith(".safetensors") or f == "config.json":
            continue
        if mutation == "no-copy" and f == "generation_config.json":
            continue
        shutil.copyfile(src / f, tmp / f)
    if mutation == "touch-source":
        with open(src / "config.json", "a") as fh:
            fh.write(" ")
    record = checksum_lines(tmp, folder_record_names(tmp))
    if mutation == "record-stale":  # a record that no longer matches config.json
        record = record.replace(sha256_file(tmp / "config.json"), "0" * 64)
    (tmp / "SHA256SUMS").write_text(record)
    tmp.rename(out)


def _bake_gguf(src: Path, out: Path, temps, mutation: str):
    r = GGUFReader(str(src))
    kv = {k: f for k, f in r.fields.items() if not k.startswith("GGUF.")}
    arch = kv["general.architecture"].contents()
    heads = int(kv[f"{arch}.attention.head_count"].contents())
    layers = int(kv[f"{arch}.block_count"].contents())
    hd = int(kv[f"{arch}.attention.key_length"].contents())
    obj, scales = _table_for(src, temps, False, heads, hd, layers, None)
    sha = sha256_file(src)
    tmp = out.parent / f".{out.name}.nopekit-partial"
    w = GGUFWriter(str(tmp), arch)
    keys = list(kv)
    if keys[0] != "general.architecture":
        raise RuntimeError("self-test bake expects general.architecture first")
    for k in keys[1:]:
        if mutation == "gguf-drop-key" and k == "fixture.flag":
            continue
        f = kv[k]
        if f.types[0] == VT.ARRAY:
            w.add_key_value(k, f.contents(), VT.ARRAY, sub_type=f.types[-1])
        else:
            w.add_key_value(k, f.contents(), f.types[0])
    added = [(GGUF_KEYS[0], json.dumps(obj)), (GGUF_KEYS[1], sha)]
    if mutation == "gguf-key-order":
        added.reverse()
    for k, v in added:
        w.add_key_value(k, v, VT.STRING)
    for t in r.tensors:
        raw = np.ascontiguousarray(t.data).tobytes()
        tname = t.tensor_type.name
        ne = [int(x) for x in t.shape]
        shape = list(reversed(ne))
        l = q_layer(t.name)
        if l is not None and scales[l] is not None:
            rows = shape[0]
            s_rows = head_rows(scales[l], hd)
            if mutation == "quant-wrong-head" and tname not in PLAIN:
                s_rows = np.roll(s_rows, hd)
            raw = _scale_plain(raw, tname, shape, s_rows, mutation) if tname in PLAIN else _scale_quant(raw, tname, rows, s_rows, mutation)
        if tname == "F32":
            w.add_tensor(t.name, np.frombuffer(raw, np.float32).reshape(shape))
        elif tname == "F16":
            w.add_tensor(t.name, np.frombuffer(raw, np.float16).reshape(shape))
        else:
            w.add_tensor(t.name, np.frombuffer(raw, np.uint8).reshape(shape[0], -1), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    del r
    tmp.rename(out)
    (out.parent / (out.name + ".sha256")).write_text(checksum_lines(out.parent, [out.name]))


def reference_bake(argv, mutation: str = "none"):
    """(returncode, stdout, stderr) of a bake done in numpy (the self-test's stand-in for nopekit)."""
    args = [str(a) for a in argv]
    if not args or args[0] != "bake":
        return 2, b"", b"self-test bake: only 'bake' is implemented\n"
    src = Path(args[1])
    out = Path(args[args.index("--out") + 1])
    temps = args[args.index("--temps") + 1] if "--temps" in args else None
    from_checkpoint = "--from-checkpoint-scales" in args
    if out.exists():
        return 1, b"", f"{out}: exists; refusing to overwrite\n".encode()
    try:
        if src.is_dir():
            _bake_folder(src, out, temps, from_checkpoint, mutation)
        else:
            _bake_gguf(src, out, temps, mutation)
    except Refuse as e:
        if mutation == "partial-left":
            (out.parent / f".{out.name}.nopekit-partial").write_bytes(b"")
        msg = str(e) if mutation != "refuse-silent" else "bad table"
        return 1, b"", f"error: {msg}\n".encode()
    return 0, b"", f"baked {src} -> {out}\n".encode()


class SelfTestRunner(Runner):
    def __init__(self, workdir: Path, mutation: str = "none"):
        super().__init__(Path("<self-test numpy bake>"), workdir, 60.0)
        self.mutation = mutation

    def run(self, *args):
        cmdline = "self-test-bake " + " ".join(map(str, args))
        rc, out, err = reference_bake(args, self.mutation)
        return subprocess.CompletedProcess(list(map(str, args)), rc, out, err), cmdline


# mutation -> a substring of the check name that must FAIL
MUTATIONS = {
    "flip-unchanged": "st-f32: every other tensor byte-identical",
    "f16-single-rounding": "st-f16: scaled q_proj tensors equal the numpy expectation bit for bit",
    "quant-code": "tiny-q4_k.gguf: attn_q raw bytes equal the scale-field edit",
    "quant-truncate": "tiny-q8_0.gguf: attn_q raw bytes equal the scale-field edit",
    "quant-wrong-head": "tiny-q6_k.gguf: dequantized attn_q within the fp16 bound",
    "gguf-key-order": "tiny-f32.gguf: metadata = source KVs",
    "gguf-drop-key": "tiny-bf16.gguf: metadata = source KVs",
    "st-metadata-missing": "st-bf16: __metadata__ = source entries",
    "wrong-source-sha": "st-sharded: nopekit_source_sha256 is the source checksum",
    "record-stale": "st-f32: SHA256SUMS lists every other file with its sha256",
    "config-extra-key": "st-f32: config.json = source config",
    "shard-move": "st-sharded: tensor names, dtypes and shapes as the source",
    "paper-keep-scale-param": "paper: tensor names, dtypes and shapes as the source",
    "no-copy": "paper: other source files copied byte for byte",
    "touch-source": "sources unchanged",
    "partial-left": "with a 5-head table: non-zero exit, 'does not fit', nothing left behind",
    "refuse-silent": "with a 5-head table: non-zero exit, 'does not fit', nothing left behind",
}


def self_test(fixtures: Path, work: Path) -> int:
    t0 = time.monotonic()
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    copy = work / "selftest-fixtures"
    scratch = work / "selftest-out"

    def fresh():
        for p in (copy, scratch):
            if p.exists():
                shutil.rmtree(p)
        shutil.copytree(fixtures, copy)
        scratch.mkdir()

    print(f"self-test: numpy bake in place of nopekit; fixtures copied from {fixtures} to {copy}")
    fresh()
    r = SelfTestRunner(scratch)
    run_all(r, copy, scratch, cross_format=False)
    print(f"self-test clean run: {r.passed} passed, {r.failed} failed")
    ok = r.failed == 0
    bad_mutations = 0
    for m, want in MUTATIONS.items():
        fresh()
        rm = SelfTestRunner(scratch, m)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            run_all(rm, copy, scratch, cross_format=False)
        fails = [line for line in buf.getvalue().splitlines() if line.startswith("FAIL ")]
        hit = [line for line in fails if want in line]
        if hit:
            print(f"PASS self-test mutation {m}: caught ({len(fails)} FAIL lines) by: {hit[0][5:][:170]}")
        else:
            bad_mutations += 1
            print(f"FAIL self-test mutation {m}: expected a FAIL of '{want}', got {len(fails)} FAIL lines: {[f[:100] for f in fails[:3]]}")
    for p in (copy, scratch):
        shutil.rmtree(p, ignore_errors=True)
    print(f"elapsed {time.monotonic() - t0:.1f}s")
    print(f"self-test: clean run {'passed' if ok else 'FAILED'}; mutations caught {len(MUTATIONS) - bad_mutations}/{len(MUTATIONS)}")
    return 0 if ok and bad_mutations == 0 else 1


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="nopekit bake interop check against numpy, PyPI safetensors and gguf")
    ap.add_argument("--nopekit", type=Path, help="path to the nopekit executable")
    ap.add_argument("--workdir", required=True, type=Path, help="scratch directory (created; entries this script owns are replaced)")
    ap.add_argument("--fixtures", type=Path, default=REPO / "fixtures" / "bake", help="fixtures/bake directory (read only)")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-command timeout in seconds")
    ap.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.getLogger("gguf").setLevel(logging.ERROR)
    if args.self_test:
        return self_test(args.fixtures.resolve(), args.workdir)
    if args.nopekit is None:
        ap.error("--nopekit is required")
    t0 = time.monotonic()
    nopekit = args.nopekit.resolve()
    work = args.workdir.resolve()
    r = Runner(nopekit, work, args.timeout)
    print(f"interop: safetensors {importlib.metadata.version('safetensors')}, gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}; nopekit {nopekit}; workdir {work}")

    if r.check_binary():
        work.mkdir(parents=True, exist_ok=True)
        run_all(r, args.fixtures, work)
    print(f"elapsed {time.monotonic() - t0:.1f}s")
    print(f"interop: {r.passed} passed, {r.failed} failed")
    return 0 if r.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
