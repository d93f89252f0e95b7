"""Tape REST archive locality, including its error paths (HTTP mocked with `responses`)."""

from __future__ import annotations

import pytest
import responses

from cygno_dm.ingest.tape import TapeCopy, TapeRest, TapeUnavailable

PFN = "davs://tape.example:8443/cygno/cygno-data/LNGS/run12345.mid.gz"
BASE = "https://tape.example:8443"


def _discovery():
    responses.get(f"{BASE}/.well-known/wlcg-tape-rest-api",
                  json={"sitename": "T", "endpoints": [{"uri": f"{BASE}/api/v1/", "version": "v1"}]})


@responses.activate
def test_locality_is_read_from_archiveinfo():
    _discovery()
    responses.post(f"{BASE}/api/v1/archiveinfo",
                   json=[{"path": "/cygno/cygno-data/LNGS/run12345.mid.gz", "locality": "DISK_AND_TAPE"}])
    assert TapeRest().locality(PFN) == "DISK_AND_TAPE"
    assert responses.calls[1].request.body == b'{"paths": ["/cygno/cygno-data/LNGS/run12345.mid.gz"]}'


@responses.activate
def test_per_file_error_is_reported_not_archived():
    _discovery()
    responses.post(f"{BASE}/api/v1/archiveinfo", json=[{"path": "/x", "error": "USER ERROR: no such file"}])
    assert TapeRest().locality(PFN).startswith("ERROR")


@responses.activate
def test_endpoint_down_or_5xx_is_unavailable():
    responses.get(f"{BASE}/.well-known/wlcg-tape-rest-api", status=503)
    with pytest.raises(TapeUnavailable):
        TapeRest().locality(PFN)


@responses.activate
def test_missing_v1_endpoint_is_unavailable():
    responses.get(f"{BASE}/.well-known/wlcg-tape-rest-api", json={"endpoints": [{"uri": "x", "version": "v2"}]})
    with pytest.raises(TapeUnavailable, match="no v1"):
        TapeRest().locality(PFN)


def _archived(locality: str = "TAPE") -> None:
    _discovery()
    responses.post(f"{BASE}/api/v1/archiveinfo", json=[{"path": "/x", "locality": locality}])


@responses.activate
def test_copy_reads_size_and_adler32_from_a_head_with_want_digest():
    _archived()
    responses.head(f"{BASE}/cygno/cygno-data/LNGS/run12345.mid.gz",
                   headers={"Content-Length": "1234", "Digest": "md5=AAAA,adler32=0A0B0C0D"})
    copy = TapeRest().copy(PFN)
    assert (copy.locality, copy.size, copy.adler32) == ("TAPE", 1234, "0a0b0c0d")
    assert responses.calls[2].request.headers["Want-Digest"] == "adler32"
    assert copy.problem(1234, "0a0b0c0d") is None
    assert "1234 bytes, expected 1235" in copy.problem(1235, "0a0b0c0d")
    assert "adler32 0a0b0c0d, expected 0a0b0c0e" in copy.problem(1234, "0a0b0c0e")


@responses.activate
def test_a_copy_without_digest_or_not_on_tape_is_not_confirmed():
    _archived("DISK")
    responses.head(f"{BASE}/cygno/cygno-data/LNGS/run12345.mid.gz", headers={"Content-Length": "10"})
    copy = TapeRest().copy(PFN)
    assert "reports DISK, not on tape" in copy.problem(10, "00000001")
    assert "gives no adler32" in TapeCopy("TAPE", 10, None).problem(10, "00000001")


@responses.activate
def test_a_missing_file_has_no_size_and_a_5xx_is_unavailable():
    _archived("NONE")
    responses.head(f"{BASE}/cygno/cygno-data/LNGS/run12345.mid.gz", status=404)
    assert TapeRest().copy(PFN) == TapeCopy("NONE", None, None)
    responses.replace(responses.HEAD, f"{BASE}/cygno/cygno-data/LNGS/run12345.mid.gz", status=503)
    with pytest.raises(TapeUnavailable):
        TapeRest().copy(PFN)
