"""CI interop check: ``nopekit convert`` on GGUF files against PyPI gguf (gguf-py).

Usage (from the repository root; needs the pinned packages of
scripts/reference/requirements.txt)::

    .venv/bin/python scripts/interop/check_gguf.py \
        --nopekit .build/release/nopekit --workdir /tmp/nopekit-interop-gguf \
        [--fixtures fixtures/gguf] [--timeout 60]

What it does (deterministic, seeded; a few seconds plus nopekit's run time):

* writes ``WORKDIR/src.gguf`` with ``gguf.GGUFWriter``: ~40 KVs of every value
  type (u8 .. f64, bool, strings incl. empty / non-ASCII / newline, arrays of
  strings, f32, i32, u64, bool, f64) and 22 tensors of types F32, F16, BF16,
  Q8_0 and Q4_0 (from ``gguf.quants.quantize``), Q4_K (random blocks with
  valid fp16 scales) and I32, incl. a tensor with a trailing unit dimension
  (ne [8, 1], n_dims 2) and sizes that are not multiples of 32; and
  ``WORKDIR/src64.gguf``, the same with ``general.alignment`` = 64;
* runs (cwd = WORKDIR) ``NOPEKIT convert src.gguf out.gguf``, ``... src64.gguf
  out64.gguf``, ``... src.gguf split.gguf --max-shard-size 150K`` and
  ``... src.gguf single.gguf --max-shard-size 100M``;
* checks, with ``gguf.GGUFReader`` plus a strict layout check (llama.cpp's
  rules: tensor offsets contiguous in info order, each tensor padded with zeros
  to the alignment including the last one, data start aligned, no trailing
  bytes): the metadata KVs are identical (key, type, encoded bytes, in order;
  the reader's GGUF.* pseudo-fields excluded), the tensors are identical (name,
  type, ne incl. n_dims, data bytes, in order), and each output is
  byte-identical to what gguf-py's GGUFWriter writes for the same content (for
  a plain convert that is the source file itself);
* for the split: the file names, and every shard compared with the shards
  ``GGUFWriter(split_max_size=150000)`` writes for the same content (gguf-py's
  split layout: shard 1 carries all metadata followed by split.no (UINT16),
  split.count (UINT16), split.tensors.count (INT32); later shards carry only
  those three keys; tensors in source order, a new shard starts when the
  current one is non-empty and its unpadded tensor bytes plus the next tensor
  would exceed the limit); the union of the shards' tensors is the source;
  with a limit larger than the model gguf-py writes one plain file without
  split keys;
* the sources are unchanged (sha256);
* failing conversions (a fixture with misordered offsets, which gguf-py
  itself accepts; a truncated data section; with and without
  --max-shard-size) exit non-zero, name the file on stderr and leave nothing
  behind.

Size arguments use the nopekit rule: K/M/G/T are decimal (150K = 150000),
KiB/MiB/... binary.

Prints one line per check (PASS/FAIL; NOTE lines are informational only) and
ends with ``interop: N passed, M failed``.  Exit status 0 iff M == 0.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import shutil
import struct
import sys
import time
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType as VT, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import CheckFail, Runner, expect_success, parse_size, sha256_file, tree  # noqa: E402
SPLIT_LIMIT = "150K"
BIG_LIMIT = "100M"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def align_up(x: int, a: int) -> int:
    return x + (-x) % a


# ---------------------------------------------------------------------------
# source content (one spec, written by GGUFWriter for the source and for the
# reference shards)
# ---------------------------------------------------------------------------


def random_blocks(rng, qtype: QT, rows: int, cols: int, fp16_offsets):
    bs, ts = GGML_QUANT_SIZES[qtype]
    nblk = rows * cols // bs
    b = rng.integers(0, 256, size=(nblk, ts), dtype=np.uint8)
    for off in fp16_offsets:
        d = (10.0 ** rng.uniform(-3, 0, nblk) * np.where(rng.integers(0, 2, nblk) == 1, -1.0, 1.0)).astype(np.float16)
        b[:, off : off + 2] = d.view(np.uint8).reshape(nblk, 2)
    return b.reshape(rows, cols // bs * ts)


def make_spec(seed: int = 4242, alignment: int | None = None):
    """(kvs, tensors): kvs = [(key, value, vtype, sub_type)], tensors = [(name, array, raw_dtype)]."""
    rng = np.random.default_rng(seed)
    n_vocab, h, ff = 64, 256, 512
    tokens = ["<unk>", "<s>", "</s>", "", "\n", '"quoted"', "\u00e9t\u00e9", "\U0001F999", "\u2581the"] + [f"\u2581tok{i}" for i in range(n_vocab - 9)]
    kvs = [
        ("general.name", "interop source", VT.STRING, None),
    ]
    if alignment is not None:
        kvs.append(("general.alignment", alignment, VT.UINT32, None))
    kvs += [
        ("general.file_type", 7, VT.UINT32, None),
        ("general.quantization_version", 2, VT.UINT32, None),
        ("llama.block_count", 2, VT.UINT32, None),
        ("llama.context_length", 128, VT.UINT32, None),
        ("llama.embedding_length", h, VT.UINT32, None),
        ("llama.feed_forward_length", ff, VT.UINT32, None),
        ("llama.attention.head_count", 4, VT.UINT32, None),
        ("llama.attention.head_count_kv", 2, VT.UINT32, None),
        ("llama.rope.freq_base", 10000.0, VT.FLOAT32, None),
        ("llama.attention.layer_norm_rms_epsilon", 1e-5, VT.FLOAT32, None),
        ("test.u8", 255, VT.UINT8, None),
        ("test.i8", -7, VT.INT8, None),
        ("test.u16", 65535, VT.UINT16, None),
        ("test.i16", -300, VT.INT16, None),
        ("test.i32", -2**31, VT.INT32, None),
        ("test.u64", 2**64 - 1, VT.UINT64, None),
        ("test.i64", -(2**63), VT.INT64, None),
        ("test.f64", 2.0 ** -1074, VT.FLOAT64, None),
        ("test.f32.neg_zero", -0.0, VT.FLOAT32, None),
        ("test.bool.true", True, VT.BOOL, None),
        ("test.bool.false", False, VT.BOOL, None),
        ("test.str.empty", "", VT.STRING, None),
        ("test.str.utf8", "caf\u00e9 \u65e5\u672c \U0001F680\nsecond line \"q\"", VT.STRING, None),
        ("tokenizer.ggml.model", "llama", VT.STRING, None),
        ("tokenizer.ggml.tokens", tokens, VT.ARRAY, VT.STRING),
        ("tokenizer.ggml.scores", [float(np.float32(-i * 0.25)) for i in range(n_vocab)], VT.ARRAY, VT.FLOAT32),
        ("tokenizer.ggml.token_type", [2, 3, 3] + [1] * (n_vocab - 3), VT.ARRAY, VT.INT32),
        ("tokenizer.ggml.bos_token_id", 1, VT.UINT32, None),
        ("tokenizer.ggml.add_bos_token", True, VT.BOOL, None),
        ("tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}\n{% endfor %}", VT.STRING, None),
        ("test.arr.u64", [0, 1, 2**64 - 1], VT.ARRAY, VT.UINT64),
        ("test.arr.i16", [-32768, 0, 32767], VT.ARRAY, VT.INT16),
        ("test.arr.bool", [True, False, False, True], VT.ARRAY, VT.BOOL),
        ("test.arr.f64", [0.1, -2.5, 1e300], VT.ARRAY, VT.FLOAT64),
        ("test.arr.u8", [0, 128, 255], VT.ARRAY, VT.UINT8),
    ]

    def f32(*shape, scale=0.02):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def norm():
        return (1.0 + 0.02 * rng.standard_normal(h)).astype(np.float32)

    def q(qtype, rows, cols):
        return gguf.quants.quantize(f32(rows, cols), qtype)

    def q4k(rows, cols):
        return random_blocks(rng, QT.Q4_K, rows, cols, [0, 2])

    tensors = [("token_embd.weight", q4k(n_vocab, h), QT.Q4_K)]
    layer_types = [
        {"q": QT.Q8_0, "k": QT.Q4_0, "v": QT.F16, "o": QT.BF16, "gate": QT.Q4_K, "up": QT.Q8_0, "down": QT.Q4_0},
        {"q": QT.BF16, "k": QT.Q8_0, "v": QT.Q4_K, "o": QT.F16, "gate": QT.Q4_0, "up": QT.Q4_K, "down": QT.Q8_0},
    ]

    def weight(qtype, rows, cols):
        if qtype == QT.F16:
            return f32(rows, cols).astype(np.float16), None
        if qtype == QT.Q4_K:
            return q4k(rows, cols), QT.Q4_K
        return q(qtype, rows, cols), qtype  # BF16, Q8_0, Q4_0 via gguf.quants

    for i, lt in enumerate(layer_types):
        p = f"blk.{i}."
        tensors.append((p + "attn_norm.weight", norm(), None))
        for part, rows, cols in [("q", h, h), ("k", 64, h), ("v", 64, h), ("o", h, h)]:
            a, raw = weight(lt[part], rows, cols)
            name = p + ("attn_output.weight" if part == "o" else f"attn_{part}.weight")
            tensors.append((name, a, raw))
        tensors.append((p + "ffn_norm.weight", norm(), None))
        for part, rows, cols in [("gate", ff, h), ("up", ff, h), ("down", h, ff)]:
            a, raw = weight(lt[part], rows, cols)
            tensors.append((p + f"ffn_{part}.weight", a, raw))
    tensors.append(("output_norm.weight", norm(), None))
    tensors.append(("output.weight", q(QT.BF16, 320, h), QT.BF16))  # 163840 bytes: larger than the split limit
    ids = rng.integers(-(2**31), 2**31 - 1, size=17, dtype=np.int32)
    tensors.append(("test.ids", ids, None))
    tensors.append(("test.column", f32(1, 8), None))  # ne [8, 1]: trailing unit dim, n_dims 2
    tensors.append(("test.odd", f32(3), None))  # 12 bytes
    return kvs, tensors


def write_spec(path: Path, spec, split_max_size: int = 0):
    kvs, tensors = spec
    w = GGUFWriter(str(path), "llama", split_max_size=split_max_size)
    for key, val, vtype, sub in kvs:
        if key == "general.alignment":
            w.add_custom_alignment(val)
        else:
            w.add_key_value(key, val, vtype, sub_type=sub)
    for name, arr, raw in tensors:
        if raw is None:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------
# reading and comparing
# ---------------------------------------------------------------------------


def read_gguf(path: Path):
    """{'kvs': [(key, types, raw bytes)], 'tensors': [(name, type, ne, bytes)], 'alignment', 'data_offset'}."""
    try:
        r = GGUFReader(str(path))
    except Exception as e:
        raise CheckFail(f"gguf.GGUFReader rejects {path.name}: {type(e).__name__}: {e}")
    kvs = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        raw = b"".join(np.ascontiguousarray(p).tobytes() for p in f.parts)
        kvs.append((key, [t.name for t in f.types], raw))
    tensors = []
    for t in r.tensors:
        tensors.append((t.name, t.tensor_type.name, [int(x) for x in t.shape], np.ascontiguousarray(t.data).tobytes()))
    out = {"kvs": kvs, "tensors": tensors, "alignment": int(r.alignment), "data_offset": int(r.data_offset), "version": int(r.fields["GGUF.version"].contents())}
    del r
    return out


def layout_check(path: Path):
    """Strict layout (llama.cpp rules + exact size).  Returns a short summary."""
    buf = path.read_bytes()
    n = len(buf)
    pos = 0

    def rd(fmt):
        nonlocal pos
        k = struct.calcsize("<" + fmt)
        if pos + k > n:
            raise CheckFail(f"{path.name}: truncated at byte {pos}")
        (v,) = struct.unpack_from("<" + fmt, buf, pos)
        pos += k
        return v

    def rd_bytes(k):
        nonlocal pos
        if pos + k > n:
            raise CheckFail(f"{path.name}: string of {k} bytes at {pos} runs past the end")
        b = buf[pos : pos + k]
        pos += k
        return b

    if buf[:4] != b"GGUF":
        raise CheckFail(f"{path.name}: bad magic {buf[:4]!r}")
    pos = 4
    version = rd("I")
    n_t, n_kv = rd("Q"), rd("Q")
    alignment = 32
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    for _ in range(n_kv):
        key = rd_bytes(rd("Q"))
        vt = rd("I")
        if vt == 9:
            et, cnt = rd("I"), rd("Q")
            for _ in range(cnt):
                if et == 8:
                    rd_bytes(rd("Q"))
                else:
                    rd_bytes(sizes[et])
        elif vt == 8:
            rd_bytes(rd("Q"))
        else:
            v = rd_bytes(sizes[vt])
            if key == b"general.alignment":
                if vt != 4:
                    raise CheckFail(f"{path.name}: general.alignment has type {vt}")
                alignment = struct.unpack("<I", v)[0]
    infos = []
    for _ in range(n_t):
        name = rd_bytes(rd("Q")).decode("utf-8")
        nd = rd("I")
        ne = [rd("Q") for _ in range(nd)]
        tt = rd("I")
        off = rd("Q")
        bs, ts = GGML_QUANT_SIZES[QT(tt)]
        nb = int(np.prod(ne, dtype=object)) // bs * ts if ne else ts
        infos.append((name, off, nb))
    header_end = pos
    data = align_up(pos, alignment) if n_t else pos
    if any(buf[header_end:data]):
        raise CheckFail(f"{path.name}: non-zero bytes in the padding before the data section")
    expect = 0
    for name, off, nb in infos:
        if off != expect:
            raise CheckFail(f"{path.name}: tensor {name!r} at offset {off}, expected {expect} (contiguous, aligned to {alignment}, in info order)")
        pad = buf[data + off + nb : data + align_up(off + nb, alignment)]
        if any(pad):
            raise CheckFail(f"{path.name}: non-zero padding after tensor {name!r}")
        expect = align_up(off + nb, alignment)
    if n_t and data + expect != n:
        raise CheckFail(f"{path.name}: file is {n} bytes, expected data_offset {data} + {expect} (every tensor padded, no trailing bytes)")
    if not n_t and n not in (header_end, align_up(header_end, alignment)):
        raise CheckFail(f"{path.name}: tensor-less file is {n} bytes, header ends at {header_end}")
    return f"v{version}, alignment {alignment}, data at {data}, {n_t} tensors, {n} bytes"


def compare_kvs(got, want, label):
    gk = [k for k, _, _ in got]
    wk = [k for k, _, _ in want]
    if gk != wk:
        missing = [k for k in wk if k not in gk]
        extra = [k for k in gk if k not in wk]
        if missing or extra:
            raise CheckFail(f"{label}: keys differ: missing {missing[:6]}, extra {extra[:6]}")
        i = next(i for i in range(len(gk)) if gk[i] != wk[i])
        raise CheckFail(f"{label}: key order differs at #{i}: {gk[i]!r}, expected {wk[i]!r}")
    for (k, gt, graw), (_, wt, wraw) in zip(got, want):
        if gt != wt:
            raise CheckFail(f"{label}: key {k!r} has type {gt}, expected {wt}")
        if graw != wraw:
            raise CheckFail(f"{label}: key {k!r}: encoded value differs ({len(graw)} vs {len(wraw)} bytes)")


def compare_tensors(got, want, label):
    gn = [t[0] for t in got]
    wn = [t[0] for t in want]
    if gn != wn:
        if set(gn) != set(wn):
            raise CheckFail(f"{label}: tensors differ: missing {sorted(set(wn) - set(gn))[:5]}, extra {sorted(set(gn) - set(wn))[:5]}")
        i = next(i for i in range(len(gn)) if gn[i] != wn[i])
        raise CheckFail(f"{label}: tensor order differs at #{i}: {gn[i]!r}, expected {wn[i]!r}")
    for (name, gt, gne, gd), (_, wt, wne, wd) in zip(got, want):
        if gt != wt:
            raise CheckFail(f"{label}: {name!r} has type {gt}, expected {wt}")
        if gne != wne:
            raise CheckFail(f"{label}: {name!r} has ne {gne}, expected {wne} (n_dims must be kept)")
        if gd != wd:
            i = next(i for i in range(min(len(gd), len(wd))) if gd[i] != wd[i]) if len(gd) == len(wd) else -1
            raise CheckFail(f"{label}: {name!r}: data differs ({len(gd)} vs {len(wd)} bytes, first difference at byte {i})")


def first_diff(a: bytes, b: bytes) -> str:
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    return f"sizes {len(a)} vs reference {len(b)}; first difference at byte {i}"


# ---------------------------------------------------------------------------
# runner
# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="nopekit GGUF interop check against PyPI gguf")
    ap.add_argument("--nopekit", required=True, type=Path, help="path to the nopekit executable")
    ap.add_argument("--workdir", required=True, type=Path, help="scratch directory (created; entries this script owns are replaced)")
    ap.add_argument("--fixtures", type=Path, default=REPO / "fixtures" / "gguf", help="fixtures/gguf directory (for malformed inputs)")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-command timeout in seconds")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    logging.getLogger("gguf").setLevel(logging.ERROR)  # GGUFWriter warns when a split limit is not reached

    nopekit = args.nopekit.resolve()
    work = args.workdir.resolve()
    r = Runner(nopekit, work, args.timeout)
    print(f"interop: gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}; nopekit {nopekit}; workdir {work}")

    if not r.check_binary():
        print(f"interop: {r.passed} passed, {r.failed} failed")
        return 1

    # ---- sources and references ---------------------------------------------------
    work.mkdir(parents=True, exist_ok=True)
    owned_globs = ["src.gguf", "src64.gguf", "out.gguf", "out64.gguf", "split*.gguf", "single*.gguf", "ref", "bad_*.gguf", "out_bad*.gguf"]
    for pat in owned_globs:
        for p in work.glob(pat):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()

    spec = make_spec()
    spec64 = make_spec(seed=64, alignment=64)
    write_spec(work / "src.gguf", spec)
    write_spec(work / "src64.gguf", spec64)
    ref = work / "ref"
    ref.mkdir()
    split_limit = parse_size(SPLIT_LIMIT)
    write_spec(ref / "split.gguf", spec, split_max_size=split_limit)
    ref_shards = sorted(p.name for p in ref.glob("split*.gguf"))
    write_spec(ref / "single.gguf", spec, split_max_size=parse_size(BIG_LIMIT))

    bad = []
    for fixture, label in [("offset_gap.gguf", "misordered offsets"), ("data_truncated_mid_tensor.gguf", "truncated data")]:
        src = args.fixtures / "malformed" / fixture
        if src.is_file():
            shutil.copyfile(src, work / f"bad_{fixture}")
        bad.append((f"bad_{fixture}", label))
    sources = [work / "src.gguf", work / "src64.gguf"] + [work / b for b, _ in bad if (work / b).exists()]
    hashes_before = {p: sha256_file(p) for p in sources}
    src_read = read_gguf(work / "src.gguf")
    src64_read = read_gguf(work / "src64.gguf")

    # ---- plain conversions -----------------------------------------------------
    for src_name, out_name, src_r in [("src.gguf", "out.gguf", src_read), ("src64.gguf", "out64.gguf", src64_read)]:
        proc, cmdline = r.run("convert", src_name, out_name)
        r.check(f"convert {src_name} {out_name} exits 0", expect_success, proc, cmdline)
        out = work / out_name
        state = {}

        def accept(out=out, state=state):
            if not out.is_file():
                raise CheckFail(f"{out.name} was not created")
            state["r"] = read_gguf(out)
            return f"{len(state['r']['kvs'])} KVs, {len(state['r']['tensors'])} tensors"

        def layout(out=out, state=state):
            if "r" not in state:
                raise CheckFail("no readable output")
            return layout_check(out)

        def same_kvs(state=state, src_r=src_r, out_name=out_name):
            if "r" not in state:
                raise CheckFail("no readable output")
            compare_kvs(state["r"]["kvs"], src_r["kvs"], out_name)
            if state["r"]["alignment"] != src_r["alignment"]:
                raise CheckFail(f"alignment {state['r']['alignment']}, source has {src_r['alignment']}")
            return f"alignment {src_r['alignment']}"

        def same_tensors(state=state, src_r=src_r, out_name=out_name):
            if "r" not in state:
                raise CheckFail("no readable output")
            compare_tensors(state["r"]["tensors"], src_r["tensors"], out_name)
            return None

        def identical(out=out, src_name=src_name):
            if not out.is_file():
                raise CheckFail(f"{out.name} was not created")
            a, b = out.read_bytes(), (work / src_name).read_bytes()
            if a != b:
                raise CheckFail(f"not byte-identical to {src_name} (= GGUFWriter output): {first_diff(a, b)}")
            return None

        r.check(f"{out_name}: gguf.GGUFReader accepts it", accept)
        r.check(f"{out_name}: layout (contiguous aligned offsets, zero padding incl. the last tensor, no trailing bytes)", layout)
        r.check(f"{out_name}: metadata KVs identical to {src_name} (keys, types, encoded values, order)", same_kvs)
        r.check(f"{out_name}: tensors identical to {src_name} (names, types, ne, data, order)", same_tensors)
        r.check(f"{out_name}: byte-identical to {src_name}", identical)

    # ---- split -------------------------------------------------------------------
    proc, cmdline = r.run("convert", "src.gguf", "split.gguf", "--max-shard-size", SPLIT_LIMIT)
    r.check(f"convert src.gguf split.gguf --max-shard-size {SPLIT_LIMIT} exits 0", expect_success, proc, cmdline)
    sstate = {}

    def split_names():
        got = sorted(p.name for p in work.glob("split*.gguf"))
        if got != ref_shards:
            raise CheckFail(f"files {got}, gguf-py writes {ref_shards}")
        sstate["names"] = got
        return f"{len(got)} shards: {', '.join(got)}"

    def split_readable():
        if "names" not in sstate:
            raise CheckFail("shard files missing or misnamed")
        sstate["r"] = {n: read_gguf(work / n) for n in sstate["names"]}
        return ", ".join(layout_check(work / n).split(",")[3].strip() for n in sstate["names"])

    def split_kvs():
        if "r" not in sstate:
            raise CheckFail("no readable shards")
        n = len(sstate["names"])
        total = len(src_read["tensors"])
        for i, name in enumerate(sstate["names"]):
            got = sstate["r"][name]["kvs"]
            want = read_gguf(ref / name)["kvs"]
            compare_kvs(got, want, name)
            split = {k: (t, raw) for k, t, raw in got if k.startswith("split.")}
            vals = {
                "split.no": (["UINT16"], struct.pack("<H", i)),
                "split.count": (["UINT16"], struct.pack("<H", n)),
                "split.tensors.count": (["INT32"], struct.pack("<i", total)),
            }
            for k, (t, v) in vals.items():
                if k not in split or split[k][0] != t or not split[k][1].endswith(v):
                    raise CheckFail(f"{name}: {k} missing or wrong (want {t[0]} {struct.unpack('<' + ('H' if t[0] == 'UINT16' else 'i'), v)[0]})")
        first = [k for k, _, _ in sstate["r"][sstate["names"][0]]["kvs"]]
        src_keys = [k for k, _, _ in src_read["kvs"]]
        if first != src_keys + ["split.no", "split.count", "split.tensors.count"]:
            raise CheckFail(f"shard 1 keys are not the source keys followed by the 3 split keys: {first[-5:]}")
        return "shard 1: all source KVs + split.no/count/tensors.count; others: the 3 split keys only"

    def split_tensors():
        if "r" not in sstate:
            raise CheckFail("no readable shards")
        union = []
        for name in sstate["names"]:
            got = sstate["r"][name]["tensors"]
            want = read_gguf(ref / name)["tensors"]
            compare_tensors(got, want, name)
            union += got
        compare_tensors(union, src_read["tensors"], "union of the shards")
        sizes = [sum(len(t[3]) for t in sstate["r"][n]["tensors"]) for n in sstate["names"]]
        return f"tensor bytes per shard {sizes}"

    def split_identical():
        if "names" not in sstate:
            raise CheckFail("shard files missing or misnamed")
        for name in sstate["names"]:
            a, b = (work / name).read_bytes(), (ref / name).read_bytes()
            if a != b:
                raise CheckFail(f"{name} is not byte-identical to gguf-py's shard: {first_diff(a, b)}")
        return None

    def split_no_plain():
        if (work / "split.gguf").exists():
            raise CheckFail("split.gguf (unsplit name) was also written")
        return None

    r.check("split: file names as gguf-py (split-0000i-of-0000N.gguf)", split_names)
    r.check("split: every shard accepted by gguf.GGUFReader and the layout check", split_readable)
    r.check("split: KVs per shard as gguf-py (shard 1 all + split keys, others split keys only; split.no/count UINT16, split.tensors.count INT32)", split_kvs)
    r.check("split: tensors per shard as gguf-py, union == source in order", split_tensors)
    r.check("split: every shard byte-identical to GGUFWriter(split_max_size=...)", split_identical)
    r.check("split: no unsplit split.gguf left next to the shards", split_no_plain)

    proc, cmdline = r.run("convert", "src.gguf", "single.gguf", "--max-shard-size", BIG_LIMIT)
    r.check(f"convert src.gguf single.gguf --max-shard-size {BIG_LIMIT} exits 0", expect_success, proc, cmdline)

    def single():
        got = sorted(p.name for p in work.glob("single*.gguf"))
        if got != ["single.gguf"]:
            raise CheckFail(f"files {got}; gguf-py writes one plain single.gguf when everything fits in one shard")
        a, b = (work / "single.gguf").read_bytes(), (ref / "single.gguf").read_bytes()
        if a != b:
            raise CheckFail(f"not byte-identical to gguf-py's output (no split keys): {first_diff(a, b)}")
        return None

    r.check(f"--max-shard-size {BIG_LIMIT} (larger than the model): one plain single.gguf without split keys, as gguf-py", single)

    # ---- sources untouched -----------------------------------------------------
    def untouched():
        changed = [p.name for p, h in hashes_before.items() if not p.exists() or sha256_file(p) != h]
        if changed:
            raise CheckFail(f"source files changed: {changed}")
        return f"{len(hashes_before)} files"

    r.check("sources unchanged (sha256)", untouched)

    # ---- failures leave nothing behind ---------------------------------------------
    for bad_name, label in bad:
        for extra in ([], ["--max-shard-size", "1K"]):

            def fail(bad_name=bad_name, extra=extra):
                if not (work / bad_name).is_file():
                    raise CheckFail(f"fixture {bad_name[4:]} not found under {args.fixtures / 'malformed'} (use --fixtures)")
                before = tree(work)
                proc, cmdline = r.run("convert", bad_name, "out_bad.gguf", *extra)
                if proc is None:
                    raise CheckFail(cmdline)
                if proc.returncode == 0:
                    raise CheckFail(f"`{cmdline}` exited 0")
                err = proc.stderr.decode("utf-8", "replace")
                if bad_name not in err:
                    raise CheckFail(f"stderr does not mention {bad_name}: {err.strip()[:300]!r}")
                after = tree(work)
                if after != before:
                    raise CheckFail(f"left files behind: {sorted(after - before)[:10]}; removed: {sorted(before - after)[:10]}")
                last = err.strip().splitlines()[-1][:140] if err.strip() else ""
                return f"exit {proc.returncode}: {last}"

            suffix = " --max-shard-size 1K" if extra else ""
            r.check(f"convert {bad_name}{suffix} ({label}): non-zero exit, stderr names the file, nothing left behind", fail)

    print(f"elapsed {time.monotonic() - t0:.1f}s")
    print(f"interop: {r.passed} passed, {r.failed} failed")
    return 0 if r.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
