"""A child process for the journal crash test: drive files through journal states with real side effects.

Each file goes SEEN → SCANNED (checksums) → UPLOADED (PosixStorage put, never overwriting) → REGISTERED
(a ledger row, idempotent by key) → DESCRIBED, under the per-file lock, exactly as the pipeline orders them.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

from cygno_dm.ingest.checksums import scan
from cygno_dm.ingest.journal import Entry, Journal
from cygno_dm.ingest.locks import FileLock
from cygno_dm.ingest.states import State
from cygno_dm.ingest.storage import ObjectExists, PosixStorage
from cygno_dm.ingest.stores import differs

STEP_PAUSE = 0.005


def main(daq: Path, journal_path: Path, store_dir: Path, ledger_path: Path) -> None:
    """Process every run file in `daq` as far as DESCRIBED."""
    journal = Journal(journal_path)
    store = PosixStorage()
    ledger = sqlite3.connect(ledger_path, isolation_level=None, timeout=60)
    ledger.execute("CREATE TABLE IF NOT EXISTS reg (name TEXT PRIMARY KEY, adler32 TEXT, n INTEGER)")
    for path in sorted(daq.glob("run*.mid.gz")):
        name = f"MAN/{path.name}"
        if journal.get(str(path)) is None:
            journal.add(Entry(str(path), "cygno-data", name, "MAN/runs-x", int(path.name[3:8]), State.SEEN))
    for entry in journal.entries():
        lock = FileLock(Path(entry.path))
        if not lock.acquire():
            continue
        try:
            e = journal.get(entry.path)
            pfn = f"file://{store_dir}/cygno-data/{e.name}"
            while e.state != State.DESCRIBED:
                time.sleep(STEP_PAUSE)  # widen the windows between side effect and journal update
                if e.state == State.SEEN:
                    e = journal.advance(e, State.SCANNED, **scan(Path(e.path)).as_dict())
                elif e.state == State.SCANNED:
                    sums = scan(Path(e.path))
                    try:
                        store.put(Path(e.path), pfn, sums)
                    except ObjectExists:
                        assert differs(store, pfn, store.stat(pfn), Path(e.path), sums) is None
                    e = journal.advance(e, State.UPLOADED, rse="STORE", pfn=pfn)
                elif e.state == State.UPLOADED:
                    assert store.stat(pfn) is not None  # never register without bytes
                    ledger.execute("INSERT INTO reg VALUES (?, ?, 1) ON CONFLICT(name) DO UPDATE SET n = n",
                                   (e.name, e.adler32))
                    e = journal.advance(e, State.REGISTERED)
                elif e.state == State.REGISTERED:
                    e = journal.advance(e, State.DESCRIBED)
        finally:
            lock.release()


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:5]))
