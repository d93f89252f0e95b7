"""`cygno-dm lifecycle run` on the real testbed (SQLite Rucio, its state in PostgreSQL): runs uploaded by the DAQ
uploader are reconstructed unasked, pedestal runs first; a run uploaded while it runs is reconstructed on a Hermes
hint (the full reconciliation interval is 10 minutes); a run without pedestal waits for it; a corrupt run fails
with its reason after 2 attempts; a SIGKILL of the daemon mid-job loses nothing and reconstructs nothing twice; with its broker down the periodic
reconciliation still finds a new run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import tomli_w
from prometheus_client.parser import text_string_to_metric_families

from lifecycle.store import Store
from testbed.stack import Testbed
from tests.conftest import free_port, scratch_postgres_database
from tests.processing.conftest import CYGNO_DM, REGISTRAR, Runs, env_of, ingest_runs, random_base
from tests.processing.test_reco_dids import corrupt_disk_replicas

pytestmark = pytest.mark.rucio
ANALYSIS = "cygno-analysis"
CAMPAIGN = "testbed"


@pytest.fixture(scope="module")
def sqlite_runs(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The processing tests' runs, on the SQLite testbed only (the daemon's own database is PostgreSQL)."""
    if testbed.settings.database.startswith("postgresql"):
        pytest.skip("the lifecycle daemon runs against the SQLite testbed; its state database is PostgreSQL")
    base = random_base()
    plan = [(base, "pedestal", 150), (base + 101, "physics", 4), (base + 301, "physics", 4),
            (base // 1000, "physics", 4)]
    return ingest_runs(testbed, tmp_path_factory.mktemp("daq"), base, plan)


@pytest.fixture
def state_db(tmp_path: Path) -> Iterator[str]:
    with scratch_postgres_database("cygno_lifecycle", tmp_path) as url:
        yield url


def daemon(runs: Runs, state: Path, db: str, *args: str) -> subprocess.Popen:
    """`cygno-dm lifecycle run` as the production account, confined to this module's runs."""
    tb = runs.tb
    log = open(state / f"daemon-{time.time():.0f}.log", "ab")
    return subprocess.Popen(
        [CYGNO_DM, "-v", "lifecycle", "run", "--state-dir", str(state), "--database", db, "--max-attempts", "2",
         "--lease", "3", "--filter",
         f"run_number>={runs.base},run_number<{runs.base + 1000};run_number={runs.early}",
         "--job-rucio-config", str(tb.client_cfg(REGISTRAR)), *args],
        env=env_of(tb, REGISTRAR), stdout=log, stderr=subprocess.STDOUT)


def wait_state(store: Store, did: str, states: tuple[str, ...], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while (run := store.get(did, CAMPAIGN)) is None or run.state not in states:
        assert time.monotonic() < deadline, (did, run)
        time.sleep(0.2)


def outputs(runs: Runs, run: int) -> list[str]:
    """The output DIDs registered for a run (by provenance)."""
    client = runs.tb.client("root")
    return [d for d in client.list_dids(ANALYSIS, {"parent_did": runs.did(run)}, did_type="file")]


def scrape(port: int) -> dict[tuple[str, str | None], float]:
    """The daemon's Prometheus samples by (name, state label)."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    return {(s.name, s.labels.get("state")): s.value for fam in text_string_to_metric_families(text)
            for s in fam.samples}


def successful_jobs(state: Path, did: str) -> int:
    n = 0
    for f in (state / "jobs").glob("*.result.json"):
        out = json.loads(f.read_text())
        n += bool(out.get("ok") and out.get("did") == did)
    return n


def test_the_daemon_reconstructs_new_runs_unasked_and_exactly_once(sqlite_runs: Runs, state_db: str,
                                                                    tmp_path: Path) -> None:
    runs, tb = sqlite_runs, sqlite_runs.tb
    corrupt_disk_replicas(runs, runs.corrupt)
    store = Store(state_db)
    proc = daemon(runs, tmp_path, state_db, "--interval", "600")
    try:
        # At start: the reconciliation finds the runs; the pedestal map first, then the physics run.
        wait_state(store, runs.did(runs.physics), ("done",))
        ped, phys = store.get(runs.did(runs.pedestal), CAMPAIGN), store.get(runs.did(runs.physics), CAMPAIGN)
        assert ped.state == "done" and ped.output_did == f"{ANALYSIS}:PED/LNF/pedestal_run{runs.pedestal:05d}.h5"
        assert ped.finished_at <= phys.submitted_at, "the pedestal run went first"
        assert outputs(runs, runs.physics) == [phys.output_did.split(":", 1)[1]]
        # A run without a pedestal before it waits, saying for what.
        wait_state(store, runs.did(runs.early), ("waiting",))
        assert store.get(runs.did(runs.early), CAMPAIGN).waiting_for.startswith("pedestal: ")
        # A corrupt run fails after 2 attempts, with the reason.
        wait_state(store, runs.did(runs.corrupt), ("failed",))
        bad = store.get(runs.did(runs.corrupt), CAMPAIGN)
        assert bad.attempts == 2 and "corrupt" in bad.reason, bad

        # A run uploaded now is reconstructed on Hermes' hint, well before the next reconciliation.
        new = runs.base + 102
        ingest_runs(tb, tmp_path / "daq2", runs.base, [(new, "physics", 4)])
        uploaded = time.monotonic()
        wait_state(store, runs.did(new), ("done",), timeout=180)
        latency = time.monotonic() - uploaded
        print(f"upload-to-output latency with hints: {latency:.1f} s")

        # SIGKILL while a job runs: the job dies with it; a restart (after the lease) completes it once.
        killed = runs.base + 103
        ingest_runs(tb, tmp_path / "daq3", runs.base, [(killed, "physics", 4)])
        wait_state(store, runs.did(killed), ("running",), timeout=180)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
    assert store.get(runs.did(killed), CAMPAIGN).state == "running"
    time.sleep(4)  # the dead daemon's lease (3 s) expires

    # Restarted with its broker down: the start takes the killed run back (its job died with the daemon, nothing
    # was registered), and a run uploaded afterwards is found by the periodic reconciliation alone.
    profile = tomllib.loads(Path(tb.settings.profile).read_text())
    profile["messaging"]["port"] = free_port()
    (tmp_path / "profile.toml").write_bytes(tomli_w.dumps(profile).encode())
    port = free_port()
    again = daemon(runs, tmp_path, state_db, "--interval", "5", "--profile", str(tmp_path / "profile.toml"),
                   "--metrics-port", str(port))
    try:
        wait_state(store, runs.did(killed), ("done",))
        late = runs.base + 104
        ingest_runs(tb, tmp_path / "daq4", runs.base, [(late, "physics", 4)])
        wait_state(store, runs.did(late), ("done",), timeout=180)
        deadline = time.monotonic() + 60  # the metrics are updated between the daemon's rounds
        while (metrics := scrape(port)).get(("cygno_lifecycle_runs", "done")) != 5:
            assert time.monotonic() < deadline, metrics
            time.sleep(0.5)
        assert metrics[("cygno_lifecycle_runs", "done")] == 5 and metrics[("cygno_lifecycle_runs", "failed")] == 1
        pending = [(r.did, r.state, r.waiting_for) for r in store.runs(CAMPAIGN, ("seen", "waiting"))]
        assert metrics[("cygno_lifecycle_queue_depth", None)] == 1, pending  # the run without pedestal
        assert metrics[("cygno_lifecycle_seen_to_done_seconds_count", None)] == 2  # this daemon's jobs
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=120) == 0
    logs = "".join(f.read_text() for f in tmp_path.glob("daemon-*.log"))
    assert "unreachable (ConnectFailedException); relying on periodic reconciliation" in logs
    run = store.get(runs.did(killed), CAMPAIGN)
    assert run.state == "done" and run.attempts == 2
    assert len(outputs(runs, killed)) == 1 and successful_jobs(tmp_path, runs.did(killed)) == 1
    for r in (runs.pedestal, runs.physics, runs.base + 102, late):
        assert successful_jobs(tmp_path, runs.did(r)) == 1, f"run {r} reconstructed once"
        assert len(outputs(runs, r)) == 1
    # One more pass finds nothing new to do.
    once = daemon(runs, tmp_path, state_db, "--once")
    assert once.wait(timeout=300) == 0
    assert store.counts(CAMPAIGN) == {"seen": 0, "waiting": 1, "submitted": 0, "running": 0, "done": 5, "failed": 1,
                                      "cancelled": 0}
    status = subprocess.run([CYGNO_DM, "lifecycle", "status", "--database", state_db, "--json"],
                            capture_output=True, text=True, env=env_of(tb, REGISTRAR), timeout=120)
    assert json.loads(status.stdout)["campaigns"][CAMPAIGN]["failed"] == 1


@pytest.mark.skipif(not os.environ.get("CYGNO_DM_TEST_DEMO"), reason="opt-in (CYGNO_DM_TEST_DEMO=1): make demo's "
                                                                     "reconstruction and lifecycle steps")
def test_the_demo_steps_on_the_testbed(testbed: Testbed, tmp_path: Path) -> None:
    from cygno_dm.demo import lifecycle_step, physicist_step, reconstruct

    if testbed.settings.database.startswith("postgresql"):
        pytest.skip("once is enough")
    assert reconstruct(testbed, tmp_path)
    assert lifecycle_step(testbed, tmp_path)
    assert physicist_step(testbed, tmp_path)
