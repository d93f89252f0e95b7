"""Experiment profiles: the packaged ones load, broken ones are refused naming the field and the rule."""

from __future__ import annotations

import copy
import tomllib

import pytest

from cygno_dm.profile import PACKAGED, ProfileError, load_profile, parse_profile

BASE = tomllib.loads((PACKAGED / "cygno-testbed.toml").read_text())


def broken(edit) -> dict:
    data = copy.deepcopy(BASE)
    edit(data)
    return data


def test_packaged_testbed_profile_loads() -> None:
    p = load_profile("cygno-testbed")
    assert p.experiment.name == "cygno"
    assert p.scopes.raw == ["cygno-data"]
    assert {a.role for a in p.accounts} >= {"root", "daq", "data-manager", "user"}
    assert p.rses, "the testbed needs RSEs"
    # Rucio asks for tokens for the davs endpoints (XRootD, tape), not for S3 (signed URLs)
    assert {n for n, r in p.rses.items() if r.accepts_tokens} == {"BACKBONE_USERDISK", "T1_USERTAPE"}


@pytest.mark.parametrize("name,ok", [
    ("LNGS/run114497.mid.gz", True),
    ("LNF/run00001.mid.gz", True),
    ("LNGS/run1234.mid.gz", False),       # fewer than 5 digits
    ("XYZ/run114497.mid.gz", False),      # TAG not in the profile
    ("LNGS/run114497.mid", False),        # not gzipped
    ("/LNGS/run114497.mid.gz", False),
])
def test_raw_name_rule(name: str, ok: bool) -> None:
    assert bool(load_profile("cygno-testbed").naming.raw_name_re.match(name)) is ok


@pytest.mark.parametrize("edit,field,rule", [
    (lambda d: d["rses"]["CNAF_USERDISK"].update(kind="ftp"), "rses.CNAF_USERDISK.kind", "must be one of"),
    (lambda d: d["scopes"].update(raw=["Cygno Data"]), "scopes.raw", "must match"),
    (lambda d: d["rses"].update(X_DISK={"kind": "s3", "site": "X"}), "rses.X_DISK", "need 'endpoint'"),
    (lambda d: d["rses"].update(Y_DISK={"kind": "posix"}), "rses.Y_DISK", "need 'path'"),
    (lambda d: d["rses"].update(Z={"kind": "s3", "endpoint": "not a url"}), "rses.Z", "must be an http"),
    (lambda d: d.pop("experiment"), "experiment", "is required"),
    (lambda d: d["experiment"].update(colour="red"), "experiment.colour", "is not a known field"),
    (lambda d: d["naming"].update(tags=["lngs"]), "naming.tags", "TAG 'lngs' must match"),
    (lambda d: d["accounts"].append({"name": "Bad Name", "role": "user"}), "accounts.5.name", "must match"),
    (lambda d: d["accounts"].append({"name": "eve", "role": "god"}), "accounts.5.role", "must be one of"),
    (lambda d: d["distances"].update(NOWHERE={"CNAF_USERDISK": 1}), "distances", "unknown RSE 'NOWHERE'"),
    (lambda d: d["rses"].update({"lower_case": {"kind": "posix", "path": "x"}}), "rses", "RSE name"),
    (lambda d: d["metadata"].update(run_number={"type": "integer"}), "metadata.run_number.type", "must be one of"),
    (lambda d: d["metadata"].update({"Run Number": {"type": "int"}}), "(top level)", "metadata key"),
    (lambda d: d["rses"]["CNAF_USERDISK"].update(tokens=True), "rses.CNAF_USERDISK", "only to davs:// endpoints"),
    (lambda d: d["tokens"].update(issuer="http://iam.example"), "tokens.issuer", "must be an https:// URL"),
    (lambda d: d["tokens"].update(issuer="https://iam.example/?x=1"), "tokens.issuer", "must be an https:// URL"),
    (lambda d: d.pop("tokens").pop("issuer") and d.update(tokens={}), "tokens.issuer", "is required"),
    (lambda d: d["tokens"]["clients"].update(rucio="a b"), "tokens.clients.rucio", "client id 'a b' must match"),
    (lambda d: d["tokens"]["clients"].update(people="rucio"), "tokens.clients", "must be distinct"),
    (lambda d: d["tokens"]["clients"]["daq"].update(alice="x"), "tokens.clients.daq.alice", "not a DAQ account"),
    (lambda d: d["tokens"].update(rucio_audience="a b"), "tokens.rucio_audience", "must be one word"),
    (lambda d: d["tokens"]["groups"].update(robots=["/cygno"]), "tokens.groups", "must be 'rucio' or a role"),
    (lambda d: d["tokens"]["groups"].update(user=["cygno"]), "tokens.groups", "group 'cygno' must match"),
    (lambda d: d["tokens"]["group_grants"][0].update(permissions=["write"]), "tokens.group_grants.0.permissions.0",
     "must be one of"),
    (lambda d: d["tokens"]["group_grants"][0].update(permissions=[]), "tokens.group_grants.0.permissions",
     "at least one of"),
    (lambda d: d["tokens"]["group_grants"][0].update(path="cygno-data"), "tokens.group_grants.0.path",
     "must be /<bucket>"),
    (lambda d: d["tokens"]["group_grants"][0].update(path="/elsewhere"), "tokens.group_grants.0.path",
     "bucket 'elsewhere' is not a scope"),
])
def test_broken_profile_names_field_and_rule(edit, field: str, rule: str) -> None:
    with pytest.raises(ProfileError) as err:
        parse_profile(broken(edit), "bad.toml")
    msg = str(err.value)
    assert msg.startswith("bad.toml: ") and field in msg and rule in msg, msg
    assert "\n" not in msg


def test_missing_and_malformed_files(tmp_path) -> None:
    with pytest.raises(ProfileError, match="profile not found"):
        load_profile(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiment\nname=")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(bad)


def test_production_tokens_differ_from_the_testbed_only_in_issuer_and_clients() -> None:
    """docs/permissions.md: INDIGO IAM's issuer (with its trailing slash) and the client ids IAM registered are the
    only token settings a production profile changes; audiences, groups and group grants stay."""
    data = broken(lambda d: d["tokens"].update(issuer="https://iam-cygno.example.infn.it/", clients={
        "rucio": "6f1c2d3e-rucio", "people": "0a9b8c7d-people", "daq": {"rucio-daq": "5e4d3c2b-daq"}}))
    prod, testbed = parse_profile(data).tokens, load_profile("cygno-testbed").tokens
    assert prod.issuer == "https://iam-cygno.example.infn.it/"
    assert prod.model_dump(exclude={"issuer", "clients"}) == testbed.model_dump(exclude={"issuer", "clients"})
    assert parse_profile(data).token_client("rucio-daq") == "5e4d3c2b-daq"
