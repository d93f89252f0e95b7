"""Rucio DID metadata plugin for typed run metadata; Rucio loads it via rucio_policies.metadata.RunMetadataPlugin."""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rucio.common import exception
from rucio.core.did_meta_plugins.did_column_meta import DidColumnMeta
from rucio.core.did_meta_plugins.did_meta_plugin_interface import DidMetaPlugin
from rucio.db.sqla import models
from rucio.db.sqla.constants import DIDType
from rucio.db.sqla.session import read_session, stream_session, transactional_session
from sqlalchemy import and_, delete, exists, or_, select, true, update

from rucio_policies import request, web
from rucio_policies.messages import header_safe
from rucio_policies.metadata_keys import MetadataValueError
from rucio_policies.metadata_store import (
    check_did,
    column_keys,
    ensure_table,
    like,
    read,
    spec,
    typed_values,
    write,
)
from rucio_policies.metadata_table import DID_META, VALUE_COLUMNS

if TYPE_CHECKING:
    from rucio.common.types import InternalScope
    from sqlalchemy.orm import Session

LOGGER = logging.getLogger(__name__)

PLUGIN_NAME = "RUN_META"
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "": operator.eq, "ne": operator.ne, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
_TYPES = {"file": [DIDType.FILE], "dataset": [DIDType.DATASET], "container": [DIDType.CONTAINER]}


