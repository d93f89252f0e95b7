"""Numba kernels: pedestal subtraction, zero suppression, 2x2 median, rebin, noise reductor."""

from __future__ import annotations

import logging

import numba as nb
import numpy as np

log = logging.getLogger(__name__)


@nb.njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
def _row_clipped_sum(
    raw: np.ndarray, mean: np.ndarray, thr: np.ndarray, ratio: np.float32
) -> tuple[float, int]:
    """Sum and number of one row's values v = raw-mean with |v| <= ratio * thr.

    The float64 sum of these float32 values is exact (they are multiples of 2**-17 below 2**12), so the
    reassociation that lets it vectorise does not change the result.
    """
    s = 0.0
    n = 0
    for j in range(raw.shape[0]):
        v = np.float32(raw[j]) - mean[j]
        ok = abs(v) <= thr[j] * ratio
        s += np.float64(v) if ok else 0.0
        n += ok
    return s, n


@nb.njit(cache=True, nogil=True)
def zero_suppress(
    raw: np.ndarray,
    mean: np.ndarray,
    thr: np.ndarray,
    cimax: int,
    zs: np.ndarray,
    clip_ratio: float,
    row_sum: np.ndarray,
    row_n: np.ndarray,
) -> int:
    """Fill `zs` with raw-mean where raw < cimax and raw-mean > thr, else 0; return the sum of raw.

    Also fills, per row, the sum and number of the values v = raw-mean with |v| <= clip_ratio * thr
    (the noise-dominated pixels from which the row's common offset is estimated).
    """
    height, width = raw.shape
    total = 0
    zero = np.float32(0.0)
    ratio = np.float32(clip_ratio)
    for i in range(height):
        rr = raw[i]
        mm = mean[i]
        tt = thr[i]
        zz = zs[i]
        for j in range(width):
            r = rr[j]
            total += r
            v = np.float32(r) - mm[j]
            zz[j] = v if (r < cimax) & (v > tt[j]) else zero
        row_sum[i], row_n[i] = _row_clipped_sum(rr, mm, tt, ratio)
    return total


@nb.njit(cache=True, nogil=True)
def median_rebin(zs: np.ndarray, rebin: int, macro: np.ndarray) -> None:
    """Fill `macro` with the rebin x rebin block means of the 2x2 median of `zs` (edges replicated)."""
    height, width = zs.shape
    mh, mw = macro.shape
    half = np.float32(0.5)
    col = np.zeros(width, np.float64)  # float64 sums of float32 medians are exact: order-independent
    for bi in range(mh):
        col[:] = 0.0
        for i in range(bi * rebin, (bi + 1) * rebin):
            r0 = zs[i]
            r1 = zs[min(i + 1, height - 1)]
            for j in range(width - 1):
                a = r0[j]
                b = r0[j + 1]
                c = r1[j]
                d = r1[j + 1]
                lo1 = a if a < b else b
                hi1 = b if a < b else a
                lo2 = c if c < d else d
                hi2 = d if c < d else c
                second = lo1 if lo1 > lo2 else lo2
                third = hi1 if hi1 < hi2 else hi2
                col[j] += (second + third) * half
            j = width - 1  # right edge: the neighbour column is the pixel itself
            col[j] += (min(r0[j], r1[j]) + max(r0[j], r1[j])) * half
        for bj in range(mw):
            s = 0.0
            for k in range(bj * rebin, (bj + 1) * rebin):
                s += col[k]
            macro[bi, bj] = np.float32(s / (rebin * rebin))


@nb.njit(cache=True, nogil=True)
def active_points(
    macro: np.ndarray, macro_threshold: float, min_neighbors_average: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Macro-pixels above threshold whose 3x3 active fraction passes the noise reductor (row-major)."""
    mh, mw = macro.shape
    active = np.zeros((mh + 2, mw + 2), np.uint8)
    for i in range(mh):
        for j in range(mw):
            if macro[i, j] > macro_threshold:
                active[i + 1, j + 1] = 1
    need = min_neighbors_average * 9.0
    keep = np.zeros((mh, mw), np.uint8)
    n = 0
    for i in range(mh):
        for j in range(mw):
            if active[i + 1, j + 1]:
                count = 0
                for di in range(3):
                    for dj in range(3):
                        count += active[i + di, j + dj]
                if count >= need:
                    keep[i, j] = 1
                    n += 1
    ys = np.empty(n, np.int32)
    xs = np.empty(n, np.int32)
    ws = np.empty(n, np.float32)
    k = 0
    for i in range(mh):
        for j in range(mw):
            if keep[i, j]:
                ys[k] = i
                xs[k] = j
                ws[k] = macro[i, j]
                k += 1
    return ys, xs, ws
