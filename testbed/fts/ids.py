"""Job ids the way FTS makes them (uuid1, or uuid5 of base id, VO and sid)."""

from __future__ import annotations

import hashlib
import uuid

BASE_ID = "01874efb-4735-4595-bc9c-591aef8240c9"


def standard_job_id() -> str:
    """A fresh time-based job id."""
    return str(uuid.uuid1())


def deterministic_job_id(vo: str, sid: str, base_id: str = BASE_ID) -> str:
    """uuid5(uuid5(base_id, vo), sid), as FTS and Rucio compute it."""
    return str(uuid.uuid5(uuid.uuid5(uuid.UUID(base_id), vo), sid))


def delegation_id(user_dn: str) -> str:
    """A stable delegation id for a user DN (16 hex digits)."""
    return hashlib.sha1(user_dn.encode()).hexdigest()[:16]
