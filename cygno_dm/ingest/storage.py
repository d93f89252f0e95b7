"""Landing storage: put a local file at a PFN without ever overwriting, stat it, and checksum what is stored."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from cygno_dm.ingest.checksums import CHUNK, Checksums

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


class StorageError(RuntimeError):
    """The storage refused or failed an operation for a reason that retrying will not fix."""


class StorageUnavailable(RuntimeError):
    """The storage cannot be reached or answers 5xx: retry later."""


class ObjectExists(StorageError):
    """Something already exists at the PFN; we never overwrite."""


@dataclass(frozen=True)
class Stored:
    """What the storage says about an object: size, checksum hints it keeps (adler32/md5/etag), and the
    full-object CRC32C (hex) the storage computed itself from the stored bytes, when it offers one."""

    size: int
    etag: str | None = None
    meta: dict[str, str] = field(default_factory=dict)
    crc32c: str | None = None


class Storage(Protocol):
    """One landing storage protocol."""

    def stat(self, pfn: str) -> Stored | None:
        """Size and hints of the object at pfn, or None when there is none."""

    def put(self, path: Path, pfn: str, sums: Checksums, progress: Progress | None = None) -> None:
        """Store `path` at pfn atomically, never overwriting; verify size and checksum; raise ObjectExists."""

    def adler32(self, pfn: str) -> str:
        """adler32 of the stored bytes, read back from the storage."""

    def verify(self, pfn: str, sums: Checksums) -> tuple[str | None, str]:
        """(None if the stored bytes are `sums`' bytes, else what differs; how it was checked)."""


def _adler_stream(read: Callable[[int], bytes]) -> str:
    value = 1
    while block := read(CHUNK):
        value = zlib.adler32(block, value)
    return f"{value & 0xFFFFFFFF:08x}"


class PosixStorage:
    """file:// PFNs: copy to a temporary name, fsync, then hard-link into place (fails if the name exists)."""

    @staticmethod
    def _path(pfn: str) -> Path:
        return Path(unquote(urlparse(pfn).path))

    def stat(self, pfn: str) -> Stored | None:
        try:
            return Stored(self._path(pfn).stat().st_size)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StorageUnavailable(f"{pfn}: {err}") from err

    def put(self, path: Path, pfn: str, sums: Checksums, progress: Progress | None = None) -> None:
        dest = self._path(pfn)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageUnavailable(f"{pfn}: {err}") from err
        for stale in dest.parent.glob(f".{dest.name}.part-*"):  # left by a killed uploader (we hold the lock)
            stale.unlink(missing_ok=True)
        tmp = dest.parent / f".{dest.name}.part-{uuid.uuid4().hex[:8]}"
        adler = 1
        try:
            with open(path, "rb") as src, open(tmp, "wb") as out:
                while block := src.read(CHUNK):
                    out.write(block)
                    adler = zlib.adler32(block, adler)
                    if progress:
                        progress(len(block))
                out.flush()
                os.fsync(out.fileno())
            if f"{adler & 0xFFFFFFFF:08x}" != sums.adler32:
                raise StorageError(f"{path}: changed while uploading (adler32 {adler:08x} != {sums.adler32})")
            try:
                os.link(tmp, dest)
            except FileExistsError:
                raise ObjectExists(f"{pfn} already exists") from None
        except OSError as err:
            raise StorageUnavailable(f"{pfn}: {err}") from err
        finally:
            tmp.unlink(missing_ok=True)
        stored = self.stat(pfn)
        if stored is None or stored.size != sums.size:
            raise StorageError(f"{pfn}: stored size {stored and stored.size} != {sums.size}")

    def adler32(self, pfn: str) -> str:
        try:
            with open(self._path(pfn), "rb") as f:
                return _adler_stream(f.read)
        except FileNotFoundError:
            raise StorageError(f"{pfn}: no such file") from None
        except OSError as err:
            raise StorageUnavailable(f"{pfn}: {err}") from err

    def verify(self, pfn: str, sums: Checksums) -> tuple[str | None, str]:
        return verify_by_adler32(self, pfn, sums, "read-back adler32")


def verify_by_adler32(store: Storage, pfn: str, sums: Checksums, how: str) -> tuple[str | None, str]:
    """Storage.verify from the adler32 of the stored bytes (read back, or computed by the storage)."""
    theirs = store.adler32(pfn)
    return (None if theirs == sums.adler32 else f"adler32 {theirs} at {pfn} != {sums.adler32}"), how


def multipart_etag(path: Path, part_size: int) -> str:
    """The S3 ETag of `path` uploaded in parts of part_size (plain md5 for one part)."""
    md5s = []
    with open(path, "rb") as f:
        while block := f.read(part_size):
            md5s.append(hashlib.md5(block, usedforsecurity=False).digest())
    if len(md5s) <= 1:
        return (md5s[0] if md5s else hashlib.md5(b"").digest()).hex()
    return f"{hashlib.md5(b''.join(md5s), usedforsecurity=False).hexdigest()}-{len(md5s)}"
