"""Run metadata for Rucio: the DID metadata plugin (loaded lazily by Rucio) and its table."""

from __future__ import annotations

import logging
from typing import Any

from rucio_policies.metadata_table import create_tables, drop_tables

LOGGER = logging.getLogger(__name__)

__all__ = ["create_tables", "drop_tables"]  # and RunMetadataPlugin, lazily


def __getattr__(name: str) -> Any:
    """Import the plugin class only when Rucio asks for it (rucio.core.did_meta_plugins imports it while loading)."""
    if name == "RunMetadataPlugin":
        from rucio_policies.metadata_plugin import RunMetadataPlugin

        return RunMetadataPlugin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
