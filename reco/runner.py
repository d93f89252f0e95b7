"""Reconstruct a whole run file: parallel over frames, ordered atomic output."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

import reco
from reco.atomic import atomic_output
from reco.config import RecoConfig
from reco.errors import RecoInputError
from reco.features import FEATURES
from reco.frame import Calibration, FrameReconstructor, FrameResult
from reco.identity import file_identity
from reco.output import FORMAT, FORMAT_VERSION, OutputWriter
from reco.pedestal import load_pedestal
from reco.runsource import FrameSource, open_run, prefetch, run_stem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """What a reconstruction produced."""

    output: Path
    run: int
    n_events: int
    n_clusters: int
    n_sparks: int


def default_output(raw_path: Path) -> Path:
    """Default output name: <run>_reco.h5 next to the raw file (run01001.mid.gz -> run01001_reco.h5)."""
    return raw_path.with_name(f"{run_stem(raw_path)}_reco.h5")


class _Worker:
    """Thread-local reconstructor of frames delivered by the frame source."""

    def __init__(self, raw: FrameSource, calib: Calibration, cfg: RecoConfig) -> None:
        self.raw = raw
        self.local = threading.local()
        self.calib = calib
        self.cfg = cfg

    def __call__(self, index: int, frame: np.ndarray) -> FrameResult:
        loc = self.local
        if not hasattr(loc, "rec"):
            loc.rec = FrameReconstructor(self.calib, self.cfg)
        try:
            return loc.rec(frame, index)
        except RecoInputError as exc:
            raise RecoInputError(f"{self.raw.path}: {exc}") from exc


def reconstruct_run(
    raw_path: str | Path,
    pedestal_path: str | Path,
    output: str | Path | None = None,
    cfg: RecoConfig | None = None,
    workers: int = 1,
    max_frames: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    shape: tuple[int, int] | None = None,
) -> RunSummary:
    """Reconstruct a raw run (MIDAS or HDF5 raw) with the pedestal file; write the output file atomically.

    `on_start` gets the number of frames to process when it is known before reading (HDF5 raw, or
    `max_frames`); a MIDAS file is streamed, so its frame count is known only at the end. `shape`
    (rows, columns) overrides the frame shape a MIDAS run declares.
    """
    cfg = cfg or RecoConfig()
    raw_path = Path(raw_path)
    out = Path(output) if output is not None else default_output(raw_path)
    if workers < 1:
        raise RecoInputError(f"workers={workers} must be >= 1")
    if not out.parent.is_dir():
        raise RecoInputError(f"{out}: output directory does not exist")
    if out.exists() and any(p.exists() and out.samefile(p) for p in (raw_path, Path(pedestal_path))):
        raise RecoInputError(f"{out}: output would overwrite an input file")
    with contextlib.closing(open_run(raw_path, shape)) as raw:
        ped = load_pedestal(pedestal_path)
        ped.check_compatible(raw)
        calib = Calibration.from_pedestal(ped, cfg)
        known = raw.n_frames if raw.n_frames is not None else max_frames
        n = known if max_frames is None or known is None else min(max_frames, known)
        attrs = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "run": raw.run,
            "camera": raw.camera,
            "height": raw.shape[0],
            "width": raw.shape[1],
            "pedestal_run": ped.run,
            "config": cfg.to_json(),
            "config_toml": cfg.to_toml(),
            "software": f"cygno-dm reco {reco.__version__} (numba {numba.__version__}, "
            f"numpy {np.__version__})",
            "features": json.dumps(list(FEATURES)),
        }
        if on_start and n is not None:
            on_start(n)
        work = _Worker(raw, calib, cfg)
        sparks = 0
        with atomic_output(out) as tmp, ThreadPoolExecutor(1, thread_name_prefix="reco-hash") as hasher:
            # provenance checksums are computed while the frames are processed (zlib releases the GIL)
            idents = {
                key: hasher.submit(file_identity, p)
                for key, p in (("input", raw_path), ("pedestal", Path(pedestal_path)))
            }
            writer = OutputWriter(tmp, attrs)
            try:
                # frames are read (and decompressed) in a background thread, ahead of the workers
                with (
                    prefetch(raw.frames(max_frames), depth=2) as frames,
                    contextlib.closing(_ordered_map(work, enumerate(frames), workers)) as results,
                ):
                    for index, res in results:
                        writer.append(raw.run, index, res)
                        sparks += res.spark
                        if progress:
                            progress(1)
                # -1: a streamed run cut by max_frames, whose total was not read
                writer.file.attrs["n_frames_input"] = raw.n_frames if raw.n_frames is not None else -1
                for key, fut in idents.items():
                    writer.file.attrs[key] = json.dumps(fut.result(), sort_keys=True)
            finally:
                for fut in idents.values():
                    fut.cancel()
                writer.close()
    log.info(
        "run %d: %d events, %d clusters, %d sparks -> %s",
        raw.run,
        writer.n_events,
        writer.n_clusters,
        sparks,
        out,
    )
    return RunSummary(out, raw.run, writer.n_events, writer.n_clusters, sparks)


def _ordered_map(
    fn: Callable[[int, np.ndarray], FrameResult], items: Iterator[tuple[int, np.ndarray]], workers: int
) -> Iterator[tuple[int, FrameResult]]:
    """Yield (index, fn(index, frame)) in order, computing up to 2*workers frames ahead."""
    if workers == 1:
        for i, frame in items:
            yield i, fn(i, frame)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reco") as pool:
        pending: collections.deque[tuple[int, Future[FrameResult]]] = collections.deque()
        try:
            for i, frame in items:
                pending.append((i, pool.submit(fn, i, frame)))
                if len(pending) >= 2 * workers:
                    j, fut = pending.popleft()
                    yield j, fut.result()
            while pending:
                j, fut = pending.popleft()
                yield j, fut.result()
        finally:
            for _, fut in pending:
                fut.cancel()
