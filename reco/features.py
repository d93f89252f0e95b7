"""Numba cluster features on full-resolution pixels (CYGNO sc_* names)."""

from __future__ import annotations

import logging

import numba as nb
import numpy as np

log = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = (
    "sc_integral",
    "sc_size",
    "sc_nhits",
    "sc_rms",
    "sc_xmean",
    "sc_ymean",
    "sc_xmin",
    "sc_xmax",
    "sc_ymin",
    "sc_ymax",
    "sc_theta",
    "sc_length",
    "sc_width",
    "sc_lgausssigma",
    "sc_tgausssigma",
    "sc_light",
)
INTEGER_FEATURES = frozenset({"sc_size", "sc_nhits", "sc_xmin", "sc_xmax", "sc_ymin", "sc_ymax"})
NF = len(FEATURES)
(
    F_INTEGRAL,
    F_SIZE,
    F_NHITS,
    F_RMS,
    F_XMEAN,
    F_YMEAN,
    F_XMIN,
    F_XMAX,
    F_YMIN,
    F_YMAX,
    F_THETA,
    F_LENGTH,
    F_WIDTH,
    F_LSIGMA,
    F_TSIGMA,
    F_LIGHT,
) = range(NF)


@nb.njit(cache=True, nogil=True)
def gather_pixels(
    zs: np.ndarray, ys: np.ndarray, xs: np.ndarray, labels: np.ndarray, nclu: int, rebin: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero full-resolution pixels of each cluster's macro-pixels, grouped by cluster."""
    counts = np.zeros(nclu, np.int64)
    ncells = np.zeros(nclu, np.int64)
    for k in range(ys.shape[0]):
        lab = labels[k]
        if lab < 0:
            continue
        ncells[lab] += 1
        for i in range(ys[k] * rebin, (ys[k] + 1) * rebin):
            for j in range(xs[k] * rebin, (xs[k] + 1) * rebin):
                if zs[i, j] > 0:
                    counts[lab] += 1
    offsets = np.zeros(nclu + 1, np.int64)
    for c in range(nclu):
        offsets[c + 1] = offsets[c] + counts[c]
    total = offsets[nclu]
    px = np.empty(total, np.uint16)
    py = np.empty(total, np.uint16)
    pv = np.empty(total, np.float32)
    fill = offsets[:nclu].copy()
    for k in range(ys.shape[0]):
        lab = labels[k]
        if lab < 0:
            continue
        for i in range(ys[k] * rebin, (ys[k] + 1) * rebin):
            for j in range(xs[k] * rebin, (xs[k] + 1) * rebin):
                v = zs[i, j]
                if v > 0:
                    f = fill[lab]
                    px[f] = j
                    py[f] = i
                    pv[f] = v
                    fill[lab] = f + 1
    return offsets, px, py, pv, ncells


@nb.njit(cache=True, nogil=True)
def cluster_features(
    offsets: np.ndarray, px: np.ndarray, py: np.ndarray, pv: np.ndarray, ncells: np.ndarray, rebin: int
) -> np.ndarray:
    """Feature matrix (cluster x FEATURES) from each cluster's contiguous pixel list."""
    nclu = offsets.shape[0] - 1
    out = np.zeros((nclu, NF), np.float64)
    for c in range(nclu):
        a = offsets[c]
        b = offsets[c + 1]
        n = b - a
        out[c, 1] = ncells[c] * rebin * rebin
        out[c, 2] = n
        if n == 0:
            continue
        x0 = np.float64(px[a])
        y0 = np.float64(py[a])
        s = 0.0
        sx = 0.0
        sy = 0.0
        sxx = 0.0
        syy = 0.0
        sxy = 0.0
        sv2 = 0.0
        xmin = px[a]
        xmax = px[a]
        ymin = py[a]
        ymax = py[a]
        for k in range(a, b):
            v = np.float64(pv[k])
            dx = np.float64(px[k]) - x0
            dy = np.float64(py[k]) - y0
            s += v
            sv2 += v * v
            sx += v * dx
            sy += v * dy
            sxx += v * dx * dx
            syy += v * dy * dy
            sxy += v * dx * dy
            xmin = min(xmin, px[k])
            xmax = max(xmax, px[k])
            ymin = min(ymin, py[k])
            ymax = max(ymax, py[k])
        mx = sx / s
        my = sy / s
        cxx = max(sxx / s - mx * mx, 0.0)
        cyy = max(syy / s - my * my, 0.0)
        cxy = sxy / s - mx * my
        theta = 0.5 * np.arctan2(2.0 * cxy, cxx - cyy)
        half_tr = 0.5 * (cxx + cyy)
        disc = np.sqrt(max(0.25 * (cxx - cyy) ** 2 + cxy * cxy, 0.0))
        lam1 = half_tr + disc
        lam2 = max(half_tr - disc, 0.0)
        ct = np.cos(theta)
        st = np.sin(theta)
        umin = np.inf
        umax = -np.inf
        wmin = np.inf
        wmax = -np.inf
        for k in range(a, b):
            dx = np.float64(px[k]) - x0 - mx
            dy = np.float64(py[k]) - y0 - my
            u = dx * ct + dy * st
            w = -dx * st + dy * ct
            umin = min(umin, u)
            umax = max(umax, u)
            wmin = min(wmin, w)
            wmax = max(wmax, w)
        mean_v = s / n
        out[c, 0] = s
        out[c, 3] = np.sqrt(max(sv2 / n - mean_v * mean_v, 0.0))
        out[c, 4] = x0 + mx
        out[c, 5] = y0 + my
        out[c, 6] = xmin
        out[c, 7] = xmax
        out[c, 8] = ymin
        out[c, 9] = ymax
        out[c, 10] = theta
        out[c, 11] = umax - umin + 1.0
        out[c, 12] = wmax - wmin + 1.0
        out[c, 13] = np.sqrt(lam1)
        out[c, 14] = np.sqrt(lam2)
    return out


@nb.njit(cache=True, nogil=True)
def light_footprint(
    ys: np.ndarray, xs: np.ndarray, labels: np.ndarray, shape_y: int, shape_x: int, ring: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Macro-pixels (y, x, cluster) of each cluster grown by `ring`; a ring cell goes to the lowest label."""
    grid = np.full((shape_y, shape_x), -1, np.int32)
    n = 0
    for k in range(ys.shape[0]):
        if labels[k] >= 0:
            grid[ys[k], xs[k]] = labels[k]
            n += 1
    own = grid.copy()
    cap = n * (2 * ring + 1) * (2 * ring + 1)
    fy = np.empty(cap, np.int32)
    fx = np.empty(cap, np.int32)
    m = 0
    for k in range(ys.shape[0]):
        c = labels[k]
        if c < 0:
            continue
        fy[m] = ys[k]
        fx[m] = xs[k]
        m += 1
        for y in range(max(ys[k] - ring, 0), min(ys[k] + ring + 1, shape_y)):
            for x in range(max(xs[k] - ring, 0), min(xs[k] + ring + 1, shape_x)):
                if grid[y, x] < 0:
                    if own[y, x] < 0:
                        fy[m] = y
                        fx[m] = x
                        m += 1
                        own[y, x] = c
                    elif c < own[y, x]:
                        own[y, x] = c
    fc = np.empty(m, np.int32)
    for k in range(m):
        fc[k] = own[fy[k], fx[k]]
    return fy[:m], fx[:m], fc


@nb.njit(cache=True, nogil=True)
def light_sums(
    raw: np.ndarray,
    mean: np.ndarray,
    thr: np.ndarray,
    usable: np.ndarray,
    cimax: int,
    clip_ratio: float,
    row_sum: np.ndarray,
    row_n: np.ndarray,
    fy: np.ndarray,
    fx: np.ndarray,
    fc: np.ndarray,
    nclu: int,
    rebin: int,
) -> np.ndarray:
    """Per cluster, the sum of raw-mean minus the row offset over its footprint's usable pixels.

    A row's offset is the mean of its noise-dominated values (|v| <= clip_ratio * thr) outside all
    footprints, so the clusters' own light does not bias it.
    """
    height = raw.shape[0]
    rs = row_sum.copy()
    rn = row_n.copy()
    ratio = np.float32(clip_ratio)
    for k in range(fy.shape[0]):
        for i in range(fy[k] * rebin, (fy[k] + 1) * rebin):
            for j in range(fx[k] * rebin, (fx[k] + 1) * rebin):
                v = np.float32(raw[i, j]) - mean[i, j]
                if abs(v) <= thr[i, j] * ratio:
                    rs[i] -= v
                    rn[i] -= 1
    off = np.zeros(height, np.float64)
    for i in range(height):
        if rn[i] > 0:
            off[i] = rs[i] / rn[i]
    out = np.zeros(nclu, np.float64)
    for k in range(fy.shape[0]):
        c = fc[k]
        for i in range(fy[k] * rebin, (fy[k] + 1) * rebin):
            for j in range(fx[k] * rebin, (fx[k] + 1) * rebin):
                if usable[i, j] and raw[i, j] < cimax:
                    out[c] += (np.float32(raw[i, j]) - mean[i, j]) - off[i]
    return out
