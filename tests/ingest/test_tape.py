"""Tape REST archive locality, including its error paths (HTTP mocked with `responses`)."""

from __future__ import annotations

import pytest
import responses

from cygno_dm.ingest.tape import TapeRest, TapeUnavailable

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
