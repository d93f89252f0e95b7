"""`cygno-dm reco ...`: pedestal, run, show, simulate, convert, metrics."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from reco.config import load_config
from reco.errors import RecoInputError

log = logging.getLogger(__name__)
err_console = Console(stderr=True)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Turn input errors into a one-line click error (exit code 1)."""
    try:
        yield
    except RecoInputError as exc:
        raise click.ClickException(str(exc)) from exc


@contextlib.contextmanager
def _progress(label: str, enabled: bool) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """A rich progress bar; yields (set_total, advance)."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not (enabled and err_console.is_terminal),
    )
    with bar:
        task = bar.add_task(label, total=None)
        yield (lambda n: bar.update(task, total=n)), (lambda k: bar.advance(task, k))


def _shape(_: click.Context, __: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not ROWSxCOLS, e.g. 384x512") from exc
    return h, w


FRAME_SHAPE = click.option(
    "--shape",
    "frame_shape",
    callback=_shape,
    help="ROWSxCOLS of the camera frames of a MIDAS run whose ODB does not declare them (e.g. 2304x4096).",
)


@click.group("reco")
def reco() -> None:
    """Reconstruction: camera frames (MIDAS or HDF5 raw) to cluster tables (HDF5)."""


@reco.command()
@click.argument("runfile", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Pedestal file [pedestal_run<N>.h5].")
@click.option("--max-frames", default=200, show_default=True, help="Frames averaged.")
@FRAME_SHAPE
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def pedestal(
    runfile: Path, output: Path | None, max_frames: int, frame_shape: tuple[int, int] | None, progress: bool
) -> None:
    """Build the per-pixel pedestal map (mean, sigma) of a pedestal run (MIDAS or HDF5 raw)."""
    from reco.pedestal import compute_pedestal, write_pedestal
    from reco.runsource import open_run

    with _errors(), contextlib.closing(open_run(runfile, frame_shape)) as raw:
        out = output or runfile.with_name(f"pedestal_run{raw.run:05d}.h5")
        with _progress("pedestal", progress) as (total, advance):
            total(min(max_frames, raw.n_frames) if raw.n_frames is not None else max_frames)
            ped = compute_pedestal(raw, max_frames, advance)
        write_pedestal(out, ped, runfile)
    click.echo(f"pedestal of run {ped.run} ({ped.n_frames} frames) -> {out}")


@reco.command("run")
@click.argument("runfile", type=click.Path(path_type=Path))
@click.option(
    "--pedestal",
    "pedestal_file",
    required=True,
    type=click.Path(path_type=Path),
    help="Pedestal file from `reco pedestal`.",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output file [<run>_reco.h5].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML parameters.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256), help="Parallel frames.")
@click.option("--directional/--no-directional", default=None, help="Override the directional stage.")
@click.option("--max-frames", type=click.IntRange(1), help="Reconstruct only the first frames.")
@FRAME_SHAPE
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def run_cmd(
    runfile: Path,
    pedestal_file: Path,
    output: Path | None,
    config_file: Path | None,
    workers: int,
    directional: bool | None,
    max_frames: int | None,
    frame_shape: tuple[int, int] | None,
    progress: bool,
) -> None:
    """Reconstruct a raw run file (MIDAS .mid[.gz|.lz4|.bz2] or HDF5 raw) into cluster tables."""
    from reco.runner import reconstruct_run

    with _errors():
        cfg = load_config(config_file)
        if directional is not None:
            cfg = cfg.replace(directional=directional)
        with _progress("reco", progress) as (total, advance):
            summary = reconstruct_run(
                runfile,
                pedestal_file,
                output,
                cfg,
                workers,
                max_frames,
                progress=advance,
                on_start=total,
                shape=frame_shape,
            )
    click.echo(
        f"run {summary.run}: {summary.n_events} events, {summary.n_clusters} clusters, "
        f"{summary.n_sparks} sparks -> {summary.output}"
    )


@reco.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--event", "-e", required=True, type=int, help="Event number.")
@click.option("--png", "-o", type=click.Path(path_type=Path), help="PNG file [<output>_ev<K>.png].")
@click.option("--raw", type=click.Path(path_type=Path), help="Raw run file [from provenance].")
@click.option("--pedestal", type=click.Path(path_type=Path), help="Pedestal file [from provenance].")
def show(output: Path, event: int, png: Path | None, raw: Path | None, pedestal: Path | None) -> None:
    """Write a PNG event display (image with clusters outlined)."""
    from reco.display import event_display

    with _errors():
        out = event_display(
            output, event, png or output.with_name(f"{output.stem}_ev{event}.png"), raw, pedestal
        )
    click.echo(str(out))


@reco.command()
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("--frames", default=20, show_default=True, type=click.IntRange(1))
@click.option("--pedestal-frames", default=20, show_default=True, type=click.IntRange(2))
@click.option("--shape", default="384x512", show_default=True, callback=_shape, help="ROWSxCOLS.")
@click.option("--seed", default=1, show_default=True, type=click.IntRange(0))
@click.option("--run", "run_number", default=1001, show_default=True, type=click.IntRange(2))
@click.option("--empty-fraction", default=0.2, show_default=True, type=click.FloatRange(0, 1))
@click.option("--mean-objects", default=3.0, show_default=True, type=click.FloatRange(0))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["hdf5", "midas"]),
    default="hdf5",
    show_default=True,
    help="Raw run files: HDF5 raw (run<N>.h5) or MIDAS (run<N>.mid.gz, as the DAQ writes them).",
)
@click.option(
    "--preset",
    type=click.Choice(["lime", "easy"]),
    default="lime",
    show_default=True,
    help="lime: 55Fe spots, curved electron recoils, nuclear recoils, sCMOS noise; easy: the first set.",
)
@click.option(
    "--brightness",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Scale the light yield (photons per keV).",
)
@click.option(
    "--diffusion",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Scale the diffusion sigma.",
)
@click.option(
    "--curvature",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Scale the electron recoils' multiple scattering (0: straight).",
)
@click.option("--progress/--no-progress", default=True)
def simulate(
    outdir: Path,
    frames: int,
    pedestal_frames: int,
    shape: tuple[int, int],
    seed: int,
    run_number: int,
    empty_fraction: float,
    mean_objects: float,
    fmt: str,
    preset: str,
    brightness: float,
    diffusion: float,
    curvature: float,
    progress: bool,
) -> None:
    """Write a synthetic pedestal run, physics run and truth file."""
    from reco.simulate import SimConfig
    from reco.simulate import simulate as run_simulation

    with _errors():
        cfg = SimConfig.preset(
            preset,
            height=shape[0],
            width=shape[1],
            n_frames=frames,
            pedestal_frames=pedestal_frames,
            seed=seed,
            run=run_number,
            empty_fraction=empty_fraction,
            mean_objects=mean_objects,
        ).scaled(brightness, diffusion, curvature)
        with _progress("simulate", progress) as (total, advance):
            total(frames + pedestal_frames)
            out = run_simulation(outdir, cfg, advance, fmt)
    click.echo(f"pedestal run: {out.pedestal_run}\nrun: {out.run}\ntruth: {out.truth}")


@reco.command()
@click.argument("runfile", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="HDF5 raw run file [<run>.h5].")
@FRAME_SHAPE
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def convert(runfile: Path, output: Path | None, frame_shape: tuple[int, int] | None, progress: bool) -> None:
    """Convert a MIDAS run file into an HDF5 raw run file (frames, PMT waveforms, banks, ODB)."""
    from reco.convert import convert_midas
    from reco.rawfile import RawRun
    from reco.runsource import is_midas, run_stem

    with _errors():
        if not is_midas(runfile):
            raise RecoInputError(f"{runfile}: not a MIDAS run file (.mid, .mid.gz, .mid.lz4, .mid.bz2)")
        out = output or runfile.with_name(f"{run_stem(runfile)}.h5")
        with _progress("convert", progress) as (_, advance):
            convert_midas(runfile, out, frame_shape, advance)
        with RawRun(out) as raw:
            n, run, shape = raw.n_frames, raw.run, raw.shape
    click.echo(f"run {run}: {n} frames {shape[0]}x{shape[1]} -> {out}")


@reco.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.argument("truth", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def metrics(output: Path, truth: Path, as_json: bool) -> None:
    """Efficiency, merges, fragments, fakes and energy response against simulation truth."""
    from reco.metrics import compute_metrics

    with _errors():
        m = compute_metrics(output, truth)
    if as_json:
        click.echo(json.dumps(m, indent=2, sort_keys=True))
        return
    console = Console()
    table = Table(
        title=f"run {m['run']}: {m['frames']} frames, {m['tracks']} true objects, {m['clusters']} clusters"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "efficiency",
        "clean_efficiency",
        "fragment_rate",
        "merge_rate",
        "fakes_per_empty_frame",
        "unmatched_clusters_signal_frames",
    ):
        table.add_row(key, _fmt(m[key]))
    fit = m["energy_fit"] or {}
    for key in ("slope_adc_per_kev", "intercept_adc", "pearson_r", "resolution", "max_nonlinearity"):
        table.add_row(f"energy {key}", _fmt(fit.get(key)))
    console.print(table)
    kinds = Table(title="per kind (light on clean objects: sc_light, and sc_spotlight for spots)")
    for col in (
        "kind",
        "objects",
        "clean eff.",
        "response",
        "resolution",
        "spot response",
        "spot resolution",
    ):
        kinds.add_column(col, justify="right")
    for name, k in m["by_kind"].items():
        kinds.add_row(
            name,
            str(k["tracks"]),
            *(_fmt(k[key]) for key in ("clean_efficiency", "response", "resolution")),
            *(_fmt(k[key]) for key in ("spot_response", "spot_resolution")),
        )
    console.print(kinds)
    bins = Table(title="per energy bin (clean objects)")
    for col in ("keV", "objects", "clean eff.", "response", "resolution"):
        bins.add_column(col, justify="right")
    for b in m["energy_bins"]:
        hi = "inf" if b["kev_hi"] is None else f"{b['kev_hi']:g}"
        bins.add_row(
            f"{b['kev_lo']:g}-{hi}",
            str(b["tracks"]),
            _fmt(b["clean_efficiency"]),
            _fmt(b.get("response")),
            _fmt(b.get("resolution")),
        )
    console.print(bins)


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
