"""Generate ``Sources/Checkpoints/GGUF/Quants/IQTables.generated.swift``.

Run from the repository root::

    .venv/bin/python scripts/reference/gen_iq_tables.py [--out PATH] [--check]

The lookup tables of ggml's i-quants (and the small FP4 value table) are read
from the installed PyPI ``gguf`` package (0.19.0, MIT): ``gguf.quants`` keeps
each grid as hex-packed 2- or 3-bit codes (``grid_hex``) plus the list of byte
values the codes stand for (``grid_map``), see ``_Quant.init_grid``.  This
script unpacks them into the byte values of ggml's own tables
(``ggml-common.h``: ``iq2xxs_grid`` as 256 x uint64 is, byte for byte, the
256 x 8 ``[UInt8]`` written here; a uint64 entry's least significant byte is
element 0).

Checks before writing: the decoded tables reproduce ``init_grid``'s float
grids exactly, and a few entries are compared with values copied from
ggml-common.h.  ``--check`` only verifies that the file on disk is up to date
(exit 1 if not).

Every array gets an explicit element type and 32 literals per line, so the
Swift type checker does not have to infer anything.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from math import ceil, log2
from pathlib import Path

import numpy as np
from gguf import quants

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Sources" / "Checkpoints" / "GGUF" / "Quants" / "IQTables.generated.swift"


def decode_grid(cls) -> np.ndarray:
    """grid_hex/grid_map -> int array of shape grid_shape (the table's byte values)."""
    bits = ceil(log2(len(cls.grid_map)))
    per_byte = 8 // bits
    raw = np.frombuffer(cls.grid_hex, dtype=np.uint8).reshape(-1, 2)
    nib = np.where(raw > 0x40, raw + 9, raw) & 0x0F  # ASCII hex digit -> value
    byte = (nib[:, 0].astype(np.uint16) << 4) | nib[:, 1]
    codes = (byte.reshape(-1, 1) >> np.arange(0, 8, 8 // per_byte, dtype=np.uint16).reshape(1, per_byte)) & ((1 << bits) - 1)
    values = np.array(cls.grid_map, dtype=np.int64)[codes.reshape(-1)]
    return values.reshape(cls.grid_shape)


def check_against_init_grid(cls, table: np.ndarray):
    cls.init_grid()
    ref = np.asarray(cls.grid, dtype=np.float32).reshape(cls.grid_shape)
    assert np.array_equal(ref, table.astype(np.float32)), cls.__name__


def u64(row) -> int:
    return int.from_bytes(bytes(int(x) & 0xFF for x in row), "little")


def u32(row) -> int:
    return int.from_bytes(bytes(int(x) & 0xFF for x in row), "little")


# entries copied from ggml-common.h (GGML_TABLE_BEGIN ... ) to pin the byte order
KNOWN = {
    "iq2xxs": {0: 0x0808080808080808, 1: 0x080808080808082B, 2: 0x0808080808081919, 4: 0x0808080808082B2B, 255: 0x2B2B2B1908081908},
    "iq2xs": {0: 0x0808080808080808, 1: 0x080808080808082B, 2: 0x0808080808081919},
    "iq3xxs": {0: 0x04040404, 1: 0x04040414, 5: 0x04040C3E, 255: 0x3E341C04},
    "iq3s": {0: 0x01010101, 1: 0x01010103, 3: 0x0101010B, 24: 0x01010F0F},
    "iq1s": {0: 0xFFFFFFFFFFFFFFFF, 1: 0xFFFFFFFFFFFFFF01},
}
KSIGNS_HEAD = [0, 129, 130, 3, 132, 5, 6, 135, 136, 9, 10, 139, 12, 141, 142, 15]
KVALUES_IQ4NL = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]
KVALUES_MXFP4 = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12]


def build_tables():
    t = {}
    g = decode_grid(quants.IQ2_XXS)
    check_against_init_grid(quants.IQ2_XXS, g)
    t["iq2xxs"] = g
    g = decode_grid(quants.IQ2_XS)
    check_against_init_grid(quants.IQ2_XS, g)
    t["iq2xs"] = g
    g = decode_grid(quants.IQ2_S)
    check_against_init_grid(quants.IQ2_S, g)
    t["iq2s"] = g
    g = decode_grid(quants.IQ3_XXS)
    check_against_init_grid(quants.IQ3_XXS, g)
    t["iq3xxs"] = g
    g = decode_grid(quants.IQ3_S)
    check_against_init_grid(quants.IQ3_S, g)
    t["iq3s"] = g
    g = decode_grid(quants.IQ1_S)
    check_against_init_grid(quants.IQ1_S, g)
    t["iq1s"] = g
    assert quants.IQ1_M.grid_hex == quants.IQ1_S.grid_hex and quants.IQ1_M.grid_map == quants.IQ1_S.grid_map

    for name, known in KNOWN.items():
        tab = t[name]
        for i, want in known.items():
            got = u64(tab[i]) if tab.shape[1] == 8 else u32(tab[i])
            assert got == want, f"{name}[{i}] = {got:#x}, ggml-common.h has {want:#x}"

    ksigns = np.frombuffer(quants.IQ2_XXS.ksigns, dtype=np.uint8)
    assert ksigns.size == 128 and list(ksigns[:16]) == KSIGNS_HEAD
    # ksigns_iq2xs[i] = i | (parity(i) << 7): bit 7 makes the number of negative signs even
    assert all(int(k) == (i | ((bin(i).count("1") & 1) << 7)) for i, k in enumerate(ksigns))
    t["ksigns"] = ksigns
    assert list(quants.IQ4_NL.kvalues) == KVALUES_IQ4NL
    assert list(quants.MXFP4.kvalues) == KVALUES_MXFP4 and list(quants.NVFP4.kvalues) == KVALUES_MXFP4
    assert float(quants.IQ1_S.delta) == 0.125 and float(quants.IQ1_M.delta) == 0.125
    return t


def fmt_array(values, signed: bool, per_line=32, indent="        "):
    vals = [int(v) for v in np.asarray(values).reshape(-1)]
    if signed:
        width = max(len(str(v)) for v in vals)
        items = [str(v).rjust(width) for v in vals]
    else:
        items = ["0x%02x" % v for v in vals]
    lines = [indent + ", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)]
    return "\n".join(lines)


def doc(lines):
    return "\n".join("    /// " + l if l else "    ///" for l in lines)


def render(t) -> str:
    version = importlib.metadata.version("gguf")
    out = []
    out.append(f"// Generated by scripts/reference/gen_iq_tables.py from PyPI gguf {version} (MIT); do not edit.")
    out.append("//")
    out.append("// Lookup tables of ggml's i-quants (ggml-common.h), decoded from gguf.quants'")
    out.append("// grid_hex/grid_map.  Each grid is flat, row-major: entry i of a table with")
    out.append("// N values per entry is table[i*N ..< i*N + N], and value j of an entry is")
    out.append("// byte j of ggml's uint64/uint32 entry (little-endian).")
    out.append("//")
    out.append("// Dequantisation notes (what gguf.quants' dequantize_blocks, which matches")
    out.append("// ggml's dequantize_row_<type>, does).  All arithmetic is Float32 and")
    out.append("// left-to-right as written, with no fused multiply-add; d is the block's")
    out.append("// fp16 scale at byte 0 (IQ1_M: see iq1sGrid); y[k] is element k of the block.")
    out.append("// sign(s, j) is -1 if bit j of the byte s is set, else +1.")
    out.append("")
    out.append("enum IQTables {")

    def table(name, swift_type, values, docs, signed=False):
        out.append(doc(docs))
        out.append(f"    static let {name}: [{swift_type}] = [")
        out.append(fmt_array(values, signed))
        out.append("    ]")
        out.append("")

    table(
        "iq2xxsGrid",
        "UInt8",
        t["iq2xxs"],
        [
            "ggml `iq2xxs_grid` (uint64[256]): 256 entries x 8 values in {0x08, 0x19, 0x2b}; entry i = iq2xxsGrid[8*i ..< 8*i + 8].",
            "",
            "IQ2_XXS block (66 B, 256 values): d fp16 @0, then 8 groups of two LE UInt32 (a, b) @2 + 8*ib.",
            "Group ib (values 32*ib ..< 32*ib + 32): db = d * (0.5 + Float(b >> 28)) * 0.25; for l in 0..<4:",
            "grid = entry (a >> 8*l) & 0xff, signs = ksigns[(b >> 7*l) & 127],",
            "y[32*ib + 8*l + j] = db * Float(grid[j]) * sign(signs, j).",
        ],
    )
    table(
        "iq2xsGrid",
        "UInt8",
        t["iq2xs"],
        [
            "ggml `iq2xs_grid` (uint64[512]): 512 entries x 8 values in {0x08, 0x19, 0x2b}; entry i = iq2xsGrid[8*i ..< 8*i + 8].",
            "",
            "IQ2_XS block (74 B): d fp16 @0; qs: 32 LE UInt16 @2; scales: 8 bytes @66.",
            "Group ib (32 values): db0 = d * (0.5 + Float(scales[ib] & 15)) * 0.25, db1 = same with scales[ib] >> 4;",
            "for l in 0..<4: q = qs[4*ib + l], grid = entry q & 511, signs = ksigns[q >> 9],",
            "y[32*ib + 8*l + j] = (l < 2 ? db0 : db1) * Float(grid[j]) * sign(signs, j).",
        ],
    )
    table(
        "iq2sGrid",
        "UInt8",
        t["iq2s"],
        [
            "ggml `iq2s_grid` (uint64[1024]): 1024 entries x 8 values in {0x08, 0x19, 0x2b}; entry i = iq2sGrid[8*i ..< 8*i + 8].",
            "",
            "IQ2_S block (82 B): d fp16 @0; qs[32] @2 (low 8 index bits); signs[32] @34; qh[8] @66; scales[8] @74.",
            "Group ib: db0/db1 as IQ2_XS; for l in 0..<4: grid = entry qs[4*ib + l] | ((qh[ib] >> 2*l) & 3) << 8,",
            "y[32*ib + 8*l + j] = (l < 2 ? db0 : db1) * Float(grid[j]) * sign(signs[4*ib + l], j)  (sign bytes used directly, no ksigns).",
        ],
    )
    table(
        "iq3xxsGrid",
        "UInt8",
        t["iq3xxs"],
        [
            "ggml `iq3xxs_grid` (uint32[256]): 256 entries x 4 values in {0x04, 0x0c, ..., 0x34, 0x3e}; entry i = iq3xxsGrid[4*i ..< 4*i + 4].",
            "",
            "IQ3_XXS block (98 B): d fp16 @0; qs[64] @2 (grid indices); 8 LE UInt32 scales_and_signs @66.",
            "Group ib: aux = word ib; db = d * (0.5 + Float(aux >> 28)) * 0.5; for l in 0..<4: signs = ksigns[(aux >> 7*l) & 127],",
            "g1 = entry qs[8*ib + 2*l], g2 = entry qs[8*ib + 2*l + 1]; for j in 0..<4:",
            "y[32*ib + 8*l + j] = db * Float(g1[j]) * sign(signs, j), y[32*ib + 8*l + 4 + j] = db * Float(g2[j]) * sign(signs, j + 4).",
        ],
    )
    table(
        "iq3sGrid",
        "UInt8",
        t["iq3s"],
        [
            "ggml `iq3s_grid` (uint32[512]): 512 entries x 4 odd values 0x01...0x0f; entry i = iq3sGrid[4*i ..< 4*i + 4].",
            "",
            "IQ3_S block (110 B): d fp16 @0; qs[64] @2; qh[8] @66; signs[32] @74; scales[4] @106.",
            "Group ib (32 values): db = d * Float(1 + 2 * ((scales[ib / 2] >> (4 * (ib % 2))) & 15)); for k in 0..<8:",
            "grid = entry qs[8*ib + k] | ((qh[ib] >> k) & 1) << 8; for j in 0..<4:",
            "y[32*ib + 4*k + j] = db * Float(grid[j]) * sign(signs[4*ib + k/2], 4*(k % 2) + j)  (sign bytes used directly).",
        ],
    )
    table(
        "iq1sGrid",
        "Int8",
        t["iq1s"],
        [
            "ggml `iq1s_grid` (uint64[2048], read as int8): 2048 entries x 8 values in {-1, 0, 1}; entry i = iq1sGrid[8*i ..< 8*i + 8].",
            "Shared by IQ1_S and IQ1_M.  Delta is iq1Delta (ggml IQ1S_DELTA = IQ1M_DELTA = 0.125).",
            "",
            "IQ1_S block (50 B): d fp16 @0; qs[32] @2; qh: 8 LE UInt16 @34.  Group ib (32 values):",
            "dl = d * Float(2 * ((qh[ib] >> 12) & 7) + 1); delta = qh[ib] & 0x8000 != 0 ? -0.125 : 0.125;",
            "for l in 0..<4: grid = entry qs[4*ib + l] | ((qh[ib] >> 3*l) & 7) << 8, y[32*ib + 8*l + j] = dl * (Float(grid[j]) + delta).",
            "",
            "IQ1_M block (56 B, no separate d): qs[32] @0; qh[16] @32; sc: 4 LE UInt16 @48.",
            "d = Float16(bitPattern: (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000)).",
            "Group ib: w = sc[ib / 2], s = 6 * (ib % 2); dl1 = d * Float(2 * ((w >> s) & 7) + 1), dl2 = d * Float(2 * ((w >> (s + 3)) & 7) + 1);",
            "for l in 0..<4: h = qh[2*ib + l/2] >> (4 * (l % 2)); grid = entry qs[4*ib + l] | (h & 7) << 8;",
            "delta = h & 8 != 0 ? -0.125 : 0.125; y[32*ib + 8*l + j] = (l < 2 ? dl1 : dl2) * (Float(grid[j]) + delta).",
        ],
        signed=True,
    )
    table(
        "ksigns",
        "UInt8",
        t["ksigns"],
        [
            "ggml `ksigns_iq2xs` (uint8[128]): ksigns[i] = i | (parity(i) << 7), i.e. 7 stored sign bits plus",
            "an 8th that makes the count of negative signs even.  Bit j set means value j of the 8 is negated.",
            "Used by IQ2_XXS, IQ2_XS and IQ3_XXS (IQ2_S and IQ3_S store whole sign bytes).",
        ],
    )
    table(
        "kmask",
        "UInt8",
        [1, 2, 4, 8, 16, 32, 64, 128],
        ["ggml `kmask_iq2xs` (uint8[8]): kmask[j] = 1 << j, the sign-bit mask of value j."],
    )
    table(
        "kvaluesIQ4NL",
        "Int8",
        KVALUES_IQ4NL,
        [
            "ggml `kvalues_iq4nl` (int8[16]): the non-linear 4-bit codebook of IQ4_NL and IQ4_XS.",
            "",
            "IQ4_NL block (18 B, 32 values): d fp16 @0; qs[16] @2: y[j] = d * Float(kvaluesIQ4NL[qs[j] & 15]),",
            "y[j + 16] = d * Float(kvaluesIQ4NL[qs[j] >> 4]) (low nibbles first half, high nibbles second half).",
            "IQ4_XS block (136 B, 256 values): d fp16 @0; scales_h LE UInt16 @2; scales_l[4] @4; qs[128] @8.",
            "Group ib: ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 15) | ((scales_h >> (2 * ib)) & 3) << 4;",
            "dl = d * Float(Int(ls) - 32); for j in 0..<16: y[32*ib + j] = dl * Float(kvaluesIQ4NL[qs[16*ib + j] & 15]),",
            "y[32*ib + 16 + j] = dl * Float(kvaluesIQ4NL[qs[16*ib + j] >> 4]).",
        ],
        signed=True,
    )
    table(
        "kvaluesMXFP4",
        "Int8",
        KVALUES_MXFP4,
        [
            "ggml `kvalues_mxfp4` (int8[16]): E2M1 values times 2 (so the scale is halved); also used by NVFP4.",
            "",
            "MXFP4 block (17 B, 32 values): e (E8M0) @0; qs[16] @1.  d = Float(bitPattern: e < 2 ? 0x00200000 << e : UInt32(e - 1) << 23)",
            "(= 2^(e-128), exact for every e; e = 255 gives 2^127, not NaN); y[j] = d * Float(kv[qs[j] & 15]), y[j + 16] = d * Float(kv[qs[j] >> 4]).",
            "NVFP4 block (36 B, 64 values): 4 UE4M3 scales @0, qs[32] @4; sub-block s (16 values) uses scale byte x = b[s] and qs[8*s ..< 8*s + 8]:",
            "d = (x == 0 || x == 0x7f) ? 0 : 0.5 * (exp == 0 ? Float(man) * 2^-9 : (1 + Float(man) / 8) * 2^(exp - 7)) with exp = (x >> 3) & 15, man = x & 7;",
            "y[16*s + j] = d * Float(kv[qs[8*s + j] & 15]), y[16*s + 8 + j] = d * Float(kv[qs[8*s + j] >> 4]) for j in 0..<8.",
        ],
        signed=True,
    )
    out.append("    /// ggml `IQ1S_DELTA` / `IQ1M_DELTA`: the offset added to every IQ1_S / IQ1_M grid value (sign from the qh bits).")
    out.append("    static let iq1Delta: Float = 0.125")
    out.append("}")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="only check that --out is up to date")
    args = ap.parse_args()
    text = render(build_tables())
    if args.check:
        ok = args.out.is_file() and args.out.read_text() == text
        print(f"{args.out}: {'up to date' if ok else 'OUT OF DATE'}")
        return 0 if ok else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
