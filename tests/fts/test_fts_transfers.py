"""Real copies through the service process: the fts3 client, S3→S3 between two moto servers, file→file, errors."""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.exceptions
import fts3.rest.client.easy as fts3
import pytest

from .conftest import DOWN_HOST, DOWN_KEYS, TERMINAL, FtsProcess, MotoServer, free_port, wait_for


def adler32(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def put(server: MotoServer, bucket: str, key: str, size: int) -> bytes:
    data = os.urandom(size)
    server.client().put_object(Bucket=bucket, Key=key, Body=data)
    return data


def get(server: MotoServer, bucket: str, key: str) -> bytes | None:
    try:
        return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.ClientError:
        return None


def only_file(job: dict[str, Any]) -> dict[str, Any]:
    (f,) = job["files"]
    return f


@pytest.fixture
def context(fts: FtsProcess, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An fts3 client Context over https with the test user's certificate."""
    monkeypatch.delenv("X509_USER_PROXY", raising=False)
    monkeypatch.delenv("X509_USER_CERT", raising=False)
    return fts3.Context(fts.url, ucert=fts.cert, ukey=fts.cert, verify=False)


def client_wait(context: Any, job_id: str) -> dict[str, Any]:
    return wait_for(lambda: (s := fts3.get_job_status(context, job_id, list_files=True))["job_state"] in TERMINAL
                    and s, 90, 0.1, what=f"job {job_id}")


def test_fts3_client_s3_to_s3_between_two_moto_servers(context: Any, s3_servers: tuple[MotoServer, MotoServer],
                                                         buckets: tuple[str, str]) -> None:
    a, b = s3_servers
    src_bucket, dst_bucket = buckets
    data = put(a, src_bucket, "cygno-data/LNGS/run12345.mid.gz", 5_000_000)
    meta = {"request_id": "r-1", "scope": "cygno-data", "nested": {"list": [1, "two", None]}}
    transfers = [
        fts3.new_transfer(a.url(src_bucket, "cygno-data/LNGS/run12345.mid.gz"),
                          b.url(dst_bucket, "cygno-data/LNGS/run12345.mid.gz"),
                          checksum="ADLER32:" + adler32(data), filesize=len(data), metadata=meta),
        # the http:// form Rucio produces for an S3 RSE on loopback (credentials are found by host)
        fts3.new_transfer(a.url(src_bucket, "cygno-data/LNGS/run12345.mid.gz", "http"),
                          b.url(dst_bucket, "copy2/run12345.mid.gz", "http"),
                          checksum="MD5:" + hashlib.md5(data).hexdigest(), metadata={"request_id": "r-2"}),
    ]
    job = fts3.new_job(transfers, verify_checksum=True, overwrite=True, metadata={"issuer": "pytest"})
    job_id = fts3.submit(context, job)
    status = client_wait(context, job_id)
    assert status["job_state"] == "FINISHED", status
    assert status["job_metadata"] == {"issuer": "pytest"}
    assert [f["file_metadata"] for f in status["files"]] == [meta, {"request_id": "r-2"}]
    assert all(f["file_state"] == "FINISHED" and f["start_time"] and f["finish_time"] for f in status["files"])
    assert get(b, dst_bucket, "cygno-data/LNGS/run12345.mid.gz") == data
    assert get(b, dst_bucket, "copy2/run12345.mid.gz") == data
    assert fts3.whoami(context)["vos"] == ["cygno"]
    listed = fts3.get_jobs_statuses(context, [job_id], list_files=True)
    assert listed["files"][0]["file_state"] == "FINISHED"


def test_fts3_client_cancel(context: Any, tmp_path: Path) -> None:
    # a staging job against a tape endpoint that does not answer stays in STAGING until canceled
    port = free_port(DOWN_HOST)
    t = fts3.new_transfer(f"davs://{DOWN_HOST}:{port}/tape/file", f"file://{tmp_path}/out")
    job_id = fts3.submit(context, fts3.new_job([t], bring_online=3600))
    assert fts3.get_job_status(context, job_id)["job_state"] == "STAGING"
    assert fts3.cancel(context, job_id)["job_state"] == "CANCELED"
    status = fts3.get_job_status(context, job_id, list_files=True)
    assert status["job_state"] == "CANCELED" and status["files"][0]["file_state"] == "CANCELED"
    assert status["job_finished"]


def test_file_to_file_with_md5(fts: FtsProcess, tmp_path: Path) -> None:
    data = os.urandom(1_234_567)
    src = tmp_path / "in" / "a.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    dst = tmp_path / "out" / "deep" / "a.bin"
    job_id = fts.submit([{"sources": [f"file://{src}"], "destinations": [f"file://{dst}"],
                          "checksum": "MD5:" + hashlib.md5(data).hexdigest(), "filesize": len(data)}],
                        verify_checksum="both")
    job = fts.wait_job(job_id)
    assert job["job_state"] == "FINISHED", job
    assert dst.read_bytes() == data
    assert only_file(job)["transferred"] == len(data)


def test_wrong_checksum_fails_removes_destination_then_retry_succeeds(
        fts: FtsProcess, s3_servers: tuple[MotoServer, MotoServer], buckets: tuple[str, str]) -> None:
    a, b = s3_servers
    src_bucket, dst_bucket = buckets
    data = put(a, src_bucket, "f", 300_000)
    wrong = f"{(int(adler32(data), 16) + 1) & 0xFFFFFFFF:08x}"
    spec = {"sources": [a.url(src_bucket, "f")], "destinations": [b.url(dst_bucket, "f")],
            "checksum": "ADLER32:" + wrong}
    job = fts.wait_job(fts.submit([spec], verify_checksum="both", retry=-1))
    assert job["job_state"] == "FAILED"
    assert "Checksum mismatch" in only_file(job)["reason"] and wrong in only_file(job)["reason"]
    assert job["reason"]
    assert get(b, dst_bucket, "f") is None
    spec["checksum"] = "ADLER32:" + adler32(data)
    job = fts.wait_job(fts.submit([spec], verify_checksum="both"))
    assert job["job_state"] == "FINISHED" and get(b, dst_bucket, "f") == data


def test_target_only_verification_checks_destination(fts: FtsProcess, s3_servers: tuple[MotoServer, MotoServer],
                                                      buckets: tuple[str, str]) -> None:
    a, b = s3_servers
    src_bucket, dst_bucket = buckets
    data = put(a, src_bucket, "t", 100_000)
    ok = {"sources": [a.url(src_bucket, "t")], "destinations": [b.url(dst_bucket, "t")],
          "checksum": "MD5:" + hashlib.md5(data).hexdigest()}
    assert fts.wait_job(fts.submit([ok], verify_checksum="target"))["job_state"] == "FINISHED"
    bad = {**ok, "destinations": [b.url(dst_bucket, "t2")], "checksum": "MD5:" + "0" * 32}
    job = fts.wait_job(fts.submit([bad], verify_checksum="target"))
    assert job["job_state"] == "FAILED" and "Checksum mismatch" in only_file(job)["reason"]
    assert get(b, dst_bucket, "t2") is None


def test_missing_source_fails_then_succeeds_once_it_exists(
        fts: FtsProcess, s3_servers: tuple[MotoServer, MotoServer], buckets: tuple[str, str]) -> None:
    a, b = s3_servers
    src_bucket, dst_bucket = buckets
    spec = {"sources": [a.url(src_bucket, "later")], "destinations": [b.url(dst_bucket, "later")]}
    job = fts.wait_job(fts.submit([spec], retry=3, retry_delay=1))
    f = only_file(job)
    assert job["job_state"] == "FAILED"
    assert f["reason"].startswith("SOURCE [2]") and "not found" in f["reason"]
    assert f["retry"] == 0  # a missing source is not retried
    data = put(a, src_bucket, "later", 1000)
    assert fts.wait_job(fts.submit([spec]))["job_state"] == "FINISHED"
    assert get(b, dst_bucket, "later") == data


def test_destination_down_fails_then_resubmission_succeeds(
        fts: FtsProcess, s3_servers: tuple[MotoServer, MotoServer], buckets: tuple[str, str],
        tmp_path: Path) -> None:
    a, _ = s3_servers
    src_bucket, _ = buckets
    data = put(a, src_bucket, "d", 2000)
    down = MotoServer(DOWN_HOST, *DOWN_KEYS, tmp_path)
    spec = {"sources": [a.url(src_bucket, "d")], "destinations": [down.url("dst", "d")],
            "checksum": "ADLER32:" + adler32(data)}
    job = fts.wait_job(fts.submit([spec], retry=-1))
    assert job["job_state"] == "FAILED"
    assert only_file(job)["reason"].startswith("DESTINATION") and "connect" in only_file(job)["reason"].lower()
    down.start()
    try:
        down.client().create_bucket(Bucket="dst")
        assert fts.wait_job(fts.submit([spec], verify_checksum="both"))["job_state"] == "FINISHED"
        assert get(down, "dst", "d") == data
    finally:
        down.stop()


def test_retry_with_backoff_succeeds_after_destination_comes_up(
        fts: FtsProcess, s3_servers: tuple[MotoServer, MotoServer], buckets: tuple[str, str],
        tmp_path: Path) -> None:
    a, _ = s3_servers
    src_bucket, _ = buckets
    data = put(a, src_bucket, "r", 2000)
    down = MotoServer(DOWN_HOST, *DOWN_KEYS, tmp_path)
    job_id = fts.submit([{"sources": [a.url(src_bucket, "r")], "destinations": [down.url("dst", "r")]}],
                        retry=6, retry_delay=1)
    first = wait_for(lambda: (f := only_file(fts.job(job_id)))["retry"] >= 1 and f, 60, what="first retry")
    assert first["file_state"] in ("SUBMITTED", "ACTIVE") and first["reason"].startswith("DESTINATION")
    fid = first["file_id"]
    down.start()
    try:
        down.client().create_bucket(Bucket="dst")
        job = fts.wait_job(job_id, timeout=120)
        assert job["job_state"] == "FINISHED" and get(down, "dst", "r") == data
        retries = fts.request("GET", f"/jobs/{job_id}/files/{fid}/retries").json()
        assert retries and all(r["reason"].startswith("DESTINATION") for r in retries)
    finally:
        down.stop()


def test_existing_destination_without_overwrite_fails(fts: FtsProcess, tmp_path: Path) -> None:
    src, dst = tmp_path / "s", tmp_path / "d"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    job = fts.wait_job(fts.submit([{"sources": [f"file://{src}"], "destinations": [f"file://{dst}"]}],
                                  overwrite=False))
    assert job["job_state"] == "FAILED"
    assert "Destination file exists and overwrite is not enabled" in only_file(job)["reason"]
    assert dst.read_bytes() == b"old"
    assert fts.wait_job(fts.submit([{"sources": [f"file://{src}"], "destinations": [f"file://{dst}"]}],
                                   overwrite=True))["job_state"] == "FINISHED"
    assert dst.read_bytes() == b"new"


def test_multiple_sources_fail_over_and_leave_not_used(fts: FtsProcess, tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_bytes(b"payload")
    third = tmp_path / "third"
    third.write_bytes(b"payload")
    spec = {"sources": [f"file://{tmp_path}/missing", f"file://{good}", f"file://{third}"],
            "destinations": [f"file://{tmp_path}/out"], "metadata": {"request_id": "multi"}}
    job = fts.wait_job(fts.submit([spec], job_metadata={"multi_sources": True}))
    assert job["job_state"] == "FINISHED" and job["job_type"] == "R"
    assert [f["file_state"] for f in job["files"]] == ["FAILED", "FINISHED", "NOT_USED"]
    assert (tmp_path / "out").read_bytes() == b"payload"


def test_multihop_runs_hops_in_order(fts: FtsProcess, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"hop")
    hops = [{"sources": [f"file://{tmp_path}/a"], "destinations": [f"file://{tmp_path}/b"]},
            {"sources": [f"file://{tmp_path}/b"], "destinations": [f"file://{tmp_path}/c"]}]
    job = fts.wait_job(fts.submit(hops, multihop=True))
    assert job["job_state"] == "FINISHED" and job["job_type"] == "H"
    assert (tmp_path / "c").read_bytes() == b"hop"
    failing = [{"sources": [f"file://{tmp_path}/nope"], "destinations": [f"file://{tmp_path}/x"]},
               {"sources": [f"file://{tmp_path}/x"], "destinations": [f"file://{tmp_path}/y"]}]
    job = fts.wait_job(fts.submit(failing, multihop=True))
    assert job["job_state"] == "FAILED"
    assert [f["file_state"] for f in job["files"]] == ["FAILED", "NOT_USED"]


def test_partial_failure_is_finisheddirty(fts: FtsProcess, tmp_path: Path) -> None:
    (tmp_path / "ok").write_bytes(b"ok")
    files = [{"sources": [f"file://{tmp_path}/ok"], "destinations": [f"file://{tmp_path}/ok.out"]},
             {"sources": [f"file://{tmp_path}/absent"], "destinations": [f"file://{tmp_path}/absent.out"]}]
    job = fts.wait_job(fts.submit(files))
    assert job["job_state"] == "FINISHEDDIRTY"
    assert sorted(f["file_state"] for f in job["files"]) == ["FAILED", "FINISHED"]


def test_health_and_metrics(fts: FtsProcess) -> None:
    assert fts.request("GET", "/").json()["api"]["major"] == 3
    assert "fts_jobs_submitted" in fts.request("GET", "/metrics").text


@pytest.mark.parametrize("max_active", [1])
def test_many_small_files_all_finish(fts_factory: Callable[..., FtsProcess], tmp_path: Path,
                                     max_active: int) -> None:
    svc = fts_factory("--max-active", str(max_active))
    files = []
    for i in range(20):
        p = tmp_path / f"s{i}"
        p.write_bytes(bytes([i]) * 100)
        files.append({"sources": [f"file://{p}"], "destinations": [f"file://{tmp_path}/o/{i}"],
                      "checksum": "ADLER32:" + adler32(bytes([i]) * 100)})
    job = svc.wait_job(svc.submit(files, verify_checksum="both"))
    assert job["job_state"] == "FINISHED"
    assert all((tmp_path / "o" / str(i)).read_bytes() == bytes([i]) * 100 for i in range(20))


def test_overwrite_replaces_an_existing_s3_object(fts: FtsProcess, s3_servers: tuple[MotoServer, MotoServer],
                                                  buckets: tuple[str, str]) -> None:
    a, b = s3_servers
    src_bucket, dst_bucket = buckets
    data = put(a, src_bucket, "o", 50_000)
    put(b, dst_bucket, "o", 10)
    spec = {"sources": [a.url(src_bucket, "o")], "destinations": [b.url(dst_bucket, "o")]}
    refused = fts.wait_job(fts.submit([spec], overwrite=False))
    assert refused["job_state"] == "FAILED" and "overwrite is not enabled" in only_file(refused)["reason"]
    assert len(get(b, dst_bucket, "o") or b"") == 10
    assert fts.wait_job(fts.submit([spec], overwrite=True))["job_state"] == "FINISHED"
    assert get(b, dst_bucket, "o") == data
