"""Generate the PyTorch ``.bin`` test fixtures under ``fixtures/pytorch/``.

Run from the repository root (overwrites everything it writes)::

    .venv/bin/python scripts/reference/make_pytorch_fixtures.py

Oracles: torch (2.13 CPU in the repo venv) writes the checkpoints with ``torch.save``
and reads them back with ``torch.load(weights_only=True)``; the tensors it returns,
made contiguous, are written with the PyPI ``safetensors`` package (0.8.0) to
``expected/<fixture>.safetensors``. The Swift reader must return the same bytes.
Nothing here ever calls ``torch.load`` without ``weights_only=True``, and the
malicious payloads are only pickled, never unpickled by a full unpickler.

Output is deterministic: fixed seeds; torch's zip writer uses a fixed timestamp,
and the one random record it writes (``.data/serialization_id``) is replaced by a
fixed id with its CRC-32 fixed in the data descriptor and central directory.

What it writes (all small; the total stays well under 300 KB):

good fixtures (each has ``expected/<stem>.safetensors``)
    ``plain.bin``      f32/f16/bf16/i64 tensors, a scalar and a zero-sized tensor.
    ``dtypes.bin``     every other dtype nopekit maps: f64, i32, i16, i8, u8, bool,
                       c64 (legacy storage classes) and float8 e4m3fn/e5m2/e4m3fnuz/
                       e5m2fnuz/e8m0fnu, uint16/32/64 (``_rebuild_tensor_v3``).
    ``views.bin``      tied names for one tensor, ``w.t()``, ``w[1]`` (storage offset),
                       strided column and block slices, a stride-0 ``expand`` and an
                       f16 slice at an odd offset: all share storages.
    ``params.bin``     ``state_dict(keep_vars=True)`` of a tiny module: an OrderedDict
                       (with ``_metadata`` set by BUILD) of ``nn.Parameter`` entries,
                       a frozen parameter, a buffer, and a tensor carrying a Python
                       attribute (``_rebuild_from_type_v2``).
    ``nested.bin``     ``{"state_dict": {...}, "epoch": 3, "step": 10}``.
    ``deflated.bin``   ``plain.bin`` re-zipped by ``zipfile`` with every entry DEFLATED.
    ``zip64.bin``      ``plain.bin`` re-written with ZIP64 records everywhere (local and
                       central zip64 extras, ZIP64 end record and locator), 64-aligned.
    ``bigendian.bin``  a torch archive whose ``byteorder`` says ``big`` and whose
                       storages are byte-swapped (torch.load swaps them back).
    ``oldroot.bin``    ``plain`` tensors saved under the root folder name ``archive/``.
    ``nocrc.bin``      saved with ``torch.serialization.set_crc32_options(False)``
                       (every CRC field is 0).
    ``legacy.bin``     ``plain`` tensors saved with ``_use_new_zipfile_serialization=False``
                       (the pre-1.6 non-zip format; storage keys renamed k0, k1, ...).
    ``hf_model/``      config.json + pytorch_model.bin of fixtures/engine/llama_mha_rope,
                       every k_proj a transposed view (its oracle is that folder).
    ``sharded/``       ``pytorch_model-0000{1,2}-of-00002.bin`` and
                       ``pytorch_model.bin.index.json`` (transformers layout); the
                       oracle is ``expected/sharded.safetensors``.

refused fixtures (``manifest.json`` lists the nopekit error kind and what torch did)
    ``malicious_global.bin``   data.pkl = GLOBAL 'os system' + REDUCE (hand-written).
    ``malicious_reduce.bin``   torch.save of a dict whose second value's __reduce__
                               returns (builtins.eval, (...)).
    ``malicious_opcode.bin``   data.pkl using INST ('i'), outside the allowlist.
    ``bad/*.bin``              crafted structural errors (see BAD below).
"""

import collections
import hashlib
import io
import json
import os
import pickle
import pickletools
import shutil
import struct
import sys
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
import safetensors
import safetensors.torch

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "fixtures" / "pytorch"
PWNED = "/tmp/nopekit-pwned"
FIXED_ID = b"0" * 40

