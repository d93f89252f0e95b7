"""The replication-policy comparison (pure: a dataset's rules as Rucio lists them against the profile's rules)."""

from __future__ import annotations

import datetime as dt

import pytest

from cygno_dm import replication
from cygno_dm.profile import ProfileError, load_profile, parse_profile

PROFILE = load_profile("gravnet-testbed")
RAW = PROFILE.replication["raw"]  # T1_USERTAPE x1; CNAF_USERDISK x1 90 days; BARI_USERDISK x1 14 days
T0 = "Mon, 30 Nov 2026 10:00:00 UTC"


def rule(expr: str, copies: int = 1, days: int | None = None, comment: str = "cygno-dm ingest: profile replication",
         locked: bool = False, rid: str = "r") -> dict:
    expires = None  # only the difference to created_at matters
    if days is not None:
        expires = (dt.datetime(2026, 11, 30, 10) + dt.timedelta(days=days)).strftime("%a, %d %b %Y %H:%M:%S UTC")
    return {"id": rid, "rse_expression": expr, "copies": copies, "expires_at": expires, "created_at": T0,
            "comments": comment, "locked": locked}


def kinds(rules: list[dict], allow_protected: bool = False) -> list[tuple[str, str]]:
    return sorted((d.kind, d.rse_expression)
                  for d in replication.compare(PROFILE, "gravnet-raw", "LNF/20261130", rules, RAW, allow_protected))


def test_the_policy_rules_as_the_uploader_makes_them_are_no_difference():
    assert kinds([rule("T1_USERTAPE", locked=True), rule("CNAF_USERDISK", days=90), rule("BARI_USERDISK", days=14)]) == []


def test_missing_other_copies_other_lifetime_and_unwanted():
    rules = [rule("CNAF_USERDISK", copies=2, days=90), rule("BARI_USERDISK", days=30),
             rule("BACKBONE_USERDISK", comment="cygno-dm policy: old"),
             rule("BACKBONE_USERDISK", comment="carla's analysis copy")]
    assert kinds(rules) == [("copies", "CNAF_USERDISK"), ("lifetime", "BARI_USERDISK"),
                            ("missing", "T1_USERTAPE"), ("unwanted", "BACKBONE_USERDISK")]


def test_lifetime_noted_by_policy_apply_wins_over_the_dates():
    updated = rule("BARI_USERDISK", days=3, comment="cygno-dm policy: copies=1 lifetime=14d")
    assert kinds([rule("T1_USERTAPE"), rule("CNAF_USERDISK", days=90), updated]) == []


def test_locked_and_tape_rules_are_protected_unless_root_allows_it():
    rules = [rule("T1_USERTAPE", copies=2), rule("CNAF_USERDISK", days=90), rule("BARI_USERDISK", days=14),
             rule("BACKBONE_USERDISK", locked=True)]
    assert kinds(rules) == [("protected", "BACKBONE_USERDISK"), ("protected", "T1_USERTAPE")]
    assert kinds(rules, allow_protected=True) == [("copies", "T1_USERTAPE"), ("unwanted", "BACKBONE_USERDISK")]


def test_apply_skips_protected_and_stops_between_batches():
    diffs = list(replication.compare(PROFILE, "gravnet-raw", "LNF/x", [rule("BACKBONE_USERDISK", locked=True)], RAW))
    assert replication.apply(None, diffs, "gravnet-dm", batch=1, stop=lambda: True) == {
        "protected": 1, "not done (interrupted)": 3}


def test_subscriptions_carry_each_data_type():
    subs = {s["name"]: s for s in replication.subscriptions(PROFILE)}
    assert set(subs) == {"gravnet-raw-policy", "gravnet-analysis-policy"}
    assert subs["gravnet-raw-policy"]["filter"] == {"scope": ["gravnet-raw"], "did_type": ["DATASET"]}
    assert {"rse_expression": "BARI_USERDISK", "copies": 1, "activity": "User Subscriptions",
            "lifetime": 14 * 86400} in \
        subs["gravnet-raw-policy"]["replication_rules"]


def test_replication_of_an_unknown_data_type_is_refused():
    data = PROFILE.model_dump()
    data["replication"]["calibration"] = []
    with pytest.raises(ProfileError, match="replication: data type 'calibration'"):
        parse_profile(data)


def test_a_rule_already_deleted_is_not_unwanted_again():
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=59)).strftime("%a, %d %b %Y %H:%M:%S UTC")
    leaving = {**rule("BACKBONE_USERDISK", comment="cygno-dm policy"), "expires_at": soon}
    assert kinds([rule("T1_USERTAPE"), rule("CNAF_USERDISK", days=90), rule("BARI_USERDISK", days=14), leaving]) == []
