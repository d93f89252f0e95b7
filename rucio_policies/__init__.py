"""Rucio policy package for CYGNO and the other PSGE experiments: naming, permissions, metadata, tape hints."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

LOGGER = logging.getLogger(__name__)

SUPPORTED_VERSION = "~=41.0"  # Rucio reports its version as "41"
PACKAGE = __name__


def get_algorithms() -> dict[str, dict[str, Callable[..., Any]]]:
    """The algorithms this package registers with Rucio, by algorithm type and name."""
    from rucio_policies import lfn2pfn, scope_extraction, tape_hints

    return {
        "lfn2pfn": {lfn2pfn.ALGORITHM: lfn2pfn.identity_path},
        "non_deterministic_pfn": {lfn2pfn.ALGORITHM: lfn2pfn.non_deterministic_path},
        "pfn2lfn": {lfn2pfn.ALGORITHM: lfn2pfn.pfn_to_did},
        "scope": {scope_extraction.ALGORITHM: scope_extraction.extract_scope},
        "fts3_tape_metadata_plugins": {tape_hints.ALGORITHM: tape_hints.collocation_hints},
    }


def server_config() -> dict[str, dict[str, str]]:
    """The rucio.cfg sections and keys the server, daemons and clients need for this package."""
    from rucio_policies import lfn2pfn, scope_extraction, tape_hints

    return {
        "policy": {
            "package": PACKAGE,
            "lfn2pfn_algorithm_default": lfn2pfn.ALGORITHM,
            "pfn2lfn": lfn2pfn.ALGORITHM,
            "extract_scope": scope_extraction.ALGORITHM,
        },
        "common": {"extract_scope": scope_extraction.ALGORITHM},
        "metadata": {"plugins": f"{PACKAGE}.metadata.RunMetadataPlugin"},
        "transfers": {"fts3tape_metadata_plugins": tape_hints.ALGORITHM},
        "client": {"metadata_default_plugin": "ALL"},
    }
