"""Reconstruction of one camera frame: preprocessing, clustering and features."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from reco.config import RecoConfig
from reco.dbscan import grid_dbscan, seeded_clusters
from reco.directional import directional_regrow, frame_seed
from reco.errors import RecoInputError
from reco.features import (
    F_LIGHT,
    F_SPOTLIGHT,
    FEATURES,
    NF,
    cluster_features,
    gather_pixels,
    light_footprint,
    light_sums,
    row_offsets,
    spot_light,
)
from reco.pedestal import Pedestal
from reco.preprocess import active_points, preprocess

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    """Per-pixel pedestal mean and zero-suppression threshold (float32) for one camera."""

    mean: np.ndarray
    threshold: np.ndarray
    pedestal_run: int
    mean_sum: float
    usable: np.ndarray  # uint8: 1 where sigma <= noisy_factor * median sigma (used by sc_light)
    variance: np.ndarray  # float32 sigma^2 (the Wiener weights of sc_spotlight)

    @classmethod
    def from_pedestal(cls, ped: Pedestal, cfg: RecoConfig) -> Calibration:
        """Threshold = nsigma * sigma, computed once in float32."""
        h, w = ped.shape
        if h % cfg.rebin or w % cfg.rebin:
            raise RecoInputError(
                f"{ped.path or 'pedestal'}: frame shape {ped.shape} is not a multiple of rebin={cfg.rebin}"
            )
        thr = (np.float32(cfg.nsigma) * ped.sigma).astype(np.float32, copy=False)
        mean = np.ascontiguousarray(ped.mean, np.float32)
        usable = (ped.sigma <= cfg.noisy_factor * np.median(ped.sigma)).astype(np.uint8)
        var = np.ascontiguousarray(np.square(ped.sigma, dtype=np.float32))
        return cls(mean, np.ascontiguousarray(thr), ped.run, float(mean.sum(dtype=np.float64)), usable, var)

    @property
    def shape(self) -> tuple[int, int]:
        """Frame shape (rows, columns)."""
        return (int(self.mean.shape[0]), int(self.mean.shape[1]))


@dataclass
class FrameResult:
    """Clusters of one frame: features, labels on the macro grid and full-resolution pixels."""

    spark: bool
    mean_signal: float
    features: np.ndarray  # (n_clusters, len(FEATURES)) float64
    offsets: np.ndarray  # (n_clusters + 1,) int64 into px/py/pv
    px: np.ndarray
    py: np.ndarray
    pv: np.ndarray
    points: tuple[np.ndarray, np.ndarray, np.ndarray]  # macro-pixel y, x, weight
    labels: np.ndarray  # per macro point, -1 = noise

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return int(self.features.shape[0])


def empty_result(spark: bool, mean_signal: float) -> FrameResult:
    """A frame without clusters."""
    e32 = np.empty(0, np.int32)
    return FrameResult(
        spark,
        mean_signal,
        np.empty((0, NF)),
        np.zeros(1, np.int64),
        np.empty(0, np.uint16),
        np.empty(0, np.uint16),
        np.empty(0, np.float32),
        (e32, e32, np.empty(0, np.float32)),
        e32,
    )


class FrameReconstructor:
    """Reusable per-worker state (buffers) for reconstructing frames of one camera."""

    def __init__(self, calib: Calibration, cfg: RecoConfig) -> None:
        self.calib = calib
        self.cfg = cfg
        h, w = calib.shape
        self.rows = np.empty((cfg.rebin + 1, w), np.float32)  # zero-suppressed rows in flight
        self.macro = np.empty((h // cfg.rebin, w // cfg.rebin), np.float32)
        self.row_sum = np.empty(h, np.float64)
        self.row_n = np.empty(h, np.int64)
        self.clip_ratio = cfg.row_clip / cfg.nsigma if cfg.nsigma > 0 else 0.0

    def __call__(self, raw: np.ndarray, event: int = 0) -> FrameResult:
        """Reconstruct one frame (uint16 or float array of the calibration's shape)."""
        cfg = self.cfg
        if raw.shape != self.calib.shape:
            raise RecoInputError(f"frame {event} has shape {raw.shape}, pedestal has {self.calib.shape}")
        calib = self.calib
        total = preprocess(
            raw,
            calib.mean,
            calib.threshold,
            cfg.cimax,
            cfg.rebin,
            self.macro,
            self.clip_ratio,
            self.row_sum,
            self.row_n,
            self.rows,
        )
        mean_signal = (float(total) - self.calib.mean_sum) / raw.size
        if cfg.spark_veto and mean_signal > cfg.spark_threshold:
            log.info("frame %d vetoed as spark (mean signal %.1f ADC)", event, mean_signal)
            return empty_result(True, mean_signal)
        ys, xs, ws = active_points(self.macro, cfg.macro_threshold, cfg.min_neighbors_average)
        mh, mw = self.macro.shape
        labels, core, nlab = grid_dbscan(ys, xs, ws, mh, mw, cfg.eps, float(cfg.min_samples))
        if cfg.tail_pass and nlab:
            tail, _, ntail = grid_dbscan(ys, xs, ws, mh, mw, *cfg.tail_pass)
            labels, nlab = seeded_clusters(tail, ntail, core)
        if cfg.directional and nlab:
            labels, nlab = directional_regrow(
                ys,
                xs,
                ws,
                labels,
                nlab,
                cfg.dir_minsamples,
                cfg.dir_min_accuracy,
                cfg.dir_thickness,
                cfg.dir_radius,
                cfg.dir_iterations,
                np.uint64(frame_seed(cfg.seed, event)),
            )
        labels, nlab = drop_small(labels, nlab, cfg.cluster_cut_min)
        offsets, px, py, pv, ncells = gather_pixels(
            raw, calib.mean, calib.threshold, cfg.cimax, ys, xs, labels, nlab, cfg.rebin
        )
        hits = np.diff(offsets)
        if (hits == 0).any():  # macro-pixels lit only by the median's neighbour pixels
            labels, nlab = keep_clusters(labels, hits > 0)
            offsets, px, py, pv, ncells = gather_pixels(
                raw, calib.mean, calib.threshold, cfg.cimax, ys, xs, labels, nlab, cfg.rebin
            )
        feats = cluster_features(offsets, px, py, pv, ncells, cfg.rebin)
        fy, fx, fc = light_footprint(ys, xs, labels, mh, mw, cfg.light_ring)
        off = row_offsets(
            raw, calib.mean, calib.threshold, self.clip_ratio, self.row_sum, self.row_n, fy, fx, cfg.rebin
        )
        feats[:, F_LIGHT] = light_sums(
            raw, calib.mean, calib.usable, cfg.cimax, off, fy, fx, fc, nlab, cfg.rebin
        )
        feats[:, F_SPOTLIGHT] = spot_light(
            raw,
            calib.mean,
            calib.variance,
            calib.usable,
            cfg.cimax,
            off,
            feats,
            cfg.spot_half,
            cfg.spot_kappa,
        )
        return FrameResult(False, mean_signal, feats, offsets, px, py, pv, (ys, xs, ws), labels)


def drop_small(labels: np.ndarray, nlab: int, min_points: int) -> tuple[np.ndarray, int]:
    """Turn clusters with fewer than `min_points` macro-pixels into noise; keep label order."""
    if min_points <= 1 or nlab == 0:
        return labels, nlab
    return keep_clusters(labels, np.bincount(labels[labels >= 0], minlength=nlab) >= min_points)


def keep_clusters(labels: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, int]:
    """Keep the clusters flagged in `keep` (renumbered in order), the others become noise."""
    nlab = len(keep)
    remap = np.full(nlab, -1, np.int32)
    remap[keep] = np.arange(int(keep.sum()), dtype=np.int32)
    out = np.where(labels >= 0, remap[np.maximum(labels, 0)], -1).astype(np.int32)
    return out, int(keep.sum())


__all__ = ["FEATURES", "Calibration", "FrameReconstructor", "FrameResult"]
