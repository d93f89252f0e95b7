"""Discovery and the readiness step (SEEN → SCANNED) on real files: settle, gzip, sidecar, run log."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from click.testing import CliRunner

from cygno_dm.ingest.catalog import Catalog
from cygno_dm.ingest.checksums import scan
from cygno_dm.ingest.cli import ingest
from cygno_dm.ingest.config import IngestConfig
from cygno_dm.ingest.discovery import Found, Refused, WatchDir, find, settled
from cygno_dm.ingest.journal import Journal
from cygno_dm.ingest.pipeline import Pipeline
from cygno_dm.ingest.runner import Ingestor
from cygno_dm.ingest.states import State
from cygno_dm.profile import load_profile
from tests.ingest.helpers import run_file

PROFILE = load_profile("cygno-testbed")


def _no_rucio():
    raise AssertionError("this step must not need Rucio")


def _ingestor(tmp_path: Path, settle: float = 0, **kw) -> Ingestor:
    cfg = IngestConfig(watch=[WatchDir(tmp_path / "daq")], rse="CNAF_USERDISK", scope="cygno-data",
                       account="rucio-daq", journal=tmp_path / "j.sqlite", settle=settle, **kw)
    return Ingestor(Pipeline(PROFILE, cfg, Journal(cfg.journal), Catalog(_no_rucio, "rucio-daq")))


def _ready(ing: Ingestor) -> dict[int, object]:
    ing.discover()
    for e in ing.journal.entries():
        ing.p.step(e)
    return {e.run: e for e in ing.journal.entries()}


def test_find_tag_directories_and_tag_given_directories(tmp_path):
    run_file(tmp_path / "a", 12345, tag="LNGS")
    run_file(tmp_path / "a", 12346, tag="LNF")
    run_file(tmp_path / "b", 22222, tag=None)
    (tmp_path / "a" / "LNGS" / ".run12347.mid.gz").write_bytes(b"x")  # temporary name of a DAQ writer
    (tmp_path / "a" / "LNGS" / "run12.mid.gz").write_bytes(b"x")  # too few digits
    seen = list(find(PROFILE, [WatchDir(tmp_path / "a"), WatchDir.parse(f"MAN={tmp_path/'b'}")]))
    found = sorted(f.run.name for f in seen if isinstance(f, Found))
    assert found == ["LNF/run12346.mid.gz", "LNGS/run12345.mid.gz", "MAN/run22222.mid.gz"]
    assert [f.path.name for f in seen if isinstance(f, Refused)] == ["run12.mid.gz"]


def test_settled_needs_the_same_size_twice_and_quiet_time():
    now = time.time()
    assert not settled(None, 10, now - 100, 30, now)
    assert not settled(9, 10, now - 100, 30, now)
    assert not settled(10, 10, now - 5, 30, now)
    assert settled(10, 10, now - 31, 30, now)
    assert settled(None, 10, now, 0, now)


def test_a_growing_file_waits_then_is_scanned_once_stable(tmp_path):
    path = run_file(tmp_path / "daq", 12345)
    old = time.time() - 100
    os.utime(path, (old, old))
    ing = _ingestor(tmp_path, settle=30)
    entry = _ready(ing)[12345]
    assert entry.state == State.SEEN and "size not yet stable" in entry.reason
    ing.journal.postpone(entry, "", 0)
    entry = _ready(ing)[12345]
    assert entry.state == State.SCANNED
    assert (entry.adler32, entry.md5, entry.crc32c) == (scan(path).adler32, scan(path).md5, scan(path).crc32c)


def test_truncated_gzip_waits_without_sidecar_and_is_quarantined_with_one(tmp_path):
    a = run_file(tmp_path / "daq", 12345, size=50_000)
    b = run_file(tmp_path / "daq", 12346, size=50_000)
    for p in (a, b):
        p.write_bytes(p.read_bytes()[:-20])
    b.with_name(b.name + ".json").write_text(json.dumps({"run_number": 12346}))
    states = _ready(_ingestor(tmp_path))
    assert states[12345].state == State.SEEN and "not complete" in states[12345].reason
    assert states[12346].state == State.QUARANTINED and "ends early" in states[12346].reason
    qdir = tmp_path / "daq" / "LNGS" / "quarantine"
    assert (qdir / b.name).exists() and (qdir / (b.name + ".json")).exists()
    report = json.loads((qdir / (b.name + ".quarantine.json")).read_text())
    assert report["did"] == "cygno-data:LNGS/run12346.mid.gz" and "gzip" in report["reason"]


def test_stale_truncated_gzip_is_quarantined(tmp_path):
    a = run_file(tmp_path / "daq", 12345, size=50_000)
    a.write_bytes(a.read_bytes()[:-20])
    old = time.time() - 10_000
    os.utime(a, (old, old))
    assert _ready(_ingestor(tmp_path, stale=3600))[12345].state == State.QUARANTINED


def test_sidecar_checksum_mismatch_is_quarantined_and_match_gives_metadata(tmp_path):
    good = run_file(tmp_path / "daq", 12345)
    bad = run_file(tmp_path / "daq", 12346)
    good.with_name(good.name + ".json").write_text(json.dumps(
        {"run_number": 12345, "file_checksum": scan(good).md5, "number_of_events": 7, "run_type": "ped",
         "storage_tape_status": 0}))
    bad.with_name(bad.name + ".json").write_text(json.dumps({"run_number": 12346, "file_checksum": "0" * 32}))
    states = _ready(_ingestor(tmp_path))
    assert states[12345].state == State.SCANNED
    assert states[12345].meta == {"run_number": 12345, "number_of_events": 7, "run_type": "ped"}
    assert states[12346].state == State.QUARANTINED and "run log says md5" in states[12346].reason


def test_bad_sidecar_json_is_quarantined(tmp_path):
    p = run_file(tmp_path / "daq", 12345)
    p.with_name(p.name + ".json").write_text("{not json")
    assert _ready(_ingestor(tmp_path))[12345].state == State.QUARANTINED


def test_status_cli_says_where_each_run_is_and_what_it_waits_for(tmp_path):
    good = run_file(tmp_path / "daq", 12345)
    bad = run_file(tmp_path / "daq", 12346)
    bad.write_bytes(b"\x1f\x8b garbage")
    bad.with_name(bad.name + ".json").write_text("{}")
    _ready(_ingestor(tmp_path))
    res = CliRunner().invoke(ingest, ["status", "--journal", str(tmp_path / "j.sqlite"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    by = {f["did"]: f for f in data["files"]}
    assert by["cygno-data:LNGS/run12345.mid.gz"]["state"] == "SCANNED"
    assert by["cygno-data:LNGS/run12345.mid.gz"]["waits_for"] == "upload to the landing RSE"
    assert by["cygno-data:LNGS/run12346.mid.gz"]["waits_for"].startswith("a human: corrupt gzip")
    assert data["summary"] == {"SCANNED": 1, "QUARANTINED": 1}
    assert good.exists()
    table = CliRunner().invoke(ingest, ["status", "--journal", str(tmp_path / "j.sqlite")])
    assert "run12345" in table.output
    missing = CliRunner().invoke(ingest, ["status", "--journal", str(tmp_path / "none.sqlite")])
    assert missing.exit_code == 1 and "no journal" in missing.output


def test_run_cli_refuses_unknown_tag(tmp_path):
    res = CliRunner().invoke(ingest, ["run", "--watch", f"XYZ={tmp_path}", "--journal", str(tmp_path / "j"),
                                      "--once"])
    assert res.exit_code == 2 and "TAG 'XYZ'" in res.output


def test_same_did_in_two_watched_directories_is_quarantined(tmp_path):
    run_file(tmp_path / "daq" / "x", 12345, tag=None)
    run_file(tmp_path / "daq", 12345, tag="LNGS")
    cfg = IngestConfig(watch=[WatchDir(tmp_path / "daq"), WatchDir(tmp_path / "daq" / "x", "LNGS")],
                       rse="CNAF_USERDISK", scope="cygno-data", account="rucio-daq", journal=tmp_path / "j.sqlite",
                       settle=0)
    ing = Ingestor(Pipeline(PROFILE, cfg, Journal(cfg.journal), Catalog(_no_rucio, "rucio-daq")))
    ing.discover()
    assert sorted(e.state.value for e in ing.journal.entries()) == ["QUARANTINED", "SEEN"]
