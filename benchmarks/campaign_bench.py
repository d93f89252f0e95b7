"""Campaign throughput of the lifecycle daemon on the testbed, per worker, against the reconstruction chain alone.

The DAQ uploads a pedestal run and `--runs` physics runs (`--frames` frames of `--size`² pixels, the lime
generator) with `cygno-dm ingest`; a campaign on them runs with one job at a time (`--max-in-flight 1`): each job
starts a process, reads its run from the testbed's storage through Rucio, reconstructs it and registers the output.
The baseline, measured in the same run on the same files, is the reco benchmark's measure: `reconstruct_run`
in-process on the local files with one worker, after a warm-up. Goal (issue 12): campaign frames/s per worker
>= 0.8x the baseline.

    nice -n 10 .venv/bin/python -m benchmarks.campaign_bench [--state .state/testbed] [--up [--profile P]]
        [--runs 4] [--frames 20] [--size 1152]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.lifecycle_bench import TAG, ingest  # noqa: E402
from lifecycle.store import DONE, Store, database_url  # noqa: E402
from reco.config import RecoConfig  # noqa: E402
from reco.pedestal import compute_pedestal, write_pedestal  # noqa: E402
from reco.runner import reconstruct_run  # noqa: E402
from reco.runsource import open_run  # noqa: E402
from testbed.stack import DEFAULT_STATE, Testbed  # noqa: E402

CYGNO_DM = str(Path(sys.executable).parent / "cygno-dm")
GOAL = 0.8


def baseline(work: Path, first: int, runs: int, frames: int) -> float:
    """Frames/s of `reconstruct_run` with one worker on the uploaded files (pedestal map made first, warm-up)."""
    daq = work / f"daq{first}" / TAG
    ped = work / "pedestal.h5"
    run = open_run(daq / f"run{first:06d}.mid.gz")
    try:
        write_pedestal(ped, compute_pedestal(run, 150), daq / f"run{first:06d}.mid.gz")
    finally:
        run.close()
    files = [daq.parent.parent / f"daq{first + i}" / TAG / f"run{first + i:06d}.mid.gz" for i in range(1, runs + 1)]
    reconstruct_run(files[0], ped, work / "warm.h5", RecoConfig(), max_frames=1)
    start = time.perf_counter()
    for i, path in enumerate(files):
        reconstruct_run(path, ped, work / f"base{i}.h5", RecoConfig(), workers=1)
    return runs * frames / (time.perf_counter() - start)


def campaign(tb: Testbed, work: Path, first: int, runs: int) -> tuple[float, float, int]:
    """Run a campaign on the uploaded runs with one job at a time; (busy seconds of the physics jobs, wall seconds
    from the first physics submission to the last output, physics runs done)."""
    prod = tb.profile.accounts_with("production")[0].name
    env = {**os.environ, **tb.env(prod)}
    state, name = work / "lifecycle", f"bench{first}"
    common = ["--state-dir", str(state)]
    subprocess.run([CYGNO_DM, "lifecycle", "campaign", "create", name, "--runs", f"{first}-{first + runs}", *common],
                   env=env, check=True, capture_output=True)
    with open(work / "daemon.log", "wb") as log:
        res = subprocess.run([CYGNO_DM, "-v", "lifecycle", "run", "--campaign", name, "--once", "--max-in-flight", "1",
                              "--job-rucio-config", str(tb.client_cfg(prod)), *common], env=env, stdout=log,
                             stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise SystemExit(f"the campaign failed (exit {res.returncode}); see {work / 'daemon.log'}")
    rows = [r for r in Store(database_url(None, state)).runs(name, (DONE,)) if not r.pedestal]
    busy = sum(r.finished_at - r.submitted_at for r in rows)
    wall = max(r.finished_at for r in rows) - min(r.submitted_at for r in rows)
    return busy, wall, len(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", type=Path, default=DEFAULT_STATE)
    ap.add_argument("--up", action="store_true", help="bring the testbed up first (idempotent)")
    ap.add_argument("--profile", default=None, help="profile of a testbed brought up by --up [its saved one]")
    ap.add_argument("--runs", type=int, default=4, help="physics runs in the campaign")
    ap.add_argument("--frames", type=int, default=20, help="frames per run")
    ap.add_argument("--size", type=int, default=1152, help="frame side in pixels")
    args = ap.parse_args()
    tb = Testbed(args.state, profile=args.profile)
    if args.up:
        tb.up()
    work = Path(tempfile.mkdtemp(prefix="campaign-bench-"))
    first = random.Random().randrange(100, 900) * 1000
    try:
        ingest(tb, work, [(first, "pedestal", 150)], 1, size=args.size)
        for run in range(first + 1, first + 1 + args.runs):
            ingest(tb, work, [(run, "physics", args.frames)], args.frames, size=args.size)
        base = baseline(work, first, args.runs, args.frames)
        busy, wall, done = campaign(tb, work, first, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if done != args.runs:
        raise SystemExit(f"only {done} of {args.runs} physics runs were reconstructed")
    frames = args.runs * args.frames
    per_worker, overall = frames / busy, frames / wall
    print(f"{args.runs} runs x {args.frames} frames of {args.size}x{args.size}, one job at a time:")
    print(f"  reco chain alone (1 worker, in-process, local files): {base:7.2f} frames/s")
    print(f"  campaign, per worker (job time: start, read through Rucio, reconstruct, register): {per_worker:7.2f} "
          f"frames/s = {per_worker / base:.2f}x (goal >= {GOAL}x)")
    print(f"  campaign, wall clock from the first submission to the last output: {overall:7.2f} frames/s = "
          f"{overall / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
