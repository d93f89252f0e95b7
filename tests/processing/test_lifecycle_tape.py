"""A lifecycle campaign over runs that are only on tape, on the real testbed: the daemon recalls them through a
sliding staging window of 2 runs (Rucio staging rules with a lifetime, fulfilled by the conveyor and the transfer
service's bring-online), reconstructs each exactly once into RECO/<campaign>/... in the campaign's dataset, and
releases each run's staging rule when it is done (not a rule another account made); the live staging rules and
window slots, sampled throughout, never exceed the window. The daemon is SIGKILLed mid-campaign: two daemons taking
over at once lose nothing and stage nothing twice."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import reco
from cygno_dm.processing.catalog import ProcessingCatalog
from cygno_dm.processing.stage import COMMENT, staging_rule
from lifecycle.store import Store
from testbed.stack import Testbed
from tests.conftest import free_port, scratch_postgres_database
from tests.processing.conftest import (
    CYGNO_DM,
    RAW,
    REGISTRAR,
    Runs,
    env_of,
    ingest_runs,
    random_base,
    wait_raw_copies,
)

pytestmark = pytest.mark.rucio
ANALYSIS = "cygno-analysis"
WINDOW = 2
N_TAPE = 6


@pytest.fixture(scope="module")
def tape_runs(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> tuple[Runs, list[int]]:
    """A pedestal run on disk and N_TAPE physics runs (their own dataset) whose disk copies are all removed."""
    base = random_base()
    tape = [base + 200 + i for i in range(N_TAPE)]
    runs = ingest_runs(testbed, tmp_path_factory.mktemp("daq"), base,
                       [(base, "pedestal", 150), *[(r, "physics", 4) for r in tape]])
    client = testbed.client("root")
    for run in tape:
        wait_raw_copies(runs, run)  # archived on tape before the disk copies go
    for did in [runs.dataset(tape[0]), *(runs.name(r) for r in tape)]:
        for rule in client.list_did_rules(RAW, did):
            if testbed.profile.rses[rule["rse_expression"]].kind != "tape":
                client.update_replication_rule(rule["id"], {"lifetime": 0})
    deadline = time.monotonic() + 300
    while (left := {r: s for r in tape if set(s := replica_states(runs, r)) != {tape_rse(testbed)}}):
        assert time.monotonic() < deadline, left
        time.sleep(1)
    return runs, tape


@pytest.fixture
def state_db(tmp_path: Path) -> Iterator[str]:
    with scratch_postgres_database("cygno_lifecycle", tmp_path) as url:
        yield url


def tape_rse(tb: Testbed) -> str:
    return next(name for name, rse in tb.profile.rses.items() if rse.kind == "tape")


def replica_states(runs: Runs, run: int) -> dict[str, str]:
    client = runs.tb.client("root")
    return next(iter(client.list_replicas([{"scope": RAW, "name": runs.name(run)}], all_states=True)))["states"]


def staging_rules(runs: Runs, tape: list[int]) -> list[dict]:
    """The campaign's recall rules: the production account's staging rules on these runs (live or expired, until
    the judge-cleaner removes them)."""
    client, rse = runs.tb.client("root"), runs.tb.profile.processing.staging_rse
    return [r for r in client.list_replication_rules({"account": REGISTRAR, "rse_expression": rse})
            if r["scope"] == RAW and r["name"] in {runs.name(t) for t in tape} and r["comments"] == COMMENT]


def live(rules: list[dict]) -> list[dict]:
    """The rules that have not expired: those keeping a run on the staging disk."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return [r for r in rules if r["expires_at"] is None or r["expires_at"] > now]


