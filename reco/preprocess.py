"""Numba kernels: pedestal subtraction, zero suppression, 2x2 median and rebin (one pass), noise reductor."""

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


@nb.njit(cache=True, nogil=True, inline="always")
def zs_value(r: int, m: np.float32, t: np.float32, cimax: int) -> np.float32:
    """Zero-suppressed value of one pixel: raw - mean where raw < cimax and raw - mean > thr, else 0."""
    v = np.float32(r) - m
    return v if (r < cimax) & (v > t) else np.float32(0.0)


@nb.njit(cache=True, nogil=True)
def _zs_row(rr: np.ndarray, mm: np.ndarray, tt: np.ndarray, cimax: int, out: np.ndarray) -> int:
    """Zero-suppressed values of one row into `out`; returns the sum of its raw values."""
    total = 0
    for j in range(rr.shape[0]):
        r = rr[j]
        total += r
        out[j] = zs_value(r, mm[j], tt[j], cimax)
    return total


@nb.njit(cache=True, nogil=True)
def preprocess(
    raw: np.ndarray,
    mean: np.ndarray,
    thr: np.ndarray,
    cimax: int,
    rebin: int,
    macro: np.ndarray,
    clip_ratio: float,
    row_sum: np.ndarray,
    row_n: np.ndarray,
    rows: np.ndarray,
) -> int:
    """Zero suppression, 2x2 median and rebin in one pass over the frame; returns the sum of raw.

    The zero-suppressed values (raw - mean where raw < cimax and raw - mean > thr, else 0) live only in
    `rows` (rebin + 1 rows: a macro row's rows and the next one, which the 2x2 median needs), so the
    frame is read once and no full-size image is written. `macro` gets the rebin x rebin block means of
    the 2x2 median (edges replicated). Per row, also the sum and number of the values
    v = raw - mean with |v| <= clip_ratio * thr (the noise-dominated pixels for the row offsets).
    """
    height, width = raw.shape
    mh, mw = macro.shape
    ratio = np.float32(clip_ratio)
    half = np.float32(0.5)
    total = 0
    col = np.zeros(width, np.float64)  # float64 sums of float32 medians are exact: order-independent
    for bi in range(mh):
        first = bi * rebin
        if bi == 0:
            total += _zs_row(raw[0], mean[0], thr[0], cimax, rows[0])
            row_sum[0], row_n[0] = _row_clipped_sum(raw[0], mean[0], thr[0], ratio)
        else:
            rows[0, :] = rows[rebin]  # the previous block's look-ahead row
        for k in range(1, rebin + 1):
            i = first + k
            if i < height:
                total += _zs_row(raw[i], mean[i], thr[i], cimax, rows[k])
                row_sum[i], row_n[i] = _row_clipped_sum(raw[i], mean[i], thr[i], ratio)
            else:  # bottom edge: the row below the last one is the last one itself
                rows[k, :] = rows[k - 1]
        col[:] = 0.0
        for k in range(rebin):
            r0 = rows[k]
            r1 = rows[k + 1]
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
    return total


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
