"""`cygno-dm lifecycle run|status`: the daemon that reconstructs new raw runs unasked, and what it has done.

`run --once` exit codes: 0 a pass completed, 1 bad input, 3 Rucio did not answer (runs wait; run again).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click

from lifecycle.store import (
    DONE,
    FAILED,
    RUNNING,
    SEEN,
    STATES,
    SUBMITTED,
    WAITING,
    Store,
    StoreError,
    database_url,
)

log = logging.getLogger(__name__)

STATE_ENV = "CYGNO_DM_LIFECYCLE_DIR"
EXIT_RUCIO_DOWN = 3


def _state_dir(path: Path | None) -> Path:
    return path or Path(os.environ.get(STATE_ENV, ".state/lifecycle"))


def _store(database: str | None, state_dir: Path | None) -> Store:
    try:
        return Store(database_url(database, _state_dir(state_dir)))
    except StoreError as err:
        raise click.UsageError(str(err)) from None


database_option = click.option("--database", default=None, metavar="URL",
                               help="State database: a postgresql:// URL [SQLite in the state directory].")
state_option = click.option("--state-dir", type=click.Path(path_type=Path), default=None,
                            help=f"Database, job files, cache [${STATE_ENV} or .state/lifecycle].")


@click.group()
def lifecycle() -> None:
    """Reconstruct new raw runs without being asked, exactly once per campaign."""


@lifecycle.command("run")
@click.option("--once", is_flag=True, help="One reconciliation pass, wait for its jobs, exit.")
@click.option("--interval", type=click.FloatRange(1), default=300.0, show_default=True,
              help="Seconds between full reconciliations against Rucio (hints act at once in between).")
@click.option("--campaign", default=None, help="Campaign the runs are reconstructed for [the profile's].")
@click.option("--filter", "filter_", default=None, metavar="FILTER",
              help="Only raw runs whose Rucio metadata match ('run_number>=1000,run_type=physics') [all].")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Reconstruction parameters (TOML) [reco's defaults].")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: one process per job on this machine; dask: a Dask distributed scheduler.")
@click.option("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler address (tcp://host:8786).")
@click.option("--max-in-flight", type=click.IntRange(1), default=2, show_default=True, help="Jobs at once.")
@click.option("--max-attempts", type=click.IntRange(1), default=3, show_default=True,
              help="Attempts before a run is marked failed with its reason.")
@click.option("--staging-window", type=click.IntRange(0), default=5, show_default=True,
              help="Runs only on tape recalled to the staging disk at once (0: they wait for a disk replica).")
@click.option("--staging-bytes", type=click.IntRange(1), default=None,
              help="Also bound the bytes recalled at once (a run larger than this alone still goes) [no bound].")
@click.option("--lease", type=click.FloatRange(1), default=120.0, show_default=True,
              help="Seconds after which a dead daemon's runs are taken back.")
@click.option("--job-rucio-config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The one credential jobs get: a Rucio client config of the production account [$RUCIO_CONFIG].")
@click.option("--no-hints", is_flag=True, help="Do not listen to Hermes (reconciliation only).")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on 127.0.0.1:PORT.")
@click.option("--profile", "profile_ref", default=None, help="Experiment profile [$CYGNO_DM_PROFILE].")
@click.option("--account", default=None, help="Rucio account of the daemon's queries [RUCIO_ACCOUNT or rucio.cfg].")
@database_option
@state_option
def run_cmd(once: bool, interval: float, campaign: str | None, filter_: str | None, config_file: Path | None, executor: str,
            scheduler: str | None, max_in_flight: int, max_attempts: int, staging_window: int,
            staging_bytes: int | None, lease: float, job_rucio_config: str | None,
            no_hints: bool, metrics_port: int | None, profile_ref: str | None, account: str | None,
            database: str | None, state_dir: Path | None) -> None:
    """Reconcile with Rucio (at start and every --interval), react to Hermes hints, and reconstruct each raw run
    that has an AVAILABLE disk replica and a known pedestal, pedestal runs first, recalling runs only on tape through
    a sliding staging window; outputs are registered with provenance by the production account (a stored
    campaign's as RECO/<campaign>/..., in its dataset RECO/<campaign>)."""
    from cygno_dm.processing import register
    from cygno_dm.processing.errors import ProcessingError
    from cygno_dm.processing.pipeline import Processor, Settings
    from cygno_dm.profile import ProfileError, load_profile
    from lifecycle import metrics
    from lifecycle.daemon import Daemon, Options
    from lifecycle.executors import DaskExecutor, ExecutorError, LocalExecutor
    from lifecycle.hints import HintListener
    from lifecycle.jobs import JobSpec
    from reco.config import config_from_mapping, load_config
    from reco.errors import RecoInputError

    if executor == "dask" and not scheduler:
        raise click.UsageError("--executor dask needs --scheduler ADDRESS")
    job_cfg = job_rucio_config or os.environ.get("RUCIO_CONFIG")
    if not job_cfg or not Path(job_cfg).is_file():
        raise click.UsageError("--job-rucio-config: give the production account's Rucio client config "
                               "(or set RUCIO_CONFIG)")
    try:
        profile = load_profile(profile_ref)
        proc_settings = register.settings(profile)
        cfg = load_config(config_file)
        if filter_:
            from cygno_dm.processing.dids import parse_filter

            parse_filter(filter_)
    except (ProfileError, ProcessingError, RecoInputError) as err:
        raise click.UsageError(str(err)) from None
    state = _state_dir(state_dir)
    store = _store(database, state_dir)
    campaign = campaign or proc_settings.campaign
    stored = store.campaign(campaign)
    if stored is not None:  # a reprocessing campaign: its runs and parameters are the stored ones
        if filter_ or config_file:
            raise click.UsageError(f"--campaign {campaign}: its filter and config are stored; drop --filter/--config")
        if stored.state != "active":
            raise click.UsageError(f"--campaign {campaign}: the campaign is {stored.state}")
        import reco

        if stored.software_version != reco.__version__:
            raise click.UsageError(f"--campaign {campaign}: made for software {stored.software_version}; this is "
                                   f"{reco.__version__} (create a new campaign)")
        filter_ = stored.filter
        cfg = config_from_mapping(json.loads(stored.config), f"campaign {campaign}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    client = _rucio_client(account, once, interval, stop)
    if client is None:
        sys.exit(EXIT_RUCIO_DOWN)
    reco_path = campaign if stored is not None else None
    proc = Processor(profile, client, Settings(cache=state / "cache", cfg=cfg, campaign=campaign, reco_path=reco_path))
    job = JobSpec(did="", kind="", campaign=campaign, profile=profile_ref or os.environ.get("CYGNO_DM_PROFILE")
                  or "cygno-testbed", rucio_config=str(Path(job_cfg).resolve()), cache=str(state / "cache"),
                  output_dir=str(state / "out"), config=cfg.to_json(), reco_path=reco_path)
    try:
        ex = DaskExecutor(scheduler) if executor == "dask" else LocalExecutor(state / "jobs")
    except ExecutorError as err:
        raise click.ClickException(str(err)) from None
    daemon = Daemon(proc, store, ex, Options(campaign=campaign, job=job, interval=interval,
                                             max_attempts=max_attempts, max_in_flight=max_in_flight, lease=lease,
                                             filter_=filter_, staging_window=staging_window,
                                             staging_bytes=staging_bytes))
    listener = None
    if not no_hints and not once and profile.messaging is not None:
        listener = HintListener(profile.messaging, profile.scopes.raw, daemon.hints)
        listener.start()
    if metrics_port:
        metrics.serve(metrics_port)
    daemon.stop = stop
    log.info("lifecycle daemon %s: campaign %s, executor %s, database %s", daemon.opt.owner, campaign, executor,
             store.engine.url.render_as_string())
    try:
        if once:
            ok = daemon.run_once()
        else:
            daemon.run()
            ok = True
    finally:
        daemon.shutdown()
        if listener:
            listener.close()
        ex.close()
    counts = store.counts(campaign)
    click.echo(f"campaign {campaign}: " + ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s]))
    if not ok:
        click.echo(f"Rucio did not answer: {daemon.rucio_error}", err=True)
        sys.exit(EXIT_RUCIO_DOWN)


