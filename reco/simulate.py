"""Synthetic CYGNO-like runs with ground truth: tracks, spots, diffusion, Poisson photons, noise maps."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from reco.atomic import atomic_output
from reco.errors import RecoInputError
from reco.runsource import run_writer

log = logging.getLogger(__name__)

TRACK_DTYPE = np.dtype(
    [
        ("event", "<i4"),
        ("track", "<i4"),
        ("kind", "S5"),
        ("energy_kev", "<f8"),
        ("photons", "<i8"),
        ("x0", "<f8"),
        ("y0", "<f8"),
        ("x1", "<f8"),
        ("y1", "<f8"),
        ("diffusion", "<f8"),
    ]
)
TRUTH_PIXEL_DTYPE = np.dtype(
    [("event", "<i4"), ("track", "<i4"), ("x", "<u2"), ("y", "<u2"), ("photons", "<u4")]
)


@dataclass(frozen=True)
class SimConfig:
    """Parameters of the synthetic camera and of the events."""

    height: int = 384
    width: int = 512
    n_frames: int = 20
    pedestal_frames: int = 20
    empty_fraction: float = 0.2
    mean_objects: float = 3.0
    track_fraction: float = 0.5
    pedestal_level: float = 100.0
    pedestal_spread: float = 3.0
    noise_sigma: float = 2.0
    noise_spread: float = 0.15
    hot_fraction: float = 5e-4
    photons_per_kev: float = 60.0
    adc_per_photon: float = 1.0
    spot_kev: tuple[float, float] = (2.0, 60.0)
    spot_sigma: tuple[float, float] = (1.0, 2.5)
    track_length: tuple[float, float] = (30.0, 200.0)
    track_kev_per_px: tuple[float, float] = (0.3, 1.0)
    track_sigma: tuple[float, float] = (1.0, 2.0)
    margin: int = 8
    run: int = 1001
    seed: int = 1
    camera: str = "SIM-CAM"

    def __post_init__(self) -> None:
        if self.height < 32 or self.width < 32:
            raise RecoInputError(f"simulate: frame {self.height}x{self.width} is too small (min 32x32)")
        if self.n_frames < 1 or self.pedestal_frames < 2:
            raise RecoInputError("simulate: need >= 1 frame and >= 2 pedestal frames")
        if not 0 <= self.empty_fraction <= 1:
            raise RecoInputError("simulate: empty_fraction must be in [0, 1]")
        if self.run < 1:
            raise RecoInputError("simulate: run must be >= 1 (the pedestal run is run - 1)")


@dataclass(frozen=True)
class Camera:
    """Per-pixel pedestal mean and noise sigma of a synthetic camera (hot pixels included)."""

    mean: np.ndarray
    sigma: np.ndarray
    hot: np.ndarray  # (n, 2) y, x of hot pixels


@dataclass(frozen=True)
class SimOutput:
    """Paths of the simulated files."""

    pedestal_run: Path
    run: Path
    truth: Path


def make_camera(cfg: SimConfig) -> Camera:
    """Pedestal and noise maps with hot pixels (high level, large sigma)."""
    rng = np.random.default_rng([cfg.seed, 0])
    shape = (cfg.height, cfg.width)
    mean = cfg.pedestal_level + cfg.pedestal_spread * rng.standard_normal(shape)
    sigma = cfg.noise_sigma * rng.lognormal(0.0, cfg.noise_spread, shape)
    n_hot = int(round(cfg.hot_fraction * cfg.height * cfg.width))
    flat = rng.choice(cfg.height * cfg.width, size=n_hot, replace=False)
    hot = np.stack(np.unravel_index(np.sort(flat), shape), axis=1)
    mean[hot[:, 0], hot[:, 1]] += rng.uniform(200.0, 2000.0, n_hot)
    sigma[hot[:, 0], hot[:, 1]] = rng.uniform(10.0, 40.0, n_hot)
    return Camera(mean, sigma, hot)


def noise_frame(cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """Pedestal-only frame (float)."""
    return cam.mean + cam.sigma * rng.standard_normal(cam.mean.shape)


def digitize(frame: np.ndarray) -> np.ndarray:
    """Round and clip to uint16 ADC counts."""
    return np.clip(np.rint(frame), 0, 65535).astype(np.uint16)


def _objects(cfg: SimConfig, rng: np.random.Generator, event: int) -> list[tuple]:
    """Random spots and straight tracks of one frame: (kind, energy, x0, y0, x1, y1, sigma)."""
    if rng.random() < cfg.empty_fraction:
        return []
    out = []
    m = cfg.margin
    for _ in range(rng.poisson(cfg.mean_objects)):
        if rng.random() < cfg.track_fraction:
            length = rng.uniform(*cfg.track_length)
            phi = rng.uniform(0, np.pi)
            # shorten tracks that would not fit inside the frame in this direction
            room_x = (cfg.width - 2 * m) / max(abs(np.cos(phi)), 1e-9)
            room_y = (cfg.height - 2 * m) / max(np.sin(phi), 1e-9)
            length = min(length, 0.999 * room_x, 0.999 * room_y)
            dx, dy = length * np.cos(phi), length * np.sin(phi)
            x0 = rng.uniform(m + max(0, -dx), cfg.width - m - max(0, dx))
            y0 = rng.uniform(m + max(0, -dy), cfg.height - m - max(0, dy))
            energy = length * rng.uniform(*cfg.track_kev_per_px)
            out.append(("track", energy, x0, y0, x0 + dx, y0 + dy, rng.uniform(*cfg.track_sigma)))
        else:
            lo, hi = np.log(cfg.spot_kev[0]), np.log(cfg.spot_kev[1])
            energy = float(np.exp(rng.uniform(lo, hi)))
            x0, y0 = rng.uniform(m, cfg.width - m), rng.uniform(m, cfg.height - m)
            out.append(("spot", energy, x0, y0, x0, y0, rng.uniform(*cfg.spot_sigma)))
    return out


def _photons(cfg: SimConfig, rng: np.random.Generator, obj: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices and photon counts of one object (Poisson number, diffused positions)."""
    _, energy, x0, y0, x1, y1, sig = obj
    n = rng.poisson(energy * cfg.photons_per_kev)
    t = rng.random(n)
    x = x0 + t * (x1 - x0) + sig * rng.standard_normal(n)
    y = y0 + t * (y1 - y0) + sig * rng.standard_normal(n)
    ix, iy = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    ok = (ix >= 0) & (ix < cfg.width) & (iy >= 0) & (iy < cfg.height)
    flat, counts = np.unique(iy[ok] * cfg.width + ix[ok], return_counts=True)
    return flat, counts


