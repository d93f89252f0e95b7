"""One-pass checksums and gzip validation on real files."""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib

import google_crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cygno_dm.ingest.checksums import GzipCheck, GzipError, adler32_of, scan


def test_scan_matches_reference_implementations(tmp_path):
    data = gzip.compress(os.urandom(300_000) + b"\0" * 2_000_000)
    p = tmp_path / "run00001.mid.gz"
    p.write_bytes(data)
    s = scan(p, chunk=65536)
    assert s.size == len(data)
    assert s.adler32 == f"{zlib.adler32(data):08x}"
    assert s.md5 == hashlib.md5(data).hexdigest()
    assert s.crc32c == f"{google_crc32c.value(data):08x}"
    assert adler32_of(p) == s.adler32


def test_adler32_keeps_leading_zeros(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"")
    assert adler32_of(p) == "00000001"


def test_truncated_gzip_is_reported_as_truncated(tmp_path):
    data = gzip.compress(os.urandom(50_000))
    p = tmp_path / "t.gz"
    p.write_bytes(data[:-5])
    with pytest.raises(GzipError, match="ends early") as err:
        scan(p)
    assert err.value.truncated


def test_corrupt_gzip_is_reported_as_corrupt(tmp_path):
    data = bytearray(gzip.compress(b"abc" * 100_000))
    data[len(data) // 2] ^= 0xFF
    p = tmp_path / "c.gz"
    p.write_bytes(bytes(data))
    with pytest.raises(GzipError) as err:
        scan(p)
    assert not err.value.truncated


def test_garbage_after_stream_and_empty_file_are_refused(tmp_path):
    p = tmp_path / "g.gz"
    p.write_bytes(gzip.compress(b"x") + b"not gzip")
    with pytest.raises(GzipError):
        scan(p)
    p.write_bytes(b"")
    with pytest.raises(GzipError, match="empty"):
        scan(p)


def test_multi_member_and_zero_padding_are_valid(tmp_path):
    p = tmp_path / "m.gz"
    p.write_bytes(gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 1000) + b"\0" * 512)
    assert scan(p).size == p.stat().st_size


def test_non_gzip_scan_skips_validation(tmp_path):
    p = tmp_path / "raw"
    p.write_bytes(b"plain")
    assert scan(p, gzip=False).md5 == hashlib.md5(b"plain").hexdigest()


@settings(max_examples=40, deadline=None)
@given(payload=st.binary(min_size=1, max_size=5000), cut=st.integers(min_value=1, max_value=40),
       chunk=st.integers(min_value=1, max_value=700))
def test_any_prefix_of_a_gzip_is_never_accepted(payload, cut, chunk):
    data = gzip.compress(payload)
    check = GzipCheck()
    prefix = data[:-cut] if cut < len(data) else data[:1]
    for i in range(0, len(prefix), chunk):
        check.update(prefix[i:i + chunk])
    with pytest.raises(GzipError):
        check.finish()
    whole = GzipCheck()
    for i in range(0, len(data), chunk):
        whole.update(data[i:i + chunk])
    whole.finish()
