"""Numba cluster features on full-resolution pixels (CYGNO sc_* names)."""

from __future__ import annotations

import logging

import numba as nb
import numpy as np

from reco.preprocess import zs_value

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
    "sc_spotlight",
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
    F_SPOTLIGHT,
) = range(NF)
SPOT_ITERATIONS = 5  # adaptive-moment iterations of the spot shape
SPOT_WIDEN = 4.0  # variance ratio of the amplitude weight to the spot's (a Gaussian twice as wide)
SPOT_MIN_VAR = 0.25  # px^2: smallest spot variance along an axis


@nb.njit(cache=True, nogil=True)
def gather_pixels(
    raw: np.ndarray,
    mean: np.ndarray,
    thr: np.ndarray,
    cimax: int,
    ys: np.ndarray,
    xs: np.ndarray,
    labels: np.ndarray,
    nclu: int,
    rebin: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Zero-suppressed (non-zero) full-resolution pixels of each cluster's macro-pixels, by cluster."""
    counts = np.zeros(nclu, np.int64)
    ncells = np.zeros(nclu, np.int64)
    for k in range(ys.shape[0]):
        lab = labels[k]
        if lab < 0:
            continue
        ncells[lab] += 1
        for i in range(ys[k] * rebin, (ys[k] + 1) * rebin):
            for j in range(xs[k] * rebin, (xs[k] + 1) * rebin):
                if zs_value(raw[i, j], mean[i, j], thr[i, j], cimax) > 0:
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
                v = zs_value(raw[i, j], mean[i, j], thr[i, j], cimax)
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
def row_offsets(
    raw: np.ndarray,
    mean: np.ndarray,
    thr: np.ndarray,
    clip_ratio: float,
    row_sum: np.ndarray,
    row_n: np.ndarray,
    fy: np.ndarray,
    fx: np.ndarray,
    rebin: int,
) -> np.ndarray:
    """Each row's common offset: the mean of its noise-dominated values outside all light footprints.

    Noise-dominated: |v| <= clip_ratio * thr; excluding the footprints keeps the clusters' own light out.
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
    return off


@nb.njit(cache=True, nogil=True)
def light_sums(
    raw: np.ndarray,
    mean: np.ndarray,
    usable: np.ndarray,
    cimax: int,
    off: np.ndarray,
    fy: np.ndarray,
    fx: np.ndarray,
    fc: np.ndarray,
    nclu: int,
    rebin: int,
) -> np.ndarray:
    """Per cluster, the sum of raw-mean minus the row offset over its footprint's usable pixels."""
    out = np.zeros(nclu, np.float64)
    for k in range(fy.shape[0]):
        c = fc[k]
        for i in range(fy[k] * rebin, (fy[k] + 1) * rebin):
            for j in range(fx[k] * rebin, (fx[k] + 1) * rebin):
                if usable[i, j] and raw[i, j] < cimax:
                    out[c] += (np.float32(raw[i, j]) - mean[i, j]) - off[i]
    return out


@nb.njit(cache=True, nogil=True)
def _clip_cov(a: float, b: float, c: float, lo: float, hi: float) -> tuple[float, float, float]:
    """Covariance [[a, b], [b, c]] with its eigenvalues clipped into [lo, hi]."""
    half_tr = 0.5 * (a + c)
    disc = np.sqrt(0.25 * (a - c) ** 2 + b * b)
    l1 = min(max(half_tr + disc, lo), hi)
    l2 = min(max(half_tr - disc, lo), hi)
    phi = 0.5 * np.arctan2(2.0 * b, a - c)
    cs = np.cos(phi)
    sn = np.sin(phi)
    return l1 * cs * cs + l2 * sn * sn, (l1 - l2) * cs * sn, l1 * sn * sn + l2 * cs * cs


@nb.njit(cache=True, nogil=True)
def _inverse_cov(a: float, b: float, c: float) -> tuple[float, float, float, float]:
    """Inverse [[ia, ib], [ib, ic]] of the covariance [[a, b], [b, c]], and its determinant."""
    det = a * c - b * b
    return c / det, -b / det, a / det, det


@nb.njit(cache=True, nogil=True)
def _gauss_window(ia: float, ib: float, ic: float, oy: float, ox: float, out: np.ndarray) -> None:
    """out[r, k] = exp(-q / 2), q = ia dx^2 + 2 ib dx dy + ic dy^2 with dx = k - ox, dy = r - oy.

    Three exp per row instead of one per pixel: along a row q is quadratic in dx, so from the row's
    largest value (its pixel nearest the minimum of q) each step outward multiplies by a ratio that
    itself shrinks by exp(-ia) per step. Every factor is <= 1, so nothing overflows; values only
    underflow where they are negligible, and the products agree with exp to ~1e-14 (relative).
    """
    ny, nx = out.shape
    shrink = np.exp(-ia)
    for r in range(ny):
        dy = r - oy
        k0 = min(max(int(np.floor(ox - ib * dy / ia + 0.5)), 0), nx - 1)
        dx = k0 - ox
        e0 = np.exp(-0.5 * (ia * dx * dx + 2.0 * ib * dx * dy + ic * dy * dy))
        row = out[r]
        row[k0] = e0
        e = e0
        ratio = np.exp(-0.5 * (ia * (2.0 * dx + 1.0) + 2.0 * ib * dy))  # from k to k + 1, for k = k0
        for k in range(k0 + 1, nx):
            e *= ratio
            ratio *= shrink
            row[k] = e
        e = e0
        ratio = np.exp(-0.5 * (ia * (1.0 - 2.0 * dx) - 2.0 * ib * dy))  # from k to k - 1, for k = k0
        for k in range(k0 - 1, -1, -1):
            e *= ratio
            ratio *= shrink
            row[k] = e


@nb.njit(cache=True, nogil=True)
def spot_light(
    raw: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    usable: np.ndarray,
    cimax: int,
    off: np.ndarray,
    feats: np.ndarray,
    half: int,
    kappa: float,
) -> np.ndarray:
    """Noise-weighted light of each cluster taken as one spot (sc_spotlight); sc_light when it is not compact.

    Compact: all the cluster's hits within `half` pixels (x and y) of its centroid. In the
    (2 half + 1)^2 window around the centroid: the spot's covariance by adaptive
    Gaussian moments (started from the cluster's sigmas and axis), its amplitude A by a least-squares
    fit with a Gaussian weight twice as wide, then the light = sum over the window of
    w d + (1 - w) A g per pixel, where d = raw - mean - row offset, g the unit spot model, and
    w = kappa A g / (kappa A g + sigma^2) the Wiener weight: bright pixels count as measured, faint ones
    (noise-dominated) as the model predicts, unusable or saturated pixels fully from the model.
    The window's d (0 where unusable) and Gaussians live in buffers allocated once per call.
    """
    height, width = raw.shape
    nclu = feats.shape[0]
    out = feats[:, F_LIGHT].copy()
    if half <= 0:
        return out
    hi = max((half / 3.0) ** 2, SPOT_MIN_VAR)
    two_pi = 2.0 * np.pi
    side = 2 * half + 1
    dbuf = np.empty((side, side))
    gbuf = np.empty((side, side))
    wbuf = np.empty((side, side))
    okbuf = np.empty((side, side), np.bool_)
    for c in range(nclu):
        if feats[c, F_NHITS] == 0:
            continue
        cx = feats[c, F_XMEAN]
        cy = feats[c, F_YMEAN]
        reach = max(
            cx - feats[c, F_XMIN], feats[c, F_XMAX] - cx, cy - feats[c, F_YMIN], feats[c, F_YMAX] - cy
        )
        if reach > half:  # not compact: its hits must all lie in the window
            continue
        i0 = max(int(np.floor(cy + 0.5)) - half, 0)
        i1 = min(int(np.floor(cy + 0.5)) + half + 1, height)
        j0 = max(int(np.floor(cx + 0.5)) - half, 0)
        j1 = min(int(np.floor(cx + 0.5)) + half + 1, width)
        ny = i1 - i0
        nx = j1 - j0
        oy = cy - i0
        ox = cx - j0
        d = dbuf[:ny, :nx]
        ok = okbuf[:ny, :nx]
        g = gbuf[:ny, :nx]
        for r in range(ny):
            i = i0 + r
            for k in range(nx):
                j = j0 + k
                good = usable[i, j] and raw[i, j] < cimax
                ok[r, k] = good
                d[r, k] = np.float64(np.float32(raw[i, j]) - mean[i, j]) - off[i] if good else 0.0
        ls = feats[c, F_LSIGMA] ** 2
        ts = feats[c, F_TSIGMA] ** 2
        ct = np.cos(feats[c, F_THETA])
        st = np.sin(feats[c, F_THETA])
        a, b, cc = _clip_cov(
            ls * ct * ct + ts * st * st, (ls - ts) * ct * st, ls * st * st + ts * ct * ct, SPOT_MIN_VAR, hi
        )
        for _ in range(SPOT_ITERATIONS):
            ia, ib, ic, _ = _inverse_cov(a, b, cc)
            _gauss_window(ia, ib, ic, oy, ox, g)
            s = 0.0
            sxx = 0.0
            sxy = 0.0
            syy = 0.0
            for r in range(ny):
                dy = r - oy
                for k in range(nx):
                    dx = k - ox
                    gd = g[r, k] * d[r, k]
                    s += gd
                    sxx += gd * dx * dx
                    sxy += gd * dx * dy
                    syy += gd * dy * dy
            if s <= 0.0:
                break
            ma = sxx / s
            mb = sxy / s
            mc = syy / s
            mdet = ma * mc - mb * mb
            if mdet <= 0.0 or ma <= 0.0:
                break
            pa = mc / mdet - ia  # the profile's inverse covariance: M^-1 - W^-1 for Gaussians
            pb = -mb / mdet - ib
            pc = ma / mdet - ic
            pdet = pa * pc - pb * pb
            if pa > 0.0 and pdet > 0.0:
                a, b, cc = _clip_cov(pc / pdet, -pb / pdet, pa / pdet, SPOT_MIN_VAR, hi)
            else:
                a, b, cc = _clip_cov(2.0 * ma, 2.0 * mb, 2.0 * mc, SPOT_MIN_VAR, hi)
        ia, ib, ic, det = _inverse_cov(a, b, cc)
        norm = 1.0 / (two_pi * np.sqrt(det))
        _gauss_window(ia, ib, ic, oy, ox, g)
        w = wbuf[:ny, :nx]
        _gauss_window(ia / SPOT_WIDEN, ib / SPOT_WIDEN, ic / SPOT_WIDEN, oy, ox, w)
        swd = 0.0
        swg = 0.0
        for r in range(ny):
            for k in range(nx):
                if ok[r, k]:
                    swd += w[r, k] * d[r, k]
                    swg += w[r, k] * g[r, k] * norm
        if swg <= 0.0:
            continue
        amp = swd / swg
        total = 0.0
        for r in range(ny):
            vr = var[i0 + r]
            for k in range(nx):
                model = amp * g[r, k] * norm
                if ok[r, k]:
                    sig = kappa * max(model, 0.0)
                    den = sig + vr[j0 + k]
                    wt = sig / den if den > 0.0 else 1.0
                    total += wt * d[r, k] + (1.0 - wt) * model
                else:
                    total += model
        out[c] = total
    return out
