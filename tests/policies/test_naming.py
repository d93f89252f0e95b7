"""Name rules: the Python checks, Rucio's schema validation of them, and several experiment profiles at once."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cygno_dm.profile import ProfileError, load_profile, parse_profile
from rucio_policies.experiments import profile_refs, registry, registry_of
from rucio_policies.naming import NameRuleError, check_account_name, check_did_name, check_scope_name

REG = registry_of([load_profile("cygno-testbed")])


@pytest.mark.parametrize(("scope", "name", "did_type"), [
    ("cygno-data", "LNGS/run114497.mid.gz", "FILE"),
    ("cygno-data", "MAN/run00001.mid.gz", None),
    ("cygno-data", "LNF/run1234567890.mid.gz", "F"),
    ("cygno-data", "LNGS/runs114400-114499", "DATASET"),
    ("cygno-data", "LNGS", "CONTAINER"),
    ("cygno-data", "LNGS/2024/Run5", None),
    ("cygno-analysis", "RECO/winter23/run114497_clusters.h5", "FILE"),
    ("cygno-sim", "digi/v1.2/sim_000.root", None),
    ("user.alice", "plots/fig-1.png", "FILE"),
])
def test_valid_names(scope: str, name: str, did_type: str | None) -> None:
    check_did_name(REG, scope, name, did_type)


@pytest.mark.parametrize(("scope", "name", "did_type", "rule"), [
    ("cygno-data", "LNGS/run1234.mid.gz", "FILE", "raw-file-name"),          # 4 digits
    ("cygno-data", "XYZ/run12345.mid.gz", "FILE", "raw-file-name"),          # unknown TAG
    ("cygno-data", "LNGS/run12345.mid", "FILE", "raw-file-name"),            # suffix
    ("cygno-data", "LNGS/run12345.mid.gz", "DATASET", "raw-collection-name"),
    ("cygno-data", "LNGS/junk.txt", None, "raw-name"),
    ("cygno-analysis", "RECO/../etc/passwd", None, "no-dot-component"),
    ("cygno-analysis", "RECO/./x", None, "no-dot-component"),
    ("cygno-analysis", "/RECO/x", None, "no-leading-slash"),
    ("cygno-analysis", "RECO//x", None, "no-empty-component"),
    ("cygno-analysis", "RECO/x/", None, "no-empty-component"),
    ("cygno-analysis", "RECO/x\ny", None, "no-control-characters"),
    ("cygno-analysis", "RECO/x\x00", None, "no-control-characters"),
    ("cygno-analysis", "RECO/a b", None, "allowed-characters"),
    ("cygno-analysis", "-RECO", None, "allowed-characters"),
    ("cygno-analysis", "", None, "not-empty"),
    ("cygno-analysis", "a" * 251, None, "max-length"),
])
def test_invalid_names_name_the_rule(scope: str, name: str, did_type: str | None, rule: str) -> None:
    with pytest.raises(NameRuleError) as err:
        check_did_name(REG, scope, name, did_type)
    assert err.value.rule == rule
    assert f"rule {rule}" in str(err.value)


def test_max_length_follows_profile() -> None:
    data = load_profile("cygno-testbed").model_dump()
    data["naming"]["max_name_length"] = 40
    reg = registry_of([parse_profile(data)])
    check_did_name(reg, "cygno-sim", "a" * 40)
    with pytest.raises(NameRuleError, match="max-length"):
        check_did_name(reg, "cygno-sim", "a" * 41)


@pytest.mark.parametrize("scope", ["cygno-data", "user.alice", "a", "x-1_2.3"])
def test_scope_names_follow_profile(scope: str) -> None:
    check_scope_name(scope)


@pytest.mark.parametrize("scope", ["Cygno", "1abc", "", "a" * 26, "abc\n", "a b"])
def test_bad_scope_names(scope: str) -> None:
    with pytest.raises(NameRuleError, match="scope-name"):
        check_scope_name(scope)


@pytest.mark.parametrize("account", ["ALICE", "", "a" * 26, "bob\n", "a/b"])
def test_bad_account_names(account: str) -> None:
    with pytest.raises(NameRuleError, match="account-name"):
        check_account_name(account)


def _second_experiment(name: str = "flash", scopes: tuple[str, ...] = ("flash-raw",), account: str = "bob",
                       role: str = "user") -> dict:
    data = load_profile("cygno-testbed").model_dump()
    data["experiment"]["name"] = name
    data["scopes"] = {"raw": list(scopes), "sim": [], "analysis": [], "user_prefix": "user."}
    data["naming"]["tags"] = ["GS"]
    data["accounts"] = [{"name": "root", "role": "root", "password": "x"}, {"name": account, "role": role}]
    data["processing"] = None  # no analysis scope, so no reconstruction outputs either
    data["tokens"] = None  # CYGNO's clients and group grants name CYGNO's accounts and scopes
    return data


def test_several_profiles_map_scopes_and_accounts() -> None:
    reg = registry_of([load_profile("cygno-testbed"), parse_profile(_second_experiment())])
    assert reg.experiment_of_scope("flash-raw").name == "flash"
    assert reg.experiment_of_scope("cygno-data").name == "cygno"
    assert reg.experiment_of_scope("user.bob").name == "flash"
    assert reg.experiment_of_scope("user.alice").name == "cygno"
    assert reg.experiment_of_scope("user.root") is None
    assert reg.experiment_of_account("root") is None and reg.role("root") == "root"
    check_did_name(reg, "flash-raw", "GS/run00001.mid.gz", "FILE")
    with pytest.raises(NameRuleError, match="raw-file-name"):
        check_did_name(reg, "flash-raw", "LNGS/run00001.mid.gz", "FILE")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"scopes": ("cygno-data",)}, "scope 'cygno-data' is claimed"),
    ({"account": "alice"}, "account 'alice' is claimed"),
    ({"name": "cygno"}, "experiment names must be unique"),
])
def test_conflicting_profiles_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        registry_of([load_profile("cygno-testbed"), parse_profile(_second_experiment(**kwargs))])




def test_profile_refs_split_on_pathsep() -> None:
    import os

    assert profile_refs(f"a{os.pathsep}b{os.pathsep}") == ["a", "b"]
    assert profile_refs("") == ["cygno-testbed"]
    assert registry().experiments[0].name == "cygno"


# --- Rucio's schema leaves DID names to the policy (its views answer schema refusals with a 500) -------------
NAME_CHARS = st.sampled_from(list("abcLNGSMAF019run./-_ \t\n\x00%*?#") + [".mid.gz", "run", "LNGS/", "/", ".."])
RAW_NAMES = st.builds(lambda tag, n, d: f"{tag}/run{n:0{d}d}.mid.gz", st.sampled_from(["LNGS", "LNF", "MAN", "XX"]),
                      st.integers(0, 10**9), st.integers(1, 8))
NAMES = st.one_of(RAW_NAMES, st.lists(NAME_CHARS, min_size=1, max_size=12).map("".join),
                  st.text(min_size=1, max_size=30), st.text(alphabet="ab/", min_size=240, max_size=250))
SCOPES = st.sampled_from(["cygno-data", "cygno-sim", "cygno-analysis", "user.alice", "other"])
TYPES = st.sampled_from([None, "FILE", "F", "DATASET", "CONTAINER"])


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(scope=SCOPES, name=NAMES, did_type=TYPES)
def test_rucio_schema_leaves_names_to_the_policy(scope: str, name: str, did_type: str | None) -> None:
    from rucio.common.schema import validate_schema

    did = {"scope": scope, "name": name, **({"type": did_type} if did_type else {})}
    validate_schema("did", did)  # never refuses a name: the permission policy does, with a 4xx
    validate_schema("dids", [did])


def test_rucio_schema_still_checks_scopes_and_lengths() -> None:
    from rucio.common.exception import InvalidObject
    from rucio.common.schema import validate_schema

    for bad in ({"scope": "Bad Scope", "name": "x"}, {"scope": "cygno-data", "name": ""},
                {"scope": "cygno-data", "name": "a" * 251}):
        with pytest.raises(InvalidObject):
            validate_schema("did", bad)
