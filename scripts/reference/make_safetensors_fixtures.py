"""Generate the safetensors test fixtures under ``fixtures/safetensors/``.

Run from the repository root (overwrites everything it generates)::

    .venv/bin/python scripts/reference/make_safetensors_fixtures.py

Pinned oracles (see ``scripts/reference/requirements.txt``): safetensors==0.8.0
(the Rust reference implementation, via its PyPI binding), ml_dtypes==0.6.0 and
numpy==2.4.6.  Output is deterministic: fixed seeds, and the reference writer is
re-invoked until its (randomly ordered) ``__metadata__`` keys come out in the
order given, because the Rust crate keeps metadata in a HashMap.

What it writes:

``dtypes.safetensors``
    One or more tensors of every dtype the PyPI ``TensorSpec`` accepts, written
    only through ``safetensors.serialize``.  Names are ``<code lowercase>_<what>``
    (e.g. ``bf16_all``, ``f8_e4m3_all``, ``f32_special``, ``i64_minmax``).
``dtypes.expected.safetensors``
    For every F64/F32/F16/BF16/F8_* tensor of ``dtypes.safetensors``: an F32
    tensor with the same name and shape holding ``arr.astype(np.float32)`` as
    computed by numpy/ml_dtypes (the widening oracle; NaN payloads unspecified).
``dtypes.expected.json``
    header_length, metadata and, per tensor (in header order), name, dtype code,
    shape, data_offsets as assigned by the reference writer, sha256 of the raw
    tensor bytes, and ``values`` for integer/bool tensors (bool as 0/1).
``sharded/``
    A tiny random Llama checkpoint (3 layers, hidden 32) in HF layout, F32, split
    into exactly 3 shards (huggingface_hub greedy rule, 45000-byte limit), with
    ``model.safetensors.index.json`` and ``config.json``.
``sharded.expected.json``
    Per tensor: name, shard, dtype, shape, sum (math.fsum of the float32 values
    as float64, compare with a tolerance), first4 values, data_sha256.
``malformed/*.safetensors`` + ``malformed/manifest.json``
    Hand-built broken files.  Each manifest entry has ``file``, ``kind`` (the
    nopekit error kind), ``what``, and what ``safetensors.deserialize`` did with
    the bytes (``pypi_rejects``, ``pypi_error``).
``valid_edge/*.safetensors`` + ``valid_edge/manifest.json``
    Hand-built unusual-but-valid files that the reference reader accepts, with
    the tensors they contain.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import safetensors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_layout import TINY_CONFIG, hf_split, llama_tensor_shapes  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "fixtures" / "safetensors"
MADE_BY = "scripts/reference/make_safetensors_fixtures.py"

# ---------------------------------------------------------------------------
# reference-writer helpers
# ---------------------------------------------------------------------------


def read_header(buf: bytes):
    """Return (N, header as an ordered list-of-pairs-preserving dict)."""
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + n].decode("utf-8"))
    return n, header


def metadata_keys_in_header(buf: bytes):
    _, header = read_header(buf)
    md = header.get("__metadata__")
    return None if md is None else list(md.keys())


def serialize_ref(tensors, metadata):
    """Serialize with the PyPI reference writer.

    ``tensors``: list of (name, TensorSpec dtype string, ndarray, spec_shape or
    None).  ``spec_shape`` is what is handed to TensorSpec (for
    float4_e2m1fn_x2 that is the *storage* shape; TensorSpec doubles the last
    dimension itself).  The arrays stay referenced by ``tensors`` for the whole
    call.  The call is repeated until the metadata keys appear in the order of
    ``metadata`` (the Rust writer iterates a randomly seeded HashMap).
    """
    arrays = []
    specs = {}
    for name, ts_dtype, arr, spec_shape in tensors:
        arr = np.asarray(arr)
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
        arrays.append(arr)
        shape = list(arr.shape) if spec_shape is None else list(spec_shape)
        specs[name] = safetensors.TensorSpec(
            dtype=ts_dtype, shape=shape, data_ptr=arr.ctypes.data, data_len=arr.nbytes
        )
    want = None if metadata is None else list(metadata.keys())
    for _ in range(10_000):
        buf = bytes(safetensors.serialize(specs, metadata))
        if want is None or len(want) <= 1 or metadata_keys_in_header(buf) == want:
            del arrays
            return buf
    raise RuntimeError("could not get a deterministic metadata order")


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def write(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_json(path: Path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def f32_bits(*bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def f64_bits(*bits):
    return np.array(bits, dtype=np.uint64).view(np.float64)


# ---------------------------------------------------------------------------
# (a) dtypes.safetensors, (b) dtypes.expected.safetensors, (c) expected.json
# ---------------------------------------------------------------------------

INT_DTYPES = [
    # (ts dtype, code, numpy dtype)
    ("int8", "I8", np.int8),
    ("uint8", "U8", np.uint8),
    ("int16", "I16", np.int16),
    ("uint16", "U16", np.uint16),
    ("int32", "I32", np.int32),
    ("uint32", "U32", np.uint32),
    ("int64", "I64", np.int64),
    ("uint64", "U64", np.uint64),
]

F8_DTYPES = [
    ("float8_e4m3fn", "f8_e4m3", ml_dtypes.float8_e4m3fn),
    ("float8_e5m2", "f8_e5m2", ml_dtypes.float8_e5m2),
    ("float8_e8m0fnu", "f8_e8m0", ml_dtypes.float8_e8m0fnu),
    ("float8_e4m3fnuz", "f8_e4m3fnuz", ml_dtypes.float8_e4m3fnuz),
    ("float8_e5m2fnuz", "f8_e5m2fnuz", ml_dtypes.float8_e5m2fnuz),
]

WIDEN_CODES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ"}
INT_CODES = {"BOOL", "I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64"}


def f64_rounding_cases():
    """float64 values that probe round-to-nearest-even into float32."""
    f32max = (2.0 - 2.0**-23) * 2.0**127
    vals = [
        1.0 + 2.0**-24,  # tie -> 1.0 (even)
        1.0 + 3 * 2.0**-24,  # tie -> 1 + 2^-22 (even)
        1.0 + 2.0**-24 + 2.0**-40,  # just above tie -> up
        1.0 + 2.0**-24 - 2.0**-40,  # just below tie -> down
        -(1.0 + 2.0**-24),  # negative tie -> -1.0
        f32max,  # exact
        f32max + 2.0**103,  # tie at max -> inf (max has odd mantissa)
        f32max + 2.0**103 - 2.0**80,  # below tie -> max
        -(f32max + 2.0**103),  # -> -inf
        2.0**-149,  # min f32 subnormal, exact
        2.0**-150,  # tie between 0 and min subnormal -> +0
        -(2.0**-150),  # -> -0
        2.0**-150 + 2.0**-200,  # above tie -> min subnormal
        3 * 2.0**-150,  # tie between 1 and 2 ulps -> 2 ulps (even)
        5 * 2.0**-150,  # tie between 2 and 3 ulps -> 2 ulps (even)
        2.0**-126 - 2.0**-150,  # tie between max subnormal and min normal -> min normal
        1e-50,  # underflow -> +0
        -1e-50,  # underflow -> -0
        1e300,  # overflow -> inf
        -1e300,  # overflow -> -inf
        0.1,
        1.0 / 3.0,
        65504.0,
        -2.0**-1022,  # f64 min normal -> -0
    ]
    return np.array(vals, dtype=np.float64)


def build_dtype_tensors():
    rng = np.random.default_rng(20240601)
    t = []  # (name, ts dtype, array, spec shape)

    # --- floats --------------------------------------------------------------
    f64_special = f64_bits(
        0x0000000000000000,  # +0
        0x8000000000000000,  # -0
        0x7FF0000000000000,  # +inf
        0xFFF0000000000000,  # -inf
        0x7FF8000000000000,  # qNaN
        0xFFF8000000000000,  # -qNaN
        0x7FF0000000000001,  # sNaN payload 1
        0x0000000000000001,  # smallest subnormal
        0x000FFFFFFFFFFFFF,  # largest subnormal
        0x0010000000000000,  # min normal
        0x7FEFFFFFFFFFFFFF,  # max
        0xFFEFFFFFFFFFFFFF,  # -max
        0x3FF0000000000000,  # 1.0
        0xBFF0000000000000,  # -1.0
        0x400921FB54442D18,  # pi
        0x01A56E1FC2F8F359,  # 1e-300
    )
    t.append(("f64_special", "float64", f64_special, None))
    t.append(("f64_rounding", "float64", f64_rounding_cases(), None))
    f64_random = rng.standard_normal((4, 8)) * np.exp2(rng.integers(-30, 30, (4, 8)))
    t.append(("f64_random", "float64", f64_random.astype(np.float64), None))

    f32_special = f32_bits(
        0x00000000,  # +0
        0x80000000,  # -0
        0x7F800000,  # +inf
        0xFF800000,  # -inf
        0x7FC00000,  # qNaN
        0xFFC00000,  # -qNaN
        0x7F800001,  # sNaN payload 1
        0x7FC00123,  # qNaN with payload
        0x00000001,  # smallest subnormal
        0x80000001,  # -smallest subnormal
        0x007FFFFF,  # largest subnormal
        0x00800000,  # min normal
        0x80800000,  # -min normal
        0x7F7FFFFF,  # max
        0xFF7FFFFF,  # -max
        0x3F800000,  # 1.0
    )
    t.append(("f32_special", "float32", f32_special, None))
    f32_random = (rng.standard_normal((8, 16)) * np.exp2(rng.integers(-20, 20, (8, 16)))).astype(np.float32)
    t.append(("f32_random", "float32", f32_random, None))
    t.append(("f32_scalar", "float32", np.array(3.14159265, dtype=np.float32), None))
    t.append(("f32_empty", "float32", np.zeros((0, 3), dtype=np.float32), None))
    t.append(("f32_empty_3d", "float32", np.zeros((3, 0, 2), dtype=np.float32), None))
    t.append(("f32_3d", "float32", rng.standard_normal((2, 3, 4)).astype(np.float32), None))
    t.append(("f32_4d", "float32", rng.standard_normal((2, 3, 2, 2)).astype(np.float32), None))

    t.append(("f16_all", "float16", np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).reshape(256, 256), None))
    t.append(("bf16_all", "bfloat16", np.arange(65536, dtype=np.uint32).astype(np.uint16).view(ml_dtypes.bfloat16).reshape(256, 256), None))
    for ts, prefix, mld in F8_DTYPES:
        t.append((f"{prefix}_all", ts, np.arange(256, dtype=np.uint16).astype(np.uint8).view(mld).reshape(16, 16), None))

    # F4 (E2M1, two per byte).  Byte i holds codes 2i (low nibble) and 2i+1 (high
    # nibble), so with low-nibble-first packing the logical values are codes 0..15.
    f4_bytes = np.array([((2 * i + 1) << 4) | (2 * i) for i in range(8)], dtype=np.uint8).reshape(2, 4)
    t.append(("f4_all", "float4_e2m1fn_x2", f4_bytes, [2, 4]))  # header shape [2, 8]

    c64 = np.array([1 + 2j, -0.5 + 0.25j, 0j, 3.0e38 - 1.0e-45j], dtype=np.complex64)
    t.append(("c64_values", "complex64", c64, None))

    # --- integers and bool -----------------------------------------------------
    for ts, code, npd in INT_DTYPES:
        info = np.iinfo(npd)
        lo, hi = int(info.min), int(info.max)
        if lo < 0:
            fixed = [lo, hi, 0, 1, -1, lo + 1, hi - 1]
        else:
            fixed = [lo, hi, 1, 2, hi - 1, hi // 2, hi // 2 + 1]
        r = rng.integers(lo, hi, size=1, dtype=npd, endpoint=True)
        vals = np.array(fixed, dtype=npd)
        vals = np.concatenate([vals, r]).astype(npd).reshape(2, 4)
        t.append((f"{code.lower()}_minmax", ts, vals, None))
    t.append(("i64_scalar", "int64", np.array(-42, dtype=np.int64), None))
    t.append(("u8_empty", "uint8", np.zeros((0,), dtype=np.uint8), None))
    t.append(("bool_values", "bool", np.array([[True, False, True], [True, False, False]]), None))
    return t


def make_dtypes():
    tensors = build_dtype_tensors()
    metadata = {"format": "pt", "made_by": MADE_BY}
    buf = serialize_ref(tensors, metadata)
    write(OUT / "dtypes.safetensors", buf)

    n, header = read_header(buf)
    data = buf[8 + n :]
    by_name = {name: (ts, arr) for name, ts, arr, _ in tensors}

    # sanity: the reference reader gives back exactly our bytes
    back = {k: v for k, v in safetensors.deserialize(buf)}
    assert set(back) == set(by_name), "reference reader lost tensors"

    exp_json = {"header_length": n, "metadata": header.get("__metadata__"), "tensors": []}
    expected = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        ts, arr = by_name[name]
        b, e = info["data_offsets"]
        raw = data[b:e]
        assert raw == bytes(back[name]["data"])
        if info["dtype"] != "F4":
            assert raw == np.asarray(arr).tobytes(), name
        entry = {
            "name": name,
            "dtype": info["dtype"],
            "shape": info["shape"],
            "data_offsets": [b, e],
            "data_sha256": sha256(raw),
        }
        if info["dtype"] in INT_CODES:
            entry["values"] = [int(v) for v in np.asarray(arr).reshape(-1).tolist()]
        exp_json["tensors"].append(entry)
        if info["dtype"] in WIDEN_CODES:
            with np.errstate(over="ignore", invalid="ignore"):
                wide = np.asarray(arr).astype(np.float32)
            assert list(wide.shape) == info["shape"], (name, wide.shape, info["shape"])
            expected.append((name, "float32", wide, None))

    write_json(OUT / "dtypes.expected.json", exp_json)
    ebuf = serialize_ref(expected, {"format": "pt", "made_by": MADE_BY})
    write(OUT / "dtypes.expected.safetensors", ebuf)
    return header


# ---------------------------------------------------------------------------
# (d) sharded tiny Llama folder
# ---------------------------------------------------------------------------

def make_sharded():
    folder = OUT / "sharded"
    rng = np.random.default_rng(7)
    arrays = {}
    for name, shape in llama_tensor_shapes(TINY_CONFIG):
        if name.endswith("layernorm.weight") or name == "model.norm.weight":
            a = 1.0 + 0.02 * rng.standard_normal(shape)
        else:
            a = 0.02 * rng.standard_normal(shape)
        arrays[name] = a.astype(np.float32)
    sizes = [(k, a.nbytes) for k, a in arrays.items()]
    total = sum(s for _, s in sizes)
    shards = hf_split(sizes, 45_000)
    assert len(shards) == 3, [len(s) for s in shards]

    weight_map = {}
    expected = []
    nsh = len(shards)
    for i, names in enumerate(shards, start=1):
        fname = f"model-{i:05d}-of-{nsh:05d}.safetensors"
        buf = serialize_ref([(k, "float32", arrays[k], None) for k in names], {"format": "pt"})
        write(folder / fname, buf)
        for k in names:
            weight_map[k] = fname
    for name, a in arrays.items():
        flat = a.reshape(-1)
        expected.append(
            {
                "name": name,
                "shard": weight_map[name],
                "dtype": "F32",
                "shape": list(a.shape),
                "sum": math.fsum(float(x) for x in flat),
                "first4": [float(x) for x in flat[:4]],
                "data_sha256": sha256(a.tobytes()),
            }
        )
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG, indent=2, sort_keys=True) + "\n")
    write_json(
        OUT / "sharded.expected.json",
        {
            "folder": "sharded",
            "total_size": total,
            "num_shards": nsh,
            "sum_note": "sum = math.fsum of the float32 values (exact, rounded once to float64); compare with a tolerance",
            "tensors": expected,
        },
    )


# ---------------------------------------------------------------------------
# (e) malformed files and valid edge cases
# ---------------------------------------------------------------------------


def mk(header, data=b"", pad=True, padchar=b" "):
    hb = header if isinstance(header, bytes) else header.encode("utf-8")
    if pad:
        hb += padchar * ((-len(hb)) % 8)
    return struct.pack("<Q", len(hb)) + hb + data


def ti(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def jh(obj):
    return json.dumps(obj, separators=(",", ":"))


def pypi_result(buf):
    try:
        safetensors.deserialize(buf)
        return False, None
    except Exception as e:  # SafetensorError
        return True, str(e)


def malformed_cases():
    z4, z8, z16 = b"\0" * 4, b"\0" * 8, b"\0" * 16
    one = jh({"a": ti("F32", [1], 0, 4)})
    cases = []

    def add(file, kind, what, buf):
        cases.append((file, kind, what, buf))

    # headerTooSmall
    add("header_too_small.safetensors", "headerTooSmall", "file is 5 bytes, shorter than the 8-byte length field", b"\x10\x00\x00\x00\x00")
    add("empty_file.safetensors", "headerTooSmall", "zero-byte file", b"")
    # headerTooLarge
    add("header_too_large.safetensors", "headerTooLarge", "length field says 100_000_008 (> 100_000_000), followed by 8 bytes", struct.pack("<Q", 100_000_008) + b"{}      ")
    add("header_length_u64_max.safetensors", "headerTooLarge", "length field is 2**64-1 (8+N overflows u64)", struct.pack("<Q", 2**64 - 1) + b"{}      ")
    # invalidHeaderLength
    add("header_length_past_eof.safetensors", "invalidHeaderLength", "N = 64 but only 8 header bytes follow", struct.pack("<Q", 64) + b"{}      ")
    add("header_length_at_limit.safetensors", "invalidHeaderLength", "N = 100_000_000 exactly (allowed size) but the file ends after 8 header bytes", struct.pack("<Q", 100_000_000) + b"{}      ")
    # invalidUTF8
    add("bad_utf8.safetensors", "invalidUTF8", "tensor name contains byte 0xFF", mk(b'{"a\xff":' + jh(ti("F32", [1], 0, 4)).encode() + b"}", z4))
    add("bad_utf8_surrogate.safetensors", "invalidUTF8", "metadata value contains an encoded UTF-16 surrogate (ED A0 80)", mk(b'{"__metadata__":{"a":"\xed\xa0\x80"}}'))
    add("bad_utf8_overlong.safetensors", "invalidUTF8", "metadata value contains an overlong encoding (C0 AF)", mk(b'{"__metadata__":{"a":"\xc0\xaf"}}'))
    # invalidJSON
    add("nul_padding.safetensors", "invalidJSON", "header '{}' padded with NUL bytes instead of spaces", mk("{}", padchar=b"\0"))
    add("trailing_garbage.safetensors", "invalidJSON", "valid header object followed by ' xx'", mk(one + " xx", z4))
    add("truncated_json.safetensors", "invalidJSON", "header is '{\"a\":' (unterminated)", mk('{"a":'))
    add("trailing_comma.safetensors", "invalidJSON", "trailing comma after the last tensor entry", mk(one[:-1] + ",}", z4))
    add("utf8_bom.safetensors", "invalidJSON", "header starts with a UTF-8 BOM before '{}'", mk(b"\xef\xbb\xbf{}"))
    add("header_length_zero.safetensors", "invalidJSON", "N = 0: empty header string", struct.pack("<Q", 0))
    add("whitespace_only_header.safetensors", "invalidJSON", "header is 8 spaces", mk(b"        "))
    # invalidHeader
    add("toplevel_array.safetensors", "invalidHeader", "top level is a JSON array", mk("[]"))
    add("toplevel_string.safetensors", "invalidHeader", "top level is a JSON string", mk('"hello"'))
    add("metadata_not_string.safetensors", "invalidHeader", "__metadata__ value is an integer", mk(jh({"__metadata__": {"format": "pt", "n": 1}})))
    add("metadata_value_null.safetensors", "invalidHeader", "__metadata__ value is null", mk(jh({"__metadata__": {"format": None}})))
    add("metadata_not_object.safetensors", "invalidHeader", "__metadata__ is an array", mk(jh({"__metadata__": []})))
    add("tensor_not_object.safetensors", "invalidHeader", "tensor entry is a number", mk(jh({"a": 5})))
    add("missing_data_offsets.safetensors", "invalidHeader", "tensor entry without data_offsets", mk(jh({"a": {"dtype": "F32", "shape": [1]}}), z4))
    add("missing_dtype.safetensors", "invalidHeader", "tensor entry without dtype", mk(jh({"a": {"shape": [1], "data_offsets": [0, 4]}}), z4))
    add("missing_shape.safetensors", "invalidHeader", "tensor entry without shape", mk(jh({"a": {"dtype": "F32", "data_offsets": [0, 4]}}), z4))
    add("negative_shape.safetensors", "invalidHeader", "shape [-1]", mk(jh({"a": ti("F32", [-1], 0, 4)}), z4))
    add("float_shape.safetensors", "invalidHeader", "shape [1.0]", mk('{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', z4))
    add("shape_beyond_u64.safetensors", "invalidHeader", "shape [2**64] (not representable as u64)", mk(jh({"a": ti("F64", [2**64], 0, 8)}), z8))
    add("shape_not_array.safetensors", "invalidHeader", "shape is the string \"1\"", mk(jh({"a": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}}), z4))
    add("data_offsets_three.safetensors", "invalidHeader", "data_offsets has 3 elements", mk(jh({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 4]}}), z4))
    add("negative_offsets.safetensors", "invalidHeader", "data_offsets [-4, 0]", mk(jh({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}), z4))
    add("dtype_not_string.safetensors", "invalidHeader", "dtype is the integer 5", mk(jh({"a": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}}), z4))
    # unknownDType
    add("dtype_lowercase.safetensors", "unknownDType", "dtype \"f32\" (lowercase)", mk(jh({"a": ti("f32", [1], 0, 4)}), z4))
    add("dtype_q4.safetensors", "unknownDType", "dtype \"Q4\"", mk(jh({"a": ti("Q4", [1], 0, 4)}), z4))
    # duplicateTensor
    add(
        "duplicate_names.safetensors",
        "duplicateTensor",
        "tensor \"a\" appears twice with consecutive offsets",
        mk('{"a":' + jh(ti("F32", [1], 0, 4)) + ',"a":' + jh(ti("F32", [1], 4, 8)) + "}", z8),
    )
    add(
        "duplicate_names_identical.safetensors",
        "duplicateTensor",
        "tensor \"a\" appears twice with identical entries",
        mk('{"a":' + jh(ti("F32", [1], 0, 4)) + ',"a":' + jh(ti("F32", [1], 0, 4)) + "}", z4),
    )
    add(
        "duplicate_names_escaped.safetensors",
        "duplicateTensor",
        "tensor \"a\" and \"\\u0061\" (same name after JSON unescaping)",
        mk('{"a":' + jh(ti("F32", [1], 0, 4)) + ',"\\u0061":' + jh(ti("F32", [1], 4, 8)) + "}", z8),
    )
    # invalidOffset
    add("nonzero_first_begin.safetensors", "invalidOffset", "the only tensor starts at 4, not 0", mk(jh({"a": ti("F32", [1], 4, 8)}), z8))
    add("gap_offsets.safetensors", "invalidOffset", "a=[0,4], b=[8,12]: 4-byte gap", mk(jh({"a": ti("F32", [1], 0, 4), "b": ti("F32", [1], 8, 12)}), b"\0" * 12))
    add("overlap_offsets.safetensors", "invalidOffset", "a=[0,8], b=[4,8]: overlap", mk(jh({"a": ti("F32", [2], 0, 8), "b": ti("F32", [1], 4, 8)}), z8))
    add("end_before_begin.safetensors", "invalidOffset", "a=[0,4], b=[4,2]: end < begin", mk(jh({"a": ti("F32", [1], 0, 4), "b": ti("U8", [0], 4, 2)}), z4))
    # validationOverflow
    add("shape_overflow_elements.safetensors", "validationOverflow", "F32 shape [2**40, 2**40]: element count overflows u64", mk(jh({"a": ti("F32", [2**40, 2**40], 0, 4)}), z4))
    add("shape_overflow_bytes.safetensors", "validationOverflow", "F64 shape [2**62]: element count fits, byte count overflows u64", mk(jh({"a": ti("F64", [2**62], 0, 8)}), z8))
    # tensorInvalidInfo
    add("wrong_dtype_size.safetensors", "tensorInvalidInfo", "F32 [2,2] with 12 bytes", mk(jh({"a": ti("F32", [2, 2], 0, 12)}), b"\0" * 12))
    add("scalar_wrong_size.safetensors", "tensorInvalidInfo", "F32 scalar [] with 8 bytes", mk(jh({"a": ti("F32", [], 0, 8)}), z8))
    add("f4_odd_elements.safetensors", "tensorInvalidInfo", "F4 shape [3] (1.5 bytes) with 2 bytes", mk(jh({"a": ti("F4", [3], 0, 2)}), b"\0" * 2))
    # incompleteBuffer
    add("polyglot_trailing.safetensors", "incompleteBuffer", "valid file followed by 22 bytes of a ZIP end-of-central-directory record", mk(one, z4 + b"PK\x05\x06" + b"\0" * 18))
    add("truncated_data.safetensors", "incompleteBuffer", "F32 [4] claims [0,16] but only 10 data bytes", mk(jh({"a": ti("F32", [4], 0, 16)}), b"\0" * 10))
    add("empty_header_trailing_bytes.safetensors", "incompleteBuffer", "header '{}' followed by 4 bytes", mk("{}", b"abcd"))
    return cases


def valid_edge_cases():
    cases = []
    body = jh({"a": ti("F32", [2], 0, 8)})
    data = np.array([1.5, -2.0], dtype=np.float32).tobytes()
    hb = b"\n \t" + body.encode() + b"\n\t"
    hb += b" " * ((-len(hb)) % 8)
    cases.append(("whitespace_padded.safetensors", "header with leading '\\n \\t' and trailing '\\n\\t' + spaces", struct.pack("<Q", len(hb)) + hb + data))
    cases.append(("empty.safetensors", "header '{}' padded to 8 bytes, no tensors, no data", mk("{}")))
    cases.append(
        (
            "metadata_null.safetensors",
            "\"__metadata__\": null plus one tensor",
            mk('{"__metadata__":null,' + body[1:], data),
        )
    )
    cases.append(
        (
            "reordered_entries.safetensors",
            "header lists tensors in an order different from their offsets (b before a)",
            mk(jh({"b": ti("F32", [1], 4, 8), "a": ti("U8", [4], 0, 4)}), bytes([1, 2, 3, 4]) + np.array([0.25], np.float32).tobytes()),
        )
    )
    cases.append(
        (
            "unpadded_header.safetensors",
            "header length N = 53, not a multiple of 8 (no padding)",
            mk(jh({"a": ti("U8", [3], 0, 3)}), bytes([7, 8, 9]), pad=False),
        )
    )
    cases.append(
        (
            "empty_tensors_same_offset.safetensors",
            "two zero-sized tensors sharing offsets [0,0] next to a 4-byte tensor at [0,4]",
            mk(jh({"e1": ti("F32", [0], 0, 0), "e2": ti("U8", [0, 5], 0, 0), "x": ti("U8", [4], 0, 4)}), bytes([1, 2, 3, 4])),
        )
    )
    cases.append(
        (
            "f6_e2m3_packed.safetensors",
            "F6_E2M3 [4] packed in 3 bytes: a sub-byte dtype the crate knows (recognised, not decoded)",
            mk(jh({"a": ti("F6_E2M3", [4], 0, 3)}), bytes([0x41, 0x82, 0xC3])),
        )
    )
    cases.append(
        (
            "extra_tensor_field.safetensors",
            "tensor entry carries an unknown extra key \"quant\" (ignored by the Rust crate)",
            mk(jh({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2], "quant": "none"}}), bytes([5, 6])),
        )
    )
    return cases


def make_malformed_and_edges():
    mdir = OUT / "malformed"
    manifest = []
    for file, kind, what, buf in malformed_cases():
        write(mdir / file, buf)
        rejects, err = pypi_result(buf)
        manifest.append({"file": file, "kind": kind, "what": what, "pypi_rejects": rejects, "pypi_error": err})
    write_json(mdir / "manifest.json", manifest)

    vdir = OUT / "valid_edge"
    vmanifest = []
    for file, what, buf in valid_edge_cases():
        write(vdir / file, buf)
        got = safetensors.deserialize(buf)  # must not raise
        n = struct.unpack("<Q", buf[:8])[0]
        header = json.loads(buf[8 : 8 + n].decode("utf-8"))
        got_map = {k: v for k, v in got}
        tensors = []
        for name, info in sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: (kv[1]["data_offsets"], kv[0])):
            b, e = info["data_offsets"]
            raw = buf[8 + n + b : 8 + n + e]
            assert bytes(got_map[name]["data"]) == raw and got_map[name]["shape"] == info["shape"]
            tensors.append({"name": name, "dtype": info["dtype"], "shape": info["shape"], "data_offsets": [b, e], "data_hex": raw.hex()})
        assert set(got_map) == {t["name"] for t in tensors}
        vmanifest.append({"file": file, "what": what, "pypi_accepts": True, "header_length": n, "metadata": header.get("__metadata__"), "tensors": tensors})
    write_json(vdir / "manifest.json", vmanifest)
    return manifest, vmanifest


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for sub in ("sharded", "malformed", "valid_edge"):
        if (OUT / sub).exists():
            shutil.rmtree(OUT / sub)
    header = make_dtypes()
    make_sharded()
    manifest, vmanifest = make_malformed_and_edges()

    print(f"dtypes.safetensors: {len(header) - 1} tensors")
    for name, info in header.items():
        if name != "__metadata__":
            print(f"  {name:16s} {info['dtype']:12s} {info['shape']}")
    print(f"malformed: {len(manifest)} files")
    for m in manifest:
        res = "rejects: " + m["pypi_error"] if m["pypi_rejects"] else "ACCEPTS"
        print(f"  {m['file']:40s} {m['kind']:20s} pypi {res}")
    print(f"valid_edge: {len(vmanifest)} files")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixtures/safetensors total: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
