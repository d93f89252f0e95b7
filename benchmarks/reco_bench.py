"""Benchmark of the reconstruction chain (HDF5 read -> features -> HDF5 write) on 2304x2304 frames.

Run: .venv/bin/python -m benchmarks.reco_bench [--frames N] [--oracle-frames M] [--workers 1,2]
     [--preset easy|lime]
Prints frames per second of the numba chain for each worker count and its ratio to the
numpy/scipy/scikit-learn oracle chain (tests/reco/oracle.py) measured on the same frames in the same run,
and the time of the previous single-pass chain (eps_tail = 0) and of the chain without the spot light
(spot_half = 0) on the same frames for comparison.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reco.config import RecoConfig  # noqa: E402
from reco.frame import Calibration, FrameResult  # noqa: E402
from reco.output import OutputWriter  # noqa: E402
from reco.pedestal import compute_pedestal, load_pedestal, write_pedestal  # noqa: E402
from reco.rawfile import RawRun  # noqa: E402
from reco.runner import reconstruct_run  # noqa: E402
from reco.simulate import SimConfig, simulate  # noqa: E402
from tests.reco import oracle  # noqa: E402

log = logging.getLogger(__name__)

TARGET_MS_PER_FRAME_PER_CORE = 20.0
TARGET_RATIO = 30.0


def make_data(d: Path, frames: int, size: int, preset: str = "easy") -> tuple[Path, Path]:
    """Simulated run of `frames` frames (size x size, 12 objects each) and its pedestal file."""
    cfg = SimConfig.preset(
        preset,
        height=size,
        width=size,
        n_frames=frames,
        pedestal_frames=20,
        seed=99,
        run=9001,
        empty_fraction=0.0,
        mean_objects=12,
        track_length=(100.0, 800.0),
    )
    sim = simulate(d, cfg)
    with RawRun(sim.pedestal_run) as raw:
        ped = write_pedestal(d / "ped.h5", compute_pedestal(raw), sim.pedestal_run)
    return sim.run, ped


def oracle_chain(raw_path: Path, ped_path: Path, out: Path, cfg: RecoConfig, n: int) -> int:
    """The oracle per frame, with the same HDF5 read and the same output writer."""
    ped = load_pedestal(ped_path)
    calib = Calibration.from_pedestal(ped, cfg)
    writer = OutputWriter(out, {"format": "cygno-reco-oracle"})
    with RawRun(raw_path) as raw:
        for i in range(n):
            res = oracle.reconstruct(raw.read(i), calib.mean, calib.threshold, cfg, i, ped.sigma)
            counts = [len(p) for p in res.pixels]
            pix = np.concatenate(res.pixels) if res.pixels else np.zeros((0, 3))
            fr = FrameResult(
                res.spark,
                0.0,
                res.features,
                np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                pix[:, 0].astype(np.uint16),
                pix[:, 1].astype(np.uint16),
                pix[:, 2].astype(np.float32),
                res.points,
                res.labels,
            )
            writer.append(raw.run, i, fr)
    writer.close()
    return writer.n_clusters


def cpu_model() -> str:
    """CPU model name (Linux), for the record."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48, help="frames for the numba chain")
    ap.add_argument("--oracle-frames", type=int, default=3, help="frames for the (slow) oracle chain")
    ap.add_argument("--size", type=int, default=2304, help="frame side (ORCA-Fusion: 2304)")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--preset", default="easy", choices=["easy", "lime"], help="generator of the frames")
    args = ap.parse_args(argv)
    cfg = RecoConfig()
    with tempfile.TemporaryDirectory(prefix="reco_bench_") as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        raw, ped = make_data(d, args.frames, args.size, args.preset)
        size_mb = raw.stat().st_size / 1e6
        print(
            f"data: {args.frames} frames {args.size}x{args.size} uint16, {args.preset} generator "
            f"({size_mb:.0f} MB compressed), "
            f"simulated in {time.perf_counter() - t0:.1f} s"
        )
        print(f"machine: {cpu_model()}, {len(os.sched_getaffinity(0))} usable cores")
        reconstruct_run(raw, ped, d / "warm.h5", cfg, max_frames=1)  # compile / load the numba cache
        results: dict[int, float] = {}
        for w in [int(x) for x in args.workers.split(",")]:
            t = time.perf_counter()
            s = reconstruct_run(raw, ped, d / f"numba{w}.h5", cfg, workers=w)
            results[w] = (time.perf_counter() - t) / args.frames
            print(
                f"numba chain, {w} worker(s): {1 / results[w]:7.2f} frames/s, {1e3 * results[w]:7.1f} ms/frame, "
                f"{1e3 * results[w] * w:7.1f} ms/frame/core ({s.n_clusters} clusters)"
            )
        t = time.perf_counter()
        s = reconstruct_run(raw, ped, d / "single.h5", cfg.replace(eps_tail=0), workers=1)
        single = (time.perf_counter() - t) / args.frames
        print(
            f"previous single-pass chain (eps_tail=0), 1 worker: {1e3 * single:7.1f} ms/frame "
            f"({s.n_clusters} clusters)"
        )
        t = time.perf_counter()
        reconstruct_run(raw, ped, d / "nospot.h5", cfg.replace(spot_half=0), workers=1)
        nospot = (time.perf_counter() - t) / args.frames
        print(f"without sc_spotlight (spot_half=0), 1 worker: {1e3 * nospot:7.1f} ms/frame")
        n_or = min(args.oracle_frames, args.frames)
        t = time.perf_counter()
        n_clu = oracle_chain(raw, ped, d / "oracle.h5", cfg, n_or)
        t_or = (time.perf_counter() - t) / n_or
        print(
            f"oracle chain (numpy/scipy/sklearn), 1 process: {1 / t_or:7.3f} frames/s, "
            f"{1e3 * t_or:7.1f} ms/frame ({n_or} frames, {n_clu} clusters)"
        )
        base = results.get(1, min(results.values()))
        print("ratios against the oracle (same frames, same run):")
        for w, per in results.items():
            print(f"  numba {w} worker(s): {t_or / per:6.1f}x")
        ok_speed = 1e3 * base <= TARGET_MS_PER_FRAME_PER_CORE
        ok_ratio = t_or / base >= TARGET_RATIO
        print(
            f"target <= {TARGET_MS_PER_FRAME_PER_CORE:.0f} ms/frame/core: {'met' if ok_speed else 'NOT met'} "
            f"({1e3 * base:.1f}); target >= {TARGET_RATIO:.0f}x oracle: {'met' if ok_ratio else 'NOT met'} "
            f"({t_or / base:.1f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
