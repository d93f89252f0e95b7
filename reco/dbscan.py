"""Numba weighted DBSCAN on the macro-pixel grid with the cityblock metric."""

from __future__ import annotations

import logging

import numba as nb
import numpy as np

log = logging.getLogger(__name__)


@nb.njit(cache=True, nogil=True)
def cityblock_offsets(eps: int) -> np.ndarray:
    """Grid offsets (dy, dx) with |dy| + |dx| <= eps."""
    n = 0
    for dy in range(-eps, eps + 1):
        n += 2 * (eps - abs(dy)) + 1
    off = np.empty((n, 2), np.int32)
    k = 0
    for dy in range(-eps, eps + 1):
        r = eps - abs(dy)
        for dx in range(-r, r + 1):
            off[k, 0] = dy
            off[k, 1] = dx
            k += 1
    return off


@nb.njit(cache=True, nogil=True)
def point_grid(ys: np.ndarray, xs: np.ndarray, shape_y: int, shape_x: int) -> np.ndarray:
    """Grid holding each point's index (-1 where there is none)."""
    grid = np.full((shape_y, shape_x), -1, np.int32)
    for k in range(ys.shape[0]):
        grid[ys[k], xs[k]] = k
    return grid


@nb.njit(cache=True, nogil=True)
def grid_dbscan(
    ys: np.ndarray,
    xs: np.ndarray,
    weights: np.ndarray,
    shape_y: int,
    shape_x: int,
    eps: int,
    min_samples: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """DBSCAN labels (-1 noise) and core flags; same partition as scikit-learn's weighted DBSCAN."""
    n = ys.shape[0]
    grid = point_grid(ys, xs, shape_y, shape_x)
    off = cityblock_offsets(eps)
    core = np.zeros(n, np.bool_)
    for k in range(n):
        s = 0.0
        for o in range(off.shape[0]):
            y = ys[k] + off[o, 0]
            x = xs[k] + off[o, 1]
            if 0 <= y < shape_y and 0 <= x < shape_x:
                q = grid[y, x]
                if q >= 0:
                    s += np.float64(weights[q])
        core[k] = s >= min_samples
    labels = np.full(n, -1, np.int32)
    stack = np.empty(n, np.int32)
    nlab = 0
    for k in range(n):
        if not core[k] or labels[k] >= 0:
            continue
        labels[k] = nlab
        top = 0
        stack[top] = k
        top += 1
        while top > 0:
            top -= 1
            p = stack[top]
            if not core[p]:
                continue
            for o in range(off.shape[0]):
                y = ys[p] + off[o, 0]
                x = xs[p] + off[o, 1]
                if 0 <= y < shape_y and 0 <= x < shape_x:
                    q = grid[y, x]
                    if q >= 0 and labels[q] < 0:
                        labels[q] = nlab
                        stack[top] = q
                        top += 1
        nlab += 1
    return labels, core, nlab


@nb.njit(cache=True, nogil=True)
def seeded_clusters(labels: np.ndarray, nlab: int, seed_core: np.ndarray) -> tuple[np.ndarray, int]:
    """Keep the clusters of `labels` that hold a seed core point, renumbered in order of first point."""
    n = labels.shape[0]
    has_seed = np.zeros(nlab, np.bool_)
    for k in range(n):
        if seed_core[k] and labels[k] >= 0:
            has_seed[labels[k]] = True
    remap = np.full(nlab, -1, np.int32)
    out = np.full(n, -1, np.int32)
    nnew = 0
    for k in range(n):
        c = labels[k]
        if c >= 0 and has_seed[c]:
            if remap[c] < 0:
                remap[c] = nnew
                nnew += 1
            out[k] = remap[c]
    return out, nnew
