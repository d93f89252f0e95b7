"""What the uploader asks of Rucio: PFNs, DIDs, replicas, metadata, datasets, rules and locks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rucio.common.exception import (
    DataIdentifierAlreadyExists,
    DataIdentifierNotFound,
    Duplicate,
    DuplicateRule,
    FileAlreadyExists,
    RucioException,
)

from cygno_dm.ingest.checksums import Checksums
from cygno_dm.profile import Rule

log = logging.getLogger(__name__)

class CatalogUnavailable(RuntimeError):
    """Rucio cannot be reached (or fails server-side): retry later."""


class RuleFailed(RuntimeError):
    """Rucio refused a replication rule (bad RSE expression, quota, permission); the message says which."""


class Conflict(RuntimeError):
    """Rucio already holds this name with other content."""


@dataclass(frozen=True)
class Replica:
    """One replica of a file: RSE, state letter-word (AVAILABLE, COPYING, ...) and its PFN if known."""

    rse: str
    state: str
    pfn: str | None


def _transient(err: Exception) -> bool:
    import requests
    from rucio.common.exception import CannotAuthenticate, DatabaseException, ServerConnectionException

    if isinstance(err, requests.RequestException | ServerConnectionException | DatabaseException
                  | CannotAuthenticate | ConnectionError | TimeoutError):
        return True
    # A bare RucioException is the client's rendering of an unexpected server-side error (HTTP 500, a locked
    # SQLite database): retry. Its subclasses (not found, access denied, ...) are answers, not outages.
    return type(err) is RucioException


class Catalog:
    """Rucio operations of the uploader, each idempotent; connection failures become CatalogUnavailable."""

    def __init__(self, client_factory: Callable[[], Any], account: str) -> None:
        self._factory = client_factory
        self.account = account
        self._local = threading.local()
        self._rse_info: dict[str, dict[str, Any]] = {}
        self._rse_attrs: dict[str, dict[str, Any]] = {}
        self._refused: dict[str, str] = {}

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        c = getattr(self._local, "client", None)
        if c is None:
            try:
                c = self._factory()
            except Exception as err:
                raise CatalogUnavailable(f"Rucio unavailable: cannot create a client: {err}") from err
            self._local.client = c
        return c

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if _transient(err):
                self._local.client = None
                raise CatalogUnavailable(f"{what}: Rucio unavailable: {type(err).__name__}: {err}") from err
            raise

    # -- RSEs --------------------------------------------------------------------------------
    def rse_info(self, rse: str) -> dict[str, Any]:
        """RSE settings with protocols, as rsemanager wants them (cached)."""
        if rse not in self._rse_info:
            self._rse_info[rse] = self._call(f"RSE {rse}", self.client.get_rse, rse)
        return self._rse_info[rse]

    def rse_attributes(self, rse: str) -> dict[str, Any]:
        """RSE attributes (cached)."""
        if rse not in self._rse_attrs:
            self._rse_attrs[rse] = self._call(f"RSE {rse}", self.client.list_rse_attributes, rse)
        return self._rse_attrs[rse]

    def is_tape(self, rse: str) -> bool:
        """Whether the RSE is tape (type TAPE, or attribute istape/staging_required)."""
        attrs = self.rse_attributes(rse)
        return (self.rse_info(rse).get("rse_type") == "TAPE" or str(attrs.get("istape", "")).lower() == "true"
                or str(attrs.get("staging_required", "")).lower() == "true")

    def pfn(self, rse: str, scope: str, name: str, operation: str = "write") -> str:
        """The PFN Rucio's lfn2pfn gives for this DID on this RSE (what `rucio download` will read)."""
        from rucio.rse import rsemanager

        info = self.rse_info(rse)
        pfns = rsemanager.lfns2pfns(info, [{"scope": scope, "name": name}], operation=operation)
        return pfns[f"{scope}:{name}"]

    def rses(self, expression: str) -> list[str]:
        """RSE names matching an expression."""
        return [r["rse"] for r in self._call(f"RSEs {expression}", self.client.list_rses, expression)]

    # -- files -------------------------------------------------------------------------------
    def get_file(self, scope: str, name: str) -> dict[str, Any] | None:
        """The DID of a file (bytes, adler32, md5, type), or None."""
        try:
            return self._call(f"{scope}:{name}", self.client.get_did, scope, name)
        except DataIdentifierNotFound:
            return None

    def check_same(self, scope: str, name: str, sums: Checksums) -> bool:
        """True if the DID exists with these bytes/checksums, False if absent; raise Conflict if it differs."""
        did = self.get_file(scope, name)
        if did is None:
            return False
        if did.get("type", "FILE").upper() != "FILE":
            raise Conflict(f"{scope}:{name} exists as a {did['type']}, not a file")
        theirs = (did.get("bytes"), (did.get("adler32") or "").lower(), (did.get("md5") or sums.md5).lower())
        if theirs != (sums.size, sums.adler32, sums.md5):
            raise Conflict(f"{scope}:{name} is registered with bytes={theirs[0]} adler32={theirs[1]}, "
                           f"the local file has bytes={sums.size} adler32={sums.adler32}")
        return True

    def replicas(self, scope: str, name: str) -> list[Replica]:
        """All replicas of a file in any state, with PFNs where Rucio gives them."""
        rows = list(self._call(f"{scope}:{name}", self.client.list_replicas, [{"scope": scope, "name": name}],
                               all_states=True, ignore_availability=True))
        out = []
        for row in rows:
            pfns = row.get("rses", {})
            for rse, state in row.get("states", {}).items():
                out.append(Replica(rse, str(state), (pfns.get(rse) or [None])[0]))
        return out

    def add_replica(self, rse: str, scope: str, name: str, sums: Checksums, pfn: str | None = None) -> bool:
        """Register an AVAILABLE replica (creates the file DID); False if it was already there."""
        f: dict[str, Any] = {"scope": scope, "name": name, "bytes": sums.size, "adler32": sums.adler32,
                             "md5": sums.md5}
        if pfn and not self.rse_info(rse).get("deterministic", True):
            f["pfn"] = pfn
        try:
            self._call(f"{scope}:{name}", self.client.add_replicas, rse, [f])
            return True
        except Duplicate:
            return False

    # -- bulk calls (one request for many files; the callers fall back to the one-file calls on any refusal) --
    def dids_registered(self, scope: str, names: list[str]) -> set[str]:
        """The names among `names` that are DIDs of `scope` (with or without replicas), in one call."""
        dids = [{"scope": scope, "name": n} for n in names]
        rows = self._call(f"{len(dids)} DIDs in {scope}", lambda: list(
            self.client.get_metadata_bulk(dids, inherit=False, plugin="DID_COLUMN")))
        return {row["name"] for row in rows if row.get("scope", scope) == scope}

    def files_known(self, scope: str, names: list[str], rse_expression: str | None = None) -> dict[str, dict[str, Any]]:
        """The files among `names` with replicas (on `rse_expression` if given), by name: bytes, adler32, md5 and
        replica states per RSE."""
        dids = [{"scope": scope, "name": n} for n in names]
        rows = self._call(f"{len(dids)} DIDs in {scope}", lambda: list(
            self.client.list_replicas(dids, all_states=True, ignore_availability=True, rse_expression=rse_expression)))
        return {row["name"]: row for row in rows if row.get("scope", scope) == scope}

    def add_replicas_bulk(self, rse: str, files: list[tuple[str, str, Checksums, str | None]]) -> None:
        """Register AVAILABLE replicas of (scope, name, sums, pfn) files in one call; any refusal refuses all."""
        deterministic = self.rse_info(rse).get("deterministic", True)
        rows = []
        for scope, name, sums, pfn in files:
            row: dict[str, Any] = {"scope": scope, "name": name, "bytes": sums.size, "adler32": sums.adler32,
                                   "md5": sums.md5}
            if pfn and not deterministic:
                row["pfn"] = pfn
            rows.append(row)
        self._call(f"{len(rows)} replicas on {rse}", self.client.add_replicas, rse, rows)

    def add_file_rules(self, scope: str, names: list[str], rse: str, lifetime: int | None) -> list[str]:
        """One landing rule per file, all in one call (raises DuplicateRule if any of them exists)."""
        return self._call(f"{len(names)} landing rules on {rse}", self.client.add_replication_rule,
                          [{"scope": scope, "name": n} for n in names], 1, rse, lifetime=lifetime,
                          account=self.account, comment="cygno-dm ingest: landing copy")

    def set_meta_many(self, scope: str, metas: dict[str, dict[str, Any]]) -> None:
        """Metadata of many DIDs in one call (keys refused before are left out); raises if Rucio refuses any."""
        dids = [{"scope": scope, "name": n, "meta": {k: v for k, v in m.items()
                                                    if v is not None and k not in self._refused}}
                for n, m in metas.items()]
        dids = [d for d in dids if d["meta"]]
        if dids:
            self._call(f"metadata of {len(dids)} DIDs", self.client.set_dids_metadata_bulk, dids)

    def attach_many(self, scope: str, dataset: str, names: list[str]) -> None:
        """Attach files to a dataset in one call; files already attached are fine."""
        self._call(f"{scope}:{dataset}", self.client.attach_dids_to_dids,
                   [{"scope": scope, "name": dataset, "dids": [{"scope": scope, "name": n} for n in names]}],
                   ignore_duplicate=True)

    def ensure_file_rule(self, scope: str, name: str, rse: str, lifetime: int | None) -> bool:
        """A rule of ours keeping the file on `rse` (created once); True if created now."""
        rules = self._call(f"{scope}:{name}", self.client.list_did_rules, scope, name)
        if any(r["account"] == self.account and r["rse_expression"] == rse for r in rules):
            return False
        try:
            self._call(f"{scope}:{name}", self.client.add_replication_rule, [{"scope": scope, "name": name}], 1, rse,
                       lifetime=lifetime, account=self.account, comment="cygno-dm ingest: landing copy")
        except DuplicateRule:
            return False
        return True

    # -- metadata ----------------------------------------------------------------------------
    def set_meta(self, scope: str, name: str, meta: dict[str, Any]) -> list[str]:
        """Set DID metadata (same values again are fine); return the keys Rucio refused, with why."""
        meta = {k: v for k, v in meta.items() if v is not None and k not in self._refused}
        if not meta:
            return []
        try:
            self._call(f"{scope}:{name}", self.client.set_metadata_bulk, scope, name, meta)
            return []
        except RucioException as err:
            if isinstance(err, CatalogUnavailable):
                raise
            first = err
        refused = []
        for key, value in meta.items():  # find the keys this server or policy does not take
            try:
                self._call(f"{scope}:{name}", self.client.set_metadata_bulk, scope, name, {key: value})
            except RucioException as err:
                if "overwrite" in str(err):  # a different value is stored already: keep it, say so
                    log.error("%s:%s metadata %s not changed: %s", scope, name, key, str(err).splitlines()[-1])
                    refused.append(key)
                    continue
                self._refused[key] = str(err).splitlines()[-1][:200]
                refused.append(key)
        if refused:
            log.warning("%s:%s metadata keys refused by Rucio: %s (first error: %s)", scope, name,
                        ", ".join(f"{k} ({self._refused.get(k, 'stored value differs')})" for k in refused), str(first).splitlines()[-1])
        return refused

    @property
    def refused_keys(self) -> dict[str, str]:
        """Metadata keys Rucio refused so far, with the reason (skipped from then on)."""
        return dict(self._refused)

    def get_meta(self, scope: str, name: str) -> dict[str, Any]:
        """All metadata of a DID."""
        try:
            return self._call(f"{scope}:{name}", self.client.get_metadata, scope, name, plugin="ALL")
        except RucioException:
            return self._call(f"{scope}:{name}", self.client.get_metadata, scope, name)

    # -- datasets ----------------------------------------------------------------------------
    def ensure_dataset(self, scope: str, name: str, meta: dict[str, Any]) -> bool:
        """Create the dataset if absent; True if created now."""
        try:
            self._call(f"{scope}:{name}", self.client.add_dataset, scope, name, meta=meta or None)
            log.info("%s:%s dataset created", scope, name)
            return True
        except (DataIdentifierAlreadyExists, Duplicate):
            return False

    def ensure_rules(self, scope: str, name: str, rules: list[Rule]) -> list[str]:
        """Create each profile rule on the dataset unless an equal rule of ours exists; return new rule ids.

        Every rule is tried; if any fails, RuleFailed names each failure (the others are created anyway).
        """
        existing = self._call(f"{scope}:{name}", self.client.list_did_rules, scope, name)
        have = {(r["rse_expression"], r["copies"]) for r in existing if r["account"] == self.account}
        created, failed = [], []
        for rule in rules:
            if (rule.rse_expression, rule.copies) in have:
                continue
            try:
                ids = self._call(f"{scope}:{name}", self.client.add_replication_rule, [{"scope": scope, "name": name}],
                                 rule.copies, rule.rse_expression, account=self.account, notify=rule.notify,
                                 lifetime=rule.lifetime_days * 86400 if rule.lifetime_days else None,
                                 comment="cygno-dm ingest: profile replication")
                created += ids
                log.info("%s:%s rule %s on %s (copies %d)", scope, name, ids, rule.rse_expression, rule.copies)
            except DuplicateRule:
                pass
            except RucioException as err:
                if isinstance(err, CatalogUnavailable):
                    raise
                failed.append(f"{rule.rse_expression}: {type(err).__name__}: {str(err).splitlines()[-1]}")
        if failed:
            raise RuleFailed(f"{scope}:{name}: replication rule(s) refused: {'; '.join(failed)}")
        return created

    def attach(self, scope: str, dataset: str, name: str) -> bool:
        """Attach a file to a dataset; False if it was already attached."""
        try:
            self._call(f"{scope}:{name}", self.client.attach_dids, scope, dataset, [{"scope": scope, "name": name}])
            return True
        except (FileAlreadyExists, Duplicate):
            return False

    def in_dataset(self, scope: str, dataset: str, name: str) -> bool:
        """Whether the file is attached to the dataset."""
        parents = self._call(f"{scope}:{name}", self.client.list_parent_dids, scope, name)
        return any(p["scope"] == scope and p["name"] == dataset for p in parents)

    def dataset_files(self, scope: str, dataset: str) -> int:
        """Number of files attached to a dataset."""
        return len(list(self._call(f"{scope}:{dataset}", self.client.list_files, scope, dataset)))

    def dataset_open(self, scope: str, dataset: str) -> bool:
        """Whether the dataset is open."""
        return bool(self._call(f"{scope}:{dataset}", self.client.get_did, scope, dataset).get("open", True))

    def close(self, scope: str, dataset: str) -> None:
        """Close a dataset."""
        self._call(f"{scope}:{dataset}", self.client.close, scope, dataset)
        log.info("%s:%s dataset closed", scope, dataset)
