"""`make demo`: bring the testbed up; on WLCG tokens, upload a CYGNO run as the DAQ (a robot client), replicate it
to tape (Rucio's per-file tokens to the transfer service) and download it as a physicist (device flow); then
reconstruct a MIDAS run by its DID, register the output with provenance and download it as a physicist; then the
lifecycle daemon reconstructs a newly uploaded run without being asked, and a physicist finds its output by
metadata, downloads it with the plain `rucio` CLI and draws an event display (these later steps on userpass and
the S3 sites' static keys).

Safe to re-run: the run file is deterministic, an existing upload or rule is reused, and the checksum of what
the physicist downloads is compared with what the DAQ uploaded.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from cygno_dm.tokens import TokenError, TokenFile
from testbed.people_login import LoginError, token_file
from testbed.private import write_private
from testbed.stack import DEFAULT_STATE, Testbed, TestbedError

console = Console()


def make_run_file(path: Path, size: int = 4 << 20) -> None:
    """A deterministic gzipped MIDAS-like run file of about `size` bytes."""
    rng = random.Random(1)
    payload = b"MIDAS run 00001 LNGS\n" + rng.randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, compresslevel=1, mtime=0))


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def wait_rule_ok(tb: Testbed, rule_id: str, timeout: float = 300, stuck_for: float = 60,
                 covers: Callable[[], bool] = lambda: True) -> dict:
    """Poll a rule until it is OK and `covers()` (a dataset's rule is OK before it sees a newly attached file), has
    stayed STUCK for `stuck_for` seconds, or the timeout passes."""
    client = tb.client("root")
    deadline = time.monotonic() + timeout
    stuck_since = None
    with console.status("waiting for the daemons and FTS to replicate…"):
        while time.monotonic() < deadline:
            rule = client.get_replication_rule(rule_id)
            if rule["state"] == "OK" and covers():
                return rule
            stuck_since = (stuck_since or time.monotonic()) if rule["state"] == "STUCK" else None
            if stuck_since and time.monotonic() - stuck_since > stuck_for:
                return rule
            time.sleep(1)
    return client.get_replication_rule(rule_id)


def main() -> int:
    """Run the demo; exit 0 only if every download is identical to what was uploaded."""
    tb = Testbed(os.environ.get("CYGNO_DM_STATE", DEFAULT_STATE))
    with console.status("starting the testbed (identity provider, Rucio server, daemons, storage, FTS)…"):
        try:
            tb.up()
        except TestbedError as err:
            console.print(f"[red]testbed up failed[/]: {err}")
            return 1
    console.print(f"[bold]1.[/] testbed up: Rucio {tb.rucio_url} on {tb.settings.database.split(':')[0]}, "
                  f"RSEs {', '.join(tb.rses)}; identity provider {tb.idp_url}")
    profile = tb.profile
    scope, tag = profile.scopes.raw[0], profile.naming.tags[0]
    name = f"{tag}/run{1:0{profile.naming.run_digits_min}d}.mid.gz"
    # Tokens end to end: the DAQ lands the run on the disk that checks WLCG tokens, the tape rule copies it with
    # Rucio's per-file tokens (Rucio hands them out only between davs RSEs with oidc_support), the user downloads it.
    landing = next(n for n, r in profile.rses.items() if r.kind != "tape" and r.accepts_tokens)
    tape = next(n for n, r in profile.rses.items() if r.kind == "tape" and r.accepts_tokens)
    work = tb.state / "demo"
    run = work / "daq" / name
    make_run_file(run)
    uploaded_md5 = md5(run)
    try:
        if not daq_upload(tb, work, run, scope, name, landing) or not tape_rule(tb, scope, name, tape):
            return 1
        got = user_download(tb, work, scope, name, landing)
    except (TokenError, LoginError) as err:
        console.print(f"[red]no token[/]: {err}")
        return 1
    if got is None:
        return 1
    downloaded_md5 = md5(got)
    same = downloaded_md5 == uploaded_md5
    console.print(f"[bold]5.[/] md5 uploaded {uploaded_md5}  downloaded {downloaded_md5}  "
                  + ("[green]identical[/]" if same else "[red]DIFFERENT[/]"))
    if not same:
        return 1
    console.print("    steps 6-11 log in to Rucio with userpass and reach the S3 sites with their static keys (signed "
                  "URLs, Rucio's upload and download clients): not on tokens yet")
    if not reconstruct(tb, work) or not lifecycle_step(tb, work) or not physicist_step(tb, work):
        return 1
    user = profile.accounts_with("user")[0].name
    console.print(f"    use it yourself: eval \"$(.venv/bin/cygno-dm testbed env {user})\"; .venv/bin/rucio did list "
                  f"'{scope}:*'   (stop with: .venv/bin/cygno-dm testbed down)")
    return 0


def token_env(tb: Testbed, account: str, bearer: Path) -> dict[str, str]:
    """Environment of a process acting as `account` with a token only: Rucio login by WLCG bearer-token discovery
    (the token is read from the 0600 file `bearer`), and no client certificate for gfal2 to fall back on."""
    env = {**os.environ, **tb.env(account), "RUCIO_AUTH_TYPE": "oidc", "BEARER_TOKEN_FILE": str(bearer)}
    env.pop("X509_USER_PROXY", None)
    env.pop("BEARER_TOKEN", None)
    return env


def whoami(env: dict[str, str]) -> str:
    """The account Rucio's server maps the environment's login to (`rucio whoami`), or why there is none."""
    res = subprocess.run([str(Path(sys.executable).parent / "rucio"), "whoami"], env=env, capture_output=True,
                         text=True, timeout=120)
    for line in res.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "account":
            return value.strip()
    raise LoginError(f"Rucio refused the token login: {(res.stderr.strip().splitlines() or ['?'])[-1]}")


def daq_upload(tb: Testbed, work: Path, run: Path, scope: str, name: str, landing: str) -> bool:
    """Step 2: the DAQ's robot client gets tokens (client credentials), logs in to Rucio with one and lands the run
    with the project's uploader on `--storage-token`; the uploader also asks for the profile's replication rules."""
    profile = tb.profile
    daq = profile.accounts_with("daq")[0].name
    robot = tb.robot_token_file(daq)
    bearer = write_private(work / "daq-login" / "bearer", TokenFile(robot).token(profile.tokens.rucio_audience))
    env = token_env(tb, daq, bearer)
    console.print(f"[bold]2.[/] DAQ: tokens from {tb.idp_url} (client credentials of robot client {profile.token_client(daq)}, 0600 "
                  f"{robot}); Rucio login oidc as {whoami(env)}")
    states = _states(tb.client("root"), scope, name)
    if states.get(landing) == "AVAILABLE":
        console.print(f"    {scope}:{name} is already on {landing} (re-run): not uploading again")
        return True
    tag = name.split("/", 1)[0]
    with open(work / "daq" / "ingest.log", "ab") as log, console.status("the DAQ uploader lands the run…"):
        rc = subprocess.run([str(Path(sys.executable).parent / "cygno-dm"), "ingest", "run", "--once",
                             "--watch", f"{tag}={run.parent}", "--rse", landing, "--account", daq, "--settle", "0",
                             "--keep-local", "--journal", str(work / "daq" / "journal.sqlite"),
                             "--storage-token", f"file:{robot}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600).returncode
    states = _states(tb.client("root"), scope, name)
    if rc not in (0, 3) or states.get(landing) != "AVAILABLE":  # 3: registered, the tape archive still pending
        console.print(f"[red]the DAQ uploader failed[/] (exit {rc}); see {work / 'daq' / 'ingest.log'}")
        return False
    rules = ", ".join(r.rse_expression for r in profile.replication.get("raw", []))
    console.print(f"    `cygno-dm ingest run --storage-token file:…` uploaded {scope}:{name} ({run.stat().st_size} "
                  f"bytes) to {landing} with bearer tokens (XRootD SciTokens; no certificate, no key) and asked for "
                  f"the profile's rules ({rules})")
    return True


def tape_rule(tb: Testbed, scope: str, name: str, tape: str) -> bool:
    """Step 3: the uploader's rule to tape reaches OK; the tape endpoint's log says with what the copy came."""
    client = tb.client("root")
    dids = [(scope, name), *((p["scope"], p["name"]) for p in client.list_parent_dids(scope, name))]
    rule_id = next((r["id"] for did in dids for r in client.list_did_rules(*did) if r["rse_expression"] == tape),
                   None)
    if rule_id is None:
        console.print(f"[red]no rule to {tape}[/] for {scope}:{name}")
        return False
    if client.get_replication_rule(rule_id)["state"] == "STUCK":  # left by an interrupted run: retry it now
        client.update_replication_rule(rule_id, {"boost_rule": True})
    rule = wait_rule_ok(tb, rule_id, covers=lambda: _states(client, scope, name).get(tape) == "AVAILABLE")
    console.print(f"[bold]3.[/] rule {rule_id[:8]}… to {tape}: {rule['state']} "
                  f"(locks ok/replicating/stuck {rule['locks_ok_cnt']}/{rule['locks_replicating_cnt']}/"
                  f"{rule['locks_stuck_cnt']})")
    if rule["state"] != "OK":
        console.print(f"[red]replication did not finish[/]: {rule.get('error')}")
        return False
    put = f"PUT {tb.profile.rses[tape].prefix}/{scope}/{name} by "
    lines = [line for line in tb.sup.log_file(f"tape-{tape}").read_text(errors="replace").splitlines() if put in line]
    console.print(f"    the conveyor asked {tb.idp_url} for per-file tokens, the transfer service copied with them; "
                  f"the tape endpoint logged: {lines[-1][lines[-1].index(put):] if lines else 'no PUT'}")
    return True


def user_download(tb: Testbed, work: Path, scope: str, name: str, rse: str) -> Path | None:
    """Step 4: a person logs in by the device flow (approved here as she would on the approval page), then downloads
    with the plain `rucio` CLI on one token for Rucio and the storage; the downloaded file, or None."""
    user = tb.profile.accounts_with("user")[0]
    people = next(c for c in json.loads(tb.idp_clients.read_text())["clients"] if c["client_id"] == tb.profile.tokens.clients.people)
    ca = str(tb.ca_dir / "ca.pem")
    private = work / f"{user.name}-tokens"
    grant = token_file(tb.idp_url, ca, (people["client_id"], people["client_secret"]), user.name, user.password,
                       f"openid offline_access storage.read:/{scope}", private / "token.json")
    audience = f"{tb.profile.tokens.rucio_audience} {tb.profile.token_audience(rse)}"  # Rucio's login, then gfal2's
    bearer = write_private(private / "bearer", TokenFile(grant).token(audience))
    env = token_env(tb, user.name, bearer)
    console.print(f"[bold]4.[/] {user.name}: device flow at {tb.idp_url} (approved with her password), refresh "
                  f"token kept 0600 in {grant}; Rucio login oidc as {whoami(env)}, the same token (audiences "
                  f"{audience!r}) reads {rse}. By hand: oidc-gen {user.name} -f client.json --flow=device "
                  f"--cp={ca}; export RUCIO_AUTH_TYPE=oidc BEARER_TOKEN=\"$(oidc-token {user.name} "
                  f"--aud='{audience}')\" (README)")
    dest = work / user.name
    shutil.rmtree(dest, ignore_errors=True)
    res = subprocess.run([str(Path(sys.executable).parent / "rucio"), "download", "--rses", rse, "--dir", str(dest),
                          f"{scope}:{name}"], env=env, capture_output=True, text=True)
    got = dest / scope / name
    if res.returncode != 0 or not got.exists():
        console.print(f"[red]rucio download failed[/]:\n{res.stderr[-2000:]}")
        return None
    console.print(f"    {user.name} ran `rucio download --rses {rse} {scope}:{name}` -> {got}")
    return got


def reconstruct(tb: Testbed, work: Path) -> bool:
    """Steps 6-8: a synthetic MIDAS run and its pedestal run, uploaded with run metadata, reconstructed by DID and
    registered by production, then downloaded by a physicist; True if the download is identical."""
    from rucio.client.uploadclient import UploadClient

    from reco.simulate import SimConfig, simulate

    profile = tb.profile
    scope, tag, digits = profile.scopes.raw[0], profile.naming.tags[0], profile.naming.run_digits_min
    daq_account, user_account = profile.accounts_with("daq")[0].name, profile.accounts_with("user")[0].name
    registrar = profile.accounts_with("production")[0].name  # production accounts register derived data
    sim = simulate(work / "sim", SimConfig(height=256, width=256, n_frames=4, pedestal_frames=100, run=11),
                   fmt="midas")
    daq = tb.client(daq_account)
    names = {}
    for path, number, kind, events in ((sim.pedestal_run, 10, "pedestal", 100), (sim.run, 11, "physics", 4)):
        name = names[kind] = f"{tag}/run{number:0{digits}d}.mid.gz"
        states = next(iter(daq.list_replicas([{"scope": scope, "name": name}], all_states=True)), {}).get("states", {})
        if "AVAILABLE" not in states.values():
            UploadClient(_client=daq).upload([{"path": str(path), "rse": profile.processing.site_rse,
                                               "did_scope": scope, "did_name": name}])
        daq.set_metadata_bulk(scope, name, {"run_number": number, "run_type": kind, "number_of_events": events})
    console.print(f"[bold]6.[/] {daq_account} uploaded the MIDAS runs {scope}:{names['pedestal']} (pedestal) and "
                  f"{scope}:{names['physics']} with their run metadata")
    cygno_dm = str(Path(sys.executable).parent / "cygno-dm")
    res = subprocess.run([cygno_dm, "reco", "run", f"{scope}:{names['physics']}", "--register", "--no-progress",
                          "--output-dir", str(work / "reco"), "--cache", str(work / "cache"), "--json"],
                         env={**os.environ, **tb.env(registrar)}, capture_output=True, text=True)
    if res.returncode != 0:
        console.print(f"[red]reconstruction failed[/]:\n{res.stderr[-2000:]}")
        return False
    out = json.loads(res.stdout.splitlines()[-1])
    console.print(f"[bold]7.[/] {registrar} ran `cygno-dm reco run {scope}:{names['physics']} --register`: "
                  f"{out['n_events']} events, {out['n_clusters']} clusters -> {out['output_did']} "
                  f"({'registered' if out['registered'] else 'already registered, nothing new'}; pedestal "
                  f"{out['pedestal_did']})")
    dest = work / f"{user_account}-reco"
    shutil.rmtree(dest, ignore_errors=True)
    rucio = str(Path(sys.executable).parent / "rucio")
    subprocess.run([rucio, "download", "--dir", str(dest), out["output_did"]], env={**os.environ, **tb.env(user_account)},
                   capture_output=True, text=True)
    got = dest / out["output_did"].replace(":", "/", 1)
    same = got.exists() and md5(got) == md5(Path(out["output"]))
    console.print(f"[bold]8.[/] {user_account} downloaded {out['output_did']}: "
                  + ("[green]identical[/] to the reconstructed file" if same else "[red]DIFFERENT or missing[/]"))
    return same


def lifecycle_step(tb: Testbed, work: Path, run_number: int = 12, timeout: float = 300) -> bool:
    """Step 9: the lifecycle daemon runs; the DAQ uploads a new MIDAS run; the daemon reconstructs and registers it
    without being asked (on Hermes' hint). True if the output appears within `timeout` seconds."""
    import signal

    from rucio.client.uploadclient import UploadClient
    from rucio.common.exception import DuplicateRule

    from cygno_dm.processing import register
    from lifecycle.store import Store, database_url
    from reco.config import RecoConfig
    from reco.simulate import SimConfig, simulate

    profile = tb.profile
    scope, tag, digits = profile.scopes.raw[0], profile.naming.tags[0], profile.naming.run_digits_min
    daq_account = profile.accounts_with("daq")[0].name
    registrar = profile.accounts_with("production")[0].name
    name = f"{tag}/run{run_number:0{digits}d}.mid.gz"
    out_scope = register.output_scope(profile)
    out_name = register.reco_name(register.reco_version(profile, RecoConfig()), tag, f"{run_number:0{digits}d}")
    state = work / "lifecycle"
    store = Store(database_url(None, state))
    log = open(work / "lifecycle.log", "ab")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "cygno-dm"), "-v", "lifecycle", "run", "--state-dir", str(state),
         "--filter", f"run_number>=10,run_number<={run_number}", "--interval", "60",
         "--job-rucio-config", str(tb.client_cfg(registrar))],
        env={**os.environ, **tb.env(registrar)}, stdout=log, stderr=subprocess.STDOUT)
    try:
        with console.status("the lifecycle daemon starts and reconciles with Rucio…"):
            deadline = time.monotonic() + timeout
            while not store.runs(profile.processing.campaign):  # its first reconciliation recorded runs 10, 11
                if time.monotonic() > deadline or daemon.poll() is not None:
                    console.print(f"[red]the lifecycle daemon did not start[/]; see {work / 'lifecycle.log'}")
                    return False
                time.sleep(0.5)
        daq = tb.client(daq_account)
        if not any(r.state == "AVAILABLE" for r in _replicas(daq, out_scope, out_name)):
            sim = simulate(work / f"sim{run_number}", SimConfig(height=256, width=256, n_frames=4,
                                                                 pedestal_frames=8, run=run_number), fmt="midas")
            if not _replicas(daq, scope, name):
                UploadClient(_client=daq).upload([{"path": str(sim.run), "rse": profile.processing.site_rse,
                                                   "did_scope": scope, "did_name": name}])
            daq.set_metadata_bulk(scope, name, {"run_number": run_number, "run_type": "physics",
                                                "number_of_events": 4})
            for rule in profile.replication.get("raw", []):  # as the DAQ uploader does; its transfers are the hints
                try:
                    daq.add_replication_rule([{"scope": scope, "name": name}], rule.copies, rule.rse_expression,
                                             lifetime=rule.lifetime_days * 86400 if rule.lifetime_days else None)
                except DuplicateRule:
                    pass
        uploaded = time.monotonic()
        console.print(f"[bold]9.[/] the lifecycle daemon runs; {daq_account} uploaded {scope}:{name} and asked for "
                      "its replication (Hermes publishes the transfers: the daemon's hints)")
        with console.status("waiting for the daemon to reconstruct it, unasked…"):
            while not any(r.state == "AVAILABLE" for r in _replicas(daq, out_scope, out_name)):
                if time.monotonic() - uploaded > timeout:
                    console.print(f"[red]no output after {timeout:.0f} s[/]; see {work / 'lifecycle.log'}")
                    return False
                time.sleep(0.5)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
    console.print(f"[bold]10.[/] the daemon registered {out_scope}:{out_name} {time.monotonic() - uploaded:.0f} s "
                  f"after the upload (`cygno-dm lifecycle status --state-dir {state}`)")
    return True


