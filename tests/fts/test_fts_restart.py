"""SIGKILL of the service with transfers in flight: after a restart nothing hangs and no bad bytes stay behind."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .conftest import FtsProcess, MotoServer, wait_for
from .test_fts_transfers import adler32, get, put


def test_kill_mid_copy_fails_interrupted_transfer_and_removes_partial_destination(
        fts_factory: Callable[..., FtsProcess], s3_servers: tuple[MotoServer, MotoServer],
        buckets: tuple[str, str], tmp_path: Path) -> None:
    # A FIFO source keeps the copy ACTIVE (half written) for as long as the test wants: deterministic.
    fifo = tmp_path / "slow-source"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)
    try:
        os.write(writer, b"x" * 60_000)
        svc = fts_factory("--max-active", "1", "--restart-retries", "0")
        partial = tmp_path / "out" / "partial.bin"
        stuck = svc.submit([{"sources": [f"file://{fifo}"], "destinations": [f"file://{partial}"]}])
        a, b = s3_servers
        src_bucket, dst_bucket = buckets
        data = put(a, src_bucket, "queued", 2_000_000)
        queued = svc.submit([{"sources": [a.url(src_bucket, "queued")], "destinations": [b.url(dst_bucket, "queued")],
                              "checksum": "ADLER32:" + adler32(data)}], verify_checksum="both")
        wait_for(lambda: partial.exists() and partial.stat().st_size > 0, 30, what="partial destination")
        assert svc.job(stuck)["files"][0]["file_state"] == "ACTIVE"
        assert svc.job(queued)["job_state"] == "SUBMITTED"
        svc.kill()
        assert partial.exists()  # wrong bytes on disk right after the crash

        svc.start()
        job = svc.wait_job(stuck)
        f = job["files"][0]
        assert job["job_state"] == "FAILED"
        assert "interrupted" in f["reason"] and "restarted" in f["reason"]
        assert f["finish_time"]
        assert not partial.exists()
        assert svc.wait_job(queued)["job_state"] == "FINISHED"
        assert get(b, dst_bucket, "queued") == data
    finally:
        os.close(writer)


def test_kill_with_s3_transfers_in_flight_then_all_finish_with_correct_bytes(
        fts_factory: Callable[..., FtsProcess], s3_servers: tuple[MotoServer, MotoServer],
        buckets: tuple[str, str]) -> None:
    a, b = s3_servers
    src_bucket, dst_bucket = buckets
    svc = fts_factory("--max-active", "2", "--max-per-link", "2")
    payloads = {f"big{i}": put(a, src_bucket, f"big{i}", 40_000_000 + i) for i in range(4)}
    jobs = [svc.submit([{"sources": [a.url(src_bucket, k)], "destinations": [b.url(dst_bucket, k)],
                         "checksum": "ADLER32:" + adler32(v)}], verify_checksum="both")
            for k, v in payloads.items()]
    wait_for(lambda: any(svc.job(j)["job_state"] == "ACTIVE" for j in jobs), 30, 0.02, what="an ACTIVE transfer")
    svc.kill()
    svc.start()
    for job_id in jobs:
        job = svc.wait_job(job_id, timeout=120)
        assert job["job_state"] == "FINISHED", job
    for key, value in payloads.items():
        assert get(b, dst_bucket, key) == value


def test_cancel_of_an_active_transfer_removes_the_partial_destination(
        fts_factory: Callable[..., FtsProcess], tmp_path: Path) -> None:
    fifo = tmp_path / "slow-source"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)
    try:
        os.write(writer, b"y" * 50_000)
        svc = fts_factory("--max-active", "1")
        partial = tmp_path / "partial"
        job_id = svc.submit([{"sources": [f"file://{fifo}"], "destinations": [f"file://{partial}"]}])
        wait_for(lambda: partial.exists() and partial.stat().st_size > 0, 30, what="partial destination")
        r = svc.request("DELETE", f"/jobs/{job_id}")
        assert r.status_code == 200 and r.json()["job_state"] == "CANCELED"
        os.write(writer, b"y" * 1000)  # lets the blocked read return; the copy sees the cancel and cleans up
        wait_for(lambda: not partial.exists(), 30, what="partial destination removed")
        job = svc.job(job_id)
        assert job["job_state"] == "CANCELED" and job["files"][0]["file_state"] == "CANCELED"
    finally:
        os.close(writer)
