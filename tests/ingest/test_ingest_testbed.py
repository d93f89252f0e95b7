"""The uploader against the real Rucio testbed (SQLite and PostgreSQL): registration, datasets, rules, errors."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from cygno_dm.ingest import metrics
from cygno_dm.ingest.catalog import Catalog
from cygno_dm.ingest.checksums import scan
from cygno_dm.ingest.states import State
from cygno_dm.ingest.status import rows
from cygno_dm.ingest.stores import Stores
from tests.ingest.conftest import DAQ, is_postgres, make_ingestor
from tests.ingest.helpers import free_port, run_file

pytestmark = pytest.mark.rucio
SCOPE = "cygno-data"
NOTIFY = {"N": "NO", "Y": "YES", "C": "CLOSE", "P": "PROGRESS"}  # profile letter -> Rucio's rule field


def _runs(directory: Path, first: int, n: int, seed: int = 0) -> dict[int, Path]:
    rnd = random.Random(seed)
    files = {}
    for run in range(first, first + n):
        size = rnd.choice([300, 2_000, 20_000, 150_000]) if run % 50 else 2_000_000
        files[run] = run_file(directory, run, size=size, seed=run, tag="MAN")
        if run % 3 == 0:
            files[run].with_name(files[run].name + ".json").write_text(json.dumps({
                "run_number": run, "start_time": "2026-11-20T10:00:00", "stop_time": "2026-11-20T10:30:00",
                "number_of_events": run % 1000, "run_type": "physics", "storage_cloud_status": 0}))
    return files


def _tape_rse(tb) -> str | None:
    rules = {r.rse_expression for r in tb.profile.replication.get("raw", [])}
    return next((n for n, r in tb.profile.rses.items() if r.kind == "tape" and n in rules), None)


def test_runs_are_registered_once_replicated_and_deleted_only_when_safe(daq_env, tmp_path):
    tb = daq_env
    n = 200 if is_postgres(tb) else 40
    files = _runs(tmp_path / "daq", 700000, n)
    md5 = {run: scan(path).md5 for run, path in files.items()}
    ing = make_ingestor(tb, tmp_path / "daq", tmp_path / "journal.sqlite", delete_local=False)
    ing.run(once=True)
    states = ing.journal.counts()
    assert set(states) <= {"ATTACHED", "SAFE"} and sum(states.values()) == n, states
    steps = [(h["to_state"], h["detail"]) for e in ing.journal.entries() for h in ing.journal.history(e.path)]
    assert sum(1 for s, d in steps if s == "REGISTERED" and d.endswith("(bulk)")) == n  # Rucio's bulk calls

    client = tb.client(DAQ)
    names = {f"MAN/run{r}.mid.gz" for r in files}
    listed = [d for d in client.list_dids(SCOPE, {"name": "MAN/run700*"}, did_type="file")]
    assert sorted(listed) == sorted(names)  # each exactly once
    for run, path in files.items():
        name = f"MAN/run{run}.mid.gz"
        sums = scan(path)
        did = client.get_did(SCOPE, name)
        assert (did["bytes"], did["adler32"], did["md5"]) == (sums.size, sums.adler32, sums.md5)
        reps = list(client.list_replicas([{"scope": SCOPE, "name": name}], all_states=True))[0]
        assert reps["states"].get("CNAF_USERDISK") == "AVAILABLE"
        parents = [(p["scope"], p["name"]) for p in client.list_parent_dids(SCOPE, name)]
        assert parents == [(SCOPE, f"MAN/runs-{str(run)[:4]}xx")]
    meta = client.get_metadata(SCOPE, "MAN/run700001.mid.gz", plugin="ALL")
    assert meta["run_number"] == 700001
    meta = client.get_metadata(SCOPE, "MAN/run700002.mid.gz", plugin="ALL")  # this run has a DAQ sidecar
    assert (meta["run_number"], meta["number_of_events"], meta["run_type"]) == (700002, 2, "physics")
    assert meta["stop_time"].isoformat() == "2026-11-20T10:30:00"

    profile_rules = tb.profile.replication["raw"]
    datasets = {f"MAN/runs-{str(r)[:4]}xx" for r in files}

    def check_rules() -> None:
        for ds in datasets:
            rules = [r for r in client.list_did_rules(SCOPE, ds) if r["account"] == DAQ]
            assert sorted((r["rse_expression"], r["copies"], r["notification"]) for r in rules) == \
                sorted((p.rse_expression, p.copies, NOTIFY[p.notify]) for p in profile_rules)
            assert sum(1 for r in rules if r["expires_at"]) == sum(1 for p in profile_rules if p.lifetime_days)

    check_rules()
    assert client.get_did(SCOPE, "MAN/runs-7000xx")["open"] is (n < 100)
    assert all(p.exists() for p in files.values())
    text = generate_latest(metrics.REGISTRY).decode()
    assert "cygno_ingest_uploaded_bytes_total" in text and "cygno_ingest_oldest_unsafe_age_seconds" in text

    # The journal is lost: a new uploader reconciles with Rucio and the storage, duplicating nothing.
    again = make_ingestor(tb, tmp_path / "daq", tmp_path / "journal2.sqlite")
    again.run(once=True)
    assert sorted(client.list_dids(SCOPE, {"name": "MAN/run700*"}, did_type="file")) == sorted(names)
    check_rules()

    # Local copies go only once the tape copy is archived and a disk copy verified.
    catalog = Catalog(lambda: tb.client(DAQ), DAQ)
    tape = _tape_rse(tb)
    deadline = time.monotonic() + (300 if tape else 5)
    while time.monotonic() < deadline:
        again.pass_once()
        for e in again.journal.entries([State.SAFE, State.DELETED]):
            reps = catalog.replicas(e.scope, e.name)
            assert any(r.rse == tape and r.state == "AVAILABLE" for r in reps), e.did
            hist = [(h["to_state"], h["detail"]) for h in again.journal.history(e.path)]
            assert any(s == "SAFE" and d.startswith(f"archived on {tape}, verified on") for s, d in hist)
            # the landing copy was sent with its CRC32C: the site vouches for it, no read-back
            assert all("(storage full-object CRC32C)" in d for s, d in hist if "verified on CNAF_USERDISK" in d)
        if again.journal.counts().get("DELETED", 0) == n:
            break
        time.sleep(1)
    if tape:
        assert again.journal.counts() == {"DELETED": n}
        assert not any(p.exists() for p in files.values())
    else:
        assert all(p.exists() for p in files.values())
        assert all(r["waits_for"].startswith("waiting for tape archive") for r in rows(again.journal))

    # The landing copy is kept by the profile's dataset rule on the landing RSE, not by a rule per file.
    for run in (700001, 700000 + n - 1):
        assert list(client.list_did_rules(SCOPE, f"MAN/run{run}.mid.gz")) == []
        if tape:  # the judge has evaluated the dataset's rules by now (the tape copy is there)
            locks = {r["rse_expression"] for r in client.list_associated_rules_for_file(SCOPE, f"MAN/run{run}.mid.gz")}
            assert "CNAF_USERDISK" in locks, locks

    # A physicist downloads with the plain rucio CLI and gets the same bytes.
    rucio = str(Path(sys.executable).parent / "rucio")
    env = {**os.environ, **tb.env("alice")}
    for run in (700001, 700000 + n // 2, 700000 + n - 1):
        dest = tmp_path / "dl"
        res = subprocess.run([rucio, "download", "--rses", "CNAF_USERDISK", "--dir", str(dest),
                              f"{SCOPE}:MAN/run{run}.mid.gz"], env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        got = next(dest.rglob(f"run{run}.mid.gz"))
        assert hashlib.md5(got.read_bytes()).hexdigest() == md5[run]


def test_same_name_with_other_content_is_quarantined_and_never_overwritten(daq_env, tmp_path):
    tb = daq_env
    first = run_file(tmp_path / "a", 701000, size=5000, seed=1, tag="MAN")
    make_ingestor(tb, tmp_path / "a", tmp_path / "ja.sqlite").run(once=True)
    other = run_file(tmp_path / "b", 701000, size=5000, seed=2, tag="MAN")
    ing = make_ingestor(tb, tmp_path / "b", tmp_path / "jb.sqlite")
    ing.run(once=True)
    entry = ing.journal.entries()[0]
    assert entry.state == State.QUARANTINED and "same name, different content" in entry.reason
    assert not other.exists()
    report = json.loads(next((tmp_path / "b" / "MAN" / "quarantine").glob("*.quarantine.json")).read_text())
    assert report["did"] == f"{SCOPE}:MAN/run701000.mid.gz" and "different content" in report["reason"]
    did = tb.client(DAQ).get_did(SCOPE, "MAN/run701000.mid.gz")
    assert did["adler32"] == scan(first).adler32
    catalog = Catalog(lambda: tb.client(DAQ), DAQ)
    pfn = catalog.pfn("CNAF_USERDISK", SCOPE, "MAN/run701000.mid.gz")
    assert Stores(tb.profile).for_pfn("CNAF_USERDISK", pfn).adler32(pfn) == scan(first).adler32  # not overwritten


def test_corrupt_gzip_is_quarantined_and_never_registered(daq_env, tmp_path):
    tb = daq_env
    bad = run_file(tmp_path / "daq", 701100, size=20000, tag="MAN")
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    bad.with_name(bad.name + ".json").write_text(json.dumps({"run_number": 701100}))
    truncated = run_file(tmp_path / "daq", 701101, size=20000, tag="MAN")
    truncated.write_bytes(truncated.read_bytes()[:-100])
    ing = make_ingestor(tb, tmp_path / "daq", tmp_path / "j.sqlite")
    ing.run(once=True)
    by_run = {e.run: e for e in ing.journal.entries()}
    assert by_run[701100].state == State.QUARANTINED and "corrupt gzip" in by_run[701100].reason
    assert by_run[701101].state == State.SEEN and "not complete" in by_run[701101].reason  # DAQ may still write
    client = tb.client(DAQ)
    assert list(client.list_dids(SCOPE, {"name": "MAN/run7011*"}, did_type="file")) == []


def test_rucio_down_the_uploader_waits_then_resumes_without_duplicates(daq_env, tmp_path):
    tb = daq_env
    files = _runs(tmp_path / "daq", 701200, 6)
    dead = f"http://127.0.0.1:{free_port()}"

    def unreachable():
        from rucio.client import Client

        return Client(rucio_host=dead, auth_host=dead, account=DAQ, auth_type="userpass",
                      creds={"username": DAQ, "password": "x"}, ca_cert=False)

    down = make_ingestor(tb, tmp_path / "daq", tmp_path / "j.sqlite", client_factory=unreachable)
    down.run(once=True, max_idle=2)
    for e in down.journal.entries():
        assert e.state == State.SCANNED and "Rucio unavailable" in e.reason and e.attempts >= 1
    up = make_ingestor(tb, tmp_path / "daq", tmp_path / "j.sqlite")
    up.run(once=True)
    assert up.journal.counts() == {"ATTACHED": len(files)}
    client = tb.client(DAQ)
    assert len(list(client.list_dids(SCOPE, {"name": "MAN/run7012*"}, did_type="file"))) == len(files)


def test_run_log_end_of_run_gates_the_upload(daq_env, tmp_path):
    import sqlalchemy as sa

    tb = daq_env
    url = f"sqlite:///{tmp_path / 'runlog.db'}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql("CREATE TABLE Runlog (run_number INTEGER PRIMARY KEY, stop_time TEXT, "
                          "number_of_events INTEGER, file_checksum TEXT)")
        c.exec_driver_sql("INSERT INTO Runlog VALUES (701300, NULL, 10, NULL)")
    path = run_file(tmp_path / "daq", 701300, size=3000, tag="MAN")
    from cygno_dm.ingest.runlog import RunLog

    ing = make_ingestor(tb, tmp_path / "daq", tmp_path / "j.sqlite")
    ing.p.runlog = RunLog(url)
    ing.run(once=True)
    assert ing.journal.entries()[0].state == State.SEEN
    assert "run still open" in ing.journal.entries()[0].reason
    with eng.begin() as c:
        c.exec_driver_sql("UPDATE Runlog SET stop_time = '2026-11-25T10:00:00', file_checksum = :m "
                          "WHERE run_number = 701300", {"m": scan(path).md5})
    ing.journal.postpone(ing.journal.entries()[0], "", 0)
    ing.run(once=True)
    entry = ing.journal.entries()[0]
    assert entry.state == State.ATTACHED and entry.meta["number_of_events"] == 10


def test_a_landing_rse_without_a_lasting_profile_rule_gets_a_landing_rule_per_file(daq_env, tmp_path):
    tb = daq_env
    rse = next((r.rse_expression for r in tb.profile.replication["raw"] if r.lifetime_days
                and tb.profile.rses.get(r.rse_expression) and tb.profile.rses[r.rse_expression].kind != "tape"), None)
    if rse is None:
        pytest.skip("the profile has no disk rule with a lifetime to land on")
    files = [run_file(tmp_path / "daq", r, size=3000, tag="MAN") for r in range(706200, 706203)]
    ing = make_ingestor(tb, tmp_path / "daq", tmp_path / "j.sqlite", rse=rse, delete_local=False)
    ing.run(once=True)
    assert ing.journal.counts() == {"ATTACHED": len(files)}
    for path in files:  # the dataset rule on this RSE expires: each file keeps its own landing rule
        rules = list(tb.client(DAQ).list_did_rules(SCOPE, f"MAN/{path.name}"))
        assert [(r["rse_expression"], r["account"]) for r in rules] == [(rse, DAQ)]
        assert rules[0]["expires_at"] is not None
