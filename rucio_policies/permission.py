"""Rucio permission policy for PSGE experiments (None where it does not decide: Rucio's generic policy applies)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rucio_policies.experiments import Experiment, Registry, registry
from rucio_policies.messages import header_safe
from rucio_policies.naming import NameRuleError, check_did_name

if TYPE_CHECKING:
    from rucio.common.types import InternalAccount
    from sqlalchemy.orm import Session

LOGGER = logging.getLogger(__name__)

PROTECTED_RAW_KEYS = frozenset({"lifetime", "eol_at"})  # setting them schedules the deletion of raw data
RULE_REMOVING_OPTIONS = frozenset({"lifetime", "locked", "account", "child_rule_id", "rse_expression"})


class Decision:
    """A permission answer with a message naming the policy rule (converted to Rucio's PermissionResult)."""

    def __init__(self, allowed: bool, rule: str = "", message: str = "") -> None:
        self.allowed = allowed
        self.message = header_safe(f"policy rule {rule}: {message}" if rule else message)

    def result(self) -> Any:
        """Rucio's PermissionResult for this decision."""
        from rucio.core.permission import PermissionResult  # late: rucio.core.permission imports this module

        return PermissionResult(self.allowed, self.message)


ALLOW = Decision(True)


def _deny(rule: str, message: str) -> Decision:
    return Decision(False, rule, message)


def _ext(value: Any) -> str:
    return str(getattr(value, "external", value))


@dataclass(frozen=True)
class Who:
    """The issuer as the profiles see it."""

    name: str
    role: str | None
    experiment: Experiment | None
    vo: str

    @property
    def is_root(self) -> bool:
        """Rucio's root, or an account with the profile role root."""
        return self.name == "root" or self.role == "root"


def _who(issuer: InternalAccount, reg: Registry) -> Who:
    name = _ext(issuer)
    return Who(name, reg.role(name), reg.experiment_of_account(name), getattr(issuer, "vo", "def"))


def _scope_access(who: Who, scope: str, reg: Registry) -> tuple[Decision | None, Experiment | None]:
    """Experiment isolation: (a denial or None, the scope's experiment)."""
    exp = reg.experiment_of_scope(scope)
    if exp is None:
        if who.experiment is not None:
            return _deny("experiment-isolation",
                         f"account {who.name} of {who.experiment.name} may not write to scope {scope}, "
                         f"which belongs to no experiment of this Rucio"), None
        return None, None
    if who.experiment is None:
        return _deny("experiment-isolation", f"account {who.name} belongs to no experiment profile and may not "
                                             f"write to scope {scope} of {exp.name}"), exp
    if who.experiment.name != exp.name:
        return _deny("experiment-isolation", f"account {who.name} of {who.experiment.name} may not touch scope "
                                             f"{scope} of {exp.name}"), exp
    return None, exp


def scope_write(who: Who, scope: str, kind: str, reg: Registry) -> Decision | None:
    """May `who` do a DID write of `kind` (add, attach, detach, metadata, status) in `scope`? None: not ours."""
    if who.is_root:
        return ALLOW
    denied, exp = _scope_access(who, scope, reg)
    if denied is not None or exp is None:
        return denied
    dtype = exp.data_type(scope)
    if who.role == "admin":
        return ALLOW
    if dtype == "user":
        if exp.user_account(scope) == who.name:
            return ALLOW
        return _deny("user-scope", f"only {exp.user_account(scope)} writes to the personal scope {scope}")
    if who.role == "data-manager":
        return ALLOW
    if who.role == "production":
        if dtype in ("sim", "analysis"):
            return ALLOW
        return _deny("production-derived-only",
                     f"the production account {who.name} writes only to sim and analysis scopes, not {scope}")
    if who.role == "daq":
        if dtype != "raw":
            return _deny("daq-raw-only", f"the DAQ account {who.name} writes only to raw scopes, not {scope}")
        if kind == "detach":
            return _deny("daq-no-detach", f"the DAQ account {who.name} may not detach DIDs in {scope}")
        return ALLOW
    return _deny("user-writes-own-scope",
                 f"account {who.name} writes only to its own scope {exp.user_scope(who.name)}, not {scope}")


def _first_denial(decisions: Iterable[Decision | None]) -> Decision | None:
    seen_allow = False
    for d in decisions:
        if d is not None and not d.allowed:
            return d
        seen_allow = seen_allow or d is not None
    return ALLOW if seen_allow else None


def _name_denial(reg: Registry, scope: str, name: str, did_type: str | None) -> Decision | None:
    try:
        check_did_name(reg, scope, name, did_type)
    except NameRuleError as err:
        return _deny(err.rule, f"{scope}:{name}: {err}")
    return None


def _lifetime_denial(who: Who, scope: str, lifetime: Any, reg: Registry) -> Decision | None:
    exp = reg.experiment_of_scope(scope)
    if lifetime is None or exp is None or scope not in exp.raw_scopes or who.is_root or who.role == "admin":
        return None
    return _deny("raw-no-expiry", f"only root and admins give raw DIDs in {scope} a lifetime (that deletes them)")


def _rule_accounts_denial(who: Who, rules: Iterable[Mapping[str, Any]], reg: Registry) -> Decision | None:
    for rule in rules or ():
        account = _ext(rule.get("account", who.name))
        if account != who.name and not (who.is_root or who.role in ("admin", "data-manager")):
            return _deny("rule-owner", f"account {who.name} may create rules only for itself, not {account}")
    return None


def _add_did(who: Who, did: Mapping[str, Any], reg: Registry, default_type: str | None) -> Decision | None:
    scope, name = _ext(did["scope"]), did.get("name", "")
    did_type = did.get("type") or did.get("did_type") or default_type
    return _first_denial([
        _name_denial(reg, scope, name, _ext(did_type) if did_type else None),
        _lifetime_denial(who, scope, did.get("lifetime"), reg),
        _rule_accounts_denial(who, did.get("rules") or (), reg),
        scope_write(who, scope, "add", reg),
    ])


def perm_add_did(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Adding a dataset or container (or file) DID."""
    return _add_did(who, kwargs, reg, None)


def perm_add_dids(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Bulk DID creation; from add_replicas the DIDs are new files."""
    default = "FILE" if "rse_id" in kwargs or "rse" in kwargs else None
    return _first_denial(_add_did(who, d, reg, default) for d in kwargs.get("dids", []))


def _attach(who: Who, scope: str, attachment: Mapping[str, Any], reg: Registry, kind: str) -> Decision | None:
    registering = attachment.get("rse") is not None or attachment.get("rse_id") is not None
    decisions = [scope_write(who, scope, kind, reg)]
    for child in attachment.get("dids", []):
        child_scope = _ext(child["scope"])
        if registering:
            decisions.append(_name_denial(reg, child_scope, child.get("name", ""), "FILE"))
            decisions.append(scope_write(who, child_scope, "add", reg))
        elif not who.is_root:
            denied, _ = _scope_access(who, child_scope, reg)
            decisions.append(denied)
    return _first_denial(decisions)


def perm_attach_dids(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Attaching DIDs (or registering new files) into a collection."""
    return _attach(who, _ext(kwargs["scope"]), kwargs.get("attachment", {}), reg, "attach")


def perm_attach_dids_to_dids(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Bulk attachments."""
    return _first_denial(_attach(who, _ext(a["scope"]), a, reg, "attach") for a in kwargs.get("attachments", []))


def perm_detach_dids(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Detaching DIDs from a collection."""
    return scope_write(who, _ext(kwargs["scope"]), "detach", reg)


def _metadata(who: Who, kwargs: dict[str, Any], meta: Mapping[str, Any], reg: Registry,
              session: Session) -> Decision | None:
    scope = _ext(kwargs["scope"])
    decision = scope_write(who, scope, "metadata", reg)
    if decision is None or not decision.allowed:
        return decision
    exp = reg.experiment_of_scope(scope)
    if exp is not None and scope in exp.raw_scopes and not (who.is_root or who.role == "admin"):
        for key in meta:
            if key in PROTECTED_RAW_KEYS:
                return _deny("raw-no-expiry", f"only root and admins set {key!r} on raw DIDs in {scope}")
    if who.role == "daq":
        return _daq_metadata(who, kwargs, meta, session)
    return decision


def _daq_metadata(who: Who, kwargs: dict[str, Any], meta: Mapping[str, Any], session: Session) -> Decision:
    from rucio.common.types import InternalScope
    from rucio.core.did_meta_plugins.did_column_meta import DidColumnMeta

    from rucio_policies.metadata_store import all_keys, stored_values

    known = all_keys()
    for key in meta:
        if key not in known and DidColumnMeta().manages_key(key):
            return _deny("daq-run-metadata-only", f"the DAQ account {who.name} sets only run metadata, not {key!r}")
    scope = kwargs["scope"]
    scope = scope if isinstance(scope, InternalScope) else InternalScope(scope, vo=who.vo)
    current = stored_values(scope, kwargs["name"], session=session)
    for key, value in meta.items():
        if key in current and key in known:
            try:
                same = known[key].coerce(value) == current[key]
            except ValueError:
                same = False
            if not same:
                return _deny("daq-no-overwrite", f"the DAQ account {who.name} may not overwrite {key}="
                                                 f"{current[key]!r} of {_ext(scope)}:{kwargs['name']}")
    return ALLOW


def perm_set_metadata(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Setting one metadata key."""
    return _metadata(who, kwargs, {kwargs["key"]: kwargs.get("value")}, reg, session)


def perm_set_metadata_bulk(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Setting several metadata keys."""
    return _metadata(who, kwargs, kwargs.get("meta") or {}, reg, session)


def perm_set_status(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Opening/closing a collection."""
    return scope_write(who, _ext(kwargs["scope"]), "status", reg)


def perm_add_rule(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Creating a replication rule on DIDs."""
    if who.is_root:
        return ALLOW
    account = _ext(kwargs.get("account") or who.name)
    decisions: list[Decision | None] = []
    for did in kwargs.get("dids", []):
        scope = _ext(did["scope"])
        denied, exp = _scope_access(who, scope, reg)
        if denied is not None or exp is None:
            decisions.append(denied)
            continue
        if who.role == "admin":
            decisions.append(ALLOW)
        elif who.role == "data-manager":
            owner = reg.experiment_of_account(account)
            decisions.append(ALLOW if owner is not None and owner.name == exp.name else _deny(
                "rule-owner", f"rules of {who.name} are owned by accounts of {exp.name}, not {account}"))
        elif account != who.name:
            decisions.append(_deny("rule-owner", f"account {who.name} may create rules only for itself"))
        elif who.role == "daq":
            decisions.append(ALLOW if scope in exp.raw_scopes else _deny(
                "daq-raw-only", f"the DAQ account {who.name} creates rules only on raw DIDs, not in {scope}"))
        elif kwargs.get("locked"):
            decisions.append(_deny("user-no-locked-rules", f"account {who.name} may not create locked rules"))
        else:
            decisions.append(ALLOW)
    return _first_denial(decisions)


def _rule_on_tape(rule: Mapping[str, Any], session: Session) -> bool:
    from rucio.common.exception import InvalidRSEExpression
    from rucio.core.rse import list_rse_attributes
    from rucio.core.rse_expression_parser import parse_expression
    from rucio.db.sqla import models
    from sqlalchemy import select

    rse_ids: set[str] = set()
    try:
        rse_ids |= {r["id"] for r in parse_expression(rule["rse_expression"], session=session)}
    except InvalidRSEExpression:
        pass
    stmt = select(models.ReplicaLock.rse_id).where(models.ReplicaLock.rule_id == rule["id"]).distinct()
    rse_ids |= {row[0] for row in session.execute(stmt)}
    for rse_id in rse_ids:
        rse = session.get(models.RSE, rse_id)
        if rse is not None and getattr(rse.rse_type, "name", str(rse.rse_type)) == "TAPE":
            return True
        attrs = list_rse_attributes(rse_id=rse_id, session=session)
        if str(attrs.get("istape", "")).lower() in ("true", "1") or attrs.get("staging_required"):
            return True
    return False


def _rule_change(action: str) -> Callable[[Who, dict[str, Any], Registry, Session], Decision | None]:
    def perm(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
        if who.is_root:
            return ALLOW
        from rucio.core.rule import get_rule

        rule = get_rule(kwargs["rule_id"], session=session)
        scope = _ext(rule["scope"])
        denied, exp = _scope_access(who, scope, reg)
        if denied is not None or exp is None:
            return denied
        if who.role == "admin":
            return ALLOW
        removes = action in ("del_rule", "reduce_rule", "move_rule") or (
            action == "update_rule" and any(
                k in RULE_REMOVING_OPTIONS and not (k == "locked" and v) for k, v in kwargs.get("options", {}).items()))
        if removes and rule.get("locked") and _rule_on_tape(rule, session):
            return _deny("locked-tape-rule", f"only root and admins remove or unlock the locked tape rule {rule['id']}")
        if who.role == "data-manager":
            return ALLOW
        if who.role == "daq":
            return _deny("daq-no-rule-change", f"the DAQ account {who.name} may not {action.replace('_', ' ')}s")
        if action == "del_rule" and _ext(rule["account"]) == who.name and not rule.get("locked"):
            return ALLOW
        return _deny("rule-owner", f"account {who.name} may only delete its own unlocked rules")

    perm.__doc__ = f"Changing an existing rule ({action})."
    return perm


def _rse_name(kwargs: Mapping[str, Any], session: Session) -> str | None:
    if kwargs.get("rse"):
        return str(kwargs["rse"])
    if kwargs.get("rse_id"):
        from rucio.core.rse import get_rse_name

        return get_rse_name(rse_id=kwargs["rse_id"], session=session)
    return None


def _on_own_rse(who: Who, kwargs: Mapping[str, Any], reg: Registry, session: Session, roles: Iterable[str],
                rule: str, what: str) -> Decision | None:
    if who.is_root:
        return ALLOW
    rse = _rse_name(kwargs, session)
    owners = reg.experiments_of_rse(rse) if rse else []
    if who.experiment is None:
        return _deny(rule, f"account {who.name} belongs to no experiment and may not {what}") if owners else None
    if owners and who.experiment.name not in {e.name for e in owners}:
        return _deny("experiment-isolation", f"account {who.name} of {who.experiment.name} may not {what} on {rse}")
    if who.role in roles and (owners or rse is None):
        return ALLOW
    return _deny(rule, f"account {who.name} ({who.role}) may not {what}" + (f" on {rse}" if rse else ""))


def perm_declare_bad_file_replicas(who: Who, kwargs: dict[str, Any], reg: Registry,
                                   session: Session) -> Decision | None:
    """Declaring replicas bad on an RSE of the experiment."""
    return _on_own_rse(who, kwargs, reg, session, ("admin", "data-manager"), "declare-bad-replicas",
                       "declare bad replicas")


def perm_delete_replicas(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Deleting replicas: root and the experiment's admins only."""
    return _on_own_rse(who, kwargs, reg, session, ("admin",), "replica-deletion", "delete replicas")


def perm_add_replicas(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Registering replicas on an RSE of the experiment (new DIDs are then checked by add_dids)."""
    if who.is_root:
        return ALLOW
    rse = _rse_name(kwargs, session)
    owners = reg.experiments_of_rse(rse) if rse else []
    if not owners:
        return None
    return _on_own_rse(who, kwargs, reg, session, ("admin", "data-manager", "daq", "user"), "add-replicas",
                       "register replicas")


def perm_update_replicas_states(who: Who, kwargs: dict[str, Any], reg: Registry,
                                session: Session) -> Decision | None:
    """Setting replica states on an RSE of the experiment: the last step of every `rucio upload`.

    Rucio passes only the RSE, so the decision is per RSE, as for add_replicas.
    """
    return perm_add_replicas(who, kwargs, reg, session)


def _signurl_request() -> tuple[str, str] | None:
    """(operation, url) of the /credentials/signurl request being served (Rucio passes only the account)."""
    try:
        import flask
    except ImportError:
        return None
    if not flask.has_request_context() or not flask.request.path.rstrip("/").endswith("/credentials/signurl"):
        return None
    return flask.request.args.get("op", "read"), flask.request.args.get("url", "")


def _scope_in_url(url: str, reg: Registry) -> str | None:
    parts = [p for p in urlsplit(url).path.split("/") if p]
    return next((p for p in parts[:-1] if reg.experiment_of_scope(p) is not None), None)


def perm_get_signed_url(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Signed storage URLs: deletions for root/admins only, writes as DID writes, reads within the experiment."""
    request = _signurl_request()
    if request is None or who.is_root:
        return None  # signing for list_replicas (reads), or root: Rucio's generic rule (sign-url attribute)
    operation, url = request
    scope = _scope_in_url(url, reg)
    exp = reg.experiment_of_scope(scope) if scope else None
    if operation == "delete":
        if who.role == "admin" and (exp is None or (who.experiment and exp.name == who.experiment.name)):
            return None
        return _deny("replica-deletion", f"only root and admins may sign deletions, not {who.name} ({url})")
    if scope is None:
        return None
    if operation == "write":
        decision = scope_write(who, scope, "add", reg)
    else:
        decision, _ = _scope_access(who, scope, reg)
    return decision if decision is not None and not decision.allowed else None


HANDLERS: dict[str, Callable[[Who, dict[str, Any], Registry, Session], Decision | None]] = {
    "add_did": perm_add_did,
    "add_dids": perm_add_dids,
    "attach_dids": perm_attach_dids,
    "attach_dids_to_dids": perm_attach_dids_to_dids,
    "detach_dids": perm_detach_dids,
    "set_metadata": perm_set_metadata,
    "set_metadata_bulk": perm_set_metadata_bulk,
    "set_status": perm_set_status,
    "add_rule": perm_add_rule,
    "del_rule": _rule_change("del_rule"),
    "update_rule": _rule_change("update_rule"),
    "reduce_rule": _rule_change("reduce_rule"),
    "move_rule": _rule_change("move_rule"),
    "approve_rule": _rule_change("approve_rule"),
    "declare_bad_file_replicas": perm_declare_bad_file_replicas,
    "delete_replicas": perm_delete_replicas,
    "add_replicas": perm_add_replicas,
    "update_replicas_states": perm_update_replicas_states,
    "get_signed_url": perm_get_signed_url,
}


def decide(issuer: InternalAccount, action: str, kwargs: dict[str, Any], session: Session,
           reg: Registry | None = None) -> Decision | None:
    """This policy's decision for an action, or None to let Rucio's generic policy decide."""
    handler = HANDLERS.get(action)
    if handler is None:
        return None
    reg = reg or registry()
    return handler(_who(issuer, reg), kwargs, reg, session)


def has_permission(issuer: InternalAccount, action: str, kwargs: dict[str, Any],
                   session: Session | None = None) -> Any:
    """Rucio's entry point: a PermissionResult, or None to fall back to the generic policy."""
    try:
        decision = decide(issuer, action, kwargs, session)  # type: ignore[arg-type]
    except (TypeError, KeyError, AttributeError) as err:
        # Rucio would silently fall back to its generic policy on a TypeError: deny loudly instead.
        LOGGER.exception("permission policy failed for %s by %s", action, issuer)
        decision = _deny("policy-error", f"{action} could not be evaluated: {err!r}")
    if decision is None:
        return None
    if not decision.allowed:
        LOGGER.info("denied %s to %s: %s", action, _ext(issuer), decision.message)
    return decision.result()
