"""Storage, Rucio and FTS down during ingest (real components stopped and restarted); safe local deletion."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cygno_dm.ingest.catalog import Catalog
from cygno_dm.ingest.states import State
from tests.ingest.conftest import DAQ, is_postgres, make_ingestor
from tests.ingest.helpers import run_file

pytestmark = pytest.mark.rucio
SCOPE = "cygno-data"


@contextmanager
def stopped(tb, name: str) -> Iterator[None]:
    """Stop one testbed component, and start it again whatever happens."""
    comp = next((c for c in tb.components() if c.name == name), None)
    if comp is None or tb.sup.pid(name) is None:
        pytest.skip(f"this testbed has no running component {name!r}")
    tb.sup.stop(name)
    try:
        yield
    finally:
        tb.sup.start(comp, tb.base_env())


def _landing(tb) -> str:
    return "CNAF_USERDISK" if "CNAF_USERDISK" in tb.profile.rses else next(iter(tb.profile.rses))


def _tape(tb) -> str | None:
    return next((n for n, r in tb.profile.rses.items() if r.kind == "tape"), None)


def test_storage_down_the_uploader_waits_then_resumes(daq_env, tmp_path):
    tb = daq_env
    rse = _landing(tb)
    kind = tb.profile.rses[rse].kind
    if kind == "posix":
        pytest.skip("the landing RSE is a local directory: it cannot go down")
    files = [run_file(tmp_path / "daq", r, size=3000, tag="MAN") for r in range(704000, 704004)]
    ing = make_ingestor(tb, tmp_path / "daq", tmp_path / "j.sqlite", rse=rse)
    with stopped(tb, f"{kind}-{rse}"):
        ing.run(once=True, max_idle=2)
        for e in ing.journal.entries():
            assert e.state == State.SCANNED and e.attempts >= 1 and "unavailable" in e.reason.lower()
    for e in ing.journal.entries():
        ing.journal.postpone(e, e.reason, 0)
    ing.run(once=True)
    assert ing.journal.counts() == {"ATTACHED": len(files)}
    assert len(list(tb.client(DAQ).list_dids(SCOPE, {"name": "MAN/run7040*"}, did_type="file"))) == len(files)


def test_rucio_server_down_the_uploader_waits_then_resumes(daq_env, tmp_path):
    tb = daq_env
    files = [run_file(tmp_path / "daq", r, size=3000, tag="MAN") for r in range(704100, 704104)]
    ing = make_ingestor(tb, tmp_path / "daq", tmp_path / "j.sqlite", rse=_landing(tb))
    with stopped(tb, "rucio-server"):
        ing.run(once=True, max_idle=2)
        for e in ing.journal.entries():
            assert e.state == State.SCANNED and "Rucio unavailable" in e.reason
    for e in ing.journal.entries():
        ing.journal.postpone(e, e.reason, 0)
    ing.run(once=True)
    assert ing.journal.counts() == {"ATTACHED": len(files)}
    assert len(list(tb.client(DAQ).list_dids(SCOPE, {"name": "MAN/run7041*"}, did_type="file"))) == len(files)


def _wait_until_deleted(ing, catalog, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ing.pass_once()
        for e in ing.journal.entries([State.SAFE, State.DELETED]):
            reps = catalog.replicas(e.scope, e.name)
            assert any(catalog.is_tape(r.rse) and r.state == "AVAILABLE" for r in reps), e.did
        if ing.journal.counts().get("DELETED", 0) == n:
            return
        time.sleep(1)
    raise AssertionError(f"not all deleted in {timeout}s: {ing.journal.counts()}")


def test_fts_down_nothing_is_deleted_until_the_tape_copy_is_archived(daq_env, tmp_path):
    tb = daq_env
    if not is_postgres(tb):
        pytest.skip("with FTS down the SQLite testbed's daemons hold the database for minutes; PostgreSQL only")
    tape = _tape(tb)
    if tape is None or not any(r.rse_expression == tape for r in tb.profile.replication.get("raw", [])):
        pytest.skip("this testbed profile replicates raw data to no tape RSE")
    files = [run_file(tmp_path / "daq", r, size=5000, tag="MAN") for r in range(704200, 704203)]
    ing = make_ingestor(tb, tmp_path / "daq", tmp_path / "j.sqlite", rse=_landing(tb))
    catalog = Catalog(lambda: tb.client(DAQ), DAQ)
    with stopped(tb, "fts"):
        ing.run(once=True)
        time.sleep(3)
        ing.pass_once()
        for e in ing.journal.entries():
            assert e.state == State.ATTACHED and "waiting for tape archive" in e.reason
        assert all(f.exists() for f in files)
    _wait_until_deleted(ing, catalog, len(files), timeout=240)
    assert not any(f.exists() for f in files)
    for e in ing.journal.entries():
        hist = [h["to_state"] for h in ing.journal.history(e.path)]
        assert hist.index("SAFE") < hist.index("DELETED")
