"""Rucio's own gfal protocol (as for an RSE of type TAPE) against the endpoint, in a clean subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TLS, TapeServer, archiveinfo, wait_until

pytest.importorskip("gfal2")

SCRIPT = r"""
import json, os, sys
from rucio.rse.protocols.gfal import Default
port, workdir = int(sys.argv[1]), sys.argv[2]
attr = {"scheme": "https", "hostname": "127.0.0.1", "port": port, "prefix": "/cygno/", "auth_token": None,
        "impl": "rucio.rse.protocols.gfal.Default", "extended_attributes": None,
        "domains": {"lan": {"read": 1, "write": 1, "delete": 1},
                    "wan": {"read": 1, "write": 1, "delete": 1}}}
rse = {"rse": "T1_USERTAPE", "id": "tape", "deterministic": False, "verify_checksum": True,
       "protocols": [attr], "rse_type": "TAPE", "domain": ["lan", "wan"]}
p = Default(attr, rse)
p.connect()
pfn = f"https://127.0.0.1:{port}/cygno/cygno-data/LNGS/run00042.mid.gz"
p.put("run00042.mid.gz", pfn + ".rucio.upload", workdir)
p.rename(pfn + ".rucio.upload", pfn)
out = {"exists": p.exists(pfn), "stat": p.stat(pfn)}
p.get(pfn, os.path.join(workdir, "back"))
print(json.dumps(out))
"""

DELETE = r"""
import json, sys
from rucio.rse.protocols.gfal import Default
port = int(sys.argv[1])
attr = {"scheme": "https", "hostname": "127.0.0.1", "port": port, "prefix": "/cygno/", "auth_token": None,
        "impl": "rucio.rse.protocols.gfal.Default", "extended_attributes": None, "domains": {}}
p = Default(attr, {"rse": "T1_USERTAPE", "id": "tape", "deterministic": False, "protocols": [attr]})
p.connect()
pfn = f"https://127.0.0.1:{port}/cygno/cygno-data/LNGS/run00042.mid.gz"
try:
    p.get(pfn, sys.argv[2])
    got = "read"
except Exception as exc:
    got = type(exc).__name__
p.delete(pfn)
print(json.dumps({"nearline_get": got, "exists_after_delete": p.exists(pfn)}))
"""


def run_rucio(script: str, tmp_path: Path, *args: str) -> dict:
    cfg = tmp_path / "rucio.cfg"
    cfg.write_text("[common]\nloglevel = INFO\n[client]\nrucio_host = http://127.0.0.1:9\n"
                   "auth_host = http://127.0.0.1:9\naccount = root\nauth_type = userpass\n"
                   "[policy]\npermission = generic\nschema = generic\n")
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
                          env={"RUCIO_CONFIG": str(cfg), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "X509_USER_PROXY": TLS["cert"], "X509_CERT_DIR": str(Path(TLS["ca"]).parent)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_rucio_gfal_protocol_upload_rename_stat_get_delete(tape_factory, tmp_path: Path) -> None:
    # first life: files stay in the disk buffer; second life (same state): they go to tape at once
    server: TapeServer = tape_factory("--migrate-after", "3600", "--server", "werkzeug", name="rucio")
    work = tmp_path / "work"
    work.mkdir()
    data = b"CYGNO run 42 " * 1000
    (work / "run00042.mid.gz").write_bytes(data)
    out = run_rucio(SCRIPT, tmp_path, str(server.port), str(work))
    assert out["exists"] is True
    assert out["stat"]["filesize"] == str(len(data))
    assert (work / "back").read_bytes() == data

    server.kill(signal.SIGTERM)
    server.args = ["--migrate-after", "0", "--evict-after", "0", "--stage-latency", "3600", "--server", "werkzeug"]
    server.start()
    path = "/cygno/cygno-data/LNGS/run00042.mid.gz"
    wait_until(lambda: archiveinfo(server, path).get("locality") == "TAPE")
    out = run_rucio(DELETE, tmp_path, str(server.port), str(work / "again"))
    assert out == {"nearline_get": "ServiceUnavailable", "exists_after_delete": False}
    assert not (server.root / "tape" / path.lstrip("/")).exists()
