"""Output file: events, clusters (sc_* features) and pixel tables in HDF5."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from reco.errors import RecoInputError
from reco.features import FEATURES, INTEGER_FEATURES
from reco.frame import FrameResult
from reco.rawfile import open_h5

log = logging.getLogger(__name__)

FORMAT = "cygno-reco"
FORMAT_VERSION = 1

EVENT_DTYPE = np.dtype(
    [
        ("run", "<i4"),
        ("event", "<i4"),
        ("spark", "u1"),
        ("mean_signal", "<f4"),
        ("n_clusters", "<i4"),
        ("cluster_offset", "<i8"),
    ]
)
CLUSTER_DTYPE = np.dtype(
    [("run", "<i4"), ("event", "<i4"), ("cluster", "<i4")]
    + [(f, "<i4" if f in INTEGER_FEATURES else "<f8") for f in FEATURES]
    + [("pixel_offset", "<i8"), ("pixel_count", "<i4")]
)
PIXEL_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("value", "<f4")])
TABLES = {"events": (EVENT_DTYPE, 4096), "clusters": (CLUSTER_DTYPE, 4096), "pixels": (PIXEL_DTYPE, 65536)}


class OutputWriter:
    """Appends per-frame results, in event order, to the three tables of an open output file."""

    def __init__(self, path: Path, attrs: dict[str, Any], flush_every: int = 64) -> None:
        self.file = h5py.File(path, "w")
        self.file.attrs.update(attrs)
        self.dsets = {
            name: self.file.create_dataset(
                name,
                shape=(0,),
                maxshape=(None,),
                dtype=dt,
                chunks=(chunk,),
                compression="gzip",
                compression_opts=4,
                shuffle=True,
            )
            for name, (dt, chunk) in TABLES.items()
        }
        self.buffers: dict[str, list[np.ndarray]] = {name: [] for name in TABLES}
        self.n_clusters = 0
        self.n_pixels = 0
        self.n_events = 0
        self.flush_every = flush_every
        self._pending = 0

    def append(self, run: int, event: int, res: FrameResult) -> None:
        """Add one frame's results."""
        n = res.n_clusters
        ev = np.zeros(1, EVENT_DTYPE)
        ev[0] = (run, event, res.spark, res.mean_signal, n, self.n_clusters)
        self.buffers["events"].append(ev)
        if n:
            cl = np.zeros(n, CLUSTER_DTYPE)
            cl["run"] = run
            cl["event"] = event
            cl["cluster"] = np.arange(n)
            for i, name in enumerate(FEATURES):
                cl[name] = res.features[:, i]
            cl["pixel_offset"] = self.n_pixels + res.offsets[:-1]
            cl["pixel_count"] = np.diff(res.offsets)
            px = np.empty(len(res.pv), PIXEL_DTYPE)
            px["x"], px["y"], px["value"] = res.px, res.py, res.pv
            self.buffers["clusters"].append(cl)
            self.buffers["pixels"].append(px)
        self.n_clusters += n
        self.n_pixels += int(res.offsets[-1])
        self.n_events += 1
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write buffered rows."""
        for name, parts in self.buffers.items():
            if not parts:
                continue
            data = np.concatenate(parts)
            dset = self.dsets[name]
            start = dset.shape[0]
            dset.resize(start + len(data), axis=0)
            dset[start:] = data
            parts.clear()
        self._pending = 0

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        self.file.attrs["n_events"] = self.n_events
        self.file.attrs["n_clusters"] = self.n_clusters
        self.file.close()


def read_table(path: str | Path, name: str = "clusters") -> pd.DataFrame:
    """One table (events, clusters or pixels) of an output file as a DataFrame."""
    if name not in TABLES:
        raise RecoInputError(f"unknown table {name!r}; expected one of {sorted(TABLES)}")
    with open_reco(Path(path)) as f:
        return pd.DataFrame(f[name][()])


def read_attrs(path: str | Path) -> dict[str, Any]:
    """Provenance attributes of an output file (config and identities decoded from JSON)."""
    with open_reco(Path(path)) as f:
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    for key in ("config", "input", "pedestal"):
        if isinstance(attrs.get(key), str):
            attrs[key] = json.loads(attrs[key])
    return attrs


def open_reco(path: Path) -> h5py.File:
    """Open an output file and check that it is one."""
    f = open_h5(path, "reconstruction output")
    if f.attrs.get("format") != FORMAT or any(t not in f for t in TABLES):
        f.close()
        raise RecoInputError(f"{path}: not a reconstruction output file (format {FORMAT})")
    return f


def cluster_pixels(path: str | Path, event: int) -> list[pd.DataFrame]:
    """Full-resolution pixels (x, y, value) of each cluster of one event."""
    with open_reco(Path(path)) as f:
        cl = f["clusters"][()]
        sel = cl[cl["event"] == event]
        return [
            pd.DataFrame(f["pixels"][int(c["pixel_offset"]) : int(c["pixel_offset"]) + int(c["pixel_count"])])
            for c in sel
        ]
