"""The numba chain gives the same clusters and features as the numpy/scipy/scikit-learn oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

from reco.config import RecoConfig
from reco.dbscan import grid_dbscan, seeded_clusters
from reco.features import NF, gather_pixels
from reco.frame import Calibration, FrameReconstructor
from reco.pedestal import Pedestal
from reco.simulate import SimConfig, generate_events, make_camera
from tests.reco import oracle


def _frames(seed: int, height: int, width: int, n: int):
    cfg = SimConfig(height=height, width=width, n_frames=n, seed=seed, empty_fraction=0.0, mean_objects=4)
    cam = make_camera(cfg)
    ped = Pedestal(cam.mean.astype(np.float32), cam.sigma.astype(np.float32), 0, cfg.camera, 100)
    return ped, list(generate_events(cfg, cam, []))


def _angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Difference of axis angles modulo pi."""
    return np.abs(np.angle(np.exp(2j * (a - b)))) / 2


def assert_same(res, ref) -> None:
    """Same points, same partition (ARI 1), same features and pixels."""
    assert res.spark == ref.spark
    for got, want in zip(res.points, ref.points, strict=True):
        np.testing.assert_array_equal(got, want)
    if len(ref.labels):
        assert adjusted_rand_score(ref.labels, res.labels) == 1.0
    np.testing.assert_array_equal(res.labels, ref.labels)
    assert res.features.shape == ref.features.shape
    theta = 10
    cols = [i for i in range(NF) if i != theta]
    np.testing.assert_allclose(res.features[:, cols], ref.features[:, cols], rtol=1e-6, atol=1e-6)
    # theta is defined modulo pi; it is ill-defined for round clusters
    round_ = np.isclose(ref.features[:, 13], ref.features[:, 14], rtol=1e-6)
    assert (_angle_diff(res.features[~round_, theta], ref.features[~round_, theta]) < 1e-6).all()
    for c, pix in enumerate(ref.pixels):
        a, b = res.offsets[c], res.offsets[c + 1]
        got = np.c_[res.px[a:b], res.py[a:b], res.pv[a:b]]
        np.testing.assert_array_equal(got[np.lexsort(got.T[:2])], pix[np.lexsort(pix.T[:2])])


@pytest.mark.parametrize(("seed", "height", "width"), [(1, 256, 256), (2, 384, 512), (3, 512, 384)])
def test_numba_chain_matches_oracle(seed: int, height: int, width: int) -> None:
    cfg = RecoConfig()
    ped, frames = _frames(seed, height, width, 3)
    calib = Calibration.from_pedestal(ped, cfg)
    rec = FrameReconstructor(calib, cfg)
    n_clusters = 0
    for event, raw in enumerate(frames):
        res = rec(raw, event)
        ref = oracle.reconstruct(raw, calib.mean, calib.threshold, cfg, event, ped.sigma)
        assert_same(res, ref)
        n_clusters += res.n_clusters
    assert n_clusters >= 3  # the comparison is not vacuous


@pytest.mark.parametrize(("seed", "eps_tail"), [(4, 2), (5, 0)])
def test_directional_matches_oracle(seed: int, eps_tail: int) -> None:
    cfg = RecoConfig(directional=True, seed=seed, eps_tail=eps_tail)
    ped, frames = _frames(seed, 384, 512, 3)
    calib = Calibration.from_pedestal(ped, cfg)
    rec = FrameReconstructor(calib, cfg)
    for event, raw in enumerate(frames):
        assert_same(
            rec(raw, event), oracle.reconstruct(raw, calib.mean, calib.threshold, cfg, event, ped.sigma)
        )


