"""Shared fixtures for the reconstruction tests: small synthetic runs on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reco.pedestal import Pedestal, compute_pedestal, write_pedestal
from reco.rawfile import RawRun
from reco.simulate import SimConfig, SimOutput, simulate

SMALL = SimConfig(height=256, width=320, n_frames=8, pedestal_frames=12, seed=7, run=2001)


def make_pedestal(sim: SimOutput, path: Path) -> Path:
    """Pedestal file computed from the simulated pedestal run."""
    with RawRun(sim.pedestal_run) as raw:
        ped: Pedestal = compute_pedestal(raw)
    return write_pedestal(path, ped, sim.pedestal_run)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimOutput, Path]:
    """A simulated 256x320 run (8 frames) with its pedestal file."""
    d = tmp_path_factory.mktemp("small")
    sim = simulate(d, SMALL)
    return sim, make_pedestal(sim, d / "pedestal.h5")


@pytest.fixture()
def rng() -> np.random.Generator:
    """Seeded random generator."""
    return np.random.default_rng(2024)
