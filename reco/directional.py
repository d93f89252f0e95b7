"""Directional stage: seeded RANSAC line fits that regrow straight tracks over gaps (numba)."""

from __future__ import annotations

import logging

import numba as nb
import numpy as np

log = logging.getLogger(__name__)

MASK64 = (1 << 64) - 1


def frame_seed(seed: int, event: int) -> int:
    """Deterministic per-frame seed (independent of worker scheduling)."""
    return (seed * 0x9E3779B97F4A7C15 + event * 0xBF58476D1CE4E5B9 + 1) & MASK64


@nb.njit(cache=True, nogil=True)
def splitmix64(state: np.uint64) -> tuple[np.uint64, np.uint64]:
    """Next (state, value) of the splitmix64 generator."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@nb.njit(cache=True, nogil=True)
def _fit_axis(
    xs: np.ndarray, ys: np.ndarray, ws: np.ndarray, sel: np.ndarray
) -> tuple[float, float, float, float]:
    """Weighted centroid and principal direction of the selected points."""
    s = 0.0
    sx = 0.0
    sy = 0.0
    for k in sel:
        s += ws[k]
        sx += ws[k] * xs[k]
        sy += ws[k] * ys[k]
    cx = sx / s
    cy = sy / s
    cxx = 0.0
    cyy = 0.0
    cxy = 0.0
    for k in sel:
        dx = xs[k] - cx
        dy = ys[k] - cy
        cxx += ws[k] * dx * dx
        cyy += ws[k] * dy * dy
        cxy += ws[k] * dx * dy
    theta = 0.5 * np.arctan2(2.0 * cxy, cxx - cyy)
    return cx, cy, np.cos(theta), np.sin(theta)


@nb.njit(cache=True, nogil=True)
def directional_regrow(
    ys: np.ndarray,
    xs: np.ndarray,
    ws: np.ndarray,
    labels: np.ndarray,
    nlab: int,
    minsamples: int,
    min_accuracy: float,
    thickness: float,
    radius: float,
    iterations: int,
    seed: np.uint64,
) -> tuple[np.ndarray, int]:
    """Relabel points along well-fitted straight clusters; returns (labels, number of clusters)."""
    n = ys.shape[0]
    lab = labels.copy()
    fx = xs.astype(np.float64)
    fy = ys.astype(np.float64)
    fw = ws.astype(np.float64)
    sizes = np.zeros(nlab, np.int64)
    for k in range(n):
        if lab[k] >= 0:
            sizes[lab[k]] += 1
    order = np.argsort(-sizes, kind="mergesort")
    state = np.uint64(seed)
    for c in order:
        members = np.nonzero(lab == c)[0]
        m = members.shape[0]
        if m < minsamples:
            continue
        total = 0.0
        for k in members:
            total += fw[k]
        best = -1.0
        bi = -1
        bj = -1
        for _ in range(iterations):
            state, r1 = splitmix64(state)
            state, r2 = splitmix64(state)
            i = members[r1 % np.uint64(m)]
            j = members[r2 % np.uint64(m)]
            dx = fx[j] - fx[i]
            dy = fy[j] - fy[i]
            norm = np.sqrt(dx * dx + dy * dy)
            if norm == 0.0:
                continue
            dx /= norm
            dy /= norm
            inl = 0.0
            for k in members:
                if abs((fx[k] - fx[i]) * dy - (fy[k] - fy[i]) * dx) <= thickness:
                    inl += fw[k]
            if inl > best:
                best = inl
                bi = i
                bj = j
        if bi < 0 or best < min_accuracy * total:
            continue
        dx = fx[bj] - fx[bi]
        dy = fy[bj] - fy[bi]
        norm = np.sqrt(dx * dx + dy * dy)
        dx /= norm
        dy /= norm
        inliers = np.array(
            [k for k in members if abs((fx[k] - fx[bi]) * dy - (fy[k] - fy[bi]) * dx) <= thickness]
        )
        cx, cy, ux, uy = _fit_axis(fx, fy, fw, inliers)
        tmin = np.inf
        tmax = -np.inf
        for k in inliers:
            t = (fx[k] - cx) * ux + (fy[k] - cy) * uy
            tmin = min(tmin, t)
            tmax = max(tmax, t)
        changed = True
        while changed:
            changed = False
            for k in range(n):
                t = (fx[k] - cx) * ux + (fy[k] - cy) * uy
                d = abs(-(fx[k] - cx) * uy + (fy[k] - cy) * ux)
                if d <= thickness and tmin - radius <= t <= tmax + radius:
                    if lab[k] != c:
                        lab[k] = c
                    if t < tmin:
                        tmin = t
                        changed = True
                    if t > tmax:
                        tmax = t
                        changed = True
    # renumber clusters consecutively in order of their first point
    remap = np.full(nlab, -1, np.int32)
    nnew = 0
    for k in range(n):
        c = lab[k]
        if c >= 0:
            if remap[c] < 0:
                remap[c] = nnew
                nnew += 1
            lab[k] = remap[c]
    return lab, nnew
