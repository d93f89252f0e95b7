"""Unit tests: path rules, digests, durations."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbed.tape.checksums import StreamDigest, digest_header, parse_digest, parse_want_digest
from testbed.tape.paths import BadPath, ancestors, normalize, parent_of
from testbed.tape.problems import Problem
from testbed.tape.staging import parse_lifetime


@pytest.mark.parametrize("raw, norm", [
    ("/", "/"), ("/a", "/a"), ("/a/", "/a"), ("/cygno/cygno-data/LNGS/run114497.mid.gz",
                                               "/cygno/cygno-data/LNGS/run114497.mid.gz"),
])
def test_normalize_accepts_canonical_paths(raw: str, norm: str) -> None:
    assert normalize(raw) == norm


@pytest.mark.parametrize("raw", ["", "a/b", "/a/../b", "/..", "/a/./b", "//a", "/a//b", "/a/b//", "/a\x00b",
                                 "/a/\nb"])
def test_normalize_refuses_escapes_and_empty_components(raw: str) -> None:
    with pytest.raises(BadPath):
        normalize(raw)


def test_collapse_mode_accepts_double_slashes_but_not_dots() -> None:
    assert normalize("//cygno//a/", collapse=True) == "/cygno/a"
    with pytest.raises(BadPath):
        normalize("//cygno/../a", collapse=True)


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/"),
                        min_size=1, max_size=8), min_size=1, max_size=5))
def test_normalized_paths_never_leave_the_root(parts: list[str]) -> None:
    raw = "/" + "/".join(parts)
    try:
        norm = normalize(raw)
    except BadPath:
        assert any(p in (".", "..") for p in parts)
        return
    assert ".." not in norm.split("/") and "" not in norm.split("/")[1:]


def test_parent_and_ancestors() -> None:
    assert parent_of("/a/b/c") == "/a/b"
    assert parent_of("/a") == "/"
    assert ancestors("/a/b/c") == ["/a", "/a/b"]
    assert ancestors("/a") == []


def test_stream_digest_matches_zlib_and_hashlib() -> None:
    data = b"cygno" * 100_000
    d = StreamDigest()
    for i in range(0, len(data), 7777):
        d.update(data[i:i + 7777])
    assert d.adler32 == f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    assert d.md5 == hashlib.md5(data).hexdigest()
    assert d.size == len(data)


def test_want_digest_ranks_by_q_and_drops_unknown_and_zero() -> None:
    assert parse_want_digest("md5;q=0.3, adler32;q=0.9, sha-256") == ["adler32", "md5"]
    assert parse_want_digest("ADLER32") == ["adler32"]
    assert parse_want_digest("md5;q=0, crc32c") == []
    assert parse_want_digest(None) == []


def test_digest_header_rfc3230_encodings() -> None:
    md5 = hashlib.md5(b"x").hexdigest()
    value = digest_header(["adler32", "md5"], "0079007a", md5)
    assert value == "adler32=0079007a,md5=" + base64.b64encode(bytes.fromhex(md5)).decode()
    assert parse_digest(value) == {"adler32": "0079007a", "md5": md5}
    assert digest_header([], "0079007a", md5) is None


@pytest.mark.parametrize("value, seconds", [(None, None), (3600, 3600.0), ("PT1H", 3600.0),
                                            ("P1DT2M3S", 86523.0), ("pt30s", 30.0)])
def test_disk_lifetime_parsing(value: object, seconds: float | None) -> None:
    assert parse_lifetime(value) == seconds


@pytest.mark.parametrize("value", ["1 hour", "P", "PT", -5, True, [1]])
def test_disk_lifetime_rejects_garbage(value: object) -> None:
    with pytest.raises(Problem) as exc:
        parse_lifetime(value)
    assert exc.value.status == 400
