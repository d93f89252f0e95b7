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
def gravnet(world: World, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """GravNet onboarded next to CYGNO."""
    return onboard_gravnet(world.tb, tmp_path_factory.mktemp("gravnet"))


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
    return SimpleNamespace(name=name, clients=clients, raw=raw, tag=tag, ds=ds, rule=rule, user_scope=user_scope)


ACTIONS = {
    "writes a dataset in": lambda c, t: c.add_dataset(t.raw, f"{t.tag}/x{uuid.uuid4().hex[:8]}"),
    "writes metadata in": lambda c, t: c.set_metadata(t.raw, t.ds, "run_type", "physics"),
    "replicates from": lambda c, t: c.add_replication_rule([{"scope": t.raw, "name": t.ds}], 1, "BARI_USERDISK"),
    "deletes a rule in": lambda c, t: c.delete_replication_rule(t.rule),
    "writes in the user scope of": lambda c, t: c.add_dataset(t.user_scope, f"x{uuid.uuid4().hex[:8]}"),
}
ALLOWED = {  # the same action in the account's own experiment, where its role may do it
    ("writes a dataset in", "daq"), ("writes metadata in", "daq"), ("replicates from", "data-manager"),
    ("deletes a rule in", "data-manager"), ("writes in the user scope of", "user"),
}


def test_every_cross_experiment_action_is_refused_next_to_the_allowed_one(world: World,
                                                                          gravnet: SimpleNamespace) -> None:
    refused, allowed = [], []
    for actor, target in (("cygno", "gravnet"), ("gravnet", "cygno")):
        for (what, act), role in ((a, r) for a in ACTIONS.items() for r in ROLES):
            own, other = _side(world, gravnet, actor), _side(world, gravnet, target)
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
