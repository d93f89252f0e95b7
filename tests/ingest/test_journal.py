"""The SQLite journal: transitions, uniqueness, waiting, quarantine, datasets."""

from __future__ import annotations

import time

import pytest

from cygno_dm.ingest.journal import Entry, Journal, JournalError
from cygno_dm.ingest.states import State


def _entry(path: str = "/daq/LNGS/run12345.mid.gz", name: str = "LNGS/run12345.mid.gz") -> Entry:
    return Entry(path=path, scope="cygno-data", name=name, dataset="LNGS/runs-123xx", run=12345, state=State.SEEN)


def test_add_is_idempotent_and_advance_records_history(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    e = j.add(_entry())
    assert j.add(_entry()).state == State.SEEN
    e = j.advance(e, State.SCANNED, "sums", size=10, adler32="00000001", md5="x" * 32, crc32c="0")
    assert (e.state, e.size) == (State.SCANNED, 10)
    assert [h["to_state"] for h in j.history(e.path)] == ["SEEN", "SCANNED"]


def test_a_stale_entry_cannot_be_advanced_twice(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    e = j.add(_entry())
    j.advance(e, State.SCANNED)
    with pytest.raises(JournalError, match="moved"):
        j.advance(e, State.SCANNED)


def test_one_live_path_per_did(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.add(_entry())
    with pytest.raises(JournalError, match="already journaled"):
        j.add(_entry(path="/daq2/LNGS/run12345.mid.gz"))
    other = _entry(path="/daq2/LNGS/run12345.mid.gz")
    other.state = State.QUARANTINED
    assert j.add(other).state == State.QUARANTINED


def test_postpone_sets_reason_and_next_try_and_due_respects_it(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    e = j.add(_entry())
    j.postpone(e, "Rucio down", 100, failure=True)
    got = j.get(e.path)
    assert got.reason == "Rucio down" and got.attempts == 1
    assert j.due() == []
    assert j.due(time.time() + 200)[0].path == e.path
    assert j.next_due() > time.time()


def test_quarantine_is_terminal_and_frees_the_did(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    e = j.add(_entry())
    j.quarantine(e, "corrupt gzip")
    assert j.get(e.path).state == State.QUARANTINED and j.due(time.time() + 10) == []
    assert j.by_did("cygno-data", e.name) is None
    assert j.counts() == {"QUARANTINED": 1}


def test_dataset_flags(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    assert j.dataset("cygno-data", "LNGS/runs-123xx") == {"rules_done": 0, "closed": 0}
    j.mark_dataset("cygno-data", "LNGS/runs-123xx", rules_done=1)
    j.mark_dataset("cygno-data", "LNGS/runs-123xx", closed=1)
    assert j.dataset("cygno-data", "LNGS/runs-123xx") == {"rules_done": 1, "closed": 1}
    with pytest.raises(JournalError):
        j.mark_dataset("cygno-data", "x", bogus=1)


def test_entries_sort_runs_numerically(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    for run in (100000, 99999, 100001):
        e = _entry(f"/d/LNGS/run{run}.mid.gz", f"LNGS/run{run}.mid.gz")
        e.run = run
        j.add(e)
    assert [e.run for e in j.entries()] == [99999, 100000, 100001]
