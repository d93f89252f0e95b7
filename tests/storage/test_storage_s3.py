"""The S3 sites with real clients: enforced per-site credentials, presigned URLs, persistence."""

from __future__ import annotations

import base64
import http.client
import os
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import google_crc32c
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from testbed.storage import s3_ready
from testbed.storage.gfal import S3Site
from testbed.storage.sigv4 import presign

BUCKET = "cygno-data"


def client(site: S3Site, access_key: str | None = None, secret_key: str | None = None) -> Any:
    """A boto3 S3 client for `site` (path style, SigV4), optionally with other credentials."""
    return boto3.client(
        "s3", endpoint_url=site.endpoint, region_name=site.region,
        aws_access_key_id=access_key or site.access_key, aws_secret_access_key=secret_key or site.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def keys(site: S3Site, bucket: str = BUCKET) -> set[str]:
    """Every key in a bucket of `site`."""
    return {o["Key"] for o in client(site).list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_buckets_created_at_start(s3_sites: tuple[S3Site, S3Site]) -> None:
    for site in s3_sites:
        names = {b["Name"] for b in client(site).list_buckets()["Buckets"]}
        assert {"cygno-data", "cygno-sim"} <= names


def test_right_credentials_put_and_get(s3_sites: tuple[S3Site, S3Site]) -> None:
    site_a, _ = s3_sites
    s3 = client(site_a)
    s3.put_object(Bucket=BUCKET, Key="LNGS/run00001.mid.gz", Body=b"raw data 1")
    assert s3.get_object(Bucket=BUCKET, Key="LNGS/run00001.mid.gz")["Body"].read() == b"raw data 1"


@pytest.mark.parametrize("which", ["wrong-secret", "unknown-key", "other-site-key"])
def test_wrong_credentials_refused_and_nothing_written(s3_sites: tuple[S3Site, S3Site], which: str) -> None:
    site_a, site_b = s3_sites
    creds = {
        "wrong-secret": (site_a.access_key, "not-the-secret"),
        "unknown-key": ("NOSUCHKEY00000000000", site_a.secret_key),
        "other-site-key": (site_b.access_key, site_b.secret_key),
    }[which]
    key = f"LNGS/refused-{which}.mid.gz"
    with pytest.raises(ClientError) as err:
        client(site_a, *creds).put_object(Bucket=BUCKET, Key=key, Body=b"x")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as err:
        client(site_a, *creds).list_objects_v2(Bucket=BUCKET)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert key not in keys(site_a)


def test_anonymous_requests_refused(s3_sites: tuple[S3Site, S3Site]) -> None:
    site_a, _ = s3_sites
    client(site_a).put_object(Bucket=BUCKET, Key="LNGS/anon.txt", Body=b"secret")
    assert requests.get(f"{site_a.endpoint}/{BUCKET}/LNGS/anon.txt", timeout=10).status_code == 403
    put = requests.put(f"{site_a.endpoint}/{BUCKET}/LNGS/anon-put.txt", data=b"x", timeout=10)
    assert put.status_code == 403
    assert "LNGS/anon-put.txt" not in keys(site_a)


def test_moto_admin_api_is_closed(s3_sites: tuple[S3Site, S3Site]) -> None:
    site_a, _ = s3_sites
    client(site_a).put_object(Bucket=BUCKET, Key="LNGS/keep.txt", Body=b"keep")
    assert requests.post(f"{site_a.endpoint}/moto-api/reset", timeout=10).status_code == 404
    assert requests.post(f"{site_a.endpoint}/moto-api/reset-auth", data=b"100", timeout=10).status_code == 404
    # encoded and padded spellings of the same path, sent verbatim (no client-side normalisation)
    parts = urlsplit(site_a.endpoint)
    for path in ("/%6doto-api/reset", "/%6D%6F%74%6F-api/reset", "//moto-api/reset", "/./moto-api/reset",
                 "/x/../moto-api/reset", "/%256doto-api/reset", "/moto-api%2freset"):
        conn = (http.client.HTTPSConnection(parts.hostname, parts.port, context=ssl._create_unverified_context())
                if parts.scheme == "https" else http.client.HTTPConnection(parts.hostname, parts.port))
        conn.request("POST", path)
        assert conn.getresponse().status == 404, path
        conn.close()
    assert "LNGS/keep.txt" in keys(site_a)


def test_presigned_get_and_put(s3_sites: tuple[S3Site, S3Site]) -> None:
    site_a, _ = s3_sites
    s3 = client(site_a)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "LNGS/presigned.bin"},
                                        ExpiresIn=600)
    assert requests.put(put_url, data=b"via presigned put", timeout=10).status_code == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "LNGS/presigned.bin"},
                                        ExpiresIn=600)
    response = requests.get(get_url, timeout=10)
    assert response.status_code == 200 and response.content == b"via presigned put"


