"""`cygno-dm experiment plan|apply PROFILE` (onboard an experiment, as root) and `cygno-dm policy plan|apply`
(make Rucio's rules follow the profiles' replication policy)."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from cygno_dm.profile import ProfileError, load_profile


class _RucioErrors(click.Group):
    """Rucio's refusals and outages end a command with one line, not a traceback."""

    def invoke(self, ctx: click.Context):
        from rucio.common.exception import RucioException

        try:
            return super().invoke(ctx)
        except RucioException as err:
            raise click.ClickException(f"{type(err).__name__}: {str(err).splitlines()[0]}") from None


def root_client():
    """A Rucio client from the environment's rucio.cfg; only root (or an admin account) may onboard."""
    from rucio.client import Client

    client = Client()
    who = client.whoami()
    attrs = {a["key"]: a["value"] for item in client.list_account_attributes(who["account"])
             for a in (item if isinstance(item, list) else [item])}
    if who["account"] != "root" and str(attrs.get("admin", "")).lower() != "true":
        raise click.ClickException(f"account {who['account']} may not onboard experiments: run as root")
    return client


def _show(plan, as_json: bool, applied: list | None = None) -> None:
    if as_json:
        out = plan.as_dict()
        if applied is not None:
            out["applied"] = len(applied)
        click.echo(json.dumps(out, indent=1, default=str))
        return
    console = Console()
    verb = "applied" if applied is not None else "to do"
    if not plan.changes:
        console.print(f"[green]{plan.experiment}: Rucio already matches the profile; nothing to do[/]")
    else:
        table = Table("kind", "target", "detail", title=f"{plan.experiment}: {len(plan.changes)} changes {verb}")
        for c in plan.changes:
            table.add_row(c.kind, c.target, c.detail)
        console.print(table)
    console.print(f"served by the policy package for {plan.experiment}:")
    for rule, text in plan.served["naming"].items():
        console.print(f"  {rule}: {text}")
    console.print(f"  metadata keys: {', '.join(plan.served['metadata_keys']) or '(defaults)'}")


def _plan(profile_arg: str):
    from cygno_dm.onboard import plan, profile_ref

    try:
        profile = load_profile(profile_arg)
        return plan(root_client(), profile, ref=profile_ref(profile_arg))
    except ProfileError as err:
        raise click.ClickException(str(err)) from None


@click.group(cls=_RucioErrors)
def experiment() -> None:
    """Onboard an experiment from its profile on the shared Rucio (accounts, scopes, RSEs, quotas, policy)."""


@experiment.command("plan")
@click.argument("profile")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plan_cmd(profile: str, as_json: bool) -> None:
    """Print what `apply` would create or change in Rucio; changes nothing."""
    _show(_plan(profile), as_json)


@experiment.command("apply")
@click.argument("profile")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def apply_cmd(profile: str, as_json: bool) -> None:
    """Create or change what the plan lists, as root; re-running it does nothing."""
    from cygno_dm.onboard import apply

    plan = _plan(profile)
    _show(plan, as_json, apply(plan.changes))


def _client():
    from rucio.client import Client

    return Client()


def _profiles(client, experiment_name: str | None, profile_ref: str | None):
    """The profiles to compare: --profile, else $CYGNO_DM_PROFILE's and the onboarded ones; --experiment picks one."""
    from rucio.common.exception import AccessDenied

    from cygno_dm.onboard import registered
    from rucio_policies.experiments import profile_refs

    try:
        onboarded = [] if profile_ref else registered(client)
    except AccessDenied:  # only root and admins read Rucio's configuration: the environment's profiles then
        onboarded = []
    refs = [profile_ref] if profile_ref else list(dict.fromkeys([*profile_refs(), *onboarded]))
    try:
        profiles = {p.experiment.name: p for p in map(load_profile, refs)}
    except ProfileError as err:
        raise click.ClickException(str(err)) from None
    if experiment_name is None:
        return list(profiles.values())
    if experiment_name not in profiles:
        raise click.ClickException(f"--experiment: {experiment_name!r} is not one of {sorted(profiles)}")
    return [profiles[experiment_name]]


def _subscription_rows(client, profile):
    from cygno_dm.replication import subscriptions

    have = {s["name"] for s in client.list_subscriptions()}
    return [{**s, "state": "present" if s["name"] in have else "missing"} for s in subscriptions(profile)]


