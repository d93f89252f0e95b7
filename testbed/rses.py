"""How each kind of RSE in a profile becomes a Rucio RSE: type, protocols and attributes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cygno_dm.profile import Rse

ALL_DOMAINS = {
    "lan": {"read": 1, "write": 1, "delete": 1},
    "wan": {"read": 1, "write": 1, "delete": 1, "third_party_copy_read": 1, "third_party_copy_write": 1},
}


def posix_dir(rse: Rse, state: Path) -> Path:
    """The directory of a posix RSE (relative paths live in the testbed state directory)."""
    path = Path(rse.path or "")
    return path if path.is_absolute() else state / path


def rse_settings(rse: Rse, state: Path, fts_url: str) -> dict[str, Any]:
    """Rucio RSE type, protocols and attributes for one profile RSE."""
    attributes: dict[str, Any] = {"fts": fts_url, "site": rse.site or "LOCAL"}
    if rse.kind == "posix":
        prefix = str(posix_dir(rse, state)).rstrip("/") + "/"
        protocols = [{
            "scheme": "file", "hostname": "", "port": 0, "prefix": prefix,
            "impl": "rucio.rse.protocols.gfal.Default", "domains": ALL_DOMAINS,
        }]
        return {"rse_type": "DISK", "protocols": protocols, "attributes": attributes}
    raise NotImplementedError(f"RSE kind {rse.kind!r} is not wired into the testbed yet")
