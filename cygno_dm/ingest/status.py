"""`ingest status`: per run, where it is and what it waits for."""

from __future__ import annotations

import time
from typing import Any

from cygno_dm.ingest.journal import Journal
from cygno_dm.ingest.states import WAITS_FOR, State


def rows(journal: Journal, states: list[State] | None = None) -> list[dict[str, Any]]:
    """One row per journaled run file (TAG, then run number ascending)."""
    now = time.time()
    out = []
    for e in journal.entries(states):
        waits = e.reason or WAITS_FOR[e.state]
        if e.state == State.QUARANTINED:
            waits = f"a human: {e.reason}"
        out.append({
            "did": e.did, "run": e.run, "dataset": e.dataset, "state": e.state.value, "waits_for": waits,
            "local_file": e.path, "bytes": e.size, "adler32": e.adler32, "rse": e.rse, "pfn": e.pfn,
            "attempts": e.attempts, "next_try_in_s": max(0, round(e.next_try - now)) if e.next_try else 0,
            "age_s": round(now - e.first_seen),
        })
    return out


def summary(journal: Journal) -> dict[str, int]:
    """Counts per state."""
    return journal.counts()
