"""Deterministic output: same bytes for any worker count, after an interruption, after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reco.atomic import partial_path
from reco.config import RecoConfig
from reco.rawfile import write_raw_run
from reco.runner import reconstruct_run
from reco.simulate import SimOutput

REPO = Path(__file__).resolve().parents[2]


def test_workers_do_not_change_the_bytes(small_run: tuple[SimOutput, Path], tmp_path: Path) -> None:
    sim, ped = small_run
    cfg = RecoConfig(directional=True)
    a = reconstruct_run(sim.run, ped, tmp_path / "a.h5", cfg, workers=1).output
    b = reconstruct_run(sim.run, ped, tmp_path / "b.h5", cfg, workers=2).output
    assert a.read_bytes() == b.read_bytes()


def test_interrupted_then_rerun_is_identical(small_run: tuple[SimOutput, Path], tmp_path: Path) -> None:
    sim, ped = small_run
    ref = reconstruct_run(sim.run, ped, tmp_path / "ref.h5").output
    out = tmp_path / "out.h5"
    done = []

    def interrupt(k: int) -> None:
        done.append(k)
        if len(done) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reconstruct_run(sim.run, ped, out, workers=2, progress=interrupt)
    assert not out.exists() and not partial_path(out).exists()
    reconstruct_run(sim.run, ped, out, workers=2)
    assert out.read_bytes() == ref.read_bytes()


def test_killed_process_then_rerun_is_identical(small_run: tuple[SimOutput, Path], tmp_path: Path) -> None:
    sim, ped = small_run
    rng = np.random.default_rng(3)
    frames = (rng.normal(100, 2, (300, 256, 320))).astype(np.uint16)
    raw = write_raw_run(tmp_path / "run02001.h5", frames, run=2001, shape=(256, 320), camera="SIM-CAM")
    ref = reconstruct_run(raw, ped, tmp_path / "ref.h5").output
    out = tmp_path / "out.h5"
    code = "import sys; from reco.cli import reco; reco(sys.argv[1:], prog_name='reco', standalone_mode=True)"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "run",
            str(raw),
            "--pedestal",
            str(ped),
            "-o",
            str(out),
            "--no-progress",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        while not partial_path(out).exists() and proc.poll() is None:
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
    finally:
        rc = proc.wait()
    assert rc == -signal.SIGKILL
    assert not out.exists()  # a killed run leaves at most the hidden partial file
    reconstruct_run(raw, ped, out)
    assert out.read_bytes() == ref.read_bytes()
    assert not partial_path(out).exists()
