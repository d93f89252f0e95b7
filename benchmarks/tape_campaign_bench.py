"""A lifecycle campaign over runs only on tape, on the testbed: N runs (50) recalled through a staging window of W
runs (5). Samples, every second, the window's slots in the store, the live staging rules in Rucio and the runs with a
replica on the staging disk, and prints their maxima against the window (the baseline: the buffer use must never
exceed it), the campaign's wall time and its throughput.

    nice -n 10 .venv/bin/python -m benchmarks.tape_campaign_bench [--fresh | --state .state/testbed [--up]]
        [--runs 50] [--window 5] [--frames 4] [--max-in-flight 2]

--fresh brings up a private SQLite testbed on free ports (its tape evicts its buffer after 3 s, so recalls are real
bring-onlines) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.lifecycle_bench import CYGNO_DM, TAG, ingest  # noqa: E402
from cygno_dm.processing.stage import COMMENT  # noqa: E402
from lifecycle.store import Store, database_url  # noqa: E402
from testbed.stack import DEFAULT_STATE, Testbed  # noqa: E402


def tape_only(tb: Testbed, scope: str, names: list[str], timeout: float = 900) -> None:
    """Expire every non-tape rule on the files and their datasets; wait until only tape holds them."""
    client = tb.client("root")
    tape = {n for n, rse in tb.profile.rses.items() if rse.kind == "tape"}
    wanted = {r.rse_expression for r in tb.profile.replication["raw"]}
    deadline = time.monotonic() + timeout
    while any(set(wanted) - {rse for rse, s in row["states"].items() if s == "AVAILABLE"}
              for row in client.list_replicas([{"scope": scope, "name": n} for n in names], all_states=True)):
        if time.monotonic() > deadline:
            raise SystemExit("the runs did not reach every RSE of the raw rules")
        time.sleep(2)  # archived on tape before the disk copies go
    dids = set(names) | {p["name"] for n in names for p in client.list_parent_dids(scope, n)}
    for did in dids:
        for rule in client.list_did_rules(scope, did):
            if rule["rse_expression"] not in tape:
                client.update_replication_rule(rule["id"], {"lifetime": 0})
    while any(set(row["states"]) - tape for row in client.list_replicas([{"scope": scope, "name": n} for n in names],
                                                                           all_states=True)):
        if time.monotonic() > deadline:
            raise SystemExit("the disk copies were not removed")
        time.sleep(2)


def run(tb: Testbed, work: Path, n_runs: int, window: int, frames: int, max_in_flight: int) -> int:
    scope, staging = tb.profile.scopes.raw[0], tb.profile.processing.staging_rse
    prod = tb.profile.accounts_with("production")[0].name
    base = random.Random().randrange(100, 900) * 1000
    runs = list(range(base + 100, base + 100 + n_runs))  # their own datasets: the pedestal run stays on disk
    names = [f"{TAG}/run{r:06d}.mid.gz" for r in runs]
    print(f"ingesting a pedestal run and {n_runs} runs of {frames} frames ({TAG}, from {base})", flush=True)
    ingest(tb, work, [(base, "pedestal", 150)], 10)
    ingest(tb, work, [(r, "physics", frames) for r in runs], frames)
    tape_only(tb, scope, names)
    print(f"{n_runs} runs only on tape; campaign with a staging window of {window} runs", flush=True)
    env, state = {**os.environ, **tb.env(prod)}, work / "state"
    campaign = f"bench{base}"
    subprocess.run([CYGNO_DM, "lifecycle", "campaign", "create", campaign, "--runs", f"{base}-{runs[-1]}",
                    "--state-dir", str(state)], env=env, check=True, capture_output=True)
    store, client = Store(database_url(None, state)), tb.client("root")
    log = open(work / "daemon.log", "wb")
    started = time.monotonic()
    daemon = subprocess.Popen([CYGNO_DM, "-v", "lifecycle", "run", "--campaign", campaign, "--state-dir", str(state),
                               "--staging-window", str(window), "--max-in-flight", str(max_in_flight),
                               "--interval", "10", "--job-rucio-config", str(tb.client_cfg(prod))],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    slots = rules = on_disk = 0
    try:
        while True:
            counts = store.counts(campaign)
            if counts["done"] + counts["failed"] == n_runs + 1:
                break
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited ({daemon.returncode}); see {work / 'daemon.log'}")
            now = datetime.now(UTC).replace(tzinfo=None)
            live = [r for r in client.list_replication_rules({"account": prod, "rse_expression": staging})
                    if r["scope"] == scope and r["name"] in names and r["comments"] == COMMENT
                    and (r["expires_at"] is None or r["expires_at"] > now)]
            disk = sum(row["states"].get(staging) == "AVAILABLE" for row in client.list_replicas(
                [{"scope": scope, "name": n} for n in names], all_states=True))
            slots, rules, on_disk = max(slots, len(store.slots(campaign))), max(rules, len(live)), max(on_disk, disk)
            print(f"  {time.monotonic() - started:6.0f} s: {counts['done']} done, {counts['failed']} failed, "
                  f"{len(store.slots(campaign))} staging slots, {len(live)} live staging rules, {disk} on disk",
                  flush=True)
            time.sleep(1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
    wall = time.monotonic() - started
    status = subprocess.run([CYGNO_DM, "lifecycle", "campaign", "status", campaign, "--json", "--state-dir",
                             str(state)], env=env, capture_output=True, text=True)
    summary = json.loads(status.stdout)["summary"]
    print(f"campaign of {n_runs} tape-only runs + its pedestal run: {summary} in {wall:.0f} s "
          f"({n_runs / wall * 60:.1f} runs/min, {max_in_flight} jobs at once)")
    print(f"staging window {window} runs: max slots held {slots} ({slots / window:.2f}x the window), max live "
          f"staging rules {rules} ({rules / window:.2f}x), max runs with a replica on {staging} {on_disk} "
          f"(released replicas wait for the reaper)")
    return 0 if slots <= window and rules <= window and summary["failed"] == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fresh", action="store_true", help="a private testbed on free ports, removed afterwards")
    ap.add_argument("--state", type=Path, default=DEFAULT_STATE)
    ap.add_argument("--up", action="store_true", help="bring the testbed at --state up first (idempotent)")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--max-in-flight", type=int, default=2)
    args = ap.parse_args()
    if args.fresh:
        from tests.conftest import running_testbed

        def edit(profile: dict) -> None:
            profile["testbed"]["tape"] = {"migrate_after": 0.5, "evict_after": 3.0, "stage_latency": 2.0}

        context: AbstractContextManager[Testbed] = running_testbed("sqlite", edit)
    else:
        tb = Testbed(args.state)
        if args.up:
            tb.up()
        context = nullcontext(tb)
    work = Path(tempfile.mkdtemp(prefix="tape-campaign-bench-"))
    try:
        with context as tb:
            return run(tb, work, args.runs, args.window, args.frames, args.max_in_flight)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
