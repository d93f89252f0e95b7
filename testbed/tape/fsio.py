"""Durable file operations: streamed writes, throttled copies, atomic renames with fsync."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from testbed.tape.checksums import StreamDigest

CHUNK = 1 << 20


def fsync_dir(path: Path) -> None:
    """Flush a directory entry change (rename, unlink) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(tmp_dir: Path, kind: str) -> Path:
    """Return a fresh temporary file name for ``kind`` (upload, migrate, recall)."""
    d = tmp_dir / kind
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{uuid.uuid4().hex}.part"


def receive(stream: BinaryIO, dest: Path) -> StreamDigest:
    """Write a request body to ``dest`` (fsynced) and return its size and checksums."""
    digest = StreamDigest()
    with open(dest, "wb") as out:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest


def copy(src: Path, dest: Path, rate: float = 0.0, stop: threading.Event | None = None) -> StreamDigest | None:
    """Copy ``src`` to ``dest`` (fsynced) at most at ``rate`` bytes/s; return None if stopped midway."""
    digest = StreamDigest()
    start = time.monotonic()
    chunk_size = CHUNK if rate <= 0 else max(4096, min(CHUNK, int(rate / 10)))
    with open(src, "rb") as inp, open(dest, "wb") as out:
        while True:
            if stop is not None and stop.is_set():
                return None
            chunk = inp.read(chunk_size)
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
            if rate > 0:
                out.flush()
                ahead = digest.size / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        out.flush()
        os.fsync(out.fileno())
    return digest


def install(tmp: Path, dest: Path) -> None:
    """Atomically move a complete temporary file into place and make the rename durable."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def remove(path: Path) -> None:
    """Remove a file if it exists and make the removal durable."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)
