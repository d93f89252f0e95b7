"""S3→S3 between two testbed S3 sites that enforce their own credentials (testbed.storage.s3)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from testbed.private import write_private

from .conftest import REPO, FtsProcess, FtsTls, _stop, free_port, wait_for

pytestmark = pytest.mark.skipif(importlib.util.find_spec("testbed.storage.s3") is None,
                                reason="testbed.storage.s3 (credential-enforcing S3 sites) is not in the tree")

SITES = {"a": ("127.0.0.47", "site-a-key", "site-a-secret"), "b": ("127.0.0.48", "site-b-key", "site-b-secret")}


class Site:
    """One `python -m testbed.storage.s3` process."""

    def __init__(self, host: str, key: str, secret: str, log: Path):
        self.host, self.key, self.secret = host, key, secret
        self.port = free_port(host)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "testbed.storage.s3", "--host", host, "--port", str(self.port),
                 "--access-key", key, "--secret-key-file", str(write_private(log.with_suffix(".key"), secret)),
                 "--bucket", "cygno-data"],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})
        wait_for(self._up, 60, what=f"S3 site {host}")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"S3 site {self.host} exited")
        try:
            self.client().list_objects_v2(Bucket="cygno-data")
            return True
        except Exception:
            return False

    def client(self) -> Any:
        """boto3 client with the site's own keys."""
        return boto3.client("s3", endpoint_url=f"http://{self.host}:{self.port}", aws_access_key_id=self.key,
                            aws_secret_access_key=self.secret, region_name="us-east-1")

    def url(self, key: str) -> str:
        """The http:// URL Rucio produces for this S3 RSE."""
        return f"http://{self.host}:{self.port}/cygno-data/{key}"


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Site]]:
    logs = tmp_path_factory.mktemp("sites")
    started: dict[str, Site] = {}
    try:
        for name, (host, key, secret) in SITES.items():
            started[name] = Site(host, key, secret, logs / f"{name}.log")
        yield started
    finally:
        for site in started.values():
            _stop(site.proc)


def _creds(path: Path, sites: dict[str, Site], swap: bool = False) -> Path:
    entries = {s.host: {"access_key": s.key, "secret_key": s.secret, "region": "us-east-1"} for s in sites.values()}
    if swap:
        a, b = sites["a"].host, sites["b"].host
        entries[a], entries[b] = entries[b], entries[a]
    path.write_text(json.dumps(entries))
    return path


def _endpoints(sites: dict[str, Site]) -> list[str]:
    return [x for s in sites.values() for x in ("--storage-endpoint", f"http://{s.host}:{s.port}")]


def test_copy_between_sites_with_their_own_credentials(sites: dict[str, Site], tmp_path: Path,
                                                       fts_tls: FtsTls) -> None:
    svc = FtsProcess(tmp_path, _creds(tmp_path / "creds.json", sites), fts_tls, _endpoints(sites)).start()
    try:
        data = os.urandom(3_000_000)
        sites["a"].client().put_object(Bucket="cygno-data", Key="LNGS/run00042.mid.gz", Body=data)
        job = svc.wait_job(svc.submit([{"sources": [sites["a"].url("LNGS/run00042.mid.gz")],
                                        "destinations": [sites["b"].url("LNGS/run00042.mid.gz")],
                                        "checksum": f"ADLER32:{zlib.adler32(data) & 0xFFFFFFFF:08x}"}],
                                      verify_checksum="both"))
        assert job["job_state"] == "FINISHED", job["files"][0]["reason"]
        got = sites["b"].client().get_object(Bucket="cygno-data", Key="LNGS/run00042.mid.gz")["Body"].read()
        assert got == data
    finally:
        svc.stop()


def test_wrong_credentials_fail_with_a_clear_reason(sites: dict[str, Site], tmp_path: Path, fts_tls: FtsTls) -> None:
    svc = FtsProcess(tmp_path, _creds(tmp_path / "swapped.json", sites, swap=True), fts_tls, _endpoints(sites)).start()
    try:
        sites["a"].client().put_object(Bucket="cygno-data", Key="x", Body=b"x")
        job = svc.wait_job(svc.submit([{"sources": [sites["a"].url("x")], "destinations": [sites["b"].url("x")]}],
                                      retry=-1))
        assert job["job_state"] == "FAILED"
        reason = job["files"][0]["reason"]
        assert reason.startswith("SOURCE") and ("403" in reason or "ermission" in reason or "denied" in reason)
    finally:
        svc.stop()
