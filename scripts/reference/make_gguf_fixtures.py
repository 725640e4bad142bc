"""Generate the GGUF test fixtures under ``fixtures/gguf/``.

Run from the repository root (overwrites everything it generates)::

    .venv/bin/python scripts/reference/make_gguf_fixtures.py

Pinned oracle (see ``scripts/reference/requirements.txt``): PyPI gguf==0.19.0
(gguf-py from llama.cpp: ``GGUFWriter``, ``GGUFReader``, ``gguf.quants``) with
numpy==2.4.6.  Output is deterministic: fixed seeds, and gguf-py writes KVs and
tensors in insertion order.

Conventions: tensor ``shape`` is in HF order (outermost first), the reverse of
GGUF's ``ne`` (ne[0] innermost).  Type names are ``GGMLQuantizationType`` /
``GGUFValueType`` member names ("Q4_K", "BF16", "UINT64", ...).  Offsets of
tensors are relative to the data section; ``data_offset`` is the absolute start
of the data section (the end of the tensor infos rounded up to the alignment;
for a file without tensors, the end of the KVs, as llama.cpp reports it).

In every ``*.expected.json`` float values (KV values, array elements and tensor
values) are written as a JSON number equal to the exact float32/float64 value
(Python ``repr`` of the widened double) when finite, and as the strings
"inf", "-inf" or "nan" otherwise; ``bits`` holds the IEEE bits as hex
("0x3dcccccd"), which is what a bit-exact comparison should use.  UINT64/INT64
values also carry ``value_str`` (decimal) for readers that parse JSON numbers
as Double.

What it writes:

``values.gguf`` + ``values.expected.json``
    Written only by ``GGUFWriter`` (v3, alignment 32): a KV of every value type
    (UINT8 .. FLOAT64, BOOL true/false, STRING ASCII / non-ASCII / with newline
    and quote / empty), an ARRAY of every scalar element type plus strings, and
    tensors F32 1-D / 2-D / 4-D, F16 3-D, BF16 2-D (raw_dtype with uint16 bits),
    F64, I8, I16, I32, I64.  ``metadata`` lists every KV in file order with its
    type, value and absolute ``offset`` in the file; ``tensors`` lists name,
    type, shape, ne, n_dims, offset, nbytes, data_sha256 and (tensors with at
    most 64 elements) ``values`` in file order (row-major in HF shape).
``v2.gguf``, ``aligned64.gguf``, ``empty.gguf`` (+ ``.expected.json`` each)
    A small valid file with the version field patched to 2; a file with
    ``general.alignment`` = 64 (UINT32) and tensors whose sizes are not
    multiples of 64; a file with no tensors and only ``general.architecture``
    (gguf-py pads the header to the alignment even with no tensors).
``quants.gguf`` + ``quants.expected.json``
    ``input`` (F32, shape [16, 256], rows with different statistics); for each
    type ``gguf.quants.quantize`` supports, ``q.<T>`` = quantize(input, T) and
    ``dq.<T>`` = dequantize(q.<T>, T) (F32); for every type
    ``gguf.quants.dequantize`` supports (also the quantizable ones), ``r.<T>`` =
    random block bytes (16 rows x 256 elements) whose fp16 scale fields are
    replaced by finite random fp16 (|x| in [1e-3, 1]) and ``dr.<T>`` = the F32
    dequantization.  Types gguf-py cannot handle are listed in "unsupported".
``malformed/*.gguf`` + ``malformed/manifest.json``
    Hand-built (struct.pack) broken files, one defect each, with the nopekit
    error ``kind``, ``what`` and what ``gguf.GGUFReader`` did with them
    (``gguf_py_rejects``, ``gguf_py_error``, ``gguf_py_outcome`` in
    accepts/rejects/hangs).  ``kind`` is also checked against this script's
    strict reader (``strict_parse``), which mirrors llama.cpp's
    ``gguf_init_from_file`` checks in that order, plus the data bounds.
``valid_edge/*.gguf`` + ``valid_edge/manifest.json``
    Hand-built unusual but valid files (24-byte minimal file, no padding after
    the KVs of a tensor-less file, empty arrays, zero-sized tensor, n_dims 0,
    trailing 1 dims, alignment 1, 63-byte and non-ASCII tensor names, trailing
    bytes after the data) with their expected description.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import shutil
import signal
import struct
import sys
import warnings
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType as VT, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "fixtures" / "gguf"
MADE_BY = "scripts/reference/make_gguf_fixtures.py"

ALIGN = 32
INT64_MAX = 2**63 - 1
U64_MASK = 2**64 - 1

# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def write(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_json(path: Path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def align_up(x: int, a: int) -> int:
    return x + (-x) % a


def fnum(x: float):
    """JSON-safe float: the exact value as a Python float, or a string."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def f32_bits(x) -> str:
    return "0x%08x" % int(np.array([x], dtype=np.float32).view(np.uint32)[0])


def f64_bits(x) -> str:
    return "0x%016x" % int(np.array([x], dtype=np.float64).view(np.uint64)[0])


