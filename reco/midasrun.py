"""CYGNO runs in MIDAS files: camera frames (CAM banks), PMT digitizers (DGH0/DIG0), slow control (INPT)."""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reco.atomic import atomic_output
from reco.errors import RecoInputError
from reco.midas import (
    TID_NAMES,
    TID_WORD,
    Bank,
    CompressedSink,
    Event,
    MidasFile,
    MidasWriter,
    odb_get,
    parse_odb,
)
from reco.runsource import run_number_from_name

log = logging.getLogger(__name__)

# Frame shapes as (rows, columns) of the Hamamatsu cameras CYGNO uses.
CAMERA_SHAPES = {"ORCA-Fusion": (2304, 2304), "ORCA-Flash": (2048, 2048), "ORCA-Quest": (2304, 4096)}

# Where the run's ODB declares the camera and run metadata (written so by `write_midas_run`).
ODB_CAMERA = "/Configurations/Camera"  # keys: Model, Height (rows), Width (columns), Pixel size mm
ODB_RUN_TYPE = "/Configurations/Run type"  # physics | pedestal | ...
ODB_RUN_ATTRS = "/Configurations/Run attributes"  # further run-log fields, copied to HDF5 attributes
ODB_SLOW_NAMES = "/Equipment/Environment/Settings/Names Input"  # names of the INPT values (CYGNO)
CAMERA_PREFIX = "CAM"
DIGITIZER_HEADER, DIGITIZER_DATA, SLOW_CONTROL = "DGH0", "DIG0", "INPT"
DRS4_MODEL = 1742  # CAEN V1742 (DRS4): its header also carries the start index cell of each trigger


@dataclass(frozen=True)
class Record:
    """One data event of a run, with its camera frame (if it has one) and all its banks."""

    event: Event
    banks: list[Bank]
    frame: np.ndarray | None
    frame_index: int  # -1 when the event has no camera bank
    frame_bank: Bank | None = None


@dataclass
class DigitizerBoard:
    """One digitizer board of a DGH0/DIG0 pair: settings, per-trigger tags and waveforms."""

    model: int
    n_samples: int
    n_channels: int
    n_triggers: int
    vertical_resolution: int
    sampling_rate: int
    offsets: np.ndarray  # per channel
    ttt: np.ndarray  # trigger time tag per trigger
    sic: np.ndarray  # start index cell per trigger (DRS4 boards only; empty otherwise)
    waveforms: np.ndarray = field(repr=False)  # (n_triggers, n_channels, n_samples)


def decode_digitizers(header: np.ndarray, data: np.ndarray, where: str = "DGH0/DIG0") -> list[DigitizerBoard]:
    """Decode the CYGNO PMT digitizer banks (DGH0 header words, DIG0 samples) into boards.

    DGH0 = [n_boards, then per board: model, n_samples, n_channels, n_triggers, vertical resolution,
    sampling rate, offsets[n_channels], trigger time tags[n_triggers], start index cells[n_triggers]
    (model 1742 only)]; DIG0 = per board, per trigger, per channel, n_samples values.
    """
    h = np.asarray(header).astype(np.int64, copy=False)
    if h.size < 1 or h[0] < 0:
        raise ValueError(f"{where}: empty digitizer header")
    pos, start, boards = 1, 0, []
    for k in range(int(h[0])):
        if pos + 6 > h.size:
            raise ValueError(f"{where}: header ends inside board {k} ({h.size} words)")
        model, ns, nch, ntr, vres, rate = (int(v) for v in h[pos : pos + 6])
        if min(ns, nch, ntr) < 0:
            raise ValueError(
                f"{where}: board {k} has negative sizes ({ns} samples, {nch} channels, {ntr} triggers)"
            )
        pos += 6
        n_sic = ntr if model == DRS4_MODEL else 0
        if pos + nch + ntr + n_sic > h.size:
            raise ValueError(f"{where}: header ends inside the offsets/tags of board {k}")
        offsets, pos = h[pos : pos + nch].copy(), pos + nch
        ttt, pos = h[pos : pos + ntr].copy(), pos + ntr
        sic, pos = h[pos : pos + n_sic].copy(), pos + n_sic
        n = ntr * nch * ns
        if start + n > data.size:
            raise ValueError(
                f"{where}: board {k} needs {n} samples ({ntr} triggers x {nch} channels x {ns}), "
                f"{data.size - start} left in DIG0"
            )
        wf = data[start : start + n].reshape(ntr, nch, ns)
        start += n
        boards.append(DigitizerBoard(model, ns, nch, ntr, vres, rate, offsets, ttt, sic, wf))
    if pos != h.size or start != data.size:
        raise ValueError(f"{where}: {h.size - pos} header words and {data.size - start} samples left over")
    return boards


