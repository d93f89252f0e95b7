"""Helpers: URL rewriting, checksums, credentials, submission parsing, Tape REST client error paths."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import zlib
from pathlib import Path

import pytest
import responses

from testbed.fts import checksums, credentials, submission, urls
from testbed.fts.errors import TransferError
from testbed.fts.tape import TapeClient, TapeError, stage_token

S3_HOSTS = {"127.0.0.41", "s3.example.org:9000"}


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.41:9000/bucket/key", "s3://127.0.0.41:9000/bucket/key"),
    ("https://127.0.0.41/bucket/a/b", "s3s://127.0.0.41/bucket/a/b"),
    ("https://s3.example.org:9000/b/k", "s3s://s3.example.org:9000/b/k"),
    ("https://s3.example.org:9001/b/k", "https://s3.example.org:9001/b/k"),
    ("http://127.0.0.41:9000/b/k?X-Amz-Signature=abc&X-Amz-Credential=x", None),
    ("davs://127.0.0.41:9000/b/k?copy_mode=push", "davs://127.0.0.41:9000/b/k"),
    ("http://127.0.0.41:9000/b/k?copy_mode=push", "s3://127.0.0.41:9000/b/k"),
    ("s3s://other/b/k", "s3s://other/b/k"),
    ("file:///tmp/x", "file:///tmp/x"),
])
def test_gfal_urls(url: str, expected: str | None) -> None:
    assert urls.to_gfal_url(url, S3_HOSTS) == (expected or url)


def test_storage_element_and_paths() -> None:
    assert urls.storage_element("davs://Host.example:443/p") == "davs://host.example"
    assert urls.storage_element("file:///tmp/x") == "file://"
    assert urls.http_base("davs://h:8443/a") == "https://h:8443" and urls.http_base("dav://h:1/a") == "http://h:1"
    assert urls.path_of("dav://h:1/cygno/x") == "/cygno/x"
    assert urls.split_copy_mode("https://h/a?copy_mode=pull&x=1") == ("https://h/a?x=1", "pull")


def test_streaming_checksums_match_reference() -> None:
    data = bytes(range(256)) * 999
    h = checksums.StreamingChecksums(["adler32", "MD5"])
    for i in range(0, len(data), 1000):
        h.update(data[i:i + 1000])
    assert h.values() == {"ADLER32": f"{zlib.adler32(data):08x}", "MD5": hashlib.md5(data).hexdigest()}
    assert checksums.same("ADLER32", "00abcdef", "abcdef")
    assert not checksums.same("MD5", "00ab", "ab") and not checksums.same("ADLER32", None, "1")
    assert checksums.split("adler32:0A") == ("ADLER32", "0a") and checksums.split("MD5") == ("MD5", None)


def test_credentials_file(tmp_path: Path) -> None:
    good = tmp_path / "c.json"
    good.write_text(json.dumps({"127.0.0.41": {"access_key": "a", "secret_key": "s"},
                                "h:9000": {"access_key": "b", "secret_key": "t", "region": "eu"}}))
    creds = credentials.load(good)
    assert credentials.lookup(creds, "s3://127.0.0.41:1234/b/k").access_key == "a"
    assert credentials.lookup(creds, "https://h:9000/b").region == "eu"
    assert credentials.lookup(creds, "https://h:9001/b") is None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"h": {"access_key": "a"}}))
    with pytest.raises(ValueError, match="'h' needs access_key and secret_key"):
        credentials.load(bad)
    assert credentials.load(None) == {}


@pytest.mark.parametrize(("value", "expected"), [
    (True, "both"), (False, "none"), (None, "none"), ("target", "target"), ("s", "source"), ("BOTH", "both")])
def test_verify_checksum_values(value: object, expected: str) -> None:
    assert submission.normalise_verify_checksum(value) == expected


def test_checksum_and_queue_time_parsing() -> None:
    assert submission.parse_checksum("adler32:0000ABCD", "f") == "ADLER32:0000abcd"
    assert submission.parse_checksum("ADLER32", "f") == "ADLER32"
    assert submission.parse_checksum("1a2b", "f") == "ADLER32:1a2b"
    assert submission.parse_checksum(None, "f") is None
    assert submission._max_time_in_queue(2) == 7200 and submission._max_time_in_queue("90s") == 90
    with pytest.raises(submission.SubmissionError, match="params.max_time_in_queue"):
        submission._max_time_in_queue("soon")


def test_transfer_error_classification() -> None:
    assert not TransferError("SOURCE", errno.ENOENT, "gone").retryable
    assert TransferError("DESTINATION", 112, "down").retryable
    assert TransferError("TRANSFER", errno.EIO, "x", retryable=False).reason == "TRANSFER [5] x"


BASE = "http://tape.example:8080"
DISCOVERY = {"sitename": "T", "endpoints": [{"uri": BASE + "/api/v1", "version": "v1"}]}


@responses.activate
def test_tape_discovery_errors() -> None:
    responses.get(BASE + "/.well-known/wlcg-tape-rest-api", status=404)
    with pytest.raises(TapeError, match="HTTP 404"):
        TapeClient().endpoint("dav://tape.example:8080/x")
    responses.replace(responses.GET, BASE + "/.well-known/wlcg-tape-rest-api",
                      json={"sitename": "T", "endpoints": [{"uri": "/v0", "version": "v0"}]})
    with pytest.raises(TapeError, match="no v1 endpoint"):
        TapeClient().endpoint("dav://tape.example:8080/x")


@responses.activate
def test_tape_problem_details_are_reported() -> None:
    responses.get(BASE + "/.well-known/wlcg-tape-rest-api", json=DISCOVERY)
    responses.post(BASE + "/api/v1/stage", status=400,
                   json={"title": "Bad Request", "status": 400, "detail": "files[0].path: not absolute"})
    with pytest.raises(TapeError, match="not absolute"):
        TapeClient().stage(["dav://tape.example:8080/x"])
    responses.post(BASE + "/api/v1/archiveinfo", status=503, body="busy")
    with pytest.raises(TapeError, match="HTTP 503: busy"):
        TapeClient().archive_info(["dav://tape.example:8080/x"])


@responses.activate
def test_tape_calls_present_a_token_that_can_stage_else_the_certificate() -> None:
    """A source token with storage.stage goes as a bearer token; Rucio 41's storage.read-only token and jobs without
    tokens leave the call to the service certificate (stage_token)."""
    def jwt_with(scope: str) -> str:
        return "e30." + base64.urlsafe_b64encode(json.dumps({"scope": scope}).encode()).decode().rstrip("=") + ".sig"

    stager, reader = jwt_with("storage.stage:/ storage.read:/"), jwt_with("storage.read:/")
    assert stage_token(stager) == stager and stage_token(reader) is None and stage_token(None) is None
    assert stage_token("not-a-jwt") == "not-a-jwt"  # presented, so that the endpoint says why it is refused
    responses.get(BASE + "/.well-known/wlcg-tape-rest-api", json=DISCOVERY)
    responses.post(BASE + "/api/v1/stage", status=201, json={"requestId": "r1"})
    responses.post(BASE + "/api/v1/archiveinfo", status=403, json={"detail": "no storage.read scope"})
    TapeClient(cert="/service.pem").stage(["dav://tape.example:8080/x"], token=stager)
    assert responses.calls[-1].request.headers["Authorization"] == f"Bearer {stager}"
    TapeClient(cert="/service.pem").stage(["dav://tape.example:8080/x"])
    assert "Authorization" not in responses.calls[-1].request.headers
    with pytest.raises(TapeError) as err:
        TapeClient().archive_info(["dav://tape.example:8080/x"], token=reader)
    assert err.value.refused and str(err.value).endswith("no storage.read scope (the file's bearer token)")
    assert reader not in str(err.value)


@responses.activate
def test_tape_stage_status_spellings() -> None:
    responses.get(BASE + "/.well-known/wlcg-tape-rest-api", json=DISCOVERY)
    responses.post(BASE + "/api/v1/stage", status=201, json={"requestId": "r1"})
    responses.get(BASE + "/api/v1/stage/r1", json={"id": "r1", "files": [
        {"path": "/a", "state": "CANCELED"}, {"path": "/b", "onDisk": True}, {"path": "/c", "error": "lost"},
        {"path": "/d"}]})
    client = TapeClient()
    assert client.stage(["dav://tape.example:8080/a"], disk_lifetime=60) == "r1"
    sent = json.loads(responses.calls[1].request.body)
    assert sent == {"files": [{"path": "/a", "diskLifetime": "PT60S"}]}
    st = client.stage_status("dav://tape.example:8080/a", "r1")
    assert {p: s.state for p, s in st.items()} == {"/a": "CANCELLED", "/b": "COMPLETED", "/c": "FAILED",
                                                   "/d": "STARTED"}
    assert st["/c"].error == "lost"
