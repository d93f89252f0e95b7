"""Rucio schema module: account and scope names follow the profile rules; DID names are checked by the policy.

Rucio validates schemas before it asks the permission policy, and several of its REST views (POST /replicas,
PUT /replicas, POST /dids, attachments) answer a schema refusal with a 500. So a DID name is any non-empty
string here, and the naming rules (rucio_policies.naming) are applied by the permission policy on every
action that creates a DID, which answers 403 AccessDenied with a message naming the rule.
"""

from __future__ import annotations

import logging
from typing import Any

from rucio.common.schema import generic

from cygno_dm.profile import ACCOUNT_RE, SCOPE_RE
from rucio_policies.naming import RUCIO_NAME_LENGTH

LOGGER = logging.getLogger(__name__)


def _anchored(pattern: str) -> str:
    """A fullmatch-style pattern usable with re.search (JSON-schema semantics): no newline before the end."""
    return pattern.removesuffix("$") + r"\Z"


ACCOUNT: dict[str, Any] = {"description": f"rule account-name: account names match {ACCOUNT_RE.pattern}",
                           "type": "string", "maxLength": 25, "pattern": _anchored(ACCOUNT_RE.pattern)}
SCOPE: dict[str, Any] = {"description": f"rule scope-name: scope names match {SCOPE_RE.pattern}",
                         "type": "string", "maxLength": 25, "pattern": _anchored(SCOPE_RE.pattern)}
NAME: dict[str, Any] = {"description": "Data Identifier name (naming rules: the permission policy)",
                        "type": "string", "minLength": 1, "maxLength": RUCIO_NAME_LENGTH}

# Rucio's generic schemas refer to NAME, SCOPE and ACCOUNT by reference, so they resolve to the ones above.
SCHEMAS: dict[str, Any] = {**generic.SCHEMAS, "account": ACCOUNT,
                           "scope": SCOPE, "name": NAME}
