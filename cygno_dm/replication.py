"""Replication policy as plan/apply: the profile's rules per data type against the rules Rucio holds per dataset.

One listing of datasets and one of rules per scope (no per-file or per-dataset round trips). A rule is the
policy's when its comment starts with `cygno-dm` (made by the uploader or by `policy apply`); only those are
changed or removed. Locked and tape rules are never removed or replaced unless root asks for it explicitly.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rucio.common.exception import Duplicate, RuleNotFound

from cygno_dm.profile import Profile, Rule

log = logging.getLogger(__name__)

POLICY_COMMENT = "cygno-dm policy"
OURS = re.compile(r"^cygno-dm\b")
LIFETIME_NOTE = re.compile(r"lifetime=(\d+)d")
DAY = 86400
SOFT = 3600  # Rucio's soft deletion of a rule: it expires within this many seconds


@dataclass(frozen=True)
class Diff:
    """One difference between the policy and a dataset's rules; `kind` is missing, copies, lifetime, unwanted or
    protected (a difference left alone: locked or tape rule)."""

    kind: str
    scope: str
    name: str
    rse_expression: str
    detail: str
    rule_id: str | None = None
    wanted: Rule | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "did": f"{self.scope}:{self.name}", "rse_expression": self.rse_expression,
                "detail": self.detail, "rule_id": self.rule_id}


def _comment(rule: dict[str, Any]) -> str:
    return rule.get("comments") or ""  # Rucio lists a rule's comment as `comments`


def _lifetime_days(rule: dict[str, Any]) -> int | None:
    """The lifetime a rule was given: noted in its comment by `policy apply`, else expires_at - created_at."""
    if rule.get("expires_at") is None:
        return None
    noted = LIFETIME_NOTE.search(_comment(rule))
    if noted:
        return int(noted[1])
    expires, created = (_time(rule[k]) for k in ("expires_at", "created_at"))
    return round((expires - created).total_seconds() / DAY)


def _leaving(rule: dict[str, Any]) -> bool:
    """Whether a rule expires within the hour (Rucio's soft deletion of a rule sets that)."""
    if rule.get("expires_at") is None:
        return False
    return _time(rule["expires_at"]) <= dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=SOFT)


def _time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.strptime(value, "%a, %d %b %Y %H:%M:%S %Z")


def _tape(expression: str, profile: Profile) -> bool:
    return any(rse.kind == "tape" and re.search(rf"\b{re.escape(name)}\b", expression)
               for name, rse in profile.rses.items())


def compare(profile: Profile, scope: str, name: str, rules: list[dict[str, Any]], wanted: list[Rule],
            allow_protected: bool = False) -> Iterator[Diff]:
    """The differences between a dataset's rules and the policy's rules for its data type."""
    by_expr: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rules:
        by_expr[r["rse_expression"]].append(r)
    for want in wanted:
        have = sorted(by_expr.get(want.rse_expression, []), key=lambda r: not OURS.match(_comment(r)))
        if not have:
            yield Diff("missing", scope, name, want.rse_expression,
                       f"{want.copies} cop{'y' if want.copies == 1 else 'ies'}"
                       + (f", {want.lifetime_days} days" if want.lifetime_days else ""), wanted=want)
            continue
        rule = have[0]
        protected = (rule["locked"] or _tape(want.rse_expression, profile)) and not allow_protected
        if int(rule["copies"]) != want.copies:
            yield Diff("protected" if protected else "copies", scope, name, want.rse_expression,
                       f"{rule['copies']} -> {want.copies} copies", rule["id"], want)
        elif _lifetime_days(rule) != want.lifetime_days:
            yield Diff("protected" if protected and rule["locked"] else "lifetime", scope, name,
                       want.rse_expression, f"lifetime {_lifetime_days(rule)} -> {want.lifetime_days} days",
                       rule["id"], want)
    wanted_exprs = {w.rse_expression for w in wanted}
    for expr, have in by_expr.items():
        if expr in wanted_exprs:
            continue
        for rule in have:
            if not OURS.match(_comment(rule)):
                continue  # users', production's and staging rules are not the policy's business
            if _leaving(rule):
                continue  # removed already: Rucio lets a deleted rule expire within the hour
            protected = (rule["locked"] or _tape(expr, profile)) and not allow_protected
            yield Diff("protected" if protected else "unwanted", scope, name, expr,
                       "locked" if rule["locked"] else ("tape rule" if protected else "not in the policy"),
                       rule["id"])


