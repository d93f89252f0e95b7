"""FTS job and file states and how a job's state follows from its files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# file states
SUBMITTED = "SUBMITTED"
STAGING = "STAGING"
STARTED = "STARTED"
READY = "READY"
ACTIVE = "ACTIVE"
ARCHIVING = "ARCHIVING"
NOT_USED = "NOT_USED"
FINISHED = "FINISHED"
FAILED = "FAILED"
CANCELED = "CANCELED"
# job-only terminal state
FINISHEDDIRTY = "FINISHEDDIRTY"

FILE_TERMINAL = frozenset({FINISHED, FAILED, CANCELED, NOT_USED})
FILE_LIVE = frozenset({SUBMITTED, STAGING, STARTED, READY, ACTIVE, ARCHIVING})
JOB_TERMINAL = frozenset({FINISHED, FAILED, FINISHEDDIRTY, CANCELED})
JOB_STATES = frozenset({SUBMITTED, STAGING, READY, ACTIVE, ARCHIVING}) | JOB_TERMINAL

# job types (FTS Job.h)
JOB_TYPE_REGULAR = "N"
JOB_TYPE_MULTIPLE_REPLICA = "R"
JOB_TYPE_MULTI_HOP = "H"


def job_state_from_files(files: Iterable[Mapping[str, Any]], job_type: str) -> str:
    """Aggregate file rows (keys file_state, file_index) into the FTS job state."""
    rows = list(files)
    states = [r["file_state"] for r in rows]
    live = [s for s in states if s in FILE_LIVE]
    if live:
        if any(s in (ACTIVE, STARTED) for s in live):
            return ACTIVE
        if ARCHIVING in live:
            return ARCHIVING
        if STAGING in live:
            return STAGING
        if any(s not in (SUBMITTED, NOT_USED) for s in states):
            return ACTIVE
        return SUBMITTED
    if job_type == JOB_TYPE_MULTI_HOP:
        if all(s == FINISHED for s in states):
            return FINISHED
        return CANCELED if CANCELED in states else FAILED
    outcome: dict[int, str] = {}
    for r in rows:
        idx, st = int(r["file_index"]), r["file_state"]
        prev = outcome.get(idx)
        if st == FINISHED or prev == FINISHED:
            outcome[idx] = FINISHED
        elif st == CANCELED or prev == CANCELED:
            outcome[idx] = CANCELED
        elif st == FAILED or prev == FAILED:
            outcome[idx] = FAILED
        else:
            outcome.setdefault(idx, NOT_USED)
    results = set(outcome.values())
    if results == {FINISHED}:
        return FINISHED
    if FINISHED in results:
        return FINISHEDDIRTY
    if CANCELED in results:
        return CANCELED
    return FAILED
