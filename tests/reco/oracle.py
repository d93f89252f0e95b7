"""Plain numpy/scipy/scikit-learn implementation of the chain: the reference the numba code must match."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from sklearn.cluster import DBSCAN

from reco.config import RecoConfig
from reco.directional import MASK64, frame_seed


@dataclass
class OracleResult:
    """Oracle output for one frame."""

    spark: bool
    points: tuple[np.ndarray, np.ndarray, np.ndarray]
    labels: np.ndarray
    features: np.ndarray
    pixels: list[np.ndarray]  # per cluster: (n, 3) x, y, value


def preprocess(raw: np.ndarray, mean: np.ndarray, thr: np.ndarray, cfg: RecoConfig):
    """Zero-suppressed image, macro image and the spark mean."""
    v = raw.astype(np.float32) - mean
    zs = np.where((raw < cfg.cimax) & (v > thr), v, np.float32(0)).astype(np.float32)

    p = np.pad(zs, ((0, 1), (0, 1)), mode="edge")
    quad = np.sort(np.stack([p[:-1, :-1], p[:-1, 1:], p[1:, :-1], p[1:, 1:]]), axis=0)
    med = (quad[1] + quad[2]) * np.float32(0.5)
    r = cfg.rebin
    h, w = zs.shape
    macro = (med.reshape(h // r, r, w // r, r).astype(np.float64).sum(axis=(1, 3)) / (r * r)).astype(
        np.float32
    )
    return zs, macro, float(v.astype(np.float64).mean())


def points(macro: np.ndarray, cfg: RecoConfig):
    """Noise-reduced macro-pixels (row-major) and their weights."""
    active = macro > cfg.macro_threshold
    count = ndimage.convolve(active.astype(np.int32), np.ones((3, 3), np.int32), mode="constant")
    keep = active & (count >= cfg.min_neighbors_average * 9.0)
    ys, xs = np.nonzero(keep)
    return ys, xs, macro[ys, xs]


def dbscan(ys, xs, ws, cfg: RecoConfig, eps: int | None = None, min_samples: float | None = None):
    """scikit-learn weighted DBSCAN with the cityblock metric: labels (and core flags)."""
    return _dbscan(ys, xs, ws, eps or cfg.eps, min_samples or cfg.min_samples)[0]


def _dbscan(ys, xs, ws, eps, min_samples) -> tuple[np.ndarray, np.ndarray]:
    if len(ys) == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    db = DBSCAN(eps=eps, min_samples=min_samples, metric="cityblock")
    db.fit(np.c_[ys, xs].astype(np.float64), sample_weight=ws.astype(np.float64))
    core = np.zeros(len(ys), bool)
    core[db.core_sample_indices_] = True
    return db.labels_, core


def first_point_order(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0, 1, ... in order of each cluster's first point (-1 kept)."""
    out = np.full(len(labels), -1, np.int64)
    seen: dict[int, int] = {}
    for k, c in enumerate(labels):
        if c >= 0:
            out[k] = seen.setdefault(int(c), len(seen))
    return out


def two_pass_dbscan(ys, xs, ws, cfg: RecoConfig) -> np.ndarray:
    """Seeds from DBSCAN(eps, min_samples); clusters of DBSCAN(eps_tail, min_samples_tail) holding a seed core."""
    labels, core = _dbscan(ys, xs, ws, cfg.eps, cfg.min_samples)
    if not cfg.eps_tail or not len(labels) or labels.max() < 0:
        return labels
    tail, _ = _dbscan(ys, xs, ws, max(cfg.eps_tail, cfg.eps), min(cfg.min_samples_tail, cfg.min_samples))
    seeded = np.unique(tail[core & (tail >= 0)])
    return first_point_order(np.where(np.isin(tail, seeded), tail, -1))


