"""Onboarding an experiment: what its profile needs in Rucio (plan), and making it so as root (apply).

The plan compares the profile with what Rucio holds: accounts and roles, identities, account attributes, scopes,
RSEs (created only where the caller knows their protocols, as the testbed does), S3 buckets of its scopes (where
the profile holds the site's keys, as testbed profiles do), RSE attributes, quotas,
distances, and the registration of the profile in Rucio's config option `psge.experiments`, from which the
policy package serves the experiment. Applying an empty plan does nothing, so `apply` can be re-run at will.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rucio.common.exception import ConfigNotFound, Duplicate, RSEProtocolPriorityError

from cygno_dm.profile import PACKAGED, Profile, ProfileError, load_profile

log = logging.getLogger(__name__)

DEFAULT_QUOTA = 10**15  # bytes per account and RSE where the profile sets no quota
ACCOUNT_TYPE = {"root": "SERVICE", "admin": "SERVICE", "daq": "SERVICE", "data-manager": "USER",
                "production": "SERVICE", "user": "USER"}


@dataclass(frozen=True)
class Change:
    """One thing to create or change in Rucio; `action` does it."""

    kind: str
    target: str
    detail: str
    action: Callable[[], Any] = field(compare=False, repr=False)

    def as_dict(self) -> dict[str, str]:
        """kind, target, detail."""
        return {"kind": self.kind, "target": self.target, "detail": self.detail}


@dataclass
class Plan:
    """The changes an experiment's profile needs, and what the policy package will serve for it."""

    experiment: str
    changes: list[Change]
    served: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"experiment": self.experiment, "changes": [c.as_dict() for c in self.changes], "served": self.served}


def profile_ref(ref: str) -> str:
    """How the server finds a profile: a packaged name as is, a file by its absolute path."""
    return ref if not Path(ref).exists() and (PACKAGED / f"{ref}.toml").exists() else str(Path(ref).resolve())


def _same(a: Any, b: Any) -> bool:
    return str(a).lower() == str(b).lower()


def _attributes(client: Any, account: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in client.list_account_attributes(account):
        for attr in item if isinstance(item, list) else [item]:
            out[attr["key"]] = attr["value"]
    return out


def registered(client: Any) -> list[str]:
    """Profile references in Rucio's config option psge.experiments."""
    from rucio_policies.experiments import CONFIG_OPTION, CONFIG_SECTION

    try:
        value = client.get_config(CONFIG_SECTION, CONFIG_OPTION)
    except ConfigNotFound:
        return []
    value = value.get(CONFIG_OPTION, value) if isinstance(value, dict) else value
    refs = json.loads(value) if isinstance(value, str) else value
    return list(refs or [])


def check_together(profile: Profile, others: Iterable[str]) -> None:
    """Raise ProfileError if the profile clashes with the other served profiles (scopes, accounts, names, RSEs)."""
    from rucio_policies.experiments import registry_of

    loaded = []
    for ref in others:
        try:
            other = load_profile(ref)
        except ProfileError as err:
            log.warning("cannot check against %s: %s", ref, err)
            continue
        if other.experiment.name != profile.experiment.name:
            loaded.append(other)
    registry_of([*loaded, profile])


def _experiment_of(ref: str) -> str | None:
    try:
        return load_profile(ref).experiment.name
    except ProfileError:
        return None


def served(profile: Profile) -> dict[str, Any]:
    """What the policy package serves for the experiment once registered."""
    from rucio_policies.experiments import Experiment
    from rucio_policies.naming import raw_collection_rule, raw_file_rule

    exp = Experiment(profile)
    return {
        "scopes": {"raw": profile.scopes.raw, "sim": profile.scopes.sim, "analysis": profile.scopes.analysis,
                   "user": [exp.user_scope(a.name) for a in profile.accounts_with("user")]},
        "roles": {a.name: a.role for a in profile.accounts},
        "naming": {"raw-file-name": raw_file_rule(exp).text, "raw-collection-name": raw_collection_rule(exp).text,
                   "dataset": profile.naming.dataset or f"<TAG>/runs-... ({profile.naming.runs_per_dataset} runs)"},
        "metadata_keys": {k: v.model_dump(exclude_none=True) for k, v in profile.metadata.items()},
        "ingest": profile.ingest.model_dump(),
    }


def _s3(rse: Any) -> Any:
    import boto3
    from botocore.config import Config

    from cygno_dm.ingest.stores import ca_bundle, tls_verify

    return boto3.session.Session().client(
        "s3", endpoint_url=rse.endpoint, aws_access_key_id=rse.credentials["access_key"],
        aws_secret_access_key=rse.credentials["secret_key"], region_name=rse.credentials.get("region", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}), verify=ca_bundle(tls_verify()))


