"""The GravNet testbed profile onboarded on a running testbed with `cygno-dm experiment apply` (shared by tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import tomli_w
from rucio.common.exception import AccessDenied

from cygno_dm.profile import PACKAGED, load_profile

CLI = str(Path(sys.executable).with_name("cygno-dm"))
ROLES = ("daq", "data-manager", "user")


def cli(tb: Any, *args: str, account: str = "root") -> subprocess.CompletedProcess[str]:
    """`cygno-dm ARGS` as a testbed account."""
    env = {**os.environ, **tb.env(account)}
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=300)


def _served(client: Any, scope: str) -> None:
    """Wait until the server's policy knows the new experiment (it re-reads psge.experiments every few seconds)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            client.add_dataset(scope, f"LNF/probe{uuid.uuid4().hex[:8]}")
            return
        except AccessDenied:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


_DONE: dict[str, SimpleNamespace] = {}


def onboard_gravnet(tb: Any) -> SimpleNamespace:
    """The GravNet testbed profile on this testbed's RSEs: planned, applied, applied again (once per testbed and
    test session); its clients."""
    if str(tb.state) in _DONE:
        return _DONE[str(tb.state)]
    data = tomllib.loads((PACKAGED / "gravnet-testbed.toml").read_text())
    data["rses"] = tomllib.loads(Path(tb.settings.profile).read_text())["rses"]
    path = tb.state / "gravnet.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    profile = load_profile(str(path))
    runs = {}
    for key, verb in (("planned", "plan"), ("first", "apply"), ("again", "apply")):
        out = cli(tb, "experiment", verb, str(path), "--json")
        assert out.returncode == 0, out.stderr
        runs[key] = json.loads(out.stdout)
    accounts = {role: profile.accounts_with(role)[0].name for role in (*ROLES, "production")}
    clients = {role: tb.client(name, profile) for role, name in accounts.items()}
    _served(clients["daq"], "gravnet-raw")
    _DONE[str(tb.state)] = SimpleNamespace(path=path, profile=profile, accounts=accounts, clients=clients, **runs)
    return _DONE[str(tb.state)]
