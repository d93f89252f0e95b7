"""`cygno-dm reco run` on DIDs: the reco command's own options, plus those that select and register Rucio DIDs.

`did_aware(run)` wraps reco's `run` command: a local RUNFILE still goes to it unchanged; a DID (`scope:name`) or
`--filter` goes to the Processor. Exit codes: 0 every run done, 1 any run failed or bad input (one line each).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from cygno_dm.processing.dids import looks_like_did
from cygno_dm.processing.events import Events

CACHE_ENV = "CYGNO_DM_CACHE"
DID_OPTIONS = [
    click.Option(["--filter", "filter_"], default=None, metavar="FILTER",
                 help="Runs whose Rucio metadata match, as `rucio did list --filter` ('run_number>=1000,"
                      "run_type=physics'; ',' and, ';' or); with a DID: only its files that match."),
    click.Option(["--scope"], default=None, help="Scope --filter searches [the profile's raw scope]."),
    click.Option(["--register"], is_flag=True,
                 help="Upload each output to the profile's analysis RSE as RECO/<version>/<TAG>/run<N>_reco.h5 "
                      "with provenance (needs an account that may write the analysis scope)."),
    click.Option(["--campaign"], default=None, help="reco_campaign of registered outputs [the profile's]."),
    click.Option(["--output-dir"], type=click.Path(path_type=Path), default=Path("."), show_default=True,
                 help="Outputs go to <dir>/<output DID name>."),
    click.Option(["--cache"], type=click.Path(path_type=Path), default=None,
                 help=f"Raw inputs and pedestal maps [${CACHE_ENV} or ~/.cache/cygno-dm]."),
    click.Option(["--keep-raw"], is_flag=True, help="Keep the raw files read into the cache."),
    click.Option(["--stage-timeout"], type=click.FloatRange(0), default=86400.0, show_default=True,
                 help="Seconds to wait for a recall from tape."),
    click.Option(["--profile", "profile_ref"], default=None, help="Experiment profile [$CYGNO_DM_PROFILE]."),
    click.Option(["--account"], default=None, help="Rucio account [RUCIO_ACCOUNT or rucio.cfg]."),
    click.Option(["--json", "as_json"], is_flag=True, help="Print one JSON object per run."),
]
OPTION = {p.name: p.opts[0] for p in DID_OPTIONS}


class ConsoleEvents(Events):
    """Steps as lines on stderr; frames and staging as a transient progress bar when stderr is a terminal."""

    def __init__(self, bars: bool) -> None:
        self.console = Console(stderr=True)
        self.bars = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=self.console, transient=True,
                             disable=not (bars and self.console.is_terminal))
        self.task = self.bars.add_task("looking up DIDs in Rucio", total=None)

    def step(self, did: str, message: str) -> None:
        self.console.print(f"{did}: {message}", highlight=False, soft_wrap=True, markup=False)
        self.bars.reset(self.task, description=message, total=None)

    def rule(self, did: str, rule: dict[str, Any]) -> None:
        done, total = rule.get("locks_ok_cnt", 0), sum(rule.get(f"locks_{k}_cnt", 0) for k in ("ok", "replicating",
                                                                                               "stuck"))
        self.bars.update(self.task, description=f"recall of {did}: rule {rule['state']}", completed=done,
                         total=total or None)

    def start(self, label: str, total: int) -> None:
        self.bars.reset(self.task, description=label, total=total)

    def advance(self, n: int) -> None:
        self.bars.advance(self.task, n)


def default_cache() -> Path:
    """$CYGNO_DM_CACHE, else $XDG_CACHE_HOME/cygno-dm, else ~/.cache/cygno-dm."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cygno-dm"


