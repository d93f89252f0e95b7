"""The `cygno-dm` command line: one entry point, one subcommand group per area.

Exit codes: 0 success, 1 failure or bad input reported in one line, 2 bad command-line usage
(`upload` keeps rucio-uploader's 0-4).
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from cygno_dm.ingest.cli import register as register_ingest
from cygno_dm.onboard_cli import register as register_onboard
from cygno_dm.processing.cli import did_aware
from cygno_dm.profile import ProfileError
from reco.cli import reco

console = Console(stderr=True)


class LazyLifecycle(click.Group):
    """`cygno-dm lifecycle`, imported when used (the daemon's dependencies stay out of the other commands)."""

    def _real(self) -> click.Group:
        from lifecycle.cli import lifecycle

        return lifecycle

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._real().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._real().get_command(ctx, name)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="log what happens")
def main(verbose: bool) -> None:
    """Data management for CYGNO and the INFN PSGE experiments on Rucio and FTS."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


# -- testbed --------------------------------------------------------------------------------------

state_option = click.option("--state", "state_dir", type=click.Path(path_type=Path), default=None,
                            help="state directory (default $CYGNO_DM_STATE or .state/testbed)")


def _testbed(state_dir: Path | None, **kwargs):
    from testbed.stack import DEFAULT_STATE, Testbed, TestbedError

    try:
        return Testbed(state_dir or DEFAULT_STATE, **kwargs)
    except (ProfileError, TestbedError) as err:
        raise click.ClickException(str(err)) from None


@main.group()
def testbed() -> None:
    """Run the one-machine Rucio testbed (server, daemons, storage)."""


@testbed.command()
@state_option
@click.option("--profile", default=None, help="profile file or packaged name (default cygno-testbed)")
@click.option("--database", default=None, help="'sqlite' (default) or a postgresql:// URL")
def up(state_dir: Path | None, profile: str | None, database: str | None) -> None:
    """Start (or complete) the testbed; idempotent."""
    from testbed.stack import TestbedError

    tb = _testbed(state_dir, profile=profile, database=database)
    with console.status("starting the testbed…"):
        try:
            tb.up()
        except TestbedError as err:
            raise click.ClickException(str(err)) from None
    console.print(f"[green]testbed up[/] in {tb.state}: Rucio at {tb.rucio_url} "
                  f"({tb.settings.database.split(':')[0]})")


@testbed.command()
@state_option
def down(state_dir: Path | None) -> None:
    """Stop every process the testbed started."""
    stopped = _testbed(state_dir).down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@testbed.command()
@state_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def status(state_dir: Path | None, as_json: bool) -> None:
    """Show each component's health; exit 1 unless all are healthy."""
    rows = _testbed(state_dir).status()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    else:
        table = Table("component", "state", "pid", "url")
        colours = {"healthy": "green", "stopped": "dim", "starting": "yellow"}
        for r in rows:
            state = r["state"] + (f" ({r['error']})" if r.get("error") else "")
            table.add_row(r["name"], f"[{colours.get(r['state'], 'red')}]{state}[/]", str(r["pid"] or ""), r["url"])
        Console().print(table)
    sys.exit(0 if all(r["state"] == "healthy" for r in rows) else 1)


@testbed.command()
@state_option
@click.argument("component", required=False)
@click.option("-n", "--lines", default=40, show_default=True)
def logs(state_dir: Path | None, component: str | None, lines: int) -> None:
    """Show the end of a component's log (or list the logs)."""
    tb = _testbed(state_dir)
    if component is None:
        for f in sorted(tb.sup.log_dir.glob("*.log")):
            click.echo(f.stem)
        return
    if not tb.sup.log_file(component).exists():
        raise click.ClickException(f"no log for {component!r}; try `cygno-dm testbed logs` for the list")
    click.echo(tb.sup.tail(component, lines))


@testbed.command("env")
@state_option
@click.argument("account")
@click.option("--profile", default=None, help="ACCOUNT is of this (onboarded) experiment's profile")
def env_cmd(state_dir: Path | None, account: str, profile: str | None) -> None:
    """Print shell exports to use the plain `rucio` CLI as ACCOUNT: eval "$(cygno-dm testbed env alice)"."""
    try:
        exports = _testbed(state_dir).env(account, profile)
    except KeyError as err:
        raise click.ClickException(str(err.args[0])) from None
    except ProfileError as err:
        raise click.ClickException(str(err)) from None
    for key, value in exports.items():
        click.echo(f"export {key}={shlex.quote(value)}")


reco.add_command(did_aware(reco.commands["run"]))  # `reco run` also takes DIDs and --filter
main.add_command(reco)
register_ingest(main)
register_onboard(main)
main.add_command(LazyLifecycle("lifecycle", help="Reconstruct new raw runs without being asked, exactly once per "
                                                 "campaign (daemon, status)."))

if __name__ == "__main__":
    main()