def _splitmix(state: int) -> tuple[int, int]:
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def directional(ys, xs, ws, labels, cfg: RecoConfig, event: int) -> np.ndarray:
    """Seeded RANSAC regrowth of straight clusters, written with numpy."""
    lab = labels.astype(np.int64).copy()
    fx, fy, fw = xs.astype(np.float64), ys.astype(np.float64), ws.astype(np.float64)
    nlab = int(lab.max()) + 1 if len(lab) else 0
    sizes = np.bincount(lab[lab >= 0], minlength=nlab)
    state = frame_seed(cfg.seed, event)
    for c in np.argsort(-sizes, kind="stable"):
        members = np.nonzero(lab == c)[0]
        m = len(members)
        if m < cfg.dir_minsamples:
            continue
        total = fw[members].sum()
        best, bi, bj = -1.0, -1, -1
        for _ in range(cfg.dir_iterations):
            state, r1 = _splitmix(state)
            state, r2 = _splitmix(state)
            i, j = members[r1 % m], members[r2 % m]
            d = np.array([fx[j] - fx[i], fy[j] - fy[i]])
            norm = np.hypot(*d)
            if norm == 0:
                continue
            dx, dy = d / norm
            inl = fw[members][
                np.abs((fx[members] - fx[i]) * dy - (fy[members] - fy[i]) * dx) <= cfg.dir_thickness
            ].sum()
            if inl > best:
                best, bi, bj = inl, i, j
        if bi < 0 or best < cfg.dir_min_accuracy * total:
            continue
        d = np.array([fx[bj] - fx[bi], fy[bj] - fy[bi]])
        dx, dy = d / np.hypot(*d)
        inl = members[np.abs((fx[members] - fx[bi]) * dy - (fy[members] - fy[bi]) * dx) <= cfg.dir_thickness]
        cx, cy = np.average(fx[inl], weights=fw[inl]), np.average(fy[inl], weights=fw[inl])
        cov = np.cov(np.c_[fx[inl], fy[inl]].T, aweights=fw[inl], bias=True)
        theta = 0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])
        ux, uy = np.cos(theta), np.sin(theta)
        t_all = (fx - cx) * ux + (fy - cy) * uy
        d_all = np.abs(-(fx - cx) * uy + (fy - cy) * ux)
        tmin, tmax = t_all[inl].min(), t_all[inl].max()
        while True:
            band = (
                (d_all <= cfg.dir_thickness)
                & (t_all >= tmin - cfg.dir_radius)
                & (t_all <= tmax + cfg.dir_radius)
            )
            lab[band] = c
            nmin, nmax = min(tmin, t_all[band].min()), max(tmax, t_all[band].max())
            if nmin == tmin and nmax == tmax:
                break
            tmin, tmax = nmin, nmax
    return lab


def features(zs: np.ndarray, ys, xs, labels, cfg: RecoConfig):
    """Feature matrix and pixel lists, computed per cluster with numpy."""
    r = cfg.rebin
    macro_lab = np.full((zs.shape[0] // r, zs.shape[1] // r), -1, np.int64)
    macro_lab[ys, xs] = labels
    full_lab = np.repeat(np.repeat(macro_lab, r, axis=0), r, axis=1)
    nclu = int(labels.max()) + 1 if len(labels) else 0
    feats, pixels = [], []
    for c in range(nclu):
        y, x = np.nonzero((full_lab == c) & (zs > 0))
        v = zs[y, x].astype(np.float64)
        pixels.append(np.c_[x, y, v])
        if len(v) == 0:
            feats.append([0.0] * 17)
            continue
        ncell = int((labels == c).sum())
        s = v.sum()
        xm, ym = (v * x).sum() / s, (v * y).sum() / s
        cov = np.cov(np.c_[x, y].T.astype(np.float64), aweights=v, bias=True)
        theta = 0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])
        lam = np.sort(np.clip(np.linalg.eigvalsh(cov), 0, None))[::-1]
        u = (x - xm) * np.cos(theta) + (y - ym) * np.sin(theta)
        w = -(x - xm) * np.sin(theta) + (y - ym) * np.cos(theta)
        feats.append(
            [
                s,
                ncell * r * r,
                len(v),
                v.std(),
                xm,
                ym,
                x.min(),
                x.max(),
                y.min(),
                y.max(),
                theta,
                np.ptp(u) + 1,
                np.ptp(w) + 1,
                np.sqrt(lam[0]),
                np.sqrt(lam[1]),
                0.0,  # sc_light, filled by light()
                0.0,  # sc_spotlight, filled by spot_light()
            ]
        )
    return np.array(feats).reshape(-1, 17), pixels


