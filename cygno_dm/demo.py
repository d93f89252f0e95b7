"""`make demo`: bring the testbed up, upload a CYGNO run as the DAQ, replicate it, download it as a physicist;
then reconstruct a MIDAS run by its DID, register the output with provenance and download it as a physicist;
then the lifecycle daemon reconstructs a newly uploaded run without being asked, and a physicist finds its output
by metadata, downloads it with the plain `rucio` CLI and draws an event display.

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
from pathlib import Path

from rich.console import Console

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


def wait_rule_ok(tb: Testbed, rule_id: str, timeout: float = 300, stuck_for: float = 60) -> dict:
    """Poll a rule until it is OK, has stayed STUCK for `stuck_for` seconds, or the timeout passes."""
    client = tb.client("root")
    deadline = time.monotonic() + timeout
    stuck_since = None
    with console.status("waiting for the daemons and FTS to replicate…"):
        while time.monotonic() < deadline:
            rule = client.get_replication_rule(rule_id)
            if rule["state"] == "OK":
                return rule
            stuck_since = (stuck_since or time.monotonic()) if rule["state"] == "STUCK" else None
            if stuck_since and time.monotonic() - stuck_since > stuck_for:
                return rule
            time.sleep(1)
    return client.get_replication_rule(rule_id)


def main() -> int:
    """Run the demo; exit 0 only if the downloaded file is identical to the uploaded one."""
    tb = Testbed(os.environ.get("CYGNO_DM_STATE", DEFAULT_STATE))
    with console.status("starting the testbed (Rucio server, daemons, storage, FTS)…"):
        try:
            tb.up()
        except TestbedError as err:
            console.print(f"[red]testbed up failed[/]: {err}")
            return 1
    console.print(f"[bold]1.[/] testbed up: Rucio {tb.rucio_url} on {tb.settings.database.split(':')[0]}, "
                  f"RSEs {', '.join(tb.rses)}")
    profile = tb.profile
    scope, name = profile.scopes.raw[0], f"{profile.naming.tags[0]}/run{1:0{profile.naming.run_digits_min}d}.mid.gz"
    daq_account, dm_account, user_account = (profile.accounts_with(role)[0].name
                                             for role in ("daq", "data-manager", "user"))
    disks = [name for name, rse in profile.rses.items() if rse.kind != "tape"]
    landing, second = disks[0], disks[1]
    work = tb.state / "demo"
    run = work / "daq" / name
    make_run_file(run)
    uploaded_md5 = md5(run)

    daq = tb.client(daq_account)
    from rucio.client.uploadclient import UploadClient

    did = [{"scope": scope, "name": name}]
    states = next(iter(daq.list_replicas(did, all_states=True)), {}).get("states", {})
    if states.get(landing) == "AVAILABLE":
        console.print(f"[bold]2.[/] {scope}:{name} is already on {landing} (re-run): not uploading again")
    else:  # first run, or a run interrupted half-way: the upload client completes what is missing
        UploadClient(_client=daq).upload([{"path": str(run), "rse": landing, "did_scope": scope, "did_name": name}])
        console.print(f"[bold]2.[/] {daq_account} uploaded {scope}:{name} ({run.stat().st_size} bytes, md5 "
                      f"{uploaded_md5}) to {landing}")

    rules = [r for r in daq.list_did_rules(scope, name) if r["rse_expression"] == second]
    rule_id = rules[0]["id"] if rules else daq.add_replication_rule(did, 1, second)[0]
    if rules and rules[0]["state"] == "STUCK":  # left by an interrupted run: the data manager retries it now
        tb.client(dm_account).update_replication_rule(rule_id, {"boost_rule": True})
    rule = wait_rule_ok(tb, rule_id)
    console.print(f"[bold]3.[/] rule {rule_id[:8]}… to {second}: {rule['state']} "
                  f"(locks ok/replicating/stuck {rule['locks_ok_cnt']}/{rule['locks_replicating_cnt']}/"
                  f"{rule['locks_stuck_cnt']})")
    if rule["state"] != "OK":
        console.print(f"[red]replication did not finish[/]: {rule.get('error')}")
        return 1

    dest = work / user_account
    shutil.rmtree(dest, ignore_errors=True)
    rucio = str(Path(sys.executable).parent / "rucio")
    res = subprocess.run([rucio, "download", "--rses", second, "--dir", str(dest), f"{scope}:{name}"],
                         env={**os.environ, **tb.env(user_account)}, capture_output=True, text=True)
    got = dest / scope / name
    if res.returncode != 0 or not got.exists():
        console.print(f"[red]rucio download failed[/]:\n{res.stderr[-2000:]}")
        return 1
    downloaded_md5 = md5(got)
    same = downloaded_md5 == uploaded_md5
    console.print(f"[bold]4.[/] {user_account} ran `rucio download --rses {second} {scope}:{name}` -> {got}")
    console.print(f"[bold]5.[/] md5 uploaded {uploaded_md5}  downloaded {downloaded_md5}  "
                  + ("[green]identical[/]" if same else "[red]DIFFERENT[/]"))
    if not same or not reconstruct(tb, work) or not lifecycle_step(tb, work) or not physicist_step(tb, work):
        return 1
    console.print(f"    use it yourself: eval \"$(.venv/bin/cygno-dm testbed env {user_account})\"; .venv/bin/rucio did list "
                  f"'{scope}:*'   (stop with: .venv/bin/cygno-dm testbed down)")
    return 0


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


def _replicas(client, scope: str, name: str) -> list:
    from types import SimpleNamespace

    rows = list(client.list_replicas([{"scope": scope, "name": name}], all_states=True))
    return [SimpleNamespace(rse=rse, state=str(st)) for row in rows for rse, st in row.get("states", {}).items()]


if __name__ == "__main__":
    sys.exit(main())
