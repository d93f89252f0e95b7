"""Staging (bring_online) and archiving (archive_timeout) through the testbed tape endpoint's Tape REST API."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import REPO, USER, FtsProcess, FtsTls, MotoServer, _stop, free_port, wait_for
from .test_fts_transfers import adler32, get, put

TAPE_HOST = "127.0.0.46"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("testbed.tape") is None,
                                reason="testbed.tape (the tape endpoint) is not in the tree")


class TapeEndpoint:
    """`python -m testbed.tape` on its own loopback address."""

    def __init__(self, root: Path, migrate_after: float, evict_after: float, stage_latency: float, tls: FtsTls,
                 extra: tuple[str, ...] = ()):
        self.port = free_port(TAPE_HOST)
        self.tls = tls
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        with open(root / "tape.log", "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "testbed.tape", "--host", TAPE_HOST, "--port", str(self.port), "--root",
                 str(root), "--migrate-after", str(migrate_after), "--evict-after", str(evict_after),
                 "--stage-latency", str(stage_latency), "--server", "werkzeug", "--tls-dir", str(tls.dir), *extra],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        wait_for(self._up, 30, what="tape endpoint")

    def _up(self) -> bool:
        try:
            return self.request("GET", "/.well-known/wlcg-tape-rest-api", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    @property
    def base(self) -> str:
        """https://host:port."""
        return f"https://{TAPE_HOST}:{self.port}"

    def url(self, path: str) -> str:
        """A davs:// URL of a path on the endpoint."""
        return f"davs://{TAPE_HOST}:{self.port}{path}"

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        """A request to the endpoint as the test user (client certificate)."""
        kw.setdefault("timeout", 10)
        return requests.request(method, self.base + path, verify=self.tls.ca, cert=self.tls.certs[USER], **kw)

    def locality(self, path: str) -> str:
        """archiveinfo locality of a path."""
        (entry,) = self.request("POST", "/api/v1/archiveinfo", json={"paths": [path]}).json()
        return entry.get("locality") or entry.get("error", "")


@pytest.fixture
def tape_factory(tmp_path: Path, fts_tls: FtsTls) -> Iterator[Callable[..., TapeEndpoint]]:
    started: list[TapeEndpoint] = []

    def make(migrate_after: float = 0.5, evict_after: float = 0.5, stage_latency: float = 0.5) -> TapeEndpoint:
        ep = TapeEndpoint(tmp_path / f"tape{len(started)}", migrate_after, evict_after, stage_latency, fts_tls)
        started.append(ep)
        return ep

    yield make
    for ep in started:
        _stop(ep.proc)


def test_archive_waits_until_file_is_on_tape(fts: FtsProcess, tape_factory: Callable[..., TapeEndpoint],
                                             s3_servers: tuple[MotoServer, MotoServer],
                                             buckets: tuple[str, str]) -> None:
    tape = tape_factory(migrate_after=1.0, evict_after=3600)
    a, _ = s3_servers
    src_bucket, _ = buckets
    data = put(a, src_bucket, "arch", 400_000)
    path = "/cygno/cygno-data/LNGS/run00001.mid.gz"
    job = fts.wait_job(fts.submit([{"sources": [a.url(src_bucket, "arch")], "destinations": [tape.url(path)],
                                    "checksum": "ADLER32:" + adler32(data)}],
                                  verify_checksum="both", archive_timeout=60, dst_file_report=True))
    f = job["files"][0]
    assert job["job_state"] == "FINISHED", f["reason"]
    assert f["archive_start_time"] and f["archive_finish_time"] and f["archive_start_time"] <= f["finish_time"]
    assert tape.locality(path) in ("TAPE", "DISK_AND_TAPE")


def test_archive_timeout_fails_the_file(fts: FtsProcess, tape_factory: Callable[..., TapeEndpoint],
                                        tmp_path: Path) -> None:
    tape = tape_factory(migrate_after=3600, evict_after=3600)
    src = tmp_path / "src"
    src.write_bytes(b"never reaches tape")
    job = fts.wait_job(fts.submit([{"sources": [f"file://{src}"], "destinations": [tape.url("/cygno/slow")]}],
                                  archive_timeout=1))
    f = job["files"][0]
    assert job["job_state"] == "FAILED"
    assert f["reason"].startswith("ARCHIVING") and "archive timeout" in f["reason"]
    assert f["archive_start_time"] and f["archive_finish_time"]
    assert tape.locality("/cygno/slow") == "DISK"


