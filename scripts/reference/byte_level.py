"""GPT-2's byte -> printable character table (HF tokenizers' ByteLevel), shared by the reference
scripts that need it. Standard library only, so any of their venvs can import it."""
from __future__ import annotations


def byte_to_unicode() -> dict[int, str]:
    """Byte b -> the character ByteLevel writes for it."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}
