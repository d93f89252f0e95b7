"""Onboarding checks that need no server: clashes with served profiles, profile references, what is served."""

from __future__ import annotations

import pytest

from cygno_dm.onboard import check_together, profile_ref, served
from cygno_dm.profile import ProfileError, load_profile, parse_profile

GRAVNET = load_profile("gravnet-testbed")


def test_gravnet_and_cygno_are_served_side_by_side():
    check_together(GRAVNET, ["cygno-testbed", "gravnet-testbed"])  # its own earlier version is replaced, no clash
    out = served(GRAVNET)
    assert out["scopes"]["user"] == ["user.carla"] and out["roles"]["gravnet-daq"] == "daq"
    assert "gravnet" in out["naming"]["raw-file-name"] and out["naming"]["dataset"] == "{tag}/{date}"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["scopes"].update(raw=["cygno-data"]), "scope 'cygno-data' is claimed"),
    (lambda d: d["accounts"].append({"name": "alice", "role": "user"}), "account 'alice' is claimed"),
    (lambda d: d["rses"]["T1_USERTAPE"].update(kind="webdav"), "RSE 'T1_USERTAPE' is a tape RSE"),
])
def test_a_profile_clashing_with_a_served_one_is_refused_before_anything_is_written(edit, message):
    data = GRAVNET.model_dump()
    edit(data)
    with pytest.raises(ProfileError, match=message):
        check_together(parse_profile(data), ["cygno-testbed"])


def test_profile_references_the_server_can_resolve(tmp_path):
    assert profile_ref("gravnet-testbed") == "gravnet-testbed"
    local = tmp_path / "x.toml"
    local.write_text("")
    assert profile_ref(str(local)) == str(local.resolve())
