"""Synthetic CYGNO-like runs with ground truth: objects, diffusion, Poisson photons, sCMOS noise.

Two models. `lime` (the default): 55Fe spots, long curved electron recoils with Landau-like clumps and
gaps, short dense nuclear recoils, diffusion growing with the drift distance, and sCMOS noise with
non-Gaussian tails, random-telegraph pixels, hot pixels and row-correlated offsets. `easy`: the first
generator (round spots, straight uniform tracks, Gaussian noise), kept unchanged as `preset("easy")`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        ("length", "<f8"),
    ]
)
TRUTH_PIXEL_DTYPE = np.dtype(
    [("event", "<i4"), ("track", "<i4"), ("x", "<u2"), ("y", "<u2"), ("photons", "<u4")]
)
MODELS = ("lime", "easy")
KINDS = {"lime": ("fe55", "er", "nr"), "easy": ("spot", "track")}


@dataclass(frozen=True)
class SimConfig:
    """Parameters of the synthetic camera and of the events (defaults: the `lime` model)."""

    height: int = 384
    width: int = 512
    n_frames: int = 20
    pedestal_frames: int = 20
    empty_fraction: float = 0.2
    mean_objects: float = 3.0
    model: str = "lime"
    # camera: per-pixel pedestal and noise maps, hot pixels
    pedestal_level: float = 100.0
    pedestal_spread: float = 3.0
    noise_sigma: float = 2.0
    noise_spread: float = 0.15
    hot_fraction: float = 5e-4
    # sCMOS noise beyond Gaussian (lime): a fraction of pixel readings with `noise_tail_scale` x sigma,
    # random-telegraph pixels at +amplitude with a probability per frame, a common offset per row
    noise_tail_fraction: float = 0.005
    noise_tail_scale: float = 3.0
    rtn_fraction: float = 0.002
    rtn_amplitude: tuple[float, float] = (6.0, 20.0)
    rtn_probability: float = 0.1
    row_sigma: float = 0.5
    # light: photons on the sensor per keV (electron-equivalent) and ADC per photon; lime: one ionisation
    # electron per w_value_ev, each amplified with a Polya gain (relative variance 1 / (1 + gain_theta))
    # into a Poisson number of photons spread by electron_spread_px around its diffused position
    photons_per_kev: float = 200.0
    adc_per_photon: float = 1.0
    w_value_ev: float = 35.0
    gain_theta: float = 0.5
    electron_spread_px: float = 0.7
    # diffusion (lime): sigma = sqrt(sigma0^2 + coeff^2 * z) for a drift z uniform in [0, drift_cm]
    pixel_size_mm: float = 0.152
    drift_cm: float = 50.0
    diffusion_sigma0_mm: float = 0.30
    diffusion_mm_per_sqrt_cm: float = 0.10
    # object mix (lime): 55Fe spots, nuclear recoils, the rest electron recoils
    fe_fraction: float = 0.3
    nr_fraction: float = 0.3
    fe_kev: tuple[float, float] = (5.9, 6.49)  # K-alpha, K-beta
    fe_kbeta_fraction: float = 0.12
    # electron recoils: energy (uniform: a flat Compton/beta-like spectrum), path length R = er_range_px * (E / 10 keV)^er_range_exponent,
    # multiple scattering (rad per sqrt(px) at 10 keV, ~1/E), Landau-like clumps along the path
    er_kev: tuple[float, float] = (5.0, 80.0)
    er_range_px: float = 12.0
    er_range_exponent: float = 1.7
    er_scatter: float = 0.3
    er_clump_spacing: float = 1.0
    er_clump_alpha: float = 1.5
    er_clump_max: float = 50.0
    # nuclear recoils: visible energy (keVee, log-uniform), straight length nr_length_px * sqrt(E / 10 keV)
    nr_kev: tuple[float, float] = (2.0, 50.0)
    nr_length_px: float = 3.0
    # easy model: spots and straight uniform tracks
    track_fraction: float = 0.5
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
        if self.model not in MODELS:
            raise RecoInputError(f"simulate: model={self.model!r} must be one of {', '.join(MODELS)}")
        checks = [
            (self.mean_objects >= 0, "mean_objects", "must be >= 0"),
            (self.photons_per_kev > 0, "photons_per_kev", "must be > 0"),
            (self.adc_per_photon > 0, "adc_per_photon", "must be > 0"),
            (self.w_value_ev > 0, "w_value_ev", "must be > 0"),
            (self.gain_theta >= 0, "gain_theta", "must be >= 0"),
            (self.electron_spread_px >= 0, "electron_spread_px", "must be >= 0"),
            (0 <= self.noise_tail_fraction <= 1, "noise_tail_fraction", "must be in [0, 1]"),
            (self.noise_tail_scale >= 1, "noise_tail_scale", "must be >= 1"),
            (0 <= self.rtn_fraction <= 1, "rtn_fraction", "must be in [0, 1]"),
            (0 <= self.rtn_probability <= 1, "rtn_probability", "must be in [0, 1]"),
            (self.row_sigma >= 0, "row_sigma", "must be >= 0"),
            (self.drift_cm >= 0, "drift_cm", "must be >= 0"),
            (self.diffusion_sigma0_mm > 0, "diffusion_sigma0_mm", "must be > 0"),
            (self.diffusion_mm_per_sqrt_cm >= 0, "diffusion_mm_per_sqrt_cm", "must be >= 0"),
            (self.pixel_size_mm > 0, "pixel_size_mm", "must be > 0"),
            (
                self.fe_fraction >= 0 and self.nr_fraction >= 0 and self.fe_fraction + self.nr_fraction <= 1,
                "fe_fraction + nr_fraction",
                "must be fractions summing to <= 1",
            ),
            (0 <= self.fe_kbeta_fraction <= 1, "fe_kbeta_fraction", "must be in [0, 1]"),
            (0 < self.er_kev[0] <= self.er_kev[1], "er_kev", "must be 0 < low <= high"),
            (0 < self.nr_kev[0] <= self.nr_kev[1], "nr_kev", "must be 0 < low <= high"),
            (
                self.er_range_px > 0 and self.er_range_exponent > 1,
                "er_range_*",
                "need range > 0, exponent > 1",
            ),
            (self.er_scatter >= 0, "er_scatter", "must be >= 0"),
            (self.er_clump_spacing > 0, "er_clump_spacing", "must be > 0"),
            (self.er_clump_alpha > 0 and self.er_clump_max >= 1, "er_clump_*", "need alpha > 0, max >= 1"),
            (self.nr_length_px >= 0, "nr_length_px", "must be >= 0"),
        ]
        for ok, name, rule in checks:
            if not ok:
                raise RecoInputError(f"simulate: {name} {rule}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SimConfig:
        """A named parameter set (`lime`, `easy`) with some parameters overridden."""
        if name not in PRESETS:
            raise RecoInputError(f"simulate: unknown preset {name!r} (known: {', '.join(PRESETS)})")
        return cls(**{**PRESETS[name], **overrides})

    def scaled(self, brightness: float = 1.0, diffusion: float = 1.0, curvature: float = 1.0) -> SimConfig:
        """Copy with the light yield, the diffusion and the electron-recoil scattering scaled."""
        return dataclasses.replace(
            self,
            photons_per_kev=self.photons_per_kev * brightness,
            diffusion_sigma0_mm=self.diffusion_sigma0_mm * diffusion,
            diffusion_mm_per_sqrt_cm=self.diffusion_mm_per_sqrt_cm * diffusion,
            spot_sigma=tuple(v * diffusion for v in self.spot_sigma),
            track_sigma=tuple(v * diffusion for v in self.track_sigma),
            er_scatter=self.er_scatter * curvature,
        )


# The first generator's parameter set: Gaussian noise, straight uniform tracks, 60 photons/keV.
PRESETS: dict[str, dict[str, Any]] = {
    "lime": {},
    "easy": {
        "model": "easy",
        "photons_per_kev": 60.0,
        "noise_tail_fraction": 0.0,
        "rtn_fraction": 0.0,
        "row_sigma": 0.0,
    },
}


@dataclass(frozen=True)
class Camera:
    """Per-pixel pedestal mean and noise sigma of a synthetic camera, and its noise model."""

    mean: np.ndarray
    sigma: np.ndarray
    hot: np.ndarray  # (n, 2) y, x of hot pixels
    rtn: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # flat indices of RTN pixels
    rtn_amplitude: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rtn_probability: float = 0.0
    tail_fraction: float = 0.0
    tail_scale: float = 1.0
    row_sigma: float = 0.0


@dataclass(frozen=True)
class SimOutput:
    """Paths of the simulated files."""

    pedestal_run: Path
    run: Path
    truth: Path


def make_camera(cfg: SimConfig) -> Camera:
    """Pedestal and noise maps with hot pixels (high level, large sigma) and random-telegraph pixels."""
    rng = np.random.default_rng([cfg.seed, 0])
    shape = (cfg.height, cfg.width)
    mean = cfg.pedestal_level + cfg.pedestal_spread * rng.standard_normal(shape)
    sigma = cfg.noise_sigma * rng.lognormal(0.0, cfg.noise_spread, shape)
    n_hot = int(round(cfg.hot_fraction * cfg.height * cfg.width))
    flat = rng.choice(cfg.height * cfg.width, size=n_hot, replace=False)
    hot = np.stack(np.unravel_index(np.sort(flat), shape), axis=1)
    mean[hot[:, 0], hot[:, 1]] += rng.uniform(200.0, 2000.0, n_hot)
    sigma[hot[:, 0], hot[:, 1]] = rng.uniform(10.0, 40.0, n_hot)
    rng = np.random.default_rng([cfg.seed, 3])
    n_rtn = int(round(cfg.rtn_fraction * cfg.height * cfg.width))
    rtn = np.sort(rng.choice(cfg.height * cfg.width, size=n_rtn, replace=False))
    return Camera(
        mean,
        sigma,
        hot,
        rtn,
        rng.uniform(*cfg.rtn_amplitude, n_rtn),
        cfg.rtn_probability,
        cfg.noise_tail_fraction,
        cfg.noise_tail_scale,
        cfg.row_sigma,
    )


def noise_frame(cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """Pedestal-only frame (float): Gaussian noise plus the camera's tails, RTN pixels and row offsets."""
    frame = cam.mean + cam.sigma * rng.standard_normal(cam.mean.shape)
    flat = frame.reshape(-1)
    if cam.tail_fraction > 0:  # a scale mixture: some readings have tail_scale x sigma
        idx = rng.integers(0, flat.size, rng.binomial(flat.size, cam.tail_fraction))
        extra = np.sqrt(cam.tail_scale**2 - 1.0)
        flat[idx] += extra * cam.sigma.reshape(-1)[idx] * rng.standard_normal(idx.size)
    if cam.rtn.size:
        up = rng.random(cam.rtn.size) < cam.rtn_probability
        flat[cam.rtn[up]] += cam.rtn_amplitude[up]
    if cam.row_sigma > 0:
        frame += cam.row_sigma * rng.standard_normal((frame.shape[0], 1))
    return frame


