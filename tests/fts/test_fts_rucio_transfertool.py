"""Rucio 41's own FTS3Transfertool (what the conveyor uses) against the service, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import DOWN_HOST, REPO, FtsProcess, MotoServer, free_port
from .test_fts_transfers import adler32, get, put

RUCIO_CFG = """[common]
loglevel = WARNING
[database]
default = sqlite:///{db}
[conveyor]
use_deterministic_id = True
usercert = {cert}
[transfers]
overwrite_corrupted_files = False
"""


def test_rucio_fts3_transfertool_end_to_end(fts: FtsProcess, s3_servers: tuple[MotoServer, MotoServer],
                                            buckets: tuple[str, str], tmp_path: Path) -> None:
    a, b = s3_servers
    src_bucket, dst_bucket = buckets
    name = "LNGS/run114497.mid.gz"
    data = put(a, src_bucket, f"cygno-data/{name}", 700_000)
    spec = {"fts": fts.url, "a": {"host": a.host, "port": a.port, "bucket": src_bucket},
            "b": {"host": b.host, "port": b.port, "bucket": dst_bucket},
            "tape": {"host": DOWN_HOST, "port": free_port(DOWN_HOST)},
            "name": name, "size": len(data), "adler32": adler32(data)}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "rucio.cfg").write_text(RUCIO_CFG.format(db=tmp_path / "rucio.db", cert=fts.cert))
    env = {**os.environ, "RUCIO_CONFIG": str(tmp_path / "rucio.cfg"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("rucio_driver.py")),
                           str(tmp_path / "spec.json")], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["version"]["api"]["major"] == 3 and out["whoami"]["vos"] == ["cygno"]
    # deterministic id: what the service returns is what Rucio computes from base_id, VO and request id
    assert out["eid"] == out["deterministic_expected"]
    assert out["duplicate"] == out["eid"]

    s3 = out["s3_to_s3"]
    assert s3["state"] == "DONE" and s3["file_state"] == "FINISHED" and s3["job_state"] == "FINISHED"
    assert s3["src_url"] == f"http://{a.host}:{a.port}/{src_bucket}/cygno-data/{name}"
    assert s3["dst_url"] == f"http://{b.host}:{b.port}/{dst_bucket}/cygno-data/{name}"
    assert s3["file_metadata"]["adler32"] == adler32(data) and s3["file_metadata"]["dst_rse"] == "S3_B"
    assert s3["started_at"] != "None" and s3["transferred_at"] != "None"
    assert get(b, dst_bucket, f"cygno-data/{name}") == data
    assert out["query"] == "FINISHED" and out["query_details"] == ["FINISHED"]

    assert out["checked_params"] == "target" and out["checked"]["state"] == "DONE"
    bad = out["bad_checksum"]
    assert bad["state"] == "FAILED" and "Checksum mismatch" in bad["err_msg"]
    assert get(b, dst_bucket, f"bad/cygno-data/{name}") is None

    assert out["multi_params"]["multi_sources"] is True
    assert out["multi"]["state"] == "DONE" and out["multi_files"] == ["FAILED", "FINISHED"]
    assert get(b, dst_bucket, f"multi/cygno-data/{name}") == data

    assert out["staging"] == {"job_state": "STAGING", "bring_online": 43200}
    assert out["priority"] == 5 and out["cancel"] == "CANCELED"
    assert out["canceled"]["state"] == "FAILED" and "canceled" in out["canceled"]["err_msg"]
    assert out["lost"] == {"lost_is_none": True, "found": "dict"}
    assert fts.request("GET", "/").status_code == 200
