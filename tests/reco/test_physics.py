"""Physics behaviour: truth metrics, spark veto, hot pixels, tail pass, light sums, directional regrowth."""

from __future__ import annotations

import numpy as np
import pytest

from reco.config import RecoConfig
from reco.features import FEATURES
from reco.frame import Calibration, FrameReconstructor
from reco.metrics import compute_metrics
from reco.pedestal import Pedestal
from reco.runner import reconstruct_run
from reco.simulate import SimConfig, simulate
from tests.reco.conftest import make_pedestal


def _metrics(d, cfg: SimConfig) -> dict:
    sim = simulate(d, cfg)
    out = reconstruct_run(sim.run, make_pedestal(sim, d / "ped.h5"), d / "out.h5", workers=2).output
    return compute_metrics(out, sim.truth)


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The easy set (the first generator)."""
    cfg = SimConfig.preset(
        "easy", height=512, width=512, n_frames=30, pedestal_frames=20, seed=21, run=501, empty_fraction=0.3
    )
    return _metrics(tmp_path_factory.mktemp("phys"), cfg)


@pytest.fixture(scope="module")
def lime(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The default (lime) generator: spots, curved faint electron recoils, nuclear recoils."""
    cfg = SimConfig(
        height=1024, width=1024, n_frames=40, pedestal_frames=20, seed=23, run=601, mean_objects=3
    )
    return _metrics(tmp_path_factory.mktemp("lime"), cfg)


def test_lime_kinds_are_found_clean_with_unbiased_light(lime: dict) -> None:
    kinds = lime["by_kind"]
    assert set(kinds) == {"er", "fe55", "nr"} and all(k["tracks"] >= 20 for k in kinds.values())
    assert lime["clean_efficiency"] > 0.9 and kinds["er"]["clean_efficiency"] > 0.85
    assert kinds["er"]["fragment_rate"] < 0.05
    assert lime["fakes_per_frame"] <= 0.05
    for k in kinds.values():
        assert abs(k["response"] - 1) < 0.03  # sc_light against the true light
    fe = kinds["fe55"]  # the spot light: unbiased, and less spread than sc_light on 55Fe spots
    assert abs(fe["spot_response"] - 1) < 0.02 and fe["spot_resolution"] < 0.9 * fe["resolution"]
    # the zero-suppressed integral is biased up by the noise it keeps on spots
    assert kinds["fe55"]["integral_response"] > kinds["fe55"]["response"] + 0.01


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


def _faint_bridge(frame: np.ndarray, amp: float) -> None:
    """A bright vertical track whose middle 40 rows are only 2 pixels wide and `amp` ADC high."""
    ys = np.arange(20, 236)
    faint = (ys >= 110) & (ys < 150)
    for dx in (-1, 0, 1):
        frame[ys[~faint], 100 + dx] += 40
    for dx in (0, 1):
        frame[ys[faint], 100 + dx] += amp


def test_tail_pass_joins_a_faint_thin_section() -> None:
    calib, frame = _flat((256, 256))
    _faint_bridge(frame, 6.0)
    raw = frame.astype(np.uint16)
    single = FrameReconstructor(calib, RecoConfig(eps_tail=0))(raw)
    two = FrameReconstructor(calib, RecoConfig())(raw)
    assert single.n_clusters == 2
    assert two.n_clusters == 1 and two.features[0, 11] > 200  # sc_length spans the whole track


def test_tail_pass_needs_a_seed() -> None:
    calib, frame = _flat((256, 256))
    frame[110:150, 100:102] += 5.0  # a faint blob: dense enough for the tail pass only
    raw = frame.astype(np.uint16)
    assert FrameReconstructor(calib, RecoConfig())(raw).n_clusters == 0
    tail_only = RecoConfig(min_samples=6, min_samples_tail=6)
    assert FrameReconstructor(calib, tail_only)(raw).n_clusters == 1


def test_light_is_unbiased_by_row_offsets_zero_suppression_and_hot_pixels() -> None:
    shape = (256, 256)
    rng = np.random.default_rng(3)
    mean = np.full(shape, 100, np.float32)
    sigma = np.full(shape, 2, np.float32)
    mean[128, 131], sigma[128, 131] = 1000, 30  # a hot pixel inside the spot
    calib = Calibration.from_pedestal(Pedestal(mean, sigma, 0, "C", 10), RecoConfig())
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    spot = 3000.0 * np.exp(-((yy - 128.5) ** 2 + (xx - 128.5) ** 2) / (2 * 3.0**2)) / (2 * np.pi * 3.0**2)
    frame = mean + rng.normal(0, 2, shape) + spot + rng.normal(0, 1.0, (shape[0], 1))  # row offsets
    frame[128, 131] += 400  # the hot pixel fires
    res = FrameReconstructor(calib, RecoConfig())(np.clip(frame, 0, 65535).astype(np.uint16))
    assert res.n_clusters == 1
    light = res.features[0, FEATURES.index("sc_light")]
    integral = res.features[0, FEATURES.index("sc_integral")]
    assert abs(light / 3000 - 1) < 0.03
    assert integral - light > 150  # the firing hot pixel is in the zero-suppressed sum


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
