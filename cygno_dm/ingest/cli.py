"""Click commands: `cygno-dm ingest run|status` and the compatible `cygno-dm upload`.

`upload` exit codes (rucio-uploader's): 0 uploaded + rule created, 1 already uploaded + rule created now,
2 upload failed, 3 rule failed, 4 client creation failed.
`ingest run --once` exit codes: 0 no file left to work on, 3 files still wait (the last line says for what).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

import click

from cygno_dm.profile import ProfileError, load_profile

log = logging.getLogger(__name__)

EXIT_STILL_WAITING = 3


def _profile(ref: str | None):
    try:
        return load_profile(ref)
    except ProfileError as err:
        raise click.UsageError(str(err)) from None


def rucio_client_factory(account: str):
    """A callable creating a Rucio client for `account` from the environment's rucio.cfg."""
    def make():
        from rucio.client import Client

        return Client(account=account)
    return make


def _progress_factory():
    """Rich progress bars when stderr is a terminal, else None."""
    if not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    transient=True)

    def factory(entry):
        task = bars.add_task(entry.name, total=entry.size or 0)

        def advance(n: int) -> None:
            bars.advance(task, n)
            if bars.tasks[task].completed >= (entry.size or 0):
                bars.remove_task(task)
        return advance
    return bars, factory


@click.group("ingest")
def ingest() -> None:
    """The DAQ uploader: every run registered exactly once, deleted locally only when safe."""


@ingest.command("run")
@click.option("--watch", "watch", multiple=True, required=True, help="DAQ directory, DIR or TAG=DIR (repeatable)")
@click.option("--rse", default=None, help="landing RSE (default $CYGNO_DM_LANDING_RSE or the profile's first disk)")
@click.option("--scope", default=None, help="raw scope (default the profile's first raw scope)")
@click.option("--account", default=None, help="Rucio account (default the profile's DAQ account)")
@click.option("--profile", "profile_ref", default=None, help="experiment profile (default $CYGNO_DM_PROFILE)")
@click.option("--journal", type=click.Path(path_type=Path), default=None, help="SQLite journal of this DAQ host")
@click.option("--once", is_flag=True,
              help="stop when no file can make progress now; exit 3 if files still wait (for the tape archive, ...)")
@click.option("--settle", type=float, default=30.0, show_default=True, help="seconds a file must stay unchanged")
@click.option("--stale", type=float, default=6 * 3600.0, show_default=True,
              help="seconds after which a still-truncated gzip is quarantined")
@click.option("--poll", type=float, default=10.0, show_default=True, help="directory scan period (s)")
@click.option("--safety-poll", type=float, default=300.0, show_default=True, help="tape archive re-check period (s)")
@click.option("--workers", type=int, default=2, show_default=True, help="files worked on in parallel")
@click.option("--part-size-mb", type=int, default=64, show_default=True, help="S3 multipart part size")
@click.option("--parallel-parts", type=int, default=4, show_default=True, help="S3 parts uploaded in parallel")
@click.option("--keep-local", is_flag=True, help="never delete local files, even when safe")
@click.option("--runlog-url", default=None, help="SQLAlchemy URL of the run-log database")
@click.option("--runlog-table", default="Runlog", show_default=True)
@click.option("--metrics-port", type=int, default=None, help="serve Prometheus metrics on 127.0.0.1:PORT")
@click.option("--storage-token", envvar="CYGNO_DM_STORAGE_TOKEN", default=None, metavar="oidc-agent:ACCOUNT|file:PATH",
              help="storage access from tokens: bearer tokens for WebDAV/gfal2, temporary keys from the site's STS "
                   "for S3, renewed before they expire; tokens from oidc-agent, or a refresh token in a 0600 JSON "
                   "file [$CYGNO_DM_STORAGE_TOKEN]")
