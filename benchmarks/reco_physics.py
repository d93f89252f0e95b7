"""Physics validation of the reconstruction across a grid of generator settings.

Run: .venv/bin/python -m benchmarks.reco_physics [--frames 150] [--size 1152] [--workers 2]
     [--settings default,bright-0.5,...] [--json results.json]
For each generator setting (the `lime` model with its defaults, then brightness x0.5 / x2, diffusion
x0.5 / x1.5, no / double multiple scattering, 15 objects per frame, and the `easy` set) it simulates
a run, builds its pedestal, reconstructs it with the default chain and with the previous chain (one
DBSCAN pass, zero-suppressed integral) and prints efficiency, fragments, merges, fakes and the energy
response per kind, then the per-energy-bin table of the default setting and the calibration check of
the generator (how much of the electron recoils' length lies at 1.5-4 sigma of pixel noise).
Everything is seeded: the same command prints the same numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reco.config import RecoConfig  # noqa: E402
from reco.metrics import compute_metrics  # noqa: E402
from reco.pedestal import compute_pedestal, write_pedestal  # noqa: E402
from reco.rawfile import RawRun  # noqa: E402
from reco.runner import reconstruct_run  # noqa: E402
from reco.simulate import SimConfig, er_path, simulate  # noqa: E402

# name -> (preset, scaled(...) arguments, other overrides)
SETTINGS: dict[str, tuple[str, dict[str, float], dict[str, Any]]] = {
    "default": ("lime", {}, {}),
    "bright-0.5": ("lime", {"brightness": 0.5}, {}),
    "bright-2": ("lime", {"brightness": 2.0}, {}),
    "diffusion-0.5": ("lime", {"diffusion": 0.5}, {}),
    "diffusion-1.5": ("lime", {"diffusion": 1.5}, {}),
    "curvature-0": ("lime", {"curvature": 0.0}, {}),
    "curvature-2": ("lime", {"curvature": 2.0}, {}),
    "objects-15": ("lime", {}, {"mean_objects": 15.0}),
    "easy": ("easy", {}, {}),
}
CHAINS = {"new": RecoConfig(), "previous": RecoConfig(eps_tail=0)}
KINDS = ("er", "fe55", "nr", "spot", "track")


def sim_config(setting: str, frames: int, size: int, seed: int) -> SimConfig:
    """Generator parameters of one grid point."""
    preset, scale, extra = SETTINGS[setting]
    base = {"height": size, "width": size, "n_frames": frames, "seed": seed, "run": 5001}
    base.update({"mean_objects": 4.0, "empty_fraction": 0.1, **extra})
    return SimConfig.preset(preset, **base).scaled(**scale)


def run_setting(d: Path, cfg: SimConfig, workers: int) -> dict[str, dict[str, Any]]:
    """Simulate, build the pedestal, reconstruct with each chain; metrics per chain."""
    sim = simulate(d, cfg)
    with RawRun(sim.pedestal_run) as raw:
        ped = write_pedestal(d / "ped.h5", compute_pedestal(raw), sim.pedestal_run)
    out = {}
    for name, rcfg in CHAINS.items():
        res = reconstruct_run(sim.run, ped, d / f"{name}.h5", rcfg, workers=workers)
        m = compute_metrics(res.output, sim.truth)
        if name == "previous":  # that chain's energy estimate was the zero-suppressed integral
            for k in m["by_kind"].values():
                k["response"], k["resolution"] = k["integral_response"], k["integral_resolution"]
        out[name] = m
    return out


def _f(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def grid_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Markdown table: one row per setting and chain."""
    head = (
        "| setting | chain | objects | clean eff. | ER clean | 55Fe clean | NR clean | ER frag. | merged |"
        " fakes/frame | ER resp. | 55Fe resp. | NR resp. | 55Fe res. | 55Fe spot resp. | 55Fe spot res. |"
    )
    lines = [head, "|" + " --- |" * 16]
    for setting, chains in results.items():
        for chain, m in chains.items():
            k = m["by_kind"]
            if "er" not in k:  # the easy set: spots and tracks
                er, fe, nr = k.get("track", {}), k.get("spot", {}), {}
            else:
                er, fe, nr = k["er"], k["fe55"], k["nr"]
            lines.append(
                f"| {setting} | {chain} | {m['tracks']} | {_f(m['clean_efficiency'])} | "
                f"{_f(er.get('clean_efficiency'))} | {_f(fe.get('clean_efficiency'))} | "
                f"{_f(nr.get('clean_efficiency'))} | {_f(er.get('fragment_rate'), True)} | "
                f"{_f(m['merge_rate'], True)} | {m['fakes_per_frame']:.3f} | {_f(er.get('response'))} | "
                f"{_f(fe.get('response'))} | {_f(nr.get('response'))} | {_f(fe.get('resolution'), True)} | "
                f"{_f(fe.get('spot_response'))} | {_f(fe.get('spot_resolution'), True)} |"
            )
    return "\n".join(lines)


