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


def test_the_staging_window_is_never_overfilled_by_concurrent_daemons(url: str) -> None:
    store = Store(url)
    dids = [f"cygno-data:LNF/run0{n}.mid.gz" for n in range(1000, 1010)]
    assert store.take_slot(dids[0], "c", 100) == (None, None), "no window set: no staging"
    store.set_window("c", 3, None)
    daemons = [Store(url) for _ in range(6)]  # six daemons, each wanting every run staged, at once
    barrier = threading.Barrier(len(daemons))

    def take(i: int) -> list[str]:
        barrier.wait()
        return [did for did in dids if daemons[i].take_slot(did, "c", 100)[0] is not None]

    with ThreadPoolExecutor(len(daemons)) as pool:
        taken = list(pool.map(take, range(len(daemons))))
    held = {s.did for s in store.slots("c")}
    assert len(held) == 3 and all(set(t) <= held for t in taken), (held, taken)
    window = store.window("c")
    assert (window.used_runs, window.used_bytes, window.describe()) == (3, 300, "3/3 runs, 300 bytes")
    slot, _ = store.take_slot(sorted(held)[0], "c", 100)
    assert slot is not None and slot.rule_id is None, "a held slot is given back to its run, not taken twice"
    assert store.set_slot_rule(slot.did, "c", "rule1") and store.slot(slot.did, "c").rule_id == "rule1"
    assert store.free_slot(slot.did, "c") and not store.free_slot(slot.did, "c")
    free = next(d for d in dids if d not in held)
    assert store.take_slot(free, "c", 100)[0] is not None, "a released slot slides the window"

    store.set_window("c", 10, 450)  # a byte bound too: 300 + 100 fits, then 400 + 100 does not
    assert store.take_slot("cygno-data:LNF/run09998.mid.gz", "c", 100)[0] is not None
    assert store.take_slot("cygno-data:LNF/run09999.mid.gz", "c", 100) == (None, store.window("c"))
    store.set_window("c", 10, 10)
    for s in store.slots("c"):
        store.free_slot(s.did, "c")
    assert store.take_slot(free, "c", 50)[0] is not None, "a run larger than the byte bound goes alone"
    assert store.take_slot(dids[-1], "c", 1)[0] is None
