"""File identity (name, size, adler32 as Rucio computes it) recorded as provenance."""

from __future__ import annotations

import zlib
from pathlib import Path


def adler32_file(path: str | Path, blocksize: int = 1 << 22) -> str:
    """Adler-32 of a file's content as 8 lowercase hex digits (Rucio's checksum format)."""
    value = 1
    with open(path, "rb") as f:
        while block := f.read(blocksize):
            value = zlib.adler32(block, value)
    return f"{value & 0xFFFFFFFF:08x}"


def file_identity(path: str | Path) -> dict[str, str | int]:
    """Name, size and adler32 of a file (no path, no timestamp: reproducible)."""
    path = Path(path)
    return {"name": path.name, "size": path.stat().st_size, "adler32": adler32_file(path)}
