"""`ingest status`: per run, where it is and what it waits for."""

from __future__ import annotations

import time
from typing import Any

from cygno_dm.ingest.journal import Journal
from cygno_dm.ingest.states import TERMINAL, WAITS_FOR, State


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
    if states is None or State.REFUSED in states:
        out += [{"did": "", "run": None, "dataset": None, "state": State.REFUSED.value,
                 "waits_for": f"a human: {r['reason']}", "local_file": r["path"], "bytes": r["size"], "adler32": None,
                 "rse": None, "pfn": None, "attempts": 0, "next_try_in_s": 0, "age_s": round(now - r["first_seen"])}
                for r in journal.refused()]
    return out


def still_waiting(journal: Journal, keep_local: bool = False) -> tuple[int, str]:
    """(files the uploader still has work on, one line saying how many wait for what, and how many need a human)."""
    waiting: dict[str, int] = {}
    for e in journal.entries():
        if e.state in TERMINAL or (keep_local and e.state == State.SAFE):
            continue
        what = "a retry" if e.attempts else WAITS_FOR[e.state]
        waiting[what] = waiting.get(what, 0) + 1
    counts = journal.counts()
    human = counts.get(State.QUARANTINED.value, 0) + counts.get(State.REFUSED.value, 0)
    n = sum(waiting.values())
    line = f"{n} file(s) still wait" + (": " + "; ".join(f"{v} for {k}" for k, v in sorted(
        waiting.items(), key=lambda kv: -kv[1])) if n else "")
    if human:
        line += f"; {human} quarantined or refused file(s) need a human (cygno-dm ingest status)"
    return n, line


def summary(journal: Journal) -> dict[str, int]:
    """Counts per state."""
    return journal.counts()
