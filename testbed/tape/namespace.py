"""The namespace: files and directories, their buffer and tape copies, and the operations WebDAV needs."""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from testbed.tape import fsio
from testbed.tape.checksums import StreamDigest
from testbed.tape.config import TapeConfig
from testbed.tape.locking import StateLock
from testbed.tape.paths import ancestors, on_fs, parent_of
from testbed.tape.problems import Problem
from testbed.tape.store import DirRecord, FileRecord, Store

log = logging.getLogger(__name__)

RETRY_AFTER = "30"


class Namespace:
    """Files and directories of the endpoint, kept consistent between the disk and the database."""

    def __init__(self, config: TapeConfig, store: Store, lock: StateLock) -> None:
        self.config = config
        self.store = store
        self.lock = lock

    def buffer_path(self, path: str) -> Path:
        """Return the buffer file of a namespace path."""
        return on_fs(self.config.buffer_dir, path)

    def tape_path(self, path: str) -> Path:
        """Return the tape file of a namespace path."""
        return on_fs(self.config.tape_dir, path)

    def lookup(self, path: str) -> FileRecord | DirRecord | None:
        """Return the file or directory at ``path``, or None."""
        return self.store.get_file(path) or self.store.get_dir(path)

    def locality(self, rec: FileRecord) -> str:
        """Return the Tape REST API locality of a file, checked against the copies really present."""
        disk = rec.on_disk and self.buffer_path(rec.path).is_file()
        tape = rec.on_tape and self.tape_path(rec.path).is_file()
        if disk and tape:
            return "DISK_AND_TAPE"
        if disk:
            return "DISK"
        if tape:
            return "TAPE"
        return "LOST"

    # --- checks done before anything is written --------------------------------------------------------
    def check_writable(self, path: str) -> bool:
        """Raise a Problem if a file cannot be written at ``path``; return whether one exists already."""
        if path == "/":
            raise Problem(405, "cannot write a file at the root collection")
        if self.store.get_dir(path) is not None:
            raise Problem(409, f"{path} is a collection")
        for anc in ancestors(path):
            if self.store.get_file(anc) is not None:
                raise Problem(409, f"parent {anc} of {path} is a file")
        return self.store.get_file(path) is not None

    # --- writes -------------------------------------------------------------------------------------------
    def commit_upload(self, path: str, tmp: Path, digest: StreamDigest) -> bool:
        """Move a complete upload into the buffer and record it (locality DISK); return True if new."""
        with self.lock.held():
            self.check_writable(path)
            now = time.time()
            with self.store.tx() as c:
                for anc in ancestors(path):
                    c.execute("INSERT OR IGNORE INTO dirs(path, parent, created) VALUES (?, ?, ?)",
                              (anc, parent_of(anc), now))
                old = c.execute("SELECT on_tape FROM files WHERE path = ?", (path,)).fetchone()
                fsio.install(tmp, self.buffer_path(path))
                if old is not None:
                    fsio.remove(self.tape_path(path))
                c.execute(
                    "INSERT OR REPLACE INTO files(path, parent, file_id, size, adler32, md5, mtime, on_disk, on_tape,"
                    " disk_since, archived_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, 0, ?, NULL)",
                    (path, parent_of(path), uuid.uuid4().hex, digest.size, digest.adler32, digest.md5, now, now))
        log.info("stored %s in the disk buffer (%d bytes, adler32 %s)", path, digest.size, digest.adler32)
        return old is None

    def mkcol(self, path: str) -> None:
        """Create a directory whose parent exists."""
        with self.lock.held():
            if self.lookup(path) is not None:
                raise Problem(405, f"{path} exists already")
            parent = parent_of(path)
            if self.store.get_dir(parent) is None:
                raise Problem(409, f"parent collection {parent} does not exist")
            with self.store.tx() as c:
                c.execute("INSERT INTO dirs(path, parent, created) VALUES (?, ?, ?)", (path, parent, time.time()))
        log.info("created collection %s", path)

    def delete(self, path: str) -> None:
        """Delete a file (all its copies) or an empty directory."""
        if path == "/":
            raise Problem(403, "the root collection cannot be deleted")
        with self.lock.held():
            rec = self.lookup(path)
            if rec is None:
                raise Problem(404, f"{path} does not exist")
            with self.store.tx() as c:
                if isinstance(rec, FileRecord):
                    c.execute("DELETE FROM files WHERE path = ?", (path,))
                    c.execute("UPDATE stage_files SET state = 'FAILED', error = ?, finished_at = ?"
                              " WHERE norm = ? AND state IN ('SUBMITTED', 'STARTED')",
                              ("File was deleted", time.time(), path))
                    fsio.remove(self.buffer_path(path))
                    fsio.remove(self.tape_path(path))
                else:
                    busy = c.execute("SELECT 1 FROM files WHERE parent = ? UNION ALL "
                                     "SELECT 1 FROM dirs WHERE parent = ? AND path != '/' LIMIT 1",
                                     (path, path)).fetchone()
                    if busy:
                        raise Problem(409, f"collection {path} is not empty")
                    c.execute("DELETE FROM dirs WHERE path = ?", (path,))
                    for base in (self.buffer_path(path), self.tape_path(path)):
                        try:
                            base.rmdir()
                        except OSError:
                            pass
        log.info("deleted %s", path)

    def move(self, src: str, dst: str, overwrite: bool) -> bool:
        """Rename a file (copies on disk and tape follow); return True if ``dst`` did not exist."""
        if src == dst:
            raise Problem(403, "source and destination are the same")
        with self.lock.held():
            rec = self.lookup(src)
            if rec is None:
                raise Problem(404, f"{src} does not exist")
            if not isinstance(rec, FileRecord):
                raise Problem(403, "moving collections is not supported")
            if self.store.get_dir(parent_of(dst)) is None:
                raise Problem(409, f"parent collection {parent_of(dst)} does not exist")
            existing = self.lookup(dst)
            if isinstance(existing, DirRecord):
                raise Problem(409, f"{dst} is a collection")
            if existing is not None and not overwrite:
                raise Problem(412, f"{dst} exists and Overwrite is F")
            with self.store.tx() as c:
                if existing is not None:
                    c.execute("DELETE FROM files WHERE path = ?", (dst,))
                    fsio.remove(self.tape_path(dst))
                    fsio.remove(self.buffer_path(dst))
                for base_of in (self.buffer_path, self.tape_path):
                    if base_of(src).exists():
                        fsio.install(base_of(src), base_of(dst))
                c.execute("UPDATE files SET path = ?, parent = ? WHERE path = ?", (dst, parent_of(dst), src))
        log.info("moved %s to %s", src, dst)
        return existing is None

    # --- reads ------------------------------------------------------------------------------------------
    def open_for_read(self, path: str) -> tuple[FileRecord, BinaryIO]:
        """Open the buffer copy of a file; a file only on tape fails like a nearline file (503)."""
        with self.lock.held():
            rec = self.store.get_file(path)
            if rec is None:
                raise Problem(404, f"{path} does not exist")
            if rec.on_disk:
                try:
                    return rec, open(self.buffer_path(path), "rb")  # closed by the response
                except FileNotFoundError:
                    pass
        raise Problem(503, f"{path} is on tape only (NEARLINE): stage it with the Tape REST API first",
                      {"Retry-After": RETRY_AFTER})

    # --- recovery ---------------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Make the database agree with the disk after a crash (run by the elected worker at start)."""
        with self.lock.held():
            for kind in ("migrate", "recall"):
                for stale in (self.config.tmp_dir / kind).glob("*.part"):
                    stale.unlink(missing_ok=True)
            cutoff = time.time() - 86400
            for stale in (self.config.tmp_dir / "upload").glob("*.part"):
                if stale.stat().st_mtime < cutoff:
                    stale.unlink(missing_ok=True)
            known = {rec.path: rec for rec in self.store.all_files()}
            with self.store.tx() as c:
                for rec in known.values():
                    if rec.on_disk and not self.buffer_path(rec.path).is_file():
                        log.warning("buffer copy of %s is missing: marking it off disk", rec.path)
                        c.execute("UPDATE files SET on_disk = 0 WHERE path = ?", (rec.path,))
            self._adopt_orphans(known)

    def _adopt_orphans(self, known: dict[str, FileRecord]) -> None:
        base = self.config.buffer_dir
        for dirpath, _dirnames, filenames in os.walk(base):
            for fname in filenames:
                full = Path(dirpath) / fname
                path = "/" + full.relative_to(base).as_posix()
                if path in known:
                    continue
                digest = StreamDigest()
                with open(full, "rb") as fh:
                    while chunk := fh.read(fsio.CHUNK):
                        digest.update(chunk)
                now = time.time()
                with self.store.tx() as c:
                    for anc in ancestors(path):
                        c.execute("INSERT OR IGNORE INTO dirs(path, parent, created) VALUES (?, ?, ?)",
                                  (anc, parent_of(anc), now))
                    c.execute(
                        "INSERT INTO files(path, parent, file_id, size, adler32, md5, mtime, on_disk, on_tape,"
                        " disk_since) VALUES (?, ?, ?, ?, ?, ?, ?, 1, 0, ?)",
                        (path, parent_of(path), uuid.uuid4().hex, digest.size, digest.adler32, digest.md5, now, now))
                log.warning("adopted %s found in the buffer without a record", path)
