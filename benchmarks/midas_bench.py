"""Benchmark of MIDAS input: reader throughput per gzip library, and reconstruction from .mid.gz vs HDF5 raw.

Run: .venv/bin/python -m benchmarks.midas_bench [--frames 24] [--size 2304] [--level 6] [--workers 1,2]
Makes one synthetic run of 2304x2304 frames (12 objects each), stores it as HDF5 raw and as a MIDAS file
compressed by Python's gzip at level 6 (the `gzip` command's default, as the DAQ compresses run<N>.mid),
then measures in the same run:
  - MB/s of frames delivered by the MIDAS reader with each gzip library (ISA-L, the default; zlib-ng and
    rapidgzip when installed) against Python's gzip module on the same file, and from the uncompressed .mid;
  - frames/s of `reconstruct_run` from the .mid.gz against the same frames from HDF5 raw.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.reco_bench import cpu_model, make_data  # noqa: E402
from reco.config import RecoConfig  # noqa: E402
from reco.midasrun import MidasRun, write_midas_run  # noqa: E402
from reco.rawfile import RawRun  # noqa: E402
from reco.runner import reconstruct_run  # noqa: E402

TARGET_GBPS_PER_CORE = 1.0
TARGET_RECO_RATIO = 1.3


def write_midas_copy(h5: Path, mid_gz: Path, level: int) -> Path:
    """The frames of an HDF5 raw run as run<N>.mid, then gzip-compressed by Python's gzip at `level`."""
    mid = mid_gz.with_suffix("")
    with RawRun(h5) as raw:
        write_midas_run(mid, raw.frames(), run=raw.run, shape=raw.shape, camera=raw.camera, attrs=raw.attrs)
    with open(mid, "rb") as src, gzip.GzipFile(mid_gz, "wb", compresslevel=level, mtime=0) as dst:
        shutil.copyfileobj(src, dst, 1 << 22)
    return mid


def read_rate(path: Path, backend: str, repeat: int) -> tuple[float, float]:
    """Best MB/s of frames of `repeat` full passes of the MIDAS reader: wall clock, and per CPU-second."""
    wall = cpu = float("inf")
    nbytes = 0
    for _ in range(repeat):
        run = MidasRun(path, gzip_backend=backend)
        t, c = time.perf_counter(), time.process_time()
        nbytes = sum(f.nbytes for f in run.frames())
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return nbytes / wall / 1e6, nbytes / cpu / 1e6


def h5_read_rate(path: Path, repeat: int) -> float:
    """Best MB/s of frames read from an HDF5 raw file."""
    best, nbytes = float("inf"), 0
    for _ in range(repeat):
        with RawRun(path) as raw:
            t = time.perf_counter()
            nbytes = sum(f.nbytes for f in raw.frames())
            best = min(best, time.perf_counter() - t)
    return nbytes / best / 1e6


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the numbers and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", type=int, default=2304, help="frame side (ORCA-Fusion: 2304)")
    ap.add_argument("--level", type=int, default=6, help="gzip level of the .mid.gz (gzip's default: 6)")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts for the reco comparison")
    ap.add_argument("--repeat", type=int, default=2, help="passes per reader measurement (best is kept)")
    args = ap.parse_args(argv)
    cfg = RecoConfig()
    with tempfile.TemporaryDirectory(prefix="midas_bench_") as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        h5, ped = make_data(d, args.frames, args.size)
        mid_gz = d / "run09001.mid.gz"
        mid = write_midas_copy(h5, mid_gz, args.level)
        frame_mb = args.frames * args.size * args.size * 2 / 1e6
        print(
            f"data: {args.frames} frames {args.size}x{args.size} uint16 = {frame_mb:.0f} MB of frames; "
            f".mid.gz (gzip -{args.level}) {mid_gz.stat().st_size / 1e6:.0f} MB, HDF5 raw (Blosc/LZ4) "
            f"{h5.stat().st_size / 1e6:.0f} MB; made in {time.perf_counter() - t0:.0f} s"
        )
        print(
            f"machine: {cpu_model()}, {len(os.sched_getaffinity(0))} usable cores, load {os.getloadavg()[0]:.1f}"
        )

        print(
            f"\nMIDAS reader, MB/s of frames delivered (whole run, best of {args.repeat} passes; wall clock and"
        )
        print("per CPU-second of the process, i.e. per core, which depends less on other load):")
        backends = ["gzip", "isal"]
        if importlib.util.find_spec("zlib_ng"):
            backends.append("zlib-ng")
        if importlib.util.find_spec("rapidgzip"):
            backends += ["rapidgzip:1", f"rapidgzip:{len(os.sched_getaffinity(0))}"]
        rates = {b: read_rate(mid_gz, b, args.repeat) for b in backends}
        base = rates["gzip"]
        for b, (r, c) in rates.items():
            label = "Python gzip (baseline)" if b == "gzip" else b
            print(
                f"  {label:24s} {r:7.0f} MB/s  x{r / base[0]:4.2f} vs Python gzip;  "
                f"{c:6.0f} MB/s per core  x{c / base[1]:4.2f}"
            )
        plain = read_rate(mid, "isal", args.repeat)
        print(f"  {'uncompressed .mid':24s} {plain[0]:7.0f} MB/s  (parsing and copying only)")
        print(f"  {'HDF5 raw (Blosc/LZ4)':24s} {h5_read_rate(h5, args.repeat):7.0f} MB/s  (for comparison)")
        best = max(rates, key=lambda b: rates[b][0])
        print(f"fastest here: {best}; the reader uses isal (ISA-L) by default")

        print("\nreconstruction (reco.runner.reconstruct_run), same frames:")
        reconstruct_run(h5, ped, d / "warm.h5", cfg, max_frames=1)  # numba cache
        ratios = {}
        for w in [int(x) for x in args.workers.split(",")]:
            fps, cpu = {}, {}
            for label, src in (("HDF5 raw", h5), (".mid.gz", mid_gz)):
                t, c = time.perf_counter(), time.process_time()
                s = reconstruct_run(src, ped, d / f"out_{w}_{src.name}.h5", cfg, workers=w)
                fps[label] = s.n_events / (time.perf_counter() - t)
                cpu[label] = 1e3 * (time.process_time() - c) / s.n_events
            ratios[w] = fps["HDF5 raw"] / fps[".mid.gz"]
            print(
                f"  {w} worker(s): HDF5 raw {fps['HDF5 raw']:6.1f} frames/s ({cpu['HDF5 raw']:.0f} CPU-ms/frame), "
                f".mid.gz {fps['.mid.gz']:6.1f} frames/s ({cpu['.mid.gz']:.0f} CPU-ms/frame) "
                f"-> HDF5/.mid.gz = {ratios[w]:.2f}x"
            )
        isal_gbps = rates["isal"][1] / 1e3
        ok_read = isal_gbps >= TARGET_GBPS_PER_CORE
        ok_reco = min(ratios.values()) <= TARGET_RECO_RATIO
        print(
            f"\ntarget >= {TARGET_GBPS_PER_CORE:.0f} GB/s of frames per core (isal, per CPU-second): "
            f"{'met' if ok_read else 'NOT met'} ({isal_gbps:.2f} GB/s); "
            f"target .mid.gz within {TARGET_RECO_RATIO}x of HDF5 raw: {'met' if ok_reco else 'NOT met'} "
            f"(best {min(ratios.values()):.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
