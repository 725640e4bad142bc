"""Shared harness of the interop checks: PASS/FAIL bookkeeping, running the nopekit binary, and
small file helpers. Each check script prints one line per check and ends with
`interop: N passed, M failed`."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
from hf_layout import parse_size  # noqa: E402,F401  (re-exported to the checks)


class CheckFail(Exception):
    pass


def tree(root: Path):
    """Set of all paths (relative, with a trailing / for dirs) under root."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for d in dirnames:
            out.add(str(rel / d) + "/")
        for f in filenames:
            out.add(str(rel / f))
    return out


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checksum_lines(base: Path, names) -> str:
    """What ``sha256sum NAME...`` prints for ``names`` (relative to ``base``) sorted by path
    bytes: the checksum record nopekit writes with every output (``SHA256SUMS`` in a folder,
    ``NAME.sha256`` beside a file). Plain names only (no escaping of backslash or newline)."""
    return "".join(f"{sha256_file(base / n)}  {n}\n" for n in sorted(names, key=lambda n: n.encode()))


def check_record(record: Path, names) -> str:
    """The record at ``record`` lists exactly ``names`` (relative to its folder), each with its
    hashlib sha256, as sha256sum would print them."""
    if not record.is_file():
        raise CheckFail(f"{record.name} was not written beside the output")
    want = checksum_lines(record.parent, names)
    got = record.read_text()
    if got != want:
        raise CheckFail(f"{record.name} is {got!r}, sha256sum would print {want!r}")
    return f"{len(names)} files, each hashlib's sha256"


def folder_record_names(folder: Path):
    """Every file under ``folder`` (relative, recursive) but its own SHA256SUMS."""
    return [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.relative_to(folder) != Path("SHA256SUMS")]


class Runner:
    def __init__(self, nopekit: Path, workdir: Path, timeout: float):
        self.nopekit, self.workdir, self.timeout = nopekit, workdir, timeout
        self.passed = self.failed = 0

    def check(self, name, fn, *args):
        try:
            detail = fn(*args)
        except CheckFail as e:
            self.failed += 1
            print(f"FAIL {name}: {e}", flush=True)
            return False
        except Exception as e:  # a bug in the output or in this script
            self.failed += 1
            tb = traceback.format_exc(limit=3).strip().splitlines()[-1]
            print(f"FAIL {name}: {type(e).__name__}: {e} [{tb}]", flush=True)
            return False
        self.passed += 1
        print(f"PASS {name}" + (f" ({detail})" if detail else ""), flush=True)
        return True

    def check_binary(self):
        """The first check of every script: the nopekit under test exists and runs."""
        def binary_ok():
            if not (self.nopekit.is_file() and os.access(self.nopekit, os.X_OK)):
                raise CheckFail(f"{self.nopekit} not found or not executable")
        return self.check("nopekit binary exists and is executable", binary_ok)

    def note(self, text):
        print(f"NOTE {text}", flush=True)

    def run(self, *args):
        cmd = [str(self.nopekit), *map(str, args)]
        try:
            p = subprocess.run(cmd, cwd=self.workdir, capture_output=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {self.timeout}s: {' '.join(cmd)}"
        return p, " ".join(cmd)


def expect_success(proc, cmdline):
    if proc is None:
        raise CheckFail(cmdline)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        raise CheckFail(f"`{cmdline}` exited {proc.returncode}: {err}")
    return None
