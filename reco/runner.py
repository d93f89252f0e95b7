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
from reco.rawfile import RawRun

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
    """Default output name: <stem>_reco.h5 next to the raw file."""
    return raw_path.with_name(f"{raw_path.stem}_reco.h5")


class _Worker:
    """Thread-local reader buffer and reconstructor."""

    def __init__(self, raw: RawRun, calib: Calibration, cfg: RecoConfig) -> None:
        self.raw = raw
        self.local = threading.local()
        self.calib = calib
        self.cfg = cfg

    def __call__(self, index: int) -> FrameResult:
        loc = self.local
        if not hasattr(loc, "rec"):
            loc.rec = FrameReconstructor(self.calib, self.cfg)
            loc.buf = np.empty(self.raw.shape, self.raw.frames.dtype)
        frame = self.raw.read(index, loc.buf)
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
) -> RunSummary:
    """Reconstruct `raw_path` with the pedestal file; write the output file atomically."""
    cfg = cfg or RecoConfig()
    raw_path = Path(raw_path)
    out = Path(output) if output is not None else default_output(raw_path)
    if workers < 1:
        raise RecoInputError(f"workers={workers} must be >= 1")
    if not out.parent.is_dir():
        raise RecoInputError(f"{out}: output directory does not exist")
    if out.exists() and any(p.exists() and out.samefile(p) for p in (raw_path, Path(pedestal_path))):
        raise RecoInputError(f"{out}: output would overwrite an input file")
    with RawRun(raw_path) as raw:
        ped = load_pedestal(pedestal_path)
        ped.check_compatible(raw)
        calib = Calibration.from_pedestal(ped, cfg)
        n = raw.n_frames if max_frames is None else min(max_frames, raw.n_frames)
        attrs = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "run": raw.run,
            "camera": raw.camera,
            "height": raw.shape[0],
            "width": raw.shape[1],
            "n_frames_input": raw.n_frames,
            "pedestal_run": ped.run,
            "config": cfg.to_json(),
            "config_toml": cfg.to_toml(),
            "software": f"cygno-dm reco {reco.__version__} (numba {numba.__version__}, "
            f"numpy {np.__version__})",
            "features": json.dumps(list(FEATURES)),
        }
        if on_start:
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
                with contextlib.closing(_ordered_map(work, n, workers)) as results:
                    for index, res in results:
                        writer.append(raw.run, index, res)
                        sparks += res.spark
                        if progress:
                            progress(1)
                for key, fut in idents.items():
                    writer.file.attrs[key] = json.dumps(fut.result(), sort_keys=True)
            finally:
                for fut in idents.values():
                    fut.cancel()
                writer.close()
    log.info("run %d: %d events, %d clusters, %d sparks -> %s", raw.run, n, writer.n_clusters, sparks, out)
    return RunSummary(out, raw.run, n, writer.n_clusters, sparks)


def _ordered_map(fn: Callable[[int], FrameResult], n: int, workers: int) -> Iterator[tuple[int, FrameResult]]:
    """Yield (index, fn(index)) in index order, computing up to 2*workers frames ahead."""
    if workers == 1:
        for i in range(n):
            yield i, fn(i)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reco") as pool:
        pending: collections.deque[tuple[int, Future[FrameResult]]] = collections.deque()
        nxt = 0
        try:
            while nxt < n or pending:
                while nxt < n and len(pending) < 2 * workers:
                    pending.append((nxt, pool.submit(fn, nxt)))
                    nxt += 1
                i, fut = pending.popleft()
                yield i, fut.result()
        finally:
            for _, fut in pending:
                fut.cancel()
