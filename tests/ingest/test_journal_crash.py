"""SIGKILL the journal/state machine at random points, many times, with two processes on one directory."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

from cygno_dm.ingest.checksums import scan
from cygno_dm.ingest.journal import Journal
from cygno_dm.ingest.states import State
from tests.ingest.helpers import run_file

KILLS = 40
FILES = 80


def _driver(tmp_path, journal):
    return subprocess.Popen([sys.executable, "-m", "tests.ingest.journal_driver", str(tmp_path / "daq"),
                             str(journal), str(tmp_path / "store"), str(tmp_path / "ledger.sqlite")],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "driver.log", "ab"))


def test_journal_survives_sigkills_and_every_side_effect_happens_once(tmp_path):
    rnd = random.Random(3)
    files = [run_file(tmp_path / "daq", r, size=rnd.choice([2000, 300_000, 1_000_000]), tag=None)
             for r in range(10000, 10000 + FILES)]
    journals = [tmp_path / "a.sqlite", tmp_path / "b.sqlite"]
    kills = 0

    def transitions(j) -> int:
        return Journal(j)._db().execute("SELECT COUNT(*) FROM history").fetchone()[0] if j.exists() else 0

    def done() -> bool:
        return all(j.exists() and Journal(j).counts().get("DESCRIBED", 0) == FILES for j in journals)

    while not done():  # kill each driver after a random number of journal transitions: mid-work, by progress
        procs = [(j, _driver(tmp_path, j), transitions(j) + rnd.randint(1, 12)) for j in journals]
        while any(p.poll() is None for _, p, _ in procs):
            for j, p, target in procs:
                if p.poll() is None and transitions(j) >= target:
                    os.kill(p.pid, signal.SIGKILL)
                    kills += 1
                    p.wait()
            time.sleep(0.005)
    for j in journals:
        assert _driver(tmp_path, j).wait(timeout=300) == 0, (tmp_path / "driver.log").read_text()[-3000:]

    ledger = sqlite3.connect(tmp_path / "ledger.sqlite")
    rows = dict(ledger.execute("SELECT name, adler32 FROM reg").fetchall())
    assert len(rows) == FILES
    for f in files:
        stored = tmp_path / "store" / "cygno-data" / "MAN" / f.name
        assert scan(stored).adler32 == scan(f).adler32 == rows[f"MAN/{f.name}"]
    assert not list((tmp_path / "store").rglob(".*.part-*")), "temporary upload files left behind"
    for j in journals:
        journal = Journal(j)
        assert journal._db().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert journal.counts() == {"DESCRIBED": FILES}
        for e in journal.entries():
            hist = [h["to_state"] for h in journal.history(e.path)]
            order = [State.SEEN, State.SCANNED, State.UPLOADED, State.REGISTERED, State.DESCRIBED]
            assert hist == [s.value for s in order]  # each transition exactly once, in order
    assert kills >= KILLS