def write_with(path: Path, build, arch="llama", **kw) -> bytes:
    """Write a file with GGUFWriter: ``build(writer)`` adds KVs and tensors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w = GGUFWriter(str(path), arch, **kw)
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


# ---------------------------------------------------------------------------
# strict reader: llama.cpp gguf_init_from_file order + data bounds.  Returns a
# description, or raises GGUFError(kind, message).
# ---------------------------------------------------------------------------

SCALAR_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
SCALAR_FMT = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q", 12: "d"}
KNOWN_TYPES = {int(t): GGML_QUANT_SIZES[t] for t in QT}
# C's Q8_1 is 36 bytes (gguf-py says 40); never seen in files, not used here.
KNOWN_TYPES[int(QT.Q8_1)] = (32, 36)


class GGUFError(Exception):
    def __init__(self, kind, msg):
        super().__init__(f"{kind}: {msg}")
        self.kind = kind


def strict_parse(buf: bytes):
    n = len(buf)
    pos = 0

    def need(k, what):
        if pos + k > n:
            raise GGUFError("truncated", f"file ends inside {what} at byte {pos} (needs {k}, {n - pos} left)")

    def rd(fmt, what):
        nonlocal pos
        k = struct.calcsize("<" + fmt)
        need(k, what)
        (v,) = struct.unpack_from("<" + fmt, buf, pos)
        pos += k
        return v

    def rd_str(what):
        nonlocal pos
        ln = rd("Q", what + " length")
        if ln > n - pos:
            raise GGUFError("stringTooLong", f"{what} length {ln} > {n - pos} bytes left")
        s = buf[pos : pos + ln]
        pos += ln
        return s

    if n < 4:
        raise GGUFError("truncated", f"file is {n} bytes")
    if buf[:4] != b"GGUF":
        raise GGUFError("badMagic", f"magic {buf[:4]!r}")
    pos = 4
    version = rd("I", "version")
    if version == 0:
        raise GGUFError("unsupportedVersion", "version 0")
    if version & 0xFFFF == 0:
        raise GGUFError("bigEndian", f"version reads as 0x{version:08x}")
    if version == 1 or version > 3:
        raise GGUFError("unsupportedVersion", f"version {version}")
    if n < 24:
        raise GGUFError("truncated", f"file is {n} bytes, shorter than the 24-byte header")
    n_tensors = rd("Q", "tensor_count")
    n_kv = rd("Q", "kv_count")

    kvs = []
    keys = set()
    for i in range(n_kv):
        off = pos
        key = rd_str(f"key {i}")
        if not key:
            raise GGUFError("emptyKey", f"key {i} is empty")
        if key in keys:
            raise GGUFError("duplicateKey", f"duplicate key {key!r}")
        keys.add(key)
        vtype = rd("I", f"value type of {key!r}")
        if vtype == 9:
            etype = rd("I", f"array element type of {key!r}")
            count = rd("Q", f"array count of {key!r}")
            if etype == 9 or etype >= 13:
                raise GGUFError("invalidValueType", f"array {key!r} has element type {etype}")
            esize = 8 if etype == 8 else SCALAR_SIZE[etype]
            if count * esize > n - pos:  # Python ints: no overflow
                raise GGUFError("arrayTooLong", f"array {key!r}: {count} x {esize} bytes > {n - pos} left")
            vals = []
            for j in range(count):
                if etype == 8:
                    vals.append(rd_str(f"string {j} of array {key!r}"))
                else:
                    vals.append(rd(SCALAR_FMT[etype], f"element {j} of {key!r}"))
            kvs.append((off, key, 9, etype, vals))
        elif vtype >= 13:
            raise GGUFError("invalidValueType", f"key {key!r} has value type {vtype}")
        elif vtype == 8:
            kvs.append((off, key, 8, None, rd_str(f"string value of {key!r}")))
        else:
            kvs.append((off, key, vtype, None, rd(SCALAR_FMT[vtype], f"value of {key!r}")))

    alignment = ALIGN
    for off, key, vtype, etype, val in kvs:
        if key == b"general.alignment":
            if vtype != 4:
                raise GGUFError("badAlignment", f"general.alignment has type {vtype}, not UINT32")
            if val == 0 or val & (val - 1):
                raise GGUFError("badAlignment", f"general.alignment = {val} is not a power of two")
            alignment = val

    tensors = []
    names = set()
    for i in range(n_tensors):
        name = rd_str(f"name of tensor {i}")
        if len(name) >= 64:
            raise GGUFError("tensorNameTooLong", f"tensor {i} name is {len(name)} bytes")
        if name in names:
            raise GGUFError("duplicateTensor", f"duplicate tensor {name!r}")
        names.add(name)
        n_dims = rd("I", f"n_dims of {name!r}")
        if n_dims > 4:
            raise GGUFError("tooManyDimensions", f"{name!r} has {n_dims} dims")
        ne = []
        for j in range(n_dims):
            d = rd("Q", f"dim {j} of {name!r}")
            if d > INT64_MAX:
                raise GGUFError("invalidDimension", f"{name!r} dim {j} = {d}")
            ne.append(d)
        nel = math.prod(ne)
        if nel > INT64_MAX:
            raise GGUFError("elementCountOverflow", f"{name!r} has {nel} elements")
        ttype = rd("i", f"type of {name!r}")
        if ttype not in KNOWN_TYPES:
            raise GGUFError("unknownTensorType", f"{name!r} has type {ttype}")
        bs, ts = KNOWN_TYPES[ttype]
        if (ne[0] if ne else 1) % bs:
            raise GGUFError("blockMisaligned", f"{name!r} ne[0] = {ne[0] if ne else 1} not a multiple of {bs}")
        nbytes = nel // bs * ts
        if nbytes > U64_MASK:
            raise GGUFError("elementCountOverflow", f"{name!r} is {nbytes} bytes (overflows u64)")
        offset = rd("Q", f"offset of {name!r}")
        tensors.append({"name": name, "ne": ne, "type": ttype, "offset": offset, "nbytes": nbytes})

    header_end = pos
    # llama.cpp seeks to the aligned data start only when there are tensors
    data_offset = align_up(pos, alignment) if n_tensors > 0 else pos
    if n_tensors > 0 and data_offset > n:
        raise GGUFError("dataStartOutOfBounds", f"data section would start at {data_offset}, file is {n} bytes")
    expect = 0
    for t in tensors:
        if t["offset"] != expect:
            raise GGUFError("misorderedOffsets", f"tensor {t['name']!r} has offset {t['offset']}, expected {expect}")
        expect += align_up(t["nbytes"], alignment)
    if tensors and data_offset + expect > n:
        raise GGUFError("dataOutOfBounds", f"data section needs {expect} bytes from {data_offset}, file is {n} bytes")
    return {
        "version": version,
        "alignment": alignment,
        "header_end": header_end,
        "data_offset": data_offset,
        "data_size": expect,
        "file_size": n,
        "kvs": kvs,
        "tensors": tensors,
    }


# ---------------------------------------------------------------------------
# expected-JSON description of a valid file (strict parse, checked against
# GGUFReader)
# ---------------------------------------------------------------------------

FLOAT_VT = {6: ("f", f32_bits), 12: ("d", f64_bits)}


def scalar_json(vtype, val):
    if vtype in FLOAT_VT:
        return fnum(val), FLOAT_VT[vtype][1](val)
    if vtype == 7:
        return bool(val), None
    if vtype == 8:
        return val.decode("utf-8"), None
    return int(val), None


def kv_json(off, key, vtype, etype, val):
    e = {"key": key.decode("utf-8"), "type": VT(vtype).name, "offset": off}
    if vtype == 9:
        vals, bits = [], []
        for x in val:
            v, b = scalar_json(etype, x)
            vals.append(v)
            bits.append(b)
        arr = {"element_type": VT(etype).name, "count": len(val), "values": vals}
        if etype in FLOAT_VT:
            arr["bits"] = bits
        if etype in (10, 11):
            arr["values_str"] = [str(int(x)) for x in val]
        e["value"] = arr
    else:
        v, b = scalar_json(vtype, val)
        e["value"] = v
        if b is not None:
            e["bits"] = b
        if vtype in (10, 11):
            e["value_str"] = str(int(val))
    return e


NP_OF_TYPE = {
    QT.F32: np.float32,
    QT.F16: np.float16,
    QT.F64: np.float64,
    QT.I8: np.int8,
    QT.I16: np.int16,
    QT.I32: np.int32,
    QT.I64: np.int64,
}
UINT_OF = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def tensor_values(ttype: int, raw: bytes):
    """(values, bits) for plain types, (None, None) for quantized ones."""
    t = QT(ttype)
    if t == QT.BF16:
        u = np.frombuffer(raw, dtype=np.uint16)
        f = (u.astype(np.uint32) << 16).view(np.float32)
        return [fnum(x) for x in f.tolist()], ["0x%04x" % int(x) for x in u]
    if t not in NP_OF_TYPE:
        return None, None
    a = np.frombuffer(raw, dtype=NP_OF_TYPE[t])
    if a.dtype.kind == "f":
        w = a.dtype.itemsize
        bits = ["0x%0*x" % (2 * w, int(x)) for x in a.view(UINT_OF[w])]
        return [fnum(x) for x in a.astype(np.float64).tolist()], bits
    return [int(x) for x in a.tolist()], None


def describe(buf: bytes, path_for_reader: Path | None = None, values_limit=64):
    """Expected JSON for a valid file.  Cross-checks GGUFReader when a path is given."""
    d = strict_parse(buf)
    out = {
        "version": d["version"],
        "alignment": d["alignment"],
        "header_end": d["header_end"],
        "data_offset": d["data_offset"],
        "file_size": d["file_size"],
        "tensor_count": len(d["tensors"]),
        "kv_count": len(d["kvs"]),
        "metadata": [kv_json(*kv) for kv in d["kvs"]],
        "tensors": [],
    }
    for t in d["tensors"]:
        start = d["data_offset"] + t["offset"]
        raw = buf[start : start + t["nbytes"]]
        e = {
            "name": t["name"].decode("utf-8"),
            "type": QT(t["type"]).name,
            "shape": list(reversed(t["ne"])),
            "ne": t["ne"],
            "n_dims": len(t["ne"]),
            "offset": t["offset"],
            "nbytes": t["nbytes"],
            "data_sha256": sha256(raw),
        }
        if math.prod(t["ne"]) <= values_limit:
            vals, bits = tensor_values(t["type"], raw)
            if vals is not None:
                e["values"] = vals
                if bits is not None:
                    e["bits"] = bits
        out["tensors"].append(e)
    if path_for_reader is not None:
        check_against_reader(out, d, buf, path_for_reader)
    return out


def check_against_reader(exp, d, buf, path):
    r = GGUFReader(str(path))
    fields = [(k, f) for k, f in r.fields.items() if not k.startswith("GGUF.")]
    assert [k for k, _ in fields] == [m["key"] for m in exp["metadata"]], path
    assert int(r.fields["GGUF.version"].contents()) == exp["version"], path
    for (k, f), m in zip(fields, exp["metadata"]):
        assert f.types[0].name == m["type"], (path, k)
        assert f.offset == m["offset"], (path, k, f.offset, m["offset"])
        if m["type"] == "ARRAY":
            if m["value"]["count"] > 0:
                assert f.types[-1].name == m["value"]["element_type"], (path, k)
                got = f.contents()
                want = m["value"]["values"]
                if m["value"]["element_type"] in ("FLOAT32", "FLOAT64"):
                    got = [fnum(x) for x in got]
                assert got == want, (path, k, got, want)
        else:
            got = f.contents()
            if m["type"] in ("FLOAT32", "FLOAT64"):
                got = fnum(got)
            assert got == m["value"], (path, k, got, m["value"])
    assert int(r.alignment) == exp["alignment"], path
    assert len(r.tensors) == len(exp["tensors"]), path
    if r.tensors:
        assert int(r.data_offset) == exp["data_offset"], (path, r.data_offset, exp["data_offset"])
    for rt, t in zip(r.tensors, exp["tensors"]):
        assert rt.name == t["name"], path
        assert rt.tensor_type.name == t["type"], path
        assert [int(x) for x in rt.shape] == t["ne"] or (t["ne"] == [] and list(rt.shape) == []), path
        assert int(rt.data_offset) == exp["data_offset"] + t["offset"], path
        assert int(rt.n_bytes) == t["nbytes"], (path, rt.n_bytes, t["nbytes"])
        assert sha256(np.ascontiguousarray(rt.data).tobytes()) == t["data_sha256"], (path, t["name"])
    del r


# ---------------------------------------------------------------------------
# (a) values.gguf
# ---------------------------------------------------------------------------

F32_SPECIAL_BITS = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x00000001, 0x007FFFFF, 0x7F7FFFFF, 0x3DCCCCCD]
F64_SPECIAL_BITS = [0x0000000000000000, 0x8000000000000000, 0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000, 0x0000000000000001, 0x7FEFFFFFFFFFFFFF, 0x3FB999999999999A]


def f32_from_bits(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def f64_from_bits(bits):
    return np.array(bits, dtype=np.uint64).view(np.float64)


def build_values(w: GGUFWriter):
    rng = np.random.default_rng(20250101)
    w.add_string("general.name", "nopekit values fixture")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -128)
    w.add_uint16("test.u16", 65535)
    w.add_int16("test.i16", -32768)
    w.add_uint32("test.u32", 4294967295)
    w.add_int32("test.i32", -2147483648)
    w.add_float32("test.f32", float(np.float32(0.1)))
    w.add_float32("test.f32.neg_zero", -0.0)
    w.add_float32("test.f32.inf", float("inf"))
    w.add_bool("test.bool.true", True)
    w.add_bool("test.bool.false", False)
    w.add_string("test.str.ascii", "hello, world")
    w.add_string("test.str.utf8", "h\u00e9llo w\u00f6rld \u2014 \u65e5\u672c\u8a9e \U0001F999\U0001F680")
    w.add_string("test.str.newline_quote", 'line one\nline "two" \\ back\tslash')
    w.add_key_value("test.str.empty", "", VT.STRING)  # add_string("") would be skipped
    w.add_uint64("test.u64", 2**64 - 1)
    w.add_uint64("test.u64.small", 42)
    w.add_int64("test.i64", -(2**63))
    w.add_int64("test.i64.max", 2**63 - 1)
    w.add_float64("test.f64", math.pi)
    w.add_float64("test.f64.tiny", 5e-324)
    arr = [
        ("test.arr.u8", [0, 1, 127, 128, 255], VT.UINT8),
        ("test.arr.i8", [-128, -1, 0, 1, 127], VT.INT8),
        ("test.arr.u16", [0, 1, 256, 65535], VT.UINT16),
        ("test.arr.i16", [-32768, -1, 0, 300, 32767], VT.INT16),
        ("test.arr.u32", [0, 1, 65536, 4294967295], VT.UINT32),
        ("test.arr.i32", [-2147483648, -1, 0, 7, 2147483647], VT.INT32),
        ("test.arr.f32", [float(x) for x in f32_from_bits(F32_SPECIAL_BITS)], VT.FLOAT32),
        ("test.arr.bool", [True, False, True, True], VT.BOOL),
        ("test.arr.str", ["a", "", "\u00fcn\u00efc\u00f6d\u00e9", "\U0001F999", "two\nlines", 'q"uote'], VT.STRING),
        ("test.arr.u64", [0, 1, 2**32, 2**64 - 1], VT.UINT64),
        ("test.arr.i64", [-(2**63), -1, 0, 2**63 - 1], VT.INT64),
        ("test.arr.f64", [float(x) for x in f64_from_bits(F64_SPECIAL_BITS)], VT.FLOAT64),
    ]
    for key, vals, sub in arr:
        w.add_key_value(key, vals, VT.ARRAY, sub_type=sub)
    # a default-typed array (Python ints -> INT32) as most converters write them
    w.add_array("test.arr.default_int", [3, 1, 4, 1, 5])
    w.add_uint32("llama.context_length", 2048)

    f32_vec = np.array([1.5, -2.25, 0.0, -0.0, 3.4028234663852886e38, 1e-45, 0.1], dtype=np.float32)
    w.add_tensor("f32.vec", f32_vec)
    w.add_tensor("f32.mat", (rng.standard_normal((3, 5)) * 10).astype(np.float32))
    w.add_tensor("f16.t3", rng.standard_normal((2, 3, 4)).astype(np.float16))
    bf = np.array(rng.standard_normal((4, 8)), dtype=np.float32).view(np.uint32)
    bf16_bits = ((bf + 0x7FFF + ((bf >> 16) & 1)) >> 16).astype(np.uint16)  # RNE
    bf16_bits[0, :4] = [0x0000, 0x8000, 0x7F80, 0x0001]  # +0, -0, +inf, min subnormal
    w.add_tensor("bf16.mat", bf16_bits, raw_dtype=QT.BF16)
    w.add_tensor("f64.vec", np.array([math.pi, -1e300, 5e-324], dtype=np.float64))
    w.add_tensor("i8.vec", np.array([-128, -1, 0, 1, 127], dtype=np.int8))
    w.add_tensor("i16.vec", np.array([-32768, -1, 0, 32767], dtype=np.int16))
    w.add_tensor("i32.mat", np.array([[-(2**31), -1, 0], [1, 65536, 2**31 - 1]], dtype=np.int32))
    w.add_tensor("i64.vec", np.array([-(2**63), 0, 2**63 - 1], dtype=np.int64))
    w.add_tensor("f32.special", f32_from_bits([0x7F800000, 0xFF800000, 0x7FC00000, 0x80000001]))
    w.add_tensor("f32.4d", (rng.standard_normal((2, 1, 3, 2))).astype(np.float32))


def build_small(w: GGUFWriter):
    w.add_string("general.name", "small")
    w.add_uint32("test.answer", 42)
    w.add_tensor("a", np.array([1.0, 2.0, 3.0], dtype=np.float32))
    w.add_tensor("b", np.arange(10, dtype=np.int16).reshape(2, 5))


def build_aligned64(w: GGUFWriter):
    rng = np.random.default_rng(64)
    w.add_string("general.name", "aligned64")
    w.add_custom_alignment(64)  # general.alignment (UINT32) = 64
    w.add_tensor("a.f32", rng.standard_normal(5).astype(np.float32))  # 20 bytes
    w.add_tensor("b.f16", rng.standard_normal((3, 7)).astype(np.float16))  # 42 bytes
    w.add_tensor("c.i8", np.arange(-6, 7, dtype=np.int8))  # 13 bytes
    q = gguf.quants.quantize(rng.standard_normal((1, 32)).astype(np.float32), QT.Q8_0)
    w.add_tensor("d.q8_0", q, raw_dtype=QT.Q8_0)  # 34 bytes
    w.add_tensor("e.f32", rng.standard_normal((2, 3)).astype(np.float32))  # 24 bytes


def make_valid_files():
    made = {}
    buf = write_with(OUT / "values.gguf", build_values)
    made["values"] = buf

    small = OUT / "small.tmp.gguf"
    buf = write_with(small, build_small)
    small.unlink()
    v2 = bytearray(buf)
    v2[4:8] = struct.pack("<I", 2)
    write(OUT / "v2.gguf", bytes(v2))
    made["v2"] = bytes(v2)

    made["aligned64"] = write_with(OUT / "aligned64.gguf", build_aligned64)
    made["empty"] = write_with(OUT / "empty.gguf", lambda w: None)

    for name, buf in made.items():
        exp = describe(buf, OUT / f"{name}.gguf")
        exp["file"] = f"{name}.gguf"
        exp["made_by"] = MADE_BY
        if name == "empty":
            exp["note"] = (
                "no tensors: data_offset = header_end, as llama.cpp's gguf_get_data_offset (it does not seek to the aligned "
                "data start when tensor_count == 0, so a reader must not require the padding; see valid_edge/no_tensors_unpadded.gguf). "
                "gguf-py's writer pads the file to align_up(header_end) anyway, and GGUFReader.data_offset reports that aligned value"
            )
        if name == "v2":
            exp["note"] = "byte-identical to a v3 file except the version field (v2 and v3 are the same layout for little-endian files)"
        write_json(OUT / f"{name}.expected.json", exp)
    return made


# ---------------------------------------------------------------------------
# (c) quants.gguf
# ---------------------------------------------------------------------------

ROWS, COLS = 16, 256

# byte offsets of the fp16 scale fields inside one block (ggml-common.h)
FP16_FIELDS = {
    QT.Q4_0: [0],
    QT.Q4_1: [0, 2],
    QT.Q5_0: [0],
    QT.Q5_1: [0, 2],
    QT.Q8_0: [0],
    QT.Q2_K: [80, 82],
    QT.Q3_K: [108],
    QT.Q4_K: [0, 2],
    QT.Q5_K: [0, 2],
    QT.Q6_K: [208],
    QT.IQ2_XXS: [0],
    QT.IQ2_XS: [0],
    QT.IQ2_S: [0],
    QT.IQ3_XXS: [0],
    QT.IQ3_S: [0],
    QT.IQ1_S: [0],
    QT.IQ4_NL: [0],
    QT.IQ4_XS: [0],
    QT.TQ1_0: [52],
    QT.TQ2_0: [64],
    # IQ1_M: d is split over the top nibbles of the 4 uint16 scale words at 48..55
    QT.IQ1_M: [],
    # MXFP4: u8 E8M0 exponent at 0; NVFP4: 4 x u8 UE4M3 at 0..3 (not fp16)
    QT.MXFP4: [],
    QT.NVFP4: [],
}

PLAIN = {QT.F32, QT.F16, QT.BF16, QT.F64, QT.I8, QT.I16, QT.I32, QT.I64}


def make_input():
    rng = np.random.default_rng(1337)
    x = np.empty((ROWS, COLS), dtype=np.float32)
    x[0] = 0.0  # all zero
    x[1] = np.float32(0.37)  # constant
    r = (rng.standard_normal(COLS) * 0.05).astype(np.float32)
    r[77] = 30000.0  # one huge outlier (still finite in fp16)
    x[2] = r
    x[3] = -(np.abs(rng.standard_normal(COLS)) + 0.01)  # only negative values
    x[4] = rng.standard_normal(COLS) * 1e-30  # tiny (scales underflow fp16)
    scales = 10.0 ** np.linspace(-3, 3, ROWS - 5)
    for i, s in enumerate(scales):
        x[5 + i] = rng.standard_normal(COLS) * s
    rows_doc = [
        "0: all zero",
        "1: constant 0.37",
        "2: N(0, 0.05) with element 77 = 30000 (single huge outlier)",
        "3: -(|N(0,1)| + 0.01) (only negative values)",
        "4: N(0,1) * 1e-30 (tiny; fp16 scales underflow to 0)",
    ] + [f"{5 + i}: N(0,1) * {s:.4g}" for i, s in enumerate(scales)]
    return x, rows_doc


def fp16_scales(rng, n):
    mag = 10.0 ** rng.uniform(-3, 0, n)
    sign = np.where(rng.integers(0, 2, n) == 1, -1.0, 1.0)
    return (mag * sign).astype(np.float16)


def random_blocks(t: QT, seed: int):
    bs, ts = GGML_QUANT_SIZES[t]
    nblk = ROWS * COLS // bs
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 256, size=(nblk, ts), dtype=np.uint8)
    fields = []
    for off in FP16_FIELDS.get(t, []):
        b[:, off : off + 2] = fp16_scales(rng, nblk).view(np.uint8).reshape(nblk, 2)
        fields.append({"offset": off, "what": "fp16, random finite, |x| in [1e-3, 1]"})
    if t == QT.IQ1_M:
        d = fp16_scales(rng, nblk).view(np.uint16).astype(np.uint16)
        words = b[:, 48:56].copy().view(np.uint16)  # (nblk, 4)
        for k in range(4):
            nib = (d >> np.uint16(4 * k)) & np.uint16(0xF)
            words[:, k] = (words[:, k] & np.uint16(0x0FFF)) | (nib << np.uint16(12))
        b[:, 48:56] = words.view(np.uint8)
        fields.append({"offset": 48, "what": "fp16 d split over the top nibbles of the 4 LE uint16 words at 48..55 (nibble k of d in word k)"})
    if t == QT.MXFP4:
        e = np.arange(nblk, dtype=np.int64) * 2 % 256
        e[1], e[3], e[5] = 1, 255, 254
        b[:, 0] = e.astype(np.uint8)
        fields.append({"offset": 0, "what": "E8M0 exponent byte: even values 0..254 plus 1, 254, 255"})
    if t == QT.NVFP4:
        b[0, 0:4] = [0x00, 0x7F, 0xFF, 0x80]
        b[1, 0:4] = [0x01, 0x07, 0x08, 0x7E]
        fields.append({"offset": 0, "what": "4 UE4M3 bytes, random; block 0 has 0x00 0x7F 0xFF 0x80, block 1 has 0x01 0x07 0x08 0x7E"})
    return b.reshape(ROWS, COLS // bs * ts), fields


def make_quants():
    x, rows_doc = make_input()
    tensors = []  # (name, array, raw_dtype, entry)
    unsupported = []
    quantizable, dequantizable = [], []

    def entry(name, t, arr, oracle, **extra):
        raw = np.ascontiguousarray(arr).tobytes()
        e = {"name": name, "type": t.name, "shape": [ROWS, COLS], "ne": [COLS, ROWS], "nbytes": len(raw), "data_sha256": sha256(raw), "oracle": oracle}
        e.update(extra)
        return e

    tensors.append(("input", x, None, entry("input", QT.F32, x, "deterministic input (numpy default_rng(1337)); rows: see input_rows")))

    for t in QT:
        if t in (QT.F32,):
            continue
        q = None
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                q = gguf.quants.quantize(x, t)
        except Exception as e:  # NotImplementedError / QuantError
            qerr = f"{type(e).__name__}: {e}"
        dq = None
        if q is not None:
            try:
                with np.errstate(all="ignore"):
                    dq = gguf.quants.dequantize(np.ascontiguousarray(q).view(np.uint8), t)
            except Exception as e:
                unsupported.append({"type": t.name, "quantize": "ok", "dequantize_error": f"{type(e).__name__}: {e}"})
                continue
            quantizable.append(t.name)
            raw_dtype = None if t == QT.F16 else t
            tensors.append((f"q.{t.name}", q, raw_dtype, entry(f"q.{t.name}", t, q, f"gguf.quants.quantize(input, GGMLQuantizationType.{t.name})")))
            dq = np.asarray(dq, dtype=np.float32).reshape(ROWS, COLS)
            tensors.append(
                (f"dq.{t.name}", dq, None, entry(f"dq.{t.name}", QT.F32, dq, f"gguf.quants.dequantize(q.{t.name} bytes, GGMLQuantizationType.{t.name})", source=f"q.{t.name}"))
            )
            continue
        # not quantizable: can it dequantize?
        if t in PLAIN:
            unsupported.append({"type": t.name, "quantize_error": qerr, "note": "plain type; read as numpy"})
            continue
        bs, ts = GGML_QUANT_SIZES[t]
        probe = np.zeros((1, ts), dtype=np.uint8)
        try:
            gguf.quants.dequantize(probe, t)
        except Exception as e:
            unsupported.append({"type": t.name, "quantize_error": qerr, "dequantize_error": f"{type(e).__name__}: {e}"})
            continue
        dequantizable.append(t.name)

    # random valid blocks for every dequantizable block type (quantizable ones too)
    rtypes = [t for t in QT if t not in PLAIN and t.name in set(quantizable) | set(dequantizable)]
    for t in rtypes:
        rb, fields = random_blocks(t, 9000 + int(t))
        with np.errstate(all="ignore"):
            dr = np.asarray(gguf.quants.dequantize(rb, t), dtype=np.float32).reshape(ROWS, COLS)
        bs, ts = GGML_QUANT_SIZES[t]
        tensors.append((f"r.{t.name}", rb, t, entry(f"r.{t.name}", t, rb, f"numpy default_rng({9000 + int(t)}) random bytes, scale fields replaced (see scale_fields)", scale_fields=fields)))
        tensors.append(
            (
                f"dr.{t.name}",
                dr,
                None,
                entry(
                    f"dr.{t.name}",
                    QT.F32,
                    dr,
                    f"gguf.quants.dequantize(r.{t.name} bytes, GGMLQuantizationType.{t.name})",
                    source=f"r.{t.name}",
                    nan_count=int(np.isnan(dr).sum()),
                    inf_count=int(np.isinf(dr).sum()),
                ),
            )
        )

    def build(w):
        w.add_string("general.name", "nopekit quants fixture")
        for name, arr, raw_dtype, _ in tensors:
            if raw_dtype is None:
                w.add_tensor(name, np.ascontiguousarray(arr))
            else:
                w.add_tensor(name, np.ascontiguousarray(arr), raw_dtype=raw_dtype)

    buf = write_with(OUT / "quants.gguf", build)
    d = describe(buf, OUT / "quants.gguf", values_limit=0)
    by_name = {t["name"]: t for t in d["tensors"]}
    out_tensors = []
    for name, arr, raw_dtype, e in tensors:
        t = by_name[name]
        assert t["data_sha256"] == e["data_sha256"] and t["type"] == e["type"] and t["shape"] == e["shape"], name
        e = dict(e)
        e["offset"] = t["offset"]
        bs, ts = GGML_QUANT_SIZES[QT[e["type"]]]
        e["block_size"], e["type_size"] = bs, ts
        out_tensors.append(e)
    exp = {
        "file": "quants.gguf",
        "made_by": MADE_BY,
        "gguf_py_version": importlib.metadata.version("gguf"),
        "version": d["version"],
        "alignment": d["alignment"],
        "data_offset": d["data_offset"],
        "compare": "dq.* and dr.* are the gguf.quants (numpy float32) results: compare bit for bit (NaN == NaN); q.* is the quantizer's exact byte output",
        "input_rows": rows_doc,
        "quantize_and_dequantize": quantizable,
        "dequantize_only": dequantizable,
        "unsupported": unsupported,
        "tensors": out_tensors,
    }
    write_json(OUT / "quants.expected.json", exp)
    return exp


# ---------------------------------------------------------------------------
# (d) malformed and valid-edge files, built byte by byte
# ---------------------------------------------------------------------------


def p_u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def p_u64(v):
    return struct.pack("<Q", v & U64_MASK)


def p_str(b):
    if isinstance(b, str):
        b = b.encode("utf-8")
    return p_u64(len(b)) + b


def kv(key, vtype, payload: bytes):
    return p_str(key) + p_u32(vtype) + payload


def kv_str(key, s):
    return kv(key, 8, p_str(s))


def kv_u32(key, v):
    return kv(key, 4, p_u32(v))


def kv_arr(key, etype, count, payload: bytes):
    return kv(key, 9, p_u32(etype) + p_u64(count) + payload)


def tinfo(name, ne, ttype, offset, n_dims=None):
    nd = len(ne) if n_dims is None else n_dims
    return p_str(name) + p_u32(nd) + b"".join(p_u64(d) for d in ne) + p_u32(ttype) + p_u64(offset)


def header(n_tensors, n_kv, version=3, magic=b"GGUF"):
    return magic + p_u32(version) + p_u64(n_tensors) + p_u64(n_kv)


def gguf_bytes(kvs, tis, data=b"", version=3, magic=b"GGUF", n_tensors=None, n_kv=None, align=ALIGN, pad=True):
    body = header(len(tis) if n_tensors is None else n_tensors, len(kvs) if n_kv is None else n_kv, version, magic)
    body += b"".join(kvs) + b"".join(tis)
    if pad:
        body += b"\0" * ((-len(body)) % align)
    return body + data


ARCH = kv_str("general.architecture", "llama")
T0 = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32).tobytes()  # 16 bytes
T1 = np.array([5.0, 6.0, 7.0], dtype=np.float32).tobytes()  # 12 bytes


def padded(b, a=ALIGN):
    return b + b"\0" * ((-len(b)) % a)


def base_parts():
    """The valid base file: 2 KVs, t0 F32[4] at 0, t1 F32[3] at 32."""
    kvs = [ARCH, kv_str("general.name", "base")]
    tis = [tinfo("t0", [4], 0, 0), tinfo("t1", [3], 0, 32)]
    data = padded(T0) + padded(T1)
    return kvs, tis, data


def base_file():
    kvs, tis, data = base_parts()
    return gguf_bytes(kvs, tis, data)


def malformed_cases():
    cases = []

    def add(file, kind, what, buf):
        cases.append((file, kind, what, buf))

    kvs, tis, data = base_parts()
    base = gguf_bytes(kvs, tis, data)
    hdr_len = 24
    kv0_len = len(ARCH)
    head_kv = header(2, 2) + b"".join(kvs)  # header + KVs of the base file
    ti0 = tis[0]

    # -- truncated ------------------------------------------------------------
    add("empty_file.gguf", "truncated", "zero-byte file", b"")
    add("short_3_bytes.gguf", "truncated", "3 bytes 'GGU'", b"GGU")
    add("short_10_bytes.gguf", "truncated", "magic + version 3 + 2 bytes of tensor_count (10 bytes)", base[:10])
    add("short_23_bytes.gguf", "truncated", "header cut one byte short of 24 (inside kv_count)", base[:23])
    add("truncated_in_key_length.gguf", "truncated", "ends 4 bytes into the first key's u64 length", base[: hdr_len + 4])
    add("truncated_in_value_type.gguf", "truncated", "ends 2 bytes into the first KV's value type", base[: hdr_len + 8 + 20 + 2])
    u32file = gguf_bytes([kv_u32("test.value", 7)], [])
    add("truncated_in_u32_value.gguf", "truncated", "a UINT32 KV with only 2 of its 4 value bytes", u32file[: 24 + 8 + 10 + 4 + 2])
    arrfile = gguf_bytes([kv_arr("test.arr", 4, 2, p_u32(1) + p_u32(2))], [], pad=False)
    add("truncated_in_array_count.gguf", "truncated", "an ARRAY KV cut 3 bytes into its u64 element count", arrfile[: 24 + 8 + 8 + 4 + 4 + 3])
    add("truncated_missing_kv.gguf", "truncated", "kv_count = 3 but the file ends after the second KV (no tensors)", header(0, 3) + b"".join(kvs))
    add("kv_count_huge.gguf", "truncated", "kv_count = 2**40 with one KV present (a reader must not pre-allocate)", header(0, 2**40) + ARCH)
    add("tensor_count_huge.gguf", "truncated", "tensor_count = 2**40 with one tensor info present", header(2**40, 1) + ARCH + ti0)
    ti_start = len(head_kv)
    add("truncated_in_tensor_ndims.gguf", "truncated", "ends 2 bytes into the first tensor's n_dims", base[: ti_start + 8 + 2 + 2])
    add("truncated_in_tensor_dims.gguf", "truncated", "ends 5 bytes into the first tensor's ne[0]", base[: ti_start + 8 + 2 + 4 + 5])
    add("truncated_in_tensor_type.gguf", "truncated", "ends 1 byte into the first tensor's type", base[: ti_start + 8 + 2 + 4 + 8 + 1])
    add("truncated_in_tensor_offset.gguf", "truncated", "ends 7 bytes into the first tensor's offset", base[: ti_start + len(ti0) - 1])
    add("truncated_missing_tensor_info.gguf", "truncated", "tensor_count = 2 but the file ends after the first tensor info", base[: ti_start + len(ti0)])

    # -- badMagic / bigEndian / unsupportedVersion ------------------------------
    add("bad_magic_ggml.gguf", "badMagic", "magic 'GGML' (otherwise the valid base file)", b"GGML" + base[4:])
    add("bad_magic_lowercase.gguf", "badMagic", "magic 'gguf'", b"gguf" + base[4:])
    add("bad_magic_zero.gguf", "badMagic", "magic 00 00 00 00", b"\0\0\0\0" + base[4:])
    for v, what in [(0, "version 0"), (1, "version 1 (GGUFv1, u32 counts; rejected by llama.cpp)"), (4, "version 4 (newer than 3)"), (0xFFFF, "version 65535")]:
        add(f"version_{v}.gguf", "unsupportedVersion", what, base[:4] + p_u32(v) + base[8:])

    # -- stringTooLong ------------------------------------------------------------
    add(
        "key_length_past_eof.gguf",
        "stringTooLong",
        "first key length is 1000, only 30 bytes follow",
        header(0, 1) + p_u64(1000) + b"general.architecture" + p_u32(8) + b"\0\0\0\0\0\0",
    )
    add("string_value_2_63.gguf", "stringTooLong", "STRING value length 2**63", header(0, 1) + p_str("general.name") + p_u32(8) + p_u64(2**63) + b"abc")
    add("string_value_u64_max.gguf", "stringTooLong", "STRING value length 2**64-1 (offset + length overflows u64)", header(0, 1) + p_str("general.name") + p_u32(8) + p_u64(U64_MASK) + b"abc")
    add("string_value_one_over.gguf", "stringTooLong", "STRING value length 6 with 5 bytes left ('llama' is the end of the file)", header(0, 1) + p_str("general.architecture") + p_u32(8) + p_u64(6) + b"llama")
    add(
        "string_in_array_past_eof.gguf",
        "stringTooLong",
        "ARRAY of 2 STRING: the second string's length is 100 with 3 bytes left",
        header(0, 1) + p_str("test.strs") + p_u32(9) + p_u32(8) + p_u64(2) + p_str("ab") + p_u64(100) + b"xyz",
    )
    add(
        "tensor_name_past_eof.gguf",
        "stringTooLong",
        "first tensor's name length is 500, the file ends 40 bytes later",
        header(1, 1) + ARCH + p_u64(500) + b"t0" + b"\0" * 38,
    )

    # -- arrayTooLong -----------------------------------------------------------
    add("array_u32_past_eof.gguf", "arrayTooLong", "ARRAY of UINT32, count 1000, 8 bytes follow", header(0, 1) + p_str("test.arr") + p_u32(9) + p_u32(4) + p_u64(1000) + b"\0" * 8)
    add(
        "array_u64_count_wraps.gguf",
        "arrayTooLong",
        "ARRAY of UINT64, count 2**61: count x 8 = 2**64 wraps to 0 in u64 arithmetic",
        header(0, 1) + p_str("test.arr") + p_u32(9) + p_u32(10) + p_u64(2**61) + b"\0" * 16,
    )
    add(
        "array_str_count_wraps.gguf",
        "arrayTooLong",
        "ARRAY of STRING, count 2**62: count x 8 = 2**65 wraps to 0 in u64 arithmetic",
        header(0, 1) + p_str("test.strs") + p_u32(9) + p_u32(8) + p_u64(2**62) + p_str("a"),
    )
    add("array_bool_past_eof.gguf", "arrayTooLong", "ARRAY of BOOL, count 10, 3 bytes follow", header(0, 1) + p_str("test.flags") + p_u32(9) + p_u32(7) + p_u64(10) + b"\1\0\1")

    # -- duplicateKey / invalidValueType / emptyKey -------------------------------
    add("duplicate_key.gguf", "duplicateKey", "general.name twice (STRING, then UINT32)", gguf_bytes(kvs + [kv_u32("general.name", 1)], tis, data))
    add("value_type_13.gguf", "invalidValueType", "KV value type 13", gguf_bytes([ARCH, kv("test.x", 13, p_u32(0))], tis, data))
    add("value_type_minus_1.gguf", "invalidValueType", "KV value type 0xFFFFFFFF (-1 as int32)", gguf_bytes([ARCH, kv("test.x", 0xFFFFFFFF, p_u32(0))], tis, data))
    nested = p_u32(9) + p_u64(2) + (p_u32(5) + p_u64(1) + p_u32(1)) + (p_u32(5) + p_u64(1) + p_u32(2))
    add("nested_array.gguf", "invalidValueType", "ARRAY whose element type is ARRAY (2 INT32 sub-arrays; gguf-py reads it flattened, llama.cpp rejects)", gguf_bytes([ARCH, kv_arr("test.nested", 9, 2, nested[12:])], tis, data))
    add("array_elem_type_13.gguf", "invalidValueType", "ARRAY with element type 13, count 1", gguf_bytes([ARCH, kv_arr("test.arr", 13, 1, p_u32(0))], tis, data))
    add("empty_key.gguf", "emptyKey", "second KV has a zero-length key", gguf_bytes([ARCH, kv("", 4, p_u32(1))], tis, data))

    # -- badAlignment -----------------------------------------------------------
    add("alignment_u64.gguf", "badAlignment", "general.alignment is UINT64 32", gguf_bytes([ARCH, kv("general.alignment", 10, p_u64(32))], tis, data))
    add("alignment_i32.gguf", "badAlignment", "general.alignment is INT32 32", gguf_bytes([ARCH, kv("general.alignment", 5, p_u32(32))], tis, data))
    add("alignment_zero.gguf", "badAlignment", "general.alignment = 0 (UINT32)", gguf_bytes([ARCH, kv_u32("general.alignment", 0)], tis, data))
    add("alignment_48.gguf", "badAlignment", "general.alignment = 48 (UINT32, not a power of two)", gguf_bytes([ARCH, kv_u32("general.alignment", 48)], tis, data, align=48))

    # -- tensor infos -------------------------------------------------------------
    n64 = "x" * 64
    add("tensor_name_64.gguf", "tensorNameTooLong", "tensor name of 64 bytes (limit is 63)", gguf_bytes(kvs, [tinfo(n64, [4], 0, 0)], padded(T0)))
    add("tensor_name_1000.gguf", "tensorNameTooLong", "tensor name of 1000 bytes (all present in the file)", gguf_bytes(kvs, [tinfo("y" * 1000, [4], 0, 0)], padded(T0)))
    add("duplicate_tensor.gguf", "duplicateTensor", "two tensors named 't0' with valid consecutive offsets", gguf_bytes(kvs, [tinfo("t0", [4], 0, 0), tinfo("t0", [3], 0, 32)], data))
    add("five_dims.gguf", "tooManyDimensions", "n_dims = 5 (ne 4,1,1,1,1)", gguf_bytes(kvs, [tinfo("t0", [4, 1, 1, 1, 1], 0, 0)], padded(T0)))
    add("dim_2_63.gguf", "invalidDimension", "ne = [4, 2**63] (negative as int64)", gguf_bytes(kvs, [tinfo("t0", [4, 2**63], 0, 0)], padded(T0)))
    add("dim_u64_max.gguf", "invalidDimension", "ne = [2**64-1]", gguf_bytes(kvs, [tinfo("t0", [U64_MASK], 0, 0)], padded(T0)))
    add("element_overflow_2d.gguf", "elementCountOverflow", "F32 ne = [2**32, 2**32]: 2**64 elements", gguf_bytes(kvs, [tinfo("t0", [2**32, 2**32], 0, 0)], padded(T0)))
    add("element_overflow_3d.gguf", "elementCountOverflow", "F32 ne = [2**21, 2**21, 2**21]: 2**63 elements (> INT64_MAX)", gguf_bytes(kvs, [tinfo("t0", [2**21, 2**21, 2**21], 0, 0)], padded(T0)))
    add(
        "byte_size_overflow.gguf",
        "elementCountOverflow",
        "F64 ne = [2**62]: the element count fits int64 but 8 x 2**62 bytes overflows u64 (llama.cpp: 'size in bytes > SIZE_MAX')",
        gguf_bytes(kvs, [tinfo("t0", [2**62], 28, 0)], padded(T0)),
    )
    for tid, what in [(4, "removed Q4_2"), (5, "removed Q4_3"), (31, "removed Q4_0_4_4"), (36, "removed IQ4_NL_4_4"), (99, "never defined"), (0xFFFFFFFF, "-1 as int32")]:
        label = "minus_1" if tid == 0xFFFFFFFF else str(tid)
        add(f"tensor_type_{label}.gguf", "unknownTensorType", f"tensor type id {tid if tid != 0xFFFFFFFF else -1} ({what}), ne [32]", gguf_bytes(kvs, [tinfo("t0", [32], tid, 0)], b"\0" * 32))
    add("q4_0_ne0_48.gguf", "blockMisaligned", "Q4_0 tensor with ne = [48, 1] (48 is not a multiple of the block size 32)", gguf_bytes(kvs, [tinfo("t0", [48, 1], 2, 0)], b"\0" * 32))
    add("q4_k_ne0_128.gguf", "blockMisaligned", "Q4_K tensor with ne = [128, 2] (block size 256)", gguf_bytes(kvs, [tinfo("t0", [128, 2], 12, 0)], b"\0" * 160))

    # -- offsets ----------------------------------------------------------------
    add("offset_gap.gguf", "misorderedOffsets", "t0 at 0 (16 bytes), t1 at 64 instead of 32 (data section long enough)", gguf_bytes(kvs, [tinfo("t0", [4], 0, 0), tinfo("t1", [3], 0, 64)], padded(T0) + b"\0" * 32 + padded(T1)))
    add("offsets_swapped.gguf", "misorderedOffsets", "t0 (F32[4]) at 32 and t1 (F32[4]) at 0: the infos list them in reverse data order", gguf_bytes(kvs, [tinfo("t0", [4], 0, 32), tinfo("t1", [4], 0, 0)], padded(T0) + padded(T0)))
    add("first_offset_nonzero.gguf", "misorderedOffsets", "the first tensor starts at 32, not 0", gguf_bytes(kvs, [tinfo("t0", [4], 0, 32), tinfo("t1", [3], 0, 64)], b"\0" * 32 + data))
    add("offset_unaligned.gguf", "misorderedOffsets", "t0 F32[1] at 0, t1 at 4 (packed, not aligned to 32)", gguf_bytes(kvs, [tinfo("t0", [1], 0, 0), tinfo("t1", [3], 0, 4)], padded(T0[:4] + T1)))
    add("offset_overlap.gguf", "misorderedOffsets", "t0 and t1 both at offset 0", gguf_bytes(kvs, [tinfo("t0", [4], 0, 0), tinfo("t1", [3], 0, 0)], data))

    # -- data bounds ------------------------------------------------------------
    add("data_truncated_mid_tensor.gguf", "dataOutOfBounds", "file ends 5 bytes into the last tensor's 12 data bytes", base[: len(base) - 32 + 5])
    add("data_truncated_last_padding.gguf", "dataOutOfBounds", "last tensor's data complete but its 20 padding bytes are missing (gguf-py and llama.cpp's no_alloc path accept this)", base[: len(base) - 20])
    add("data_missing.gguf", "dataOutOfBounds", "file ends exactly at the aligned data start; both tensors have bytes", gguf_bytes(kvs, tis, b""))
    add("huge_tensor.gguf", "dataOutOfBounds", "F32 ne = [2**40] (4 TiB) in a small file (a reader must not allocate it)", gguf_bytes(kvs, [tinfo("t0", [2**40], 0, 0)], padded(T0)))
    unpadded = gguf_bytes(kvs, tis, pad=False)
    assert len(unpadded) % ALIGN != 0
    add("data_start_past_eof.gguf", "dataStartOutOfBounds", "file ends right after the tensor infos (not at a multiple of 32) with 2 tensors", unpadded)
    add("data_start_partial_padding.gguf", "dataStartOutOfBounds", "file ends inside the padding before the data section", unpadded + b"\0" * (((-len(unpadded)) % ALIGN) - 1))
    zt = gguf_bytes(kvs, [tinfo("z", [0], 0, 0)], pad=False)
    assert len(zt) % ALIGN != 0
    add("data_start_past_eof_zero_size.gguf", "dataStartOutOfBounds", "one zero-element tensor (ne [0], 0 bytes) and no padding: only the data start is out of bounds", zt)

    # -- bigEndian (written by gguf-py's own big-endian writer) --------------------
    tmp = OUT / "be.tmp.gguf"

    def build_be(w):
        w.add_uint32("test.answer", 42)
        w.add_tensor("t0", np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32))

    be = write_with(tmp, build_be, endianess=gguf.GGUFEndian.BIG)
    tmp.unlink()
    assert be[4:8] == b"\0\0\0\3"
    add("big_endian.gguf", "bigEndian", "a whole file written by GGUFWriter(endianess=BIG): version reads as 0x03000000 (gguf-py byte-swaps and accepts it)", be)
    return cases


def valid_edge_cases():
    cases = []
    kvs, tis, data = base_parts()
    cases.append(("base.gguf", "the valid base file most malformed files are derived from: 2 KVs, t0 F32[4] at 0, t1 F32[3] at 32", gguf_bytes(kvs, tis, data)))
    cases.append(("minimal.gguf", "24 bytes: header only, 0 tensors, 0 KVs", header(0, 0)))
    cases.append(("no_tensors_unpadded.gguf", "1 KV, no tensors, file ends right after the KV (llama.cpp does not seek to the data section when there are no tensors)", header(0, 1) + ARCH))
    cases.append(
        (
            "empty_arrays.gguf",
            "an empty UINT32 array and an empty STRING array (gguf-py's writer cannot produce these; llama.cpp reads them)",
            gguf_bytes([ARCH, kv_arr("test.empty_u32", 4, 0, b""), kv_arr("test.empty_str", 8, 0, b"")], tis, data),
        )
    )
    cases.append(
        (
            "zero_size_tensor.gguf",
            "F32 ne [4, 0] (0 bytes) at offset 0 followed by t1 F32[3] also at offset 0",
            gguf_bytes(kvs, [tinfo("empty", [4, 0], 0, 0), tinfo("t1", [3], 0, 0)], padded(T1)),
        )
    )
    cases.append(("scalar_ndims0.gguf", "tensor with n_dims = 0: one element (HF shape [])", gguf_bytes(kvs, [tinfo("scalar", [], 0, 0)], padded(T0[:4]))))
    cases.append(("trailing_unit_dims.gguf", "n_dims = 4 with ne [4, 1, 1, 1] (HF shape [1, 1, 1, 4]; as gguf-py writes shape (1,1,1,4))", gguf_bytes(kvs, [tinfo("t0", [4, 1, 1, 1], 0, 0)], padded(T0))))
    cases.append(
        (
            "alignment_1.gguf",
            "general.alignment = 1: no padding anywhere",
            gguf_bytes([ARCH, kv_u32("general.alignment", 1)], [tinfo("t0", [4], 0, 0), tinfo("t1", [3], 0, 16)], T0 + T1, align=1),
        )
    )
    cases.append(("tensor_name_63.gguf", "tensor name of 63 bytes (the longest allowed)", gguf_bytes(kvs, [tinfo("n" * 63, [4], 0, 0)], padded(T0))))
    cases.append(("tensor_name_utf8.gguf", "non-ASCII tensor name 'тензор.🦙' (16 UTF-8 bytes)", gguf_bytes(kvs, [tinfo("\u0442\u0435\u043d\u0437\u043e\u0440.\U0001F999", [4], 0, 0)], padded(T0))))
    cases.append(("trailing_bytes.gguf", "valid file followed by 7 extra bytes after the last tensor's padding (neither gguf-py nor llama.cpp checks for trailing data)", gguf_bytes(kvs, tis, data) + b"trailer"))
    return cases


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def gguf_py_verdict(path: Path, seconds=3):
    """(rejects, error, outcome) of gguf.GGUFReader on the file."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = GGUFReader(str(path))
            for t in r.tensors:  # touch the data
                np.asarray(t.data).tobytes()
            for f in r.fields.values():
                f.contents()
        signal.alarm(0)
        return False, None, "accepts"
    except _Timeout:
        return False, f"did not finish within {seconds} s (interrupted)", "hangs"
    except Exception as e:
        signal.alarm(0)
        return True, f"{type(e).__name__}: {e}"[:300], "rejects"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def make_malformed_and_edges():
    mdir = OUT / "malformed"
    manifest = []
    files = set()
    for file, kind, what, buf in malformed_cases():
        assert file not in files, file
        files.add(file)
        write(mdir / file, buf)
        try:
            strict_parse(buf)
            raise AssertionError(f"{file}: strict reader accepts it")
        except GGUFError as e:
            assert e.kind == kind, f"{file}: strict reader says {e}, manifest says {kind}"
            strict_msg = str(e)
        rejects, err, outcome = gguf_py_verdict(mdir / file)
        manifest.append({"file": file, "kind": kind, "what": what, "strict_reader": strict_msg, "gguf_py_rejects": rejects, "gguf_py_error": err, "gguf_py_outcome": outcome})
    write_json(mdir / "manifest.json", manifest)

    vdir = OUT / "valid_edge"
    vmanifest = []
    for file, what, buf in valid_edge_cases():
        write(vdir / file, buf)
        rejects, err, outcome = gguf_py_verdict(vdir / file)
        exp = describe(buf, None)
        if not rejects:
            check_against_reader(exp, strict_parse(buf), buf, vdir / file)
        vmanifest.append({"file": file, "what": what, "gguf_py_accepts": not rejects, "gguf_py_error": err, "expected": exp})
    write_json(vdir / "manifest.json", vmanifest)
    return manifest, vmanifest


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for sub in ("malformed", "valid_edge"):
        if (OUT / sub).exists():
            shutil.rmtree(OUT / sub)
    made = make_valid_files()
    qexp = make_quants()
    manifest, vmanifest = make_malformed_and_edges()

    for name, buf in made.items():
        d = strict_parse(buf)
        print(f"{name}.gguf: v{d['version']} align {d['alignment']} data_offset {d['data_offset']} {len(d['kvs'])} KVs {len(d['tensors'])} tensors {len(buf)} bytes")
    print(f"quants.gguf: {len(qexp['tensors'])} tensors")
    print(f"  quantize+dequantize: {', '.join(qexp['quantize_and_dequantize'])}")
    print(f"  dequantize only:     {', '.join(qexp['dequantize_only'])}")
    for u in qexp["unsupported"]:
        print(f"  unsupported: {u['type']}: {u.get('dequantize_error') or u.get('quantize_error')}")
    print(f"malformed: {len(manifest)} files")
    for m in manifest:
        res = {"rejects": "rejects: " + str(m["gguf_py_error"]), "accepts": "ACCEPTS", "hangs": "HANGS"}[m["gguf_py_outcome"]]
        print(f"  {m['file']:40s} {m['kind']:22s} gguf-py {res[:110]}")
    print(f"valid_edge: {len(vmanifest)} files")
    for m in vmanifest:
        print(f"  {m['file']:40s} gguf-py {'accepts' if m['gguf_py_accepts'] else 'REJECTS: ' + str(m['gguf_py_error'])[:100]}")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixtures/gguf total: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
