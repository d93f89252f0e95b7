"""sc_spotlight: the numba kernel equals its numpy reference and recovers known spot light."""

from __future__ import annotations

import numpy as np
import pytest

from reco.config import RecoConfig
from reco.features import (
    F_LIGHT,
    F_LSIGMA,
    F_NHITS,
    F_SPOTLIGHT,
    F_THETA,
    F_TSIGMA,
    F_XMAX,
    F_XMEAN,
    F_XMIN,
    F_YMAX,
    F_YMEAN,
    F_YMIN,
    NF,
    _gauss_window,
    spot_light,
)
from reco.frame import Calibration, FrameReconstructor
from reco.pedestal import Pedestal
from tests.reco import oracle

CFG = RecoConfig()
SHAPE = (200, 240)


def _gauss(shape, cx, cy, sx, sy=None, theta=0.0):
    """Unit-integral Gaussian image centred on (cx, cy) (pixel indices)."""
    sy = sx if sy is None else sy
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    dx, dy = xx - cx, yy - cy
    u = dx * np.cos(theta) + dy * np.sin(theta)
    w = -dx * np.sin(theta) + dy * np.cos(theta)
    return np.exp(-0.5 * (u * u / sx**2 + w * w / sy**2)) / (2 * np.pi * sx * sy)


def _feats(spots) -> np.ndarray:
    """Feature rows as the chain gives them: (cx, cy, lsigma, tsigma, theta, half-extent, light)."""
    f = np.zeros((len(spots), NF))
    for k, (cx, cy, ls, ts, th, ext, light) in enumerate(spots):
        f[k, F_NHITS] = 10
        f[k, F_XMEAN], f[k, F_YMEAN] = cx, cy
        f[k, F_LSIGMA], f[k, F_TSIGMA], f[k, F_THETA] = ls, ts, th
        f[k, F_XMIN], f[k, F_XMAX] = max(cx - ext, 0), cx + ext
        f[k, F_YMIN], f[k, F_YMAX] = max(cy - ext, 0), cy + ext
        f[k, F_LIGHT] = light
    return f


def _run(raw, mean, sigma, off, feats, cfg=CFG, cimax=None):
    """(numba, reference) sc_spotlight of the clusters in `feats`."""
    cimax = cfg.cimax if cimax is None else cimax
    usable = (sigma <= cfg.noisy_factor * np.median(sigma)).astype(np.uint8)
    var = np.square(sigma, dtype=np.float32)
    got = spot_light(raw, mean, var, usable, cimax, off, feats, cfg.spot_half, cfg.spot_kappa)
    vals = (raw.astype(np.float32) - mean).astype(np.float64) - off[:, None]
    good = usable.astype(bool) & (raw < cimax)
    return got, oracle.spot_light(vals, good, var, feats, cfg.replace(cimax=cimax))


