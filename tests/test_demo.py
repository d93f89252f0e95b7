"""`make demo` end to end on its own testbed, twice: the DAQ uploads and logs in to Rucio on its robot client's tokens,
the tape copy is made with Rucio's per-file tokens, the physicist logs in by the device flow and downloads on her
token what the DAQ uploaded; no token is ever printed or logged."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import profile_on_free_ports, traversable_dir

pytestmark = pytest.mark.rucio


def test_demo_runs_and_reruns_with_identical_checksums() -> None:
    base = traversable_dir("cygno-demo-")
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RUCIO_", "X509_"))}
    env = {**inherited, "CYGNO_DM_STATE": str(base / "state"),
           "CYGNO_DM_PROFILE": str(profile_on_free_ports(base / "profile.toml"))}
    try:
        for attempt in ("first run", "re-run"):
            res = subprocess.run([sys.executable, "-m", "cygno_dm.demo"], env=env, capture_output=True, text=True,
                                 timeout=600)
            out = " ".join(res.stdout.split())  # rich wraps long lines
            assert res.returncode == 0, (attempt, res.stdout[-3000:], res.stderr[-3000:])
            assert "identical" in out and "DIFFERENT" not in out, out
            assert "Rucio login oidc as rucio-daq" in out and "Rucio login oidc as alice" in out, out
            assert "PUT /cygno/cygno-data/LNGS/run00001.mid.gz by rucio (token)" in out, out  # the tape saw a token
            assert "eyJ" not in res.stdout + res.stderr  # no JWT (header.claims.signature) printed
            if attempt == "first run":
                assert "--storage-token file:" in out and "to BACKBONE_USERDISK with bearer tokens" in out, out
        assert "already on BACKBONE_USERDISK (re-run)" in out
        logs = [*(base / "state" / "logs").glob("*.log"), *(base / "state" / "demo").glob("**/*.log")]
        assert len(logs) > 5 and not [p for p in logs if "eyJ" in p.read_text(errors="replace")]
        # Step 11: the daemon's output found by metadata, downloaded with its raw run and pedestal map, drawn.
        pngs = list((base / "state" / "demo").glob("*-display/run12_ev*.png"))
        assert "11." in out and len(pngs) == 1 and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", out
    finally:
        subprocess.run([sys.executable, "-m", "cygno_dm.cli", "testbed", "down"], env=env, capture_output=True,
                       timeout=120)
        shutil.rmtree(base, ignore_errors=True)
