"""MIDAS run file -> HDF5 raw run file (reco.rawfile format) with PMT waveforms, all banks and the ODB."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from reco.atomic import atomic_output
from reco.errors import RecoInputError
from reco.identity import file_identity
from reco.midas import TID_NAMES, Bank, odb_get
from reco.midasrun import (
    DIGITIZER_DATA,
    DIGITIZER_HEADER,
    ODB_SLOW_NAMES,
    SLOW_CONTROL,
    DigitizerBoard,
    MidasRun,
    Record,
    decode_digitizers,
    odb_json_text,
)
from reco.rawfile import RawRunWriter
from reco.runsource import prefetch

log = logging.getLogger(__name__)

EVENT_DTYPE = np.dtype(
    [("index", "<i8"), ("event_id", "<u2"), ("trigger_mask", "<u2"), ("serial", "<u4"), ("timestamp", "<u4"),
     ("frame", "<i8")]
)  # fmt: skip


class _Table:
    """A growing 1-D (or N-D along axis 0) dataset filled in batches."""

    def __init__(
        self, group: h5py.Group, name: str, dtype: np.dtype, row_shape: tuple[int, ...] = ()
    ) -> None:
        chunk_rows = max(1, (1 << 20) // max(1, dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))))
        self.dset = group.create_dataset(
            name,
            shape=(0, *row_shape),
            maxshape=(None, *row_shape),
            dtype=dtype,
            chunks=(chunk_rows, *row_shape),
            compression="gzip",
            compression_opts=1,
            shuffle=True,
        )
        self.parts: list[np.ndarray] = []
        self.pending = 0

    def add(self, rows: np.ndarray) -> None:
        """Append rows (flushed to the file every few MB)."""
        self.parts.append(np.array(rows, copy=True))
        self.pending += rows.nbytes
        if self.pending >= 8 << 20:
            self.flush()

    def flush(self) -> None:
        """Write buffered rows."""
        if not self.parts:
            return
        data = np.concatenate(self.parts)
        start = self.dset.shape[0]
        self.dset.resize(start + len(data), axis=0)
        self.dset[start:] = data
        self.parts.clear()
        self.pending = 0


class _BankStore:
    """Every bank of one name, concatenated, with offsets and the event row each came from."""

    def __init__(self, group: h5py.Group, bank: Bank) -> None:
        g = group.create_group(bank.name)
        g.attrs["tid"] = bank.tid
        g.attrs["type"] = TID_NAMES[bank.tid]
        self.group, self.tid = g, bank.tid
        self.data = _Table(g, "data", bank.dtype)
        self.event = _Table(g, "event", np.dtype("<i8"))
        self.offsets = [0]

    def add(self, bank: Bank, event_row: int, where: str) -> None:
        if bank.tid != self.tid:
            raise RecoInputError(
                f"{where} bank {bank.name}: type {bank.tid}, earlier banks had type {self.tid}"
            )
        try:
            values = bank.array()
        except ValueError as exc:
            raise RecoInputError(f"{where}: {exc}") from exc
        self.data.add(values)
        self.event.add(np.array([event_row], "<i8"))
        self.offsets.append(self.offsets[-1] + len(values))

    def close(self) -> None:
        self.data.flush()
        self.event.flush()
        self.group.create_dataset("offsets", data=np.asarray(self.offsets, "<i8"))


class _Digitizers:
    """Decoded PMT boards: per board, waveforms of every trigger with its frame, time tag and start cell."""

    def __init__(self, group: h5py.Group) -> None:
        self.group = group
        self.boards: dict[int, dict[str, _Table]] = {}

    def decode(self, rec: Record, where: str) -> list[DigitizerBoard]:
        """Decode and store the event's DGH0/DIG0 boards; after a failure, keep only the raw banks."""
        head = next((b for b in rec.banks if b.name == DIGITIZER_HEADER), None)
        data = next((b for b in rec.banks if b.name == DIGITIZER_DATA), None)
        if head is None or data is None or "not_decoded" in self.group.attrs:
            return []
        try:
            boards = decode_digitizers(
                head.array(), data.array(), f"{where} {DIGITIZER_HEADER}/{DIGITIZER_DATA}"
            )
            for k, b in enumerate(boards):
                self.add(k, b, rec.frame_index)
        except ValueError as exc:
            log.warning("%s; digitizer banks kept raw in /midas/banks only", exc)
            self.group.attrs["not_decoded"] = str(exc)
            return []
        return boards

    def add(self, k: int, b: DigitizerBoard, frame: int) -> None:
        if k not in self.boards:
            g = self.group.create_group(f"board{k}")
            g.attrs.update(
                {"model": b.model, "n_samples": b.n_samples, "n_channels": b.n_channels,
                 "vertical_resolution": b.vertical_resolution, "sampling_rate": b.sampling_rate,
                 "offsets": b.offsets}
            )  # fmt: skip
            self.boards[k] = {
                "waveforms": _Table(g, "waveforms", b.waveforms.dtype, b.waveforms.shape[1:]),
                "frame": _Table(g, "frame", np.dtype("<i8")),
                "ttt": _Table(g, "ttt", np.dtype("<i8")),
                "sic": _Table(g, "sic", np.dtype("<i8")),
            }
        t = self.boards[k]
        if b.waveforms.shape[1:] != t["waveforms"].dset.shape[1:]:
            raise ValueError(
                f"board {k} has {b.n_channels} channels x {b.n_samples} samples, "
                f"earlier events had {t['waveforms'].dset.shape[1:]}"
            )
        if b.model != self.group[f"board{k}"].attrs["model"]:
            raise ValueError(
                f"board {k} is a {b.model}, earlier events had a {self.group[f'board{k}'].attrs['model']}"
            )
        t["waveforms"].add(b.waveforms)
        t["frame"].add(np.full(b.n_triggers, frame, "<i8"))
        t["ttt"].add(b.ttt)
        t["sic"].add(b.sic if len(b.sic) else np.full(b.n_triggers, -1, "<i8"))

    def close(self) -> None:
        for t in self.boards.values():
            for table in t.values():
                table.flush()


