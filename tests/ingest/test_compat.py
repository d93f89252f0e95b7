"""`cygno-dm upload`: the rucio-uploader flags and each exit code in the situation that defines it."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys

import pytest

from tests.ingest.conftest import DAQ
from tests.ingest.helpers import free_port, run_file

pytestmark = pytest.mark.rucio
BASE = 703000


def _transfer_rse(profile) -> str:
    tapes = [n for n, r in profile.rses.items() if r.kind == "tape"]
    return tapes[0] if tapes else list(profile.rses)[-1]


def _args(path, run: int, journal, transfer: str) -> list[str]:
    return [str(path), "--bucket", "cygno-data", "--did_name", f"MAN/run{run}.mid.gz", "--upload_rse",
            "CNAF_USERDISK", "--transfer_rse", transfer, "--account", DAQ, "--journal", str(journal)]


def _upload(tb, args: list[str], config: str | None = None) -> subprocess.CompletedProcess:
    """Run `cygno-dm upload` in a new process, as midas2cloud does."""
    env = {**os.environ, **tb.env(DAQ)}
    if config:
        env["RUCIO_CONFIG"] = config
    return subprocess.run([sys.executable, "-c", "from cygno_dm.ingest.cli import upload_cmd; upload_cmd()", *args],
                          env=env, capture_output=True, text=True, timeout=300)


def test_exit_codes(testbed, tmp_path):
    tb = testbed
    transfer = _transfer_rse(tb.profile)
    journal = tmp_path / "j.sqlite"
    good = run_file(tmp_path / "daq", BASE + 0, size=4000, tag="MAN")

    first = _upload(tb, _args(good, BASE + 0, journal, transfer))
    assert first.returncode == 0, first.stderr[-2000:]
    rules = tb.client(DAQ).list_did_rules("cygno-data", f"MAN/run{BASE}.mid.gz")
    assert transfer in {r["rse_expression"] for r in rules}

    again = _upload(tb, _args(good, BASE + 0, tmp_path / "other-journal.sqlite", transfer))
    assert again.returncode == 1, again.stderr[-2000:]
    assert _upload(tb, _args(good, BASE + 0, journal, transfer)).returncode == 1

    other = run_file(tmp_path / "daq", BASE + 1, size=4000, tag="MAN")
    bad_rule = _upload(tb, _args(other, BASE + 1, journal, "NO_SUCH_RSE"))
    assert bad_rule.returncode == 3, bad_rule.stderr[-2000:]
    assert "NO_SUCH_RSE" in bad_rule.stderr

    corrupt = run_file(tmp_path / "daq", BASE + 2, size=4000, tag="MAN")
    corrupt.write_bytes(corrupt.read_bytes()[:100] + b"garbage" + corrupt.read_bytes()[107:])
    failed = _upload(tb, _args(corrupt, BASE + 2, journal, transfer))
    assert failed.returncode == 2 and "corrupt gzip" in failed.stderr
    clash = run_file(tmp_path / "clash", BASE + 0, size=4000, seed=99, tag="MAN")
    clashed = _upload(tb, _args(clash, BASE + 0, tmp_path / "j3.sqlite", transfer))
    assert clashed.returncode == 2 and "different content" in clashed.stderr
    args = _args(good, BASE + 0, journal, transfer)
    bad_name = _upload(tb, [*args[:4], "run1.mid.gz", *args[5:]])
    assert bad_name.returncode == 2 and "breaks rule raw-file-name" in bad_name.stderr

    cfg = configparser.RawConfigParser()
    cfg.read(tb.client_cfg(DAQ))
    dead = f"http://127.0.0.1:{free_port()}"
    cfg["client"]["rucio_host"] = cfg["client"]["auth_host"] = dead
    cfg["client"]["request_retries"] = "0"
    broken = tmp_path / "broken.cfg"
    with open(broken, "w") as f:
        cfg.write(f)
    third = run_file(tmp_path / "daq", BASE + 3, size=4000, tag="MAN")
    no_client = _upload(tb, _args(third, BASE + 3, journal, transfer), config=str(broken))
    assert no_client.returncode == 4, no_client.stderr[-2000:]
    assert "cannot create the Rucio client" in no_client.stderr
