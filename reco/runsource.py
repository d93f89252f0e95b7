"""One way to read a raw run, whatever its format: HDF5 raw (reco.rawfile) or MIDAS (reco.midasrun)."""

from __future__ import annotations

import contextlib
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from reco.errors import RecoInputError
from reco.midas import BZ2_MAGIC, GZIP_MAGIC, LZ4_MAGIC, MIDAS_SUFFIXES

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
RAW_SUFFIXES = (".h5", ".hdf5")
T = TypeVar("T")


class FrameSource(Protocol):
    """A raw run: metadata and its camera frames in order (HDF5 raw file or MIDAS file)."""

    path: Path
    run: int
    camera: str
    run_type: str
    shape: tuple[int, int]
    dtype: np.dtype
    n_frames: int | None  # None while unknown (a MIDAS file not yet read to the end)

    def frames(self, max_frames: int | None = None) -> Iterator[np.ndarray]:
        """Frames in run order (at most `max_frames`)."""
        ...

    def read(self, index: int) -> np.ndarray:
        """One frame by index."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


def is_midas(path: str | Path) -> bool:
    """True for a MIDAS run file (by magic bytes, else by suffix), False for HDF5 raw."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        head = b""
    if head.startswith(HDF5_MAGIC) or path.name.endswith(RAW_SUFFIXES):
        return False
    if head[:4].startswith((GZIP_MAGIC, LZ4_MAGIC, BZ2_MAGIC)) or head[:4] == b"\x00\x80\x4d\x49":
        return True
    return path.name.endswith(MIDAS_SUFFIXES)


def open_run(path: str | Path, shape: tuple[int, int] | None = None) -> FrameSource:
    """Open a raw run file, MIDAS or HDF5 raw; `shape` (rows, columns) overrides a MIDAS run's ODB."""
    from reco.midasrun import MidasRun
    from reco.rawfile import RawRun

    if is_midas(path):
        return MidasRun(path, shape=shape)
    return RawRun(path)


RUN_FORMATS = {"hdf5": ".h5", "midas": ".mid.gz"}


def run_writer(fmt: str) -> tuple[str, Callable[..., Path]]:
    """(file suffix, writer) of a raw run format: hdf5 (reco.rawfile) or midas (.mid.gz)."""
    from reco.midasrun import write_midas_run
    from reco.rawfile import write_raw_run

    writers = {"hdf5": write_raw_run, "midas": write_midas_run}
    if fmt not in writers:
        raise RecoInputError(f"unknown run file format {fmt!r}; expected one of {sorted(writers)}")
    return RUN_FORMATS[fmt], writers[fmt]


def run_stem(path: str | Path) -> str:
    """File name without its run-file suffix: run01001.mid.gz -> run01001, run01001.h5 -> run01001."""
    name = Path(path).name
    for suffix in sorted(MIDAS_SUFFIXES + RAW_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def run_number_from_name(path: str | Path) -> int | None:
    """N of a CYGNO run file name run<N>.*, else None."""
    m = re.fullmatch(r"run(\d+)", run_stem(path))
    return int(m.group(1)) if m else None


_END = object()


@contextlib.contextmanager
def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[Iterator[T]]:
    """Iterate `items` in a background thread, up to `depth` ahead (decompression overlaps the work).

    Errors of the producer are raised in the consumer; leaving the block stops and joins the producer.
    """
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(obj: object) -> bool:
        while not stop.is_set():
            try:
                q.put(obj, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer
            put(exc)

    def consume() -> Iterator[T]:
        while True:
            obj = q.get()
            if obj is _END:
                return
            if isinstance(obj, BaseException):
                raise obj
            yield obj  # type: ignore[misc]

    thread = threading.Thread(target=produce, name="reco-read", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()
