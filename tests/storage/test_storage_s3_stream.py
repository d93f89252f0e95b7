"""The S3 site's data path: bodies streamed to disk (bounded memory), nothing partial after a crash, multipart
uploads in progress kept across restarts, ranges, full-object CRCs combined from the parts."""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import google_crc32c
import pytest
from test_storage_s3 import BUCKET, client, crc32c_b64, keys

from testbed.storage.gfal import S3Site
from testbed.storage.s3_body import CRC_POLY, crc_combine

MIB = 1 << 20


def _hwm_kib(pid: int) -> int:
    """Peak resident memory of a process (VmHWM), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_crc_combine_matches_the_crc_of_the_concatenation() -> None:
    a, b = os.urandom(5000), os.urandom(777)
    assert crc_combine(google_crc32c.value(a), google_crc32c.value(b), len(b), CRC_POLY["CRC32C"]) \
        == google_crc32c.value(a + b)
    assert crc_combine(zlib.crc32(a), zlib.crc32(b), len(b), CRC_POLY["CRC32"]) == zlib.crc32(a + b)


def test_a_large_object_streams_through_in_bounded_memory(
    tmp_path: Path, launch_s3: Callable[..., Any], port_on: Callable[[str], int]
) -> None:
    site = S3Site("127.0.0.56", port_on("127.0.0.56"), "STREAMKEY00000000001", "stream-secret")
    server = launch_s3(site, tmp_path / "state")
    s3 = client(site)
    s3.put_object(Bucket=BUCKET, Key="warm", Body=b"x")
    before = _hwm_kib(server.proc.pid)
    size, block = 96 * MIB, os.urandom(MIB)
    path, md5 = tmp_path / "big", hashlib.md5(usedforsecurity=False)
    with open(path, "wb") as f:
        for _ in range(size // MIB):
            f.write(block)
            md5.update(block)
    with open(path, "rb") as f:
        s3.put_object(Bucket=BUCKET, Key="big", Body=f)
    got = s3.get_object(Bucket=BUCKET, Key="big")
    back = hashlib.md5(usedforsecurity=False)
    for chunk in got["Body"].iter_chunks(MIB):
        back.update(chunk)
    assert back.hexdigest() == md5.hexdigest() == got["ETag"].strip('"')
    grown = (_hwm_kib(server.proc.pid) - before) // 1024
    assert grown < 32, f"the site's peak memory grew by {grown} MiB for a {size // MIB} MiB object"
    ranged = s3.get_object(Bucket=BUCKET, Key="big", Range=f"bytes={MIB - 3}-{MIB + 4}")
    assert ranged["ContentRange"] == f"bytes {MIB - 3}-{MIB + 4}/{size}"
    assert ranged["Body"].read() == (block + block)[MIB - 3:MIB + 5]


def _send_part_of_body(url: str, total: int, sent: int) -> http.client.HTTPConnection:
    """Start a PUT of `total` bytes to a presigned URL and send only `sent` of them."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.putrequest("PUT", f"{parts.path}?{parts.query}", skip_accept_encoding=True)
    conn.putheader("Content-Length", str(total))
    conn.endheaders()
    conn.send(os.urandom(sent))
    return conn


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_site_killed_mid_upload_keeps_nothing_partial_and_the_multipart_upload(
    tmp_path: Path, launch_s3: Callable[..., Any], port_on: Callable[[str], int]
) -> None:
    site = S3Site("127.0.0.57", port_on("127.0.0.57"), "CRASHKEY000000000001", "crash-secret")
    state = tmp_path / "state"
    server = launch_s3(site, state)
    s3 = client(site)
    first, second = os.urandom(5 * MIB), os.urandom(3 * MIB)
    up = s3.create_multipart_upload(Bucket=BUCKET, Key="multi", ChecksumAlgorithm="CRC32C",
                                    ChecksumType="FULL_OBJECT")["UploadId"]
    etag1 = s3.upload_part(Bucket=BUCKET, Key="multi", UploadId=up, PartNumber=1, Body=first)["ETag"]
    part_url = s3.generate_presigned_url("upload_part", Params={"Bucket": BUCKET, "Key": "multi", "UploadId": up,
                                                                "PartNumber": 2}, ExpiresIn=600)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "cut"}, ExpiresIn=600)
    cut = [_send_part_of_body(part_url, 8 * MIB, 2 * MIB), _send_part_of_body(put_url, 8 * MIB, 2 * MIB)]

    def receiving() -> bool:
        return sum(f.stat().st_size for f in (state / "incoming").iterdir()) >= 3 * MIB

    _wait_for(receiving, "the site never received the two bodies")
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.stop()
    for conn in cut:
        conn.close()

    launch_s3(site, state)
    assert not list((state / "incoming").iterdir())
    assert "cut" not in keys(site) and "multi" not in keys(site)
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]] == [up]
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=BUCKET, Key="multi", UploadId=up)["Parts"]] == [1]
    etag2 = s3.upload_part(Bucket=BUCKET, Key="multi", UploadId=up, PartNumber=2, Body=second)["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=BUCKET, Key="multi", UploadId=up, ChecksumCRC32C=crc32c_b64(first + second),
        ChecksumType="FULL_OBJECT",
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag1}, {"PartNumber": 2, "ETag": etag2}]})
    assert done["ChecksumCRC32C"] == crc32c_b64(first + second)
    assert s3.get_object(Bucket=BUCKET, Key="multi")["Body"].read() == first + second
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


@pytest.mark.parametrize("header", ["Content-MD5", "x-amz-checksum-sha256"])
def test_a_body_that_fails_its_declared_digest_leaves_nothing(s3_sites: tuple[S3Site, S3Site], header: str) -> None:
    s3 = client(s3_sites[0])
    body = os.urandom(2 * MIB)
    wrong = {"Content-MD5": {"ContentMD5": "1B2M2Y8AsgTpgAmY7PhCfg=="},
             "x-amz-checksum-sha256": {"ChecksumSHA256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}}[header]
    with pytest.raises(Exception, match="BadDigest"):
        s3.put_object(Bucket=BUCKET, Key=f"digest/{header}", Body=body, **wrong)
    assert f"digest/{header}" not in keys(s3_sites[0])


def test_a_state_directory_of_the_moto_based_site_is_converted(tmp_path: Path) -> None:
    import json

    from testbed.storage.s3_state import Store

    name = hashlib.sha256(b"LNGS/run1.mid.gz").hexdigest()
    bdir = tmp_path / "objects" / BUCKET
    bdir.mkdir(parents=True)
    (bdir / name).write_bytes(b"old bytes")
    (bdir / f"{name}.json").write_text(json.dumps({
        "bucket": BUCKET, "key": "LNGS/run1.mid.gz", "metadata": {"adler32": "0badc0de"},
        "checksum": {"checksum_algorithm": "CRC32C", "checksum_value": crc32c_b64(b"old bytes"),
                     "checksum_type": "FULL_OBJECT", "checksum_parts": None}}))
    obj, segments = Store(tmp_path).get(BUCKET, "LNGS/run1.mid.gz")
    assert (obj.size, obj.etag, obj.metadata) == (9, hashlib.md5(b"old bytes").hexdigest(), {"adler32": "0badc0de"})
    assert obj.checksum == {"algorithm": "CRC32C", "value": crc32c_b64(b"old bytes"), "type": "FULL_OBJECT"}
    assert b"".join(p.read_bytes() for p, _ in segments) == b"old bytes"
    assert Store(tmp_path).get(BUCKET, "LNGS/run1.mid.gz")[0] == obj  # converted once, read back as is