def digitize(frame: np.ndarray) -> np.ndarray:
    """Round and clip to uint16 ADC counts."""
    return np.clip(np.rint(frame), 0, 65535).astype(np.uint16)


@dataclass
class SimObject:
    """One object: kind, visible energy, photon source points (x, y, weight), diffusion and ends."""

    kind: str
    energy: float
    sx: np.ndarray
    sy: np.ndarray
    weight: np.ndarray | None  # relative photon share of each source point; None = uniform
    sigma: float
    length: float


def _objects(cfg: SimConfig, rng: np.random.Generator, event: int) -> list[tuple]:
    """Random spots and straight tracks of one frame (easy model): (kind, energy, x0, y0, x1, y1, sigma)."""
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


def _easy_object(obj: tuple) -> SimObject:
    """An easy-model object as a segment source."""
    kind, energy, x0, y0, x1, y1, sig = obj
    return SimObject(
        kind, energy, np.array([x0, x1]), np.array([y0, y1]), None, sig, float(np.hypot(x1 - x0, y1 - y0))
    )


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = np.log(lo_hi[0]), np.log(lo_hi[1])
    return float(np.exp(rng.uniform(lo, hi)))


def _isotropic(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def er_path(
    cfg: SimConfig, rng: np.random.Generator, energy: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projected deposit points (x, y, from 0, 0) and deposited energies of an electron of `energy` keV.

    The path is a 3D random walk: steps of exponential length (mean `er_clump_spacing`), each deflected
    by a Gaussian angle of sigma `er_scatter` * sqrt(step) * 10 keV / E; the mean energy lost over a
    step follows the range-energy law, times a Pareto (Landau-like) clump weight.
    """
    p = cfg.er_range_exponent
    r0 = cfg.er_range_px * (energy / 10.0) ** p
    n = int(r0 / cfg.er_clump_spacing * 1.3) + 16
    steps = rng.exponential(cfg.er_clump_spacing, n)
    while steps.sum() < r0:
        steps = np.concatenate([steps, rng.exponential(cfg.er_clump_spacing, n)])
    s = np.cumsum(steps)
    k = int(np.searchsorted(s, r0)) + 1  # the last deposit sits at the end of the range
    s = np.minimum(s[:k], r0)
    steps = np.diff(np.concatenate([[0.0], s]))
    residual = r0 - s
    e_res = 10.0 * (residual / cfg.er_range_px) ** (1.0 / p)
    e_before = np.concatenate([[energy], e_res[:-1]])
    kicks = rng.standard_normal((k, 3))
    u = 1.0 - rng.random(k)
    clump = np.minimum(u ** (-1.0 / cfg.er_clump_alpha), cfg.er_clump_max)
    pos = np.zeros((k, 3))
    d = _isotropic(rng)
    here = np.zeros(3)
    for i in range(k):
        here = here + steps[i] * d
        pos[i] = here
        theta = min(cfg.er_scatter * np.sqrt(steps[i]) * 10.0 / max(e_res[i], 0.5), 1.0)
        kick = kicks[i] - (kicks[i] @ d) * d
        d = d + theta * kick
        d /= np.linalg.norm(d)
    return pos[:, 0], pos[:, 1], (e_before - e_res) * clump


def _diffusion(cfg: SimConfig, rng: np.random.Generator) -> float:
    """Diffusion sigma (pixels) of an object at a uniform random drift distance."""
    z = rng.uniform(0.0, cfg.drift_cm)
    return float(
        np.sqrt(cfg.diffusion_sigma0_mm**2 + cfg.diffusion_mm_per_sqrt_cm**2 * z) / cfg.pixel_size_mm
    )


def _place(
    cfg: SimConfig, rng: np.random.Generator, x: np.ndarray, y: np.ndarray, pad: float
) -> tuple[float, float]:
    """Offset that puts the points (with `pad` around) at a random place inside the frame."""
    m = cfg.margin + pad
    offs = []
    for lo, hi, size in ((x.min(), x.max(), cfg.width), (y.min(), y.max(), cfg.height)):
        room = size - 2 * m - (hi - lo)
        offs.append(m - lo + (rng.uniform(0, room) if room > 0 else room / 2))
    return offs[0], offs[1]


def _lime_objects(cfg: SimConfig, rng: np.random.Generator) -> list[SimObject]:
    """55Fe spots, electron recoils and nuclear recoils of one frame (lime model)."""
    if rng.random() < cfg.empty_fraction:
        return []
    out = []
    for _ in range(rng.poisson(cfg.mean_objects)):
        u = rng.random()
        sig = _diffusion(cfg, rng)
        if u < cfg.fe_fraction or u >= cfg.fe_fraction + cfg.nr_fraction:
            if u < cfg.fe_fraction:
                kind = "fe55"
                energy = cfg.fe_kev[1] if rng.random() < cfg.fe_kbeta_fraction else cfg.fe_kev[0]
            else:
                kind, energy = "er", float(rng.uniform(*cfg.er_kev))
            x, y, w = er_path(cfg, rng, energy)
        else:
            kind, energy = "nr", _log_uniform(rng, cfg.nr_kev)
            half = 0.5 * cfg.nr_length_px * np.sqrt(energy / 10.0) * _isotropic(rng)
            x, y, w = np.array([-half[0], half[0]]), np.array([-half[1], half[1]]), None
        ox, oy = _place(cfg, rng, x, y, 3.0 * sig)
        length = float(np.hypot(np.diff(x), np.diff(y)).sum())
        out.append(SimObject(kind, energy, x + ox, y + oy, w, sig, length))
    return out


def _photons(cfg: SimConfig, rng: np.random.Generator, obj: SimObject) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices and photon counts of one object (Poisson number, diffused positions)."""
    if cfg.model == "easy":  # photons straight from the segment, no avalanche
        n = rng.poisson(obj.energy * cfg.photons_per_kev)
        t = rng.random(n)
        x = obj.sx[0] + t * (obj.sx[1] - obj.sx[0]) + obj.sigma * rng.standard_normal(n)
        y = obj.sy[0] + t * (obj.sy[1] - obj.sy[0]) + obj.sigma * rng.standard_normal(n)
    else:  # ionisation electrons, diffused, each amplified into a cluster of photons
        n = rng.poisson(obj.energy * 1000.0 / cfg.w_value_ev)
        if obj.weight is None:
            t = rng.random(n)
            ex = obj.sx[0] + t * (obj.sx[-1] - obj.sx[0])
            ey = obj.sy[0] + t * (obj.sy[-1] - obj.sy[0])
        else:
            per_point = rng.multinomial(n, obj.weight / obj.weight.sum())
            ex, ey = np.repeat(obj.sx, per_point), np.repeat(obj.sy, per_point)
        ex = ex + obj.sigma * rng.standard_normal(n)
        ey = ey + obj.sigma * rng.standard_normal(n)
        shape = 1.0 + cfg.gain_theta
        mean = cfg.photons_per_kev * cfg.w_value_ev / 1000.0
        per_electron = rng.poisson(mean * rng.gamma(shape, 1.0 / shape, n))
        m = int(per_electron.sum())
        x = np.repeat(ex, per_electron) + cfg.electron_spread_px * rng.standard_normal(m)
        y = np.repeat(ey, per_electron) + cfg.electron_spread_px * rng.standard_normal(m)
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
        if cfg.model == "easy":
            objs = [_easy_object(o) for o in _objects(cfg, rng, event)]
        else:
            objs = _lime_objects(cfg, rng)
        tracks = np.zeros(len(objs), TRACK_DTYPE)
        pix = []
        for k, obj in enumerate(objs):
            flat, counts = _photons(cfg, rng, obj)
            flat_frame[flat] += counts * cfg.adc_per_photon
            ends = (obj.sx[0], obj.sy[0], obj.sx[-1], obj.sy[-1])
            tracks[k] = (event, k, obj.kind, obj.energy, counts.sum(), *ends, obj.sigma, obj.length)
            p = np.zeros(len(flat), TRUTH_PIXEL_DTYPE)
            p["event"], p["track"] = event, k
            p["y"], p["x"] = np.divmod(flat, cfg.width)
            p["photons"] = counts
            pix.append(p)
        truth.append((tracks, np.concatenate(pix) if pix else np.zeros(0, TRUTH_PIXEL_DTYPE)))
        yield digitize(frame)


def pedestal_events(cfg: SimConfig, cam: Camera) -> Iterator[np.ndarray]:
    """Yield the digitized frames of the pedestal run (same camera, no objects)."""
    for i in range(cfg.pedestal_frames):
        yield digitize(noise_frame(cam, np.random.default_rng([cfg.seed, 1, i])))


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

    def counted(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for frame in frames:
            yield frame
            if progress:
                progress(1)

    ped_path = write_run(
        outdir / f"run{ped_run:05d}{suffix}",
        counted(pedestal_events(cfg, cam)),
        run=ped_run,
        shape=shape,
        camera=cfg.camera,
        run_type="pedestal",
        pixel_size_mm=cfg.pixel_size_mm,
        attrs=sim_attrs,
    )
    truth: list[tuple[np.ndarray, np.ndarray]] = []
    run_path = write_run(
        outdir / f"run{cfg.run:05d}{suffix}",
        counted(generate_events(cfg, cam, truth)),
        run=cfg.run,
        shape=shape,
        camera=cfg.camera,
        run_type="physics",
        pixel_size_mm=cfg.pixel_size_mm,
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
                "format_version": 2,
                "run": cfg.run,
                "pedestal_run": ped_run,
                "n_frames": cfg.n_frames,
                "adc_per_photon": cfg.adc_per_photon,
                "photons_per_kev": cfg.photons_per_kev,
                "model": cfg.model,
                "noise_sigma": cfg.noise_sigma,
                **sim_attrs,
            }
        )
    log.info("simulated run %d (%d frames, %d objects) in %s", cfg.run, cfg.n_frames, len(tracks), outdir)
    return SimOutput(ped_path, run_path, truth_path)
