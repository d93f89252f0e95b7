"""RSE protocol implementations the experiments' RSEs name in their `impl` (clients import them too)."""

from __future__ import annotations

import logging
from pathlib import Path

from rucio.rse.protocols.gfal import NoRename

log = logging.getLogger(__name__)


class S3(NoRename):
    """Rucio's gfal.NoRename for S3, creating the local directory of a download first.

    DID names carry a directory (`LNGS/run00001.mid.gz`); NoRename copies with strict_copy, under which gfal2
    creates no parent directory, so `rucio download` of such a name from S3 would fail.
    """

    def get(self, path: str, dest: str, transfer_timeout: int | None = None) -> None:
        """Download `path` to the local `dest`, creating its directory."""
        local = dest.removeprefix("file://")
        if "://" not in local:
            Path(local).absolute().parent.mkdir(parents=True, exist_ok=True)
        super().get(path, dest, transfer_timeout=transfer_timeout)
