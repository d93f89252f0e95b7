"""SIGKILL two uploaders on one directory at random points, over and over: every run ends registered once. The
uploaders reach the storage on the DAQ robot client's tokens (STS keys for S3), with no static key nor certificate."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from cygno_dm.ingest.catalog import Catalog
from cygno_dm.ingest.checksums import scan
from cygno_dm.ingest.journal import Journal
from cygno_dm.ingest.states import State
from cygno_dm.ingest.stores import Stores
from tests.ingest.conftest import DAQ, is_postgres
from tests.ingest.helpers import run_file

pytestmark = pytest.mark.rucio
SCOPE = "cygno-data"
FILES = 100
FIRST_RUN = 702000
KILLS = 30


def _uploader(tb, watch, journal, log) -> subprocess.Popen:
    env = {**os.environ, **tb.env(DAQ), "CYGNO_DM_LOGLEVEL": "INFO"}
    env.pop("X509_USER_PROXY")  # no certificate: storage access from tokens only
    argv = [sys.executable, "-m", "cygno_dm.ingest", "run", "--watch", str(watch), "--journal", str(journal),
            "--rse", "CNAF_USERDISK", "--account", DAQ, "--settle", "0", "--poll", "0.2", "--safety-poll", "2",
            "--workers", "2", "--part-size-mb", "5", "--once", "--storage-token", f"file:{tb.robot_token_file(DAQ)}"]
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_sigkill_at_random_points_never_duplicates_or_loses_a_run(daq_env, tmp_path):
    tb = daq_env
    if not is_postgres(tb):
        pytest.skip("Rucio on SQLite takes one writer at a time; the crash test runs on PostgreSQL")
    rnd = random.Random(6)
    files = {run: run_file(tmp_path / "daq", run, size=rnd.choice([500, 5_000, 60_000]), tag="MAN")
             for run in range(FIRST_RUN, FIRST_RUN + FILES)}
    journals = [tmp_path / "a.sqlite", tmp_path / "b.sqlite"]
    kills = 0
    with open(tmp_path / "uploaders.log", "ab") as log:
        for _ in range(4 * KILLS):
            if kills >= KILLS:
                break
            procs = [_uploader(tb, tmp_path / "daq", j, log) for j in journals]
            time.sleep(rnd.uniform(0.8, 4.0))
            for p in procs:
                if p.poll() is None:
                    os.kill(p.pid, signal.SIGKILL)
                    kills += 1
                p.wait()
        for j in journals:  # restart each for good, one after the other
            p = _uploader(tb, tmp_path / "daq", j, log)
            assert p.wait(timeout=600) in (0, 3)  # 3: files still wait for the tape archive
    assert kills >= KILLS, f"only {kills} kills landed while an uploader was running"
    assert f"for sub={DAQ} " in tb.sup.log_file("s3-CNAF_USERDISK").read_text()  # the site's STS gave the keys
    assert "eyJ" not in (tmp_path / "uploaders.log").read_text(errors="replace")  # no JWT (header.claims.signature)

    client = tb.client(DAQ)
    names = sorted(f"MAN/run{r}.mid.gz" for r in files)
    assert sorted(client.list_dids(SCOPE, {"name": f"MAN/run{str(FIRST_RUN)[:3]}*"}, did_type="file")) == names
    catalog = Catalog(lambda: client, DAQ)
    stores = Stores(tb.profile)
    for run, path in files.items():
        name = f"MAN/run{run}.mid.gz"
        did = client.get_did(SCOPE, name)
        for rep in catalog.replicas(SCOPE, name):  # no replica without bytes
            if rep.state == "AVAILABLE" and not catalog.is_tape(rep.rse):
                assert stores.for_pfn(rep.rse, rep.pfn).adler32(rep.pfn) == did["adler32"], (name, rep.rse)
        assert [p["name"] for p in client.list_parent_dids(SCOPE, name)] == [f"MAN/runs-{str(run)[:4]}xx"]
        hists = [[h["to_state"] for h in Journal(j).history(str(path.resolve()))] for j in journals]
        if path.exists():
            assert scan(path).adler32 == did["adler32"]
        else:  # deleted only by an uploader whose cleanup rule said SAFE first
            assert any("SAFE" in h and h.index("SAFE") < h.index("DELETED") for h in hists), hists
            assert any(catalog.is_tape(r.rse) and r.state == "AVAILABLE" for r in catalog.replicas(SCOPE, name))
    for jpath in journals:
        states = {e.state for e in Journal(jpath).entries()}
        assert states <= {State.ATTACHED, State.SAFE, State.DELETED}
    for ds in {f"MAN/runs-{str(r)[:4]}xx" for r in files}:
        rules = [r for r in client.list_did_rules(SCOPE, ds) if r["account"] == DAQ]
        assert len(rules) == len(tb.profile.replication["raw"])  # created once, despite the kills
