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

from lifecycle.store import FAILED, STATES, WAITING, Store, StoreError, database_url

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
            scheduler: str | None, max_in_flight: int, max_attempts: int, lease: float, job_rucio_config: str | None,
            no_hints: bool, metrics_port: int | None, profile_ref: str | None, account: str | None,
            database: str | None, state_dir: Path | None) -> None:
    """Reconcile with Rucio (at start and every --interval), react to Hermes hints, and reconstruct each raw run
    that has an AVAILABLE disk replica and a known pedestal, pedestal runs first; outputs are registered with
    provenance by the production account."""
    from cygno_dm.processing import register
    from cygno_dm.processing.errors import ProcessingError
    from cygno_dm.processing.pipeline import Processor, Settings
    from cygno_dm.profile import ProfileError, load_profile
    from lifecycle import metrics
    from lifecycle.daemon import Daemon, Options
    from lifecycle.executors import DaskExecutor, ExecutorError, LocalExecutor
    from lifecycle.hints import HintListener
    from lifecycle.jobs import JobSpec
    from reco.config import load_config
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
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    client = _rucio_client(account, once, interval, stop)
    if client is None:
        sys.exit(EXIT_RUCIO_DOWN)
    campaign = campaign or proc_settings.campaign
    proc = Processor(profile, client, Settings(cache=state / "cache", cfg=cfg, campaign=campaign))
    job = JobSpec(did="", kind="", campaign=campaign, profile=profile_ref or os.environ.get("CYGNO_DM_PROFILE")
                  or "cygno-testbed", rucio_config=str(Path(job_cfg).resolve()), cache=str(state / "cache"),
                  output_dir=str(state / "out"), config=cfg.to_json())
    try:
        ex = DaskExecutor(scheduler) if executor == "dask" else LocalExecutor(state / "jobs")
    except ExecutorError as err:
        raise click.ClickException(str(err)) from None
    daemon = Daemon(proc, store, ex, Options(campaign=campaign, job=job, interval=interval,
                                             max_attempts=max_attempts, max_in_flight=max_in_flight, lease=lease,
                                             filter_=filter_))
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
