"""Physics metrics of a reconstruction against simulation truth, overall, per kind and per energy bin."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reco.errors import RecoInputError
from reco.output import read_attrs, read_table
from reco.rawfile import open_h5

log = logging.getLogger(__name__)

FOUND = 0.5  # an object is found by a cluster holding at least this fraction of its photons
SHARE = 0.15  # an object "is in" a cluster holding at least this fraction of its photons
FAKE = 0.25  # a cluster is fake when truth light is below this fraction of its integral
LIGHT = "sc_light"  # the chain's light estimate; files without it fall back to sc_integral
SPOT_LIGHT = "sc_spotlight"  # the light of a cluster taken as one spot (compact clusters)
ENERGY_BINS = (0.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, np.inf)


def load_truth(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Tracks table, truth pixel table and attributes of a truth file."""
    with open_h5(Path(path), "truth file") as f:
        if f.attrs.get("format") != "cygno-truth":
            raise RecoInputError(f"{path}: not a truth file (format cygno-truth)")
        tracks = pd.DataFrame(f["tracks"][()])
        pixels = pd.DataFrame(f["pixels"][()])
        attrs = dict(f.attrs)
    tracks["kind"] = tracks["kind"].str.decode("ascii")
    return tracks, pixels, attrs


def reco_pixels(clusters: pd.DataFrame, pixels: pd.DataFrame) -> pd.DataFrame:
    """Pixel table with the event and cluster of each pixel."""
    counts = clusters["pixel_count"].to_numpy()
    idx = (
        np.concatenate(
            [np.arange(o, o + c) for o, c in zip(clusters["pixel_offset"].to_numpy(), counts, strict=True)]
        )
        if len(clusters)
        else np.zeros(0, np.int64)
    )
    out = pixels.iloc[idx][["x", "y"]].reset_index(drop=True)
    out["event"] = np.repeat(clusters["event"].to_numpy(), counts)
    out["cluster"] = np.repeat(clusters["cluster"].to_numpy(), counts)
    return out