class RunMetadataPlugin(DidMetaPlugin):
    """Typed experiment metadata in table psge_did_meta; keys and types from the experiment profiles."""

    def __init__(self) -> None:
        super().__init__()
        self._plugin_name = PLUGIN_NAME

    @read_session
    def get_metadata(self, scope: InternalScope, name: str, *, session: Session) -> dict[str, Any]:
        """The run metadata of a DID (DataIdentifierNotFound if there is no such DID)."""
        check_did(scope, name, session)
        return read(scope, name, session) if ensure_table(session, create=False) else {}

    @transactional_session
    def set_metadata(self, scope: InternalScope, name: str, key: str, value: Any, recursive: bool = False, *,
                     session: Session) -> None:
        """Set one key after checking its type."""
        self.set_metadata_bulk(scope, name, metadata={key: value}, recursive=recursive, session=session)

    @transactional_session
    def set_metadata_bulk(self, scope: InternalScope, name: str, metadata: Mapping[str, Any],
                          recursive: bool = False, *, session: Session) -> None:
        """Set several keys; nothing is written unless every key and value is valid."""
        ensure_table(session)
        typed = typed_values(scope, metadata)
        check_did(scope, name, session)
        write(scope, name, typed, session)
        if recursive:
            stmt = select(models.DataIdentifierAssociation.child_scope, models.DataIdentifierAssociation.child_name)\
                .where(models.DataIdentifierAssociation.scope == scope, models.DataIdentifierAssociation.name == name)
            for child_scope, child_name in session.execute(stmt).all():
                write(child_scope, child_name, typed_values(child_scope, metadata), session)
        LOGGER.info("metadata set on %s:%s: %s", scope, name, ", ".join(sorted(metadata)))

    @transactional_session
    def delete_metadata(self, scope: InternalScope, name: str, key: str, *, session: Session) -> None:
        """Remove one key from a DID, if the policy lets the caller (Rucio asks no permission on this route)."""
        _check_deletion(scope, name, key, session)
        ensure_table(session)
        spec(scope, key)
        result = session.execute(delete(DID_META).where(DID_META.c.scope == scope, DID_META.c.name == name,
                                                        DID_META.c.key == key))
        if not result.rowcount:
            raise exception.KeyNotFound(header_safe(f"{scope}:{name} has no metadata key {key!r}"))
        if key in column_keys():
            session.execute(update(models.DataIdentifier).where(models.DataIdentifier.scope == scope,
                                                                models.DataIdentifier.name == name)
                            .values({key: None}))

    def manages_key(self, key: str, *, session: Session | None = None) -> bool:
        """Every key the DID-column plugin (asked first) does not take.

        Unknown keys then get this plugin's answer, naming the keys the scope has, instead of Rucio's
        500 "no metadata plugin manages the filter key(s)".
        """
        return True

    def _condition(self, scope: InternalScope, key: str, value: Any) -> Any:
        base, _, op = key.partition(".")
        if op not in _OPERATORS:
            raise exception.DIDFilterSyntaxError(
                header_safe(f"operator {op!r} in filter {key!r} is not one of {sorted(_OPERATORS)}"))
        if base == "name":
            names = models.DataIdentifier.name
            if op not in ("", "ne"):
                raise exception.DIDFilterSyntaxError("name filters take = or != only")
            text = str(value)
            cond = names.like(like(text), escape="\\") if "*" in text else names == text
            return ~cond if op == "ne" else cond
        try:
            key_spec = spec(scope, base)
        except exception.InvalidMetadata as err:
            raise exception.DIDFilterSyntaxError(f"filter {key}: {err.args[0]}") from None
        column = DID_META.c[VALUE_COLUMNS[key_spec.type]]
        if key_spec.type == "str" and isinstance(value, str) and "*" in value and op in ("", "ne"):
            match = column.like(like(value), escape="\\")
            match = ~match if op == "ne" else match
        else:
            try:
                typed = key_spec.coerce(value)
            except MetadataValueError as err:
                raise exception.DIDFilterSyntaxError(header_safe(f"filter {key}: {err}")) from None
            match = _OPERATORS[op](column, typed)
        return exists().where(DID_META.c.scope == models.DataIdentifier.scope,
                              DID_META.c.name == models.DataIdentifier.name, DID_META.c.key == base, match)

    @stream_session
    def list_dids(self, scope: InternalScope, filters: Any, did_type: str = "collection", ignore_case: bool = False,
                  limit: int | None = None, offset: int | None = None, long: bool = False, recursive: bool = False,
                  ignore_dids: set[str] | None = None, *, session: Session) -> Iterator[str | dict[str, Any]]:
        """DIDs of a scope whose run metadata match the filters (all DID types unless file/dataset/container)."""
        if recursive:
            raise exception.UnsupportedOperation("the run-metadata plugin does not search recursively")
        if not ensure_table(session, create=False):
            return
        groups = [filters] if isinstance(filters, dict) else list(filters or [{}])
        seen = ignore_dids if ignore_dids is not None else set()
        dids = models.DataIdentifier
        clauses = [and_(true(), *(self._condition(scope, k, v) for k, v in g.items() if k != "type")) for g in groups]
        stmt = select(dids.scope, dids.name, dids.did_type, dids.bytes, dids.length)\
            .where(dids.scope == scope, dids.suppressed != true(), or_(*clauses)).order_by(dids.name)
        if did_type in _TYPES:
            stmt = stmt.where(dids.did_type.in_(_TYPES[did_type]))
        if offset:
            stmt = stmt.offset(offset)
        if limit:
            stmt = stmt.limit(limit)
        for row in session.execute(stmt).all():
            full = f"{row.scope}:{row.name}"
            if full in seen:
                continue
            seen.add(full)
            if long:
                yield {"scope": row.scope, "name": row.name, "did_type": row.did_type.name,
                       "bytes": row.bytes, "length": row.length}
            else:
                yield row.name


def _check_deletion(scope: InternalScope, name: str, key: str, session: Session) -> None:
    """Refuse a metadata deletion the policy does not allow to the caller of the REST request being served."""
    issuer = request.issuer()
    if issuer is None:
        return  # a daemon or an in-process call: not a user's request
    from rucio_policies.permission import decide

    decision = decide(issuer, "delete_metadata", {"scope": scope, "name": name, "key": key}, session)
    if decision is not None and not decision.allowed:
        LOGGER.info("denied delete_metadata %s:%s %s to %s: %s", scope, name, key, issuer, decision.message)
        request.refuse(exception.AccessDenied(decision.message), 403)


def _releasecolumn_keys() -> None:
    """Route metadata keys that are also Rucio DID columns (run_number) to this plugin, not to DID_COLUMN."""
    original = DidColumnMeta.manages_key
    if getattr(original, "_psge_releases", False):
        return

    def manages_key(self: DidColumnMeta, key: str, *, session: Session | None = None) -> bool:
        if key in column_keys():
            return False
        return original(self, key, session=session)

    manages_key._psge_releases = True  # type: ignore[attr-defined]
    DidColumnMeta.manages_key = manages_key  # type: ignore[method-assign]


_releasecolumn_keys()
web.install()  # the plugin loads with Rucio's REST app: guard its error headers from the start
