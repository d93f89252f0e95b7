"""Physics behaviour: truth metrics, spark veto, hot pixels, directional regrowth."""

from __future__ import annotations

import numpy as np
import pytest

from reco.config import RecoConfig
from reco.frame import Calibration, FrameReconstructor
from reco.metrics import compute_metrics
from reco.pedestal import Pedestal
from reco.runner import reconstruct_run
from reco.simulate import SimConfig, simulate
from tests.reco.conftest import make_pedestal


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("phys")
    sim = simulate(
        d,
        SimConfig(
            height=512, width=512, n_frames=30, pedestal_frames=20, seed=21, run=501, empty_fraction=0.3
        ),
    )
    out = reconstruct_run(sim.run, make_pedestal(sim, d / "ped.h5"), d / "out.h5", workers=2).output
    return compute_metrics(out, sim.truth)


def test_efficiency_and_fakes(metrics: dict) -> None:
    assert metrics["tracks"] > 40
    assert metrics["efficiency"] > 0.85 and metrics["clean_efficiency"] > 0.75
    assert metrics["fragment_rate"] < 0.05
    assert metrics["empty_frames"] > 3 and metrics["fakes_per_empty_frame"] == 0


def test_energy_is_linear(metrics: dict) -> None:
    fit = metrics["energy_fit"]
    assert fit["pearson_r"] > 0.99
    assert 40 < fit["slope_adc_per_kev"] < 70  # 60 photons/keV, 1 ADC/photon, minus zero-suppressed tails
    assert fit["resolution"] < 0.15


def _flat(shape: tuple[int, int]) -> tuple[Calibration, np.ndarray]:
    ped = Pedestal(np.full(shape, 100, np.float32), np.full(shape, 2, np.float32), 0, "C", 10)
    frame = np.random.default_rng(0).normal(100, 2, shape)
    return Calibration.from_pedestal(ped, RecoConfig()), frame


def test_spark_veto() -> None:
    calib, frame = _flat((128, 128))
    rec = FrameReconstructor(calib, RecoConfig())
    res = rec(np.clip(frame + 300, 0, 65535).astype(np.uint16))
    assert res.spark and res.n_clusters == 0
    res = FrameReconstructor(calib, RecoConfig(spark_veto=False))(
        np.clip(frame + 300, 0, 65535).astype(np.uint16)
    )
    assert not res.spark and res.n_clusters >= 1


def test_cimax_drops_saturated_pixels() -> None:
    calib, frame = _flat((128, 128))
    frame[60:68, 60:68] = 6000.0  # above cimax
    res = FrameReconstructor(calib, RecoConfig())(frame.astype(np.uint16))
    assert res.n_clusters == 0


def test_hot_pixel_in_pedestal_is_not_a_cluster() -> None:
    shape = (128, 128)
    mean = np.full(shape, 100, np.float32)
    sigma = np.full(shape, 2, np.float32)
    mean[40:42, 40:42], sigma[40:42, 40:42] = 1500, 30
    rng = np.random.default_rng(1)
    frame = rng.normal(mean, sigma)
    rec = FrameReconstructor(
        Calibration.from_pedestal(Pedestal(mean, sigma, 0, "C", 10), RecoConfig()), RecoConfig()
    )
    assert rec(frame.astype(np.uint16)).n_clusters == 0


def test_directional_rejoins_a_broken_track() -> None:
    calib, frame = _flat((256, 256))
    ys = np.arange(20, 236)
    on = (ys < 120) | (ys >= 140)  # a 20-pixel gap (5 macro-pixels) in a straight vertical track
    for dx in (-1, 0, 1):
        frame[ys[on], 100 + dx] += 40
    raw = frame.astype(np.uint16)
    plain = FrameReconstructor(calib, RecoConfig())(raw)
    cfg = RecoConfig(directional=True, dir_radius=8.0)
    regrown = FrameReconstructor(calib, cfg)(raw)
    assert plain.n_clusters == 2
    assert regrown.n_clusters == 1
    assert regrown.features[0, 11] > 200  # sc_length spans the gap
    again = FrameReconstructor(calib, cfg)(raw)
    np.testing.assert_array_equal(again.labels, regrown.labels)


@pytest.mark.parametrize(("height", "width"), [(32, 32), (48, 256), (256, 40)])
def test_simulation_fits_tiny_and_thin_frames(tmp_path, height: int, width: int) -> None:
    from reco.metrics import load_truth

    sim = simulate(
        tmp_path,
        SimConfig(
            height=height,
            width=width,
            n_frames=6,
            pedestal_frames=2,
            empty_fraction=0.0,
            mean_objects=5,
            seed=3,
        ),
    )
    tracks, pixels, _ = load_truth(sim.truth)
    assert len(tracks) > 0
    assert pixels["x"].max() < width and pixels["y"].max() < height
