"""The uploader driven by another experiment's profile: GravNet-like HDF5 names, readiness and metadata."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from cygno_dm.ingest.catalog import Catalog
from cygno_dm.ingest.config import IngestConfig
from cygno_dm.ingest.discovery import Found, Refused, WatchDir, find
from cygno_dm.ingest.journal import Journal
from cygno_dm.ingest.naming import RunNameError, dataset_name, parse_did_name
from cygno_dm.ingest.pipeline import Pipeline
from cygno_dm.ingest.runner import Ingestor
from cygno_dm.ingest.states import State
from cygno_dm.profile import ProfileError, load_profile, parse_profile

GRAVNET = load_profile("gravnet-testbed")
CYGNO = load_profile("cygno-testbed")


def h5_file(directory: Path, name: str, seconds: int = 2, **attrs) -> Path:
    """A closed HDF5 file like a haloscope DAQ writes: IQ samples plus acquisition attributes."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("iq", data=np.random.default_rng(1).normal(size=(seconds * 1000, 2)).astype("f4"))
        f.attrs.update({"start_time": "2026-11-30T10:00:00", "sample_rate_hz": 1.0e6, "center_frequency_hz": 8.4e9,
                        "magnetic_field_t": 1.1, "detector": b"FLASH", **attrs})
    return path


def _no_rucio():
    raise AssertionError("this step must not need Rucio")


def _ingestor(tmp_path: Path, profile=GRAVNET, **kw) -> Ingestor:
    cfg = IngestConfig(watch=[WatchDir(tmp_path / "daq")], rse="CNAF_USERDISK", scope=profile.scopes.raw[0],
                       account="gravnet-daq", journal=tmp_path / "j.sqlite", settle=0, **kw)
    return Ingestor(Pipeline(profile, cfg, Journal(cfg.journal), Catalog(_no_rucio, "gravnet-daq")))


def _step_all(ing: Ingestor) -> dict[str, object]:
    ing.discover()
    for e in ing.journal.entries():
        ing.p.step(e)
    return {e.name: e for e in ing.journal.entries()}


def test_names_datasets_and_refusals_follow_the_profile(tmp_path):
    run = parse_did_name(GRAVNET, "MAINZ/MAINZ_20261130_000042.h5")
    assert (run.tag, run.run, run.groups["date"]) == ("MAINZ", 42, "20261130")
    assert dataset_name(GRAVNET, run) == "MAINZ/20261130"
    for bad in ("MAINZ/LNF_20261130_000042.h5", "MAINZ/MAINZ_20261332_000042.h5", "LNF/run00001.mid.gz"):
        with pytest.raises(RunNameError, match="raw-file-name"):
            parse_did_name(GRAVNET, bad)
    assert dataset_name(CYGNO, parse_did_name(CYGNO, "LNGS/run114497.mid.gz")) == "LNGS/runs-1144xx"  # unchanged
    h5_file(tmp_path / "daq" / "LNF", "LNF_20261130_000001.h5")
    h5_file(tmp_path / "daq" / "LNF", "LNF_2026-11-30_1.h5")
    (tmp_path / "daq" / "LNF" / "notes.txt").write_text("ignored: not the raw suffix")
    seen = list(find(GRAVNET, [WatchDir(tmp_path / "daq")]))
    assert [f.run.name for f in seen if isinstance(f, Found)] == ["LNF/LNF_20261130_000001.h5"]
    assert [f.path.name for f in seen if isinstance(f, Refused)] == ["LNF_2026-11-30_1.h5"]


def test_closed_hdf5_is_scanned_with_metadata_from_name_and_file(tmp_path):
    h5_file(tmp_path / "daq" / "BONN", "BONN_20261130_000007.h5")
    entry = _step_all(_ingestor(tmp_path))["BONN/BONN_20261130_000007.h5"]
    assert entry.state == State.SCANNED and entry.dataset == "BONN/20261130"
    assert entry.meta == {"site": "BONN", "acq_date": "20261130", "sequence": 7, "start_time": "2026-11-30T10:00:00",
                          "sample_rate_hz": 1.0e6, "center_frequency_hz": 8.4e9, "magnetic_field_t": 1.1,
                          "detector": "FLASH"}
    assert "run_number" not in entry.meta  # GravNet declares no run_number key


def test_hdf5_still_open_or_truncated_waits_then_is_quarantined(tmp_path):
    daq = tmp_path / "daq" / "LNF"
    daq.mkdir(parents=True)
    writer = h5py.File(daq / "LNF_20261130_000001.h5", "w")  # the DAQ still writes it (HDF5 holds a lock)
    writer.create_dataset("iq", data=np.zeros((10, 2), "f4"))
    writer.flush()
    whole = h5_file(tmp_path / "other", "x.h5").read_bytes()
    (daq / "LNF_20261130_000002.h5").write_bytes(whole[: len(whole) // 2])  # truncated copy
    ing = _ingestor(tmp_path)
    try:
        entries = _step_all(ing)
        assert {e.state for e in entries.values()} == {State.SEEN}
        assert all("HDF5 file not complete yet" in (e.reason or "") for e in entries.values()), entries
    finally:
        writer.close()
    (daq / "LNF_20261130_000002.h5.json").write_text(json.dumps({"run_type": "physics"}))  # declared complete
    old = time.time() - 3600
    os.utime(daq / "LNF_20261130_000002.h5", (old, old))
    for e in ing.journal.entries():
        ing.journal.update(e, next_try=0)
    entries = _step_all(ing)
    assert entries["LNF/LNF_20261130_000001.h5"].state == State.SCANNED  # closed by its writer now
    assert entries["LNF/LNF_20261130_000002.h5"].state == State.QUARANTINED
    assert (daq / "quarantine" / "LNF_20261130_000002.h5").exists()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["naming"].update(pattern="(?P<tag>LNF)/x_(?P<seq>[0-9]+).h5"), "naming.pattern: .*missing \\['run'\\]"),
    (lambda d: d["naming"].update(pattern="(?P<tag>LNF/("), "naming.pattern: .*not a valid regular expression"),
    (lambda d: d["naming"].update(dataset="{tag}/{month}"), "naming: dataset .* may use only the pattern's groups"),
    (lambda d: d["ingest"].update(ready="gzip"), "ingest.ready: 'gzip' needs gzip files"),
    (lambda d: d["ingest"]["metadata_from_name"].update(site="town"), "metadata_from_name.site: 'town' is not a group"),
    (lambda d: d["ingest"]["metadata_from_hdf5"].update(colour="colour"), "metadata_from_hdf5.colour: not a declared"),
    (lambda d: d["quotas"].update(NOWHERE=1), "quotas: unknown RSE 'NOWHERE'"),
])
def test_bad_ingest_settings_name_the_field(edit, message):
    data = GRAVNET.model_dump()
    edit(data)
    with pytest.raises(ProfileError, match=message):
        parse_profile(data)