def light(
    raw, mean, thr, sigma, ys, xs, labels, cfg: RecoConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sc_light: raw - mean - row offset summed over each cluster's macro-pixels grown by light_ring.

    Also returns the frame's v = raw - mean - row offset (float64) and its usable pixels (for spot_light).
    """
    r, ring = cfg.rebin, cfg.light_ring
    big = 2**30
    grid = np.full((raw.shape[0] // r, raw.shape[1] // r), big, np.int64)
    grid[ys[labels >= 0], xs[labels >= 0]] = labels[labels >= 0]
    grown = ndimage.minimum_filter(grid, size=2 * ring + 1, mode="constant", cval=big)
    own = np.where(grid != big, grid, grown)
    full = np.repeat(np.repeat(own, r, axis=0), r, axis=1)
    v = raw.astype(np.float32) - mean
    ratio = np.float32(cfg.row_clip / cfg.nsigma) if cfg.nsigma > 0 else np.float32(0)
    quiet = (np.abs(v) <= thr * ratio) & (full == big)
    n = quiet.sum(axis=1)
    off = np.where(n > 0, np.where(quiet, v, 0).astype(np.float64).sum(axis=1) / np.maximum(n, 1), 0.0)
    if sigma is None:
        sigma = thr / np.float32(cfg.nsigma)
    good = (sigma <= cfg.noisy_factor * np.median(sigma)) & (raw < cfg.cimax)
    usable = good & (full != big)
    vals = v.astype(np.float64) - off[:, None]
    nclu = int(labels.max()) + 1
    return np.bincount(full[usable], weights=vals[usable], minlength=nclu)[:nclu], vals, good


def _clip_cov(c: np.ndarray, lo: float, hi: float) -> np.ndarray:
    lam, vec = np.linalg.eigh(c)
    return vec @ np.diag(np.clip(lam, lo, hi)) @ vec.T


def _quad(cov: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    ci = np.linalg.inv(cov)
    return ci[0, 0] * dx * dx + 2 * ci[0, 1] * dx * dy + ci[1, 1] * dy * dy


def spot_light(vals, good, var, feats, cfg: RecoConfig) -> np.ndarray:
    """sc_spotlight: adaptive-moment Gaussian spot, fitted amplitude, Wiener mix of data and model."""
    out = feats[:, 15].copy()
    half = cfg.spot_half
    if half == 0:
        return out
    hi, lo = max((half / 3) ** 2, 0.25), 0.25
    for c, f in enumerate(feats):
        cx, cy = f[4], f[5]
        if f[2] == 0 or max(cx - f[6], f[7] - cx, cy - f[8], f[9] - cy) > half:
            continue
        yc, xc = int(np.floor(cy + 0.5)), int(np.floor(cx + 0.5))
        nh, nw = vals.shape
        win = np.s_[max(yc - half, 0) : min(yc + half + 1, nh), max(xc - half, 0) : min(xc + half + 1, nw)]
        yy, xx = np.mgrid[win]
        dx, dy = xx - cx, yy - cy
        d, ok, vv = vals[win], good[win], var[win].astype(np.float64)
        rot = np.array([[np.cos(f[10]), -np.sin(f[10])], [np.sin(f[10]), np.cos(f[10])]])
        cov = _clip_cov(rot @ np.diag([f[13] ** 2, f[14] ** 2]) @ rot.T, lo, hi)

        for _ in range(5):
            gd = np.exp(-0.5 * _quad(cov, dx, dy))[ok] * d[ok]
            s = gd.sum()
            if s <= 0:
                break
            m = np.array([[gd @ dx[ok] ** 2, gd @ (dx * dy)[ok]], [gd @ (dx * dy)[ok], gd @ dy[ok] ** 2]]) / s
            if np.linalg.det(m) <= 0 or m[0, 0] <= 0:
                break
            p = np.linalg.inv(m) - np.linalg.inv(cov)
            posdef = p[0, 0] > 0 and np.linalg.det(p) > 0
            cov = _clip_cov(np.linalg.inv(p) if posdef else 2 * m, lo, hi)
        q = _quad(cov, dx, dy)
        g = np.exp(-0.5 * q) / (2 * np.pi * np.sqrt(np.linalg.det(cov)))
        w = np.exp(-0.5 * q / 4.0)
        if (w * g)[ok].sum() <= 0:
            continue
        model = (w * d)[ok].sum() / (w * g)[ok].sum() * g
        sig = cfg.spot_kappa * np.clip(model, 0, None)
        den = sig + vv
        wi = np.where(den > 0, sig / np.where(den > 0, den, 1), 1.0)
        out[c] = np.where(ok, wi * d + (1 - wi) * model, model).sum()
    return out


def reconstruct(
    raw: np.ndarray, mean: np.ndarray, thr: np.ndarray, cfg: RecoConfig, event: int = 0, sigma=None
):
    """The whole chain for one frame (`sigma`: the pedestal's noise map, else thr / nsigma)."""
    zs, macro, mean_signal = preprocess(raw, mean, thr, cfg)
    if cfg.spark_veto and mean_signal > cfg.spark_threshold:
        e = np.zeros(0, np.int64)
        return OracleResult(True, (e, e, np.zeros(0, np.float32)), e, np.zeros((0, 17)), [])
    ys, xs, ws = points(macro, cfg)
    labels = two_pass_dbscan(ys, xs, ws, cfg)
    if cfg.directional and len(labels) and labels.max() >= 0:
        labels = first_point_order(directional(ys, xs, ws, labels, cfg, event))
    feats, pixels = features(zs, ys, xs, labels, cfg)
    empty = [c for c, p in enumerate(pixels) if len(p) == 0]
    if empty:  # clusters without full-resolution hits are dropped
        kept = np.array([c for c in range(len(pixels)) if c not in empty])
        remap = np.full(len(pixels), -1)
        remap[kept] = np.arange(len(kept))
        labels = np.where(labels >= 0, remap[np.maximum(labels, 0)], -1)
        feats, pixels = features(zs, ys, xs, labels, cfg)
    if len(feats):
        sigma = thr / np.float32(cfg.nsigma) if sigma is None else sigma
        feats[:, 15], vals, good = light(raw, mean, thr, sigma, ys, xs, labels, cfg)
        feats[:, 16] = spot_light(vals, good, np.square(sigma, dtype=np.float32), feats, cfg)
    return OracleResult(False, (ys, xs, ws), labels, feats, pixels)
