"""Per-file locks next to the data, so two uploaders on one directory never work on the same file."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_DIR = ".cygno-ingest-locks"
_HELD: set[str] = set()  # POSIX locks do not exclude threads of one process: this does
_GUARD = threading.Lock()


class FileLock:
    """An exclusive POSIX record lock on `<dir>/.cygno-ingest-locks/<file>.lock`; released by the OS on death."""

    def __init__(self, data_file: Path) -> None:
        self.path = data_file.parent / LOCK_DIR / f"{data_file.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False if another process holds it."""
        with _GUARD:
            if str(self.path) in _HELD:
                return False
            _HELD.add(str(self.path))
        self.path.parent.mkdir(exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            with _GUARD:
                _HELD.discard(str(self.path))
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """Who holds (or last held) the lock: 'host pid'."""
        try:
            return self.path.read_text().strip()
        except FileNotFoundError:
            return ""

    def release(self) -> None:
        """Give the lock back (the lock file stays; it is reused)."""
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
            with _GUARD:
                _HELD.discard(str(self.path))

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
