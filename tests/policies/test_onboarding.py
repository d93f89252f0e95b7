"""A second experiment (GravNet-like) onboarded on the running testbed next to CYGNO: `experiment apply`, isolation
on the real server, and the replication policy as plan/apply (its DAQ: tests/ingest/test_onboarded_ingest.py)."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest
from rucio.common.exception import AccessDenied, RucioException

from cygno_dm import replication
from tests.onboarding import ROLES, cli, onboard_gravnet
from tests.policies.world import World


@pytest.fixture(scope="session")
def gravnet(world: World) -> SimpleNamespace:
    """GravNet onboarded next to CYGNO."""
    return onboard_gravnet(world.tb)


def test_experiment_apply_creates_what_the_plan_lists_then_is_a_no_op(world: World, gravnet: SimpleNamespace) -> None:
    kinds = {c["kind"] for c in gravnet.planned["changes"]}
    assert {"account", "identity", "scope", "quota", "rse-attribute", "registration", "bucket"} <= kinds
    assert gravnet.first["changes"] == gravnet.planned["changes"] and gravnet.first["applied"] > 0
    assert gravnet.again["changes"] == [] and gravnet.again["applied"] == 0
    assert "gravnet" in gravnet.planned["served"]["naming"]["raw-file-name"]
    assert set(gravnet.planned["served"]["metadata_keys"]) >= {"site", "sequence", "center_frequency_hz"}
    root = world.root
    assert {"gravnet-raw", "gravnet-sim", "gravnet-ana", "user.carla"} <= set(root.list_scopes())
    assert root.get_local_account_limits("gravnet-daq")["BARI_USERDISK"] == 50_000_000_000_000
    assert root.get_local_account_limits(world.accounts["daq"])["BARI_USERDISK"] == 10**15  # CYGNO's unchanged
    assert str(root.list_rse_attributes("CNAF_USERDISK").get("gravnet")).lower() == "true"


def test_a_user_who_is_not_root_cannot_onboard(world: World, gravnet: SimpleNamespace) -> None:
    out = cli(world.tb, "experiment", "apply", str(gravnet.path), account=world.accounts["data-manager"])
    assert out.returncode == 1 and "run as root" in out.stderr


def _side(world: World, gravnet: SimpleNamespace, name: str) -> SimpleNamespace:
    """One experiment's accounts, clients, raw scope, a dataset with a rule and a file of its own (made by root)."""
    if name == "cygno":
        clients, raw, tag = {r: world.clients[r] for r in ROLES}, world.raw, world.tag
        user_scope = world.user_scope
    else:
        clients, raw, tag = gravnet.clients, "gravnet-raw", "LNF"
        user_scope = "user." + gravnet.accounts["user"]
    ds = f"{tag}/iso{uuid.uuid4().hex[:10]}"
    world.root.add_dataset(raw, ds)
    rule = world.root.add_replication_rule([{"scope": raw, "name": ds}], 1, world.disk, account="root")[0]
    url = world.root.lfns2pfns(world.disk, [f"{raw}:{ds}"], operation="read")[f"{raw}:{ds}"]
    return SimpleNamespace(name=name, clients=clients, raw=raw, tag=tag, ds=ds, rule=rule, user_scope=user_scope,
                           url=url)


ACTIONS = {
    "writes a dataset in": lambda c, t: c.add_dataset(t.raw, f"{t.tag}/x{uuid.uuid4().hex[:8]}"),
    "writes metadata in": lambda c, t: c.set_metadata(t.raw, t.ds, "run_type", "physics"),
    "replicates from": lambda c, t: c.add_replication_rule([{"scope": t.raw, "name": t.ds}], 1, "BARI_USERDISK"),
    "deletes a rule in": lambda c, t: c.delete_replication_rule(t.rule),
    "writes in the user scope of": lambda c, t: c.add_dataset(t.user_scope, f"x{uuid.uuid4().hex[:8]}"),
    "reads (a signed URL) in": lambda c, t: c.get_signed_url("CNAF_USERDISK", "s3", "read", t.url),
}
ALLOWED = {  # the same action in the account's own experiment, where its role may do it
    ("writes a dataset in", "daq"), ("writes metadata in", "daq"), ("replicates from", "data-manager"),
    ("deletes a rule in", "data-manager"), ("writes in the user scope of", "user"),
    *(("reads (a signed URL) in", role) for role in ROLES),
}


def test_every_cross_experiment_action_is_refused_next_to_the_allowed_one(world: World,
                                                                          gravnet: SimpleNamespace) -> None:
    refused, allowed = [], []
    for actor, target in (("cygno", "gravnet"), ("gravnet", "cygno")):
        for what, act in ACTIONS.items():
            own, other = _side(world, gravnet, actor), _side(world, gravnet, target)
            for role in ROLES:
                client = own.clients[role]
                try:
                    act(client, other)
                    refused.append(f"{actor} {role} {what} {target}: NOT refused")
                except AccessDenied as err:
                    assert "policy rule" in str(err) or what.startswith("writes in the user"), err
                if (what, role) in ALLOWED:
                    try:
                        act(client, own)
                    except RucioException as err:
                        allowed.append(f"{actor} {role} {what} its own experiment: refused: {err}")
    assert refused == [] and allowed == []


