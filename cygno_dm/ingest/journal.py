"""The per-host SQLite journal: one row per run file, its state, checksums, and a history of transitions."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cygno_dm.ingest.states import TERMINAL, State

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    dataset TEXT NOT NULL,
    run INTEGER NOT NULL,
    state TEXT NOT NULL,
    size INTEGER, mtime REAL, adler32 TEXT, md5 TEXT, crc32c TEXT,
    rse TEXT, pfn TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    reason TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL,
    updated REAL NOT NULL,
    uploaded_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS files_did ON files(scope, name) WHERE state != 'QUARANTINED';
CREATE INDEX IF NOT EXISTS files_state ON files(state, next_try);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL, path TEXT NOT NULL, did TEXT NOT NULL,
    from_state TEXT, to_state TEXT NOT NULL, detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS refused (
    path TEXT PRIMARY KEY, reason TEXT NOT NULL, size INTEGER, mtime REAL,
    first_seen REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS datasets (
    scope TEXT NOT NULL, name TEXT NOT NULL,
    rules_done INTEGER NOT NULL DEFAULT 0, closed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, name)
);
"""


class JournalError(RuntimeError):
    """The journal refused a change (e.g. a second file claims a DID already in it)."""


@dataclass
class Entry:
    """One journal row."""

    path: str
    scope: str
    name: str
    dataset: str
    run: int
    state: State
    size: int | None = None
    mtime: float | None = None
    adler32: str | None = None
    md5: str | None = None
    crc32c: str | None = None
    rse: str | None = None
    pfn: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    attempts: int = 0
    next_try: float = 0.0
    first_seen: float = 0.0
    updated: float = 0.0
    uploaded_bytes: int = 0

    @property
    def did(self) -> str:
        """`scope:name`."""
        return f"{self.scope}:{self.name}"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Entry:
        data = dict(row)
        data["state"] = State(data["state"])
        data["meta"] = json.loads(data["meta"] or "{}")
        return cls(**data)