def test_bring_online_stages_then_copies(fts: FtsProcess, tape_factory: Callable[..., TapeEndpoint],
                                         s3_servers: tuple[MotoServer, MotoServer], buckets: tuple[str, str],
                                         tmp_path: Path) -> None:
    tape = tape_factory(migrate_after=0.3, evict_after=0.3, stage_latency=1.0)
    _, b = s3_servers
    _, dst_bucket = buckets
    data = b"\x1f\x8b" + bytes(range(256)) * 1000
    path = "/cygno/cygno-data/LNGS/run00002.mid.gz"
    assert tape.request("PUT", path, data=data).status_code in (200, 201, 204)
    wait_for(lambda: tape.locality(path) == "TAPE", 60, 0.2, what="file evicted to tape only")

    # reading a tape-only file without staging fails with a clear reason
    direct = fts.wait_job(fts.submit([{"sources": [tape.url(path)], "destinations": [f"file://{tmp_path}/x"]}]))
    assert direct["job_state"] == "FAILED" and direct["files"][0]["reason"].startswith("SOURCE")

    job_id = fts.submit([{"sources": [tape.url(path)], "destinations": [b.url(dst_bucket, "staged")],
                          "checksum": "ADLER32:" + adler32(data), "staging_metadata": {"default": {"activity": "T"}}}],
                        verify_checksum="both", bring_online=120, copy_pin_lifetime=600)
    assert fts.job(job_id)["job_state"] in ("STAGING", "SUBMITTED", "ACTIVE", "FINISHED")
    job = fts.wait_job(job_id)
    f = job["files"][0]
    assert job["job_state"] == "FINISHED", f["reason"]
    assert f["staging_start"] and f["staging_finished"] and f["staging_start"] <= f["staging_finished"]
    assert get(b, dst_bucket, "staged") == data


def test_staging_a_missing_file_fails(fts: FtsProcess, tape_factory: Callable[..., TapeEndpoint],
                                      tmp_path: Path) -> None:
    tape = tape_factory()
    job = fts.wait_job(fts.submit([{"sources": [tape.url("/cygno/absent")], "destinations": [f"file://{tmp_path}/y"]}],
                                  bring_online=60))
    assert job["job_state"] == "FAILED"
    assert job["files"][0]["reason"].startswith("STAGING")


def test_staging_only_job_finishes_without_copy(fts: FtsProcess, tape_factory: Callable[..., TapeEndpoint]) -> None:
    tape = tape_factory(migrate_after=0.3, evict_after=0.3, stage_latency=0.5)
    path = "/cygno/stage-only"
    tape.request("PUT", path, data=b"abc")
    wait_for(lambda: tape.locality(path) == "TAPE", 60, 0.2, what="file evicted to tape only")
    job = fts.wait_job(fts.submit([{"sources": [tape.url(path)], "destinations": [tape.url(path)]}],
                                  bring_online=60, copy_pin_lifetime=60))
    assert job["job_state"] == "FINISHED"
    assert tape.locality(path) == "DISK_AND_TAPE"


def test_existing_file_on_tape_is_reported_not_overwritten(fts: FtsProcess,
                                                            tape_factory: Callable[..., TapeEndpoint],
                                                            tmp_path: Path) -> None:
    tape = tape_factory(migrate_after=0.3, evict_after=3600)
    data = b"already archived" * 1000
    src = tmp_path / "src"
    src.write_bytes(data)
    spec = {"sources": [f"file://{src}"], "destinations": [tape.url("/cygno/dup")],
            "checksum": "ADLER32:" + adler32(data), "metadata": {"request_id": "dup-1"}}
    assert fts.wait_job(fts.submit([spec], archive_timeout=60))["job_state"] == "FINISHED"
    job = fts.wait_job(fts.submit([spec], archive_timeout=60, dst_file_report=True, overwrite=False))
    f = job["files"][0]
    assert job["job_state"] == "FAILED"
    assert "Destination file exists and is on tape" in f["reason"]
    dst_file = f["file_metadata"]["dst_file"]
    assert f["file_metadata"]["request_id"] == "dup-1"
    assert dst_file["file_size"] == len(data) and dst_file["file_on_tape"] is True
    assert dst_file["checksum_type"] == "ADLER32" and int(dst_file["checksum_value"], 16) == int(adler32(data), 16)


def test_overwrite_when_only_on_disk(fts: FtsProcess, tape_factory: Callable[..., TapeEndpoint],
                                     tmp_path: Path) -> None:
    tape = tape_factory(migrate_after=3600, evict_after=3600)
    tape.request("PUT", "/cygno/ondisk", data=b"stale")
    src = tmp_path / "src"
    src.write_bytes(b"fresh")
    job = fts.wait_job(fts.submit([{"sources": [f"file://{src}"], "destinations": [tape.url("/cygno/ondisk")]}],
                                  overwrite=False, overwrite_when_only_on_disk=True, archive_timeout=1))
    assert job["files"][0]["reason"].startswith("ARCHIVING")  # copied, then never reached tape in time
    assert tape.request("GET", "/cygno/ondisk").content == b"fresh"
