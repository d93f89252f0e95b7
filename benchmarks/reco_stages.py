"""Per-stage time of the reconstruction chain on 2304x2304 frames in memory (where a frame's time goes).

Run: .venv/bin/python -m benchmarks.reco_stages [--frames 12] [--repeats 5] [--preset easy|lime]
Each stage of `FrameReconstructor` is timed on every frame (minimum of `--repeats` runs, which removes
most of the noise of a shared machine), then summed over frames; ratios between stages come from the
same run. The frames are those of `benchmarks/reco_bench.py`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.reco_bench import make_data  # noqa: E402
from reco.config import RecoConfig  # noqa: E402
from reco.dbscan import grid_dbscan, seeded_clusters  # noqa: E402
from reco.features import (  # noqa: E402
    F_LIGHT,
    cluster_features,
    gather_pixels,
    light_footprint,
    light_sums,
    row_offsets,
    spot_light,
)
from reco.frame import Calibration, FrameReconstructor, drop_small  # noqa: E402
from reco.pedestal import load_pedestal  # noqa: E402
from reco.preprocess import active_points, preprocess  # noqa: E402
from reco.rawfile import RawRun  # noqa: E402


def _best(fn, repeats: int):
    """(minimum seconds, result) of `repeats` calls of fn()."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def stage_times(rec: FrameReconstructor, raw: np.ndarray, repeats: int) -> dict[str, float]:
    """Seconds per stage of one frame (the same calls as FrameReconstructor.__call__)."""
    cfg, calib, t = rec.cfg, rec.calib, {}
    t["zero suppression + 2x2 median + rebin"], _ = _best(
        lambda: preprocess(
            raw,
            calib.mean,
            calib.threshold,
            cfg.cimax,
            cfg.rebin,
            rec.macro,
            rec.clip_ratio,
            rec.row_sum,
            rec.row_n,
            rec.rows,
        ),
        repeats,
    )
    t["noise reductor"], (ys, xs, ws) = _best(
        lambda: active_points(rec.macro, cfg.macro_threshold, cfg.min_neighbors_average), repeats
    )
    mh, mw = rec.macro.shape

    def cluster():
        labels, core, nlab = grid_dbscan(ys, xs, ws, mh, mw, cfg.eps, float(cfg.min_samples))
        tail, _, ntail = grid_dbscan(ys, xs, ws, mh, mw, *cfg.tail_pass)
        labels, nlab = seeded_clusters(tail, ntail, core)
        return drop_small(labels, nlab, cfg.cluster_cut_min)

    t["DBSCAN (seed + tail)"], (labels, nlab) = _best(cluster, repeats)
    t["gather pixels"], (offsets, px, py, pv, ncells) = _best(
        lambda: gather_pixels(raw, calib.mean, calib.threshold, cfg.cimax, ys, xs, labels, nlab, cfg.rebin),
        repeats,
    )
    t["features"], feats = _best(lambda: cluster_features(offsets, px, py, pv, ncells, cfg.rebin), repeats)
    t["light footprint"], (fy, fx, fc) = _best(
        lambda: light_footprint(ys, xs, labels, mh, mw, cfg.light_ring), repeats
    )
    t["row offsets"], off = _best(
        lambda: row_offsets(
            raw, calib.mean, calib.threshold, rec.clip_ratio, rec.row_sum, rec.row_n, fy, fx, cfg.rebin
        ),
        repeats,
    )
    t["light sums"], feats[:, F_LIGHT] = _best(
        lambda: light_sums(raw, calib.mean, calib.usable, cfg.cimax, off, fy, fx, fc, nlab, cfg.rebin),
        repeats,
    )
    t["spot light"], _ = _best(
        lambda: spot_light(
            raw,
            calib.mean,
            calib.variance,
            calib.usable,
            cfg.cimax,
            off,
            feats,
            cfg.spot_half,
            cfg.spot_kappa,
        ),
        repeats,
    )
    t["whole frame (FrameReconstructor)"], _ = _best(lambda: rec(raw), repeats)
    return t


def main(argv: list[str] | None = None) -> int:
    """Print the per-stage table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=2304)
    ap.add_argument("--preset", default="easy", choices=["easy", "lime"])
    args = ap.parse_args(argv)
    cfg = RecoConfig()
    with tempfile.TemporaryDirectory(prefix="reco_stages_") as tmp:
        raw_path, ped_path = make_data(Path(tmp), args.frames, args.size, args.preset)
        rec = FrameReconstructor(Calibration.from_pedestal(load_pedestal(ped_path), cfg), cfg)
        total: dict[str, float] = {}
        with RawRun(raw_path) as run:
            rec(run.read(0))  # compile / load the numba cache
            for k in range(args.frames):
                for name, sec in stage_times(rec, run.read(k), args.repeats).items():
                    total[name] = total.get(name, 0.0) + sec
    whole = total.pop("whole frame (FrameReconstructor)")
    print(f"per frame, min of {args.repeats} repeats, mean over {args.frames} frames ({args.preset}):")
    for name, sec in total.items():
        ms = 1e3 * sec / args.frames
        print(f"  {name:38s} {ms:6.2f} ms  {100 * sec / whole:5.1f}%")
    print(f"  {'sum of stages':38s} {1e3 * sum(total.values()) / args.frames:6.2f} ms")
    print(f"  {'whole frame':38s} {1e3 * whole / args.frames:6.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
