"""Make Rucio's SQLite engine safe for the testbed's two writers (server and daemon runner).

SQLite's deferred transactions fail at once with "database is locked" when a reader upgrades to a writer
after the other process wrote; no busy timeout helps there. So each thread's outermost transaction starts
with BEGIN IMMEDIATE (writers queue up behind a one-minute busy timeout), while a transaction opened inside
it on another connection, as Rucio does when list_replicas signs URLs while streaming, stays deferred: under
WAL it reads without waiting for the lock its own thread holds. Imported by the server (gunicorn config)
and the daemon runner; it changes nothing for other databases.
"""

from __future__ import annotations

import sqlite3
import threading

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

BUSY_TIMEOUT_MS = 60_000
_open = threading.local()  # SQLite transactions this thread has open, across connections


def _depth() -> int:
    return getattr(_open, "depth", 0)


@event.listens_for(Engine, "connect")
def _on_connect(dbapi_connection: object, _record: object) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


@event.listens_for(Engine, "begin")
def _on_begin(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _depth() == 0 else "BEGIN")
        _open.depth = _depth() + 1


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _on_end(conn: Connection) -> None:
    if conn.dialect.name == "sqlite" and _depth() > 0:
        _open.depth = _depth() - 1