@click.group(cls=_RucioErrors)
def policy() -> None:
    """The profiles' replication policy against the rules Rucio holds per dataset."""


policy_options = [
    click.option("--experiment", "experiment_name", default=None, help="only this experiment"),
    click.option("--profile", "profile_ref", default=None, help="profile to use (default: every served one)"),
    click.option("--allow-protected", is_flag=True, help="root only: also change or remove locked and tape rules"),
    click.option("--json", "as_json", is_flag=True, help="machine-readable output"),
]


def _with_options(fn):
    for opt in reversed(policy_options):
        fn = opt(fn)
    return fn


def _diffs(client, experiment_name, profile_ref, allow_protected):
    from cygno_dm.replication import plan

    if allow_protected and client.whoami()["account"] != "root":
        raise click.ClickException("--allow-protected: only root may change or remove locked and tape rules")
    return [(p, plan(client, p, allow_protected)) for p in _profiles(client, experiment_name, profile_ref)]


def _print_diffs(results, subs) -> None:
    console = Console()
    for profile, diffs in results:
        counts = {}
        for d in diffs:
            counts[d.kind] = counts.get(d.kind, 0) + 1
        console.print(f"[bold]{profile.experiment.name}[/]: {len(diffs)} differences "
                      f"{dict(sorted(counts.items())) if counts else ''}")
        table = Table("kind", "dataset", "rse expression", "detail")
        for d in diffs[:200]:
            table.add_row(d.kind, f"{d.scope}:{d.name}", d.rse_expression, d.detail)
        if diffs:
            console.print(table)
        if len(diffs) > 200:
            console.print(f"... and {len(diffs) - 200} more (--json lists all)")
        for s in subs.get(profile.experiment.name, []):
            console.print(f"  subscription {s['name']} ({s['state']}): new datasets of {s['filter']['scope']} get "
                          + ", ".join(f"{r['rse_expression']}x{r['copies']}" for r in s["replication_rules"]))


@policy.command("plan")
@_with_options
def policy_plan(experiment_name, profile_ref, allow_protected, as_json) -> None:
    """Print the missing rules, rules with other copies or lifetimes, and rules the policy no longer wants."""
    client = _client()
    results = _diffs(client, experiment_name, profile_ref, allow_protected)
    subs = {p.experiment.name: _subscription_rows(client, p) for p, _ in results}
    if as_json:
        click.echo(json.dumps({p.experiment.name: {"differences": [d.as_dict() for d in diffs],
                                                   "subscriptions": subs[p.experiment.name]}
                               for p, diffs in results}, indent=1))
    else:
        _print_diffs(results, subs)


@policy.command("apply")
@_with_options
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1, 10000), help="changes per batch")
@click.option("--subscriptions", "with_subscriptions", is_flag=True,
              help="root only: also add the Rucio subscriptions that give new datasets the policy's rules")
def policy_apply(experiment_name, profile_ref, allow_protected, as_json, batch, with_subscriptions) -> None:
    """Make Rucio's rules follow the policy, in batches; Ctrl-C stops after the current batch (re-run resumes)."""
    import signal

    from cygno_dm.replication import apply

    client = _client()
    account = client.whoami()["account"]
    if with_subscriptions and account != "root":
        raise click.ClickException("--subscriptions: only root adds subscriptions")
    results = _diffs(client, experiment_name, profile_ref, allow_protected)
    stopping = []
    previous = signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    summary = {}
    try:
        for profile, diffs in results:
            progress = None if as_json else (lambda done, total: Console(stderr=True).print(f"{done}/{total} done"))
            summary[profile.experiment.name] = apply(client, diffs, account, batch, progress, lambda: bool(stopping))
            if with_subscriptions:
                for s in _subscription_rows(client, profile):
                    if s["state"] == "missing":
                        client.add_subscription(s["name"], account, s["filter"], s["replication_rules"],
                                                "cygno-dm policy", False, False, False)
                        summary[profile.experiment.name]["subscription added"] = \
                            summary[profile.experiment.name].get("subscription added", 0) + 1
    finally:
        signal.signal(signal.SIGINT, previous)
    click.echo(json.dumps(summary, indent=1) if as_json else
               "\n".join(f"{name}: {counts or 'nothing to do'}" for name, counts in summary.items()))
    if stopping:
        raise SystemExit(130)


def register(main: click.Group) -> None:
    """Add the `experiment` and `policy` groups to the main CLI."""
    main.add_command(experiment)
    main.add_command(policy)