@pytest.mark.parametrize("seed", range(6))
def test_numba_equals_reference_on_random_spots(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mean = rng.normal(100, 3, SHAPE).astype(np.float32)
    sigma = rng.uniform(1.5, 2.5, SHAPE).astype(np.float32)
    sigma[rng.random(SHAPE) < 0.002] = 40.0  # noisy pixels: not usable
    off = rng.normal(0, 0.5, SHAPE[0])
    frame = mean + rng.normal(0, 2, SHAPE) + off[:, None]
    spots = []
    for _ in range(8):
        cx, cy = rng.uniform(-2, SHAPE[1] + 2), rng.uniform(-2, SHAPE[0] + 2)  # some at or past the border
        sx, sy, th = rng.uniform(0.5, 6), rng.uniform(0.5, 4), rng.uniform(-np.pi, np.pi)
        light = rng.uniform(-50, 3000)  # faint and negative-looking clusters too
        frame += light * _gauss(SHAPE, cx, cy, sx, sy, th)
        ls, ts = rng.uniform(0, 5, 2)  # the cluster's (noisy, zero-suppressed) sigmas, even zero
        ext = rng.choice([0, 5, 20, 30])  # one-pixel, compact and too large clusters
        spots.append((cx, cy, ls, ts, rng.uniform(-np.pi, np.pi), ext, light))
    raw = np.clip(frame, 0, 65535).astype(np.uint16)
    feats = _feats(spots)
    feats[0, F_NHITS] = 0  # a cluster without hits keeps sc_light
    got, want = _run(raw, mean, sigma, off, feats, cimax=int(np.quantile(raw, 0.9999)))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert got[0] == feats[0, F_LIGHT]
    reach = np.maximum(feats[:, F_XMAX] - feats[:, F_XMEAN], feats[:, F_XMEAN] - feats[:, F_XMIN])
    big = (reach > CFG.spot_half) & (feats[:, F_NHITS] > 0)
    assert big.any() and not big.all()
    np.testing.assert_array_equal(got[big], feats[big, F_LIGHT])  # not compact: sc_light


def test_empty_and_disabled() -> None:
    mean = np.full(SHAPE, 100, np.float32)
    sigma = np.full(SHAPE, 2, np.float32)
    raw = np.full(SHAPE, 100, np.uint16)
    off = np.zeros(SHAPE[0])
    got, want = _run(raw, mean, sigma, off, np.zeros((0, NF)))
    assert got.shape == want.shape == (0,)
    feats = _feats([(50.0, 60.0, 2.0, 2.0, 0.0, 4, 123.0)])
    got, want = _run(raw, mean, sigma, off, feats, cfg=CFG.replace(spot_half=0))
    assert got[0] == want[0] == 123.0


def test_recovers_a_known_light_within_the_noise() -> None:
    """Noise-free round spots of 1200 ADC under 2 ADC pixel noise: unbiased, spread near the optimum."""
    shape, light, s, n = (600, 600), 1200.0, 3.0, 100
    rng = np.random.default_rng(11)
    mean = np.full(shape, 100, np.float32)
    sigma = np.full(shape, 2, np.float32)
    centres = [
        (30 + 60 * i + rng.uniform(-0.5, 0.5), 30 + 60 * j + rng.uniform(-0.5, 0.5))
        for i in range(10)
        for j in range(10)
    ]
    signal = sum(light * _gauss(shape, cx, cy, s) for cx, cy in centres)
    frame = mean + signal + rng.normal(0, 2, shape)
    raw = np.round(frame).astype(np.uint16)
    feats = _feats([(cx, cy, 2.0, 2.0, 0.0, 8, 0.0) for cx, cy in centres])  # rough cluster sigmas
    got, want = _run(raw, mean, sigma, np.zeros(shape[0]), feats)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # rounding adds a uniform +-0.5 to each pixel (variance 1/12 on top of 4)
    noise2 = 4 + 1 / 12
    # expected spread with the true shape: error = sum_i (w_i + F W_i / sum W g) n_i, linearised
    half = CFG.spot_half
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    g = np.exp(-0.5 * (xx**2 + yy**2) / s**2) / (2 * np.pi * s**2)
    wide = np.exp(-0.5 * (xx**2 + yy**2) / (4 * s**2))
    w = CFG.spot_kappa * light * g / (CFG.spot_kappa * light * g + 4)
    coef = w + ((1 - w) * g).sum() * wide / (wide * g).sum()
    expected = np.sqrt(noise2 * (coef**2).sum())  # 31 ADC
    spread = got.std(ddof=1)
    assert abs(got.mean() - light) < 4 * spread / np.sqrt(n) + 0.005 * light
    assert 0.75 * expected < spread < 1.25 * expected  # the spread of a 100-sample std is 7%
    window = np.sqrt(noise2) * (2 * half + 1)  # what summing the whole window would give: 100 ADC
    assert spread < 0.4 * window


def test_spot_at_the_frame_border_and_a_dead_pixel_in_it() -> None:
    """A spot cut by the frame edge gives the light on the sensor; an unusable pixel is filled by the model."""
    mean = np.full(SHAPE, 100, np.float32)
    sigma = np.full(SHAPE, 2, np.float32)
    sigma[51, 80] = 50  # noisy pixel at the centre of the second spot
    truth = [(1.0, 2.0, 2.5), (80.0, 51.0, 3.0)]
    images = [2000 * _gauss(SHAPE, cx, cy, s) for cx, cy, s in truth]
    frame = mean + sum(images)
    frame[51, 80] += 500  # and it fires
    raw = np.round(frame).astype(np.uint16)
    feats = _feats([(cx + 0.3, cy + 0.2, s, s, 0.0, 6, 0.0) for cx, cy, s in truth])
    got, want = _run(raw, mean, sigma, np.zeros(SHAPE[0]), feats)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    on_sensor = [img.sum() for img in images]
    assert on_sensor[0] < 0.7 * 2000  # a third of the corner spot is off the sensor
    assert abs(got[0] / on_sensor[0] - 1) < 0.05 and abs(got[1] / on_sensor[1] - 1) < 0.02


def test_chain_fills_sc_spotlight_for_a_tiny_spot() -> None:
    """Through the whole chain: a 2x2-pixel spot (one macro-pixel) and an ordinary spot get their light."""
    mean = np.full(SHAPE, 100, np.float32)
    sigma = np.full(SHAPE, 2, np.float32)
    calib = Calibration.from_pedestal(Pedestal(mean, sigma, 0, "C", 10), CFG)
    frame = mean + 1500 * _gauss(SHAPE, 60.0, 70.0, 2.5)
    frame[150:152, 200:202] += 75  # one lit macro-pixel (the 2x2 median removes single pixels)
    cfg = CFG.replace(min_samples=1, min_samples_tail=1, min_neighbors_average=0)
    res = FrameReconstructor(calib, cfg)(np.round(frame).astype(np.uint16))
    spot = res.features[:, F_SPOTLIGHT]
    assert res.n_clusters == 2 and np.isfinite(spot).all()
    by_x = res.features[:, F_XMEAN].argsort()
    np.testing.assert_allclose(spot[by_x], [1500, 300], rtol=0.05)


@pytest.mark.parametrize("seed", range(4))
def test_gaussian_window_recurrence_equals_exp(seed: int) -> None:
    """The row recurrence of spot_light gives exp(-q/2) over the window, also for a centre outside it."""
    rng = np.random.default_rng(seed)
    for _ in range(50):
        lam = rng.uniform(0.25, 64.0, 2)
        phi = rng.uniform(-np.pi, np.pi)
        rot = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
        ia, ib, ic = np.linalg.inv(rot @ np.diag(lam) @ rot.T)[[0, 0, 1], [0, 1, 1]]
        ny, nx = rng.integers(1, 50, 2)
        oy, ox = rng.uniform(-10, ny + 10), rng.uniform(-10, nx + 10)
        got = np.empty((ny, nx))
        _gauss_window(ia, ib, ic, oy, ox, got)
        dy, dx = np.mgrid[:ny, :nx]
        dy, dx = dy - oy, dx - ox
        want = np.exp(-0.5 * (ia * dx * dx + 2 * ib * dx * dy + ic * dy * dy))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
