"""Event display: a frame with its clusters outlined, as PNG."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy import ndimage

from reco.errors import RecoInputError
from reco.output import open_reco, read_attrs
from reco.pedestal import load_pedestal
from reco.runsource import open_run

log = logging.getLogger(__name__)


def _locate(given: Path | None, out: Path, name: str | None) -> Path | None:
    """The file given, or the one named in the provenance next to the output file."""
    if given is not None:
        return given
    if name and (out.parent / name).exists():
        return out.parent / name
    return None


def event_display(
    output: str | Path, event: int, png: str | Path, raw: Path | None = None, pedestal: Path | None = None
) -> Path:
    """Draw event `event` of a reconstruction output (raw image if found, else cluster pixels)."""
    output = Path(output)
    attrs = read_attrs(output)
    height, width = int(attrs["height"]), int(attrs["width"])
    with open_reco(output) as f:
        ev = f["events"][()]
        if event not in set(ev["event"].tolist()):
            raise RecoInputError(
                f"{output}: no event {event} (events {ev['event'].min()}..{ev['event'].max()})"
            )
        cl = f["clusters"][()]
        cl = cl[cl["event"] == event]
        pixels = [
            f["pixels"][int(c["pixel_offset"]) : int(c["pixel_offset"]) + int(c["pixel_count"])] for c in cl
        ]
    raw = _locate(raw, output, attrs["input"]["name"])
    pedestal = _locate(pedestal, output, attrs["pedestal"]["name"])
    if raw is not None and pedestal is not None:
        with contextlib.closing(open_run(raw)) as r:
            ped = load_pedestal(pedestal)
            ped.check_compatible(r)
            image = r.read(event).astype(np.float32) - ped.mean
        source = f"{raw.name} - pedestal run {ped.run}"
    else:
        image = np.zeros((height, width), np.float32)
        for p in pixels:
            image[p["y"], p["x"]] = p["value"]
        source = "cluster pixels only (raw file not found)"
    fig = Figure(figsize=(9, 9 * height / width + 0.6), dpi=110 if max(height, width) <= 1024 else 200)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    vmax = float(np.percentile(image, 99.9)) if image.size else 1.0
    im = ax.imshow(
        image, cmap="viridis", origin="upper", vmin=0, vmax=max(vmax, 1.0), interpolation="antialiased"
    )
    fig.colorbar(im, ax=ax, fraction=0.04, label="ADC (pedestal subtracted)")
    margin = max(1, round(max(height, width) / 400))  # keep the outline off the track on big frames
    for c, p in zip(cl, pixels, strict=True):
        _outline(ax, p, c, margin)
    ax.set_title(f"run {attrs['run']} event {event}: {len(cl)} clusters\n{source}", fontsize=9)
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    png = Path(png)
    fig.savefig(png)
    log.info("event display of run %s event %d -> %s", attrs["run"], event, png)
    return png


def _outline(ax, pix: np.ndarray, c: np.void, margin: int) -> None:
    """Contour (`margin` pixels outside) of a cluster's pixels, its bounding box and a label."""
    x0, x1, y0, y1 = int(c["sc_xmin"]), int(c["sc_xmax"]), int(c["sc_ymin"]), int(c["sc_ymax"])
    pad = 3 + margin
    mask = np.zeros((y1 - y0 + 1 + 2 * pad, x1 - x0 + 1 + 2 * pad), bool)
    mask[pix["y"] - y0 + pad, pix["x"] - x0 + pad] = True
    mask = ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=2))
    mask = ndimage.binary_dilation(mask, iterations=margin)
    xs = np.arange(x0 - pad, x1 + pad + 1)
    ys = np.arange(y0 - pad, y1 + pad + 1)
    ax.contour(xs, ys, mask.astype(np.float32), levels=[0.5], colors="red", linewidths=0.6)
    ax.add_patch(
        Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, ec="white", lw=0.5, ls="--")
    )
    ax.text(
        x0, y0 - 2, f"{int(c['cluster'])}: {c['sc_integral']:.0f}", color="white", fontsize=7, va="bottom"
    )