GEN = torch.Generator().manual_seed(20240607)


def randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=GEN).to(dtype)


# ---------------------------------------------------------------------------------------
# Zip plumbing


def local_data_offset(data, header_offset):
    sig, = struct.unpack_from("<I", data, header_offset)
    assert sig == 0x04034B50
    n, e = struct.unpack_from("<HH", data, header_offset + 26)
    return header_offset + 30 + n + e


def fix_serialization_id(path):
    """Replace torch's random ``.data/serialization_id`` by a fixed one, fixing its CRC."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = next((i for i in z.infolist() if i.filename.endswith("/.data/serialization_id")), None)
        start_dir = z.start_dir
    if info is None:
        return
    start = local_data_offset(data, info.header_offset)
    assert info.compress_type == zipfile.ZIP_STORED and info.file_size == len(FIXED_ID)
    data[start:start + len(FIXED_ID)] = FIXED_ID
    old, new = info.CRC, zlib.crc32(FIXED_ID)
    if old != 0:  # set_crc32_options(False) writes 0 everywhere: leave it
        end = start + len(FIXED_ID)
        at = end + 4 if data[end:end + 4] == b"PK\x07\x08" else end
        assert struct.unpack_from("<I", data, at)[0] == old
        struct.pack_into("<I", data, at, new)
        pos = start_dir
        while data[pos:pos + 4] == b"PK\x01\x02":
            n, e, c = struct.unpack_from("<HHH", data, pos + 28)
            if data[pos + 46:pos + 46 + n].decode() == info.filename:
                assert struct.unpack_from("<I", data, pos + 16)[0] == old
                struct.pack_into("<I", data, pos + 16, new)
            pos += 46 + n + e + c
    path.write_bytes(bytes(data))
    if old != 0:
        with zipfile.ZipFile(path) as z:
            assert z.testzip() is None


def fix_legacy_keys(path, original):
    """The legacy format names storages by their memory address and writes them sorted by
    that name. Rename them k0, k1, ... in order of first use and write them in that order
    (the file holds no offsets, so renaming and reordering is safe)."""
    data = path.read_bytes()
    stream = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, sys_info
        pickle.load(stream)
    main_start = stream.tell()
    element_sizes = {}

    class Scan(pickle.Unpickler):
        def find_class(self, module, name):
            return getattr(torch, name) if name.endswith("Storage") else (lambda *a, **k: None)

        def persistent_load(self, pid):
            element_sizes.setdefault(pid[2], torch.empty(0, dtype=pid[1].dtype).element_size())

    with warnings.catch_warnings():  # TypedStorage deprecation, from reading .dtype
        warnings.simplefilter("ignore")
        Scan(stream).load()
    main = data[main_start:stream.tell()]
    keys = pickle.load(stream)
    blocks = {}
    for key in keys:
        numel, = struct.unpack("<q", data[stream.tell():stream.tell() + 8])
        blocks[key] = stream.read(8 + numel * element_sizes[key])
    assert stream.read() == b""
    renamed = {old: f"k{i}" for i, old in enumerate(element_sizes)}
    for old, new in renamed.items():
        pattern = b"X" + struct.pack("<I", len(old)) + old.encode()
        assert main.count(pattern) >= 1
        main = main.replace(pattern, b"X" + struct.pack("<I", len(new)) + new.encode())
    out = data[:main_start] + main + pickle.dumps(list(renamed.values()), protocol=2)
    out += b"".join(blocks[old] for old in renamed)
    path.write_bytes(out)
    if original is not None:  # None: a payload torch must refuse
        loaded = load_safely(path)
        assert all(torch.equal(loaded[k], v) for k, v in original.items())


def torch_save(obj, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path, **kwargs)
    if kwargs.get("_use_new_zipfile_serialization", True):
        fix_serialization_id(path)


def rezip(src, dst, compression=zipfile.ZIP_STORED, transform=None):
    """Copy every entry of ``src`` into a new zip written by Python's zipfile."""
    with zipfile.ZipFile(src) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(dst, "w", compression=compression) as out:
        for name, data in entries:
            if transform is not None:
                data = transform(name, data)
                if data is None:
                    continue
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            out.writestr(info, data)