class Sampler(threading.Thread):
    """Samples, every half second, the staging rules in Rucio (live, and all), the runs with a replica on the
    staging disk, and the window's slots in the store."""

    def __init__(self, runs: Runs, tape: list[int], store: Store, campaign: str) -> None:
        super().__init__(daemon=True)
        self.runs, self.tape, self.store, self.campaign = runs, tape, store, campaign
        self.rules: list[int] = []
        self.listed: list[int] = []
        self.on_disk: list[int] = []
        self.slots: list[int] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.5):
            rules = staging_rules(self.runs, self.tape)
            self.rules.append(len(live(rules)))
            self.listed.append(len(rules))
            self.slots.append(len(self.store.slots(self.campaign)))
            rse = self.runs.tb.profile.processing.staging_rse
            rows = self.runs.tb.client("root").list_replicas([{"scope": RAW, "name": self.runs.name(r)}
                                                              for r in self.tape], all_states=True)
            self.on_disk.append(sum(row["states"].get(rse) == "AVAILABLE" for row in rows))


def daemon(runs: Runs, state: Path, db: str, campaign: str, *args: str) -> subprocess.Popen:
    """`cygno-dm lifecycle run --campaign` as the production account with a staging window of WINDOW runs."""
    tb = runs.tb
    log = open(state / f"daemon-{time.time():.6f}.log", "ab")
    return subprocess.Popen(
        [CYGNO_DM, "-v", "lifecycle", "run", "--campaign", campaign, "--state-dir", str(state), "--database", db,
         "--staging-window", str(WINDOW), "--max-in-flight", "2", "--interval", "5", "--lease", "3",
         "--job-rucio-config", str(tb.client_cfg(REGISTRAR)), *args],
        env=env_of(tb, REGISTRAR), stdout=log, stderr=subprocess.STDOUT)


def lifecycle_cli(runs: Runs, state: Path, db: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CYGNO_DM, "lifecycle", *args, "--state-dir", str(state), "--database", db],
                          capture_output=True, text=True, env=env_of(runs.tb, REGISTRAR), timeout=120)


