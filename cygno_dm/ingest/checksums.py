"""One read pass per file: adler32, md5 and crc32c together, and a check that the gzip stream is complete."""

from __future__ import annotations

import hashlib
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import google_crc32c

log = logging.getLogger(__name__)

CHUNK = 8 << 20


class GzipError(ValueError):
    """The file is not a complete, valid gzip stream; `truncated` says whether it just ends early."""

    def __init__(self, message: str, truncated: bool) -> None:
        super().__init__(message)
        self.truncated = truncated


@dataclass(frozen=True)
class Checksums:
    """Size and checksums of one file, in Rucio's spelling (adler32: 8 hex digits, md5: 32 hex digits)."""

    size: int
    adler32: str
    md5: str
    crc32c: str

    def as_dict(self) -> dict[str, str | int]:
        """The values as a plain mapping (journal columns)."""
        return {"size": self.size, "adler32": self.adler32, "md5": self.md5, "crc32c": self.crc32c}


class Digest:
    """Running adler32, md5 and crc32c over a byte stream."""

    def __init__(self) -> None:
        self.size = 0
        self._adler = 1
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._crc = 0

    def update(self, data: bytes | memoryview) -> None:
        """Feed the next bytes."""
        self.size += len(data)
        self._adler = zlib.adler32(data, self._adler)
        self._md5.update(data)
        self._crc = google_crc32c.extend(self._crc, bytes(data) if isinstance(data, memoryview) else data)

    def result(self) -> Checksums:
        """The checksums of everything fed so far."""
        return Checksums(self.size, f"{self._adler & 0xFFFFFFFF:08x}", self._md5.hexdigest(), f"{self._crc:08x}")


class GzipCheck:
    """Incremental validation of a (possibly multi-member) gzip stream, without keeping the output."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._members = 0
        self._fed = 0  # bytes fed to the member being decoded
        self._padding = False
        self.uncompressed = 0

    def update(self, data: bytes) -> None:
        """Feed compressed bytes; raise GzipError on corrupt data."""
        if self._padding:
            if data.strip(b"\0"):
                raise GzipError("data after the zero padding that follows the last gzip member", False)
            return
        while data:
            self._fed += len(data)
            try:
                out = self._d.decompress(data, CHUNK)
                self.uncompressed += len(out)
                while self._d.unconsumed_tail:
                    out = self._d.decompress(self._d.unconsumed_tail, CHUNK)
                    self.uncompressed += len(out)
            except zlib.error as err:
                raise GzipError(f"corrupt gzip data after {self.uncompressed} uncompressed bytes: {err}", False) from None
            if not self._d.eof:
                return
            self._members += 1
            data = self._d.unused_data
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._fed = 0
            if data and not data.strip(b"\0"):
                self._padding = True  # trailing zeros after the last member are tolerated, like gzip(1)
                return

    def finish(self) -> None:
        """Raise GzipError unless the stream ended exactly at the end of a complete member."""
        if self._members == 0 and self._fed == 0:
            raise GzipError("empty file: no gzip stream", True)
        if self._fed:
            raise GzipError(f"gzip stream ends early (truncated after {self.uncompressed} uncompressed bytes)", True)


def scan(path: Path, gzip: bool = True, chunk: int = CHUNK) -> Checksums:
    """Read `path` once: size, adler32, md5, crc32c; with gzip=True raise GzipError unless it is a complete gzip."""
    digest = Digest()
    check = GzipCheck() if gzip else None
    with open(path, "rb", buffering=0) as f:
        while block := f.read(chunk):
            digest.update(block)
            if check:
                check.update(block)
    if check:
        check.finish()
    return digest.result()


def adler32_of(path: Path, chunk: int = CHUNK) -> str:
    """adler32 of a file (8 hex digits)."""
    value = 1
    with open(path, "rb", buffering=0) as f:
        while block := f.read(chunk):
            value = zlib.adler32(block, value)
    return f"{value & 0xFFFFFFFF:08x}"