def bins_table(m: dict[str, Any]) -> str:
    """Markdown table per kind and energy bin."""
    lines = [
        "| kind | keV | objects | eff. | clean eff. | frag. | merged | response | resolution | energy res. |"
        " spot resp. | spot res. |",
        "|" + " --- |" * 12,
    ]
    for kind in KINDS:
        k = m["by_kind"].get(kind)
        if not k:
            continue
        for b in [{"kev_lo": None, **k}, *k["energy_bins"]]:
            kev = "all" if b["kev_lo"] is None else f"{b['kev_lo']:g}–{b['kev_hi'] if b['kev_hi'] else '∞'}"
            lines.append(
                f"| {kind} | {kev} | {b['tracks']} | {_f(b['efficiency'])} | {_f(b['clean_efficiency'])} | "
                f"{_f(b['fragment_rate'], True)} | {_f(b['merge_rate'], True)} | {_f(b['response'])} | "
                f"{_f(b['resolution'], True)} | {_f(b['energy_resolution'], True)} | "
                f"{_f(b['spot_response'])} | {_f(b['spot_resolution'], True)} |"
            )
    return "\n".join(lines)


def calibration(cfg: SimConfig, n: int = 300) -> str:
    """Share of electron-recoil path length whose noise-free peak pixel is < 1.5, 1.5-4, > 4 sigma."""
    rng = np.random.default_rng(5)
    rows = []
    for _ in range(n):
        energy = float(rng.uniform(*cfg.er_kev))
        z = rng.uniform(0.0, cfg.drift_cm)
        sig = np.sqrt(cfg.diffusion_sigma0_mm**2 + cfg.diffusion_mm_per_sqrt_cm**2 * z) / cfg.pixel_size_mm
        x, y, w = er_path(cfg, rng, energy)
        x, y = x - x.min() + 4 * sig + 2, y - y.min() + 4 * sig + 2
        img = np.zeros((int(y.max() + 4 * sig + 4), int(x.max() + 4 * sig + 4)))
        np.add.at(img, (y.astype(int), x.astype(int)), w / w.sum() * energy * cfg.photons_per_kev)
        peak = ndimage.gaussian_filter(img, sig)[y.astype(int), x.astype(int)] * cfg.adc_per_photon
        snr = peak / cfg.noise_sigma
        step = np.hypot(np.diff(x, prepend=x[0]), np.diff(y, prepend=y[0]))
        total = max(step.sum(), 1e-9)
        rows.append(
            (
                energy,
                total,
                *(float(step[m].sum() / total) for m in (snr < 1.5, (snr >= 1.5) & (snr < 4), snr >= 4)),
            )
        )
    r = np.array(rows)
    lines = [
        "| ER keV | tracks | median projected length (px) | < 1.5 σ | 1.5–4 σ | > 4 σ |",
        "|" + " --- |" * 6,
    ]
    for lo, hi in ((5, 20), (20, 40), (40, 80)):
        s = r[(r[:, 0] >= lo) & (r[:, 0] < hi)]
        lines.append(
            f"| {lo}–{hi} | {len(s)} | {np.median(s[:, 1]):.0f} | {s[:, 2].mean():.2f} | {s[:, 3].mean():.2f} | "
            f"{s[:, 4].mean():.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the grid and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150, help="frames per setting")
    ap.add_argument("--size", type=int, default=1152, help="frame side (pixels)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated grid points")
    ap.add_argument("--json", type=Path, help="also write all metrics as JSON")
    args = ap.parse_args(argv)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    t0 = time.perf_counter()
    for setting in args.settings.split(","):
        cfg = sim_config(setting, args.frames, args.size, args.seed)
        with tempfile.TemporaryDirectory(prefix="reco_physics_") as tmp:
            results[setting] = run_setting(Path(tmp), cfg, args.workers)
        m = results[setting]["new"]
        print(f"{setting}: {m['tracks']} objects, clean {m['clean_efficiency']:.3f}", file=sys.stderr)
    print(f"## Grid ({args.frames} frames of {args.size}x{args.size} per setting, seed {args.seed})\n")
    print(grid_table(results))
    if "default" in results:
        print("\n## Default generator, default chain, per kind and energy bin\n")
        print(bins_table(results["default"]["new"]))
    print("\n## Generator calibration: electron-recoil path length by noise-free peak pixel / pixel noise\n")
    print(calibration(SimConfig()))
    print(f"\n({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
