"""CYGNO reconstruction: camera frames in HDF5 to cluster tables (sc_* features) in HDF5."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("cygno-dm")
except metadata.PackageNotFoundError:  # pragma: no cover - source checkout without install
    __version__ = "0.0.0+unknown"
