"""Settings of one uploader: what it watches, where it lands, how it waits and retries."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from cygno_dm.ingest.discovery import WatchDir
from cygno_dm.profile import Profile

JOURNAL_ENV = "CYGNO_DM_INGEST_JOURNAL"
LANDING_ENV = "CYGNO_DM_LANDING_RSE"


def default_journal() -> Path:
    """$CYGNO_DM_INGEST_JOURNAL, else ~/.cygno-dm/ingest-<host>.sqlite (one journal per DAQ host)."""
    env = os.environ.get(JOURNAL_ENV)
    return Path(env) if env else Path.home() / ".cygno-dm" / f"ingest-{socket.gethostname()}.sqlite"


def default_landing(profile: Profile) -> str:
    """$CYGNO_DM_LANDING_RSE, else the profile's first RSE that is not tape."""
    env = os.environ.get(LANDING_ENV)
    if env:
        return env
    for name, rse in profile.rses.items():
        if rse.kind != "tape":
            return name
    raise ValueError("profile has no disk RSE to land on; pass --rse")


@dataclass
class IngestConfig:
    """All knobs; times in seconds."""

    watch: list[WatchDir]
    rse: str
    scope: str
    account: str
    journal: Path = field(default_factory=default_journal)
    settle: float = 30.0  # size unchanged and file untouched this long = end of writing
    stale: float = 6 * 3600.0  # a truncated gzip untouched this long is quarantined
    poll: float = 10.0  # directory scan period
    safety_poll: float = 300.0  # how often to re-check a file waiting for its tape archive
    retry_base: float = 5.0
    retry_max: float = 600.0
    workers: int = 2
    part_size: int = 64 << 20
    parallel_parts: int = 4
    delete_local: bool = True
    landing_lifetime: int | None = 30 * 86400  # landing-copy rule lifetime; the dataset rules keep the rest
    runlog_url: str | None = None
    runlog_table: str = "Runlog"
    require_end_of_run: bool = True  # with a run log: wait for its stop_time
    quarantine_subdir: str = "quarantine"
    once_max_idle: float = 600.0  # --once: give up waiting for retries after this long without progress

    def backoff(self, attempts: int) -> float:
        """Delay before the next try after `attempts` failures (exponential, capped)."""
        return min(self.retry_max, self.retry_base * (2 ** max(0, attempts)))
