"""HDF5 formats: raw run, pedestal and output files, readable with h5py and pandas."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from reco.config import RecoConfig, config_from_mapping, load_config
from reco.errors import RecoInputError
from reco.features import FEATURES
from reco.output import read_attrs, read_table
from reco.pedestal import compute_pedestal, load_pedestal, write_pedestal
from reco.rawfile import RawRun, write_raw_run
from reco.runner import reconstruct_run
from reco.simulate import SimOutput


def test_raw_roundtrip_non_square_with_pmt(tmp_path: Path, rng: np.random.Generator) -> None:
    frames = rng.integers(0, 4000, (3, 48, 80), dtype=np.uint16)
    pmt = rng.normal(size=(3, 4, 100)).astype(np.float32)
    p = write_raw_run(tmp_path / "run00042.h5", frames, run=42, shape=(48, 80), camera="ORCA-Quest", pmt=pmt)
    with h5py.File(p) as f:
        d = f["frames"]
        assert d.chunks == (1, 48, 80) and d.dtype == np.uint16
        assert d.compression is not None or d._filters  # compressed
        assert f.attrs["run"] == 42 and f["pmt"].shape == (3, 4, 100)
    with RawRun(p) as raw:
        assert (raw.run, raw.shape, raw.n_frames, raw.camera) == (42, (48, 80), 3, "ORCA-Quest")
        np.testing.assert_array_equal(raw.read(2), frames[2])  # direct Blosc chunk path
        raw._direct = False
        np.testing.assert_array_equal(raw.read(1), frames[1])  # regular HDF5 read
        with pytest.raises(RecoInputError, match=r"run00042\.h5: frame 3 out of range"):
            raw.read(3)
    assert not list(tmp_path.glob(".*partial"))


def test_pedestal_is_mean_and_sigma(tmp_path: Path, rng: np.random.Generator) -> None:
    frames = rng.normal(100, 3, (10, 32, 48)).round().astype(np.uint16)
    p = write_raw_run(tmp_path / "run00007.h5", frames, run=7, shape=(32, 48))
    with RawRun(p) as raw:
        ped = compute_pedestal(raw, max_frames=8)
    np.testing.assert_allclose(ped.mean, frames[:8].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(ped.sigma, frames[:8].std(axis=0, ddof=1), rtol=1e-5)
    back = load_pedestal(write_pedestal(tmp_path / "ped.h5", ped, p))
    assert (back.run, back.n_frames, back.camera) == (7, 8, "ORCA-Fusion")
    np.testing.assert_array_equal(back.sigma, ped.sigma)


def test_output_tables_and_provenance(small_run: tuple[SimOutput, Path], tmp_path: Path) -> None:
    sim, ped = small_run
    out = reconstruct_run(sim.run, ped, tmp_path / "out.h5").output
    ev, cl, px = (read_table(out, t) for t in ("events", "clusters", "pixels"))
    assert list(cl.columns[:3]) == ["run", "event", "cluster"]
    assert set(FEATURES) <= set(cl.columns)
    assert len(ev) == 8 and ev["n_clusters"].sum() == len(cl) > 0
    assert (cl["run"] == 2001).all() and (cl["pixel_count"] == cl["sc_nhits"]).all()
    assert cl["pixel_offset"].iloc[-1] + cl["pixel_count"].iloc[-1] == len(px)
    first = px.iloc[cl["pixel_offset"].iloc[0] : cl["pixel_offset"].iloc[0] + cl["pixel_count"].iloc[0]]
    assert first["value"].sum() == pytest.approx(cl["sc_integral"].iloc[0], rel=1e-5)
    with h5py.File(out) as f:  # plain h5py works too
        assert isinstance(pd.DataFrame(f["clusters"][()]), pd.DataFrame)
    attrs = read_attrs(out)
    assert attrs["pedestal_run"] == 2000 and attrs["run"] == 2001
    assert attrs["input"]["name"] == sim.run.name and attrs["input"]["size"] == sim.run.stat().st_size
    assert attrs["input"]["adler32"] == f"{zlib.adler32(sim.run.read_bytes()):08x}"  # as Rucio computes it
    assert attrs["config"] == json.loads(RecoConfig().to_json())
    assert "reco" in attrs["software"] and json.loads(attrs["features"]) == list(FEATURES)


def test_config_toml_roundtrip_and_errors(tmp_path: Path) -> None:
    cfg = RecoConfig(eps=3, directional=True, nsigma=0.6)
    p = tmp_path / "c.toml"
    p.write_text(cfg.to_toml())
    assert load_config(p) == cfg
    assert config_from_mapping({"nsigma": 2}) == RecoConfig(nsigma=2.0)
    for bad, msg in [
        ({"clustering": {"epss": 1}}, "unknown parameter 'epss'"),
        ({"rebin": 0}, "rebin=0"),
        ({"eps": 1.5}, "eps must be an integer"),
        ({"wrong": {}}, "unknown section"),
        ({"directional": 1}, "true or false"),
    ]:
        with pytest.raises(RecoInputError, match=msg):
            config_from_mapping(bad)
    p.write_text("eps = [")
    with pytest.raises(RecoInputError, match="invalid TOML"):
        load_config(p)


def test_latest_pedestal_run_is_numeric_and_needs_events() -> None:
    from reco.pedestal import latest_pedestal_run

    runs = {9999: 200, 10001: 150, 10003: 50, 10010: 300}
    assert latest_pedestal_run(10005, runs) == 10001  # 10003 has too few events; numeric, not text, order
    assert latest_pedestal_run(100000, runs) == 10010
    with pytest.raises(RecoInputError, match="run 9000: no pedestal run"):
        latest_pedestal_run(9000, runs)
