"""The uploader's Rucio wrapper, plus what processing asks: DID queries, rules, signed read PFNs, bad replicas."""

from __future__ import annotations

import logging
from typing import Any

from rucio.common.exception import DataIdentifierNotFound, DuplicateRule, RucioException, RuleNotFound

from cygno_dm.ingest.catalog import Catalog
from cygno_dm.processing.errors import ProcessingError

log = logging.getLogger(__name__)


def last_line(err: Exception) -> str:
    """The informative last line of a Rucio exception's text."""
    text = str(err).strip()
    return text.splitlines()[-1].removeprefix("Details: ") if text else type(err).__name__


class ProcessingCatalog(Catalog):
    """Rucio operations of the processing, each raising CatalogUnavailable on outages."""

    def list_dids(self, scope: str, filters: list[dict[str, Any]], what: str) -> list[str]:
        """Names of the files of `scope` matching DID filters (as `rucio did list --filter` does)."""
        try:
            return list(self._call(what, self.client.list_dids, scope, filters, did_type="file"))
        except DataIdentifierNotFound:
            return []
        except RucioException as err:
            if type(err) is RucioException:
                raise
            raise ProcessingError(f"{what}: Rucio refused the query: {last_line(err)}") from None

    def files_of(self, scope: str, name: str) -> list[tuple[str, str]]:
        """(scope, name) of the files in a dataset or container."""
        return [(f["scope"], f["name"]) for f in self._call(f"{scope}:{name}", self.client.list_files, scope, name)]

    def read_pfns(self, scope: str, name: str, rse: str) -> list[str]:
        """PFNs to read the replica on `rse` (signed by the server where the RSE needs it)."""
        rows = list(self._call(f"{scope}:{name}", self.client.list_replicas, [{"scope": scope, "name": name}],
                               rse_expression=rse))
        return list(rows[0].get("rses", {}).get(rse, [])) if rows else []

    def rules_on(self, scope: str, name: str, rse_expression: str) -> list[dict[str, Any]]:
        """Rules on a DID with this RSE expression, this account's first."""
        rules = [r for r in self._call(f"{scope}:{name}", self.client.list_did_rules, scope, name)
                 if r["rse_expression"] == rse_expression]
        return sorted(rules, key=lambda r: r["account"] != self.account)

    def add_rule(self, scope: str, name: str, rse_expression: str, lifetime: int | None, comment: str) -> str | None:
        """A one-copy rule of this account; None if an equal rule of ours exists."""
        try:
            return self._call(f"{scope}:{name}", self.client.add_replication_rule, [{"scope": scope, "name": name}],
                              1, rse_expression, lifetime=lifetime, account=self.account, comment=comment)[0]
        except DuplicateRule:
            return None

    def rule(self, rule_id: str) -> dict[str, Any]:
        """A rule's current state."""
        return self._call(f"rule {rule_id}", self.client.get_replication_rule, rule_id)

    def rule_or_none(self, rule_id: str) -> dict[str, Any] | None:
        """A rule's current state, or None if it is gone (expired, removed)."""
        try:
            return self.rule(rule_id)
        except RuleNotFound:
            return None

    def expire_rule(self, rule_id: str) -> None:
        """End a rule now: its lifetime becomes 0 and the judge-cleaner removes it on its next pass (a deletion
        through the API only sets it to expire in an hour); nothing if it is gone already."""
        try:
            self._call(f"rule {rule_id}", self.client.update_replication_rule, rule_id, {"lifetime": 0})
        except RuleNotFound:
            pass

    def declare_suspicious(self, scope: str, name: str, rse: str, reason: str) -> None:
        """Tell Rucio a replica looks corrupt (its recoverer acts after repeated declarations); best effort."""
        try:
            pfn = self.pfn(rse, scope, name, operation="read")
            self._call(f"{scope}:{name}", self.client.declare_suspicious_file_replicas, [pfn], reason)
            log.info("%s:%s on %s declared suspicious: %s", scope, name, rse, reason)
        except Exception as err:  # a report that failed must not hide the error being reported
            log.warning("%s:%s on %s: could not declare the replica suspicious: %s", scope, name, rse, err)