def run_cmd(watch: tuple[str, ...], rse: str | None, scope: str | None, account: str | None,
            profile_ref: str | None, journal: Path | None, once: bool, settle: float, stale: float, poll: float,
            safety_poll: float, workers: int, part_size_mb: int, parallel_parts: int, keep_local: bool,
            runlog_url: str | None, runlog_table: str, metrics_port: int | None, storage_token: str | None) -> None:
    """Watch DAQ directories and ingest every complete run file."""
    from cygno_dm.ingest import metrics
    from cygno_dm.ingest.catalog import Catalog
    from cygno_dm.ingest.config import IngestConfig, default_journal, default_landing
    from cygno_dm.ingest.discovery import WatchDir
    from cygno_dm.ingest.journal import Journal
    from cygno_dm.ingest.pipeline import Pipeline
    from cygno_dm.ingest.runlog import RunLog
    from cygno_dm.ingest.runner import Ingestor
    from cygno_dm.ingest.stores import Stores
    from cygno_dm.tokens import TokenError, token_source

    profile = _profile(profile_ref)
    account = account or next((a.name for a in profile.accounts_with("daq")), None)
    if not account:
        raise click.UsageError("--account: the profile has no DAQ account; name one")
    try:
        landing = rse or default_landing(profile)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    cfg = IngestConfig(
        watch=[WatchDir.parse(w) for w in watch], rse=landing, scope=scope or profile.scopes.raw[0],
        account=account, journal=journal or default_journal(), settle=settle, stale=stale, poll=poll,
        safety_poll=safety_poll, workers=workers, part_size=part_size_mb << 20, parallel_parts=parallel_parts,
        delete_local=not keep_local, runlog_url=runlog_url, runlog_table=runlog_table)
    for wd in cfg.watch:
        if wd.tag and wd.tag not in profile.naming.tags:
            raise click.UsageError(f"--watch: TAG {wd.tag!r} is not one of {profile.naming.tags}")
    try:
        tokens = token_source(storage_token) if storage_token else None
    except TokenError as err:
        raise click.UsageError(f"--storage-token: {err}") from None
    if metrics_port:
        metrics.serve(metrics_port)
    bars, factory = _progress_factory()
    pipeline = Pipeline(profile, cfg, Journal(cfg.journal), Catalog(rucio_client_factory(account), account),
                        stores=Stores(profile, cfg.part_size, cfg.parallel_parts, tokens=tokens),
                        runlog=RunLog(runlog_url, runlog_table) if runlog_url else None, progress=factory)
    ing = Ingestor(pipeline)
    signal.signal(signal.SIGTERM, lambda *_: ing.stop.set())
    log.info("ingest: watching %s, landing on %s as %s, journal %s", ",".join(watch), landing, account,
             cfg.journal)
    try:
        if bars:
            with bars:
                ing.run(once=once)
        else:
            ing.run(once=once)
    except KeyboardInterrupt:
        ing.stop.set()
    if once:
        from cygno_dm.ingest.status import still_waiting

        waiting, line = still_waiting(pipeline.journal, keep_local)
        click.echo(f"ingest --once: {line}")
        sys.exit(EXIT_STILL_WAITING if waiting else 0)


@ingest.command("status")
@click.option("--journal", type=click.Path(path_type=Path), default=None, help="SQLite journal of this DAQ host")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--state", "states", multiple=True, help="only these states (repeatable)")
def status_cmd(journal: Path | None, as_json: bool, states: tuple[str, ...]) -> None:
    """Per run: where it is and what it waits for."""
    from rich.console import Console
    from rich.table import Table

    from cygno_dm.ingest.config import default_journal
    from cygno_dm.ingest.journal import Journal
    from cygno_dm.ingest.states import State
    from cygno_dm.ingest.status import rows, summary

    path = journal or default_journal()
    if not path.exists():
        raise click.ClickException(f"no journal at {path}")
    try:
        wanted = [State(s.upper()) for s in states] or None
    except ValueError:
        raise click.UsageError(f"--state must be one of {[s.value for s in State]}") from None
    j = Journal(path)
    data = rows(j, wanted)
    if as_json:
        click.echo(json.dumps({"summary": summary(j), "files": data}, indent=1))
        return
    table = Table("DID", "state", "waits for", "age")
    for r in data:
        table.add_row(r["did"] or r["local_file"], r["state"], r["waits_for"], f"{r['age_s']}s")
    console = Console()
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(summary(j).items())) or "no files")


@click.command("upload")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--bucket", required=True, help="scope (the S3 bucket of the identity layout)")
@click.option("--did_name", "did_name", required=True, help="DID name <TAG>/run<N>.mid.gz")
@click.option("--upload_rse", "upload_rse", required=True, help="RSE to upload to")
@click.option("--transfer_rse", "transfer_rse", default=None, help="RSE expression of the transfer (tape) rule")
@click.option("--account", required=True, help="Rucio account")
@click.option("--profile", "profile_ref", default=None, help="experiment profile (default $CYGNO_DM_PROFILE)")
@click.option("--journal", type=click.Path(path_type=Path), default=None, help="SQLite journal of this DAQ host")
def upload_cmd(file: Path, bucket: str, did_name: str, upload_rse: str, transfer_rse: str | None, account: str,
               profile_ref: str | None, journal: Path | None) -> None:
    """rucio-uploader compatible: exit 0 uploaded, 1 already there, 2 upload failed, 3 rule failed, 4 no client."""
    from cygno_dm.ingest.compat import Exit, upload
    from cygno_dm.ingest.config import default_journal

    try:
        profile = load_profile(profile_ref)
    except ProfileError as err:
        click.echo(f"upload failed: {err}", err=True)
        sys.exit(Exit.UPLOAD_FAILED)
    code, message = upload(profile, file, bucket, did_name, upload_rse, transfer_rse, account,
                           rucio_client_factory(account), journal or default_journal())
    click.echo(message, err=code != Exit.UPLOADED)
    sys.exit(int(code))


def register(group: click.Group) -> None:
    """Add `ingest` (run, status) and the compatible `upload` to the `cygno-dm` group."""
    group.add_command(ingest)
    group.add_command(upload_cmd)
