"""CI interop check: ``nopekit convert`` against the PyPI safetensors reference.

Usage (from the repository root; needs the pinned packages of
scripts/reference/requirements.txt)::

    .venv/bin/python scripts/interop/check_safetensors.py \
        --nopekit .build/release/nopekit --workdir /tmp/nopekit-interop \
        [--fixtures fixtures/safetensors] [--timeout 30]

What it does (deterministic, seeded; takes a few seconds):

* writes ``WORKDIR/src.safetensors`` with ``safetensors.serialize`` (F32 with
  NaN/inf/-0/subnormals and exact bf16/f16 rounding ties, all F16 and BF16 bit
  patterns, F64 incl. float32 rounding ties, F8_E4M3 all patterns, I64, I32,
  U8, BOOL, a scalar and an empty tensor; metadata {"format": "pt"}) and a
  2-shard F32 tiny-Llama HF folder ``WORKDIR/src_folder``;
* runs ``NOPEKIT convert src.safetensors out_X.safetensors --dtype X`` for X in
  f32, f16, bf16 and ``NOPEKIT convert src_folder out_folder --dtype bf16
  --max-shard-size 20K`` (cwd = WORKDIR);
* checks: (a) the reference reader accepts each output and every tensor has
  the expected dtype/shape/values bit for bit (NaN == NaN); expected values
  are ml_dtypes/numpy conversions: ``src.astype(float32).astype(target)`` for
  F64 sources, ``src.astype(target)`` for other float sources, integer/bool
  tensors copied unchanged; (b) each output file is byte-identical to what
  ``safetensors.serialize`` writes for the expected tensors with the metadata
  read back from the output (NaN bit patterns taken from the output); (c) the
  folder: shard names, index weight_map/total_size, shard size limit,
  config.json torch_dtype; (d) the sources are unchanged (sha256); (e) failing
  conversions exit non-zero and leave nothing behind.

Prints one line per check (PASS/FAIL; NOTE lines are informational only) and
ends with ``interop: N passed, M failed``.  Exit status 0 iff M == 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np
import safetensors

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import CheckFail, Runner, expect_success, parse_size, sha256_file, tree  # noqa: E402
from hf_layout import TINY_CONFIG, hf_split, llama_tensor_shapes  # noqa: E402

# header code -> numpy dtype (for decoding raw bytes)
NP_OF_CODE = {
    "BOOL": np.bool_,
    "U8": np.uint8,
    "I8": np.int8,
    "U16": np.uint16,
    "I16": np.int16,
    "U32": np.uint32,
    "I32": np.int32,
    "U64": np.uint64,
    "I64": np.int64,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "F32": np.float32,
    "F64": np.float64,
    "F8_E4M3": ml_dtypes.float8_e4m3fn,
    "F8_E5M2": ml_dtypes.float8_e5m2,
    "F8_E8M0": ml_dtypes.float8_e8m0fnu,
    "F8_E4M3FNUZ": ml_dtypes.float8_e4m3fnuz,
    "F8_E5M2FNUZ": ml_dtypes.float8_e5m2fnuz,
}
# header code -> TensorSpec dtype string
TS_OF_CODE = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "U32": "uint32",
    "I32": "int32",
    "U64": "uint64",
    "I64": "int64",
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E8M0": "float8_e8m0fnu",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
}
FLOAT_CODES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ"}
TARGETS = {"f32": ("F32", np.float32), "f16": ("F16", np.float16), "bf16": ("BF16", ml_dtypes.bfloat16)}
UINT_OF_SIZE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def read_header(buf: bytes):
    if len(buf) < 8:
        raise CheckFail("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", buf[:8])
    if 8 + n > len(buf):
        raise CheckFail(f"header length {n} past end of file")
    try:
        header = json.loads(buf[8 : 8 + n].decode("utf-8"))
    except Exception as e:
        raise CheckFail(f"header is not UTF-8 JSON: {e}")
    if not isinstance(header, dict):
        raise CheckFail("header is not a JSON object")
    return n, header


def metadata_keys(buf: bytes):
    _, h = read_header(buf)
    md = h.get("__metadata__")
    return None if md is None else list(md.keys())


def serialize_ref(arrays: dict, metadata, want_bytes: bytes | None = None, attempts: int = 1):
    """PyPI serialize of {name: (code, ndarray)}.  If ``want_bytes`` is given and the
    metadata has several keys, retry (up to ``attempts``) because the Rust
    writer emits metadata keys in random HashMap order."""
    keep = []
    specs = {}
    for name, (code, arr) in arrays.items():
        arr = np.asarray(arr)
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")
        keep.append(arr)
        specs[name] = safetensors.TensorSpec(dtype=TS_OF_CODE[code], shape=list(arr.shape), data_ptr=arr.ctypes.data, data_len=arr.nbytes)
    buf = bytes(safetensors.serialize(specs, metadata))
    tries = 1
    while want_bytes is not None and buf != want_bytes and metadata and len(metadata) > 1 and tries < attempts:
        buf = bytes(safetensors.serialize(specs, metadata))
        tries += 1
    del keep
    return buf


def load_ref(buf: bytes):
    """Reference reader: {name: (code, ndarray)} (raises on rejection)."""
    out = {}
    for name, info in safetensors.deserialize(buf):
        code = info["dtype"]
        if code not in NP_OF_CODE:
            raise CheckFail(f"tensor {name!r} has dtype {code} which this check cannot decode")
        arr = np.frombuffer(bytes(info["data"]), dtype=NP_OF_CODE[code]).reshape(info["shape"])
        out[name] = (code, arr)
    return out


def expected_conversion(code: str, arr: np.ndarray, target: str):
    tcode, tnp = TARGETS[target]
    if code not in FLOAT_CODES:
        return code, arr
    with np.errstate(over="ignore", invalid="ignore"):
        if code == "F64":
            return tcode, arr.astype(np.float32).astype(tnp)
        return tcode, arr.astype(tnp)


def isnan_any(arr: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        return np.isnan(arr.astype(np.float64))


def compare_tensors(got: dict, exp: dict, label: str):
    """Bit-exact comparison with NaN == NaN.  Raises CheckFail."""
    if set(got) != set(exp):
        raise CheckFail(f"{label}: tensor names differ: missing {sorted(set(exp) - set(got))[:5]}, extra {sorted(set(got) - set(exp))[:5]}")
    for name in sorted(exp):
        ecode, earr = exp[name]
        gcode, garr = got[name]
        if gcode != ecode:
            raise CheckFail(f"{label}: {name!r}: dtype {gcode}, expected {ecode}")
        if list(garr.shape) != list(earr.shape):
            raise CheckFail(f"{label}: {name!r}: shape {list(garr.shape)}, expected {list(earr.shape)}")
        if earr.size == 0:
            continue
        u = UINT_OF_SIZE[earr.dtype.itemsize]
        bad = earr.reshape(-1).view(u) != garr.reshape(-1).view(u)
        if ecode in FLOAT_CODES:
            bad &= ~(isnan_any(earr.reshape(-1)) & isnan_any(garr.reshape(-1)))
        if bad.any():
            idx = np.flatnonzero(bad)
            i = int(idx[0])
            ev, gv = earr.reshape(-1)[i], garr.reshape(-1)[i]
            raise CheckFail(f"{label}: {name!r}: {idx.size} element(s) differ; first at flat index {i}: got {gv!r} ({_bits(garr, i)}), expected {ev!r} ({_bits(earr, i)})")


def _bits(arr, i):
    sz = arr.dtype.itemsize
    return "0x" + format(int(arr.reshape(-1)[i : i + 1].view(UINT_OF_SIZE[sz])[0]), f"0{2 * sz}x")


def adopt_nan_bits(exp: dict, got: dict) -> dict:
    """Copy of ``exp`` whose NaN elements carry the bit patterns of ``got`` (when
    ``got`` is NaN there too), so a byte comparison only checks layout."""
    out = {}
    for name, (code, earr) in exp.items():
        if code in FLOAT_CODES and name in got and got[name][1].shape == earr.shape and got[name][0] == code and earr.size:
            garr = got[name][1]
            u = UINT_OF_SIZE[earr.dtype.itemsize]
            eb = earr.reshape(-1).view(u).copy()
            gb = garr.reshape(-1).view(u)
            m = isnan_any(earr.reshape(-1)) & isnan_any(garr.reshape(-1))
            eb[m] = gb[m]
            out[name] = (code, eb.view(earr.dtype).reshape(earr.shape))
        else:
            out[name] = (code, earr)
    return out


def first_diff(a: bytes, b: bytes) -> str:
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    na = struct.unpack("<Q", a[:8])[0] if len(a) >= 8 else -1
    nb = struct.unpack("<Q", b[:8])[0] if len(b) >= 8 else -1
    where = "length field" if i < 8 else ("header" if i < 8 + max(na, 0) else "data")
    msg = f"sizes {len(a)} vs reference {len(b)}, header lengths {na} vs {nb}; first difference at byte {i} ({where})"
    if na >= 0 and nb >= 0 and 8 + na <= len(a) and 8 + nb <= len(b) and a[8 : 8 + na] != b[8 : 8 + nb]:
        msg += f"\n      ours: {a[8 : 8 + na][:400]!r}\n      ref : {b[8 : 8 + nb][:400]!r}"
    return msg


def check_byte_identical(buf: bytes, got: dict, exp: dict, label: str):
    _, header = read_header(buf)
    metadata = header.get("__metadata__") if "__metadata__" in header else None
    ref = serialize_ref(adopt_nan_bits(exp, got), metadata, want_bytes=buf, attempts=5000)
    if ref != buf:
        raise CheckFail(f"{label}: not byte-identical to safetensors.serialize: {first_diff(buf, ref)}")


# ---------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------


def f32_from_bits(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def make_f32_big(rng):
    """~300k F32 values: specials and exact rounding ties first, then randoms."""
    specials = [
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000,  # +-0, +-inf
        0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FC00001, 0xFFFFFFFF,  # NaNs
        0x00000001, 0x80000001, 0x007FFFFF, 0x00400000, 0x00800000, 0x80800000,  # subnormals, min normal
        0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000,
        # bf16 ties (low 16 bits == 0x8000) / near ties
        0x3F808000, 0x3F818000, 0xBF808000, 0xBF818000, 0x3F807FFF, 0x3F808001,
        0x7F7F8000, 0x7F7F7FFF, 0xFF7F8000,  # tie at bf16 max -> inf; just below -> max
        0x00008000, 0x00018000, 0x80008000,  # ties among bf16 subnormals
        0x7F808000,  # sNaN whose payload would vanish on truncation
    ]
    ties = []
    # f16 normal ties: f16 value x plus half an f16 ulp (low 13 bits of the f32 == 0x1000)
    for b16 in rng.integers(0x0400, 0x7BFF, size=64):
        x = np.array([b16], dtype=np.uint16).view(np.float16).astype(np.float32).view(np.uint32)[0]
        ties.append(int(x) | 0x1000)
        ties.append(int(x) | 0x1000 | 0x80000000)
        ties.append(int(x) | 0x0FFF)
        ties.append(int(x) | 0x1001)
    f16_edges = np.array(
        [65504.0, 65519.0, 65520.0, 65536.0, -65520.0, 2.0**-24, 2.0**-25, 3 * 2.0**-25, 5 * 2.0**-25, 2.0**-25 * 1.0001, 2.0**-26,
         2.0**-14 - 2.0**-25, 2.0**-14, -(2.0**-25), 1e-8, 1e5, -1e5],
        dtype=np.float32,
    )
    head = np.concatenate([f32_from_bits(specials), f32_from_bits(ties), f16_edges])
    n = 600 * 500
    body = (rng.standard_normal(n - head.size) * np.exp2(rng.integers(-30, 20, n - head.size))).astype(np.float32)
    return np.concatenate([head, body]).reshape(600, 500)


def make_f64(rng):
    f32max = (2.0 - 2.0**-23) * 2.0**127
    vals = [
        0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
        1.0 + 2.0**-24, 1.0 + 3 * 2.0**-24, 1.0 + 2.0**-24 + 2.0**-40, -(1.0 + 2.0**-24),
        f32max + 2.0**103, f32max + 2.0**103 - 2.0**80, 2.0**-150, 3 * 2.0**-150, 2.0**-126 - 2.0**-150,
        # would round differently directly to bf16 than via float32 (double rounding)
        1.0 + 2.0**-8 + 2.0**-30, 1.0 + 2.0**-11 + 2.0**-30, 65519.99, 1e-50, 1e300,
    ]
    body = rng.standard_normal(4096 - len(vals)) * np.exp2(rng.integers(-40, 40, 4096 - len(vals)))
    return np.concatenate([np.array(vals, dtype=np.float64), body]).reshape(64, 64)


def source_tensors():
    rng = np.random.default_rng(1234)
    i64 = rng.integers(-(2**63), 2**63 - 1, size=1000, dtype=np.int64, endpoint=True)
    i64[:3] = [-(2**63), 2**63 - 1, 0]
    i32 = rng.integers(-(2**31), 2**31 - 1, size=(64, 64), dtype=np.int32, endpoint=True)
    i32[0, :2] = [-(2**31), 2**31 - 1]
    t = {
        "model.f32_big": ("F32", make_f32_big(rng)),
        "model.f16_all": ("F16", np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).reshape(256, 256)),
        "model.bf16_all": ("BF16", np.arange(65536, dtype=np.uint32).astype(np.uint16).view(ml_dtypes.bfloat16).reshape(256, 256)),
        "model.f64_values": ("F64", make_f64(rng)),
        "model.f8_e4m3_all": ("F8_E4M3", np.arange(256, dtype=np.uint16).astype(np.uint8).view(ml_dtypes.float8_e4m3fn).reshape(16, 16)),
        "ids.i64": ("I64", i64),
        "ids.i32": ("I32", i32),
        "mask.u8": ("U8", rng.integers(0, 256, size=300, dtype=np.uint8)),
        "mask.bool": ("BOOL", rng.integers(0, 2, size=17).astype(np.bool_)),
        "scalar.f32": ("F32", np.array(-1.5, dtype=np.float32)),
        "empty.bf16": ("BF16", np.zeros((0, 8), dtype=ml_dtypes.bfloat16)),
        # name ordering / JSON escaping probes (byte order: 'Z' < 'a', "10" < "2")
        "layers.10.w": ("F32", rng.standard_normal((3, 5)).astype(np.float32)),
        "layers.2.w": ("F32", rng.standard_normal((5, 3)).astype(np.float32)),
        "Z.upper": ("F16", rng.standard_normal(7).astype(np.float16)),
        'odd/name "quoted" \u00e9': ("F32", rng.standard_normal(4).astype(np.float32)),
    }
    return t


def llama_tensors(cfg, rng):
    return {name: ("F32", (0.02 * rng.standard_normal(shape)).astype(np.float32)) for name, shape in llama_tensor_shapes(cfg)}


def write_source_folder(folder: Path, tensors: dict):
    folder.mkdir(parents=True)
    plan = hf_split([(k, a.nbytes) for k, (_, a) in tensors.items()], 70_000)
    assert len(plan) == 2
    weight_map = {}
    for i, names in enumerate(plan, start=1):
        fname = f"model-{i:05d}-of-{len(plan):05d}.safetensors"
        (folder / fname).write_bytes(serialize_ref({k: tensors[k] for k in names}, {"format": "pt"}))
        weight_map.update({k: fname for k in names})
    total = sum(a.nbytes for _, a in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------
# runner
# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="nopekit safetensors interop check against the PyPI reference")
    ap.add_argument("--nopekit", required=True, type=Path, help="path to the nopekit executable")
    ap.add_argument("--workdir", required=True, type=Path, help="scratch directory (created; entries this script owns are replaced)")
    ap.add_argument("--fixtures", type=Path, default=REPO / "fixtures" / "safetensors", help="fixtures/safetensors directory (for malformed/gap_offsets.safetensors)")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-command timeout in seconds")
    args = ap.parse_args(argv)
    t0 = time.monotonic()

    nopekit = args.nopekit.resolve()
    work = args.workdir.resolve()
    r = Runner(nopekit, work, args.timeout)
    print(f"interop: safetensors {safetensors.__version__}, numpy {np.__version__}, ml_dtypes {ml_dtypes.__version__}; nopekit {nopekit}; workdir {work}")

    if not r.check_binary():
        print(f"interop: {r.passed} passed, {r.failed} failed")
        return 1

    # ---- sources ------------------------------------------------------------
    work.mkdir(parents=True, exist_ok=True)
    owned = ["src.safetensors", "src_folder", "out_f32.safetensors", "out_f16.safetensors", "out_bf16.safetensors", "out_folder",
             "missing_parent", "bad_input.safetensors", "out_bad.safetensors", "bad_folder", "out_bad_folder"]
    for name in owned:
        p = work / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()

    src = source_tensors()
    src_bytes = serialize_ref(src, {"format": "pt"})
    (work / "src.safetensors").write_bytes(src_bytes)
    folder_tensors = llama_tensors(TINY_CONFIG, np.random.default_rng(99))
    write_source_folder(work / "src_folder", folder_tensors)
    gap = args.fixtures / "malformed" / "gap_offsets.safetensors"
    if gap.is_file():
        shutil.copyfile(gap, work / "bad_input.safetensors")
    source_files = [work / "src.safetensors"] + sorted((work / "src_folder").iterdir())
    if (work / "bad_input.safetensors").exists():
        source_files.append(work / "bad_input.safetensors")
    hashes_before = {p: sha256_file(p) for p in source_files}
    src_ref = load_ref(src_bytes)  # decode through the reference reader

    # ---- single-file conversions (a), (b) ---------------------------------------
    for target in ("f32", "f16", "bf16"):
        out = work / f"out_{target}.safetensors"
        proc, cmdline = r.run("convert", "src.safetensors", out.name, "--dtype", target)
        r.check(f"convert --dtype {target} exits 0", expect_success, proc, cmdline)
        state = {}

        def accept(out=out, state=state):
            if not out.is_file():
                raise CheckFail(f"{out.name} was not created")
            buf = out.read_bytes()
            try:
                state["got"] = load_ref(buf)
            except CheckFail:
                raise
            except Exception as e:
                raise CheckFail(f"safetensors.deserialize rejects {out.name}: {e}")
            state["buf"] = buf
            return f"{len(state['got'])} tensors, {len(buf)} bytes"

        def values(target=target, state=state):
            if "got" not in state:
                raise CheckFail("no readable output")
            exp = {k: expected_conversion(c, a, target) for k, (c, a) in src_ref.items()}
            state["exp"] = exp
            compare_tensors(state["got"], exp, f"out_{target}")
            return None

        def metadata(state=state):
            if "buf" not in state:
                raise CheckFail("no readable output")
            _, h = read_header(state["buf"])
            md = h.get("__metadata__")
            if not isinstance(md, dict) or md.get("format") != "pt":
                raise CheckFail(f"__metadata__ is {md!r}, expected to contain format=pt")
            return None

        def identical(target=target, state=state):
            if "exp" not in state:
                raise CheckFail("no output with the expected tensors")
            check_byte_identical(state["buf"], state["got"], state["exp"], f"out_{target}")
            return None

        r.check(f"out_{target}: safetensors.deserialize accepts it", accept)
        r.check(f"out_{target}: dtypes, shapes and values match ml_dtypes/numpy bit for bit", values)
        r.check(f"out_{target}: __metadata__ has format=pt", metadata)
        r.check(f"out_{target}: byte-identical to safetensors.serialize of the expected tensors", identical)

    # ---- folder conversion (c) --------------------------------------------------
    max_shard = parse_size("20K")
    proc, cmdline = r.run("convert", "src_folder", "out_folder", "--dtype", "bf16", "--max-shard-size", "20K")
    r.check("convert folder --dtype bf16 --max-shard-size 20K exits 0", expect_success, proc, cmdline)
    outdir = work / "out_folder"
    fstate = {}

    def folder_shards():
        if not outdir.is_dir():
            raise CheckFail("out_folder was not created")
        shards = sorted(p.name for p in outdir.glob("*.safetensors"))
        if not shards:
            raise CheckFail("no .safetensors files in out_folder")
        n = len(shards)
        want = [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
        if n == 1 and shards == ["model.safetensors"]:
            want = shards
        if shards != want:
            raise CheckFail(f"shard files {shards}, expected {want}")
        fstate["shards"] = shards
        got = {}
        owner = {}
        fstate["bufs"] = {}
        for s in shards:
            buf = (outdir / s).read_bytes()
            try:
                tensors = load_ref(buf)
            except CheckFail:
                raise
            except Exception as e:
                raise CheckFail(f"safetensors.deserialize rejects {s}: {e}")
            for k, v in tensors.items():
                if k in got:
                    raise CheckFail(f"tensor {k!r} appears in {owner[k]} and {s}")
                got[k] = v
                owner[k] = s
            fstate["bufs"][s] = (buf, tensors)
        fstate["got"], fstate["owner"] = got, owner
        return f"{n} shards: {', '.join(shards)}"

    def folder_values():
        if "got" not in fstate:
            raise CheckFail("no readable shards")
        exp = {k: expected_conversion(c, a, "bf16") for k, (c, a) in folder_tensors.items()}
        fstate["exp"] = exp
        compare_tensors(fstate["got"], exp, "out_folder")
        return f"{len(exp)} tensors"

    def folder_index():
        if "got" not in fstate:
            raise CheckFail("no readable shards")
        p = outdir / "model.safetensors.index.json"
        if len(fstate["shards"]) == 1 and fstate["shards"] == ["model.safetensors"] and not p.exists():
            return "single unsharded file, no index"
        if not p.is_file():
            raise CheckFail("model.safetensors.index.json missing")
        text = p.read_text()
        idx = json.loads(text)
        wm = idx.get("weight_map")
        if not isinstance(wm, dict):
            raise CheckFail("index has no weight_map object")
        if set(wm) != set(fstate["got"]):
            raise CheckFail(f"weight_map keys differ from shard tensors: missing {sorted(set(fstate['got']) - set(wm))[:5]}, extra {sorted(set(wm) - set(fstate['got']))[:5]}")
        wrong = [k for k, v in wm.items() if fstate["owner"].get(k) != v]
        if wrong:
            k = wrong[0]
            raise CheckFail(f"{len(wrong)} weight_map entries point to the wrong shard, e.g. {k!r} -> {wm[k]} but it is in {fstate['owner'][k]}")
        total = sum(a.nbytes for _, a in fstate["got"].values())
        ts = (idx.get("metadata") or {}).get("total_size")
        if ts != total:
            raise CheckFail(f"metadata.total_size = {ts!r}, sum of tensor bytes = {total}")
        if text != json.dumps(idx, indent=2, sort_keys=True) + "\n":
            r.note("model.safetensors.index.json is not formatted like huggingface (json.dumps indent=2, sort_keys=True, trailing newline)")
        return f"total_size {total}"

    def folder_limits():
        if "bufs" not in fstate:
            raise CheckFail("no readable shards")
        problems = []
        for s, (buf, tensors) in fstate["bufs"].items():
            tb = sum(a.nbytes for _, a in tensors.values())
            if tb > max_shard and len(tensors) > 1:
                problems.append(f"{s}: {len(tensors)} tensors, {tb} tensor bytes > {max_shard}")
            if len(buf) > max_shard and len(tensors) > 1:
                r.note(f"{s}: file size {len(buf)} (with header) exceeds {max_shard}; tensor bytes {tb} do not")
        if problems:
            raise CheckFail("; ".join(problems))
        return f"limit {max_shard} tensor bytes per shard"

    def folder_identical():
        if "exp" not in fstate:
            raise CheckFail("no output with the expected tensors")
        for s, (buf, tensors) in fstate["bufs"].items():
            exp = {k: fstate["exp"][k] for k in tensors}
            check_byte_identical(buf, tensors, exp, s)
            _, h = read_header(buf)
            md = h.get("__metadata__")
            if not isinstance(md, dict) or md.get("format") != "pt":
                raise CheckFail(f"{s}: __metadata__ is {md!r}, expected to contain format=pt")
        return None

    def folder_config():
        p = outdir / "config.json"
        if not p.is_file():
            raise CheckFail("config.json missing in out_folder")
        cfg = json.loads(p.read_text())
        if cfg.get("torch_dtype") != "bfloat16":
            raise CheckFail(f"torch_dtype is {cfg.get('torch_dtype')!r}, expected 'bfloat16'")
        lost = {k: v for k, v in TINY_CONFIG.items() if k != "torch_dtype" and cfg.get(k, object()) != v}
        if lost:
            raise CheckFail(f"config.json lost or changed keys: {sorted(lost)}")
        return None

    r.check("out_folder: shard names model-0000i-of-0000N, all accepted by safetensors.deserialize", folder_shards)
    r.check("out_folder: tensors are the bf16 conversion of the source, bit for bit", folder_values)
    r.check("out_folder: index weight_map covers exactly the shard tensors, total_size = tensor bytes", folder_index)
    r.check("out_folder: every multi-tensor shard within --max-shard-size", folder_limits)
    r.check("out_folder: every shard byte-identical to safetensors.serialize, metadata format=pt", folder_identical)
    r.check("out_folder: config.json present with torch_dtype bfloat16, other keys kept", folder_config)

    # ---- (d) sources untouched ---------------------------------------------------
    def untouched():
        changed = [p.name for p, h in hashes_before.items() if not p.exists() or sha256_file(p) != h]
        if changed:
            raise CheckFail(f"source files changed: {changed}")
        extra = sorted(set(p.name for p in (work / "src_folder").iterdir()) - set(p.name for p in source_files))
        if extra:
            raise CheckFail(f"new files in src_folder: {extra}")
        return f"{len(hashes_before)} files"

    r.check("sources unchanged (sha256)", untouched)

    # ---- (e) failures leave nothing behind -------------------------------------
    def fail_missing_parent():
        before = tree(work)
        proc, cmdline = r.run("convert", "src.safetensors", "missing_parent/sub/out.safetensors", "--dtype", "bf16")
        if proc is None:
            raise CheckFail(cmdline)
        if proc.returncode == 0:
            raise CheckFail(f"`{cmdline}` exited 0")
        after = tree(work)
        if after != before:
            raise CheckFail(f"left files behind: {sorted(after - before)[:10]}; removed: {sorted(before - after)[:10]}")
        return f"exit {proc.returncode}"

    def fail_malformed():
        if not (work / "bad_input.safetensors").is_file():
            raise CheckFail(f"fixture {gap} not found (use --fixtures)")
        before = tree(work)
        proc, cmdline = r.run("convert", "bad_input.safetensors", "out_bad.safetensors", "--dtype", "bf16")
        if proc is None:
            raise CheckFail(cmdline)
        if proc.returncode == 0:
            raise CheckFail(f"`{cmdline}` exited 0")
        err = proc.stderr.decode("utf-8", "replace")
        if "bad_input.safetensors" not in err:
            raise CheckFail(f"stderr does not mention bad_input.safetensors: {err.strip()[:300]!r}")
        if (work / "out_bad.safetensors").exists():
            raise CheckFail("out_bad.safetensors was created")
        after = tree(work)
        if after != before:
            raise CheckFail(f"left files behind: {sorted(after - before)[:10]}")
        return f"exit {proc.returncode}: {err.strip().splitlines()[-1][:120] if err.strip() else ''}"

    def fail_folder():
        shutil.copytree(work / "src_folder", work / "bad_folder")
        last = sorted((work / "bad_folder").glob("model-*.safetensors"))[-1]
        data = last.read_bytes()
        last.write_bytes(data[:-7])  # truncated data section
        before = tree(work)
        proc, cmdline = r.run("convert", "bad_folder", "out_bad_folder", "--dtype", "bf16", "--max-shard-size", "20K")
        if proc is None:
            raise CheckFail(cmdline)
        if proc.returncode == 0:
            raise CheckFail(f"`{cmdline}` exited 0")
        err = proc.stderr.decode("utf-8", "replace")
        after = tree(work)
        if after != before:
            raise CheckFail(f"left files behind: {sorted(after - before)[:10]}")
        if last.name not in err:
            r.note(f"folder failure: stderr does not name the broken shard {last.name}: {err.strip()[:200]!r}")
        return f"exit {proc.returncode}"

    r.check("convert into a non-existent parent: non-zero exit, nothing created", fail_missing_parent)
    r.check("convert malformed input (gap_offsets): non-zero exit, stderr names the file, no output", fail_malformed)
    r.check("convert folder with a truncated shard: non-zero exit, no output folder", fail_folder)

    print(f"elapsed {time.monotonic() - t0:.1f}s")
    print(f"interop: {r.passed} passed, {r.failed} failed")
    return 0 if r.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
