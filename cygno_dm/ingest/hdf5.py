"""HDF5 DAQ files: whether the writer has closed a file, and the root attributes that become run metadata."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Hdf5Error(ValueError):
    """HDF5 cannot open the file: still written (locked, truncated, no superblock yet) or not HDF5 at all."""

    truncated = True  # like a truncated gzip: wait for the writer, quarantine once stale or declared complete


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value if isinstance(value, str | int | float | bool) else None


def closed_file_attributes(path: Path, wanted: Mapping[str, str]) -> dict[str, Any]:
    """Open `path` read-only with HDF5 file locking; return {metadata key: root attribute} for `wanted`.

    A writer that still holds the file (lock, consistency flags), a truncated file or a file without an HDF5
    superblock raise Hdf5Error. Attributes that are absent or not scalars are left out.
    """
    import h5py

    try:
        with h5py.File(path, "r", locking=True) as f:
            out = {}
            for key, attr in wanted.items():
                if attr in f.attrs and (value := _plain(f.attrs[attr])) is not None:
                    out[key] = value
            return out
    except OSError as err:
        raise Hdf5Error(f"HDF5 cannot open it yet: {str(err).splitlines()[0]}") from None
