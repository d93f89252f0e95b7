"""The S3 landing storage against a real moto server."""

from __future__ import annotations

import os

import boto3
import pytest

from cygno_dm.ingest.checksums import scan
from cygno_dm.ingest.s3 import MIB, S3Storage, plan_parts, split_pfn
from cygno_dm.ingest.storage import ObjectExists, StorageError, StorageUnavailable
from cygno_dm.ingest.stores import differs
from tests.ingest.helpers import Moto, free_port, run_file, sparse_file

HOST = "127.0.0.61"
BUCKET = "cygno-data"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = Moto(HOST, tmp_path_factory.mktemp("moto") / "moto.log").start()
    boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                 region_name="us-east-1").create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def _pfn(moto, key: str) -> str:
    return f"{moto.endpoint}/{BUCKET}/cygno-data/{key}"


def test_multipart_upload_in_parallel_parts_is_verified(moto, tmp_path):
    path = run_file(tmp_path, 11111, size=13 * MIB)
    sums = scan(path)
    store = S3Storage("k", "s", part_size=5 * MIB, parallel=3)
    pfn = _pfn(moto, "LNGS/run11111.mid.gz")
    seen = []
    store.put(path, pfn, sums, seen.append)
    assert sum(seen) == sums.size
    stored = store.stat(pfn)
    assert stored.size == sums.size and stored.etag.endswith("-3")
    assert stored.meta["adler32"] == sums.adler32
    assert store.adler32(pfn) == sums.adler32
    assert differs(store, pfn, stored, path, sums) is None


def test_single_part_upload_etag_is_the_md5(moto, tmp_path):
    path = run_file(tmp_path, 11112, size=2000)
    sums = scan(path)
    store = S3Storage("k", "s")
    pfn = _pfn(moto, "LNGS/run11112.mid.gz")
    store.put(path, pfn, sums)
    assert store.stat(pfn).etag == sums.md5


def test_never_overwrites_and_detects_other_content(moto, tmp_path):
    a = run_file(tmp_path / "a", 11113, size=6 * MIB, seed=1)
    b = run_file(tmp_path / "b", 11113, size=6 * MIB, seed=2)
    store = S3Storage("k", "s", part_size=5 * MIB)
    pfn = _pfn(moto, "LNGS/run11113.mid.gz")
    store.put(a, pfn, scan(a))
    with pytest.raises(ObjectExists):
        store.put(b, pfn, scan(b))
    assert store.adler32(pfn) == scan(a).adler32
    assert "!=" in differs(store, pfn, store.stat(pfn), b, scan(b))
    assert differs(store, pfn, store.stat(pfn), a, scan(a)) is None


def test_file_changed_after_checksum_is_refused(moto, tmp_path):
    path = run_file(tmp_path, 11114, size=1000)
    sums = scan(path)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="changed"):
        S3Storage("k", "s").put(path, _pfn(moto, "LNGS/run11114.mid.gz"), sums)


def test_stale_multipart_uploads_are_aborted(moto):
    store = S3Storage("k", "s")
    pfn = _pfn(moto, "LNGS/run11115.mid.gz")
    endpoint, bucket, key = split_pfn(pfn)
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                      region_name="us-east-1")
    s3.create_multipart_upload(Bucket=bucket, Key=key)
    assert store.abort_stale(pfn) == 1
    assert store.abort_stale(pfn) == 0
    assert store.stat(pfn) is None


def test_storage_down_is_transient():
    port = free_port(HOST)
    store = S3Storage("k", "s")
    with pytest.raises(StorageUnavailable):
        store.stat(f"http://{HOST}:{port}/{BUCKET}/x/y")


def test_no_size_cap_parts_for_a_sparse_six_gigabyte_file(tmp_path):
    big = sparse_file(tmp_path / "run99999.mid.gz", 6 * 1024**3)
    parts = plan_parts(big.stat().st_size, 64 * MIB)
    assert sum(n for _, n in parts) == 6 * 1024**3 and len(parts) == 96
    huge = plan_parts(2 * 1024**4, 64 * MIB)  # 2 TiB: parts grow to stay within 10,000
    assert len(huge) <= 10_000 and sum(n for _, n in huge) == 2 * 1024**4
    assert os.stat(big).st_blocks == 0


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("CYGNO_DM_INGEST_BIG") != "1", reason="set CYGNO_DM_INGEST_BIG=1: moves 5.5 GB")
def test_upload_of_a_sparse_file_above_the_old_five_point_four_gigabyte_cap(moto, tmp_path):
    big = sparse_file(tmp_path / "run99998.mid.gz", int(5.5e9))
    sums = scan(big, gzip=False)
    store = S3Storage("k", "s", part_size=256 * MIB, parallel=4)
    pfn = _pfn(moto, "LNGS/run99998.mid.gz")
    store.put(big, pfn, sums)
    stored = store.stat(pfn)
    assert stored.size == int(5.5e9) and stored.etag.endswith(f"-{len(plan_parts(int(5.5e9), 256 * MIB))}")
    assert differs(store, pfn, stored, big, sums) is None