def test_other_parameters_match_oracle() -> None:
    cfg = RecoConfig(
        rebin=2,
        eps=3,
        min_samples=12,
        eps_tail=4,
        min_samples_tail=4,
        light_ring=2,
        row_clip=2.0,
        nsigma=1.5,
        min_neighbors_average=0.0,
        macro_threshold=1.0,
    )
    ped, frames = _frames(9, 256, 256, 2)
    calib = Calibration.from_pedestal(ped, cfg)
    rec = FrameReconstructor(calib, cfg)
    for event, raw in enumerate(frames):
        assert_same(
            rec(raw, event), oracle.reconstruct(raw, calib.mean, calib.threshold, cfg, event, ped.sigma)
        )


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 25), st.floats(0.05, 0.6))
def test_grid_dbscan_equals_sklearn(seed: int, eps: int, min_samples: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    occupied = rng.random((24, 17)) < density
    ys, xs = np.nonzero(occupied)
    ws = rng.uniform(0.5, 8.0, len(ys)).astype(np.float32)
    cfg = RecoConfig(eps=eps, min_samples=min_samples)
    labels, _, nlab = grid_dbscan(
        ys.astype(np.int32), xs.astype(np.int32), ws, 24, 17, eps, float(min_samples)
    )
    ref = oracle.dbscan(ys, xs, ws, cfg)
    np.testing.assert_array_equal(labels, ref)
    assert nlab == (ref.max() + 1 if len(ref) else 0)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 9), st.integers(1, 9), st.floats(0.0, 1.0)
)
def test_preprocessing_equals_numpy(seed: int, rebin: int, bh: int, bw: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    shape = (bh * rebin, bw * rebin)
    mean = rng.normal(100, 3, shape).astype(np.float32)
    thr = rng.uniform(0, 4, shape).astype(np.float32)
    raw = (mean + np.where(rng.random(shape) < density, rng.exponential(30, shape), 0)).astype(np.uint16)
    raw[rng.random(shape) < 0.01] = 6000  # above cimax
    cfg = RecoConfig(rebin=rebin, spark_veto=False)
    ped = Pedestal(mean, thr / np.float32(cfg.nsigma), 0, "C", 2)
    calib = Calibration.from_pedestal(ped, cfg)
    rec = FrameReconstructor(calib, cfg)
    rec(raw)
    zs, macro, _ = oracle.preprocess(raw, calib.mean, calib.threshold, cfg)
    np.testing.assert_array_equal(rec.macro, macro)
    # every macro-pixel as one cluster: the zero-suppressed pixels of the whole frame
    ys, xs = (a.ravel().astype(np.int32) for a in np.mgrid[:bh, :bw])
    off, px, py, pv, _ = gather_pixels(
        raw, calib.mean, calib.threshold, cfg.cimax, ys, xs, np.zeros(bh * bw, np.int32), 1, rebin
    )
    got = np.zeros(shape, np.float32)
    got[py, px] = pv
    np.testing.assert_array_equal(got, zs)
    assert off[1] == np.count_nonzero(zs)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 3), st.integers(2, 20), st.floats(0.05, 0.6)
)
def test_two_pass_dbscan_equals_sklearn(
    seed: int, eps: int, extra: int, min_samples: int, density: float
) -> None:
    rng = np.random.default_rng(seed)
    ys, xs = np.nonzero(rng.random((24, 17)) < density)
    ws = rng.uniform(0.5, 8.0, len(ys)).astype(np.float32)
    cfg = RecoConfig(
        eps=eps, min_samples=min_samples, eps_tail=eps + extra, min_samples_tail=max(1, min_samples // 3)
    )
    labels, core, nlab = grid_dbscan(
        ys.astype(np.int32), xs.astype(np.int32), ws, 24, 17, eps, float(min_samples)
    )
    if nlab:
        tail, _, ntail = grid_dbscan(ys.astype(np.int32), xs.astype(np.int32), ws, 24, 17, *cfg.tail_pass)
        labels, nlab = seeded_clusters(tail, ntail, core)
    np.testing.assert_array_equal(labels, oracle.two_pass_dbscan(ys, xs, ws, cfg))
