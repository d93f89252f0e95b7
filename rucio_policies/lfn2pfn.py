"""Storage paths: the identity layout `<scope>/<name>` under each RSE's prefix, and its inverse."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

LOGGER = logging.getLogger(__name__)

ALGORITHM = "psge_identity"


def identity_path(scope: str, name: str, rse: str | None = None, rse_attrs: Mapping[str, Any] | None = None,
                  protocol_attrs: Mapping[str, Any] | None = None) -> str:
    """The path of `scope:name` below an RSE prefix: `<scope>/<name>` (S3: bucket = scope, key = name)."""
    scope = getattr(scope, "external", scope)
    if not scope or not name:
        raise ValueError("identity_path needs a scope and a name")
    return f"{scope}/{name.lstrip('/')}"


def non_deterministic_path(dsn: str | None, scope: str | None, filename: str) -> str:
    """The path of a new replica on a non-deterministic RSE: the same identity layout, `/<scope>/<name>`."""
    if not scope:
        raise ValueError("the identity layout needs the scope of the replica")
    return "/" + identity_path(scope, filename)


def pfn_to_did(parsed_pfn: Mapping[str, str]) -> tuple[str, str]:
    """Invert the identity layout: parsed PFN (path, name relative to the prefix) -> (name, scope), Rucio's order."""
    parts = [p for p in parsed_pfn["path"].split("/") if p]
    if not parts:
        raise ValueError(f"path {parsed_pfn['path']!r} holds no scope directory")
    scope, rest = parts[0], parts[1:]
    return "/".join([*rest, parsed_pfn["name"]]), scope