def generate_events(
    cfg: SimConfig, cam: Camera, truth: list[tuple[np.ndarray, np.ndarray]]
) -> Iterator[np.ndarray]:
    """Yield digitized frames; append (tracks, truth pixels) of each frame to `truth`."""
    for event in range(cfg.n_frames):
        rng = np.random.default_rng([cfg.seed, 2, event])
        frame = noise_frame(cam, rng)
        flat_frame = frame.reshape(-1)
        objs = _objects(cfg, rng, event)
        tracks = np.zeros(len(objs), TRACK_DTYPE)
        pix = []
        for k, obj in enumerate(objs):
            flat, counts = _photons(cfg, rng, obj)
            flat_frame[flat] += counts * cfg.adc_per_photon
            tracks[k] = (event, k, obj[0], obj[1], counts.sum(), *obj[2:])
            p = np.zeros(len(flat), TRUTH_PIXEL_DTYPE)
            p["event"], p["track"] = event, k
            p["y"], p["x"] = np.divmod(flat, cfg.width)
            p["photons"] = counts
            pix.append(p)
        truth.append((tracks, np.concatenate(pix) if pix else np.zeros(0, TRUTH_PIXEL_DTYPE)))
        yield digitize(frame)


def simulate(
    outdir: str | Path, cfg: SimConfig, progress: Callable[[int], None] | None = None, fmt: str = "hdf5"
) -> SimOutput:
    """Write a pedestal run, a physics run (`fmt`: hdf5 -> run<N>.h5, midas -> run<N>.mid.gz) and the truth file."""
    suffix, write_run = run_writer(fmt)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    cam = make_camera(cfg)
    shape = (cfg.height, cfg.width)
    ped_run = cfg.run - 1
    sim_attrs = {"simulation": json.dumps(dataclasses.asdict(cfg), sort_keys=True)}

    def ped_frames() -> Iterator[np.ndarray]:
        for i in range(cfg.pedestal_frames):
            yield digitize(noise_frame(cam, np.random.default_rng([cfg.seed, 1, i])))
            if progress:
                progress(1)

    ped_path = write_run(
        outdir / f"run{ped_run:05d}{suffix}",
        ped_frames(),
        run=ped_run,
        shape=shape,
        camera=cfg.camera,
        run_type="pedestal",
        attrs=sim_attrs,
    )
    truth: list[tuple[np.ndarray, np.ndarray]] = []

    def phys_frames() -> Iterator[np.ndarray]:
        for frame in generate_events(cfg, cam, truth):
            yield frame
            if progress:
                progress(1)

    run_path = write_run(
        outdir / f"run{cfg.run:05d}{suffix}",
        phys_frames(),
        run=cfg.run,
        shape=shape,
        camera=cfg.camera,
        run_type="physics",
        attrs={**sim_attrs, "pedestal_run": ped_run},
    )
    truth_path = outdir / f"run{cfg.run:05d}_truth.h5"
    with atomic_output(truth_path) as tmp, h5py.File(tmp, "w") as f:
        tracks = np.concatenate([t for t, _ in truth])
        pixels = np.concatenate([p for _, p in truth])
        f.create_dataset("tracks", data=tracks)
        f.create_dataset("pixels", data=pixels, compression="gzip", shuffle=True)
        hot = f.create_dataset("hot_pixels", data=cam.hot.astype(np.int32))
        hot.attrs["columns"] = "y,x"
        f.attrs.update(
            {
                "format": "cygno-truth",
                "format_version": 1,
                "run": cfg.run,
                "pedestal_run": ped_run,
                "n_frames": cfg.n_frames,
                "adc_per_photon": cfg.adc_per_photon,
                "photons_per_kev": cfg.photons_per_kev,
                **sim_attrs,
            }
        )
    log.info("simulated run %d (%d frames, %d objects) in %s", cfg.run, cfg.n_frames, len(tracks), outdir)
    return SimOutput(ped_path, run_path, truth_path)
