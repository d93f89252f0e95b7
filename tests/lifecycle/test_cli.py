"""`cygno-dm lifecycle` without a testbed: Rucio down (the daemon waits and says so), bad input refused with one
line, `status` of an empty database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lifecycle.cli import lifecycle
from tests.conftest import free_port
from tests.processing.conftest import CYGNO_DM


def rucio_down(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A production client config pointing at a port nobody listens on, and an environment using it."""
    url = f"http://127.0.0.1:{free_port()}"
    cfg = tmp_path / "client-cygno-prod.cfg"
    cfg.write_text(f"[client]\nrucio_host = {url}\nauth_host = {url}\nauth_type = userpass\nusername = cygno-prod\n"
                   "password = x\naccount = cygno-prod\nrequest_retries = 1\n")
    cfg.chmod(0o600)
    return cfg, {**os.environ, "RUCIO_CONFIG": str(cfg), "CYGNO_DM_PROFILE": "cygno-testbed"}


def test_with_rucio_down_the_daemon_waits_and_says_so(tmp_path: Path) -> None:
    cfg, env = rucio_down(tmp_path)
    res = subprocess.run([CYGNO_DM, "lifecycle", "run", "--once", "--state-dir", str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 3, res.stderr[-2000:]
    assert "Rucio did not answer: cannot create a client" in res.stderr
    log = open(tmp_path / "daemon.log", "w+")
    proc = subprocess.Popen([CYGNO_DM, "lifecycle", "run", "--state-dir", str(tmp_path)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "waiting 5 s" not in (tmp_path / "daemon.log").read_text():
        assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "daemon.log").read_text()
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 3


def test_bad_input_is_one_line_naming_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, env = rucio_down(tmp_path)
    monkeypatch.setenv("RUCIO_CONFIG", str(cfg))
    cases = {("--database", "mysql://x"): "--database: 'mysql://x' must be a sqlite:/// or postgresql:// URL",
             ("--executor", "dask"): "--executor dask needs --scheduler ADDRESS",
             ("--filter", "run_number>>3"): "--filter 'run_number>>3'",
             ("--staging-window", "-1"): "--staging-window",
             ("--staging-bytes", "0"): "--staging-bytes"}
    for args, message in cases.items():
        res = CliRunner().invoke(lifecycle, ["run", "--once", "--state-dir", str(tmp_path), *args])
        assert res.exit_code == 2 and message in res.output, (args, res.output)
    res = CliRunner().invoke(lifecycle, ["status", "--state-dir", str(tmp_path), "--json"])
    assert res.exit_code == 0 and json.loads(res.output) == {"campaigns": {}, "runs": []}