def convert_midas(
    path: str | Path,
    output: str | Path,
    shape: tuple[int, int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write the HDF5 raw run file of a MIDAS run, atomically; return its path.

    Adds to the raw format: `/pmt` [frame, channel, sample] when every frame has one single-trigger
    digitizer board, `/digitizers/board<K>` (all decoded PMT triggers), `/midas/events`, every non-camera
    bank under `/midas/banks/<NAME>` (data, offsets, event) and the begin/end-of-run ODB dumps as JSON.
    Digitizer banks that do not decode are kept raw: `/digitizers` then says why in `not_decoded`.
    """
    path, output = Path(path), Path(output)
    if output.exists() and path.exists() and output.samefile(path):
        raise RecoInputError(f"{output}: output would overwrite the input file")
    if not output.parent.is_dir():
        raise RecoInputError(f"{output}: output directory does not exist")
    run = MidasRun(path, shape=shape)
    with atomic_output(output) as tmp, h5py.File(tmp, "w") as f:
        frames = RawRunWriter(f, run.shape, np.uint16, output)
        midas = f.create_group("midas")
        events = _Table(midas, "events", EVENT_DTYPE)
        banks_group = midas.create_group("banks")
        stores: dict[str, _BankStore] = {}
        digitizers = _Digitizers(f.create_group("digitizers"))
        pmt: _Table | None = None
        pmt_ok = True
        row = 0
        with prefetch(run.records(), depth=2) as records:
            for rec in records:
                _event_row(events, rec)
                where = f"{path}: {rec.event.describe()}"
                for bank in rec.banks:
                    if bank is rec.frame_bank:
                        continue
                    if bank.name not in stores:
                        stores[bank.name] = _BankStore(banks_group, bank)
                    stores[bank.name].add(bank, row, where)
                boards = digitizers.decode(rec, where)
                if rec.frame is not None:
                    frames.append(rec.frame)
                    single = (
                        boards[0].waveforms[0] if len(boards) == 1 and boards[0].n_triggers == 1 else None
                    )
                    if single is None or (pmt is None and rec.frame_index > 0):
                        pmt_ok = False
                    elif pmt is not None and single.shape != pmt.dset.shape[1:]:
                        pmt_ok = False
                    elif pmt_ok:
                        pmt = pmt or _Table(f, "pmt", single.dtype, single.shape)
                        pmt.add(single[None])
                    if progress:
                        progress(1)
                row += 1
        events.flush()
        for store in stores.values():
            store.close()
        digitizers.close()
        if pmt is not None:
            pmt.flush()
            if not pmt_ok:
                log.info("%s: PMT waveforms are not one trigger per frame: kept in /digitizers only", path)
                del f["pmt"]
        names = odb_get(run.odb, ODB_SLOW_NAMES)
        if SLOW_CONTROL in stores and isinstance(names, list):
            stores[SLOW_CONTROL].group.attrs["names"] = [str(n) for n in names]
        midas.create_dataset("odb_bor", data=odb_json_text(run.odb))
        midas.create_dataset("odb_eor", data=odb_json_text(run.eor_odb))
        ident = file_identity(path)
        attrs = {
            k: v
            for k, v in run.attrs.items()
            if k not in ("run", "camera", "run_type", "pixel_size_mm", "height", "width")
        }
        attrs.update({f"source_{k}": v for k, v in ident.items()})
        frames.finish(
            run=run.run,
            camera=run.camera,
            run_type=run.run_type,
            pixel_size_mm=run.pixel_size_mm,
            attrs=attrs,
        )
        n = frames.n
    log.info("converted %s (run %d, %d frames, %d events) -> %s", path, run.run, n, row, output)
    return output


def _event_row(events: _Table, rec: Record) -> None:
    ev = rec.event
    events.add(
        np.array(
            [(ev.index, ev.event_id, ev.trigger_mask, ev.serial, ev.timestamp, rec.frame_index)], EVENT_DTYPE
        )
    )
