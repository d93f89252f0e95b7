"""Bad input gives a clear error naming the file (and frame) and leaves no output behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from reco.errors import RecoInputError
from reco.pedestal import Pedestal, load_pedestal, write_pedestal
from reco.rawfile import write_raw_run
from reco.runner import reconstruct_run
from reco.simulate import SimOutput


def _no_output(d: Path) -> None:
    assert not (d / "out.h5").exists()
    assert not list(d.glob(".*.partial"))


def test_truncated_file(small_run: tuple[SimOutput, Path], tmp_path: Path) -> None:
    sim, ped = small_run
    data = sim.run.read_bytes()
    bad = tmp_path / "run02001.h5"
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(RecoInputError, match=r"run02001\.h5.*(truncated|frame \d+)"):
        reconstruct_run(bad, ped, tmp_path / "out.h5")
    _no_output(tmp_path)


def test_corrupt_frame_names_frame(small_run: tuple[SimOutput, Path], tmp_path: Path) -> None:
    sim, ped = small_run
    bad = tmp_path / "run02001.h5"
    shutil.copy(sim.run, bad)
    with h5py.File(bad, "r") as f:
        offset = f["frames"].id.get_chunk_info(5).byte_offset
    with open(bad, "r+b") as fh:  # scribble over the compressed chunk of frame 5
        fh.seek(offset)
        fh.write(b"\xff" * 64)
    with pytest.raises(RecoInputError, match=r"run02001\.h5: frame 5"):
        reconstruct_run(bad, ped, tmp_path / "out.h5", workers=2)
    _no_output(tmp_path)


def test_frame_shape_differs_from_pedestal(small_run: tuple[SimOutput, Path], tmp_path: Path) -> None:
    sim, ped = small_run
    raw = write_raw_run(
        tmp_path / "r.h5", np.zeros((2, 128, 320), np.uint16), run=5, shape=(128, 320), camera="SIM-CAM"
    )
    with pytest.raises(
        RecoInputError, match=r"r\.h5: pedestal .* shape \(256, 320\), frames have shape \(128, 320\)"
    ):
        reconstruct_run(raw, ped, tmp_path / "out.h5")
    _no_output(tmp_path)


def test_declared_shape_mismatch(tmp_path: Path) -> None:
    raw = write_raw_run(tmp_path / "r.h5", np.zeros((2, 64, 64), np.uint16), run=5, shape=(64, 64))
    with h5py.File(raw, "r+") as f:
        f.attrs["width"] = 96
    ped = write_pedestal(
        tmp_path / "p.h5",
        Pedestal(np.zeros((64, 64), np.float32), np.ones((64, 64), np.float32), 4, "ORCA-Fusion", 2),
    )
    with pytest.raises(RecoInputError, match=r"r\.h5: frames have shape \(64, 64\) .* 64 x 96"):
        reconstruct_run(raw, ped, tmp_path / "out.h5")
    _no_output(tmp_path)


def test_pedestal_of_another_camera(small_run: tuple[SimOutput, Path], tmp_path: Path) -> None:
    sim, ped_path = small_run
    ped = load_pedestal(ped_path)
    other = write_pedestal(tmp_path / "other.h5", Pedestal(ped.mean, ped.sigma, 99, "ORCA-Flash", 10))
    with pytest.raises(
        RecoInputError, match="other.h5 is from camera 'ORCA-Flash', the run is from 'SIM-CAM'"
    ):
        reconstruct_run(sim.run, other, tmp_path / "out.h5")
    _no_output(tmp_path)


def test_nan_in_pedestal(small_run: tuple[SimOutput, Path], tmp_path: Path) -> None:
    sim, ped_path = small_run
    ped = load_pedestal(ped_path)
    sigma = ped.sigma.copy()
    sigma[3, 7] = np.nan
    bad = write_pedestal(tmp_path / "nan.h5", Pedestal(ped.mean, sigma, ped.run, ped.camera, 10))
    with pytest.raises(RecoInputError, match=r"nan\.h5: 'sigma' has 1 NaN/inf pixels \(first at x=7, y=3\)"):
        reconstruct_run(sim.run, bad, tmp_path / "out.h5")
    _no_output(tmp_path)


def test_nan_in_frame(tmp_path: Path) -> None:
    frames = np.full((4, 64, 64), 100.0, np.float32)
    frames[2, 10, 10] = np.nan
    raw = write_raw_run(tmp_path / "f.h5", frames, run=5, shape=(64, 64), dtype=np.float32)
    ped = write_pedestal(
        tmp_path / "p.h5",
        Pedestal(np.full((64, 64), 100, np.float32), np.ones((64, 64), np.float32), 4, "ORCA-Fusion", 2),
    )
    with pytest.raises(RecoInputError, match=r"f\.h5: frame 2 has 1 NaN/inf pixels"):
        reconstruct_run(raw, ped, tmp_path / "out.h5")
    _no_output(tmp_path)


def test_not_a_run_file_and_missing_files(small_run: tuple[SimOutput, Path], tmp_path: Path) -> None:
    sim, ped = small_run
    with pytest.raises(RecoInputError, match="no 'frames' dataset"):
        reconstruct_run(ped, ped, tmp_path / "out.h5")
    with pytest.raises(RecoInputError, match="no 'mean' dataset"):
        reconstruct_run(sim.run, sim.truth, tmp_path / "out.h5")
    with pytest.raises(RecoInputError, match=r"missing\.h5: pedestal file not found"):
        reconstruct_run(sim.run, tmp_path / "missing.h5", tmp_path / "out.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(RecoInputError, match=r"junk\.h5: cannot open raw run file"):
        reconstruct_run(tmp_path / "junk.h5", ped, tmp_path / "out.h5")
    _no_output(tmp_path)


def test_existing_output_survives_a_failed_run(small_run: tuple[SimOutput, Path], tmp_path: Path) -> None:
    sim, ped = small_run
    good = reconstruct_run(sim.run, ped, tmp_path / "out.h5").output
    before = good.read_bytes()
    frames = np.full((2, 256, 320), 100.0, np.float32)
    frames[1, 0, 0] = np.nan
    bad = write_raw_run(
        tmp_path / "bad.h5", frames, run=5, shape=(256, 320), dtype=np.float32, camera="SIM-CAM"
    )
    with pytest.raises(RecoInputError, match="frame 1"):
        reconstruct_run(bad, ped, good)
    assert good.read_bytes() == before
    assert not list(tmp_path.glob(".*.partial"))


def test_output_must_not_overwrite_inputs_or_miss_its_directory(
    small_run: tuple[SimOutput, Path], tmp_path: Path
) -> None:
    sim, ped = small_run
    with pytest.raises(RecoInputError, match="would overwrite an input file"):
        reconstruct_run(sim.run, ped, ped)
    with pytest.raises(RecoInputError, match="output directory does not exist"):
        reconstruct_run(sim.run, ped, tmp_path / "no" / "out.h5")
