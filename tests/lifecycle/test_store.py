"""The lifecycle state store on SQLite and PostgreSQL: one row per (run, campaign), claims that exactly one of many
concurrent claimers wins, bounded retries, leases of dead daemons taken back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lifecycle.store import DONE, FAILED, RUNNING, SEEN, SUBMITTED, WAITING, Store, StoreError, database_url
from tests.conftest import scratch_postgres_database

DID = "cygno-data:LNF/run01001.mid.gz"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield database_url(None, tmp_path)
        return
    with scratch_postgres_database("cygno_lifecycle", tmp_path) as url:
        yield url


def test_claims_are_exactly_once_across_daemons_and_duplicate_sightings(url: str) -> None:
    store = Store(url)
    assert store.see("c1", [(DID, 1001, False)]) == [DID]
    assert store.see("c1", [(DID, 1001, False)]) == [], "a duplicate sighting adds nothing"
    assert store.see("c2", [(DID, 1001, False)]) == [DID], "another campaign is another row"
    daemons = [Store(url) for _ in range(6)]  # six daemons, each with its own connections, claim at once
    barrier = threading.Barrier(len(daemons))

    def claim(i: int) -> bool:
        barrier.wait()
        return daemons[i].claim(DID, "c1", f"d{i}", lease=60)

    with ThreadPoolExecutor(len(daemons)) as pool:
        wins = list(pool.map(claim, range(len(daemons))))
    assert sorted(wins) == [False] * 5 + [True]
    run = store.get(DID, "c1")
    assert (run.state, run.attempts) == (SUBMITTED, 1)
    assert store.get(DID, "c2").state == SEEN


def test_failures_are_retried_then_failed_with_the_reason(url: str) -> None:
    store = Store(url)
    store.see("c", [(DID, 1001, False)])
    for attempt in (1, 2):
        assert store.claim(DID, "c", "me", 60) and store.running(DID, "c", "me")
        assert store.attempt_failed(DID, "c", "other", "not mine", 2) is None, "only the holder reports"
        state = store.attempt_failed(DID, "c", "me", f"corrupt (attempt {attempt})", max_attempts=2)
        assert state == (SEEN if attempt == 1 else FAILED)
    run = store.get(DID, "c")
    assert (run.state, run.attempts, run.reason) == (FAILED, 2, "corrupt (attempt 2)")
    assert not store.claim(DID, "c", "me", 60), "a failed run is not taken again"
    assert store.counts("c") == {"seen": 0, "waiting": 0, "submitted": 0, "running": 0, "done": 0, "failed": 1,
                                 "cancelled": 0}


def test_outages_do_not_count_and_done_is_final(url: str) -> None:
    store = Store(url)
    store.see("c", [(DID, 1001, False)])
    assert store.wait(DID, "c", "pedestal") and store.get(DID, "c").waiting_for == "pedestal"
    assert store.claim(DID, "c", "me", 60)
    assert store.release(DID, "c", "me", "Rucio: connection refused")
    run = store.get(DID, "c")
    assert (run.state, run.attempts, run.waiting_for) == (WAITING, 0, "Rucio: connection refused")
    assert store.claim(DID, "c", "me", 60) and store.running(DID, "c", "me")
    assert store.done(DID, "c", "cygno-analysis:RECO/x/LNF/run01001_reco.h5", "me")
    assert not store.claim(DID, "c", "me", 60) and not store.wait(DID, "c", "x")
    assert store.get(DID, "c").state == DONE


def test_a_dead_daemons_runs_come_back_after_its_lease(url: str) -> None:
    store = Store(url)
    store.see("c", [(DID, 1001, False), ("cygno-data:LNF/run01002.mid.gz", 1002, False)])
    assert store.claim(DID, "c", "dead", lease=0.5) and store.running(DID, "c", "dead")
    assert store.claim("cygno-data:LNF/run01002.mid.gz", "c", "alive", lease=0.5)
    assert store.reclaim_expired("c") == []
    time.sleep(0.7)
    store.renew("alive", 60)
    assert store.reclaim_expired("c") == [DID]
    assert store.get(DID, "c").state == SEEN and store.get("cygno-data:LNF/run01002.mid.gz", "c").state == SUBMITTED
    assert not store.running(DID, "c", "dead"), "the dead daemon's late report changes nothing"
    assert store.get(DID, "c").state != RUNNING


def test_pedestal_runs_come_first(tmp_path: Path) -> None:
    store = Store(database_url(None, tmp_path))
    store.see("c", [("s:LNF/run00003.mid.gz", 3, False), ("s:LNF/run00005.mid.gz", 5, True),
                    ("s:LNF/run00001.mid.gz", 1, False)])
    assert [r.did for r in store.runs("c")] == ["s:LNF/run00005.mid.gz", "s:LNF/run00001.mid.gz",
                                                "s:LNF/run00003.mid.gz"]


def test_a_bad_database_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="--database: 'mysql://x' must be a sqlite:/// or postgresql:// URL"):
        database_url("mysql://x", tmp_path)
    with pytest.raises(StoreError, match="cannot use"):
        Store("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
