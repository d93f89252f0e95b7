"""MIDAS run files: the published format byte by byte, reader/writer round trips, CYGNO frames, bad input."""

from __future__ import annotations

import gzip
import json
import struct
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from reco.convert import convert_midas
from reco.errors import RecoInputError
from reco.identity import file_identity
from reco.midas import (
    BANK_FLAGS,
    TID_DTYPES,
    CompressedSink,
    MidasFile,
    MidasWriter,
    odb_get,
    parse_odb,
)
from reco.midasrun import (
    CAMERA_SHAPES,
    DigitizerBoard,
    MidasRun,
    decode_digitizers,
    encode_digitizers,
    run_odb,
    write_midas_run,
)
from reco.output import read_attrs, read_table
from reco.pedestal import compute_pedestal, write_pedestal
from reco.rawfile import RawRun
from reco.runner import reconstruct_run
from reco.runsource import is_midas, open_run, prefetch, run_stem
from reco.simulate import SimConfig, SimOutput, simulate

SIM = SimConfig(height=64, width=96, n_frames=6, pedestal_frames=8, seed=3, run=1001, mean_objects=2.0)


def _u16(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65535, n, dtype=np.uint16)


def _no_output(d: Path, name: str = "out.h5") -> None:
    assert not (d / name).exists()
    assert not list(d.glob(".*.partial"))


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SimOutput]:
    """The same synthetic runs written as HDF5 raw and as MIDAS."""
    out = {}
    for fmt in ("hdf5", "midas"):
        out[fmt] = simulate(tmp_path_factory.mktemp(fmt), SIM, fmt=fmt)
    return out