def data_scopes(profile: Profile) -> Iterator[tuple[str, str]]:
    """(data type, scope) of every scope the replication policy covers."""
    for dtype in profile.replication:
        for scope in getattr(profile.scopes, dtype):
            yield dtype, scope


def plan(client: Any, profile: Profile, allow_protected: bool = False) -> list[Diff]:
    """Every difference between the profile's replication policy and Rucio's rules on the experiment's datasets."""
    diffs: list[Diff] = []
    for dtype, scope in data_scopes(profile):
        datasets = set(client.list_dids(scope, {}, did_type="dataset"))
        rules: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in client.list_replication_rules({"scope": scope}):
            if r["name"] in datasets:
                rules[r["name"]].append(r)
        for name in sorted(datasets):
            diffs.extend(compare(profile, scope, name, rules[name], profile.replication[dtype], allow_protected))
    return diffs


def fix(client: Any, diff: Diff, account: str) -> str:
    """Make one difference so; return what was done. Safe to repeat: a rule made meanwhile counts as done."""
    did = [{"scope": diff.scope, "name": diff.name}]
    want = diff.wanted
    if diff.kind == "missing":
        assert want is not None
        try:
            client.add_replication_rule(did, want.copies, want.rse_expression, account=account, notify=want.notify,
                                        lifetime=want.lifetime_days * DAY if want.lifetime_days else None,
                                        comment=f"{POLICY_COMMENT}: {profile_note(want)}")
            return "rule added"
        except Duplicate:
            return "rule existed"
    if diff.kind == "lifetime":
        assert want is not None
        client.update_replication_rule(diff.rule_id, {
            "lifetime": want.lifetime_days * DAY if want.lifetime_days else None,
            "comment": f"{POLICY_COMMENT}: {profile_note(want)}"})
        return "lifetime updated"
    if diff.kind == "copies":
        assert want is not None
        if want.copies < int(diff.detail.split()[0]):
            client.reduce_replication_rule(diff.rule_id, want.copies)
        else:
            _replace(client, diff, account)
        return "copies changed"
    if diff.kind == "unwanted":
        try:
            client.delete_replication_rule(diff.rule_id, purge_replicas=False)
        except RuleNotFound:
            return "rule was gone"
        return "rule removed"
    return "left alone"


def _replace(client: Any, diff: Diff, account: str) -> None:
    client.delete_replication_rule(diff.rule_id, purge_replicas=False)
    fix(client, Diff("missing", diff.scope, diff.name, diff.rse_expression, diff.detail, wanted=diff.wanted), account)


def profile_note(rule: Rule) -> str:
    """The comment of a rule made by the policy (its lifetime noted for later comparisons)."""
    return f"copies={rule.copies}" + (f" lifetime={rule.lifetime_days}d" if rule.lifetime_days else "")


def apply(client: Any, diffs: list[Diff], account: str, batch: int = 100,
          progress: Callable[[int, int], None] | None = None, stop: Callable[[], bool] | None = None) -> dict[str, int]:
    """Fix the differences in batches of `batch`; stop between batches when `stop()` says so. Counts by outcome."""
    counts: dict[str, int] = defaultdict(int)
    todo = [d for d in diffs if d.kind != "protected"]
    counts["protected"] = len(diffs) - len(todo)
    for start in range(0, len(todo), batch):
        if stop and stop():
            counts["not done (interrupted)"] = len(todo) - start
            break
        for diff in todo[start:start + batch]:
            counts[fix(client, diff, account)] += 1
        if progress:
            progress(min(start + batch, len(todo)), len(todo))
    return dict(counts)


def subscriptions(profile: Profile) -> list[dict[str, Any]]:
    """Rucio subscriptions carrying the policy to new datasets of each data type (transmogrifier)."""
    out = []
    for dtype, rules in profile.replication.items():
        scopes = getattr(profile.scopes, dtype)
        if not scopes or not rules:
            continue
        out.append({"name": f"{profile.experiment.name}-{dtype}-policy",
                    "filter": {"scope": scopes, "did_type": ["DATASET"]},
                    "replication_rules": [{"rse_expression": r.rse_expression, "copies": r.copies,
                                           "activity": "User Subscriptions",
                                           **({"lifetime": r.lifetime_days * DAY} if r.lifetime_days else {})}
                                          for r in rules]})
    return out
