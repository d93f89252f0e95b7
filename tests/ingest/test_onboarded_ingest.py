"""The second experiment's DAQ uses `cygno-dm ingest` unchanged: HDF5 files, names, metadata and datasets from
its profile, on the running testbed."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from cygno_dm import replication
from cygno_dm.ingest.catalog import Catalog
from cygno_dm.ingest.config import IngestConfig
from cygno_dm.ingest.discovery import WatchDir
from cygno_dm.ingest.journal import Journal
from cygno_dm.ingest.pipeline import Pipeline
from cygno_dm.ingest.runner import Ingestor
from tests.ingest.conftest import is_postgres
from tests.onboarding import onboard_gravnet

pytestmark = pytest.mark.rucio


@pytest.fixture(scope="module")
def gravnet(testbed) -> SimpleNamespace:
    """GravNet onboarded next to CYGNO (a no-op when the policy tests did it already)."""
    return onboard_gravnet(testbed)


def _h5(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with h5py.File(directory / name, "w") as f:
        f.create_dataset("iq", data=np.random.default_rng(7).normal(size=(20000, 2)).astype("f4"))
        f.attrs.update({"start_time": "2026-11-30T10:00:00", "sample_rate_hz": 1.0e6,
                        "center_frequency_hz": 8.4e9, "magnetic_field_t": 1.1, "detector": "FLASH"})
    return directory / name


def test_the_second_experiment_ingests_with_the_same_uploader(daq_env, gravnet: SimpleNamespace, tmp_path: Path) -> None:
    tb = daq_env
    day = f"2026{uuid.uuid4().int % 12 + 1:02d}{uuid.uuid4().int % 28 + 1:02d}"
    _h5(tmp_path / "daq" / "LNF", f"LNF_{day}_000001.h5")
    daq = gravnet.accounts["daq"]
    cfg = IngestConfig(watch=[WatchDir(tmp_path / "daq")], rse="CNAF_USERDISK", scope="gravnet-raw", account=daq,
                       journal=tmp_path / "j.sqlite", settle=0, retry_base=0.3, retry_max=3, safety_poll=0.5,
                       poll=0.5, once_max_idle=20, delete_local=False,
                       workers=2 if is_postgres(tb) else 1)
    ing = Ingestor(Pipeline(gravnet.profile, cfg, Journal(cfg.journal),
                            Catalog(lambda: tb.client(daq, gravnet.profile), daq)))
    ing.run(once=True)
    name = f"LNF/LNF_{day}_000001.h5"
    (entry,) = ing.journal.entries()
    assert entry.state.value in ("ATTACHED", "SAFE"), (entry.state, entry.reason)
    root = tb.client("root")
    meta = root.get_metadata("gravnet-raw", name, plugin="RUN_META")
    assert (meta["site"], meta["acq_date"], int(meta["sequence"]), meta["detector"]) == ("LNF", day, 1, "FLASH")
    assert [d["name"] for d in root.list_content("gravnet-raw", f"LNF/{day}")] == [name]
    rules = {(r["rse_expression"], r["copies"]) for r in root.list_did_rules("gravnet-raw", f"LNF/{day}")}
    assert rules == {(r.rse_expression, r.copies) for r in gravnet.profile.replication["raw"]}
    diffs = replication.plan(gravnet.clients["data-manager"], gravnet.profile)
    assert not [d for d in diffs if d.name == f"LNF/{day}"], diffs  # the uploader's rules are the policy's