def test_expired_or_tampered_presigned_urls_refused(s3_sites: tuple[S3Site, S3Site]) -> None:
    site_a, _ = s3_sites
    client(site_a).put_object(Bucket=BUCKET, Key="LNGS/old.bin", Body=b"old")
    url = f"{site_a.endpoint}/{BUCKET}/LNGS/old.bin"
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    expired = presign("GET", url, site_a.access_key, site_a.secret_key, expires=3600, now=two_hours_ago)
    response = requests.get(expired, timeout=10)
    assert response.status_code == 403 and b"expired" in response.content
    expired_put = presign("PUT", f"{url}-new", site_a.access_key, site_a.secret_key, expires=60, now=two_hours_ago)
    assert requests.put(expired_put, data=b"x", timeout=10).status_code == 403
    assert "LNGS/old.bin-new" not in keys(site_a)
    fresh = presign("GET", url, site_a.access_key, site_a.secret_key, expires=600)
    assert requests.get(fresh, timeout=10).content == b"old"
    tampered = fresh.replace("old.bin", "old.bin2")
    assert requests.get(tampered, timeout=10).status_code == 403
    other_secret = presign("GET", url, site_a.access_key, "guessed", expires=600)
    assert requests.get(other_secret, timeout=10).status_code == 403


def test_state_survives_restart(
    tmp_path: Path, launch_s3: Callable[[S3Site, Path | None], Any], port_on: Callable[[str], int]
) -> None:
    site = S3Site("127.0.0.54", port_on("127.0.0.54"), "RESTARTKEY0000000003", "restart-secret")
    state = tmp_path / "state"
    server = launch_s3(site, state)
    client(site).put_object(Bucket=BUCKET, Key="LNGS/run00002.mid.gz", Body=b"persist me",
                            ChecksumAlgorithm="CRC32C", ChecksumCRC32C=crc32c_b64(b"persist me"))
    client(site).put_object(Bucket=BUCKET, Key="LNGS/deleted.txt", Body=b"gone")
    client(site).delete_object(Bucket=BUCKET, Key="LNGS/deleted.txt")
    server.stop()
    assert not s3_ready(site.endpoint)
    launch_s3(site, state)
    assert client(site).get_object(Bucket=BUCKET, Key="LNGS/run00002.mid.gz")["Body"].read() == b"persist me"
    head = client(site).head_object(Bucket=BUCKET, Key="LNGS/run00002.mid.gz", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == crc32c_b64(b"persist me")  # the site still vouches after a restart
    assert "LNGS/deleted.txt" not in keys(site)
    with pytest.raises(ClientError):
        client(site, site.access_key, "wrong").get_object(Bucket=BUCKET, Key="LNGS/run00002.mid.gz")


def crc32c_b64(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def test_put_with_a_crc32c_is_checked_and_kept(s3_sites: tuple[S3Site, S3Site]) -> None:
    s3 = client(s3_sites[0])
    body = os.urandom(3000)
    s3.put_object(Bucket=BUCKET, Key="crc/good", Body=body, ChecksumAlgorithm="CRC32C",
                  ChecksumCRC32C=crc32c_b64(body))
    head = s3.head_object(Bucket=BUCKET, Key="crc/good", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == crc32c_b64(body)
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=BUCKET, Key="crc/bad", Body=body, ChecksumAlgorithm="CRC32C",
                      ChecksumCRC32C=crc32c_b64(body + b"x"))
    assert err.value.response["Error"]["Code"] == "BadDigest"
    assert "crc/bad" not in keys(s3_sites[0])


def _multipart(s3: Any, key: str, data: bytes, declared: str) -> Any:
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="CRC32C",
                                    ChecksumType="FULL_OBJECT")["UploadId"]
    parts = []
    for num, off in enumerate(range(0, len(data), 5 << 20), 1):
        chunk = data[off:off + (5 << 20)]
        res = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up, PartNumber=num, Body=chunk,
                             ChecksumAlgorithm="CRC32C", ChecksumCRC32C=crc32c_b64(chunk))
        parts.append({"PartNumber": num, "ETag": res["ETag"], "ChecksumCRC32C": crc32c_b64(chunk)})
    return s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up, MultipartUpload={"Parts": parts},
                                        ChecksumCRC32C=declared, ChecksumType="FULL_OBJECT")


def test_multipart_full_object_crc32c_is_computed_from_the_bytes_and_checked(s3_sites: tuple[S3Site, S3Site]) -> None:
    s3 = client(s3_sites[0])
    data = os.urandom((5 << 20) + 12345)
    _multipart(s3, "crc/multi", data, crc32c_b64(data))
    head = s3.head_object(Bucket=BUCKET, Key="crc/multi", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32C"], head["ChecksumType"]) == (crc32c_b64(data), "FULL_OBJECT")
    with pytest.raises(ClientError) as err:
        _multipart(s3, "crc/multi-bad", data, crc32c_b64(data[:-1]))
    assert err.value.response["Error"]["Code"] == "BadDigest"
    assert "crc/multi-bad" not in keys(s3_sites[0])


def test_health_check_false_when_down(port_on: Callable[[str], int]) -> None:
    assert not s3_ready(f"http://127.0.0.55:{port_on('127.0.0.55')}")
