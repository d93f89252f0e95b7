"""SQLite state of the endpoint: namespace, localities, stage requests and pins."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS dirs (
    path TEXT PRIMARY KEY, parent TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS dirs_parent ON dirs(parent);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, parent TEXT NOT NULL, file_id TEXT NOT NULL, size INTEGER NOT NULL,
    adler32 TEXT NOT NULL, md5 TEXT NOT NULL, mtime REAL NOT NULL,
    on_disk INTEGER NOT NULL, on_tape INTEGER NOT NULL, disk_since REAL, archived_at REAL);
CREATE INDEX IF NOT EXISTS files_parent ON files(parent);
CREATE TABLE IF NOT EXISTS stage_requests (
    id TEXT PRIMARY KEY, created_at REAL NOT NULL, started_at REAL, completed_at REAL);
CREATE TABLE IF NOT EXISTS stage_files (
    request_id TEXT NOT NULL, idx INTEGER NOT NULL, path TEXT NOT NULL, norm TEXT,
    state TEXT NOT NULL, error TEXT, disk_lifetime REAL, metadata TEXT,
    started_at REAL, finished_at REAL, pin_until REAL, released INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (request_id, idx));
CREATE INDEX IF NOT EXISTS stage_files_norm ON stage_files(norm);
"""

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


@dataclass(frozen=True)
class FileRecord:
    """One file of the namespace and where its copies are."""

    path: str
    file_id: str
    size: int
    adler32: str
    md5: str
    mtime: float
    on_disk: bool
    on_tape: bool
    disk_since: float | None
    archived_at: float | None

    @property
    def name(self) -> str:
        """Last path component."""
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DirRecord:
    """One directory of the namespace."""

    path: str
    created: float

    @property
    def name(self) -> str:
        """Last path component ('' for the root)."""
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class StageFile:
    """One file of a stage request."""

    request_id: str
    idx: int
    path: str
    norm: str | None
    state: str
    error: str | None
    disk_lifetime: float | None
    started_at: float | None
    finished_at: float | None
    pin_until: float | None
    released: bool


@dataclass(frozen=True)
class StageRequest:
    """A stage (bring-online) request and its files."""

    id: str
    created_at: float
    started_at: float | None
    completed_at: float | None
    files: list[StageFile]


def _file(row: sqlite3.Row) -> FileRecord:
    return FileRecord(
        path=row["path"], file_id=row["file_id"], size=row["size"], adler32=row["adler32"], md5=row["md5"],
        mtime=row["mtime"], on_disk=bool(row["on_disk"]), on_tape=bool(row["on_tape"]),
        disk_since=row["disk_since"], archived_at=row["archived_at"],
    )


def _stage_file(row: sqlite3.Row) -> StageFile:
    return StageFile(
        request_id=row["request_id"], idx=row["idx"], path=row["path"], norm=row["norm"], state=row["state"],
        error=row["error"], disk_lifetime=row["disk_lifetime"], started_at=row["started_at"],
        finished_at=row["finished_at"], pin_until=row["pin_until"], released=bool(row["released"]),
    )


class Store:
    """Access to the SQLite state file (one short-lived connection per operation, safe across threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        with self.tx() as c:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
            c.execute("INSERT OR IGNORE INTO dirs(path, parent, created) VALUES ('/', '/', 0)")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """Open a connection, run one transaction (committed on success) and close it."""
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    # --- namespace -------------------------------------------------------------------------------------
    def get_file(self, path: str) -> FileRecord | None:
        """Return the file at ``path`` or None."""
        with self.tx() as c:
            row = c.execute("SELECT * FROM files WHERE path = ?", (path,)).fetchone()
        return _file(row) if row else None

    def get_dir(self, path: str) -> DirRecord | None:
        """Return the directory at ``path`` or None."""
        with self.tx() as c:
            row = c.execute("SELECT path, created FROM dirs WHERE path = ?", (path,)).fetchone()
        return DirRecord(row["path"], row["created"]) if row else None

    def children(self, path: str) -> tuple[list[DirRecord], list[FileRecord]]:
        """Return the sub-directories and files directly inside directory ``path``."""
        with self.tx() as c:
            dirs = [DirRecord(r["path"], r["created"]) for r in
                    c.execute("SELECT path, created FROM dirs WHERE parent = ? AND path != '/' ORDER BY path",
                              (path,))]
            files = [_file(r) for r in c.execute("SELECT * FROM files WHERE parent = ? ORDER BY path", (path,))]
        return dirs, files

    def all_files(self) -> list[FileRecord]:
        """Return every file of the namespace."""
        with self.tx() as c:
            return [_file(r) for r in c.execute("SELECT * FROM files ORDER BY path")]

    def due_migrations(self, before: float) -> list[FileRecord]:
        """Return files only on disk written before ``before``."""
        with self.tx() as c:
            rows = c.execute("SELECT * FROM files WHERE on_tape = 0 AND on_disk = 1 AND mtime <= ? ORDER BY mtime",
                             (before,)).fetchall()
        return [_file(r) for r in rows]

    def due_evictions(self, before: float, now: float) -> list[FileRecord]:
        """Return files on disk and tape, on disk since before ``before`` and pinned by no stage request."""
        with self.tx() as c:
            rows = c.execute(
                "SELECT * FROM files f WHERE on_tape = 1 AND on_disk = 1 AND disk_since <= ? AND NOT EXISTS ("
                " SELECT 1 FROM stage_files s WHERE s.norm = f.path AND s.released = 0 AND ("
                "  s.state IN ('SUBMITTED', 'STARTED') OR (s.state = 'COMPLETED' AND s.pin_until > ?)))",
                (before, now)).fetchall()
        return [_file(r) for r in rows]

    # --- stage requests --------------------------------------------------------------------------------
    def get_request(self, request_id: str) -> StageRequest | None:
        """Return a stage request with its files, or None."""
        with self.tx() as c:
            row = c.execute("SELECT * FROM stage_requests WHERE id = ?", (request_id,)).fetchone()
            if row is None:
                return None
            files = [_stage_file(r) for r in
                     c.execute("SELECT * FROM stage_files WHERE request_id = ? ORDER BY idx", (request_id,))]
        return StageRequest(row["id"], row["created_at"], row["started_at"], row["completed_at"], files)

    def pending_stage_files(self) -> list[StageFile]:
        """Return the stage entries not yet terminal, oldest first."""
        with self.tx() as c:
            rows = c.execute("SELECT s.* FROM stage_files s JOIN stage_requests r ON r.id = s.request_id"
                             " WHERE s.state IN ('SUBMITTED', 'STARTED') ORDER BY r.created_at, s.idx").fetchall()
        return [_stage_file(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Return counters for the metrics: files per locality flag, bytes, stage entries per state."""
        with self.tx() as c:
            out: dict[str, int] = {}
            for on_disk, on_tape, n, size in c.execute(
                    "SELECT on_disk, on_tape, COUNT(*), COALESCE(SUM(size), 0) FROM files GROUP BY on_disk, on_tape"):
                key = {(1, 0): "DISK", (1, 1): "DISK_AND_TAPE", (0, 1): "TAPE"}.get((on_disk, on_tape), "LOST")
                out[f"files:{key}"] = out.get(f"files:{key}", 0) + n
                out[f"bytes:{key}"] = out.get(f"bytes:{key}", 0) + size
            for state, n in c.execute("SELECT state, COUNT(*) FROM stage_files GROUP BY state"):
                out[f"stage:{state}"] = n
        return out