class Journal:
    """SQLite journal, safe for several threads and processes (WAL, immediate transactions)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._db().executescript(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=60000")
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- reads ---------------------------------------------------------------------------------
    def get(self, path: str) -> Entry | None:
        """The entry of a local path, if known."""
        row = self._db().execute("SELECT * FROM files WHERE path = ?", (path,)).fetchone()
        return Entry.from_row(row) if row else None

    def by_did(self, scope: str, name: str) -> Entry | None:
        """The live (not quarantined) entry of a DID, if any."""
        row = self._db().execute("SELECT * FROM files WHERE scope = ? AND name = ? AND state != 'QUARANTINED'",
                                 (scope, name)).fetchone()
        return Entry.from_row(row) if row else None

    def entries(self, states: list[State] | None = None) -> list[Entry]:
        """Entries (optionally in some states), oldest run first per TAG."""
        sql = "SELECT * FROM files"
        args: tuple = ()
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args = tuple(s.value for s in states)
        rows = self._db().execute(sql + " ORDER BY name, run", args).fetchall()
        return sorted((Entry.from_row(r) for r in rows), key=lambda e: (e.name.split("/")[0], e.run))

    def due(self, now: float | None = None) -> list[Entry]:
        """Live entries whose next try time has come."""
        now = time.time() if now is None else now
        rows = self._db().execute(
            "SELECT * FROM files WHERE state NOT IN ('DELETED', 'QUARANTINED') AND next_try <= ? ORDER BY run",
            (now,)).fetchall()
        return [Entry.from_row(r) for r in rows]

    def next_due(self) -> float | None:
        """Earliest next-try time of a live entry."""
        row = self._db().execute(
            "SELECT MIN(next_try) FROM files WHERE state NOT IN ('DELETED', 'QUARANTINED')").fetchone()
        return row[0]

    def attached_in(self, scope: str, dataset: str) -> int:
        """How many of this journal's files are attached to a dataset already."""
        row = self._db().execute(
            "SELECT COUNT(*) FROM files WHERE scope = ? AND dataset = ? AND state IN ('ATTACHED', 'SAFE', 'DELETED')",
            (scope, dataset)).fetchone()
        return int(row[0])

    def history(self, path: str) -> list[dict[str, Any]]:
        """Transitions of one file, oldest first."""
        rows = self._db().execute("SELECT * FROM history WHERE path = ? ORDER BY id", (path,)).fetchall()
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of entries per state (refused files as REFUSED)."""
        rows = self._db().execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall()
        out = {r[0]: r[1] for r in rows}
        refused = self._db().execute("SELECT COUNT(*) FROM refused").fetchone()[0]
        return {**out, State.REFUSED.value: refused} if refused else out

    def refused(self) -> list[dict[str, Any]]:
        """Files the uploader will not touch (their name breaks the naming rule), by path."""
        return [dict(r) for r in self._db().execute("SELECT * FROM refused ORDER BY path").fetchall()]

    # -- writes --------------------------------------------------------------------------------
    def add(self, entry: Entry) -> Entry:
        """Insert a newly seen file (idempotent per path); refuse a second live path for the same DID."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT * FROM files WHERE path = ?", (entry.path,)).fetchone()
            if row:
                return Entry.from_row(row)
            other = db.execute("SELECT path FROM files WHERE scope = ? AND name = ? AND state != 'QUARANTINED'",
                               (entry.scope, entry.name)).fetchone()
            if other and entry.state != State.QUARANTINED:
                raise JournalError(f"{entry.scope}:{entry.name} is already journaled for {other[0]}")
            entry.first_seen = entry.updated = now
            db.execute(
                "INSERT INTO files (path, scope, name, dataset, run, state, size, mtime, meta, reason,"
                " first_seen, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (entry.path, entry.scope, entry.name, entry.dataset, entry.run, entry.state.value, entry.size,
                 entry.mtime, json.dumps(entry.meta), entry.reason, now, now))
            db.execute("INSERT INTO history (ts, path, did, from_state, to_state, detail) VALUES (?,?,?,?,?,?)",
                       (now, entry.path, entry.did, None, entry.state.value, "discovered"))
        return entry

    def advance(self, entry: Entry, to: State, detail: str = "", **fields: Any) -> Entry:
        """Move an entry from its current state to `to`, with new field values; fail if someone moved it."""
        now = time.time()
        fields = {**fields, "state": to.value, "updated": now, "attempts": 0, "next_try": 0.0,
                  "reason": fields.get("reason", "")}
        if "meta" in fields:
            fields["meta"] = json.dumps(fields["meta"])
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            cur = db.execute(f"UPDATE files SET {cols} WHERE path = ? AND state = ?",
                             (*fields.values(), entry.path, entry.state.value))
            if cur.rowcount != 1:
                raise JournalError(f"{entry.did}: expected state {entry.state} for {entry.path}, it moved")
            db.execute("INSERT INTO history (ts, path, did, from_state, to_state, detail) VALUES (?,?,?,?,?,?)",
                       (now, entry.path, entry.did, entry.state.value, to.value, detail))
        log.info("%s %s -> %s %s", entry.did, entry.state, to, detail)
        updated = self.get(entry.path)
        assert updated is not None
        return updated

    def update(self, entry: Entry, **fields: Any) -> None:
        """Change fields of an entry without changing its state (checksums of a waiting file, size, meta)."""
        if "meta" in fields:
            fields["meta"] = json.dumps(fields["meta"])
        fields["updated"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE files SET {cols} WHERE path = ?", (*fields.values(), entry.path))

    def postpone(self, entry: Entry, reason: str, delay: float, failure: bool = False) -> None:
        """Keep the state, record what the file waits for, and when to look again."""
        with self._tx() as db:
            db.execute("UPDATE files SET reason = ?, next_try = ?, attempts = attempts + ?, updated = ?"
                       " WHERE path = ?", (reason, time.time() + delay, int(failure), time.time(), entry.path))

    def quarantine(self, entry: Entry, reason: str) -> None:
        """Terminal: never upload or register this file; the reason says why."""
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE files SET state = 'QUARANTINED', reason = ?, updated = ? WHERE path = ?",
                       (reason, now, entry.path))
            db.execute("INSERT INTO history (ts, path, did, from_state, to_state, detail) VALUES (?,?,?,?,?,?)",
                       (now, entry.path, entry.did, entry.state.value, State.QUARANTINED.value, reason))
        log.error("%s QUARANTINED %s: %s", entry.did, entry.path, reason)

    def refuse(self, path: str, reason: str, size: int, mtime: float) -> bool:
        """Record a file that is reported and left alone; True when it is new here or its reason changed."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT reason FROM refused WHERE path = ?", (path,)).fetchone()
            if row is None:
                db.execute("INSERT INTO refused (path, reason, size, mtime, first_seen, updated) VALUES (?,?,?,?,?,?)",
                           (path, reason, size, mtime, now, now))
            else:
                db.execute("UPDATE refused SET reason = ?, size = ?, mtime = ?, updated = ? WHERE path = ?",
                           (reason, size, mtime, now, path))
        return row is None or row[0] != reason

    def forget_refused(self, still_there: set[str]) -> None:
        """Drop refused files that are gone (a human renamed or removed them)."""
        with self._tx() as db:
            for (path,) in db.execute("SELECT path FROM refused").fetchall():
                if path not in still_there:
                    db.execute("DELETE FROM refused WHERE path = ?", (path,))

    def reopen(self, entry: Entry, detail: str) -> Entry:
        """Start a finished entry over: a new file appeared at its path (e.g. a re-used run number)."""
        return self.advance(entry, State.SEEN, detail, size=None, mtime=None, adler32=None, md5=None, crc32c=None,
                            rse=None, pfn=None, meta={}, uploaded_bytes=0)

    def rewind(self, entry: Entry, to: State, detail: str) -> Entry:
        """Move an entry back to an earlier state after reconciliation found a later step undone."""
        return self.advance(entry, to, f"reconcile: {detail}")

    # -- datasets ------------------------------------------------------------------------------
    def dataset(self, scope: str, name: str) -> dict[str, int]:
        """What is known about a dataset: rules_done, closed."""
        row = self._db().execute("SELECT rules_done, closed FROM datasets WHERE scope = ? AND name = ?",
                                 (scope, name)).fetchone()
        return dict(row) if row else {"rules_done": 0, "closed": 0}

    def mark_dataset(self, scope: str, name: str, **flags: int) -> None:
        """Record that a dataset's rules exist or that it is closed."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO datasets (scope, name) VALUES (?, ?)", (scope, name))
            for key, value in flags.items():
                if key not in ("rules_done", "closed"):
                    raise JournalError(f"unknown dataset flag {key}")
                db.execute(f"UPDATE datasets SET {key} = ? WHERE scope = ? AND name = ?", (value, scope, name))


def is_live(entry: Entry) -> bool:
    """Whether the uploader still has work to do on this entry."""
    return entry.state not in TERMINAL
