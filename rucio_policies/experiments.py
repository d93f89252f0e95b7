"""The experiments a shared (PSGE) Rucio serves: scopes, accounts and RSEs mapped to their experiment profile."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cygno_dm.profile import PROFILE_ENV, Profile, ProfileError, load_profile

LOGGER = logging.getLogger(__name__)

GLOBAL_ROLES = frozenset({"root"})
DATA_TYPES = ("raw", "sim", "analysis")
CONFIG_SECTION, CONFIG_OPTION = "psge", "experiments"  # Rucio config option listing the onboarded profiles
REFRESH_S = 5.0


@dataclass(frozen=True)
class Experiment:
    """One experiment profile, seen from the policy's side."""

    profile: Profile
    name: str = field(init=False)
    raw_scopes: frozenset[str] = field(init=False)
    scopes: frozenset[str] = field(init=False)
    user_prefix: str = field(init=False)
    roles: dict[str, str] = field(init=False)
    rses: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        p = self.profile
        object.__setattr__(self, "name", p.experiment.name)
        object.__setattr__(self, "raw_scopes", frozenset(p.scopes.raw))
        object.__setattr__(self, "scopes", frozenset(p.scopes.all))
        object.__setattr__(self, "user_prefix", p.scopes.user_prefix)
        object.__setattr__(self, "roles", {a.name: a.role for a in p.accounts})
        object.__setattr__(self, "rses", frozenset(p.rses))

    def data_type(self, scope: str) -> str | None:
        """'raw', 'sim', 'analysis' or 'user' for a scope of this experiment, else None."""
        for dtype in DATA_TYPES:
            if scope in getattr(self.profile.scopes, dtype):
                return dtype
        if self.user_account(scope) is not None:
            return "user"
        return None

    def user_account(self, scope: str) -> str | None:
        """The account whose personal scope this is (`<user_prefix><account>`), else None."""
        if scope.startswith(self.user_prefix):
            account = scope[len(self.user_prefix):]
            if account in self.roles and self.roles[account] not in GLOBAL_ROLES:
                return account
        return None

    def user_scope(self, account: str) -> str:
        """The personal scope of an account."""
        return f"{self.user_prefix}{account}"


class Registry:
    """All experiments served by one Rucio, with lookups by scope, account and RSE."""

    def __init__(self, profiles: Sequence[Profile]) -> None:
        if not profiles:
            raise ProfileError("at least one experiment profile is required")
        self.experiments = [Experiment(p) for p in profiles]
        self._scope_owner: dict[str, Experiment] = {}
        self._account_owner: dict[str, Experiment | None] = {}
        self._roles: dict[str, str] = {}
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ProfileError(f"experiment names must be unique across profiles: {names}")
        for exp in self.experiments:
            for scope in exp.scopes:
                other = self._scope_owner.get(scope)
                if other is not None:
                    raise ProfileError(f"scope {scope!r} is claimed by experiments {other.name!r} and {exp.name!r}")
                self._scope_owner[scope] = exp
            for rse in exp.rses:
                first = next((e for e in self.experiments if rse in e.rses), exp)
                if first is not exp and first.profile.rses[rse].kind != exp.profile.rses[rse].kind:
                    raise ProfileError(f"RSE {rse!r} is a {first.profile.rses[rse].kind} RSE for {first.name!r} "
                                       f"but a {exp.profile.rses[rse].kind} RSE for {exp.name!r}")
            for account, role in exp.roles.items():
                if account in self._roles:
                    if role in GLOBAL_ROLES and self._roles[account] == role:
                        continue
                    raise ProfileError(
                        f"account {account!r} is claimed by several experiments; only the role 'root' may be shared")
                self._roles[account] = role
                self._account_owner[account] = None if role in GLOBAL_ROLES else exp

    def experiment_of_scope(self, scope: str) -> Experiment | None:
        """The experiment owning a scope (its data scopes and its users' personal scopes)."""
        exp = self._scope_owner.get(scope)
        if exp is not None:
            return exp
        for exp in self.experiments:
            if exp.user_account(scope) is not None:
                return exp
        return None

    def experiment_of_account(self, account: str) -> Experiment | None:
        """The experiment an account belongs to; None for global (root) and unknown accounts."""
        return self._account_owner.get(account)

    def role(self, account: str) -> str | None:
        """The role of an account in its profile, None when no profile knows it."""
        return self._roles.get(account)

    def experiments_of_rse(self, rse: str) -> list[Experiment]:
        """The experiments whose profile lists an RSE."""
        return [e for e in self.experiments if rse in e.rses]

    @property
    def raw_scopes(self) -> frozenset[str]:
        """Raw scopes of every experiment."""
        return frozenset().union(*(e.raw_scopes for e in self.experiments))

    @property
    def scopes(self) -> frozenset[str]:
        """Data scopes of every experiment."""
        return frozenset().union(*(e.scopes for e in self.experiments))


def profile_refs(value: str | None = None) -> list[str]:
    """Profile references named by $CYGNO_DM_PROFILE (os.pathsep-separated; default: cygno-testbed)."""
    raw = os.environ.get(PROFILE_ENV, "") if value is None else value
    refs = [r.strip() for r in raw.split(os.pathsep) if r.strip()]
    return refs or ["cygno-testbed"]


@cache
def _load(refs: tuple[str, ...]) -> Registry:
    LOGGER.info("loading experiment profiles %s", ", ".join(refs))
    return Registry([load_profile(r) for r in refs])


_onboarded_cache: dict[str, Any] = {"at": -REFRESH_S, "refs": []}


def onboarded_refs(now: float | None = None) -> list[str]:
    """Profiles onboarded by `cygno-dm experiment apply`: Rucio's config option psge.experiments (a JSON list),
    read from the server's database at most every REFRESH_S seconds; [] where this process has no database."""
    now = time.monotonic() if now is None else now
    if now - _onboarded_cache["at"] < REFRESH_S:
        return _onboarded_cache["refs"]
    _onboarded_cache["at"] = now
    from rucio.common.config import config_has_option
    from rucio.common.exception import ConfigNotFound

    try:
        if not config_has_option("database", "default"):
            return []
    except ConfigNotFound:  # no rucio.cfg at all (a client-side tool, a unit test at import)
        return []
    try:
        from rucio.core import config as core_config

        value = core_config.get(CONFIG_SECTION, CONFIG_OPTION, default="[]", use_cache=False, convert_type_fnc=str)
        refs = json.loads(value)
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"{CONFIG_SECTION}.{CONFIG_OPTION} must be a JSON list of profile references")
        _onboarded_cache["refs"] = refs
    except Exception as err:  # the database or the option is broken: keep serving what we had
        LOGGER.error("cannot read the onboarded experiments (%s.%s): %s", CONFIG_SECTION, CONFIG_OPTION, err)
    return _onboarded_cache["refs"]


def registry() -> Registry:
    """The registry of the profiles named by $CYGNO_DM_PROFILE plus the onboarded ones (cached per value).

    An onboarded profile that cannot be loaded or clashes with another is left out (logged); the
    $CYGNO_DM_PROFILE ones are always served.
    """
    base = tuple(profile_refs())
    refs = tuple(dict.fromkeys([*base, *onboarded_refs()]))
    if refs == base:
        return _load(base)
    try:
        return _load(refs)
    except ProfileError as err:
        LOGGER.error("onboarded experiments not served: %s", err)
        return _load(base)


def registry_of(profiles: Iterable[Profile]) -> Registry:
    """A registry for explicit profiles (tests, tools)."""
    return Registry(list(profiles))
