"""Scope extraction for DIDs given as `scope:name` or as storage-like paths `[/prefix/]<scope>/<name>`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from rucio.common.exception import RucioException

from rucio_policies.experiments import registry

LOGGER = logging.getLogger(__name__)

ALGORITHM = "psge"


def _known(scope: str, scopes: Sequence[str] | None) -> bool:
    reg = registry()
    return scope in (scopes or ()) or reg.experiment_of_scope(scope) is not None


def extract_scope(did: str, scopes: Sequence[str] | None = None) -> tuple[str, str]:
    """Split a DID into (scope, name): `scope:name`, or the first path component that is a known scope."""
    if not did:
        raise RucioException("cannot extract a scope from an empty DID")
    if ":" in did:
        scope, sep, name = did.partition(":")
        if not scope or not name or ":" in name:
            raise RucioException(f"cannot extract scope and name from {did!r}: expected exactly one 'scope:name'")
        return scope, name
    parts = [p for p in did.strip("/").split("/") if p]
    for i, part in enumerate(parts[:-1]):
        if _known(part, scopes):
            return part, "/".join(parts[i + 1:])
    raise RucioException(
        f"cannot extract a scope from {did!r}: write it as scope:name or as a path <scope>/<name> with a known scope")