def write_zip64(src, dst):
    """Re-write ``src`` with ZIP64 records for every size and offset (as miniz does for big
    archives): 0xFFFFFFFF in the 32-bit fields, real values in the zip64 extra (id 0x0001),
    a ZIP64 end of central directory record and its locator. Data stays 64-byte aligned."""
    with zipfile.ZipFile(src) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        encoded = name.encode()
        crc = zlib.crc32(data)
        offset = len(out)
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        pad = (-(offset + 30 + len(encoded) + len(local_extra) + 4)) % 64
        local_extra += struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0x0800, 0, 0, 0x21, crc,
                           0xFFFFFFFF, 0xFFFFFFFF, len(encoded), len(local_extra))
        out += encoded + local_extra
        assert len(out) % 64 == 0
        out += data
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0x0800, 0, 0, 0x21, crc,
                               0xFFFFFFFF, 0xFFFFFFFF, len(encoded), len(extra), 0, 0, 0, 0,
                               0xFFFFFFFF)
        central += encoded + extra
    cd_offset = len(out)
    out += central
    eocd64_offset = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries), len(entries),
                       len(central), cd_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, eocd64_offset, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    dst.write_bytes(bytes(out))
    with zipfile.ZipFile(dst) as z:
        assert z.testzip() is None


def write_archive(path, root, records):
    """A torch-shaped zip written by zipfile (STORED): ``root/<name>`` for each record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in records:
            info = zipfile.ZipInfo(f"{root}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, data)


# ---------------------------------------------------------------------------------------
# Crafted pickles (for the refused fixtures): tensors whose metadata we choose freely.


class FakeStorage:
    def __init__(self, key, storage_class, numel):
        self.key, self.storage_class, self.numel = key, storage_class, numel


class FakeTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
                 collections.OrderedDict()))


class CraftPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.storage_class, obj.key, "cpu", obj.numel)
        return None


def craft_pickle(obj):
    buffer = io.BytesIO()
    CraftPickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


class EvalPayload:
    """Pickling this writes GLOBAL 'builtins eval' + REDUCE. Pickling never runs it."""

    def __reduce__(self):
        import builtins
        return (builtins.eval, (f"__import__('os').system('touch {PWNED}')",))


# ---------------------------------------------------------------------------------------
# Oracle


def load_safely(path):
    return torch.load(path, weights_only=True, map_location="cpu")


def flatten(obj):
    """name -> tensor, the way the Swift reader names a checkpoint's tensors."""
    if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                return flatten(obj[key])
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def write_expected(stem, tensors):
    out = {name: t.detach().contiguous().clone() for name, t in tensors.items()}
    path = OUT / "expected" / f"{stem}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(out, str(path))
    return path


def torch_refusal(path):
    """What ``torch.load(weights_only=True)`` does with a file we expect to refuse."""
    try:
        load_safely(path)
    except Exception as e:  # noqa: BLE001 - we record whatever torch raised
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        return {"torch_rejects": True, "torch_error": f"{type(e).__name__}: {message}"[:300]}
    return {"torch_rejects": False, "torch_error": None}


# ---------------------------------------------------------------------------------------


def plain_dict():
    return {
        "embed.weight": randn(5, 4),
        "norm.weight": randn(4, dtype=torch.float16),
        "proj.weight": randn(3, 4, dtype=torch.bfloat16),
        "positions": torch.arange(6, dtype=torch.int64).reshape(2, 3) * -7 + 3,
        "scale": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }


