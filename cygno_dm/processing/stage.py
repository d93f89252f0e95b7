"""Recall a file from tape: one staging rule (with a lifetime) to the profile's staging disk, reused on re-runs, and
a wait until Rucio's conveyor and the transfer service have brought it online and copied it there."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from cygno_dm.processing.catalog import ProcessingCatalog
from cygno_dm.processing.errors import ProcessingError, Unavailable

log = logging.getLogger(__name__)

COMMENT = "cygno-dm processing: recall from tape for reconstruction"
LIVE = ("OK", "REPLICATING", "STUCK", "INJECT", "WAITING_APPROVAL")


def staging_rule(catalog: ProcessingCatalog, scope: str, name: str, rse: str, lifetime: int) -> tuple[str, bool]:
    """The id of a live rule putting scope:name on `rse` (ours first, else anyone's, else a new one of ours),
    and whether it was created now."""
    for rule in catalog.rules_on(scope, name, rse):
        if rule["state"] in LIVE:
            log.info("%s:%s: reusing rule %s (%s, account %s) to %s", scope, name, rule["id"], rule["state"],
                     rule["account"], rse)
            return rule["id"], False
    rule_id = catalog.add_rule(scope, name, rse, lifetime, COMMENT)
    if rule_id is None:  # an equal rule of ours appeared meanwhile (another process staging the same run)
        rule_id = next(r["id"] for r in catalog.rules_on(scope, name, rse) if r["account"] == catalog.account)
        return rule_id, False
    log.info("%s:%s: staging rule %s to %s (lifetime %d s)", scope, name, rule_id, rse, lifetime)
    return rule_id, True


def release_rule(catalog: ProcessingCatalog, rule_id: str) -> bool:
    """End a recall rule once its file is no longer needed on disk, if it is this account's (another account's
    rule is theirs to keep): it expires now; whether it was ended now."""
    rule = catalog.rule_or_none(rule_id)
    if rule is None or rule["account"] != catalog.account:
        return False
    catalog.expire_rule(rule_id)
    log.info("%s:%s: staging rule %s to %s released (expires now)", rule["scope"], rule["name"], rule_id,
             rule["rse_expression"])
    return True


def wait_rule(catalog: ProcessingCatalog, did: str, rule_id: str, timeout: float, poll: float = 2.0,
              on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Poll the rule until it is OK; Unavailable with its state and error when `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        rule = catalog.rule(rule_id)
        if on_update:
            on_update(rule)
        if rule["state"] == "OK":
            return rule
        if rule["state"] not in LIVE:
            raise ProcessingError(f"{did}: staging rule {rule_id} is {rule['state']}: {rule.get('error') or ''}")
        if time.monotonic() >= deadline:
            error = f" ({rule['error']})" if rule.get("error") else ""
            raise Unavailable(f"{did}: staging rule {rule_id} to {rule['rse_expression']} is still "
                                  f"{rule['state']} after {timeout:.0f} s{error}; run again later to pick it up")
        time.sleep(poll)
