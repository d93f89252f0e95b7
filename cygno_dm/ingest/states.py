"""The life of one run file in the uploader, in order, and what each state waits for."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where a file is; each state means every step before it is done and checked."""

    SEEN = "SEEN"  # found in a DAQ directory, not ready yet (being written, or no end-of-run signal)
    SCANNED = "SCANNED"  # complete gzip; size and checksums known
    UPLOADED = "UPLOADED"  # bytes on the landing RSE at the policy PFN, size and checksum verified
    REGISTERED = "REGISTERED"  # replica registered in Rucio, landing copy protected by a rule
    DESCRIBED = "DESCRIBED"  # run metadata set on the DID
    ATTACHED = "ATTACHED"  # in its dataset, whose replication rules exist
    SAFE = "SAFE"  # tape copy archived and a disk replica verified: the local file may go
    DELETED = "DELETED"  # local file removed (terminal)
    QUARANTINED = "QUARANTINED"  # corrupt, or same name with other content: never uploaded/registered (terminal)
    REFUSED = "REFUSED"  # its name breaks the naming rule: reported, left in place, never touched


ORDER = [State.SEEN, State.SCANNED, State.UPLOADED, State.REGISTERED, State.DESCRIBED, State.ATTACHED,
         State.SAFE, State.DELETED]
TERMINAL = frozenset({State.DELETED, State.QUARANTINED})

WAITS_FOR = {
    State.SEEN: "end of run: DAQ sidecar or run-log stop time, stable size and a complete gzip stream",
    State.SCANNED: "upload to the landing RSE",
    State.UPLOADED: "replica registration in Rucio",
    State.REGISTERED: "run metadata on the DID",
    State.DESCRIBED: "attachment to its dataset",
    State.ATTACHED: "tape archive confirmation and a verified disk replica",
    State.SAFE: "local deletion",
    State.DELETED: "nothing: done",
    State.QUARANTINED: "a human: see the reason",
    State.REFUSED: "a human: rename the file (see the rule it breaks)",
}


def index(state: State) -> int:
    """Position of a state in the pipeline (quarantine sorts last)."""
    return ORDER.index(state) if state in ORDER else len(ORDER)
