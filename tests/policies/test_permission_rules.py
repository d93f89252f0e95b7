"""Permission decisions that need no database: DID writes per role, scope and experiment (two profiles)."""

from __future__ import annotations

import pytest
from rucio.common.types import InternalAccount, InternalScope

from cygno_dm.profile import load_profile, parse_profile
from rucio_policies.experiments import registry_of
from rucio_policies.permission import decide, has_permission


def _flash() -> dict:
    data = load_profile("cygno-testbed").model_dump()
    data["experiment"]["name"] = "flash"
    data["scopes"] = {"raw": ["flash-raw"], "sim": [], "analysis": ["flash-ana"], "user_prefix": "user."}
    data["naming"]["tags"] = ["GS"]
    data["accounts"] = [{"name": "root", "role": "root", "password": "x"}, {"name": "flash-daq", "role": "daq"},
                        {"name": "flash-dm", "role": "data-manager"}, {"name": "flash-admin", "role": "admin"},
                        {"name": "bob", "role": "user"}]
    data["tokens"] = None  # CYGNO's clients and group grants name CYGNO's accounts and scopes
    return data


REG = registry_of([load_profile("cygno-testbed"), parse_profile(_flash())])


def _allowed(account: str, action: str, kwargs: dict) -> bool | None:
    decision = decide(InternalAccount(account), action, kwargs, None, reg=REG)  # type: ignore[arg-type]
    return None if decision is None else decision.allowed


def _did(scope: str, name: str, did_type: str = "DATASET", **extra: object) -> dict:
    return {"scope": InternalScope(scope), "name": name, "type": did_type, **extra}


@pytest.mark.parametrize(("account", "scope", "name", "expected"), [
    ("rucio-daq", "cygno-data", "LNGS/runs00100-00199", True),
    ("rucio-daq", "cygno-sim", "x", False),
    ("rucio-daq", "flash-raw", "GS/runs1", False),           # other experiment
    ("flash-daq", "flash-raw", "GS/runs1", True),
    ("flash-daq", "cygno-data", "LNGS/runs1", False),        # other experiment
    ("cygno-dm", "cygno-analysis", "RECO/c1", True),
    ("cygno-dm", "flash-ana", "RECO/c1", False),
    ("cygno-prod", "cygno-analysis", "RECO/c1", True),      # production writes derived data
    ("cygno-prod", "cygno-sim", "MC/c1", True),
    ("cygno-prod", "cygno-data", "LNGS/runs1", False),       # never raw data
    ("cygno-prod", "flash-ana", "RECO/c1", False),
    ("flash-admin", "flash-raw", "GS/x", True),
    ("flash-admin", "cygno-data", "LNGS/x", False),          # an admin is admin of its experiment only
    ("alice", "user.alice", "mine", True),
    ("alice", "user.bob", "theirs", False),                  # bob is a FLASH user
    ("bob", "user.bob", "mine", True),
    ("alice", "cygno-data", "LNGS/x", False),
    ("root", "flash-raw", "GS/x", True),
    ("stranger", "cygno-data", "LNGS/x", False),             # in no profile
    ("stranger", "unmanaged-scope", "x", None),              # not ours to decide: Rucio's generic policy
    ("alice", "unmanaged-scope", "x", False),
])
def test_add_did(account: str, scope: str, name: str, expected: bool | None) -> None:
    assert _allowed(account, "add_did", _did(scope, name)) is expected


def test_add_did_checks_names_and_lifetimes() -> None:
    assert _allowed("rucio-daq", "add_did", _did("cygno-data", "LNGS/x.txt")) is False
    assert _allowed("rucio-daq", "add_did", _did("cygno-data", "LNGS/ds", lifetime=3600)) is False
    assert _allowed("cygno-dm", "add_did", _did("cygno-data", "LNGS/ds", lifetime=3600)) is False
    assert _allowed("root", "add_did", _did("cygno-data", "LNGS/ds", lifetime=3600)) is True
    assert _allowed("cygno-dm", "add_did", _did("cygno-analysis", "RECO/x", lifetime=3600)) is True


def test_bulk_add_from_replica_registration_checks_file_names() -> None:
    files = {"rse": "CNAF_USERDISK", "dids": [{"scope": InternalScope("cygno-data"), "name": "LNGS/run00001.mid.gz"}]}
    assert _allowed("rucio-daq", "add_dids", files) is True
    files["dids"].append({"scope": InternalScope("cygno-data"), "name": "LNGS/runs1"})  # a collection name
    assert _allowed("rucio-daq", "add_dids", files) is False


