"""The running testbed, on SQLite and PostgreSQL: every component healthy, the plain `rucio` CLI works for
every account, and a run file uploaded by the DAQ account downloads bit-identical for a plain user."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.stack import Testbed

pytestmark = pytest.mark.rucio
RUCIO = str(Path(sys.executable).parent / "rucio")


def rucio(tb: Testbed, account: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the plain rucio CLI as an account, the way `eval $(cygno-dm testbed env ACCOUNT)` sets it up."""
    env = {**os.environ, **tb.env(account)}
    return subprocess.run([RUCIO, *args], env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_every_component_healthy(testbed: Testbed) -> None:
    testbed.wait_daemon_passes(1)
    rows = testbed.status()
    assert rows and all(r["state"] == "healthy" for r in rows), [r for r in rows if r["state"] != "healthy"]


@pytest.mark.parametrize("account", ["root", "rucio-daq", "cygno-dm", "alice"])
def test_plain_rucio_cli_authenticates_as_each_account(testbed: Testbed, account: str) -> None:
    res = rucio(testbed, account, "whoami")
    assert res.returncode == 0, res.stderr
    assert f"account    : {account}" in res.stdout


def test_catalogue_matches_profile(testbed: Testbed) -> None:
    client = testbed.client("root")
    assert set(testbed.profile.scopes.all) <= set(client.list_scopes())
    assert {r["rse"] for r in client.list_rses()} == set(testbed.profile.rses)
    assert client.get_local_account_limits("rucio-daq")


def test_daq_upload_then_user_download_roundtrip(testbed: Testbed, tmp_path: Path) -> None:
    run = tmp_path / "run00042.mid.gz"
    run.write_bytes(os.urandom(300_000))
    rse = next(iter(testbed.profile.rses))
    up = rucio(testbed, "rucio-daq", "upload", "--rse", rse, "--scope", "cygno-data",
               "--lfn", "LNGS/run00042.mid.gz", str(run))
    assert up.returncode == 0, up.stderr
    dest = tmp_path / "download"
    down = rucio(testbed, "alice", "download", "--dir", str(dest), "cygno-data:LNGS/run00042.mid.gz")
    assert down.returncode == 0, down.stderr
    got = dest / "cygno-data" / "LNGS" / "run00042.mid.gz"
    assert md5(got) == md5(run)
