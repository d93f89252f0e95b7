"""SQLite (WAL) persistence of FTS jobs and files and their state transitions."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import clock, states

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    job_state TEXT NOT NULL,
    job_type TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 3,
    vo_name TEXT,
    user_dn TEXT,
    cred_id TEXT,
    submit_time TEXT NOT NULL,
    submit_epoch REAL NOT NULL,
    job_finished TEXT,
    reason TEXT,
    source_se TEXT,
    dest_se TEXT,
    verify_checksum TEXT,
    bring_online INTEGER,
    archive_timeout INTEGER,
    copy_pin_lifetime INTEGER,
    overwrite INTEGER NOT NULL DEFAULT 0,
    retry INTEGER NOT NULL DEFAULT 0,
    retry_delay INTEGER NOT NULL DEFAULT 0,
    max_time_in_queue INTEGER,
    params TEXT NOT NULL,
    job_metadata TEXT
);
CREATE TABLE IF NOT EXISTS files (
    file_id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    file_index INTEGER NOT NULL,
    file_state TEXT NOT NULL,
    source_surl TEXT NOT NULL,
    dest_surl TEXT NOT NULL,
    source_se TEXT,
    dest_se TEXT,
    filesize INTEGER,
    user_filesize INTEGER,
    checksum TEXT,
    activity TEXT,
    selection_strategy TEXT,
    file_metadata TEXT,
    staging_metadata TEXT,
    archive_metadata TEXT,
    extra TEXT,
    reason TEXT,
    start_time TEXT,
    finish_time TEXT,
    staging_start TEXT,
    staging_finished TEXT,
    archive_start_time TEXT,
    archive_finish_time TEXT,
    retry INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    phase_epoch REAL,
    transferred INTEGER NOT NULL DEFAULT 0,
    throughput REAL,
    tx_duration REAL,
    staging_request TEXT,
    dest_written INTEGER NOT NULL DEFAULT 0,
    dst_file TEXT,
    source_token TEXT,
    dest_token TEXT
);
CREATE INDEX IF NOT EXISTS files_job ON files(job_id);
CREATE INDEX IF NOT EXISTS files_state ON files(file_state);
CREATE TABLE IF NOT EXISTS retries (
    file_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    datetime TEXT NOT NULL,
    reason TEXT
);
"""

JSON_COLUMNS = frozenset({"params", "job_metadata", "file_metadata", "staging_metadata", "archive_metadata",
                          "extra", "staging_request", "dst_file"})


class DuplicateJob(Exception):
    """A job with this id already exists."""


