"""Where the 55Fe spot light resolution comes from: photon clumps (shape) against pixel noise.

Run: .venv/bin/python -m benchmarks.reco_spot_floor [--frames 150] [--setting default]
Simulates one grid point of benchmarks/reco_physics, reconstructs it, and for each 55Fe spot found alone
(no other object within 40 px) compares light estimates against the true light. Estimates that know the
spot's true diffusion (a matched filter, apertures of 2.5 and 3 sigma) are split into their error on the
noise-free photon image (the spot's own shape fluctuations: clumps of photons from each electron, the
short track) and on the noise alone; the chain's sc_light and sc_spotlight are on the real frames.
No linear estimate can beat the quadrature sum of its two parts, which bounds what any spot fit reaches.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.reco_physics import sim_config  # noqa: E402
from reco.config import RecoConfig  # noqa: E402
from reco.features import F_LIGHT, F_SPOTLIGHT, F_XMEAN, F_YMEAN  # noqa: E402
from reco.frame import Calibration, FrameReconstructor  # noqa: E402
from reco.metrics import load_truth  # noqa: E402
from reco.pedestal import compute_pedestal  # noqa: E402
from reco.rawfile import RawRun  # noqa: E402
from reco.simulate import simulate  # noqa: E402

HALF = 24


def spots(setting: str, frames: int, seed: int) -> list[dict]:
    """Per isolated 55Fe spot: true photons and diffusion, data and truth cut-outs, chain estimates."""
    cfg = sim_config(setting, frames, 1152, seed)
    out = []
    with tempfile.TemporaryDirectory(prefix="reco_spot_") as tmp:
        sim = simulate(Path(tmp), cfg)
        with RawRun(sim.pedestal_run) as raw:
            ped = compute_pedestal(raw)
        calib = Calibration.from_pedestal(ped, RecoConfig())
        rec = FrameReconstructor(calib, RecoConfig())
        tracks, tpix, _ = load_truth(sim.truth)
        with RawRun(sim.run) as raw:
            for ev in range(raw.n_frames):
                frame = raw.read(ev)
                res = rec(frame, ev)
                tt = tracks[tracks.event == ev]
                if not res.n_clusters or not len(tt):
                    continue
                v = frame.astype(np.float32) - calib.mean
                quiet = np.abs(v) <= 3 * ped.sigma
                img = v - (np.where(quiet, v, 0).sum(1) / np.maximum(quiet.sum(1), 1))[:, None]
                cx_all, cy_all = 0.5 * (tt.x0 + tt.x1).to_numpy(), 0.5 * (tt.y0 + tt.y1).to_numpy()
                for k, t in enumerate(tt.itertuples()):
                    dist = np.hypot(cx_all - cx_all[k], cy_all - cy_all[k])
                    if t.kind != "fe55" or np.sort(dist)[1:2].min(initial=1e9) < 40:
                        continue
                    f = res.features
                    near = np.hypot(f[:, F_XMEAN] - cx_all[k], f[:, F_YMEAN] - cy_all[k])
                    c = int(np.argmin(near))
                    if near[c] > 6:  # not found as one cluster
                        continue
                    x0, y0 = int(round(f[c, F_XMEAN])), int(round(f[c, F_YMEAN]))
                    if min(x0, y0) < HALF or max(x0, y0) >= cfg.width - HALF:
                        continue
                    win = np.s_[y0 - HALF : y0 + HALF + 1, x0 - HALF : x0 + HALF + 1]
                    tp = tpix[(tpix.event == ev) & (tpix.track == t.track)]
                    truth = np.zeros((2 * HALF + 1, 2 * HALF + 1))
                    iy, ix = tp.y.to_numpy() - y0 + HALF, tp.x.to_numpy() - x0 + HALF
                    ok = (iy >= 0) & (iy <= 2 * HALF) & (ix >= 0) & (ix <= 2 * HALF)
                    np.add.at(truth, (iy[ok], ix[ok]), tp.photons.to_numpy()[ok] * cfg.adc_per_photon)
                    out.append(
                        {
                            "light": t.photons * cfg.adc_per_photon,
                            "s2": t.diffusion**2 + cfg.electron_spread_px**2 + 1 / 12,
                            "dx": f[c, F_XMEAN] - x0,
                            "dy": f[c, F_YMEAN] - y0,
                            "data": img[win].astype(np.float64),
                            "truth": truth,
                            "sc_light": f[c, F_LIGHT],
                            "sc_spotlight": f[c, F_SPOTLIGHT],
                        }
                    )
    return out


def estimate(s: dict, image: np.ndarray, kind: str) -> float:
    """Light of `image` by an estimator that knows the spot's true (round) diffusion."""
    yy, xx = np.mgrid[-HALF : HALF + 1, -HALF : HALF + 1]
    q = ((xx - s["dx"]) ** 2 + (yy - s["dy"]) ** 2) / s["s2"]
    if kind == "matched filter":
        g = np.exp(-0.5 * q)
        return float((g * image).sum() / (g * g).sum() * g.sum())
    if kind == "Wiener mix":  # sc_spotlight's formula with the true shape and the pixel variance 4 ADC^2
        g = np.exp(-0.5 * q) / (2 * np.pi * s["s2"])
        wide = np.exp(-0.125 * q)
        model = max((wide * image).sum() / (wide * g).sum(), 0.0) * g
        w = 25.0 * model / (25.0 * model + 4.0)
        return float((w * image + (1 - w) * model).sum())
    k = float(kind.split()[1])
    return float(image[q < k * k].sum())


def rel(x: np.ndarray) -> str:
    return f"{100 * x.std(ddof=1) / x.mean():.1f}%"


def main(argv: list[str] | None = None) -> int:
    """Print the table of the spot light resolutions and their shape / noise parts."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--setting", default="default")
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args(argv)
    rows = spots(args.setting, args.frames, args.seed)
    light = np.array([s["light"] for s in rows])
    print(f"{len(rows)} isolated 55Fe spots ({args.setting}, {args.frames} frames, seed {args.seed})\n")
    print("| estimate | response | resolution | shape part (noise-free photons) | noise part |")
    print("| --- | --- | --- | --- | --- |")
    for kind in ("matched filter", "aperture 2.5", "aperture 3", "aperture 3.5"):
        full = np.array([estimate(s, s["data"], kind) for s in rows]) / light
        shape = np.array([estimate(s, s["truth"], kind) for s in rows]) / light
        noise = np.array([estimate(s, s["data"] - s["truth"], kind) for s in rows]) / light
        print(
            f"| {kind} (true diffusion) | {full.mean():.3f} | {rel(full)} | {rel(shape)} | "
            f"{100 * noise.std(ddof=1):.1f}% |"
        )
    full = np.array([estimate(s, s["data"], "Wiener mix") for s in rows]) / light
    print(f"| Wiener mix (true diffusion) | {full.mean():.3f} | {rel(full)} | | |")
    for col in ("sc_light", "sc_spotlight"):
        r = np.array([s[col] for s in rows]) / light
        print(f"| {col} (chain) | {r.mean():.3f} | {rel(r)} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