def _blocks(df: pd.DataFrame, rebin: int, keys: list[str], value: str | None = None) -> pd.DataFrame:
    """Rows grouped by rebin x rebin block (bx, by): the footprint of clusters / the light of objects."""
    out = df.assign(bx=df["x"].to_numpy() // rebin, by=df["y"].to_numpy() // rebin)
    if value is None:
        return out[[*keys, "bx", "by"]].drop_duplicates()
    return out.groupby([*keys, "bx", "by"], as_index=False)[value].sum()


def compute_metrics(reco_path: str | Path, truth_path: str | Path) -> dict[str, Any]:
    """Efficiency, merges, fragments, fakes and energy response of `reco_path` against `truth_path`.

    Overlaps are counted on the rebin x rebin blocks (macro-pixels) of each cluster's pixels, so an
    object's faint, zero-suppressed pixels inside a cluster's area count as held by that cluster.
    """
    tracks, tpix, tattrs = load_truth(truth_path)
    rattrs = read_attrs(reco_path)
    if int(rattrs["run"]) != int(tattrs["run"]):
        raise RecoInputError(
            f"{truth_path}: truth of run {tattrs['run']}, reconstruction of run {rattrs['run']}"
        )
    rebin = int(rattrs.get("config", {}).get("rebin", 1))
    adc_per_kev = float(tattrs["photons_per_kev"]) * float(tattrs["adc_per_photon"])
    events = read_table(reco_path, "events")
    clusters = read_table(reco_path, "clusters")
    rpix = reco_pixels(clusters, read_table(reco_path, "pixels"))
    done = set(events["event"].tolist())
    tracks = tracks[tracks["event"].isin(done)]
    tpix = tpix[tpix["event"].isin(done)]

    foot = _blocks(rpix, rebin, ["event", "cluster"])
    light = _blocks(tpix, rebin, ["event", "track"], "photons")
    ov = light.merge(foot, on=["event", "bx", "by"], how="inner")
    ov = ov.groupby(["event", "track", "cluster"], as_index=False)["photons"].sum()
    ov = ov.merge(
        tracks[["event", "track", "photons"]].rename(columns={"photons": "total"}), on=["event", "track"]
    )
    ov["share"] = ov["photons"] / ov["total"].clip(lower=1)
    inside = ov[ov["share"] >= SHARE]
    n_in_cluster = inside.groupby(["event", "cluster"]).size()
    merged_clusters = set(n_in_cluster[n_in_cluster >= 2].index)
    n_frag = inside.groupby(["event", "track"]).size()
    fragmented = set(n_frag[n_frag >= 2].index)
    best = ov.sort_values(["share", "cluster"], ascending=[False, True], kind="mergesort")
    best = best.drop_duplicates(["event", "track"]).set_index(["event", "track"])

    t = tracks.set_index(["event", "track"])
    t["best_share"] = best["share"].reindex(t.index).fillna(0.0)
    t["best_cluster"] = best["cluster"].reindex(t.index).fillna(-1).astype(int)
    t["found"] = t["best_share"] >= FOUND
    t["fragmented"] = [k in fragmented for k in t.index]
    t["merged"] = [(e, c) in merged_clusters for (e, _), c in zip(t.index, t["best_cluster"], strict=True)]
    t["clean"] = t["found"] & ~t["fragmented"] & ~t["merged"]
    cl = clusters.set_index(["event", "cluster"])
    key = list(zip(t.index.get_level_values(0), t["best_cluster"], strict=True))
    t["integral"] = cl["sc_integral"].reindex(key).to_numpy()
    estimate = cl[LIGHT if LIGHT in cl else "sc_integral"].reindex(key).to_numpy()
    true_light = float(tattrs["adc_per_photon"]) * t["photons"].clip(lower=1)
    t["response"] = estimate / true_light
    t["energy_response"] = estimate / (adc_per_kev * t["energy_kev"])
    t["integral_response"] = t["integral"] / true_light
    spot = cl[SPOT_LIGHT].reindex(key).to_numpy() if SPOT_LIGHT in cl else np.full(len(t), np.nan)
    t["spot_response"] = spot / true_light

    # clusters: held light (ADC) per cluster decides fake / piece / holding
    held = ov.groupby(["event", "cluster"])["photons"].sum() * float(tattrs["adc_per_photon"])
    holding = set(inside.set_index(["event", "cluster"]).index)
    cl_key = list(cl.index)
    held_adc = held.reindex(cl_key).fillna(0.0).to_numpy()
    fake = held_adc < FAKE * cl["sc_integral"].to_numpy()
    pieces = sum(1 for k, f in zip(cl_key, fake, strict=True) if not f and k not in holding)
    truth_events = set(tracks["event"].tolist())
    empty_events = [e for e in events["event"] if e not in truth_events]
    fakes_empty = int(clusters["event"].isin(empty_events).sum())
    unmatched = sum(1 for k in cl_key if k not in holding and k[0] in truth_events)

    res: dict[str, Any] = {
        "run": int(rattrs["run"]),
        "frames": int(len(events)),
        "tracks": int(len(t)),
        "clusters": int(len(clusters)),
        "efficiency": _frac(t["found"]),
        "clean_efficiency": _frac(t["clean"]),
        "fragmented_tracks": int(t["fragmented"].sum()),
        "fragment_rate": _frac(t["fragmented"]),
        "merged_clusters": len(merged_clusters),
        "merge_rate": _frac(t["merged"]),
        "empty_frames": len(empty_events),
        "fakes_per_empty_frame": fakes_empty / len(empty_events) if empty_events else None,
        "fake_clusters": int(fake.sum()),
        "fakes_per_frame": float(fake.sum()) / len(events) if len(events) else None,
        "pieces": int(pieces),
        "unmatched_clusters_signal_frames": unmatched,
        "by_kind": {k: _summary(g, by_energy=True) for k, g in t.groupby("kind")},
    }
    res.update(_energy(t[t["clean"]].reset_index(), t))
    return res


def _frac(mask: pd.Series) -> float | None:
    return float(mask.mean()) if len(mask) else None


def _mean(x: pd.Series) -> float | None:
    return float(x.mean()) if len(x) else None


def _spread(x: pd.Series) -> float | None:
    """Relative standard deviation (None below 3 values)."""
    return float(x.std(ddof=1) / x.mean()) if len(x) > 2 else None


def _summary(g: pd.DataFrame, by_energy: bool = False) -> dict[str, Any]:
    """Counts, rates and response (clean objects) of a group of objects."""
    clean = g[g["clean"]]
    out: dict[str, Any] = {
        "tracks": int(len(g)),
        "efficiency": _frac(g["found"]),
        "clean_efficiency": _frac(g["clean"]),
        "fragment_rate": _frac(g["fragmented"]),
        "merge_rate": _frac(g["merged"]),
        "response": _mean(clean["response"]),
        "resolution": _spread(clean["response"]),
        "energy_resolution": _spread(clean["energy_response"]),
        "integral_response": _mean(clean["integral_response"]),
        "integral_resolution": _spread(clean["integral_response"]),
        "spot_response": _mean(clean["spot_response"].dropna()),
        "spot_resolution": _spread(clean["spot_response"].dropna()),
    }
    if by_energy:
        out["energy_bins"] = []
        for lo, hi in zip(ENERGY_BINS[:-1], ENERGY_BINS[1:], strict=True):
            sel = g[(g["energy_kev"] >= lo) & (g["energy_kev"] < hi)]
            if len(sel):
                out["energy_bins"].append(
                    {"kev_lo": lo, "kev_hi": None if np.isinf(hi) else hi, **_summary(sel)}
                )
    return out


def _energy(clean: pd.DataFrame, t: pd.DataFrame) -> dict[str, Any]:
    """Linear fit integral = a * E + b on clean tracks and response/resolution per energy bin."""
    out: dict[str, Any] = {"energy_fit": None, "energy_bins": []}
    if len(clean) >= 3:
        a, b = np.polyfit(clean["energy_kev"], clean["integral"], 1)
        pred = a * clean["energy_kev"] + b
        r = float(np.corrcoef(clean["energy_kev"], clean["integral"])[0, 1])
        out["energy_fit"] = {
            "slope_adc_per_kev": float(a),
            "intercept_adc": float(b),
            "pearson_r": r,
            "resolution": float(np.std((clean["integral"] - pred) / pred)),
            "max_nonlinearity": None,
        }
        devs = []
        for lo, hi in zip(ENERGY_BINS[:-1], ENERGY_BINS[1:], strict=True):
            sel_all = t[(t["energy_kev"] >= lo) & (t["energy_kev"] < hi)]
            sel = clean[(clean["energy_kev"] >= lo) & (clean["energy_kev"] < hi)]
            row: dict[str, Any] = {
                "kev_lo": lo,
                "kev_hi": None if np.isinf(hi) else hi,
                "tracks": int(len(sel_all)),
                "clean_efficiency": _frac(sel_all["clean"]),
            }
            if len(sel) >= 3:
                ratio = sel["integral"] / (a * sel["energy_kev"] + b)
                row["response"] = float(ratio.mean())
                row["resolution"] = float(ratio.std(ddof=1) / ratio.mean())
                devs.append(abs(row["response"] - 1.0))
            out["energy_bins"].append(row)
        out["energy_fit"]["max_nonlinearity"] = float(max(devs)) if devs else None
    return out