@pytest.mark.parametrize(("account", "parent", "child", "rse", "expected"), [
    ("rucio-daq", "cygno-data", "cygno-data", None, True),
    ("alice", "user.alice", "cygno-data", None, True),        # a personal dataset of raw files
    ("alice", "user.alice", "flash-raw", None, False),        # not of another experiment
    ("alice", "user.alice", "cygno-data", "CNAF_USERDISK", False),  # registering new raw files
    ("cygno-dm", "cygno-analysis", "cygno-data", None, True),
])
def test_attach(account: str, parent: str, child: str, rse: str | None, expected: bool) -> None:
    kwargs = {"scope": InternalScope(parent), "name": "x",
              "attachment": {"rse": rse, "dids": [{"scope": child, "name": "LNGS/run00001.mid.gz"}]}}
    assert _allowed(account, "attach_dids", kwargs) is expected


@pytest.mark.parametrize(("account", "scope", "rule_account", "locked", "expected"), [
    ("rucio-daq", "cygno-data", "rucio-daq", False, True),
    ("rucio-daq", "cygno-data", "cygno-dm", False, False),
    ("rucio-daq", "cygno-sim", "rucio-daq", False, False),
    ("cygno-dm", "cygno-data", "alice", True, True),
    ("cygno-dm", "cygno-data", "bob", False, False),           # bob is not of CYGNO
    ("cygno-dm", "flash-raw", "cygno-dm", False, False),
    ("alice", "cygno-data", "alice", False, True),
    ("alice", "cygno-data", "alice", True, False),
    ("alice", "flash-raw", "alice", False, False),
])
def test_add_rule(account: str, scope: str, rule_account: str, locked: bool, expected: bool) -> None:
    kwargs = {"dids": [{"scope": InternalScope(scope), "name": "x"}], "account": InternalAccount(rule_account),
              "locked": locked}
    assert _allowed(account, "add_rule", kwargs) is expected


def test_metadata_protects_raw_expiry() -> None:
    kwargs = {"scope": InternalScope("cygno-data"), "name": "LNGS/run00001.mid.gz", "key": "lifetime", "value": 1}
    assert _allowed("cygno-dm", "set_metadata", kwargs) is False
    assert _allowed("cygno-dm", "set_metadata", {**kwargs, "key": "run_type", "value": "physics"}) is True
    assert _allowed("alice", "set_metadata", {**kwargs, "key": "run_type", "value": "physics"}) is False


def test_actions_outside_the_policy_fall_back_to_rucio() -> None:
    assert decide(InternalAccount("alice"), "add_rse", {"rse": "X"}, None, reg=REG) is None  # type: ignore[arg-type]
    assert has_permission(InternalAccount("alice"), "add_rse", {"rse": "X"}) is None


def test_broken_arguments_are_denied_not_passed_to_rucio() -> None:
    result = has_permission(InternalAccount("alice"), "add_did", {"name": "no scope"})
    assert result is not None and not result.allowed and "policy-error" in result.message


@pytest.mark.parametrize(("account", "op", "url", "expected"), [
    ("alice", "delete", "https://s3.cnaf/cygno-data/LNGS/run00001.mid.gz", False),
    ("rucio-daq", "delete", "https://s3.cnaf/cygno-data/LNGS/run00001.mid.gz", False),
    ("cygno-dm", "delete", "https://s3.cnaf/cygno-data/LNGS/run00001.mid.gz", False),
    ("flash-admin", "delete", "https://s3.cnaf/flash-raw/GS/run00001.mid.gz", None),   # generic rule decides
    ("flash-admin", "delete", "https://s3.cnaf/cygno-data/LNGS/run00001.mid.gz", False),
    ("alice", "read", "https://s3.cnaf/cygno-data/LNGS/run00001.mid.gz", None),
    ("alice", "read", "https://s3.cnaf/flash-raw/GS/run00001.mid.gz", False),
    ("alice", "write", "https://s3.cnaf/cygno-data/LNGS/run00001.mid.gz", False),
    ("rucio-daq", "write", "davs://tape/cygno/flash-raw/GS/run00001.mid.gz", False),
    ("root", "delete", "https://s3.cnaf/cygno-data/LNGS/run00001.mid.gz", None),
])
def test_signed_urls(account: str, op: str, url: str, expected: bool | None) -> None:
    from urllib.parse import urlencode

    import flask

    app = flask.Flask(__name__)
    with app.test_request_context("/credentials/signurl?" + urlencode({"rse": "X", "svc": "s3", "op": op, "url": url})):
        assert _allowed(account, "get_signed_url", {"account": InternalAccount(account)}) is expected
    assert _allowed(account, "get_signed_url", {}) is None  # list_replicas signing reads: generic rule
    # writes of new objects, and refusals of overwrites, need the catalogue: tests/policies/test_hostile.py
