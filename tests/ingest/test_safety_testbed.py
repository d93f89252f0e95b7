"""Local deletion on the real testbed: never on the catalogue's word alone, and a re-used run number is caught."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cygno_dm.ingest.checksums import scan
from cygno_dm.ingest.states import State
from cygno_dm.ingest.status import rows
from cygno_dm.ingest.stores import Stores
from cygno_dm.ingest.tape import TapeRest
from tests.ingest.conftest import DAQ, make_ingestor
from tests.ingest.helpers import run_file

pytestmark = pytest.mark.rucio
SCOPE = "cygno-data"


def _tape(tb) -> str:
    return next(name for name, rse in tb.profile.rses.items() if rse.kind == "tape")


def _until(ing, state: State, path: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ing.pass_once()
        entry = ing.journal.get(str(path))
        if entry is not None and entry.state == state:
            return
        time.sleep(0.5)
    raise AssertionError(f"{path} did not reach {state}: {ing.journal.get(str(path))}")


def test_a_forged_tape_replica_never_leads_to_a_local_deletion(daq_env, tmp_path):
    tb, tape = daq_env, _tape(daq_env)
    path = run_file(tmp_path / "daq", 705000, size=6000, tag="MAN").resolve()
    sums = scan(path)
    ing = make_ingestor(tb, tmp_path / "daq", tmp_path / "j.sqlite")
    ing.discover()
    entry = ing.p.run_entry(ing.journal.get(str(path)), until=State.REGISTERED)
    assert entry.state == State.REGISTERED
    # Someone with the rights to do it registers the tape copy with the right size and checksum, and no bytes.
    root = tb.client("root")
    root.add_replica(tape, SCOPE, entry.name, sums.size, sums.adler32, md5=sums.md5)
    ing.run(once=True)  # attaches: the DAQ's tape rule is satisfied at once by the forged replica
    tape_rules = [r for r in root.list_did_rules(SCOPE, entry.dataset) if r["rse_expression"] == tape]
    assert [r["state"] for r in tape_rules] == ["OK"]  # Rucio believes the forgery
    for _ in range(10):
        ing.pass_once()
        time.sleep(0.5)
    entry = ing.journal.get(str(path))
    assert path.exists() and entry.state == State.ATTACHED
    assert f"tape replica on {tape}: the tape endpoint reports ERROR" in entry.reason, entry.reason

    # The forger also writes other bytes of the same size at the tape path; they reach tape, and still
    # the uploader keeps its file, saying why.
    pfn = ing.p.catalog.pfn(tape, SCOPE, entry.name, operation="read")
    fake = tmp_path / "fake.mid.gz"
    fake.write_bytes(os.urandom(sums.size))
    Stores(tb.profile).for_pfn(tape, pfn).put(fake, pfn, scan(fake, gzip=False))
    tape_rest = TapeRest(verify=str(tb.ca_dir))
    deadline = time.monotonic() + 60
    while tape_rest.locality(pfn) not in ("TAPE", "DISK_AND_TAPE") and time.monotonic() < deadline:
        time.sleep(0.5)
    ing.journal.postpone(entry, entry.reason, 0)
    ing.pass_once()
    entry = ing.journal.get(str(path))
    assert path.exists() and entry.state == State.ATTACHED
    assert f"the tape endpoint has adler32 {scan(fake, gzip=False).adler32}" in entry.reason, entry.reason
    assert [r["waits_for"] for r in rows(ing.journal)] == [entry.reason]

    # `ingest run --once` says the file still waits, and for what, with exit code 3.
    env = {**os.environ, **tb.env(DAQ)}
    cli = subprocess.run([str(Path(sys.executable).with_name("cygno-dm")), "ingest", "run", "--once", "--watch",
                          str(tmp_path / "daq"), "--rse", "CNAF_USERDISK", "--journal", str(tmp_path / "cli.sqlite"),
                          "--settle", "0", "--safety-poll", "0.5"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert cli.returncode == 3, cli.stdout + cli.stderr[-3000:]
    assert cli.stdout.strip().splitlines()[-1] == \
        "ingest --once: 1 file(s) still wait: 1 for tape archive confirmation and a verified disk replica"
    assert path.exists()


def test_a_reused_run_number_is_checked_again_and_quarantined_if_it_differs(daq_env, tmp_path):
    tb = daq_env
    path = run_file(tmp_path / "daq", 705100, size=5000, seed=1, tag="MAN").resolve()
    original = path.read_bytes()
    ing = make_ingestor(tb, tmp_path / "daq", tmp_path / "j.sqlite")
    _until(ing, State.DELETED, path)
    assert not path.exists()

    path.write_bytes(original)  # the same run restored by an operator: checked again, deleted again
    _until(ing, State.DELETED, path)
    assert not path.exists()
    assert sum(h["detail"] == "a new file appeared at the path of a deleted run"
               for h in ing.journal.history(str(path))) == 1

    run_file(tmp_path / "daq", 705100, size=5000, seed=2, tag="MAN")  # the DAQ re-used the run number
    ing.run(once=True)
    entry = ing.journal.get(str(path))
    assert entry.state == State.QUARANTINED and "same name, different content" in entry.reason
    assert not path.exists()
    report = json.loads(next((tmp_path / "daq" / "MAN" / "quarantine").glob("*.quarantine.json")).read_text())
    assert report["did"] == f"{SCOPE}:MAN/run705100.mid.gz" and "different content" in report["reason"]
    assert tb.client(DAQ).get_did(SCOPE, "MAN/run705100.mid.gz")["adler32"] == scan_bytes(original)


def scan_bytes(data: bytes) -> str:
    """adler32 (8 hex digits) of bytes, as Rucio stores it."""
    import zlib

    return f"{zlib.adler32(data):08x}"
