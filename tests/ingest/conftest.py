"""Fixtures of the ingest tests: an uploader wired to the shared testbed as the DAQ account."""

from __future__ import annotations

from pathlib import Path

import pytest

from cygno_dm.ingest.catalog import Catalog
from cygno_dm.ingest.config import IngestConfig
from cygno_dm.ingest.discovery import WatchDir
from cygno_dm.ingest.journal import Journal
from cygno_dm.ingest.pipeline import Pipeline
from cygno_dm.ingest.runner import Ingestor

DAQ = "rucio-daq"


def is_postgres(tb) -> bool:
    """Whether this testbed runs on PostgreSQL."""
    return tb.settings.database.startswith("postgresql")


def make_ingestor(tb, watch: Path, journal: Path, profile=None, rse: str = "CNAF_USERDISK",
                  client_factory=None, **settings) -> Ingestor:
    """An uploader on `watch` (TAG subdirectories) landing on `rse`, with quick retries for tests."""
    profile = profile or tb.profile
    cfg = IngestConfig(watch=[WatchDir(watch)], rse=rse, scope=profile.scopes.raw[0], account=DAQ, journal=journal,
                       settle=0, retry_base=0.3, retry_max=3, safety_poll=0.5, poll=0.5, once_max_idle=20,
                       workers=1 if not is_postgres(tb) else 2, **settings)
    catalog = Catalog(client_factory or (lambda: tb.client(DAQ)), DAQ)
    return Ingestor(Pipeline(profile, cfg, Journal(journal), catalog))


@pytest.fixture
def daq_env(testbed, monkeypatch):
    """The testbed, with this process's Rucio config set to the DAQ account's (rsemanager reads it)."""
    for key, value in testbed.env(DAQ).items():
        monkeypatch.setenv(key, value)
    return testbed
