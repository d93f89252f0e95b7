"""A run only on tape, evicted from the tape endpoint's disk buffer, is recalled through a staging rule (the conveyor
and the transfer service bring it online) and then reconstructed by DID; asking again reuses the rule."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cygno_dm.processing.catalog import ProcessingCatalog
from cygno_dm.processing.stage import staging_rule
from testbed.stack import Testbed
from tests.conftest import running_testbed
from tests.processing.conftest import RAW, Runs, cygno_dm, ingest_runs, random_base, wait_raw_copies

pytestmark = pytest.mark.rucio
TAPE = "T1_USERTAPE"


@pytest.fixture(scope="module")
def tape_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """A testbed (SQLite) whose tape evicts its buffer after seconds, with a pedestal run and a physics run."""
    def edit(profile: dict) -> None:
        profile["testbed"]["tape"] = {"migrate_after": 0.5, "evict_after": 3.0, "stage_latency": 2.0}

    with running_testbed("sqlite", edit) as tb:
        base = random_base()
        yield ingest_runs(tb, tmp_path_factory.mktemp("daq"), base, [(base, "pedestal", 150),
                                                                      (base + 201, "physics", 4)])


def only_on_tape(runs: Runs, run: int) -> None:
    """As root: expire every rule keeping the run on disk; wait until only tape has it, outside the buffer."""
    tb: Testbed = runs.tb
    client, name = tb.client("root"), runs.name(run)
    wait_raw_copies(runs, run)  # archived on tape before the disk copies go
    for did in (name, runs.dataset(run)):
        for rule in client.list_did_rules(RAW, did):
            if tb.profile.rses[rule["rse_expression"]].kind != "tape":
                client.update_replication_rule(rule["id"], {"lifetime": 0})
    buffered = tb.state / "storage" / TAPE / "buffer" / tb.profile.rses[TAPE].prefix.strip("/") / RAW / name
    deadline = time.monotonic() + 300
    while True:
        states = next(iter(client.list_replicas([{"scope": RAW, "name": name}], all_states=True)))["states"]
        if set(states) == {TAPE} and not buffered.exists():
            return
        assert time.monotonic() < deadline, (states, buffered.exists())
        time.sleep(1)


def test_a_run_only_on_tape_is_recalled_once_then_reconstructed(tape_runs: Runs, tmp_path: Path) -> None:
    runs, tb = tape_runs, tape_runs.tb
    client, name, did = tb.client("root"), runs.name(runs.tape), runs.did(runs.tape)
    staging = tb.profile.processing.staging_rse
    only_on_tape(runs, runs.tape)

    def reco(*args: str):
        return cygno_dm(tb, "alice", "reco", "run", did, "--output-dir", str(tmp_path / "out"), "--no-progress",
                        *args, cache=tmp_path / "cache")

    # No time to wait: the recall is asked for, and the command says to come back later (one line, exit 1).
    res = reco("--stage-timeout", "0")
    assert res.returncode == 1
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("Error:")]
    assert line.startswith(f"Error: {did}: staging rule ") and "run again later" in line, line
    (rule,) = [r for r in client.list_did_rules(RAW, name) if r["rse_expression"] == staging]
    assert rule["account"] == "alice" and rule["expires_at"] is not None  # a recall, with a lifetime
    assert not list((tmp_path / "out").rglob("*.h5"))

    # Asking again gives the same rule, whatever state it has reached: recalls never pile up.
    alice = ProcessingCatalog(lambda: tb.client("alice"), "alice")
    assert staging_rule(alice, RAW, name, staging, 3600) == (rule["id"], False)

    # Run again: the recall completes and the run is read from the staging disk, verified, reconstructed.
    res = reco()
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"{did}: 4 events" in res.stdout
    assert f"reading {runs.local[runs.tape].stat().st_size:,} bytes from {staging}" in res.stderr
    assert [r["id"] for r in client.list_did_rules(RAW, name) if r["rse_expression"] == staging] == [rule["id"]]
    states = next(iter(client.list_replicas([{"scope": RAW, "name": name}], all_states=True)))["states"]
    assert states == {TAPE: "AVAILABLE", staging: "AVAILABLE"}
    assert client.get_replication_rule(rule["id"])["state"] == "OK"