def did_aware(local: click.Command) -> click.Command:
    """reco's `run` command, also taking a DID or --filter (then it reads from and registers in Rucio)."""
    params: list[click.Parameter] = []
    for param in local.params:
        if param.name == "runfile":
            param = click.Argument(["runfile"], required=False, metavar="[RUNFILE|DID]")
        elif param.name == "pedestal_file":
            param = copy.copy(param)
            param.required = False
        params.append(param)

    def callback(**kwargs: Any) -> None:
        opts = {name: kwargs.pop(name) for name in OPTION}
        runfile = kwargs["runfile"]
        if opts["filter_"] is not None or (runfile and looks_like_did(runfile) and not Path(runfile).exists()):
            run_dids(runfile, kwargs, opts)
            return
        if runfile is None:
            raise click.UsageError("give a RUNFILE, a DID (scope:name) or --filter")
        if kwargs["pedestal_file"] is None:
            raise click.UsageError("Missing option '--pedestal' (a local run file needs its pedestal file)")
        used = [OPTION[name] for name in ("register", "campaign", "keep_raw", "scope", "as_json") if opts[name]]
        if used:
            raise click.UsageError(f"{', '.join(used)}: only for DIDs, not for the local file {runfile}")
        kwargs["runfile"] = Path(runfile)
        click.get_current_context().invoke(local.callback, **kwargs)

    help_text = (local.help or "").rstrip() + (
        "\n\nGiven a DID (scope:name of a run file, dataset or container) or --filter, the runs are read from "
        "Rucio: the closest disk replica by the profile's distances (recalled from tape first when only there), "
        "size and adler32 verified; the pedestal is the map of the latest pedestal run before each run with "
        "enough events (registered as PED/<TAG>/pedestal_run<N>.h5 and reused). Exit 1 if any run fails.")
    return click.Command(local.name, params=params + DID_OPTIONS, callback=callback, help=help_text,
                         short_help=local.short_help or "Reconstruct a run file or Rucio DIDs.")


def run_dids(target: str | None, reco_opts: dict[str, Any], opts: dict[str, Any]) -> None:
    """Reconstruct every run that a DID or a filter designates; one line per run, exit 1 if any failed."""
    from cygno_dm.processing import register
    from cygno_dm.processing.errors import ProcessingError
    from cygno_dm.processing.pipeline import Processor, Settings
    from cygno_dm.profile import ProfileError, load_profile
    from reco.config import load_config
    from reco.errors import RecoInputError

    if reco_opts["pedestal_file"] is not None:
        raise click.UsageError("--pedestal: the pedestal of a DID is found in Rucio; give it only for a local file")
    try:
        cfg = load_config(reco_opts["config_file"])
        if reco_opts["directional"] is not None:
            cfg = cfg.replace(directional=reco_opts["directional"])
        profile = load_profile(opts["profile_ref"])
        register.settings(profile)
    except (RecoInputError, ProfileError, ProcessingError) as err:
        raise click.ClickException(str(err)) from None
    try:
        from rucio.client import Client

        client = Client(account=opts["account"]) if opts["account"] else Client()
    except Exception as err:
        raise click.ClickException(f"cannot create a Rucio client: {type(err).__name__}: {err}") from None
    settings = Settings(cache=opts["cache"] or default_cache(), output_dir=opts["output_dir"],
                        output=reco_opts["output"], cfg=cfg, workers=reco_opts["workers"],
                        max_frames=reco_opts["max_frames"], register=opts["register"], campaign=opts["campaign"],
                        keep_raw=opts["keep_raw"], stage_timeout=opts["stage_timeout"])
    events = ConsoleEvents(reco_opts["progress"])
    try:
        proc = Processor(profile, client, settings, events)
        runs = proc.resolve(target, opts["scope"], opts["filter_"])
    except ProcessingError as err:
        raise click.ClickException(str(err)) from None
    if settings.output is not None and len(runs) > 1:
        raise click.UsageError(f"-o/--output names one file but {len(runs)} runs match; use --output-dir")
    failed = 0
    with events.bars:
        for scope, name in runs:
            try:
                res = proc.process(scope, name)
            except ProcessingError as err:
                failed += 1
                events.console.print(f"Error: {err}", highlight=False, soft_wrap=True, markup=False)
                continue
            if opts["as_json"]:
                click.echo(json.dumps({**dataclasses.asdict(res), "output": str(res.output)}, sort_keys=True))
            else:
                note = "" if not settings.register else (" (registered)" if res.registered else
                                                         " (already registered, nothing new)")
                click.echo(f"{res.did}: {res.n_events} events, {res.n_clusters} clusters -> {res.output}; "
                           f"{res.output_did}{note}")
    if len(runs) > 1:
        events.console.print(f"{len(runs)} runs: {len(runs) - failed} done, {failed} failed", highlight=False)
    sys.exit(1 if failed else 0)
