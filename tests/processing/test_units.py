"""Processing without Rucio: the [processing] profile section, DID strings, distances, version names, CLI usage."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from cygno_dm.cli import main
from cygno_dm.processing.dids import looks_like_did, parse_did
from cygno_dm.processing.errors import ProcessingError
from cygno_dm.processing.register import config_hash, pedestal_name, reco_name, reco_version
from cygno_dm.processing.replicas import FAR, closest_first, distance
from cygno_dm.profile import PACKAGED, ProfileError, load_profile, parse_profile
from reco.config import RecoConfig

PROFILE = load_profile("cygno-testbed")


def _with(**processing) -> dict:
    data = tomllib.loads((PACKAGED / "cygno-testbed.toml").read_text())
    data["processing"].update(processing)
    return data


@pytest.mark.parametrize(("change", "message"), [
    ({"site_rse": "NOWHERE"}, "processing.site_rse: unknown RSE 'NOWHERE'"),
    ({"staging_rse": "T1_USERTAPE"}, "processing.staging_rse: T1_USERTAPE is tape; a disk RSE is needed"),
    ({"output_rse": "T1_USERTAPE"}, "processing.output_rse: T1_USERTAPE is tape"),
    ({"output_scope": "cygno-data"}, "processing.output_scope: 'cygno-data' is not an analysis scope"),
    ({"version": "{software}-{cfg}"}, "may use only the fields {software} and {config}"),
    ({"staging_lifetime_days": 0}, "processing.staging_lifetime_days: Input should be greater than or equal to 1"),
])
def test_bad_processing_sections_are_refused_naming_the_field(change: dict, message: str) -> None:
    with pytest.raises(ProfileError) as err:
        parse_profile(_with(**change), "p.toml")
    assert message in str(err.value) and str(err.value).startswith("p.toml: ")


def test_the_testbed_profile_declares_processing_and_provenance_keys() -> None:
    proc = PROFILE.processing
    assert proc is not None and proc.staging_rse in PROFILE.rses and PROFILE.rses[proc.staging_rse].kind != "tape"
    assert {"parent_did", "parent_adler32", "pedestal_did", "software_version", "config_hash", "reco_version",
            "reco_campaign"} <= set(PROFILE.metadata)
    assert PROFILE.replication["analysis"], "derived data need a replication rule"


@pytest.mark.parametrize(("text", "is_did"), [
    ("cygno-data:LNGS/run01001.mid.gz", True),
    ("cygno-data:LNGS/runs-010xx", True),
    ("data/run01001.mid.gz", False),
    ("./dir:with/colon.h5", False),
    ("run01001.mid.gz", False),
    ("cygno-data:", False),
])
def test_did_strings_are_told_from_local_paths(text: str, is_did: bool) -> None:
    assert looks_like_did(text) is is_did


@pytest.mark.parametrize(("text", "message"), [
    ("nocolon", "not a DID: expected SCOPE:NAME"),
    ("cygno-data:LNGS//run01001.mid.gz", "rule no-empty-component"),
    ("cygno-data:LNGS/../run01001.mid.gz", "rule no-dot-component"),
    ("cygno-data:LNGS/run1.mid.gz", "rule raw-name"),
    ("Cygno:LNGS/run01001.mid.gz", "rule scope-name"),
    ("other-exp:LNGS/run01001.mid.gz", "scope 'other-exp' is not one of cygno's scopes"),
])
def test_bad_did_strings_are_refused_naming_the_rule(text: str, message: str) -> None:
    with pytest.raises(ProcessingError) as err:
        parse_did(text, PROFILE)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_disk_replicas_are_read_closest_first_by_the_profile_distances() -> None:
    assert distance(PROFILE, "CNAF_USERDISK", "CNAF_USERDISK") == 0
    assert distance(PROFILE, "CNAF_USERDISK", "BACKBONE_USERDISK") == 2
    assert distance(PROFILE, "CNAF_USERDISK", "ELSEWHERE") == FAR
    disks = ["BACKBONE_USERDISK", "ELSEWHERE", "BARI_USERDISK", "CNAF_USERDISK"]
    assert closest_first(PROFILE, "CNAF_USERDISK", disks) == \
        ["CNAF_USERDISK", "BARI_USERDISK", "BACKBONE_USERDISK", "ELSEWHERE"]
    assert closest_first(PROFILE, "BACKBONE_USERDISK", disks)[:3] == \
        ["BACKBONE_USERDISK", "BARI_USERDISK", "CNAF_USERDISK"]  # ties by name


def test_version_names_follow_software_and_config() -> None:
    base = RecoConfig()
    other = base.replace(nsigma=base.nsigma + 0.5)
    assert config_hash(base) == config_hash(RecoConfig()) and len(config_hash(base)) == 8
    assert config_hash(other) != config_hash(base)
    assert reco_version(PROFILE, base, "1.2.3") == f"1.2.3-{config_hash(base)}"
    assert reco_version(PROFILE, other, "1.2.3") != reco_version(PROFILE, base, "1.2.3")
    assert reco_version(PROFILE, base, "0.0.0+unknown") == f"0.0.0_unknown-{config_hash(base)}"  # DID-safe
    assert reco_name("1.2.3-abcd0123", "LNGS", "01001") == "RECO/1.2.3-abcd0123/LNGS/run01001_reco.h5"
    assert pedestal_name("LNGS", "01000") == "PED/LNGS/pedestal_run01000.h5"


@pytest.mark.parametrize(("args", "message"), [
    (["reco", "run"], "give a RUNFILE, a DID (scope:name) or --filter"),
    (["reco", "run", "local.h5"], "Missing option '--pedestal'"),
    (["reco", "run", "local.h5", "--pedestal", "p.h5", "--register"], "--register: only for DIDs"),
    (["reco", "run", "cygno-data:LNGS/run01001.mid.gz", "--pedestal", "p.h5"], "the pedestal of a DID is found in"),
])
def test_cli_usage_errors(args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and message in res.output, res.output


def test_a_profile_without_processing_cannot_reconstruct_dids(tmp_path: Path) -> None:
    data = tomllib.loads((PACKAGED / "cygno-testbed.toml").read_text())
    del data["processing"]
    import tomli_w

    (tmp_path / "p.toml").write_bytes(tomli_w.dumps(data).encode())
    res = CliRunner().invoke(main, ["reco", "run", "cygno-data:LNGS/run01001.mid.gz", "--profile",
                                    str(tmp_path / "p.toml"), "--cache", str(tmp_path)])
    assert res.exit_code == 1 and "has no [processing] section" in res.output, res.output


def test_a_local_run_file_still_goes_to_the_reco_command(tmp_path: Path) -> None:
    cli = CliRunner()
    res = cli.invoke(main, ["reco", "simulate", str(tmp_path), "--frames", "2", "--pedestal-frames", "4",
                            "--shape", "128x128", "--run", "1001", "--no-progress"])
    assert res.exit_code == 0, res.output
    res = cli.invoke(main, ["reco", "pedestal", str(tmp_path / "run01000.h5"), "--no-progress"])
    assert res.exit_code == 0, res.output
    res = cli.invoke(main, ["reco", "run", str(tmp_path / "run01001.h5"), "--pedestal",
                            str(tmp_path / "pedestal_run01000.h5"), "--no-progress"])
    assert res.exit_code == 0 and "run 1001: 2 events" in res.output, res.output
    assert (tmp_path / "run01001_reco.h5").is_file()
