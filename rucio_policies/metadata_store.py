"""Reading and writing typed DID metadata rows (shared by the metadata plugin and the permission policy)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rucio.common import exception
from rucio.db.sqla import models
from sqlalchemy import delete, insert, inspect, select, update

from rucio_policies.experiments import registry
from rucio_policies.messages import header_safe
from rucio_policies.metadata_keys import DEFAULT_KEYS, KeySpec, MetadataValueError, keys_for
from rucio_policies.metadata_table import DID_META, VALUE_COLUMNS

if TYPE_CHECKING:
    from rucio.common.types import InternalScope
    from sqlalchemy.orm import Session

LOGGER = logging.getLogger(__name__)

_ready: set[str] = set()


def all_keys() -> dict[str, KeySpec]:
    """Every metadata key of every experiment served."""
    out: dict[str, KeySpec] = {k.name: k for k in DEFAULT_KEYS}
    for exp in registry().experiments:
        out.update(keys_for(exp.name))
    return out


def spec(scope: InternalScope, key: str) -> KeySpec:
    """The key specification for a key in a scope, or InvalidMetadata naming the known keys."""
    exp = registry().experiment_of_scope(scope.external)
    specs = keys_for(exp.name if exp else None)
    if key not in specs:
        raise exception.InvalidMetadata(header_safe(
            f"metadata key {key!r} is not defined for scope {scope.external}; known keys: {', '.join(sorted(specs))}"))
    return specs[key]


def column_keys() -> frozenset[str]:
    """Our keys that are also Rucio DID columns (mirrored there so subscriptions can match them)."""
    return frozenset(k for k in all_keys() if k in models.DataIdentifier.__table__.c)


def ensure_table(session: Session, create: bool = True) -> bool:
    """Whether the metadata table exists; with `create`, make it in this (write) transaction if missing."""
    url = str(session.get_bind().url)
    if url in _ready:
        return True
    conn = session.connection()
    if inspect(conn).has_table(DID_META.name, schema=DID_META.schema):
        _ready.add(url)
        return True
    if create:
        LOGGER.warning("creating table %s lazily; call rucio_policies.metadata.create_tables after bootstrap",
                       DID_META.name)
        DID_META.create(conn, checkfirst=True)
    return create


def check_did(scope: InternalScope, name: str, session: Session) -> None:
    """Raise DataIdentifierNotFound unless the DID exists."""
    stmt = select(models.DataIdentifier.name).where(models.DataIdentifier.scope == scope,
                                                    models.DataIdentifier.name == name)
    if session.execute(stmt).first() is None:
        raise exception.DataIdentifierNotFound(f"Data identifier '{scope}:{name}' not found")


def typed_values(scope: InternalScope, meta: Mapping[str, Any]) -> dict[str, tuple[KeySpec, Any]]:
    """Coerce every value by its key type; raise before anything is written."""
    out = {}
    for key, value in meta.items():
        key_spec = spec(scope, key)
        try:
            out[key] = (key_spec, key_spec.coerce(value))
        except MetadataValueError as err:
            raise exception.InvalidValueForKey(str(err)) from None
    return out


def read(scope: InternalScope, name: str, session: Session) -> dict[str, Any]:
    """The stored metadata of a DID."""
    rows = session.execute(select(DID_META).where(DID_META.c.scope == scope, DID_META.c.name == name)).mappings()
    out = {}
    for row in rows:
        for col in VALUE_COLUMNS.values():
            if row[col] is not None:
                out[row["key"]] = row[col]
                break
    return out


def stored_values(scope: InternalScope, name: str, *, session: Session) -> dict[str, Any]:
    """The typed metadata stored for a DID (empty if none)."""
    return read(scope, name, session) if ensure_table(session, create=False) else {}


def write(scope: InternalScope, name: str, typed: dict[str, tuple[KeySpec, Any]], session: Session) -> None:
    """Upsert typed values, mirroring DID-column keys into Rucio's dids table."""
    if not typed:
        return
    session.execute(delete(DID_META).where(DID_META.c.scope == scope, DID_META.c.name == name,
                                           DID_META.c.key.in_(list(typed))))
    rows = [{"scope": scope, "name": name, "key": key, **{c: None for c in VALUE_COLUMNS.values()},
             VALUE_COLUMNS[spec.type]: value} for key, (spec, value) in typed.items()]
    session.execute(insert(DID_META), rows)
    mirrored = {k: v for k, (_, v) in typed.items() if k in column_keys()}
    if mirrored:
        session.execute(update(models.DataIdentifier).where(models.DataIdentifier.scope == scope,
                                                            models.DataIdentifier.name == name).values(mirrored))


def like(pattern: str) -> str:
    """A SQL LIKE pattern (escape backslash) for a Rucio wildcard pattern using '*'."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