def test_policy_plan_and_apply_fix_missing_changed_and_unwanted_rules(world: World,
                                                                      gravnet: SimpleNamespace) -> None:
    dm, root = gravnet.clients["data-manager"], world.root
    bare = f"LNF/pol{uuid.uuid4().hex[:8]}"  # no rules at all
    odd = f"LNF/pol{uuid.uuid4().hex[:8]}"  # BARI copy with another lifetime, an extra rule, a locked extra rule
    for ds in (bare, odd):
        root.add_dataset("gravnet-raw", ds)
    did = [{"scope": "gravnet-raw", "name": odd}]
    for expr in ("T1_USERTAPE", "CNAF_USERDISK"):
        want = next(r for r in gravnet.profile.replication["raw"] if r.rse_expression == expr)
        root.add_replication_rule(did, 1, expr, account="gravnet-dm", comment=f"cygno-dm policy: {expr}",
                                  lifetime=want.lifetime_days * 86400 if want.lifetime_days else None)
    root.add_replication_rule(did, 1, "BARI_USERDISK", account="gravnet-dm", lifetime=3 * 86400,
                              comment="cygno-dm policy: old lifetime")
    extra = root.add_replication_rule(did, 1, "BACKBONE_USERDISK", account="gravnet-dm", comment="cygno-dm policy")[0]
    locked = root.add_replication_rule(did, 1, "BACKBONE_USERDISK", account="gravnet-daq", locked=True,
                                       comment="cygno-dm ingest: old policy")[0]
    users = root.add_replication_rule(did, 1, "BACKBONE_USERDISK", account="carla", comment="my analysis")[0]

    out = cli(world.tb, "policy", "plan", "--profile", str(gravnet.path), "--json", account="root")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)["gravnet"]
    mine = [d for d in plan["differences"] if d["did"] in (f"gravnet-raw:{bare}", f"gravnet-raw:{odd}")]
    assert sorted((d["did"].split(":")[1], d["kind"], d["rse_expression"]) for d in mine) == sorted([
        (bare, "missing", "T1_USERTAPE"), (bare, "missing", "CNAF_USERDISK"), (bare, "missing", "BARI_USERDISK"),
        (odd, "lifetime", "BARI_USERDISK"), (odd, "unwanted", "BACKBONE_USERDISK"),
        (odd, "protected", "BACKBONE_USERDISK")])
    assert {s["name"] for s in json.loads(out.stdout)["gravnet"]["subscriptions"]} == {"gravnet-raw-policy",
                                                                                       "gravnet-analysis-policy"}
    diffs = [d for d in replication.plan(dm, gravnet.profile) if d.name in (bare, odd)]
    summary = replication.apply(dm, diffs, "gravnet-dm", batch=2)
    assert summary == {"protected": 1, "rule added": 3, "lifetime updated": 1, "rule removed": 1}, summary
    after = [d for d in replication.plan(dm, gravnet.profile) if d.name in (bare, odd)]
    assert [(d.kind, d.rule_id) for d in after] == [("protected", locked)]  # re-running changes nothing more
    assert world.rule_state(extra) is None or root.get_replication_rule(extra)["expires_at"] is not None
    assert world.rule_state(locked) is not None and world.rule_state(users) is not None


def test_root_adds_the_subscriptions_once(world: World, gravnet: SimpleNamespace) -> None:
    args = ("policy", "apply", "--profile", str(gravnet.path), "--subscriptions", "--json")
    refused = cli(world.tb, *args, account=world.accounts["data-manager"])
    assert refused.returncode == 1 and "only root adds subscriptions" in refused.stderr
    first = cli(world.tb, *args)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["gravnet"]["subscription added"] == 2
    again = cli(world.tb, *args)
    assert again.returncode == 0 and "subscription added" not in json.loads(again.stdout)["gravnet"], again.stdout
    subs = {s["name"]: s for s in world.root.list_subscriptions(account="root")}
    raw_filter = subs["gravnet-raw-policy"]["filter"]
    assert (json.loads(raw_filter) if isinstance(raw_filter, str) else raw_filter)["scope"] == ["gravnet-raw"]
    plan = json.loads(cli(world.tb, "policy", "plan", "--profile", str(gravnet.path), "--json").stdout)
    assert {s["state"] for s in plan["gravnet"]["subscriptions"]} == {"present"}


def test_replica_listings_are_signed_only_within_the_experiment(world: World, gravnet: SimpleNamespace) -> None:
    day = f"2026{uuid.uuid4().int % 12 + 1:02d}{uuid.uuid4().int % 28 + 1:02d}"
    name = f"LNF/LNF_{day}_{uuid.uuid4().int % 10**6:06d}.h5"
    world.root.add_replica(world.disk, "gravnet-raw", name, 1, "00000001")
    did = [{"scope": "gravnet-raw", "name": name}]

    def pfns(client: object) -> list[str]:
        (rep,) = client.list_replicas(did, schemes=["https", "s3"])  # type: ignore[attr-defined]
        return list(rep["pfns"])
    assert all("Signature" in u for u in pfns(gravnet.clients["user"])), pfns(gravnet.clients["user"])
    foreign = pfns(world.clients["user"])  # CYGNO's user: the catalogue answers, without signatures
    assert foreign and not any("Signature" in u for u in foreign), foreign
