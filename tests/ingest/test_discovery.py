"""Discovery without Rucio: refused names are reported and left alone; the CA bundle is safe under threads."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

from click.testing import CliRunner

from cygno_dm.cli import main
from cygno_dm.ingest.catalog import Catalog
from cygno_dm.ingest.config import IngestConfig
from cygno_dm.ingest.discovery import WatchDir
from cygno_dm.ingest.journal import Journal
from cygno_dm.ingest.pipeline import Pipeline
from cygno_dm.ingest.runner import Ingestor
from cygno_dm.ingest.stores import ca_bundle
from cygno_dm.profile import load_profile
from tests.ingest.helpers import run_file

PROFILE = load_profile("cygno-testbed")


def _ingestor(watch: Path, journal: Path) -> Ingestor:
    def no_rucio():
        raise AssertionError("discovery must not call Rucio")

    cfg = IngestConfig(watch=[WatchDir(watch)], rse="CNAF_USERDISK", scope="cygno-data", account="rucio-daq",
                       journal=journal, settle=0)
    return Ingestor(Pipeline(PROFILE, cfg, Journal(journal), Catalog(no_rucio, "rucio-daq")))


def test_a_badly_named_run_file_is_reported_with_its_rule_and_left_in_place(tmp_path: Path) -> None:
    good = run_file(tmp_path / "daq", 12345)
    bad = good.with_name("run2071152_retry.mid.gz")
    bad.write_bytes(good.read_bytes())
    bad.with_name(bad.name + ".json").write_text(json.dumps({"run_number": 2071152}))
    short = good.with_name("run12.mid.gz")
    short.write_bytes(good.read_bytes())
    (good.parent / ".run99999.mid.gz.partial").write_bytes(b"x")  # hidden: a DAQ temporary, not reported
    ing = _ingestor(tmp_path / "daq", tmp_path / "j.sqlite")
    assert ing.discover() == 1
    refused = {Path(r["path"]).name: r["reason"] for r in ing.journal.refused()}
    assert set(refused) == {bad.name, short.name}
    for reason in refused.values():
        assert "breaks rule raw-file-name" in reason and "<TAG>/run<N>.mid.gz" in reason
    assert bad.exists() and short.exists() and good.exists()
    assert ing.journal.counts() == {"SEEN": 1, "REFUSED": 2}

    result = CliRunner().invoke(main, ["ingest", "status", "--journal", str(tmp_path / "j.sqlite"), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["files"]
    refused_rows = [r for r in rows if r["state"] == "REFUSED"]
    assert {Path(r["local_file"]).name for r in refused_rows} == {bad.name, short.name}
    assert all(r["waits_for"].startswith("a human: DID name") for r in refused_rows)

    bad.rename(bad.with_name("run2071153.mid.gz"))  # a human fixes the name: the new name is ingested
    assert ing.discover() == 1
    assert [Path(r["path"]).name for r in ing.journal.refused()] == [short.name]
    assert ing.journal.counts() == {"SEEN": 2, "REFUSED": 1}


def _bundle_into(start: threading.Barrier, cas: str, results: list[str], errors: list[Exception]) -> None:
    start.wait()
    try:
        results.append(str(ca_bundle(cas)))
    except Exception as err:  # the old code raced on one temporary name: FileNotFoundError
        errors.append(err)


def test_the_ca_bundle_is_written_safely_by_many_threads(tmp_path: Path, monkeypatch) -> None:
    cas = tmp_path / "ca"
    cas.mkdir()
    (cas / "a.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    (cas / "b.0").write_text("-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n")
    (cas / "README").write_text("not a certificate")
    for attempt in range(20):  # each round starts with no bundle, as a daemon does on a fresh /tmp
        tmp = tmp_path / f"tmp{attempt}"
        tmp.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(tmp))
        results: list[str] = []
        errors: list[Exception] = []
        start = threading.Barrier(16)
        threads = [threading.Thread(target=_bundle_into, args=(start, str(cas), results, errors)) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(set(results)) == 1
        text = Path(results[0]).read_text()
        assert "AAAA" in text and "BBBB" in text and "not a certificate" not in text
        assert os.listdir(tmp) == [Path(results[0]).name]  # no temporary left behind
