"""Checksums FTS understands (ADLER32, MD5): parsing, streaming computation, comparison."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable


class StreamingChecksums:
    """Running ADLER32/MD5 over the bytes that pass through a copy."""

    def __init__(self, algorithms: Iterable[str]):
        algs = {a.upper() for a in algorithms}
        self._adler: int | None = 1 if "ADLER32" in algs else None
        self._md5 = hashlib.md5() if "MD5" in algs else None  # noqa: S324 - FTS checksum, not security

    def update(self, chunk: bytes) -> None:
        """Feed the next chunk."""
        if self._adler is not None:
            self._adler = zlib.adler32(chunk, self._adler)
        if self._md5 is not None:
            self._md5.update(chunk)

    def values(self) -> dict[str, str]:
        """Hex digests so far, keyed by algorithm."""
        out: dict[str, str] = {}
        if self._adler is not None:
            out["ADLER32"] = f"{self._adler & 0xFFFFFFFF:08x}"
        if self._md5 is not None:
            out["MD5"] = self._md5.hexdigest()
        return out


def split(checksum: str | None) -> tuple[str | None, str | None]:
    """'ADLER32:hex' → ('ADLER32', 'hex'); 'MD5' → ('MD5', None); None → (None, None)."""
    if not checksum:
        return None, None
    alg, _, value = checksum.partition(":")
    return alg.upper(), (value.lower() or None)


def same(alg: str, a: str | None, b: str | None) -> bool:
    """Whether two hex checksums of `alg` are equal (ADLER32 ignores leading zeros)."""
    if a is None or b is None:
        return False
    if alg.upper() == "ADLER32":
        try:
            return int(a, 16) == int(b, 16)
        except ValueError:
            return False
    return a.strip().lower() == b.strip().lower()
