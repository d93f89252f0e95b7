"""`cygno-dm testbed` life cycle: a bad profile starts nothing; up is idempotent; down leaves no process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from cygno_dm.profile import PACKAGED
from tests.conftest import profile_on_free_ports, traversable_dir

CLI = [sys.executable, "-m", "cygno_dm.cli"]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=300)


def our_processes(state: Path) -> list[str]:
    """Command lines of live processes running in the state directory (the testbed starts all of them there)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "cwd") == str(state.resolve()):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def write_profile(path: Path, edit) -> Path:
    data = tomllib.loads((PACKAGED / "cygno-testbed.toml").read_text())
    edit(data)
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


@pytest.mark.parametrize("edit,expect", [
    (lambda d: d["rses"]["CNAF_USERDISK"].update(kind="tape-robot"), "rses.CNAF_USERDISK.kind"),
    (lambda d: d["scopes"].update(raw=["CYGNO DATA"]), "scopes.raw"),
    (lambda d: d["rses"].update(CNAF_USERDISK={"kind": "s3", "site": "CNAF"}), "need 'endpoint'"),
])
def test_broken_profile_fails_up_with_one_line_and_starts_nothing(tmp_path: Path, edit, expect: str) -> None:
    profile = write_profile(tmp_path / "bad.toml", edit)
    state = tmp_path / "state"
    res = run_cli("testbed", "up", "--state", str(state), "--profile", str(profile))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expect in lines[0], res.stderr
    assert not (state / "run").exists()
    assert our_processes(state) == []


def test_env_rejects_unknown_account(tmp_path: Path) -> None:
    res = run_cli("testbed", "env", "mallory", "--state", str(tmp_path))
    assert res.returncode == 1 and "no account 'mallory'" in res.stderr


def test_up_is_idempotent_and_down_leaves_nothing() -> None:
    base = traversable_dir("cygno-cli-")
    state = base / "state"
    env = {"CYGNO_DM_STATE": str(state)}
    profile = profile_on_free_ports(base / "p.toml")
    try:
        assert run_cli("testbed", "up", "--profile", str(profile), env=env).returncode == 0
        first = json.loads(run_cli("testbed", "status", "--json", env=env).stdout)
        res = run_cli("testbed", "up", env=env)
        assert res.returncode == 0, res.stderr
        second = json.loads(run_cli("testbed", "status", "--json", env=env).stdout)
        pids = {r["name"]: r["pid"] for r in first}
        assert pids == {r["name"]: r["pid"] for r in second}, "a second `up` must not restart anything"
        assert {r["name"] for r in first} >= {"rucio-server", "fts", "s3-CNAF_USERDISK", "s3-BARI_USERDISK",
                                               "webdav-BACKBONE_USERDISK", "tape-T1_USERTAPE", "rucio-judge-evaluator", "rucio-conveyor-submitter",
                                               "rucio-conveyor-poller", "rucio-conveyor-finisher", "rucio-reaper",
                                               "rucio-transmogrifier", "rucio-undertaker", "rucio-abacus-rse"}
        assert all(r["pid"] for r in second)
        assert our_processes(state), "up must have started processes"
    finally:
        down = run_cli("testbed", "down", env=env)
    assert down.returncode == 0
    assert our_processes(state) == []
    status = run_cli("testbed", "status", "--json", env=env)
    assert status.returncode == 1
    assert {r["state"] for r in json.loads(status.stdout)} == {"stopped"}
    shutil.rmtree(base, ignore_errors=True)