def _encode(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS:
        return None if value is None else json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in row.keys():
        value = row[key]
        if key in JSON_COLUMNS and value is not None:
            value = json.loads(value)
        out[key] = value
    return out


class Store:
    """All job/file rows, one connection guarded by a lock (writes are serialised)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(SCHEMA)
        Path(self.path).chmod(0o600)  # per-file bearer tokens of pending transfers
        have = {r["name"] for r in self._conn.execute("PRAGMA table_info(files)")}
        for column in ("source_token", "dest_token"):  # databases of an earlier version
            if column not in have:
                self._conn.execute(f"ALTER TABLE files ADD COLUMN {column} TEXT")

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE … COMMIT, rolled back on error)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [_decode(r) for r in self._conn.execute(sql, tuple(args)).fetchall()]

    # ---- jobs -------------------------------------------------------------------------------------------

    def insert_job(self, job: Mapping[str, Any], files: list[Mapping[str, Any]]) -> None:
        """Insert a job and its file rows atomically; DuplicateJob if the id exists."""
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM jobs WHERE job_id=?", (job["job_id"],)).fetchone():
                raise DuplicateJob(job["job_id"])
            cols = list(job)
            conn.execute(f"INSERT INTO jobs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                         [_encode(c, job[c]) for c in cols])
            for f in files:
                fcols = list(f)
                conn.execute(f"INSERT INTO files ({','.join(fcols)}) VALUES ({','.join('?' * len(fcols))})",
                             [_encode(c, f[c]) for c in fcols])

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The job row, or None."""
        rows = self._query("SELECT * FROM jobs WHERE job_id=?", (job_id,))
        return rows[0] if rows else None

    def get_files(self, job_id: str) -> list[dict[str, Any]]:
        """The file rows of a job in submission order."""
        return self._query("SELECT * FROM files WHERE job_id=? ORDER BY file_id", (job_id,))

    def get_file(self, file_id: int) -> dict[str, Any] | None:
        """One file row, or None."""
        rows = self._query("SELECT * FROM files WHERE file_id=?", (file_id,))
        return rows[0] if rows else None

    def list_jobs(self, states_in: Iterable[str] | None = None, limit: int = 1000,
                  user_dn: str | None = None) -> list[dict[str, Any]]:
        """Jobs, newest first, optionally filtered by state and by owner."""
        wanted = list(states_in or [])
        where, args = [], []
        if wanted:
            where.append(f"job_state IN ({','.join('?' * len(wanted))})")
            args += wanted
        if user_dn is not None:
            where.append("user_dn = ?")
            args.append(user_dn)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return self._query(f"SELECT * FROM jobs {clause}ORDER BY submit_epoch DESC LIMIT ?", [*args, limit])

    def files_in_states(self, wanted: Iterable[str]) -> list[dict[str, Any]]:
        """File rows in any of the given states, with their job's scheduling fields."""
        wanted = list(wanted)
        marks = ",".join("?" * len(wanted))
        return self._query(
            "SELECT f.*, j.priority AS job_priority, j.submit_epoch AS job_submit_epoch, j.job_type AS job_type "
            f"FROM files f JOIN jobs j ON f.job_id=j.job_id WHERE f.file_state IN ({marks}) "
            "ORDER BY j.priority DESC, j.submit_epoch, f.file_id", wanted)

    def dispatch_candidates(self) -> list[dict[str, Any]]:
        """SUBMITTED files in dispatch order (priority, then age), with only the columns scheduling needs."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT f.file_id, f.source_surl, f.dest_surl, f.next_try FROM files f JOIN jobs j "
                "ON f.job_id=j.job_id WHERE f.file_state=? ORDER BY j.priority DESC, j.submit_epoch, f.file_id",
                (states.SUBMITTED,)).fetchall()
        return [dict(r) for r in rows]

    def expired_in_queue(self, now: float) -> list[dict[str, Any]]:
        """SUBMITTED files whose job waited longer than its max_time_in_queue."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT f.file_id, j.max_time_in_queue FROM files f JOIN jobs j ON f.job_id=j.job_id "
                "WHERE f.file_state=? AND j.max_time_in_queue IS NOT NULL AND ? - j.submit_epoch > j.max_time_in_queue",
                (states.SUBMITTED, now)).fetchall()
        return [dict(r) for r in rows]

    def last_file_index(self, job_id: str) -> int:
        """The highest file_index of a job (the last hop of a multihop job)."""
        with self._lock:
            row = self._conn.execute("SELECT MAX(file_index) FROM files WHERE job_id=?", (job_id,)).fetchone()
        return int(row[0] or 0)

    def retries(self, file_id: int) -> list[dict[str, Any]]:
        """Recorded failed attempts of a file."""
        return self._query("SELECT * FROM retries WHERE file_id=? ORDER BY attempt", (file_id,))

    def set_priority(self, job_id: str, priority: int) -> bool:
        """Change a job's priority; False if there is no such job."""
        with self.transaction() as conn:
            cur = conn.execute("UPDATE jobs SET priority=? WHERE job_id=?", (priority, job_id))
            return cur.rowcount > 0

    # ---- file transitions ----------------------------------------------------------------------------

    def update_file(self, file_id: int, expect: Iterable[str] | None = None, **fields: Any) -> bool:
        """Update a file row (only if its state is in `expect`) and refresh its job's state."""
        with self.transaction() as conn:
            return self._update_file(conn, file_id, expect, fields)

    def _update_file(self, conn: sqlite3.Connection, file_id: int, expect: Iterable[str] | None,
                     fields: Mapping[str, Any]) -> bool:
        row = conn.execute("SELECT * FROM files WHERE file_id=?", (file_id,)).fetchone()
        if row is None:
            return False
        if expect is not None and row["file_state"] not in set(expect):
            return False
        if fields:
            sets = ",".join(f"{c}=?" for c in fields)
            conn.execute(f"UPDATE files SET {sets} WHERE file_id=?",
                         [*(_encode(c, v) for c, v in fields.items()), file_id])
        new_state = fields.get("file_state")
        if new_state is None or new_state == row["file_state"]:
            return True
        if new_state in (states.FINISHED, states.FAILED):
            self._promote(conn, _decode(row), new_state)
        self._refresh_job(conn, row["job_id"])
        return True

    def _promote(self, conn: sqlite3.Connection, row: dict[str, Any], new_state: str) -> None:
        """Start the next replica (after a failure) or the next hop (after a success)."""
        job = conn.execute("SELECT job_type, bring_online FROM jobs WHERE job_id=?", (row["job_id"],)).fetchone()
        if job["job_type"] == states.JOB_TYPE_MULTIPLE_REPLICA and new_state == states.FAILED:
            nxt = conn.execute("SELECT file_id FROM files WHERE job_id=? AND file_index=? AND file_state=? "
                               "AND file_id>? ORDER BY file_id LIMIT 1",
                               (row["job_id"], row["file_index"], states.NOT_USED, row["file_id"])).fetchone()
        elif job["job_type"] == states.JOB_TYPE_MULTI_HOP and new_state == states.FINISHED:
            nxt = conn.execute("SELECT file_id FROM files WHERE job_id=? AND file_index=? AND file_state=?",
                               (row["job_id"], row["file_index"] + 1, states.NOT_USED)).fetchone()
        else:
            return
        if nxt is not None:
            staged = (job["bring_online"] or 0) > 0 and job["job_type"] != states.JOB_TYPE_MULTI_HOP
            conn.execute("UPDATE files SET file_state=?, next_try=0, phase_epoch=? WHERE file_id=?",
                         (states.STAGING if staged else states.SUBMITTED, clock.epoch(), nxt["file_id"]))

    def _refresh_job(self, conn: sqlite3.Connection, job_id: str) -> str:
        job = conn.execute("SELECT job_state, job_type FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        files = conn.execute("SELECT file_state, file_index, reason FROM files WHERE job_id=?", (job_id,)).fetchall()
        new_state = states.job_state_from_files([dict(f) for f in files], job["job_type"])
        if new_state != job["job_state"]:
            if new_state in states.JOB_TERMINAL:
                reason = _job_reason(new_state, [dict(f) for f in files])
                conn.execute("UPDATE jobs SET job_state=?, job_finished=?, reason=? WHERE job_id=?",
                             (new_state, clock.now_str(), reason, job_id))
            else:
                conn.execute("UPDATE jobs SET job_state=?, job_finished=NULL WHERE job_id=?", (new_state, job_id))
            log.info("job %s %s -> %s", job_id, job["job_state"], new_state)
        return new_state

    def record_retry(self, file_id: int, attempt: int, reason: str) -> None:
        """Remember a failed attempt that will be retried."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO retries (file_id, attempt, datetime, reason) VALUES (?,?,?,?)",
                         (file_id, attempt, clock.now_str(), reason))

    def cancel(self, job_id: str, file_ids: Iterable[int] | None = None,
               reason: str = "Job canceled by the user") -> list[int]:
        """Cancel the live files of a job (or only `file_ids`); returns the ids that were canceled."""
        wanted = None if file_ids is None else {int(i) for i in file_ids}
        done: list[int] = []
        with self.transaction() as conn:
            rows = conn.execute("SELECT file_id, file_state FROM files WHERE job_id=?", (job_id,)).fetchall()
            now = clock.now_str()
            for r in rows:
                if wanted is not None and r["file_id"] not in wanted:
                    continue
                if r["file_state"] in states.FILE_LIVE:
                    conn.execute("UPDATE files SET file_state=?, reason=?, finish_time=? WHERE file_id=?",
                                 (states.CANCELED, reason, now, r["file_id"]))
                    done.append(r["file_id"])
            if conn.execute("SELECT 1 FROM jobs WHERE job_id=?", (job_id,)).fetchone():
                self._refresh_job(conn, job_id)
        return done


def _job_reason(job_state: str, files: list[dict[str, Any]]) -> str | None:
    """A job-level reason summarising its files' failures."""
    if job_state == states.FINISHED:
        return None
    if job_state == states.CANCELED:
        return "Job canceled by the user"
    reasons = [f["reason"] for f in files if f["file_state"] == states.FAILED and f.get("reason")]
    if job_state == states.FINISHEDDIRTY:
        return "One or more files failed. Please have a look at the details for more information"
    return reasons[-1] if reasons else "One or more files failed"
