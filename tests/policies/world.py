"""The testbed as the policy tests see it: accounts by role, fresh DIDs and rules made as root, REST calls."""

from __future__ import annotations

import itertools
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import requests
from rucio.common.exception import DataIdentifierNotFound, Duplicate, RucioException, RuleNotFound

from rucio_policies.experiments import registry_of

TAPE_RSE = "POLICY_TAPE"
FOREIGN_SCOPE = "psge-foreign"
_RUNS = itertools.count(random.randrange(10**6, 10**9, 10**4), 100)  # blocks of 100 fresh run numbers


class _RetryLocked:
    """Root's client for setup and probes: retries SQLite's 'database is locked' (the testbed's daemons write too).

    Only arrange/probe calls go through this; the action under test is never retried.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(6):
                try:
                    out = method(*args, **kwargs)
                    return list(out) if isinstance(out, Iterator) else out
                except RucioException as err:
                    if "database is locked" not in str(err) or attempt == 5:
                        raise
                    time.sleep(0.2 * (attempt + 1))
            raise AssertionError("unreachable")
        return call


class World:
    """Accounts, scopes and RSEs of the testbed, plus helpers that create fresh DIDs and rules as root."""

    def __init__(self, tb: Any) -> None:
        self.tb = tb
        p = tb.profile
        self.reg = registry_of([p])
        self.raw, self.tag = p.scopes.raw[0], p.naming.tags[0]
        self.sim = (p.scopes.sim or p.scopes.analysis)[0]
        self.analysis = (p.scopes.analysis or p.scopes.sim)[0]
        self.accounts = {role: p.accounts_with(role)[0].name
                         for role in ("root", "daq", "data-manager", "production", "user")}
        self.user_scope = f"{p.scopes.user_prefix}{self.accounts['user']}"
        self.disk = tb.rses[0]
        self.clients = {role: tb.client(name) for role, name in self.accounts.items()}
        self.root = _RetryLocked(self.clients["root"])
        self.statuses: list[int] = []  # final HTTP status of each client request, newest last
        for client in self.clients.values():
            self._record_statuses(client)
        self._setup()

    def _record_statuses(self, client: Any) -> None:
        send = client._send_request  # after its own retries (a 401 makes the client log in again and retry)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            result = send(*args, **kwargs)
            self.statuses.append(result.status_code)
            return result
        client._send_request = recorded

    def _setup(self) -> None:
        for scope, owner in [*((s, "root") for s in self.tb.profile.scopes.all),
                             (self.user_scope, self.accounts["user"]), (FOREIGN_SCOPE, "root")]:
            try:
                self.root.add_scope(owner, scope)
            except Duplicate:
                pass
        try:
            self.root.add_rse(TAPE_RSE, rse_type="TAPE")
        except Duplicate:
            pass
        for name in self.accounts.values():
            for rse in (self.disk, TAPE_RSE):
                self.root.set_local_account_limit(name, rse, 10**15)

    def run(self) -> int:
        """A fresh run number, the first of a block of 100 nobody else uses."""
        return next(_RUNS)

    def raw_name(self, run: int | None = None) -> str:
        """A fresh raw file name `<TAG>/run<N><suffix>`."""
        n = self.tb.profile.naming
        return f"{self.tag}/run{run if run is not None else self.run():0{n.run_digits_min}d}{n.raw_suffix}"

    def raw_file(self, run: int | None = None) -> str:
        """A raw file registered (as root) on the disk RSE."""
        name = self.raw_name(run)
        self.root.add_replica(self.disk, self.raw, name, 1, "00000001")
        return name

    def dataset(self, scope: str | None = None, files: list[str] = ()) -> str:  # type: ignore[assignment]
        """A fresh dataset (as root), optionally holding raw files."""
        scope = scope or self.raw
        name = f"{self.tag}/ds{uuid.uuid4().hex[:12]}"
        self.root.add_dataset(scope, name)
        if files:
            self.root.attach_dids(scope, name, [{"scope": self.raw, "name": f} for f in files])
        return name

    def rule(self, name: str, rse: str, account: str = "root", locked: bool = False) -> str:
        """A rule on a raw DID (created as root for `account`)."""
        return self.root.add_replication_rule([{"scope": self.raw, "name": name}], 1, rse, account=account,
                                              locked=locked)[0]

    # probes: what root sees
    def exists(self, scope: str, name: str) -> bool:
        """Whether a DID exists."""
        try:
            self.root.get_did(scope, name)
            return True
        except DataIdentifierNotFound:
            return False

    def content(self, scope: str, name: str) -> list[str]:
        """Names attached to a collection."""
        return sorted(d["name"] for d in self.root.list_content(scope, name))

    def meta(self, scope: str, name: str) -> dict[str, Any]:
        """Run metadata of a DID."""
        return self.root.get_metadata(scope, name, plugin="RUN_META")

    def rule_state(self, rule_id: str) -> tuple[Any, ...] | None:
        """(locked, expires_at) of a rule, None once removed."""
        try:
            r = self.root.get_replication_rule(rule_id)
        except RuleNotFound:
            return None
        return r["locked"], r["expires_at"]

    def rules_on(self, scope: str, name: str) -> list[str]:
        """Ids of the rules on a DID."""
        return sorted(r["id"] for r in self.root.list_did_rules(scope, name))

    def replicas(self, scope: str, name: str) -> dict[str, str]:
        """RSE -> replica state of a file."""
        out = list(self.root.list_replicas([{"scope": scope, "name": name}], all_states=True))
        return dict(out[0].get("states", {})) if out else {}

    def expiry(self, scope: str, name: str) -> Any:
        """The DID's expiry (set through the 'lifetime' key)."""
        return self.root.get_metadata(scope, name)["expired_at"]

    def rest(self, role: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A plain REST call to the Rucio server as the account of `role` (its client's token)."""
        client = self.clients[role]
        headers = {"X-Rucio-Auth-Token": client.auth_token, **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.tb.rucio_url}{path}", headers=headers, timeout=120, **kwargs)