@pytest.fixture(scope="module")
def ped(sims: dict[str, SimOutput], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pedestal file of the MIDAS pedestal run."""
    with open_run(sims["midas"].pedestal_run) as raw:
        return write_pedestal(tmp_path_factory.mktemp("ped") / "ped.h5", compute_pedestal(raw))


# ------------------------------------------------------------------------------------ the format itself


def _event(event_id: int, mask: int, serial: int, stamp: int, payload: bytes) -> bytes:
    return struct.pack("<HHIII", event_id, mask, serial, stamp, len(payload)) + payload


def _bank(fmt: int, name: bytes, tid: int, data: bytes) -> bytes:
    head = {16: struct.pack("<4sHH", name, tid, len(data)), 32: struct.pack("<4sII", name, tid, len(data)),
            64: struct.pack("<4sIII", name, tid, len(data), 0)}[fmt]  # fmt: skip
    return head + data + b"\0" * (-len(data) % 8)


def _data_event(fmt: int, serial: int, banks: list[bytes]) -> bytes:
    body = b"".join(banks)
    flags = {16: 0x01, 32: 0x11, 64: 0x31}[fmt]
    return _event(1, 1, serial, 1700000000 + serial, struct.pack("<II", len(body), flags) + body)


def test_hand_built_file_is_read_field_by_field(tmp_path: Path) -> None:
    odb = b'{"Runinfo": {"Run number": 4242, "Run number/key": {"type": 7}}}\n\0'
    words = np.array([1, 2, 65535], "<u2").tobytes()  # 6 bytes: padded to 8
    floats = np.array([1.5, -2.25], "<f4").tobytes()
    doubles = np.array([3.125], "<f8").tobytes()
    data = (
        _event(0x8000, 0x494D, 4242, 1700000000, odb)
        + _data_event(16, 0, [_bank(16, b"WRD0", 4, words), _bank(16, b"FLT0", 9, floats)])
        + _data_event(32, 1, [_bank(32, b"DBL0", 10, doubles), _bank(32, b"INT0", 7, struct.pack("<i", -7))])
        + _data_event(64, 2, [_bank(64, b"CAM0", 4, words), _bank(64, b"STR0", 12, b"hello\0")])
        + _event(0x8002, 0, 0, 1700000003, b"[mhttpd] run started\0")
        + _event(0x8001, 0x494D, 4242, 1700000004, b"<?xml version='1.0'?><odb root='/'></odb>\0")
    )
    path = tmp_path / "run04242.mid"
    path.write_bytes(data)
    with MidasFile(path) as mf:
        evs = list(mf)
    assert [e.event_id for e in evs] == [0x8000, 1, 1, 1, 0x8002, 0x8001]
    assert [e.serial for e in evs] == [4242, 0, 1, 2, 0, 4242]
    assert [e.timestamp for e in evs] == [
        1700000000,
        1700000000,
        1700000001,
        1700000002,
        1700000003,
        1700000004,
    ]
    assert evs[0].is_bor and evs[-1].is_eor and evs[4].is_message and evs[0].trigger_mask == 0x494D
    assert evs[4].text() == "[mhttpd] run started"
    assert parse_odb(evs[0].payload.tobytes()) == {"Runinfo": {"Run number": 4242}}  # '/key' metadata dropped
    b16, b32, b64 = evs[1].banks(), evs[2].banks(), evs[3].banks()
    assert [(b.name, b.tid, b.size) for b in b16] == [("WRD0", 4, 6), ("FLT0", 9, 8)]
    assert b16[0].array().tolist() == [1, 2, 65535] and b16[1].array().tolist() == [1.5, -2.25]
    assert b32[0].array().tolist() == [3.125] and b32[1].array().tolist() == [-7]
    assert [b.name for b in b64] == ["CAM0", "STR0"] and b64[1].text() == "hello"
    assert b64[0].array().dtype == np.dtype("<u2") and b64[0].array().tolist() == [1, 2, 65535]


@pytest.mark.parametrize("fmt", [16, 32, 64])
def test_writer_bytes_follow_the_format(tmp_path: Path, fmt: int) -> None:
    path = tmp_path / "w.mid"
    with CompressedSink(path) as sink:
        w = MidasWriter(sink, 77, {"Runinfo": {"Run number": 77}}, bank_format=fmt, timestamp=123)
        w.write_event([("ABC1", np.array([1, 2, 3], "<u2")), ("XYZ2", np.array([7.5], "<f8"))], serial=5)
        w.finish({"Runinfo": {"Run number": 77}})
    raw = path.read_bytes()
    event_id, mask, serial, stamp, size = struct.unpack_from("<HHIII", raw, 0)
    assert (event_id, mask, serial, stamp) == (0x8000, 0x494D, 77, 123)
    assert json.loads(raw[16 : 16 + size].rstrip(b"\0")) == {"Runinfo": {"Run number": 77}}
    pos = 16 + size
    event_id, mask, serial, stamp, size = struct.unpack_from("<HHIII", raw, pos)
    assert (event_id, mask, serial, stamp) == (1, 1, 5, 123)
    all_size, flags = struct.unpack_from("<II", raw, pos + 16)
    assert flags == BANK_FLAGS[fmt] == {16: 0x01, 32: 0x11, 64: 0x31}[fmt]
    assert all_size == size - 8
    head = {16: "<4sHH", 32: "<4sII", 64: "<4sIII"}[fmt]
    hsize = struct.calcsize(head)
    b = pos + 24
    name, tid, bsize = struct.unpack_from(head, raw, b)[:3]
    assert (name, tid, bsize) == (b"ABC1", 4, 6)
    assert np.frombuffer(raw, "<u2", 3, b + hsize).tolist() == [1, 2, 3]
    assert raw[b + hsize + 6 : b + hsize + 8] == b"\0\0"  # padding to 8 bytes
    b += hsize + 8
    name, tid, bsize = struct.unpack_from(head, raw, b)[:3]
    assert (name, tid, bsize) == (b"XYZ2", 10, 8)
    assert np.frombuffer(raw, "<f8", 1, b + hsize)[0] == 7.5
    assert b + hsize + 8 == pos + 16 + size
    event_id, mask, serial = struct.unpack_from("<HHI", raw, pos + 16 + size)
    assert (event_id, mask, serial) == (0x8001, 0x494D, 77)


@pytest.mark.parametrize("suffix", [".mid", ".mid.gz", ".mid.lz4", ".mid.bz2"])
@pytest.mark.parametrize("fmt", [16, 32, 64])
def test_round_trip_every_type_and_size(tmp_path: Path, suffix: str, fmt: int) -> None:
    rng = np.random.default_rng(fmt)
    banks = []
    for tid, dt in TID_DTYPES.items():
        for n in (0, 1, 3, 5):  # sizes that need padding and an empty bank
            banks.append((f"T{tid:02d}{n}", rng.integers(0, 100, n).astype(dt), tid))
    path = tmp_path / f"run00009{suffix}"
    with CompressedSink(path) as sink:
        w = MidasWriter(sink, 9, {"a": 1}, bank_format=fmt, odb_format="xml" if fmt == 16 else "json")
        w.write_event(banks)
        w.write_message("note")
        w.write_event(banks[:3], event_id=2, trigger_mask=4)
        w.finish({"a": 2})
    with MidasFile(path) as mf:
        assert (
            mf.compression
            == {".mid": "none", ".mid.gz": "gzip", ".mid.lz4": "lz4", ".mid.bz2": "bz2"}[suffix]
        )
        evs = list(mf)
    assert parse_odb(evs[0].text()) == {"a": 1} and parse_odb(evs[-1].text()) == {"a": 2}
    got = evs[1].banks()
    assert [(b.name, b.tid) for b in got] == [(n, t) for n, _, t in banks]
    for b, (_, values, _) in zip(got, banks, strict=True):
        assert b.array().dtype == values.dtype and np.array_equal(b.array(), values)
    assert evs[2].is_message and evs[2].text() == "note"
    assert (evs[3].event_id, evs[3].trigger_mask, evs[3].serial) == (2, 4, 1)


def test_sixteen_bit_banks_refuse_a_frame(tmp_path: Path) -> None:
    with CompressedSink(tmp_path / "x.mid") as sink:
        w = MidasWriter(sink, 1, {}, bank_format=16)
        with pytest.raises(ValueError, match="do not fit a 16-bit bank"):
            w.write_event([("CAM0", np.zeros(2304 * 2304, np.uint16))])


def test_xml_odb_as_midas_writes_it() -> None:
    xml = b"""<?xml version="1.0" encoding="ISO-8859-1"?>
<!-- created by MXML on Fri Jan  4 10:51:22 2019 -->
<odb root="/" filename="run01001.xml" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <dir name="Runinfo">
    <key name="State" type="INT">3</key>
    <key name="Run number" type="INT">1001</key>
    <key name="Start time" type="STRING" size="32">Fri Jan  4 10:51:22 2019</key>
  </dir>
  <dir name="Configurations">
    <key name="DRS4Correction" type="BOOL">y</key>
    <keyarray name="DigitizerOffset" type="FLOAT" num_values="2">
      <value index="0">-0.3</value>
      <value index="1">0</value>
    </keyarray>
    <key name="Exposure" type="DOUBLE">0.3</key>
    <key name="Mask" type="DWORD">16</key>
  </dir>
</odb>
\0"""
    odb = parse_odb(xml)
    assert odb_get(odb, "/Runinfo/Run number") == 1001
    assert odb_get(odb, "/runinfo/start TIME") == "Fri Jan  4 10:51:22 2019"
    assert odb_get(odb, "/Configurations/DRS4Correction") is True
    assert odb_get(odb, "/Configurations/DigitizerOffset") == [-0.3, 0.0]
    assert odb_get(odb, "/Configurations/Mask") == 16
    assert odb_get(odb, "/Configurations/Missing", "x") == "x"
    with pytest.raises(ValueError, match="neither XML nor JSON"):
        parse_odb(b"ODB dump\0")


# ------------------------------------------------------------------------------------ CYGNO runs


def test_simulate_writes_the_same_frames_in_both_formats(sims: dict[str, SimOutput]) -> None:
    assert (
        sims["midas"].run.name == "run01001.mid.gz" and sims["midas"].pedestal_run.name == "run01000.mid.gz"
    )
    for which in ("run", "pedestal_run"):
        with RawRun(getattr(sims["hdf5"], which)) as h5, open_run(getattr(sims["midas"], which)) as mid:
            assert isinstance(mid, MidasRun)
            assert (mid.run, mid.camera, mid.shape, mid.run_type) == (
                h5.run,
                h5.camera,
                h5.shape,
                h5.run_type,
            )
            frames = list(mid.frames())
            assert mid.n_frames == h5.n_frames == len(frames)
            for i, f in enumerate(frames):
                assert np.array_equal(f, h5.read(i))
            assert mid.attrs["simulation"] == h5.attrs["simulation"]


def test_reco_from_midas_equals_reco_from_converted_hdf5(
    sims: dict[str, SimOutput], ped: Path, tmp_path: Path
) -> None:
    mid = sims["midas"].run
    h5 = convert_midas(mid, tmp_path / "run01001.h5")
    a = reconstruct_run(mid, ped, tmp_path / "a.h5", workers=2)
    b = reconstruct_run(h5, ped, tmp_path / "b.h5")
    c = reconstruct_run(sims["hdf5"].run, ped, tmp_path / "c.h5")
    assert a.n_events == b.n_events == SIM.n_frames and a.n_clusters == b.n_clusters > 0
    for table in ("events", "clusters", "pixels"):
        ta = read_table(a.output, table)
        assert ta.equals(read_table(b.output, table)) and ta.equals(read_table(c.output, table))
    attrs = read_attrs(a.output)
    assert attrs["input"] == file_identity(mid) and attrs["input"]["name"] == "run01001.mid.gz"
    assert attrs["n_frames_input"] == SIM.n_frames and attrs["run"] == 1001


def test_reco_output_is_byte_identical(sims: dict[str, SimOutput], ped: Path, tmp_path: Path) -> None:
    one = reconstruct_run(sims["midas"].run, ped, tmp_path / "one.h5", workers=1)
    two = reconstruct_run(sims["midas"].run, ped, tmp_path / "two.h5", workers=3)
    assert one.output.read_bytes() == two.output.read_bytes()


def test_default_output_name_and_max_frames(sims: dict[str, SimOutput], ped: Path, tmp_path: Path) -> None:
    src = tmp_path / "run01001.mid.gz"
    src.write_bytes(sims["midas"].run.read_bytes())
    starts: list[int] = []
    s = reconstruct_run(src, ped, max_frames=2, on_start=lambda n: starts.append(n))
    assert s.output == tmp_path / "run01001_reco.h5" and s.n_events == 2
    assert starts == [2]
    assert read_attrs(s.output)["n_frames_input"] == -1  # a streamed run cut short: total not read


def test_pedestal_from_midas_equals_pedestal_from_hdf5(sims: dict[str, SimOutput]) -> None:
    with open_run(sims["midas"].pedestal_run) as a, open_run(sims["hdf5"].pedestal_run) as b:
        pa, pb = compute_pedestal(a), compute_pedestal(b)
    assert np.array_equal(pa.mean, pb.mean) and np.array_equal(pa.sigma, pb.sigma)
    assert (pa.run, pa.camera, pa.n_frames) == (pb.run, pb.camera, pb.n_frames) == (1000, "SIM-CAM", 8)


def test_quest_frames_take_their_shape_from_the_odb(tmp_path: Path) -> None:
    frame = np.zeros(CAMERA_SHAPES["ORCA-Quest"], np.uint16)
    frame[5, 4000] = 7
    path = tmp_path / "run00012.mid.gz"
    odb = run_odb(12, (1, 1), "ORCA-Quest", "physics", 0.152, None)
    del odb["Configurations"]["Camera"]["Height"], odb["Configurations"]["Camera"]["Width"]
    with CompressedSink(path) as sink:
        w = MidasWriter(sink, 12, odb)
        w.write_event([("CAM0", frame)])
        w.finish(odb)
    run = MidasRun(path)
    assert run.shape == (2304, 4096) and run.camera == "ORCA-Quest"
    (got,) = list(run.frames())
    assert got.shape == (2304, 4096) and got[5, 4000] == 7


def test_non_square_frames_with_declared_height_and_width(tmp_path: Path) -> None:
    frames = [np.arange(48 * 80, dtype=np.uint16).reshape(48, 80) + i for i in range(3)]
    path = write_midas_run(tmp_path / "run00013.mid.gz", frames, run=13, shape=(48, 80), camera="ORCA-Quest")
    run = MidasRun(path)
    assert run.shape == (48, 80)
    assert all(np.array_equal(a, b) for a, b in zip(run.frames(), frames, strict=True))
    assert np.array_equal(run.read(2), frames[2])


def test_non_square_frame_without_declared_shape_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "run00014.mid"
    with CompressedSink(path) as sink:
        w = MidasWriter(sink, 14, {"Runinfo": {"Run number": 14}})
        w.write_event([("CAM0", np.zeros(48 * 80, np.uint16))])
        w.finish({})
    with pytest.raises(
        RecoInputError, match=r"run00014\.mid: event 1 \(serial 0\) bank CAM0: 7680 bytes is not a square"
    ):
        MidasRun(path)
    assert MidasRun(path, shape=(48, 80)).shape == (48, 80)
    # square pixel counts are Fusion/Flash frames
    sq = tmp_path / "run00015.mid"
    with CompressedSink(sq) as sink:
        w = MidasWriter(sink, 15, {})
        w.write_event([("CAM0", np.zeros(64 * 64, np.uint16))])
        w.finish({})
    assert MidasRun(sq).shape == (64, 64)


def test_pmt_and_slow_control_are_converted(tmp_path: Path) -> None:
    frames = [np.full((32, 48), i, np.uint16) for i in range(4)]
    pmt = [np.random.default_rng(i).integers(0, 4096, (4, 100)).astype(np.uint16) for i in range(4)]
    slow = [np.array([20.0 + i, 1013.0, 0.5], np.float32) for i in range(4)]
    names = ["T", "P", "Humidity"]
    src = write_midas_run(
        tmp_path / "run00020.mid.gz", frames, run=20, shape=(32, 48), camera="SIM-CAM", pmt=pmt,
        slow_control=slow, slow_names=names, attrs={"pedestal_run": 19},
    )  # fmt: skip
    out = convert_midas(src, tmp_path / "run00020.h5")
    with RawRun(out) as raw:
        assert (raw.run, raw.shape, raw.n_frames, raw.camera) == (20, (32, 48), 4, "SIM-CAM")
        assert raw.attrs["pedestal_run"] == 19 and raw.attrs["source_name"] == "run00020.mid.gz"
        assert all(np.array_equal(raw.read(i), frames[i]) for i in range(4))
    with h5py.File(out) as f:
        assert np.array_equal(f["pmt"][()], np.stack(pmt))
        board = f["digitizers/board0"]
        assert board.attrs["model"] == 1742 and board["waveforms"].shape == (4, 4, 100)
        assert board["frame"][()].tolist() == [0, 1, 2, 3]
        inpt = f["midas/banks/INPT"]
        assert list(inpt.attrs["names"]) == names and inpt.attrs["type"] == "FLOAT"
        assert np.array_equal(inpt["data"][()].reshape(4, 3), np.stack(slow))
        assert inpt["offsets"][()].tolist() == [0, 3, 6, 9, 12]
        assert f["midas/events"]["serial"].tolist() == [0, 1, 2, 3]
        assert f["midas/events"]["frame"].tolist() == [0, 1, 2, 3]
        assert json.loads(f["midas/odb_bor"][()])["Runinfo"]["Run number"] == 20
        assert json.loads(f["midas/odb_eor"][()])["Runinfo"]["Number of events"] == 4


def test_digitizer_banks_decode_boards() -> None:
    fast = DigitizerBoard(1742, 8, 2, 3, 12, 750, np.array([1, 2]), np.array([10, 11, 12]), np.array([5, 6, 7]),
                          np.arange(48, dtype=np.uint16).reshape(3, 2, 8))  # fmt: skip
    slow = DigitizerBoard(1720, 4, 1, 2, 12, 250, np.array([0]), np.array([20, 21]), np.zeros(0, np.int64),
                          np.arange(8, dtype=np.uint16).reshape(2, 1, 4) + 100)  # fmt: skip
    dgh, dig = encode_digitizers([fast, slow])
    # DGH0 words as the CYGNO DAQ lays them out
    assert dgh.tolist() == [
        2,
        1742,
        8,
        2,
        3,
        12,
        750,
        1,
        2,
        10,
        11,
        12,
        5,
        6,
        7,
        1720,
        4,
        1,
        2,
        12,
        250,
        0,
        20,
        21,
    ]
    a, b = decode_digitizers(dgh, dig)
    assert (a.model, a.n_triggers, a.sic.tolist(), a.ttt.tolist()) == (1742, 3, [5, 6, 7], [10, 11, 12])
    assert np.array_equal(a.waveforms, fast.waveforms) and np.array_equal(b.waveforms, slow.waveforms)
    assert b.sic.size == 0
    with pytest.raises(ValueError, match="board 1 needs 8 samples"):
        decode_digitizers(dgh, dig[:-1])
    with pytest.raises(ValueError, match="header ends inside board 1"):
        decode_digitizers(dgh[:17], dig)


def test_streaming_memory_does_not_grow_with_the_run(tmp_path: Path) -> None:
    shape = (128, 128)  # 32 kB frames
    frame_bytes = shape[0] * shape[1] * 2

    def peak(n: int) -> int:
        rng = np.random.default_rng(n)
        path = write_midas_run(tmp_path / f"run{n:05d}.mid.gz",
                               (rng.integers(90, 110, shape).astype(np.uint16) for _ in range(n)),
                               run=n, shape=shape)  # fmt: skip
        run = MidasRun(path)
        tracemalloc.start()
        try:
            with prefetch(run.frames(), depth=2) as frames:
                total = sum(int(f[0, 0]) >= 0 for f in frames)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert total == n

    small, big = peak(20), peak(400)  # 0.65 MB vs 13 MB of frames
    assert big < 12 * frame_bytes + 2_000_000  # a few frames in flight, not the run
    assert big < 1.5 * small + 200_000


# ------------------------------------------------------------------------------------ bad input


def test_truncated_gzip_stream(sims: dict[str, SimOutput], ped: Path, tmp_path: Path) -> None:
    data = sims["midas"].run.read_bytes()
    bad = tmp_path / "run01001.mid.gz"
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(
        RecoInputError, match=r"run01001\.mid\.gz: event \d+ .*truncated or corrupt gzip stream"
    ):
        reconstruct_run(bad, ped, tmp_path / "out.h5", workers=2)
    _no_output(tmp_path)
    with pytest.raises(RecoInputError, match=r"run01001\.mid\.gz: event \d+ .*truncated"):
        convert_midas(bad, tmp_path / "out.h5")
    _no_output(tmp_path)


def test_truncated_midas_event(sims: dict[str, SimOutput], ped: Path, tmp_path: Path) -> None:
    mid = gzip.decompress(sims["midas"].run.read_bytes())
    cut = mid[: len(mid) - 5000]  # inside the last frame's event
    for name, payload in (("run01001.mid", cut), ("run01001.mid.gz", gzip.compress(cut, mtime=0))):
        bad = tmp_path / name
        bad.write_bytes(payload)
        with pytest.raises(
            RecoInputError, match=rf"{name}: event 6 .*\(serial 5\): truncated MIDAS event: \d+ of \d+"
        ):
            reconstruct_run(bad, ped, tmp_path / "out.h5")
        _no_output(tmp_path)


def _file_with_event(tmp_path: Path, payload: bytes, odb: dict | None = None) -> Path:
    path = tmp_path / "run00030.mid"
    odb = odb if odb is not None else run_odb(30, (64, 96), "SIM-CAM", "physics", 0.152, None)
    head = json.dumps(odb).encode() + b"\0"
    path.write_bytes(_event(0x8000, 0x494D, 30, 0, head) + _event(1, 1, 0, 0, payload))
    return path


def test_bank_that_does_not_fit_the_frame_shape(ped: Path, tmp_path: Path) -> None:
    frame = np.zeros(64 * 96 - 2, "<u2").tobytes()
    path = _file_with_event(
        tmp_path, struct.pack("<II", len(_bank(32, b"CAM0", 4, frame)), 0x11) + _bank(32, b"CAM0", 4, frame)
    )
    with pytest.raises(
        RecoInputError,
        match=r"run00030\.mid: event 1 \(serial 0\) bank CAM0: 12284 bytes do not fit the frame shape 64x96",
    ):
        reconstruct_run(path, ped, tmp_path / "out.h5")
    _no_output(tmp_path)


def test_bad_bank_header(ped: Path, tmp_path: Path) -> None:
    good = _bank(32, b"CAM0", 4, np.zeros(64 * 96, "<u2").tobytes())
    cases = [
        (struct.pack("<II", len(good), 0x7) + good, r"bank header flags 0x7 are not"),
        (struct.pack("<II", len(good) + 8, 0x11) + good, r"declares \d+ bytes of banks, the event holds \d+"),
        (struct.pack("<II", len(good), 0x11) + struct.pack("<4sII", b"CAM0", 4, 99999) + good[12:],
         r"bank CAM0: 99999 bytes of data run past the end"),
        (struct.pack("<II", len(good), 0x11) + struct.pack("<4sII", b"C\x01M0", 4, 12288) + good[12:],
         r"invalid name"),
        (struct.pack("<II", len(good), 0x11) + struct.pack("<4sII", b"CAM0", 99, 12288) + good[12:],
         r"bank CAM0: unknown MIDAS type id 99"),
    ]  # fmt: skip
    for payload, msg in cases:
        path = _file_with_event(tmp_path, payload)
        with pytest.raises(RecoInputError, match=rf"run00030\.mid: event 1 \(serial 0\).*{msg}"):
            reconstruct_run(path, ped, tmp_path / "out.h5")
        _no_output(tmp_path)


def test_file_without_camera_banks(tmp_path: Path, ped: Path) -> None:
    path = tmp_path / "run00031.mid.gz"
    with CompressedSink(path) as sink:
        w = MidasWriter(sink, 31, {})
        for _ in range(3):
            w.write_event([("INPT", np.zeros(4, np.float32))])
        w.finish({})
    with pytest.raises(RecoInputError, match=r"run00031\.mid\.gz: no camera banks \(CAM\*\)"):
        reconstruct_run(path, ped, tmp_path / "out.h5")
    with pytest.raises(RecoInputError, match="no camera banks"):
        convert_midas(path, tmp_path / "out.h5")
    _no_output(tmp_path)


def test_non_midas_files(tmp_path: Path, ped: Path) -> None:
    cases = {
        "run00032.mid": b"this is not a MIDAS file at all, just some text" * 10,
        "run00033.mid.gz": gzip.compress(b"plain text, gzipped" * 100),
        "run00034.mid.gz": b"\x1f\x8b\x08garbage that is not deflate" * 10,
        "run00035.mid": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(RecoInputError, match=rf"{name}: .*(not a MIDAS file|corrupt|empty MIDAS file)"):
            reconstruct_run(tmp_path / name, ped, tmp_path / "out.h5")
        _no_output(tmp_path)


def test_several_cameras_need_a_choice(tmp_path: Path) -> None:
    path = tmp_path / "run00036.mid"
    with CompressedSink(path) as sink:
        w = MidasWriter(sink, 36, {})
        w.write_event([("CAM0", np.zeros(64, np.uint16)), ("CAM1", np.ones(64, np.uint16))])
        w.finish({})
    with pytest.raises(RecoInputError, match=r"event 1 \(serial 0\) has camera banks \['CAM0', 'CAM1'\]"):
        MidasRun(path)
    assert list(MidasRun(path, camera_bank="CAM1").frames())[0].max() == 1


def test_format_detection_and_names(sims: dict[str, SimOutput]) -> None:
    assert is_midas(sims["midas"].run) and not is_midas(sims["hdf5"].run)
    assert run_stem("a/run01001.mid.gz") == "run01001" and run_stem("run01001.h5") == "run01001"
    assert run_stem("run114497.mid.lz4") == "run114497"


# ------------------------------------------------------------------------------------ CLI


def test_cli_midas_chain(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from reco.cli import reco

    cli = CliRunner()
    args = ["simulate", str(tmp_path), "--frames", "4", "--pedestal-frames", "6", "--shape", "64x96"]
    r = cli.invoke(reco, [*args, "--run", "300", "--format", "midas", "--no-progress"])
    assert r.exit_code == 0, r.output
    # CYGNO names: run<N>.mid.gz with at least 5 digits
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "run00299.mid.gz",
        "run00300.mid.gz",
        "run00300_truth.h5",
    ]
    r = cli.invoke(reco, ["pedestal", str(tmp_path / "run00299.mid.gz"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "pedestal of run 299 (6 frames) -> " in r.output and (tmp_path / "pedestal_run00299.h5").exists()
    ped = str(tmp_path / "pedestal_run00299.h5")
    r = cli.invoke(
        reco, ["run", str(tmp_path / "run00300.mid.gz"), "--pedestal", ped, "--workers", "2", "--no-progress"]
    )
    assert r.exit_code == 0, r.output
    assert "run 300: 4 events" in r.output and (tmp_path / "run00300_reco.h5").exists()
    r = cli.invoke(reco, ["convert", str(tmp_path / "run00300.mid.gz"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"run 300: 4 frames 64x96 -> {tmp_path / 'run00300.h5'}"
    r = cli.invoke(
        reco, ["run", str(tmp_path / "run00300.h5"), "--pedestal", ped, "-o", str(tmp_path / "h.h5")]
    )
    assert r.exit_code == 0, r.output
    assert read_table(tmp_path / "h.h5").equals(read_table(tmp_path / "run00300_reco.h5"))
    # the event display finds the MIDAS raw file through the provenance
    r = cli.invoke(reco, ["show", str(tmp_path / "run00300_reco.h5"), "--event", "2"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run00300_reco_ev2.png").stat().st_size > 1000


def test_cli_bad_midas_input_is_one_line(tmp_path: Path, sims: dict[str, SimOutput], ped: Path) -> None:
    from click.testing import CliRunner

    from reco.cli import reco

    data = sims["midas"].run.read_bytes()
    bad = tmp_path / "run01001.mid.gz"
    bad.write_bytes(data[: len(data) // 2])
    cli = CliRunner()
    for args in (
        ["run", str(bad), "--pedestal", str(ped), "--no-progress"],
        ["convert", str(bad), "--no-progress"],
    ):
        r = cli.invoke(reco, args)
        assert r.exit_code == 1
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: {bad}: event ") and "truncated" in lines[0]
    r = cli.invoke(reco, ["convert", str(sims["hdf5"].run)])
    assert r.exit_code == 1 and "not a MIDAS run file" in r.output
    r = cli.invoke(reco, ["run", str(bad), "--pedestal", str(ped), "--shape", "64by96"])
    assert r.exit_code == 2 and "ROWSxCOLS" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run01001.mid.gz"]


def test_every_gzip_library_reads_the_same_frames(
    sims: dict[str, SimOutput], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    ref = [f.copy() for f in MidasRun(sims["midas"].run).frames()]
    backends = ["gzip", "isal"] + [b for b, mod in (("zlib-ng", "zlib_ng"), ("rapidgzip:2", "rapidgzip"))
                                   if importlib.util.find_spec(mod)]  # fmt: skip
    for backend in backends:
        monkeypatch.setenv("CYGNO_DM_GZIP", backend)
        got = list(MidasRun(sims["midas"].run).frames())
        assert len(got) == len(ref) and all(np.array_equal(a, b) for a, b in zip(got, ref, strict=True)), (
            backend
        )
    monkeypatch.setenv("CYGNO_DM_GZIP", "pigz")
    with pytest.raises(RecoInputError, match="unknown gzip library 'pigz' \\(CYGNO_DM_GZIP\\)"):
        MidasRun(sims["midas"].run)


def test_bad_frame_in_the_middle_of_a_run(sims: dict[str, SimOutput], ped: Path, tmp_path: Path) -> None:
    frames = list(MidasRun(sims["midas"].run).frames())
    path = tmp_path / "run01001.mid.lz4"
    odb = run_odb(1001, (64, 96), "SIM-CAM", "physics", 0.152, None)
    with CompressedSink(path) as sink:
        w = MidasWriter(sink, 1001, odb)
        for i, f in enumerate(frames):
            w.write_event([("CAM0", f if i != 4 else f.reshape(-1)[:-96])])
        w.finish(odb)
    with pytest.raises(
        RecoInputError, match=r"run01001\.mid\.lz4: event 5 \(serial 4\) bank CAM0: 12096 bytes do not fit"
    ):
        reconstruct_run(path, ped, tmp_path / "out.h5", workers=2)
    _no_output(tmp_path)
    # the frames before it are fine
    assert reconstruct_run(path, ped, tmp_path / "out.h5", max_frames=4).n_events == 4


def test_corrupt_gzip_data(sims: dict[str, SimOutput], ped: Path, tmp_path: Path) -> None:
    data = bytearray(sims["midas"].run.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)  # scribble over compressed data
    bad = tmp_path / "run01001.mid.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(
        RecoInputError, match=r"run01001\.mid\.gz: event \d+ .*(corrupt gzip stream|bank|truncated)"
    ):
        reconstruct_run(bad, ped, tmp_path / "out.h5")
    _no_output(tmp_path)


@pytest.mark.parametrize("suffix", [".mid", ".mid.lz4", ".mid.bz2"])
def test_reco_of_other_compressions(
    sims: dict[str, SimOutput], ped: Path, tmp_path: Path, suffix: str
) -> None:
    with RawRun(sims["hdf5"].run) as raw:
        src = write_midas_run(
            tmp_path / f"run01001{suffix}", raw.frames(), run=1001, shape=raw.shape, camera=raw.camera
        )
    out = reconstruct_run(src, ped, tmp_path / "out.h5")
    ref = reconstruct_run(sims["hdf5"].run, ped, tmp_path / "ref.h5")
    assert read_table(out.output, "pixels").equals(read_table(ref.output, "pixels")) and out.n_events == 6


def test_undecodable_digitizer_banks_are_kept_raw(tmp_path: Path) -> None:
    path = tmp_path / "run00040.mid.gz"
    odb = run_odb(40, (32, 32), "SIM-CAM", "physics", 0.152, None)
    board = DigitizerBoard(1742, 10, 2, 1, 12, 750, np.zeros(2), np.array([0]), np.array([0]),
                           np.ones((1, 2, 10), np.uint16))  # fmt: skip
    dgh, dig = encode_digitizers([board])
    with CompressedSink(path) as sink:
        w = MidasWriter(sink, 40, odb)
        for i in range(3):
            head = dgh if i != 1 else dgh[:-3]  # event 2: header cut short
            w.write_event([("CAM0", np.full((32, 32), i, np.uint16)), ("DGH0", head), ("DIG0", dig)])
        w.finish(odb)
    out = convert_midas(path, tmp_path / "run00040.h5")
    with h5py.File(out) as f:
        assert "pmt" not in f and f["frames"].shape == (3, 32, 32)
        assert "event 2 (serial 1) DGH0/DIG0: header ends inside" in f["digitizers"].attrs["not_decoded"]
        assert f["midas/banks/DGH0/offsets"][()].tolist() == [0, len(dgh), 2 * len(dgh) - 3, 3 * len(dgh) - 3]
        assert np.array_equal(f["midas/banks/DIG0/data"][()], np.tile(dig, 3))
