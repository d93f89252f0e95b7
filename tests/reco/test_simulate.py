"""The synthetic generator: presets, sCMOS noise model, electron-recoil paths, light and diffusion."""

from __future__ import annotations

import numpy as np
import pytest

from reco.errors import RecoInputError
from reco.simulate import SimConfig, er_path, generate_events, make_camera, noise_frame, pedestal_events


def _pedestal_residuals(cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """Pedestal frames minus the camera mean, and the camera sigma."""
    cam = make_camera(cfg)
    frames = np.stack([f.astype(np.float64) for f in pedestal_events(cfg, cam)])
    good = np.ones(cam.mean.shape, bool)
    good[cam.hot[:, 0], cam.hot[:, 1]] = False
    good.reshape(-1)[cam.rtn] = False
    return (frames - cam.mean)[:, good], cam.sigma[good]


def _kurtosis(z: np.ndarray) -> float:
    return float((z**4).mean() / (z**2).mean() ** 2)


def test_easy_preset_is_gaussian_with_spots_and_straight_tracks() -> None:
    cfg = SimConfig.preset(
        "easy", height=128, width=192, n_frames=8, pedestal_frames=30, seed=2, mean_objects=5
    )
    assert (cfg.model, cfg.photons_per_kev, cfg.row_sigma, cfg.rtn_fraction) == ("easy", 60.0, 0.0, 0.0)
    res, sigma = _pedestal_residuals(cfg)
    z = res / sigma
    assert abs(z.std() - 1) < 0.03 and abs(_kurtosis(z) - 3) < 0.05  # Gaussian, no tails
    truth: list = []
    list(generate_events(cfg, make_camera(cfg), truth))
    kinds = {k.decode() for t, _ in truth for k in t["kind"]}
    assert kinds == {"spot", "track"}


def test_lime_noise_has_row_offsets_tails_and_telegraph_pixels() -> None:
    cfg = SimConfig(height=128, width=512, pedestal_frames=30, seed=4)
    cam = make_camera(cfg)
    frames = np.stack([noise_frame(cam, np.random.default_rng([4, 9, i])) for i in range(30)]) - cam.mean
    good = np.ones(cam.mean.shape, bool)
    good[cam.hot[:, 0], cam.hot[:, 1]] = False
    good.reshape(-1)[cam.rtn] = False
    row_means = np.array([[f[r][good[r]].mean() for r in range(f.shape[0])] for f in frames])
    assert abs(row_means.std() - cfg.row_sigma) < 0.1  # a common offset per row and frame
    z = (frames - row_means[:, :, None])[:, good] / cam.sigma[good]
    assert _kurtosis(z) > 3.15  # heavier tails than a Gaussian
    rtn = frames.reshape(30, -1)[:, cam.rtn]
    high = rtn > cam.rtn_amplitude / 2
    assert 0.03 < high.mean() < 0.2  # telegraph pixels sit high in ~rtn_probability of the frames


def test_electron_path_follows_range_law_and_scatters() -> None:
    cfg = SimConfig()
    rng = np.random.default_rng(1)
    _, _, mean_loss = er_path(SimConfig(er_clump_max=1.0), rng, 60.0)  # clump weights all 1
    assert mean_loss.sum() == pytest.approx(60.0, rel=1e-9)  # the range law loses exactly E along the path
    straight = SimConfig(er_scatter=0.0)
    xs, ys, _ = er_path(straight, np.random.default_rng(1), 60.0)
    path = np.hypot(np.diff(xs), np.diff(ys)).sum()
    assert np.hypot(xs[-1] - xs[0], ys[-1] - ys[0]) == pytest.approx(path, rel=1e-6)  # no scattering
    r60 = cfg.er_range_px * 6.0**cfg.er_range_exponent
    lengths, chords = [], []
    for seed in range(20):
        x, y, _ = er_path(cfg, np.random.default_rng(seed), 60.0)
        lengths.append(np.hypot(np.diff(x), np.diff(y)).sum())
        chords.append(np.hypot(x[-1] - x[0], y[-1] - y[0]))
    assert max(lengths) <= r60 and np.mean(lengths) > 0.5 * r60  # projected 3D path
    assert np.mean(np.array(chords) / np.array(lengths)) < 0.85  # curved


def test_electron_deposits_are_clumpy() -> None:
    _, _, w = er_path(SimConfig(), np.random.default_rng(3), 50.0)
    share = w / w.sum()
    assert share.max() > 10 * np.median(share)  # Landau-like clumps


def test_lime_objects_light_and_diffusion() -> None:
    cfg = SimConfig(height=512, width=512, n_frames=30, seed=5, empty_fraction=0.0, mean_objects=4)
    truth: list = []
    list(generate_events(cfg, make_camera(cfg), truth))
    t = np.concatenate([tr for tr, _ in truth])
    kinds = t["kind"].astype(str)
    assert set(kinds) == {"fe55", "er", "nr"}
    fe = t[kinds == "fe55"]
    assert set(np.round(fe["energy_kev"], 2)) <= {5.9, 6.49}
    ratio = t["photons"] / (t["energy_kev"] * cfg.photons_per_kev)
    assert abs(ratio[kinds != "er"].mean() - 1) < 0.05  # photons per keV on average (edges lose some)
    lo = cfg.diffusion_sigma0_mm / cfg.pixel_size_mm
    hi = (
        np.hypot(cfg.diffusion_sigma0_mm, cfg.diffusion_mm_per_sqrt_cm * np.sqrt(cfg.drift_cm))
        / cfg.pixel_size_mm
    )
    assert lo <= t["diffusion"].min() and t["diffusion"].max() <= hi
    er = t[kinds == "er"]
    assert er["length"].max() > 100 and t[kinds == "nr"]["length"].max() < 10


def test_scaled_and_bad_parameters() -> None:
    cfg = SimConfig().scaled(brightness=0.5, diffusion=2.0, curvature=0.0)
    assert cfg.photons_per_kev == 100.0 and cfg.diffusion_sigma0_mm == 0.6 and cfg.er_scatter == 0.0
    with pytest.raises(RecoInputError, match="unknown preset 'nope'"):
        SimConfig.preset("nope")
    with pytest.raises(RecoInputError, match="model='x' must be one of lime, easy"):
        SimConfig(model="x")
    with pytest.raises(RecoInputError, match="fe_fraction \\+ nr_fraction"):
        SimConfig(fe_fraction=0.8, nr_fraction=0.5)
