"""Rucio permission policy for PSGE experiments (None where it does not decide: Rucio's generic policy applies)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from rucio_policies import request, web
from rucio_policies.experiments import Experiment, Registry, registry
from rucio_policies.messages import header_safe
from rucio_policies.naming import NameRuleError, check_did_name

if TYPE_CHECKING:
    from rucio.common.types import InternalAccount
    from sqlalchemy.orm import Session

LOGGER = logging.getLogger(__name__)

PRIVILEGED = ("admin", "data-manager")  # roles that manage an experiment's replicas and rules
PROTECTED_RAW_KEYS = frozenset({"lifetime", "eol_at"})  # setting them schedules the deletion of raw data
RULE_REMOVING_OPTIONS = frozenset({"lifetime", "locked", "account", "child_rule_id", "rse_expression"})
OWN_RULE_OPTIONS = frozenset({"lifetime", "comment", "activity"})  # what users change on their own unlocked rules


class Decision:
    """A permission answer with a message naming the policy rule (converted to Rucio's PermissionResult)."""

    def __init__(self, allowed: bool, rule: str = "", message: str = "", quiet: bool = False) -> None:
        self.allowed = allowed
        self.quiet = quiet  # a refusal that does not fail the request (e.g. replicas listed without signatures)
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


def _tape_rse_ids(rse_ids: Iterable[str], session: Session) -> set[str]:
    """The RSEs among `rse_ids` that are tape (type TAPE, or attribute istape/staging_required)."""
    from rucio.core.rse import list_rse_attributes
    from rucio.db.sqla import models

    tapes = set()
    for rse_id in rse_ids:
        rse = session.get(models.RSE, rse_id)
        attrs = list_rse_attributes(rse_id=rse_id, session=session)
        if (rse is not None and getattr(rse.rse_type, "name", str(rse.rse_type)) == "TAPE") \
                or str(attrs.get("istape", "")).lower() in ("true", "1") or attrs.get("staging_required"):
            tapes.add(rse_id)
    return tapes


def _expression_rse_ids(expression: str, who: Who, session: Session) -> set[str]:
    from rucio.common.exception import InvalidRSEExpression, RSEWriteBlocked
    from rucio.core.rse_expression_parser import parse_expression

    try:
        return {r["id"] for r in parse_expression(expression, filter_={"vo": who.vo}, session=session)}
    except (InvalidRSEExpression, RSEWriteBlocked):
        return set()  # Rucio refuses the rule itself


def perm_add_rule(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Creating a replication rule on DIDs."""
    if who.is_root:
        return ALLOW
    account = _ext(kwargs.get("account") or who.name)
    expression = str(kwargs.get("rse_expression") or "")
    on_tape = None if who.role in ("admin", "data-manager", "daq") else \
        bool(_tape_rse_ids(_expression_rse_ids(expression, who, session), session))
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
        elif on_tape:
            # Rucio locks every rule on tape without a lifetime after asking the policy: refuse them all.
            decisions.append(_deny("user-no-tape-rules", f"account {who.name} may not create rules on tape "
                                                         f"({expression}): tape is managed by the DAQ and data managers"))
        else:
            decisions.append(ALLOW)
    return _first_denial(decisions)


def _rule_on_tape(rule: Mapping[str, Any], who: Who, session: Session) -> bool:
    from rucio.db.sqla import models
    from sqlalchemy import select

    rse_ids = _expression_rse_ids(rule["rse_expression"], who, session)
    stmt = select(models.ReplicaLock.rse_id).where(models.ReplicaLock.rule_id == rule["id"]).distinct()
    rse_ids |= {row[0] for row in session.execute(stmt)}
    return bool(_tape_rse_ids(rse_ids, session))


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
        if removes and rule.get("locked") and _rule_on_tape(rule, who, session):
            return _deny("locked-tape-rule", f"only root and admins remove or unlock the locked tape rule {rule['id']}")
        if who.role == "data-manager":
            return ALLOW
        if who.role == "daq":
            return _deny("daq-no-rule-change", f"the DAQ account {who.name} may not {action.replace('_', ' ')}s")
        own = _ext(rule["account"]) == who.name and not rule.get("locked")
        if own and (action == "del_rule" or (action == "update_rule"
                                             and set(kwargs.get("options", {})) <= OWN_RULE_OPTIONS)):
            return ALLOW
        return _deny("rule-owner", f"account {who.name} may only delete its own unlocked rules or change their "
                                   f"{', '.join(sorted(OWN_RULE_OPTIONS))}")

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
    return _on_own_rse(who, kwargs, reg, session, PRIVILEGED, "declare-bad-replicas", "declare bad replicas")


def perm_declare_suspicious_file_replicas(who: Who, kwargs: dict[str, Any], reg: Registry,
                                          session: Session) -> Decision | None:
    """Declaring replicas suspicious (the recoverer may then declare them bad): root, admins, data managers."""
    if who.is_root:
        return ALLOW
    if who.role not in PRIVILEGED:
        return _deny("declare-suspicious", f"account {who.name} ({who.role}) may not declare replicas suspicious; "
                                           "ask a data manager")
    data = request.body()
    pfns = data.get("pfns", []) if isinstance(data, dict) else []
    scopes = {s for s in (_scope_in_url(str(pfn), reg) for pfn in pfns) if s}
    return _first_denial([ALLOW, *(_scope_access(who, scope, reg)[0] for scope in scopes)])


def perm_delete_replicas(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Deleting replicas: root and the experiment's admins only."""
    return _on_own_rse(who, kwargs, reg, session, ("admin",), "replica-deletion", "delete replicas")


def _request_files(kwargs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The files of a replica request: from Rucio's kwargs where it passes them, else from the REST body."""
    files = kwargs.get("files")
    return list(files) if files is not None else request.body_list("files")


def _internal_scope(who: Who, scope: str) -> Any:
    from rucio.common.types import InternalScope

    return InternalScope(scope, vo=who.vo)


def _adler32_value(text: Any) -> int | None:
    try:
        return int(str(text), 16)
    except ValueError:
        return None


def _matches_did(who: Who, file: Mapping[str, Any], session: Session) -> Decision | None:
    """A replica of an existing file must carry the file's own size and adler32 (and md5, when both have one)."""
    from rucio.db.sqla import models

    scope, name = _ext(file.get("scope")), str(file.get("name", ""))
    did = session.get(models.DataIdentifier, (_internal_scope(who, scope), name))
    if did is None:
        return None
    if getattr(did.did_type, "name", str(did.did_type)) != "FILE":
        return _deny("replica-matches-did", f"{scope}:{name} is a {did.did_type.name}, not a file")
    theirs = (file.get("bytes"), _adler32_value(file.get("adler32")))
    ours = (did.bytes, _adler32_value(did.adler32))
    md5_differs = file.get("md5") and did.md5 and str(file["md5"]).lower() != did.md5.lower()
    if theirs != ours or md5_differs:
        return _deny("replica-matches-did", f"{scope}:{name} has {did.bytes} bytes and adler32 {did.adler32}; a replica "
                                            f"with {file.get('bytes')} bytes and adler32 {file.get('adler32')} "
                                            f"(md5 {file.get('md5')}) cannot be registered for it")
    return ALLOW


def perm_add_replicas(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Registering replicas: writers of the file's scope, on an RSE of the experiment, with the file's checksums.

    On tape, a replica of an existing file comes from a transfer only (root and admins may register one by
    hand): a tape replica in the catalogue must stand for bytes the tape endpoint received. The DAQ and data
    managers may still upload a new file straight to tape.
    """
    if who.is_root:
        return ALLOW
    if "/dirac/" in (request.path() or ""):
        return _deny("no-dirac", "the DIRAC bulk registration (it creates datasets and rules unchecked) is disabled")
    rse = _rse_name(kwargs, session)
    if not (reg.experiments_of_rse(rse) if rse else []):
        return None
    on_rse = _on_own_rse(who, kwargs, reg, session, ("admin", "data-manager", "daq", "production", "user"),
                         "add-replicas", "register replicas")
    if on_rse is None or not on_rse.allowed:
        return on_rse
    files = _request_files(kwargs)
    if files is None:
        return _deny("add-replicas", f"the files registered on {rse} cannot be checked outside a REST request")
    on_tape = who.role != "admin" and bool(_tape_rse_ids([kwargs["rse_id"]], session))
    decisions: list[Decision | None] = [on_rse]
    for file in files:
        scope, name = _ext(file.get("scope")), str(file.get("name", ""))
        existing = _matches_did(who, file, session)
        if on_tape and (existing is not None or who.role not in ("daq", "data-manager")):
            decisions.append(_deny("tape-replicas-from-transfers", f"a replica of {scope}:{name} on the tape RSE "
                                   f"{rse} comes from a transfer; {who.name} ({who.role}) may not register it"))
        decisions += [_name_denial(reg, scope, name, "FILE"), scope_write(who, scope, "add", reg), existing]
    return _first_denial(decisions)


def _state_name(value: Any) -> str:
    from rucio.db.sqla.constants import ReplicaState

    text = str(getattr(value, "name", value)).upper()
    if text in ReplicaState.__members__:
        return text
    try:
        return ReplicaState(text).name
    except ValueError:
        return text


def _replica_state(who: Who, scope: str, name: str, rse_id: str, session: Session) -> str | None:
    from rucio.db.sqla import models

    rep = session.get(models.RSEFileAssociation, (_internal_scope(who, scope), name, rse_id))
    return None if rep is None else _state_name(rep.state)


def perm_update_replicas_states(who: Who, kwargs: dict[str, Any], reg: Registry,
                                session: Session) -> Decision | None:
    """Replica states: data managers and admins of the experiment; other writers only finish their own uploads.

    `rucio upload` registers a replica COPYING, then makes it AVAILABLE; nothing else is a writer's business
    (BAD makes the reaper delete the bytes, TEMPORARY_UNAVAILABLE hides a locked replica).
    """
    if who.is_root:
        return ALLOW
    files = _request_files(kwargs)
    rse = _rse_name(kwargs, session)
    if files is None:
        return _deny("replica-state", f"the replicas of a state change on {rse} cannot be checked outside a "
                                      "REST request")
    decisions: list[Decision | None] = []
    for file in files:
        scope, name, state = _ext(file.get("scope")), str(file.get("name", "")), _state_name(file.get("state"))
        denied, exp = _scope_access(who, scope, reg)
        if denied is not None or exp is None:
            decisions.append(denied)
        elif who.role in PRIVILEGED:
            decisions.append(ALLOW)
        elif state != "AVAILABLE":
            decisions.append(_deny("replica-state", f"only data managers and admins make {scope}:{name} {state} "
                                                    f"on {rse}"))
        else:
            current = _replica_state(who, scope, name, kwargs["rse_id"], session)
            if current not in ("COPYING", "AVAILABLE"):
                decisions.append(_deny("replica-state", f"{scope}:{name} on {rse} is {current or 'not registered'}: "
                                                        "only an upload in progress (COPYING) becomes AVAILABLE"))
            else:
                decisions.append(scope_write(who, scope, "add", reg))
    return _first_denial(decisions)


def _scope_in_url(url: str, reg: Registry) -> str | None:
    parts = [p for p in unquote(urlsplit(url).path).split("/") if p]
    return next((p for p in parts[:-1] if reg.experiment_of_scope(p) is not None), None)


def _name_in_url(url: str, scope: str) -> str:
    parts = [p for p in unquote(urlsplit(url).path).split("/") if p]
    return "/".join(parts[parts.index(scope) + 1:])


def _stored_at(who: Who, url: str, scope: str, session: Session) -> str | None:
    """The RSE whose protocol serves `url` and holds an AVAILABLE replica of the DID the URL names, if any."""
    from rucio.db.sqla import models
    from rucio.db.sqla.constants import ReplicaState
    from sqlalchemy import select

    u = urlsplit(url)
    port = u.port or {"https": 443, "davs": 443, "http": 80, "dav": 80, "s3": 443}.get(u.scheme, 0)
    rse_ids = {row[0] for row in session.execute(
        select(models.RSEProtocol.rse_id).where(models.RSEProtocol.hostname == u.hostname,
                                                models.RSEProtocol.port == port))}
    if not rse_ids:
        return None
    stmt = select(models.RSE.rse).join(models.RSEFileAssociation, models.RSEFileAssociation.rse_id == models.RSE.id)\
        .where(models.RSEFileAssociation.scope == _internal_scope(who, scope),
               models.RSEFileAssociation.name == _name_in_url(url, scope),
               models.RSEFileAssociation.rse_id.in_(rse_ids),
               models.RSEFileAssociation.state == ReplicaState.AVAILABLE)
    row = session.execute(stmt).first()
    return None if row is None else row[0]


def perm_get_signed_url(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Signed storage URLs: deletions for root/admins only, writes as DID writes of new objects, reads within
    the experiment."""
    path = request.path() or ""
    if who.is_root:
        return None  # Rucio's generic rule (sign-url attribute)
    if not path.rstrip("/").endswith("/credentials/signurl"):
        return _listing_signatures(who, path, reg)
    query = request.args()
    operation, url = query.get("op", "read"), query.get("url", "")
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
        if decision is not None and decision.allowed:
            rse = _stored_at(who, url, scope, session)
            if rse is not None:
                decision = _deny("no-overwrite", f"{scope}:{_name_in_url(url, scope)} is stored on {rse}: stored "
                                                 "objects are never overwritten")
    else:
        decision, _ = _scope_access(who, scope, reg)
    return decision if decision is not None and not decision.allowed else None


def _listing_signatures(who: Who, path: str, reg: Registry) -> Decision | None:
    """Signed URLs in a replica listing: only for DIDs of the account's own experiment. Otherwise the listing is
    answered without signatures (a quiet refusal): the catalogue stays readable, the bytes on S3 do not."""
    dids = request.body_list("dids") or []
    parts = [p for p in path.split("/") if p]
    scopes = {str(d.get("scope")) for d in dids}
    if len(parts) >= 3 and parts[0] == "replicas" and parts[1] not in ("list", "bad", "suspicious", "dids"):
        scopes.add(parts[1])
    for scope in scopes:
        denied, _ = _scope_access(who, scope, reg)
        if denied is not None:
            return Decision(False, "experiment-isolation", f"no signed URLs for {who.name} in scope {scope}",
                            quiet=True)
    return None


def perm_create_did_sample(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """A sample dataset (POST /dids/sample): a new dataset under the naming rules, from a readable collection."""
    data = request.body()
    data = data if isinstance(data, dict) else {}
    out_scope = _ext(kwargs.get("scope") or data.get("output_scope", ""))
    decisions = [_name_denial(reg, out_scope, str(data.get("output_name", "")), "DATASET"),
                 scope_write(who, out_scope, "add", reg)]
    if data.get("input_scope") and not who.is_root:
        decisions.append(_scope_access(who, str(data["input_scope"]), reg)[0])
    return _first_denial(decisions)


def perm_update_scope(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Giving a scope to another account: root, or an admin of the scope's experiment (never its owner alone)."""
    scope = _ext(kwargs.get("scope"))
    exp = reg.experiment_of_scope(scope)
    if who.is_root or (who.role == "admin" and exp is not None and who.experiment is not None
                       and exp.name == who.experiment.name):
        return ALLOW
    if exp is None and who.experiment is None:
        return None
    return _deny("scope-owner", f"only root and admins give scope {scope} to another account")


def perm_delete_metadata(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Deleting a metadata key (Rucio asks no permission: the metadata plugin asks this)."""
    decision = scope_write(who, _ext(kwargs["scope"]), "metadata", reg)
    if decision is not None and decision.allowed and who.role == "daq":
        return _deny("daq-no-overwrite", f"the DAQ account {who.name} never deletes run metadata")
    return decision


def perm_config(who: Who, kwargs: dict[str, Any], reg: Registry, session: Session) -> Decision | None:
    """Rucio's configuration table: root and admins (as Rucio's generic rule, answered 403 instead of a 500)."""
    if who.is_root or who.role == "admin":
        return ALLOW
    return _deny("config-admins-only", f"account {who.name} may not read or change the server configuration")


CONFIG_ACTIONS = ("config_sections", "config_add_section", "config_has_section", "config_options", "config_has_option",
                  "config_get", "config_items", "config_set", "config_remove_section", "config_remove_option")

HANDLERS: dict[str, Callable[[Who, dict[str, Any], Registry, Session], Decision | None]] = {
    "add_did": perm_add_did,
    "add_dids": perm_add_dids,
    "attach_dids": perm_attach_dids,
    "attach_dids_to_dids": perm_attach_dids_to_dids,
    "detach_dids": perm_detach_dids,
    "create_did_sample": perm_create_did_sample,
    "set_metadata": perm_set_metadata,
    "set_metadata_bulk": perm_set_metadata_bulk,
    "delete_metadata": perm_delete_metadata,
    "set_status": perm_set_status,
    "update_scope": perm_update_scope,
    "add_rule": perm_add_rule,
    "del_rule": _rule_change("del_rule"),
    "update_rule": _rule_change("update_rule"),
    "reduce_rule": _rule_change("reduce_rule"),
    "move_rule": _rule_change("move_rule"),
    "approve_rule": _rule_change("approve_rule"),
    "declare_bad_file_replicas": perm_declare_bad_file_replicas,
    "declare_suspicious_file_replicas": perm_declare_suspicious_file_replicas,
    "delete_replicas": perm_delete_replicas,
    "add_replicas": perm_add_replicas,
    "update_replicas_states": perm_update_replicas_states,
    "get_signed_url": perm_get_signed_url,
    **dict.fromkeys(CONFIG_ACTIONS, perm_config),
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
    web.install()
    try:
        decision = decide(issuer, action, kwargs, session)  # type: ignore[arg-type]
    except (TypeError, KeyError, AttributeError, ValueError) as err:
        # Rucio would silently fall back to its generic policy on a TypeError: deny loudly instead.
        LOGGER.exception("permission policy failed for %s by %s", action, issuer)
        decision = _deny("policy-error", f"{action} could not be evaluated: {err!r}")
    if decision is None:
        return None
    if not decision.allowed:
        LOGGER.info("denied %s to %s: %s", action, _ext(issuer), decision.message)
        if request.path() is not None and not decision.quiet:
            # Several Rucio views (POST /rules, PUT /scopes, GET /credentials/signurl, ...) let AccessDenied
            # through as a 500, and some echo the request's DID names into a header: answer the refusal here.
            from rucio.common.exception import AccessDenied

            request.refuse(AccessDenied(decision.message), 403)
    return decision.result()