def _bucket_exists(rse: Any, bucket: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        _s3(rse).head_bucket(Bucket=bucket)
        return True
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise


def _make_bucket(rse: Any, bucket: str) -> None:
    _s3(rse).create_bucket(Bucket=bucket)


def plan(client: Any, profile: Profile, ref: str | None = None,
         rse_settings: dict[str, dict[str, Any]] | None = None, buckets: bool = True) -> Plan:
    """The changes that make Rucio serve `profile`; with `ref`, also its registration in psge.experiments.

    rse_settings (name -> rse_type, protocols, attributes) lets missing RSEs be created; without it a missing
    RSE is an error, since its protocols are the storage site's business. buckets=False: leave S3 buckets alone.
    """
    changes: list[Change] = []

    def add(kind: str, target: str, detail: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        changes.append(Change(kind, target, detail, lambda: fn(*args, **kwargs)))

    accounts = {a["account"] for a in client.list_accounts()}
    s3 = any(rse.kind == "s3" for rse in profile.rses.values())
    for acc in profile.accounts:
        exists = acc.name in accounts
        if not exists and acc.name != "root":
            add("account", acc.name, f"{ACCOUNT_TYPE[acc.role]} account, role {acc.role}", client.add_account,
                acc.name, ACCOUNT_TYPE[acc.role], acc.email)
        if acc.password and acc.name != "root":
            ids = {(i["type"], i["identity"]) for i in client.list_identities(acc.name)} if exists else set()
            if ("USERPASS", acc.name) not in ids:
                add("identity", acc.name, "USERPASS identity (testbed password)", client.add_identity,
                    account=acc.name, identity=acc.name, authtype="USERPASS", email=acc.email, default=True,
                    password=acc.password)
        attrs = _attributes(client, acc.name) if exists else {}
        wanted = {"admin": "True"} if acc.role == "admin" else {}
        if s3 and acc.name != "root":
            wanted["sign-url"] = "True"  # signed S3 URLs from the server
        for key, value in wanted.items():
            if not _same(attrs.get(key), value):
                add("account-attribute", acc.name, f"{key}={value}", client.add_account_attribute, acc.name, key, value)

    scopes = set(client.list_scopes())
    daq = next((a.name for a in profile.accounts_with("daq")), "root")
    owners = {f"{profile.scopes.user_prefix}{a.name}": a.name for a in profile.accounts_with("user")}
    owners.update({s: daq if s in profile.scopes.raw else "root" for s in profile.scopes.all})
    for scope, owner in owners.items():
        if scope not in scopes:
            add("scope", scope, f"owned by {owner}", client.add_scope, owner, scope)

    rses = {r["rse"] for r in client.list_rses()}
    for name, rse in profile.rses.items():
        settings = (rse_settings or {}).get(name)
        exists = name in rses
        if not exists and settings is None:
            raise ProfileError(f"rses.{name}: no such RSE in this Rucio; the site creates it (with its protocols) "
                               "before the experiment is onboarded")
        if not exists:
            add("rse", name, f"{settings['rse_type']} RSE", client.add_rse, name, deterministic=True,
                rse_type=settings["rse_type"])
        if settings is not None:
            have = {(p["scheme"], p["hostname"], int(p["port"]))
                    for p in (client.get_protocols(name) if exists else [])}
            for proto in settings["protocols"]:
                if (proto["scheme"], proto["hostname"], int(proto["port"])) not in have:
                    add("protocol", name, f"{proto['scheme']}://{proto['hostname']}:{proto['port']}",
                        client.add_protocol, name, proto)
        attrs = client.list_rse_attributes(name) if exists else {}
        wanted_attrs = {**(settings or {}).get("attributes", {}), **rse.attributes, profile.experiment.name: True}
        for key, value in wanted_attrs.items():
            if not _same(attrs.get(key), value):
                add("rse-attribute", name, f"{key}={value}", client.add_rse_attribute, name, key, value)

    for name, rse in profile.rses.items():
        if buckets and rse.kind == "s3" and rse.credentials:
            for bucket in owners:
                if not _bucket_exists(rse, bucket):
                    add("bucket", f"{name}/{bucket}", f"S3 bucket at {rse.endpoint}", _make_bucket, rse, bucket)

    for acc in profile.accounts:
        limits = client.get_local_account_limits(acc.name) if acc.name in accounts else {}
        for name in profile.rses:
            quota = DEFAULT_QUOTA if acc.role == "root" else profile.quotas.get(name, DEFAULT_QUOTA)
            if limits.get(name) is None or int(limits[name]) != quota:
                add("quota", f"{acc.name}@{name}", f"{quota} bytes", client.set_local_account_limit, acc.name, name,
                    quota)

    for src, dsts in profile.distances.items():
        for dst, distance in dsts.items():
            have = client.get_distance(src, dst) if src in rses and dst in rses else []
            if not have:
                add("distance", f"{src}->{dst}", str(distance), client.add_distance, src, dst, {"distance": distance})
            elif int(have[0].get("distance", -1)) != distance:
                add("distance", f"{src}->{dst}", f"{have[0].get('distance')} -> {distance}", client.update_distance,
                    src, dst, {"distance": distance})

    if ref is not None:
        from rucio_policies.experiments import CONFIG_OPTION, CONFIG_SECTION, profile_refs

        current = registered(client)
        check_together(profile, [*profile_refs(), *current])
        others = [r for r in current if _experiment_of(r) != profile.experiment.name]
        if ref not in current or len(others) != len(current) - 1:  # one reference per experiment
            replaced = [r for r in current if r not in others]
            add("registration", f"{CONFIG_SECTION}.{CONFIG_OPTION}",
                f"add {ref}" + (f" (instead of {', '.join(replaced)})" if replaced else ""),
                client.set_config_option, CONFIG_SECTION, CONFIG_OPTION, json.dumps([*others, ref]))
    return Plan(profile.experiment.name, changes, served(profile))


def apply(changes: Iterable[Change]) -> list[dict[str, str]]:
    """Make each change in order; one made meanwhile by someone else (Duplicate) counts as done."""
    done = []
    for change in changes:
        try:
            change.action()
            log.info("%s %s: %s", change.kind, change.target, change.detail)
        except (Duplicate, RSEProtocolPriorityError):
            log.info("%s %s existed already", change.kind, change.target)
        done.append(change.as_dict())
    return done
