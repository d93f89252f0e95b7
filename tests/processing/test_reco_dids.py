"""`cygno-dm reco run SCOPE:NAME` on the real testbed (SQLite and PostgreSQL): runs uploaded by the DAQ uploader
are reconstructed by DID, outputs registered with provenance and downloaded by a user; bad input registers nothing.
Recalls from tape: test_reco_tape.py."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import tomli_w

import reco
from cygno_dm.ingest.checksums import adler32_of
from cygno_dm.processing.pipeline import Processor, Settings
from cygno_dm.processing.register import config_hash, reco_version
from reco.config import RecoConfig
from tests.processing.conftest import RAW, REGISTRAR, TAG, Runs, cygno_dm, wait_raw_copies
from tests.rucio_helpers import md5, rucio, s3_client, wait_rules

pytestmark = pytest.mark.rucio
ANALYSIS = "cygno-analysis"


def analysis_catalogue(runs: Runs) -> dict[str, tuple]:
    """Every DID of the analysis scope with its size, adler32 and rules: what a registration would change."""
    client = runs.tb.client("root")
    out = {}
    for did in client.list_dids(ANALYSIS, {"name": "*"}, did_type="all", long=True):
        info = client.get_did(ANALYSIS, did["name"])
        rules = sorted(r["id"] for r in client.list_did_rules(ANALYSIS, did["name"]))
        out[did["name"]] = (info["type"], info.get("bytes"), info.get("adler32"), tuple(rules))
    return out


def reco_run(runs: Runs, account: str, tmp: Path, *args: str, register: bool = False):
    """`cygno-dm reco run ARGS` as `account`, outputs under tmp/out, cache tmp/cache."""
    extra = ["--register"] if register else []
    return cygno_dm(runs.tb, account, "reco", "run", *args, "--output-dir", str(tmp / "out"), "--no-progress",
                    *extra, cache=tmp / "cache")


def errors(stderr: str) -> list[str]:
    """The `Error:` lines of a command's stderr."""
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def test_a_run_is_reconstructed_by_did_registered_with_provenance_and_downloaded(runs: Runs, tmp_path: Path) -> None:
    tb, client = runs.tb, runs.tb.client("root")
    version = reco_version(tb.profile, RecoConfig())
    out_name = f"RECO/{version}/{TAG}/run{runs.physics:05d}_reco.h5"
    ped_did = f"{ANALYSIS}:PED/{TAG}/pedestal_run{runs.pedestal:05d}.h5"
    before = analysis_catalogue(runs)

    def is_registered(cfg: RecoConfig | None = None) -> bool:  # what a lifecycle daemon asks before processing
        proc = Processor(tb.profile, tb.client("alice"), Settings(cache=tmp_path / "lib", cfg=cfg or RecoConfig()))
        return proc.is_registered(RAW, runs.name(runs.physics))

    assert not is_registered()

    # A physicist reconstructs by DID, without registering: nothing changes in the catalogue.
    res = reco_run(runs, "alice", tmp_path / "alice", runs.did(runs.physics))
    assert res.returncode == 0, res.stderr[-3000:]
    alice_out = tmp_path / "alice" / "out" / out_name
    assert f"{runs.did(runs.physics)}: 4 events" in res.stdout and alice_out.is_file()
    assert f"reading {runs.local[runs.physics].stat().st_size:,} bytes from CNAF_USERDISK" in res.stderr
    assert analysis_catalogue(runs) == before

    # Production registers: the pedestal map once, the output with its provenance, in the per-version dataset.
    res = reco_run(runs, REGISTRAR, tmp_path / "prod", runs.did(runs.physics), "--json", register=True)
    assert res.returncode == 0, res.stderr[-3000:]
    (line,) = res.stdout.splitlines()
    result = json.loads(line)
    assert result["registered"] is True and result["output_did"] == f"{ANALYSIS}:{out_name}"
    assert result["pedestal_did"] == ped_did  # the latest pedestal run with >= 100 events, not the later short one
    prod_out = Path(result["output"])
    assert md5(prod_out) == md5(alice_out), "same run, config and version: same bytes"
    raw = client.get_did(RAW, runs.name(runs.physics))
    did = client.get_did(ANALYSIS, out_name)
    assert (did["bytes"], did["adler32"]) == (prod_out.stat().st_size, adler32_of(prod_out))
    meta = client.get_metadata(ANALYSIS, out_name, plugin="ALL")
    assert {k: meta[k] for k in ("parent_did", "parent_adler32", "pedestal_did", "software_version", "config_hash",
                                 "reco_version", "reco_campaign", "run_number", "number_of_events")} == {
        "parent_did": runs.did(runs.physics), "parent_adler32": raw["adler32"], "pedestal_did": ped_did,
        "software_version": reco.__version__, "config_hash": config_hash(RecoConfig()), "reco_version": version,
        "reco_campaign": tb.profile.processing.campaign, "run_number": runs.physics, "number_of_events": 4}
    ped_meta = client.get_metadata(ANALYSIS, ped_did.split(":", 1)[1], plugin="ALL")
    assert ped_meta["parent_did"] == runs.did(runs.pedestal)
    assert ped_meta["parent_adler32"] == client.get_did(RAW, runs.name(runs.pedestal))["adler32"]
    assert is_registered() and not is_registered(RecoConfig(nsigma=1.5))
    assert [p["name"] for p in client.list_parent_dids(ANALYSIS, out_name)] == [f"RECO/{version}"]
    rules = {(r["rse_expression"], r["account"]) for r in client.list_did_rules(ANALYSIS, f"RECO/{version}")}
    wanted = {(tb.profile.processing.output_rse, REGISTRAR)}
    wanted |= {(r.rse_expression, REGISTRAR) for r in tb.profile.replication["analysis"]}
    assert rules == wanted

    # Found by its provenance with the plain CLI, and downloaded by a plain user.
    found = rucio(tb, "alice", "did", "list", f"{ANALYSIS}:*", "--short", "--filter",
                  f"parent_did={runs.did(runs.physics)}")
    assert found.stdout.split() == [f"{ANALYSIS}:{out_name}"], found.stderr[-2000:]
    found = rucio(tb, "alice", "did", "list", f"{ANALYSIS}:RECO/*", "--short", "--filter",
                  f"run_number={runs.physics},reco_version={version}")
    assert found.stdout.split() == [f"{ANALYSIS}:{out_name}"], found.stderr[-2000:]
    rucio(tb, "alice", "download", "--dir", str(tmp_path / "dl"), f"{ANALYSIS}:{out_name}")
    assert md5(tmp_path / "dl" / ANALYSIS / out_name) == md5(prod_out)

    # Re-running the same run (its dataset this time, narrowed by metadata) registers nothing new, without error.
    registered = analysis_catalogue(runs)
    res = reco_run(runs, REGISTRAR, tmp_path / "again", f"{RAW}:{runs.dataset(runs.physics)}", "--filter",
                   "run_type=physics", register=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "already registered, nothing new" in res.stdout
    assert "using the registered pedestal map" in res.stderr
    assert md5(tmp_path / "again" / "out" / out_name) == md5(prod_out)
    assert analysis_catalogue(runs) == registered

    # Another configuration is another version path.
    cfg = tmp_path / "reco.toml"
    cfg.write_text("[preprocessing]\nnsigma = 1.5\n")
    other = reco_version(tb.profile, RecoConfig(nsigma=1.5))
    assert other != version
    res = reco_run(runs, REGISTRAR, tmp_path / "other", "--scope", RAW, "--filter",
                   f"run_number={runs.physics},run_type=physics", "--config", str(cfg), register=True)
    assert res.returncode == 0, res.stderr[-3000:]
    other_name = f"RECO/{other}/{TAG}/run{runs.physics:05d}_reco.h5"
    new = set(analysis_catalogue(runs)) - set(registered)
    assert new == {other_name, f"RECO/{other}"}
    assert client.get_metadata(ANALYSIS, other_name, plugin="ALL")["config_hash"] == config_hash(RecoConfig(nsigma=1.5))
    assert is_registered(RecoConfig(nsigma=1.5))


def test_the_closest_disk_replica_is_read_over_webdav_too(runs: Runs, tmp_path: Path) -> None:
    tb, name = runs.tb, runs.name(runs.physics)
    webdav = next(n for n, rse in tb.profile.rses.items() if rse.kind == "webdav")
    rule = tb.client(REGISTRAR).add_replication_rule([{"scope": RAW, "name": name}], 1, webdav)[0]
    wait_rules(tb, [rule])
    # Processing that runs next to the WebDAV site reads from it (davs through Rucio's gfal protocol).
    profile = tomllib.loads(Path(tb.settings.profile).read_text())
    profile["processing"]["site_rse"] = webdav
    (tmp_path / "profile.toml").write_bytes(tomli_w.dumps(profile).encode())
    res = reco_run(runs, "alice", tmp_path, runs.did(runs.physics), "--profile", str(tmp_path / "profile.toml"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"reading {runs.local[runs.physics].stat().st_size:,} bytes from {webdav}" in res.stderr
    assert f"{runs.did(runs.physics)}: 4 events" in res.stdout


def corrupt_disk_replicas(runs: Runs, run: int) -> list[str]:
    """Flip one byte of every disk copy of a run, on the storage behind Rucio's back; return the RSEs."""
    tb, name = runs.tb, runs.name(run)
    states = wait_raw_copies(runs, run)
    disks = sorted(rse for rse in states if tb.profile.rses[rse].kind != "tape")
    for rse in disks:
        assert tb.profile.rses[rse].kind == "s3", rse
        s3 = s3_client(tb, rse)
        body = bytearray(s3.get_object(Bucket=RAW, Key=name)["Body"].read())
        body[len(body) // 2] ^= 0xFF
        s3.put_object(Bucket=RAW, Key=name, Body=bytes(body))
    return disks


def copying_replica(runs: Runs) -> str:
    """A run registered by root whose only replica never finished its upload (COPYING)."""
    name = runs.name(runs.base + 401)
    runs.tb.client("root").add_replicas("CNAF_USERDISK", [{"scope": RAW, "name": name, "bytes": 1000,
                                                          "adler32": "0badf00d", "state": "C"}])
    return f"{RAW}:{name}"


BAD = {  # case: (arguments, the start of the one error line, the text it must contain)
    "bad DID": (lambda r: [f"{RAW}:{TAG}//run1.mid.gz"], f"Error: {RAW}:{TAG}//run1.mid.gz: not a valid DID",
                "rule no-empty-component"),
    "unknown DID": (lambda r: [r.did(r.base + 999)], "Error: {did}: no such DID in Rucio", ""),
    "no readable replica": (lambda r: [copying_replica(r)], "Error: {did}: no AVAILABLE replica to read",
                            "(CNAF_USERDISK: COPYING)"),
    "no pedestal": (lambda r: [r.did(r.early)], "Error: {did}: no pedestal run before run",
                    "number_of_events >= 100"),
    "filter matches nothing": (lambda r: ["--scope", RAW, "--filter", f"run_type=calibration,run_number>={r.base}"],
                               "Error: --filter 'run_type=calibration", "matches"),
    "corrupt replica": (lambda r: [r.did(r.corrupt)], "Error: {did}: ", "is corrupt: read adler32"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gets_one_line_and_registers_nothing(runs: Runs, tmp_path: Path, case: str) -> None:
    make_args, start, detail = BAD[case]
    corrupted = corrupt_disk_replicas(runs, runs.corrupt) if case == "corrupt replica" else []
    args = make_args(runs)
    before = analysis_catalogue(runs)
    res = reco_run(runs, REGISTRAR, tmp_path, *args, register=True)
    assert res.returncode == 1, (res.stdout, res.stderr[-3000:])
    (line,) = errors(res.stderr)
    assert line.startswith(start.format(did=args[0])) and detail in line, line
    assert analysis_catalogue(runs) == before
    assert not list((tmp_path / "out").rglob("*.h5")), "no output"
    if corrupted:
        assert all(f"replica on {rse} is corrupt" in line for rse in corrupted), line
        assert not (tmp_path / "cache" / RAW / runs.name(runs.corrupt)).exists(), "no corrupt copy is kept"