def wait_for(what: str, cond, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_a_tape_campaign_stages_through_a_sliding_window_and_reconstructs_each_run_once(
        tape_runs: tuple[Runs, list[int]], state_db: str, tmp_path: Path) -> None:
    runs, tape = tape_runs
    client, campaign = runs.tb.client("root"), f"tape{runs.base}"
    res = lifecycle_cli(runs, tmp_path, state_db, "campaign", "create", campaign, "--runs", f"{runs.base}-{tape[-1]}")
    assert res.returncode == 0, res.stderr
    store = Store(state_db)
    sampler = Sampler(runs, tape, store, campaign)
    sampler.start()
    # Alice recalls the last run herself: the campaign uses her rule and leaves it to her.
    alice = ProcessingCatalog(lambda: runs.tb.client("alice"), "alice")
    alices, _ = staging_rule(alice, RAW, runs.name(tape[-1]), runs.tb.profile.processing.staging_rse, 3600)
    procs = [daemon(runs, tmp_path, state_db, campaign)]
    try:
        # Waiting for tape shows in the campaign's status, with the window's use.
        wait_for("a run waiting for tape", lambda: any((r.waiting_for or "").startswith("tape: ")
                                                       for r in store.runs(campaign)))
        # SIGKILL once the campaign is under way: some runs done, a recall in progress (a slot held by a run not
        # yet submitted, which the daemon cannot release before the signal lands).
        def under_way() -> bool:
            staging = {s.did for s in store.slots(campaign)}
            return store.counts(campaign)["done"] >= 3 and any(
                r.did in staging for r in store.runs(campaign, ("waiting",)))

        wait_for("2 runs done and a recall in progress", under_way)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        held = store.slots(campaign)
        assert 0 < len(held) <= WINDOW, held
        time.sleep(4)  # the dead daemon's lease (3 s) expires
        # Two daemons take over the campaign at once, sharing its store: one window, each run claimed once.
        port = free_port()
        procs = [daemon(runs, tmp_path, state_db, campaign, "--metrics-port", str(port)),
                 daemon(runs, tmp_path, state_db, campaign)]
        status = json.loads(lifecycle_cli(runs, tmp_path, state_db, "campaign", "status", campaign, "--json").stdout)
        assert status["staging"]["runs"] == WINDOW and status["staging"]["used_runs"] <= WINDOW, status
        wait_for("the campaign done", lambda: store.counts(campaign)["done"] == N_TAPE + 1)
        wait_for("every slot released", lambda: not store.slots(campaign), timeout=60)
        metrics = {(s.name, s.labels.get("campaign")): s.value for f in text_string_to_metric_families(
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text) for s in f.samples}
        assert metrics[("cygno_lifecycle_staging_window_runs", campaign)] == WINDOW
        assert metrics[("cygno_lifecycle_staging_runs", campaign)] <= WINDOW
    finally:
        sampler.halt.set()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=120)
    sampler.join()

    # The window held throughout: never more live recall rules or slots than WINDOW, and it was used up.
    print(f"staging window {WINDOW}: at most {max(sampler.rules)} live staging rules ({max(sampler.listed)} with "
          f"those expired and not yet cleaned), {max(sampler.slots)} slots, {max(sampler.on_disk)} runs with a "
          f"replica on the staging disk (the reaper deletes released ones later); {len(sampler.rules)} samples")
    assert max(sampler.rules) <= WINDOW and max(sampler.slots) <= WINDOW
    assert max(sampler.slots) == WINDOW, sampler.slots
    assert live(staging_rules(runs, tape)) == [], "every recall rule released at the end"
    # Each run recalled by exactly one rule across the SIGKILL: the restart found the dead daemon's rules (made,
    # or being made when the signal landed) through the slots and reused them.
    logs = "".join(f.read_text() for f in tmp_path.glob("daemon-*.log"))
    for run in tape[:-1]:
        ids = set(re.findall(rf"{re.escape(runs.name(run))}: .*rule ([0-9a-f]{{32}})", logs))
        assert len(ids) == 1, (run, ids)
    assert set(re.findall(rf"{re.escape(runs.name(tape[-1]))}: .*rule ([0-9a-f]{{32}})", logs)) <= {alices}
    rule = client.get_replication_rule(alices)
    assert rule["account"] == "alice" and rule["expires_at"] > datetime.now(UTC).replace(tzinfo=None), rule
    assert len(re.findall(r": staging rule \S+ to \S+ \(lifetime", logs)) <= N_TAPE

    # Every run reconstructed exactly once, into RECO/<campaign>/..., attached to the campaign's dataset.
    dataset = f"RECO/{campaign}"
    content = {d["name"] for d in client.list_content(ANALYSIS, dataset)}
    for run in tape:
        row = store.get(runs.did(run), campaign)
        name = f"RECO/{campaign}/LNF/run{run:05d}_reco.h5"
        assert (row.state, row.output_did) == ("done", f"{ANALYSIS}:{name}"), row
        assert list(client.list_dids(ANALYSIS, {"parent_did": runs.did(run)}, did_type="file")) == [name]
        assert name in content
        meta = client.get_metadata(ANALYSIS, name, plugin="ALL")
        assert (meta["reco_campaign"], meta["software_version"]) == (campaign, reco.__version__)
        assert meta["config_hash"] and meta["pedestal_did"].endswith(f"pedestal_run{runs.base:05d}.h5")
        ok = [json.loads(f.read_text()) for f in (tmp_path / "jobs").glob("*.result.json")]
        assert sum(1 for o in ok if o.get("ok") and o.get("did") == runs.did(run)) == 1, f"run {run} once"
    res = lifecycle_cli(runs, tmp_path, state_db, "campaign", "status", campaign)
    assert f"{N_TAPE + 1} done, 0 running, 0 waiting for tape, 0 waiting, 0 failed" in res.stdout, res.stdout
    assert f"staging window 0/{WINDOW} runs" in res.stdout