def encode_digitizers(boards: Iterable[DigitizerBoard]) -> tuple[np.ndarray, np.ndarray]:
    """DGH0 (int32 words) and DIG0 (uint16 samples) banks for the given boards."""
    boards = list(boards)
    words: list[int] = [len(boards)]
    samples = []
    for b in boards:
        wf = np.asarray(b.waveforms)
        if wf.shape != (b.n_triggers, b.n_channels, b.n_samples):
            raise ValueError(f"digitizer {b.model}: waveforms {wf.shape} do not match its header")
        words += [b.model, b.n_samples, b.n_channels, b.n_triggers, b.vertical_resolution, b.sampling_rate]
        words += list(b.offsets) + list(b.ttt) + (list(b.sic) if b.model == DRS4_MODEL else [])
        samples.append(wf.astype("<u2").reshape(-1))
    return np.asarray(words, "<i4"), np.concatenate(samples) if samples else np.zeros(0, "<u2")


def _odb_int(value: Any) -> int | None:
    try:
        return int(value, 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        return None


class MidasRun:
    """A CYGNO run in a MIDAS file, read as a stream of camera frames (a frame source, like RawRun).

    The frame shape comes from `shape` if given, else the ODB (Height/Width under /Configurations/Camera,
    else its Model), else a square frame of sqrt(pixels) per side (ORCA-Fusion/Flash); a non-square pixel
    count without a declared shape is an error, never a guess.
    """

    dtype = np.dtype(np.uint16)

    def __init__(
        self,
        path: str | Path,
        shape: tuple[int, int] | None = None,
        camera_bank: str | None = None,
        gzip_backend: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.gzip_backend = gzip_backend
        self.camera_bank = camera_bank
        self.n_frames: int | None = None
        self.eor_odb: dict[str, Any] | None = None
        with MidasFile(self.path, gzip_backend) as mf:
            events = mf.events()
            first = next(events, None)
            if first is None:
                raise RecoInputError(f"{self.path}: empty MIDAS file (no events)")
            self.odb = self._bor_odb(first)
            self.run = self._run_number(first)
            self.camera = str(odb_get(self.odb, f"{ODB_CAMERA}/Model", "unknown"))
            self.run_type = str(odb_get(self.odb, ODB_RUN_TYPE, "physics"))
            self.pixel_size_mm = float(odb_get(self.odb, f"{ODB_CAMERA}/Pixel size mm", 0.152))
            self.shape: tuple[int, int] = shape or self._odb_shape() or (0, 0)
            # the first frame fixes an undeclared shape and proves the file has camera banks
            for rec in self._records(itertools.chain([first], events)):
                if rec.frame is not None:
                    break
            else:
                raise RecoInputError(f"{self.path}: no camera banks ({CAMERA_PREFIX}*) in the file")

    # -- metadata -------------------------------------------------------------------------------------

    def _bor_odb(self, first: Event) -> dict[str, Any]:
        if not first.is_bor:
            return {}
        try:
            return parse_odb(first.payload.tobytes())
        except (ValueError, SyntaxError) as exc:
            raise RecoInputError(f"{self.path}: event 0 (begin of run): unreadable ODB dump: {exc}") from exc

    def _run_number(self, first: Event) -> int:
        if first.is_bor:
            odb_run = _odb_int(odb_get(self.odb, "/Runinfo/Run number"))
            if odb_run is not None and odb_run != first.serial:
                raise RecoInputError(
                    f"{self.path}: begin-of-run record is run {first.serial}, its ODB says run {odb_run}"
                )
            return first.serial
        run = run_number_from_name(self.path)
        if run is None:
            raise RecoInputError(f"{self.path}: no begin-of-run record and no run number in the name run<N>")
        return run

    def _odb_shape(self) -> tuple[int, int] | None:
        rows = _odb_int(odb_get(self.odb, f"{ODB_CAMERA}/Height"))
        cols = _odb_int(odb_get(self.odb, f"{ODB_CAMERA}/Width"))
        if rows is not None and cols is not None:
            if rows <= 0 or cols <= 0:
                raise RecoInputError(f"{self.path}: ODB {ODB_CAMERA} declares a {rows}x{cols} frame")
            return rows, cols
        model = self.camera.lower()
        for name, shape in CAMERA_SHAPES.items():
            if name.split("-")[1].lower() in model:
                return shape
        return None

    @property
    def attrs(self) -> dict[str, Any]:
        """Run attributes (as in an HDF5 raw file) from the ODB."""
        extra = odb_get(self.odb, ODB_RUN_ATTRS, {}) or {}
        return {
            **{k: v for k, v in extra.items() if isinstance(v, str | int | float | bool)},
            "run": self.run,
            "camera": self.camera,
            "run_type": self.run_type,
            "pixel_size_mm": self.pixel_size_mm,
            "height": self.shape[0],
            "width": self.shape[1],
        }

    # -- frames ---------------------------------------------------------------------------------------

    def _frame(self, ev: Event, bank: Bank) -> np.ndarray:
        where = f"{self.path}: {ev.describe()} bank {bank.name}"
        if bank.tid != TID_WORD:
            raise RecoInputError(
                f"{where}: type {TID_NAMES.get(bank.tid, bank.tid)}, camera banks must be WORD (uint16)"
            )
        if self.shape == (0, 0):
            side = math.isqrt(bank.size // 2)
            if bank.size % 2 or side * side * 2 != bank.size:
                raise RecoInputError(
                    f"{where}: {bank.size} bytes is not a square uint16 frame and the run declares no frame "
                    f"shape (ODB {ODB_CAMERA} Height/Width or Model); give the shape (--shape ROWSxCOLS)"
                )
            self.shape = (side, side)
            log.info("%s: frame shape %dx%d from the first camera bank (square)", self.path, side, side)
        rows, cols = self.shape
        if bank.size != rows * cols * 2:
            raise RecoInputError(
                f"{where}: {bank.size} bytes do not fit the frame shape {rows}x{cols} "
                f"({rows * cols * 2} bytes of uint16)"
            )
        return bank.raw.view("<u2").reshape(rows, cols)

    def _records(self, events: Iterable[Event]) -> Iterator[Record]:
        n = 0
        for ev in events:
            if ev.is_bor:
                continue
            if ev.is_eor:
                try:
                    self.eor_odb = parse_odb(ev.payload.tobytes())
                except (ValueError, SyntaxError):
                    log.warning("%s: unreadable end-of-run ODB dump", self.path)
                continue
            if ev.is_message:
                log.debug("%s: message: %s", self.path, ev.text())
                continue
            try:
                banks = ev.banks()
            except ValueError as exc:
                raise RecoInputError(f"{self.path}: {exc}") from exc
            cams = [b for b in banks if b.name.startswith(CAMERA_PREFIX)]
            if self.camera_bank is not None:
                cams = [b for b in cams if b.name == self.camera_bank]
            elif cams:
                self.camera_bank = cams[0].name
                if any(b.name != cams[0].name for b in cams):
                    raise RecoInputError(
                        f"{self.path}: {ev.describe()} has camera banks {[b.name for b in cams]}: "
                        "choose one (camera_bank=)"
                    )
            if len(cams) > 1:
                raise RecoInputError(f"{self.path}: {ev.describe()} has {len(cams)} {cams[0].name} banks")
            frame = self._frame(ev, cams[0]) if cams else None
            yield Record(ev, banks, frame, n if frame is not None else -1, cams[0] if cams else None)
            n += frame is not None

    def records(self, max_frames: int | None = None) -> Iterator[Record]:
        """Every data event in file order (one pass over the file), stopping after `max_frames` frames."""
        if max_frames is not None and max_frames <= 0:
            return
        with MidasFile(self.path, self.gzip_backend) as mf:
            n = 0
            for rec in self._records(mf.events()):
                yield rec
                if rec.frame is not None:
                    n += 1
                    if max_frames is not None and n >= max_frames:
                        return
            self.n_frames = n

    def frames(self, max_frames: int | None = None) -> Iterator[np.ndarray]:
        """Camera frames in run order, decompressed as they are read."""
        for rec in self.records(max_frames):
            if rec.frame is not None:
                yield rec.frame

    def read(self, index: int) -> np.ndarray:
        """Frame `index` (streams the file up to it)."""
        for i, frame in enumerate(self.frames(index + 1)):
            if i == index:
                return frame
        raise RecoInputError(f"{self.path}: frame {index} out of range (the run has {self.n_frames} frames)")

    def close(self) -> None:
        """Nothing to release: each pass opens and closes the file."""

    def __enter__(self) -> MidasRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_odb(
    run: int,
    shape: tuple[int, int],
    camera: str,
    run_type: str,
    pixel_size_mm: float,
    attrs: Mapping[str, Any] | None,
    slow_names: list[str] | None = None,
) -> dict[str, Any]:
    """The ODB of a run as `write_midas_run` dumps it (run number, camera model and frame shape)."""
    odb: dict[str, Any] = {
        "Experiment": {"Name": "CYGNO"},
        "Runinfo": {"State": 3, "Run number": int(run)},
        "Configurations": {
            "Camera": {
                "Model": camera,
                "Height": shape[0],
                "Width": shape[1],
                "Pixel size mm": pixel_size_mm,
            },
            "Run type": run_type,
            "Run attributes": {k: _plain(v) for k, v in (attrs or {}).items()},
        },
    }
    if slow_names:
        odb["Equipment"] = {"Environment": {"Settings": {"Names Input": list(slow_names)}}}
    return odb


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def write_midas_run(
    path: str | Path,
    frames: Iterable[np.ndarray],
    *,
    run: int,
    shape: tuple[int, int],
    camera: str = "ORCA-Fusion",
    run_type: str = "physics",
    pixel_size_mm: float = 0.152,
    pmt: Iterable[np.ndarray] | None = None,
    slow_control: Iterable[np.ndarray] | None = None,
    slow_names: list[str] | None = None,
    attrs: Mapping[str, Any] | None = None,
    bank_format: int = 32,
    odb_format: str = "json",
    level: int = 1,
    timestamp: int = 0,
) -> Path:
    """Write a MIDAS run file (.mid/.mid.gz/.mid.lz4/.mid.bz2) atomically: BOR, one event per frame, EOR.

    Each event has the frame in a CAM0 bank (uint16) and, when given, the frame's PMT waveforms
    ((channels, samples) as one DRS4 board in DGH0/DIG0) and slow-control values (float32 INPT).
    """
    path = Path(path)
    odb = run_odb(run, shape, camera, run_type, pixel_size_mm, attrs, slow_names)
    pmt_it = iter(pmt) if pmt is not None else None
    slow_it = iter(slow_control) if slow_control is not None else None
    n = 0
    with atomic_output(path) as tmp, CompressedSink(tmp, path, level) as sink:
        writer = MidasWriter(
            sink, run, odb, bank_format=bank_format, timestamp=timestamp, odb_format=odb_format
        )
        for frame in frames:
            if frame.shape != tuple(shape):
                raise RecoInputError(f"{path}: frame {n} has shape {frame.shape}, expected {tuple(shape)}")
            banks: list[Any] = [("CAM0", frame.astype("<u2", copy=False))]
            if pmt_it is not None:
                wf = np.asarray(next(pmt_it))
                board = DigitizerBoard(DRS4_MODEL, wf.shape[1], wf.shape[0], 1, 12, 750,
                                       np.zeros(wf.shape[0], np.int64), np.array([n]), np.array([0]),
                                       wf[None])  # fmt: skip
                dgh, dig = encode_digitizers([board])
                banks += [(DIGITIZER_HEADER, dgh), (DIGITIZER_DATA, dig)]
            if slow_it is not None:
                banks.append((SLOW_CONTROL, np.asarray(next(slow_it), "<f4")))
            writer.write_event(banks, serial=n)
            n += 1
        odb["Runinfo"]["State"] = 1
        odb["Runinfo"]["Number of events"] = n
        writer.finish(odb)
    log.info("wrote MIDAS run %d (%d frames %dx%d) to %s", run, n, shape[0], shape[1], path)
    return path


def odb_json_text(odb: Mapping[str, Any] | None) -> str:
    """An ODB as sorted JSON text (for HDF5 attributes/datasets)."""
    return json.dumps(odb or {}, sort_keys=True)