def physicist_step(tb: Testbed, work: Path, run_number: int = 12) -> bool:
    """Step 11: a physicist lists the daemon's output by run metadata with the plain `rucio` CLI, downloads it with
    its raw run and pedestal map (named in its provenance), and draws an event display with `cygno-dm reco show`."""
    from cygno_dm.processing import register
    from reco.output import read_table

    profile = tb.profile
    user = profile.accounts_with("user")[0].name
    env = {**os.environ, **tb.env(user)}
    bindir = Path(sys.executable).parent
    out_scope = register.output_scope(profile)
    listed = subprocess.run([str(bindir / "rucio"), "did", "list", f"{out_scope}:RECO/*", "--short", "--filter",
                             f"run_number={run_number},reco_campaign={profile.processing.campaign}"],
                            env=env, capture_output=True, text=True)
    found = listed.stdout.split()
    if listed.returncode != 0 or len(found) != 1:
        console.print(f"[red]listing by metadata found {found}[/]:\n{listed.stderr[-2000:]}")
        return False
    output_did = found[0]
    scope, name = output_did.split(":", 1)
    meta = tb.client(user).get_metadata(scope, name, plugin="ALL")
    dest = work / f"{user}-display"
    shutil.rmtree(dest, ignore_errors=True)
    dids = [output_did, meta["parent_did"], meta["pedestal_did"]]
    got = subprocess.run([str(bindir / "rucio"), "download", "--dir", str(dest), *dids], env=env,
                         capture_output=True, text=True)
    local = [dest / d.replace(":", "/", 1) for d in dids]
    if not all(path.exists() for path in local):
        console.print(f"[red]rucio download failed[/]:\n{got.stderr[-2000:]}")
        return False
    per_event = read_table(local[0], "clusters")["event"].value_counts()
    event = int(per_event.idxmax()) if len(per_event) else 0  # the event with the most clusters
    png = dest / f"run{run_number}_ev{event}.png"
    shown = subprocess.run([str(bindir / "cygno-dm"), "reco", "show", str(local[0]), "--event", str(event),
                            "--raw", str(local[1]), "--pedestal", str(local[2]), "--png", str(png)],
                           env=env, capture_output=True, text=True)
    if shown.returncode != 0 or not png.exists():
        console.print(f"[red]reco show failed[/]:\n{shown.stderr[-2000:]}")
        return False
    console.print(f"[bold]11.[/] {user} found {output_did} with `rucio did list --filter run_number={run_number},"
                  f"reco_campaign=...`, downloaded it with its raw run and pedestal map (`rucio download`), and "
                  f"drew event {event}: {png}")
    return True


def _states(client, scope: str, name: str) -> dict[str, str]:
    """Replica states of a file by RSE."""
    row = next(iter(client.list_replicas([{"scope": scope, "name": name}], all_states=True)), {})
    return {rse: str(state) for rse, state in row.get("states", {}).items()}


def _replicas(client, scope: str, name: str) -> list:
    from types import SimpleNamespace

    rows = list(client.list_replicas([{"scope": scope, "name": name}], all_states=True))
    return [SimpleNamespace(rse=rse, state=str(st)) for row in rows for rse, st in row.get("states", {}).items()]


if __name__ == "__main__":
    sys.exit(main())
