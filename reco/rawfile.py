"""Raw run files: camera frames (and optional PMT waveforms) in HDF5."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from reco.atomic import atomic_output
from reco.errors import RecoInputError

try:  # optional fast path: decompress Blosc chunks outside h5py's global lock
    import blosc2
except ImportError:  # pragma: no cover - blosc2 comes with PyTables
    blosc2 = None

log = logging.getLogger(__name__)

BLOSC_FILTER = "32001"

FORMAT = "cygno-raw"
FORMAT_VERSION = 1
FRAME_DTYPES = (np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.float64))


def frame_filter() -> Mapping[str, Any]:
    """HDF5 filter for frames: Blosc/LZ4 with byte shuffle (needs `import hdf5plugin` to read)."""
    return hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)


class RawRunWriter:
    """Appends frames to a raw run file being written; `finish` sets its attributes."""

    def __init__(
        self,
        file: h5py.File,
        shape: tuple[int, int],
        dtype: np.dtype | type = np.uint16,
        name: Path | None = None,
    ) -> None:
        self.file = file
        self.name = name or Path(file.filename)  # named in errors (the final path, not the temporary one)
        self.shape = (int(shape[0]), int(shape[1]))
        self.frames = file.create_dataset(
            "frames",
            shape=(0, *self.shape),
            maxshape=(None, *self.shape),
            dtype=dtype,
            chunks=(1, *self.shape),
            **frame_filter(),
        )
        self.n = 0

    def append(self, frame: np.ndarray) -> None:
        """Add one frame."""
        if frame.shape != self.shape:
            raise RecoInputError(
                f"{self.name}: frame {self.n} has shape {frame.shape}, expected {self.shape}"
            )
        self.frames.resize(self.n + 1, axis=0)
        self.frames[self.n] = frame
        self.n += 1

    def finish(
        self,
        *,
        run: int,
        camera: str,
        run_type: str,
        pixel_size_mm: float,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the run attributes."""
        self.file.attrs.update(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "run": int(run),
                "camera": camera,
                "run_type": run_type,
                "pixel_size_mm": float(pixel_size_mm),
                "height": self.shape[0],
                "width": self.shape[1],
                "n_frames": self.n,
            }
        )
        for key, value in (attrs or {}).items():
            self.file.attrs[key] = value


def write_raw_run(
    path: str | Path,
    frames: Iterable[np.ndarray] | np.ndarray,
    *,
    run: int,
    shape: tuple[int, int],
    camera: str = "ORCA-Fusion",
    run_type: str = "physics",
    pixel_size_mm: float = 0.152,
    pmt: np.ndarray | None = None,
    attrs: Mapping[str, Any] | None = None,
    dtype: np.dtype | type = np.uint16,
) -> Path:
    """Write a raw run file (one compressed chunk per frame), atomically."""
    path = Path(path)
    with atomic_output(path) as tmp, h5py.File(tmp, "w", track_order=False) as f:
        writer = RawRunWriter(f, shape, dtype, path)
        for frame in frames:
            writer.append(frame)
        n = writer.n
        if pmt is not None:
            if len(pmt) != n:
                raise RecoInputError(f"{path}: {len(pmt)} PMT waveforms for {n} frames")
            f.create_dataset("pmt", data=pmt, chunks=(1, *pmt.shape[1:]), compression="gzip")
        writer.finish(run=run, camera=camera, run_type=run_type, pixel_size_mm=pixel_size_mm, attrs=attrs)
    log.info("wrote raw run %d (%d frames %dx%d) to %s", run, n, shape[0], shape[1], path)
    return path


def open_h5(path: Path, what: str) -> h5py.File:
    """Open an HDF5 file for reading, turning any failure into a RecoInputError."""
    if not path.exists():
        raise RecoInputError(f"{path}: {what} not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise RecoInputError(f"{path}: cannot open {what} (truncated or not HDF5): {exc}") from exc


class RawRun:
    """Validated read access to a raw run file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = open_h5(self.path, "raw run file")
        try:
            self._validate()
        except BaseException:
            self._file.close()
            raise

    def _validate(self) -> None:
        f, p = self._file, self.path
        if "frames" not in f or not isinstance(f["frames"], h5py.Dataset):
            raise RecoInputError(f"{p}: no 'frames' dataset (not a raw run file)")
        dset = f["frames"]
        if dset.ndim != 3:
            raise RecoInputError(f"{p}: 'frames' has {dset.ndim} dimensions, expected 3 (frame, y, x)")
        if dset.dtype not in FRAME_DTYPES:
            raise RecoInputError(f"{p}: 'frames' has dtype {dset.dtype}, expected uint16 or float")
        self.dataset = dset
        self.dtype = dset.dtype
        self.n_frames: int | None = int(dset.shape[0])
        self.shape: tuple[int, int] = (int(dset.shape[1]), int(dset.shape[2]))
        declared = (f.attrs.get("height"), f.attrs.get("width"))
        if None not in declared and tuple(int(v) for v in declared) != self.shape:
            raise RecoInputError(
                f"{p}: frames have shape {self.shape} but the run attributes declare "
                f"height x width = {declared[0]} x {declared[1]}"
            )
        if "run" not in f.attrs:
            raise RecoInputError(f"{p}: missing run attribute 'run'")
        self.run = int(f.attrs["run"])
        self.camera = str(f.attrs.get("camera", "unknown"))
        self.run_type = str(f.attrs.get("run_type", "physics"))
        if "pmt" in f and len(f["pmt"]) != self.n_frames:
            raise RecoInputError(f"{p}: 'pmt' has {len(f['pmt'])} waveforms for {self.n_frames} frames")
        self._direct = (
            blosc2 is not None
            and dset.chunks == (1, *self.shape)
            and set(dset._filters) == {BLOSC_FILTER}
            and dset.dtype.isnative
        )

    @property
    def attrs(self) -> dict[str, Any]:
        """Run attributes as plain Python values."""
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self._file.attrs.items()}

    def read(self, index: int, out: np.ndarray | None = None) -> np.ndarray:
        """Frame `index`, checked for readability and NaNs."""
        if not 0 <= index < self.n_frames:
            raise RecoInputError(f"{self.path}: frame {index} out of range (0..{self.n_frames - 1})")
        if out is None:
            out = np.empty(self.shape, dtype=self.dataset.dtype)
        if not (self._direct and self._read_chunk(index, out)):
            try:
                self.dataset.read_direct(out, np.s_[index])
            except (OSError, RuntimeError, ValueError) as exc:
                raise RecoInputError(f"{self.path}: frame {index}: cannot read ({exc})") from exc
        if out.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(out)))
            if bad:
                raise RecoInputError(f"{self.path}: frame {index} has {bad} NaN/inf pixels")
        return out

    def frames(self, max_frames: int | None = None) -> Iterator[np.ndarray]:
        """Frames in order (at most `max_frames`), each in a new array."""
        n = self.n_frames if max_frames is None else min(max_frames, self.n_frames)
        for i in range(n):
            yield self.read(i)

    def _read_chunk(self, index: int, out: np.ndarray) -> bool:
        """Read a frame's raw Blosc chunk and decompress it into `out`; False if that is not possible."""
        try:
            mask, data = self.dataset.id.read_direct_chunk((index, 0, 0))
            if mask or blosc2.get_cbuffer_sizes(data)[0] != out.nbytes:
                return False
            blosc2.decompress(data, dst=out)
        except Exception:  # any problem: the regular HDF5 read below reports it properly
            return False
        return True

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> RawRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
