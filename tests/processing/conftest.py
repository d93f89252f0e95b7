"""Synthetic MIDAS runs uploaded by `cygno-dm ingest` to the shared testbed, and helpers to reconstruct them by DID."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reco.simulate import SimConfig, simulate
from testbed.stack import Testbed

CYGNO_DM = str(Path(sys.executable).parent / "cygno-dm")
RAW = "cygno-data"
TAG = "LNF"
REGISTRAR = "cygno-prod"  # the profile's production account registers outputs


@dataclass
class Runs:
    """The runs of one testbed: a pedestal run, a later one with too few events, and physics runs."""

    tb: Testbed
    base: int
    local: dict[int, Path] = field(default_factory=dict)

    @property
    def pedestal(self) -> int:
        return self.base

    @property
    def short_pedestal(self) -> int:  # later than `pedestal` but with number_of_events < 100: never chosen
        return self.base + 50

    @property
    def physics(self) -> int:
        return self.base + 101

    @property
    def tape(self) -> int:  # its own dataset: its disk copies are removed
        return self.base + 201

    @property
    def corrupt(self) -> int:  # its own dataset: its disk copies are corrupted
        return self.base + 301

    @property
    def early(self) -> int:  # before every module's pedestal runs (bases are >= 110000 and distinct): none precedes it
        return self.base // 1000

    @staticmethod
    def name(run: int) -> str:
        return f"{TAG}/run{run:05d}.mid.gz"

    def did(self, run: int) -> str:
        return f"{RAW}:{self.name(run)}"

    @staticmethod
    def dataset(run: int) -> str:
        return f"{TAG}/runs-{str(run)[:4]}xx"


def write_runs(directory: Path, plan: list[tuple[int, str, int]]) -> dict[int, tuple[Path, dict]]:
    """Synthetic 256x256 MIDAS runs (run, run_type, number_of_events the run log claims) with their run-log
    sidecars: {run: (file, metadata)}."""
    out: dict[int, tuple[Path, dict]] = {}
    work = directory.parent / "sim"
    for run, kind, events in plan:
        sim_run = run + 1 if kind == "pedestal" else run  # simulate writes the pedestal run as run - 1
        made = simulate(work / str(run), SimConfig(height=256, width=256, n_frames=4, pedestal_frames=8, seed=7,
                                                     run=sim_run), fmt="midas")
        src = made.pedestal_run if kind == "pedestal" else made.run
        dest = directory / f"run{run:05d}.mid.gz"
        shutil.copyfile(src, dest)
        meta = {"run_number": run, "number_of_events": events, "run_type": kind,
                "start_time": "2026-11-20T10:00:00", "stop_time": "2026-11-20T10:30:00"}
        dest.with_name(dest.name + ".json").write_text(json.dumps(meta))
        out[run] = (dest, meta)
    shutil.rmtree(work)
    return out


def ingest_runs(tb: Testbed, where: Path, base: int, plan: list[tuple[int, str, int]]) -> Runs:
    """Write the planned runs under `where` and upload them with `cygno-dm ingest` as the DAQ account."""
    daq = where / TAG
    daq.mkdir(parents=True)
    files = write_runs(daq, plan)
    res = subprocess.run([CYGNO_DM, "ingest", "run", "--watch", f"{TAG}={daq}", "--once", "--settle", "0",
                          "--keep-local", "--journal", str(where / "journal.sqlite")],
                         env=env_of(tb, "rucio-daq"), capture_output=True, text=True, timeout=600)
    assert res.returncode in (0, 3), res.stderr[-3000:]  # 3: registered, the tape archive still pending
    client = tb.client("root")
    for run, (path, meta) in files.items():
        name = Runs.name(run)
        assert client.get_did(RAW, name)["bytes"] == path.stat().st_size
        got = client.get_metadata(RAW, name, plugin="ALL")
        assert (got["run_type"], got["number_of_events"]) == (meta["run_type"], meta["number_of_events"])
    return Runs(tb, base, {run: path for run, (path, _) in files.items()})


#: thousands that other modules' tests use with fixed run numbers on the same testbed (tests/ingest: 700000-706999,
#: elsewhere 110000, 114497-114499, 678901): a daemon filtering on a base there would see their runs
_TAKEN = {110, 114, 678, *range(700, 720)}
_BASES = random.Random().sample([b for b in range(110, 890) if b not in _TAKEN], 780 - len(_TAKEN))


def random_base() -> int:
    """A run-number base no other module of this test session uses: a multiple of 1000 with six digits."""
    return _BASES.pop() * 1000


def env_of(tb: Testbed, account: str, **extra: str) -> dict[str, str]:
    """This process's environment with the testbed's Rucio settings for `account`."""
    return {**os.environ, **tb.env(account), **extra}


def cygno_dm(tb: Testbed, account: str, *args: str, cache: Path | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `cygno-dm ARGS` as `account` (the way `eval $(cygno-dm testbed env ACCOUNT)` sets it up)."""
    extra = {"CYGNO_DM_CACHE": str(cache)} if cache else {}
    return subprocess.run([CYGNO_DM, *args], env=env_of(tb, account, **extra), capture_output=True, text=True,
                          timeout=timeout)


def wait_raw_copies(runs: Runs, run: int, timeout: float = 300) -> dict[str, str]:
    """Wait until the run has an AVAILABLE replica on every RSE the profile's raw rules name; return the states.

    (A dataset rule is OK before the judge has seen the files attached to it: its state alone proves nothing.)
    """
    client = runs.tb.client("root")
    wanted = {rule.rse_expression for rule in runs.tb.profile.replication["raw"]}
    deadline = time.monotonic() + timeout
    while True:
        states = next(iter(client.list_replicas([{"scope": RAW, "name": runs.name(run)}], all_states=True)))["states"]
        if all(states.get(rse) == "AVAILABLE" for rse in wanted):
            return states
        assert time.monotonic() < deadline, states
        time.sleep(1)


@pytest.fixture(scope="module")
def runs(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """LNF pedestal and physics runs ingested by the DAQ uploader, with their run metadata."""
    base = random_base()
    plan = [(base, "pedestal", 150), (base + 50, "pedestal", 50), (base + 101, "physics", 4),
            (base + 301, "physics", 4), (base // 1000, "physics", 4)]
    return ingest_runs(testbed, tmp_path_factory.mktemp("daq"), base, plan)