def dtypes_dict():
    f = randn(6) * 40
    return {
        "f64": randn(2, 3, dtype=torch.float64),
        "i32": torch.tensor([-(2**31), 2**31 - 1, 0, 7], dtype=torch.int32),
        "i16": torch.tensor([-(2**15), 2**15 - 1, -1], dtype=torch.int16),
        "i8": torch.tensor([-128, 127, 0, -1], dtype=torch.int8),
        "u8": torch.tensor([0, 255, 128], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "c64": torch.complex(randn(3), randn(3)),
        "f8_e4m3fn": f.to(torch.float8_e4m3fn),
        "f8_e5m2": f.to(torch.float8_e5m2),
        "f8_e4m3fnuz": (f / 4).to(torch.float8_e4m3fnuz),
        "f8_e5m2fnuz": f.to(torch.float8_e5m2fnuz),
        "f8_e8m0fnu": f.abs().to(torch.float8_e8m0fnu),
        "u16": torch.tensor([0, 1, 65535, 300], dtype=torch.int32).to(torch.uint16),
        "u32": torch.tensor([0, 1, 2**32 - 1], dtype=torch.int64).to(torch.uint32),
        "u64": torch.tensor([0, 1, 2**62], dtype=torch.int64).to(torch.uint64),
    }


def views_dict():
    w = randn(4, 6)
    h = randn(9, dtype=torch.float16)
    b = randn(3)
    return {
        "embed.weight": w,
        "lm_head.weight": w,  # tied: the same tensor under two names
        "transposed": w.t(),  # stride (1, 6)
        "row1": w[1],  # storage offset 6
        "cols": w[:, 1:5:2],  # offset 1, stride (6, 2)
        "block": w[1:3, 2:],  # offset 8, stride (6, 1), not contiguous
        "broadcast": b.expand(2, 3),  # stride (0, 1)
        "half_tail": h[3:],  # f16, offset 3 (6 bytes), contiguous
        "half_every_other": h[::2],  # stride 2
    }


class TinyModule(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
        self.norm = torch.nn.LayerNorm(3)
        self.frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
        self.register_buffer("steps", torch.tensor([5], dtype=torch.int64))


def params_dict():
    torch.manual_seed(7)
    module = TinyModule()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(randn(*p.shape))
    state = module.state_dict(keep_vars=True)
    assert isinstance(state, collections.OrderedDict) and hasattr(state, "_metadata")
    assert isinstance(state["linear.weight"], torch.nn.Parameter)
    tagged = randn(3)
    tagged.note = "python attribute: pickled with _rebuild_from_type_v2"
    state["tagged"] = tagged
    return state


def sharded(folder):
    torch.manual_seed(11)
    module = torch.nn.Sequential(torch.nn.Embedding(8, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 8))
    state = {f"model.{k}": v.detach().clone() for k, v in module.state_dict().items()}
    names = list(state)
    files = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    split = {files[0]: names[:3], files[1]: names[3:]}
    folder.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    for file, keys in split.items():
        torch_save({k: state[k] for k in keys}, folder / file)
        weight_map.update({k: file for k in keys})
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2) + "\n")
    loaded = {}
    for file in files:
        loaded.update(load_safely(folder / file))
    return loaded


def hf_model(folder):
    """A Hugging Face model folder as older transformers saved it: config.json and
    pytorch_model.bin, here the weights of fixtures/engine/llama_mha_rope (whose golden
    logits come from the float64 reference), every k_proj stored as a transposed view of a
    transposed copy (same values, strides (1, rows)) so the reader has to gather it."""
    src = ROOT / "fixtures/engine/llama_mha_rope"
    folder.mkdir()
    shutil.copy(src / "config.json", folder / "config.json")
    state = {}
    with safetensors.safe_open(src / "model.safetensors", framework="pt") as f:
        for name in f.keys():
            t = f.get_tensor(name)
            if name.endswith("k_proj.weight"):
                t = t.t().contiguous().t()
                assert not t.is_contiguous()
            state[name] = t
    torch_save(state, folder / "pytorch_model.bin")
    return load_safely(folder / "pytorch_model.bin")


