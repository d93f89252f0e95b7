"""Rucio schema module: DID, scope and account names validated against the experiment profiles."""

from __future__ import annotations

import logging
from typing import Any

from rucio.common.schema import generic

from cygno_dm.profile import ACCOUNT_RE, SCOPE_RE
from rucio_policies.experiments import Experiment, Registry, registry
from rucio_policies.naming import (
    GENERIC_RULES,
    RUCIO_NAME_LENGTH,
    max_length,
    raw_collection_rule,
    raw_file_rule,
)

LOGGER = logging.getLogger(__name__)


def _anchored(pattern: str) -> str:
    """A fullmatch-style pattern usable with re.search (JSON-schema semantics): no newline before the end."""
    return pattern.removesuffix("$") + r"\Z"


def account_schema() -> dict[str, Any]:
    """Account names follow the profile's account rule."""
    return {"description": f"rule account-name: account names match {ACCOUNT_RE.pattern}",
            "type": "string", "maxLength": 25, "pattern": _anchored(ACCOUNT_RE.pattern)}


def scope_schema() -> dict[str, Any]:
    """Scope names follow the profile's scope rule."""
    return {"description": f"rule scope-name: scope names match {SCOPE_RE.pattern}",
            "type": "string", "maxLength": 25, "pattern": _anchored(SCOPE_RE.pattern)}


def name_schema() -> dict[str, Any]:
    """The rules every DID name follows, whatever its scope."""
    return {"description": "Data Identifier name", "type": "string", "minLength": 1,
            "maxLength": RUCIO_NAME_LENGTH, "allOf": [r.schema() for r in GENERIC_RULES]}


def _experiment_scopes(exp: Experiment) -> dict[str, Any]:
    users = [exp.user_scope(a) for a in exp.roles if exp.user_account(exp.user_scope(a)) == a]
    return {"enum": sorted(exp.scopes | set(users))}


def _typed(scopes: list[str], types: list[str] | None) -> dict[str, Any]:
    cond: dict[str, Any] = {"properties": {"scope": {"enum": scopes}}, "required": ["scope"]}
    if types is None:
        cond["not"] = {"required": ["type"]}
    else:
        cond["properties"]["type"] = {"enum": types}
        cond["required"] = ["scope", "type"]
    return cond


def did_conditions(reg: Registry, with_type: bool = True) -> list[dict[str, Any]]:
    """Per-experiment JSON-schema conditions on {scope, name[, type]} objects: raw naming and name length."""
    out: list[dict[str, Any]] = []
    for exp in reg.experiments:
        limit = max_length(exp)
        if limit < RUCIO_NAME_LENGTH:
            out.append({"if": {"properties": {"scope": _experiment_scopes(exp)}, "required": ["scope"]},
                        "then": {"properties": {"name": {
                            "description": f"rule max-length: names in scopes of {exp.name} have at most {limit} characters",
                            "maxLength": limit}}}})
        raw = sorted(exp.raw_scopes)
        if not raw:
            continue
        file_rule, coll_rule = raw_file_rule(exp).schema(), raw_collection_rule(exp).schema()
        if with_type:
            out.append({"if": _typed(raw, ["FILE", "F"]), "then": {"properties": {"name": file_rule}}})
            out.append({"if": _typed(raw, ["DATASET", "CONTAINER"]), "then": {"properties": {"name": coll_rule}}})
            out.append({"if": _typed(raw, None), "then": {"properties": {"name": {"anyOf": [file_rule, coll_rule]}}}})
        else:
            out.append({"if": _typed(raw, None), "then": {"properties": {"name": coll_rule}}})
    return out


def build(reg: Registry) -> dict[str, dict[str, Any]]:
    """The schemas this package changes, keyed like Rucio's SCHEMAS."""
    account, scope, name = account_schema(), scope_schema(), name_schema()
    did = {**generic.DID, "properties": {**generic.DID["properties"], "scope": scope, "name": name},
           "allOf": did_conditions(reg)}
    dids = {**generic.DIDS, "items": did}
    collection = {**generic.COLLECTION, "properties": {**generic.COLLECTION["properties"], "scope": scope, "name": name},
                  "allOf": did_conditions(reg)}
    attachment = {**generic.ATTACHMENT,
                  "properties": {**generic.ATTACHMENT["properties"], "scope": scope, "name": name, "dids": dids},
                  "allOf": did_conditions(reg, with_type=False)}
    return {
        "account": account,
        "accounts": {**generic.ACCOUNTS, "items": account},
        "scope": scope,
        "name": name,
        "did": did,
        "dids": dids,
        "collection": collection,
        "collections": {**generic.COLLECTIONS, "items": collection},
        "attachment": attachment,
        "attachments": {**generic.ATTACHMENTS, "items": attachment},
    }


_BUILT = build(registry())

ACCOUNT = _BUILT["account"]
ACCOUNTS = _BUILT["accounts"]
SCOPE = _BUILT["scope"]
NAME = _BUILT["name"]
DID = _BUILT["did"]
DIDS = _BUILT["dids"]
COLLECTION = _BUILT["collection"]
COLLECTIONS = _BUILT["collections"]
ATTACHMENT = _BUILT["attachment"]
ATTACHMENTS = _BUILT["attachments"]

SCHEMAS: dict[str, Any] = {**generic.SCHEMAS, **_BUILT}
