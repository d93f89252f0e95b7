"""Helpers for tests that drive the testbed the way people do: the plain `rucio` CLI and the Rucio client."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
from botocore.config import Config

from testbed.rses import host_port
from testbed.stack import Testbed

RUCIO = str(Path(sys.executable).parent / "rucio")


def rucio(tb: Testbed, account: str, *args: str) -> subprocess.CompletedProcess:
    """Run the plain rucio CLI as an account, the way `eval $(cygno-dm testbed env ACCOUNT)` sets it up."""
    env = {**os.environ, **tb.env(account)}
    return subprocess.run([RUCIO, *args], env=env, capture_output=True, text=True, timeout=300)


def md5(path: Path) -> str:
    """MD5 of a file."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def new_run_name(tag: str = "LNGS") -> str:
    """A raw DID name no other test uses: `<TAG>/run<N>.mid.gz` with a random 9-digit run number."""
    return f"{tag}/run{uuid.uuid4().int % 10**9:09d}.mid.gz"


def upload(tb: Testbed, account: str, path: Path, rse: str, scope: str, name: str) -> None:
    """Upload with the plain CLI and insist the replica is AVAILABLE afterwards."""
    res = rucio(tb, account, "upload", "--rse", rse, "--scope", scope, "--lfn", name, str(path))
    replicas = list(tb.client("root").list_replicas([{"scope": scope, "name": name}], all_states=True))
    states = replicas[0]["states"] if replicas else {}
    assert res.returncode == 0 and states.get(rse) == "AVAILABLE", (res.stderr[-3000:], states)


def download(tb: Testbed, account: str, scope: str, name: str, dest: Path, *extra: str) -> Path:
    """Download with the plain CLI and return the local file (asserting it arrived)."""
    res = rucio(tb, account, "download", "--dir", str(dest), *extra, f"{scope}:{name}")
    got = dest / scope / name
    assert res.returncode == 0 and got.exists(), res.stderr[-3000:]
    return got


def wait_rules(tb: Testbed, rule_ids: list[str], timeout: float = 300) -> dict[str, dict]:
    """Wait until every rule is OK (or one is STUCK / the timeout passes); return the rules."""
    client = tb.client("root")
    deadline = time.monotonic() + timeout
    while True:
        rules = {rid: client.get_replication_rule(rid) for rid in rule_ids}
        if all(r["state"] == "OK" for r in rules.values()) or time.monotonic() > deadline:
            return rules
        time.sleep(1)


def s3_client(tb: Testbed, rse_name: str):
    """A boto3 client on an S3 RSE's site, with the site's own keys (to look behind Rucio's back)."""
    rse = tb.profile.rses[rse_name]
    host, port = host_port(rse)
    return boto3.client("s3", endpoint_url=f"https://{host}:{port}", verify=str(tb.ca_dir / "ca.pem"),
                        aws_access_key_id=rse.credentials["access_key"],
                        aws_secret_access_key=rse.credentials["secret_key"], region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}))
