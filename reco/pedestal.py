"""Pedestal maps: per-pixel mean and sigma of a pedestal run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from reco.atomic import atomic_output
from reco.errors import RecoInputError
from reco.identity import file_identity
from reco.rawfile import open_h5
from reco.runsource import FrameSource, prefetch

log = logging.getLogger(__name__)

FORMAT = "cygno-pedestal"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Pedestal:
    """Per-pixel pedestal mean and sigma (float32) with their provenance."""

    mean: np.ndarray
    sigma: np.ndarray
    run: int
    camera: str
    n_frames: int
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """Frame shape (rows, columns)."""
        return (int(self.mean.shape[0]), int(self.mean.shape[1]))

    def check_compatible(self, raw: FrameSource) -> None:
        """Raise if this pedestal was not taken with the camera and frame shape of `raw`."""
        where = f"{raw.path}: pedestal {self.path or self.run}"
        if self.camera != raw.camera:
            raise RecoInputError(f"{where} is from camera {self.camera!r}, the run is from {raw.camera!r}")
        if self.shape != raw.shape:
            raise RecoInputError(f"{where} has shape {self.shape}, frames have shape {raw.shape}")


def compute_pedestal(
    raw: FrameSource, max_frames: int = 200, progress: Callable[[int], None] | None = None
) -> Pedestal:
    """Mean and sample sigma per pixel over the first `max_frames` frames of a run (HDF5 raw or MIDAS)."""
    n = 0
    shift = s1 = s2 = np.zeros(0)
    with prefetch(raw.frames(max_frames), depth=2) as frames:
        for frame in frames:
            if n == 0:
                shift = frame.astype(np.float64)
                s1 = np.zeros(raw.shape, np.float64)
                s2 = np.zeros(raw.shape, np.float64)
            d = frame - shift
            s1 += d
            s2 += d * d
            n += 1
            if progress:
                progress(1)
    if n < 2:
        raise RecoInputError(f"{raw.path}: a pedestal needs at least 2 frames, the run has {n}")
    mean = shift + s1 / n
    var = np.maximum((s2 - s1 * s1 / n) / (n - 1), 0.0)
    log.info(
        "pedestal of run %d from %d frames: median mean %.2f, median sigma %.3f",
        raw.run,
        n,
        float(np.median(mean)),
        float(np.median(np.sqrt(var))),
    )
    return Pedestal(mean.astype(np.float32), np.sqrt(var).astype(np.float32), raw.run, raw.camera, n)


def write_pedestal(path: str | Path, ped: Pedestal, source: Path | None = None) -> Path:
    """Write a pedestal file atomically."""
    path = Path(path)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        # float noise maps hardly compress: stored contiguous, uncompressed, for the fastest load
        f.create_dataset("mean", data=ped.mean)
        f.create_dataset("sigma", data=ped.sigma)
        f.attrs.update(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "pedestal_run": ped.run,
                "camera": ped.camera,
                "n_frames": ped.n_frames,
                "height": ped.shape[0],
                "width": ped.shape[1],
            }
        )
        if source is not None:
            ident = file_identity(source)
            f.attrs.update({f"source_{k}": v for k, v in ident.items()})
    log.info("wrote pedestal of run %d to %s", ped.run, path)
    return path


def load_pedestal(path: str | Path) -> Pedestal:
    """Read and validate a pedestal file."""
    path = Path(path)
    with open_h5(path, "pedestal file") as f:
        for name in ("mean", "sigma"):
            if name not in f:
                raise RecoInputError(f"{path}: no '{name}' dataset (not a pedestal file)")
        mean = f["mean"][()].astype(np.float32, copy=False)
        sigma = f["sigma"][()].astype(np.float32, copy=False)
        if mean.ndim != 2 or mean.shape != sigma.shape:
            raise RecoInputError(f"{path}: mean {mean.shape} and sigma {sigma.shape} must be equal 2-D maps")
        for name, arr in (("mean", mean), ("sigma", sigma)):
            bad = ~np.isfinite(arr)
            if bad.any():
                y, x = np.argwhere(bad)[0]
                raise RecoInputError(
                    f"{path}: '{name}' has {int(bad.sum())} NaN/inf pixels (first at x={x}, y={y})"
                )
        if (sigma < 0).any():
            raise RecoInputError(f"{path}: 'sigma' has negative values")
        if "pedestal_run" not in f.attrs:
            raise RecoInputError(f"{path}: missing attribute 'pedestal_run'")
        return Pedestal(
            mean,
            sigma,
            int(f.attrs["pedestal_run"]),
            str(f.attrs.get("camera", "unknown")),
            int(f.attrs.get("n_frames", 0)),
            path,
        )


def latest_pedestal_run(run: int, pedestal_runs: dict[int, int], min_events: int = 100) -> int:
    """The latest pedestal run before `run` with at least `min_events` events ({run: n_events})."""
    ok = [r for r, n in pedestal_runs.items() if r < run and n >= min_events]
    if not ok:
        raise RecoInputError(f"run {run}: no pedestal run before it with >= {min_events} events")
    return max(ok)