def _rucio_client(account: str | None, once: bool, interval: float, stop: threading.Event):
    """A Rucio client; while Rucio does not answer, say so and retry (None with --once or when stopped)."""
    from rucio.client import Client

    delay = 5.0
    while True:
        try:
            return Client(account=account) if account else Client()
        except Exception as err:  # the client authenticates at creation: any failure here is Rucio not answering
            click.echo(f"Rucio did not answer: cannot create a client: {type(err).__name__}: {err}"
                       + ("" if once else f"; waiting {delay:.0f} s"), err=True)
        if once or stop.wait(delay):
            return None
        delay = min(delay * 2, interval)


@lifecycle.command("status")
@click.option("--campaign", default=None, help="Only this campaign [all].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: counts per campaign and every run.")
@database_option
@state_option
def status_cmd(campaign: str | None, as_json: bool, database: str | None, state_dir: Path | None) -> None:
    """Runs per state and campaign; the reason of every failed run and what each waiting run waits for."""
    store = _store(database, state_dir)
    campaigns = [campaign] if campaign else store.campaigns()
    if as_json:
        click.echo(json.dumps({"campaigns": {c: store.counts(c) for c in campaigns},
                               "runs": [dataclasses.asdict(r) for r in store.runs(campaign)]}, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("campaign", *STATES)
    for c in campaigns:
        counts = store.counts(c)
        table.add_row(c, *(str(counts[s]) for s in STATES))
    console = Console()
    console.print(table)
    for run in store.runs(campaign, (FAILED, WAITING)):
        why = run.reason if run.state == FAILED else f"waiting for {run.waiting_for}"
        console.print(f"{run.did} [{run.campaign}] {run.state} after {run.attempts} attempt(s): {why}",
                      markup=False, highlight=False, soft_wrap=True)


@lifecycle.group("campaign")
def campaign_group() -> None:
    """Reprocess a set of runs with given parameters: create, status, cancel (`run --campaign NAME` works on it)."""


@campaign_group.command("create")
@click.argument("name")
@click.option("--runs", "run_range", default=None, metavar="A-B", help="Run numbers A to B (inclusive).")
@click.option("--filter", "filter_", default=None, metavar="FILTER",
              help="Runs whose Rucio metadata match ('run_type=physics,run_number>=1000').")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Reconstruction parameters (TOML) [reco's defaults].")
@database_option
@state_option
def campaign_create(name: str, run_range: str | None, filter_: str | None, config_file: Path | None,
                    database: str | None, state_dir: Path | None) -> None:
    """Record campaign NAME: the runs (--runs or --filter), the parameters and this software version."""
    import reco
    from cygno_dm.processing.dids import parse_filter
    from cygno_dm.processing.errors import ProcessingError
    from reco.config import load_config
    from reco.errors import RecoInputError

    if (run_range is None) == (filter_ is None):
        raise click.UsageError("give exactly one of --runs A-B and --filter FILTER")
    if run_range is not None:
        first, sep, last = run_range.partition("-")
        if not (sep and first.isdigit() and last.isdigit() and int(first) <= int(last)):
            raise click.UsageError(f"--runs {run_range!r}: expected A-B with run numbers A <= B, e.g. 1000-2000")
        filter_ = f"run_number>={int(first)},run_number<={int(last)}"
    try:
        parse_filter(filter_)
        cfg = load_config(config_file)
    except (ProcessingError, RecoInputError) as err:
        raise click.UsageError(str(err)) from None
    store = _store(database, state_dir)
    try:
        store.create_campaign(name, filter_, cfg.to_json(), reco.__version__)
    except StoreError as err:
        raise click.UsageError(str(err)) from None
    click.echo(f"campaign {name}: runs {filter_}, software {reco.__version__}; "
               f"start it with `cygno-dm lifecycle run --campaign {name}`")


@campaign_group.command("status")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@database_option
@state_option
def campaign_status(name: str, as_json: bool, database: str | None, state_dir: Path | None) -> None:
    """Runs done / running / waiting for tape / waiting / failed of campaign NAME, its staging window's use, and an
    ETA from the mean job time so far."""
    from lifecycle.reconcile import TAPE

    store = _store(database, state_dir)
    camp = store.campaign(name)
    if camp is None:
        raise click.UsageError(f"no campaign {name!r}")
    counts = store.counts(name)
    rows = store.runs(name, (DONE,))
    times = [r.finished_at - r.submitted_at for r in rows if r.submitted_at and r.finished_at]
    left = sum(counts[s] for s in (SEEN, WAITING, SUBMITTED, RUNNING))
    eta = round(left * sum(times) / len(times), 1) if times else None
    tape = sum(1 for r in store.runs(name, (SEEN, WAITING)) if (r.waiting_for or "").startswith(TAPE))
    window = store.window(name)
    summary = {"done": counts[DONE], "running": counts[SUBMITTED] + counts[RUNNING], "waiting_for_tape": tape,
               "waiting": counts[SEEN] + counts[WAITING] - tape, "failed": counts[FAILED],
               "cancelled": counts["cancelled"]}
    out = {**dataclasses.asdict(camp), "counts": counts, "summary": summary, "eta_seconds": eta,
           "staging": dataclasses.asdict(window) if window else None}
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    click.echo(f"campaign {name} ({camp.state}, runs {camp.filter}, software {camp.software_version}): "
               + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in summary.items() if n or k != "cancelled")
               + (f"; staging window {window.describe()}" if window else "")
               + (f"; ETA {eta:.0f} s (one job at a time)" if eta is not None and left else ""))


@campaign_group.command("cancel")
@click.argument("name")
@database_option
@state_option
def campaign_cancel(name: str, database: str | None, state_dir: Path | None) -> None:
    """Stop campaign NAME: its pending runs are cancelled, jobs already running finish, daemons on it stop."""
    store = _store(database, state_dir)
    if store.campaign(name) is None:
        raise click.UsageError(f"no campaign {name!r}")
    n = store.cancel_campaign(name)
    click.echo(f"campaign {name}: cancelled ({n} pending runs)")