def storage_keys(tensors):
    """Storage key of each name, as torch.save assigns them (order of first appearance)."""
    keys, seen = {}, {}
    for name, t in tensors.items():
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen[ptr] = (str(len(seen)), t.element_size(), t.is_complex())
        keys[name] = seen[ptr]
    return keys


def big_endian(dst):
    w = randn(3, 5)
    tensors = {
        "f32": w, "f32_t": w.t(), "f16": randn(4, dtype=torch.float16),
        "bf16": randn(4, dtype=torch.bfloat16), "f64": randn(2, dtype=torch.float64),
        "i64": torch.tensor([1, -2, 2**40]), "i32": torch.tensor([1, -2, 2**30], dtype=torch.int32),
        "i16": torch.tensor([1, -2, 300], dtype=torch.int16), "c64": torch.complex(randn(2), randn(2)),
        "u8": torch.tensor([1, 2, 250], dtype=torch.uint8), "bool": torch.tensor([True, False]),
    }
    keys = storage_keys(tensors)
    unit = {key: (size // 2 if complex_ else size) for key, size, complex_ in keys.values()}
    with tempfile.TemporaryDirectory() as tmp:
        little = Path(tmp) / "bigendian.bin"
        torch_save(tensors, little)

        def swap(name, data):
            if name.endswith("/byteorder"):
                assert data == b"little"
                return b"big"
            parts = name.split("/")
            if len(parts) == 3 and parts[1] == "data":
                u = unit[parts[2]]
                return np.frombuffer(data, dtype=f"<u{u}").byteswap().tobytes() if u > 1 else data
            return data

        rezip(little, dst, transform=swap)
    loaded = load_safely(dst)
    for name, t in tensors.items():
        assert torch.equal(loaded[name], t), name
    return loaded


# The refused fixtures. ``kind`` is the PyTorchError kind nopekit must raise.
BAD = []


def bad(file, kind, what, torch_loads_it=False, **extra):
    """Record a refused fixture; check that torch agrees (or, where nopekit is stricter than
    torch, that torch loads it, as ``torch_loads_it`` says)."""
    entry = {"file": file, "kind": kind, "what": what, **extra}
    entry.update(torch_refusal(OUT / file))
    assert entry["torch_rejects"] != torch_loads_it, entry
    BAD.append(entry)


def crafted(file, tensors, storages, extra_records=(), byteorder=b"little", root="archive"):
    records = [("data.pkl", craft_pickle(tensors)), ("byteorder", byteorder), ("version", b"3\n")]
    records += [(f"data/{key}", data) for key, data in storages.items()]
    records += list(extra_records)
    write_archive(OUT / file, root, records)


def make_bad():
    floats = np.arange(16, dtype="<f4").tobytes()
    fs = lambda numel: FakeStorage("0", torch.FloatStorage, numel)  # noqa: E731

    crafted("bad/short_storage.bin", {"w": FakeTensor(fs(16), 0, [4, 4], [4, 1])}, {"0": floats[:32]})
    bad("bad/short_storage.bin", "storageSizeMismatch",
        "storage '0' is declared as 16 floats (64 bytes) but its record holds 32 bytes")

    crafted("bad/oob_tensor.bin", {"w": FakeTensor(fs(16), 4, [4, 4], [4, 1])}, {"0": floats})
    bad("bad/oob_tensor.bin", "tensorOutOfBounds",
        "a 4x4 view at storage offset 4 needs 20 elements of a 16-element storage")

    crafted("bad/oob_stride.bin", {"w": FakeTensor(fs(16), 0, [4, 4], [1, 5])}, {"0": floats})
    bad("bad/oob_stride.bin", "tensorOutOfBounds", "stride (1, 5) reaches element 18 of 16")

    crafted("bad/negative_size.bin", {"w": FakeTensor(fs(16), 0, [-1, 4], [4, 1])}, {"0": floats})
    bad("bad/negative_size.bin", "tensorOutOfBounds", "a negative dimension")

    crafted("bad/negative_stride.bin", {"w": FakeTensor(fs(16), 15, [4], [-1])}, {"0": floats})
    bad("bad/negative_stride.bin", "tensorOutOfBounds", "a negative stride")

    crafted("bad/overflow.bin", {"w": FakeTensor(fs(16), 0, [2**62, 2**62], [1, 1])}, {"0": floats})
    bad("bad/overflow.bin", "validationOverflow", "2^62 x 2^62 elements (LONG1 integers)")

    crafted("bad/broadcast_bomb.bin", {"w": FakeTensor(fs(16), 0, [2**20, 2**20], [0, 0])}, {"0": floats})
    bad("bad/broadcast_bomb.bin", "tensorOutOfBounds",
        "a stride-0 view of one float claiming 2^40 elements (4 TiB if materialised)", torch_loads_it=True)

    crafted("bad/missing_storage.bin", {"w": FakeTensor(FakeStorage("7", torch.FloatStorage, 4), 0, [4], [1])},
            {"0": floats})
    bad("bad/missing_storage.bin", "missingStorage", "storage key '7' has no data/7 record")

    crafted("bad/complex128.bin", {"w": FakeTensor(FakeStorage("0", torch.ComplexDoubleStorage, 1), 0, [1], [1])},
            {"0": floats[:16]})
    bad("bad/complex128.bin", "unsupportedDType", "ComplexDoubleStorage (complex128) has no nopekit dtype",
        torch_loads_it=True)

    crafted("bad/int_key.bin", {1: FakeTensor(fs(16), 0, [16], [1])}, {"0": floats})
    bad("bad/int_key.bin", "invalidStructure", "a tensor keyed by an integer, not a name", torch_loads_it=True)

    crafted("bad/not_a_dict.bin", [FakeTensor(fs(16), 0, [16], [1])], {"0": floats})
    bad("bad/not_a_dict.bin", "invalidStructure", "the pickled object is a list, not a dict", torch_loads_it=True)

    crafted("bad/bad_byteorder.bin", {"w": FakeTensor(fs(16), 0, [16], [1])}, {"0": floats}, byteorder=b"middle")
    bad("bad/bad_byteorder.bin", "unsupportedByteOrder", "byteorder record is 'middle'")

    write_archive(OUT / "bad/no_data_pkl.bin", "archive", [("byteorder", b"little"), ("data/0", floats)])
    bad("bad/no_data_pkl.bin", "notATorchCheckpoint", "a zip with no <root>/data.pkl")

    good_pickle = craft_pickle({"w": FakeTensor(fs(16), 0, [16], [1])})
    with zipfile.ZipFile(OUT / "bad/two_roots.bin", "w") as z:
        for root in ("a", "b"):
            z.writestr(zipfile.ZipInfo(f"{root}/data.pkl", (1980, 1, 1, 0, 0, 0)), good_pickle)
            z.writestr(zipfile.ZipInfo(f"{root}/data/0", (1980, 1, 1, 0, 0, 0)), floats)
    bad("bad/two_roots.bin", "notATorchCheckpoint", "two */data.pkl records: ambiguous root")

    rezip(OUT / "plain.bin", OUT / "bad/bzip2.bin", compression=zipfile.ZIP_BZIP2)
    bad("bad/bzip2.bin", "unsupportedZipEntry", "entries compressed with bzip2 (method 12)")

    data = bytearray((OUT / "plain.bin").read_bytes())
    with zipfile.ZipFile(OUT / "plain.bin") as z:
        start_dir = z.start_dir
        infos = z.infolist()
    for info in infos:  # set the 'encrypted' flag (bit 0) in local and central headers
        struct.pack_into("<H", data, info.header_offset + 6,
                         struct.unpack_from("<H", data, info.header_offset + 6)[0] | 1)
    pos = start_dir
    while data[pos:pos + 4] == b"PK\x01\x02":
        struct.pack_into("<H", data, pos + 8, struct.unpack_from("<H", data, pos + 8)[0] | 1)
        n, e, c = struct.unpack_from("<HHH", data, pos + 28)
        pos += 46 + n + e + c
    (OUT / "bad/encrypted.bin").write_bytes(bytes(data))
    bad("bad/encrypted.bin", "unsupportedZipEntry", "every entry flagged as encrypted")

    # A deflated data.pkl whose stream is cut short (the central directory sizes stay valid).
    with zipfile.ZipFile(OUT / "deflated.bin") as z:
        infos = {i.filename: i for i in z.infolist()}
    data = bytearray((OUT / "deflated.bin").read_bytes())
    info = infos["plain/data.pkl"]
    start = local_data_offset(data, info.header_offset)
    data[start + info.compress_size // 2:start + info.compress_size] = b"\0" * (info.compress_size - info.compress_size // 2)
    (OUT / "bad/corrupt_deflate.bin").write_bytes(bytes(data))
    bad("bad/corrupt_deflate.bin", "corruptEntry", "data.pkl's deflate stream is zeroed in its second half")


def malicious():
    # GLOBAL 'os system' then REDUCE, written by hand (pickle would name it posix.system).
    command = f"touch {PWNED}".encode()
    payload = (b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01cos\nsystem\nq\x02X"
               + struct.pack("<I", len(command)) + command + b"\x85q\x03Rq\x04s.")
    pickletools.dis(payload, out=io.StringIO())  # well formed
    write_archive(OUT / "malicious_global.bin", "malicious_global",
                  [("data.pkl", payload), ("byteorder", b"little"), ("version", b"3\n")])
    bad("malicious_global.bin", "forbiddenGlobal", "GLOBAL os.system with REDUCE", module="os", name="system")

    torch_save({"ok": randn(2), "evil": EvalPayload()}, OUT / "malicious_reduce.bin")
    # Protocol 2 writes Python 3's builtins under its Python 2 name: GLOBAL '__builtin__ eval'.
    with zipfile.ZipFile(OUT / "malicious_reduce.bin") as z:
        globals_ = [arg for op, arg, _ in pickletools.genops(z.read("malicious_reduce/data.pkl")) if op.name == "GLOBAL"]
    assert "__builtin__ eval" in globals_, globals_
    bad("malicious_reduce.bin", "forbiddenGlobal", "a __reduce__ payload calling builtins.eval after a good tensor",
        module="__builtin__", name="eval")

    # INST: MARK, the argument, then 'i' module\nname\n: a call without GLOBAL.
    prefix = b"\x80\x02(X" + struct.pack("<I", len(command)) + command
    payload = prefix + b"ios\nsystem\n."
    pickletools.dis(payload, out=io.StringIO())
    write_archive(OUT / "malicious_opcode.bin", "malicious_opcode",
                  [("data.pkl", payload), ("byteorder", b"little"), ("version", b"3\n")])
    bad("malicious_opcode.bin", "forbiddenOpcode", "INST (0x69) calls os.system without GLOBAL",
        opcode=0x69, offset=len(prefix))

    torch_save({"ok": randn(2), "evil": EvalPayload()}, OUT / "bad/legacy_malicious.bin",
               _use_new_zipfile_serialization=False)
    fix_legacy_keys(OUT / "bad/legacy_malicious.bin", None)
    bad("bad/legacy_malicious.bin", "forbiddenGlobal", "the eval payload in a legacy (non-zip) file",
        module="__builtin__", name="eval")


def make_legacy():
    """legacy.bin (good) and the legacy refusals; returns what torch.load made of legacy.bin."""
    legacy = plain_dict()
    torch_save(legacy, OUT / "legacy.bin", _use_new_zipfile_serialization=False)
    fix_legacy_keys(OUT / "legacy.bin", legacy)
    data = (OUT / "legacy.bin").read_bytes()

    (OUT / "bad/legacy_truncated.bin").write_bytes(data[:-10])
    bad("bad/legacy_truncated.bin", "invalidStructure", "legacy.bin without its last 10 bytes")

    # sys_info's little_endian: True -> False (NEWTRUE -> NEWFALSE right after its key).
    key = b"X" + struct.pack("<I", len("little_endian")) + b"little_endian"
    at = data.index(key) + len(key)
    at += 2 if data[at] == ord("q") else 0  # BINPUT after the key
    assert data[at] == 0x88
    (OUT / "bad/legacy_bigendian.bin").write_bytes(data[:at] + b"\x89" + data[at + 1:])
    bad("bad/legacy_bigendian.bin", "legacyFormat", "sys_info says the storages are big-endian",
        torch_loads_it=True)

    at = data.index(b"\x80\x02M\xe9\x03.")  # the protocol version pickle: BININT2 1001
    (OUT / "bad/legacy_version.bin").write_bytes(data[:at + 3] + b"\xea" + data[at + 4:])
    bad("bad/legacy_version.bin", "legacyFormat", "protocol version 1002")
    return load_safely(OUT / "legacy.bin")


def main():
    assert torch.__version__.startswith("2."), torch.__version__
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    if os.path.exists(PWNED):
        os.remove(PWNED)

    good = {}

    def keep(stem, loaded):
        tensors = flatten(loaded)
        write_expected(stem, tensors)
        good[f"{stem}.bin" if stem != "sharded" else "sharded"] = {
            "expected": f"expected/{stem}.safetensors",
            "tensors": list(tensors),
        }

    for stem, make in (("plain", plain_dict), ("dtypes", dtypes_dict), ("views", views_dict),
                       ("params", params_dict)):
        torch_save(make(), OUT / f"{stem}.bin")
        keep(stem, load_safely(OUT / f"{stem}.bin"))

    torch.manual_seed(3)
    torch_save({"state_dict": {"a.weight": randn(2, 2), "a.bias": randn(2)}, "epoch": 3, "step": 10},
               OUT / "nested.bin")
    keep("nested", load_safely(OUT / "nested.bin"))

    rezip(OUT / "plain.bin", OUT / "deflated.bin", compression=zipfile.ZIP_DEFLATED)
    keep("deflated", load_safely(OUT / "deflated.bin"))

    write_zip64(OUT / "plain.bin", OUT / "zip64.bin")
    keep("zip64", load_safely(OUT / "zip64.bin"))

    keep("bigendian", big_endian(OUT / "bigendian.bin"))

    with tempfile.TemporaryDirectory() as tmp:
        torch_save(plain_dict(), Path(tmp) / "archive.bin")
        shutil.copy(Path(tmp) / "archive.bin", OUT / "oldroot.bin")
    keep("oldroot", load_safely(OUT / "oldroot.bin"))

    torch.serialization.set_crc32_options(False)
    try:
        torch_save({"a": randn(3), "b": randn(2, dtype=torch.bfloat16)}, OUT / "nocrc.bin")
    finally:
        torch.serialization.set_crc32_options(True)
    keep("nocrc", load_safely(OUT / "nocrc.bin"))

    keep("sharded", sharded(OUT / "sharded"))
    # Its oracle is fixtures/engine/llama_mha_rope itself (the same tensors, and golden logits).
    hf_tensors = flatten(hf_model(OUT / "hf_model"))
    with safetensors.safe_open(ROOT / "fixtures/engine/llama_mha_rope/model.safetensors", framework="pt") as f:
        assert sorted(hf_tensors) == sorted(f.keys()) and all(torch.equal(hf_tensors[k], f.get_tensor(k)) for k in f.keys())

    (OUT / "bad").mkdir()
    keep("legacy", make_legacy())

    make_bad()
    malicious()
    assert not os.path.exists(PWNED), "a payload ran"

    manifest = {
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "good": good,
        "refused": BAD,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            digest.update(p.relative_to(OUT).as_posix().encode() + p.read_bytes())
    print(f"wrote {sum(1 for p in OUT.rglob('*') if p.is_file())} files, {total} bytes, sha256 {digest.hexdigest()}")


if __name__ == "__main__":
    sys.exit(main())
