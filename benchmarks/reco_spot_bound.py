"""Lower bounds on the 55Fe spot light resolution that the lime generator allows (issue 16: goal 3%).

Run: .venv/bin/python -m benchmarks.reco_spot_bound [--spots 200] [--seed 7] [--brightness 1]

The quantity measured is T, the photons of a spot that land on the sensor; an estimate sees
d_i = n_i + e_i per pixel (n_i photons, e_i pixel noise). Spots are drawn with the generator's own
functions (`er_path`, `_diffusion`, the Polya-Poisson photons of `_photons`), with the default
`SimConfig`, and each pixel gets the camera's noise sigma (2 ADC x lognormal 15%); the noise is taken as
Gaussian with that sigma (the generator's tails, telegraph pixels, row offsets and the rounding to
ADC counts are left out: they only add noise, so the bounds stay bounds). Two numbers per spot:

* **oracle bound** (any estimator, linear or not): an estimator told the position and gain of every
  ionisation electron knows each pixel's expected photons mu_i, and then the n_i are independent
  Poisson(mu_i) (thinning of the Poisson photons of each electron). Its best mean squared error is
  sum_i E[Var(n_i | d_i)], computed exactly per pixel (sum over n). Knowing more cannot hurt, so no
  estimator that does not know the electrons does better: this is a strict lower bound.
* **linear bound** (estimators linear in the data, as sc_light, apertures, matched filters and
  sc_spotlight's Wiener mix with a given model): the best linear unbiased-in-mean (LMMSE) estimate of T
  told the spot's true mean image mu_i (its track, energy deposits and diffusion) and the exact
  photon covariance of the generator, K = diag(mu) + E[X(X-1)] * integral rho p_i p_j (Poisson
  electrons of density rho, X photons per electron, p_i the chance that one of its photons lands in
  pixel i: the clumps make neighbouring pixels fluctuate together; both integrals are exact sums of
  separable terms, one per energy deposit). Its error variance is
  1'K1 - 1'K (K + S)^-1 K 1 with S the noise variances.

As a check of the linear bound, the estimate that attains it is also applied to each spot's simulated
pixels (its rms error must agree with the bound within the statistics). Both are printed as relative
resolutions, sqrt(mean over spots of error variance / T^2), overall and
in bins of the diffusion sigma; T is the spot's mean photon number.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.special import erf, gammaln

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reco.simulate import SimConfig, _diffusion, er_path  # noqa: E402

PAD = 4  # pixels around the electrons' extent: the photon spread is 0.7 px


def _pixel_prob(x: np.ndarray, lo: int, n: int, spread: float) -> np.ndarray:
    """[len(x), n]: chance that a photon emitted at x (spread `spread`) lands in pixels lo .. lo+n-1."""
    edges = lo + np.arange(n + 1)
    c = 0.5 * (1 + erf((edges[None, :] - x[:, None]) / (np.sqrt(2) * spread)))
    return np.diff(c, axis=1)


def posterior_var(mu: np.ndarray, sigma: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Var(n | d) per pixel for n ~ Poisson(mu), d = n + N(0, sigma^2) (exact sum over n)."""
    nmax = int(np.max(mu + 10 * np.sqrt(mu) + 15))
    n = np.arange(nmax + 1)[None, :]
    logp = n * np.log(np.maximum(mu, 1e-300))[:, None] - mu[:, None] - gammaln(n + 1)
    logl = -0.5 * ((d[:, None] - n) / sigma[:, None]) ** 2
    w = logp + logl
    w = np.exp(w - w.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    m1 = (w * n).sum(axis=1)
    return (w * n * n).sum(axis=1) - m1 * m1


def one_spot(cfg: SimConfig, rng: np.random.Generator) -> dict:
    """Draw one 55Fe spot as the generator does; its two bounds (photons^2) and its mean light."""
    energy = cfg.fe_kev[1] if rng.random() < cfg.fe_kbeta_fraction else cfg.fe_kev[0]
    sig = _diffusion(cfg, rng)
    x, y, w = er_path(cfg, rng, energy)
    share = w / w.sum()
    n_mean = energy * 1000.0 / cfg.w_value_ev  # ionisation electrons (Poisson)
    m = cfg.photons_per_kev * cfg.w_value_ev / 1000.0  # photons per electron (mean)
    shape = 1.0 + cfg.gain_theta
    ex2 = m * m * (1.0 + 1.0 / shape)  # E[X(X-1)] of the Poisson-Gamma photons per electron
    # the window: all pixels the spot can light
    x0 = int(np.floor(x.min() - 4 * sig - PAD))
    y0 = int(np.floor(y.min() - 4 * sig - PAD))
    nx = int(np.ceil(x.max() + 4 * sig + PAD)) - x0
    ny = int(np.ceil(y.max() + 4 * sig + PAD)) - y0
    noise = cfg.noise_sigma * rng.lognormal(0.0, cfg.noise_spread, ny * nx)
    # oracle: this spot's electrons and gains
    ne = rng.poisson(n_mean)
    k = rng.choice(len(x), size=ne, p=share)
    exs = x[k] + sig * rng.standard_normal(ne)
    eys = y[k] + sig * rng.standard_normal(ne)
    lam = m * rng.gamma(shape, 1.0 / shape, ne)
    px = _pixel_prob(exs, x0, nx, cfg.electron_spread_px)
    py = _pixel_prob(eys, y0, ny, cfg.electron_spread_px)
    mu = ((py * lam[:, None]).T @ px).ravel()
    photons = rng.poisson(mu)
    d = photons + noise * rng.standard_normal(mu.size)
    oracle = float(posterior_var(mu, noise, d).sum())
    # linear: the mean image and covariance given the track and diffusion, exact: the electron density
    # is a sum of round Gaussians (one per deposit), so both are sums of separable (Kronecker) terms
    mean_img = np.zeros(ny * nx)
    kmat = np.zeros((ny * nx, ny * nx))
    t = np.linspace(-6.0, 6.0, 481)
    wt = np.exp(-0.5 * t * t)
    wt /= wt.sum()
    for xk, yk, sk in zip(x, y, share, strict=True):
        px = _pixel_prob(xk + sig * t, x0, nx, cfg.electron_spread_px)  # [grid, pixel]
        py = _pixel_prob(yk + sig * t, y0, ny, cfg.electron_spread_px)
        mean_img += sk * np.kron(wt @ py, wt @ px)
        kmat += sk * np.kron((py * wt[:, None]).T @ py, (px * wt[:, None]).T @ px)
    mean_img *= m * n_mean
    kmat *= ex2 * n_mean
    kmat[np.diag_indices_from(kmat)] += mean_img
    k1 = kmat.sum(axis=1)
    vinv = np.linalg.inv(kmat + np.diag(noise**2))
    vk1 = vinv @ k1
    vf = vinv @ mean_img
    # universal kriging: the best linear estimate when the amplitude (the energy) is fitted, not known
    linear = float(k1.sum() - k1 @ vk1 + (mean_img.sum() - mean_img @ vk1) ** 2 / (mean_img @ vf))
    # check: that estimate applied to this spot's pixels (its squared error averages to `linear`)
    amp = (vf @ d) / (mean_img @ vf)
    kriged = amp * mean_img.sum() + vk1 @ (d - amp * mean_img)
    err2 = float((kriged - photons.sum()) ** 2)
    return {"sigma": sig, "light": m * n_mean, "oracle": oracle, "linear": linear, "applied": err2}


def main(argv: list[str] | None = None) -> int:
    """Print the bounds overall and per diffusion bin."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spots", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--brightness", type=float, default=1.0)
    ap.add_argument("--diffusion", type=float, default=1.0)
    args = ap.parse_args(argv)
    cfg = SimConfig().scaled(brightness=args.brightness, diffusion=args.diffusion)
    rng = np.random.default_rng(args.seed)
    rows = [one_spot(cfg, rng) for _ in range(args.spots)]
    sig = np.array([r["sigma"] for r in rows])
    print(
        f"{len(rows)} 55Fe spots of the lime generator (brightness x{args.brightness}, "
        f"diffusion x{args.diffusion}, seed {args.seed}), mean light {np.mean([r['light'] for r in rows]):.0f} ADC\n"
    )
    print(
        "| diffusion sigma (px) | spots | oracle bound (any estimator) | linear bound (true mean image) "
        "| that linear estimate applied to the spots |"
    )
    print("| --- | --- | --- | --- | --- |")
    edges = [0, 3, 4, 10]
    bins = [(a, b, f"{a}-{b}" if b < 10 else f">= {a}") for a, b in zip(edges[:-1], edges[1:], strict=True)]
    for lo, hi, label in [(0, 10, "all"), *bins]:
        sel = [r for r, s in zip(rows, sig, strict=True) if lo <= s < hi]
        if not sel:
            continue
        res = {
            key: 100 * np.sqrt(np.mean([r[key] / r["light"] ** 2 for r in sel]))
            for key in ("oracle", "linear", "applied")
        }
        print(
            f"| {label} | {len(sel)} | {res['oracle']:.2f}% | {res['linear']:.2f}% | {res['applied']:.2f}% |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
