"""Refusals over real HTTP (gunicorn): raw '..' paths, missing files, nearline reads; nothing changes on disk."""

from __future__ import annotations

import http.client
import json

import pytest
import requests

from .conftest import TapeServer, archiveinfo, disk_snapshot, wait_until

F = "/cygno/cygno-data/LNGS/run114499.mid.gz"


@pytest.fixture(scope="module")
def tape(module_tape) -> TapeServer:
    server = module_tape("--migrate-after", "0", "--evict-after", "0", "--stage-latency", "3600", name="http")
    assert requests.put(server.url(F), data=b"x" * 1000, timeout=10).status_code == 201
    wait_until(lambda: archiveinfo(server, F)["locality"] == "TAPE")
    return server


def raw(server: TapeServer, method: str, target: str, body: bytes = b"") -> tuple[int, dict]:
    """Send a request with the target exactly as given (no client-side dot-segment removal)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        payload = resp.read()
        ctype = resp.getheader("Content-Type", "")
        return resp.status, (json.loads(payload) if "json" in ctype and payload else {})
    finally:
        conn.close()


@pytest.mark.parametrize("target", ["/cygno/../../etc/passwd", "/cygno/%2e%2e/%2E%2E/x", "//cygno/x",
                                    "/cygno//x", "/cygno/./x", "/../x"])
@pytest.mark.parametrize("method", ["PUT", "GET", "MKCOL", "DELETE", "PROPFIND"])
def test_escaping_paths_are_refused_with_400(tape: TapeServer, method: str, target: str) -> None:
    before = disk_snapshot(tape.root)
    status, doc = raw(tape, method, target, b"evil" if method == "PUT" else b"")
    assert status == 400
    assert doc["status"] == 400
    assert any(reason in doc["detail"] for reason in ("'..'", "'.'", "empty component"))
    assert disk_snapshot(tape.root) == before


def test_stage_with_dot_dot_is_refused_and_missing_file_fails(tape: TapeServer) -> None:
    before = disk_snapshot(tape.root)
    status, doc = raw(tape, "POST", "/api/v1/stage/", json.dumps({"files": [{"path": "/cygno/../x"}]}).encode())
    assert status == 400 and doc["title"] == "Bad Request"
    r = requests.post(tape.base + "/api/v1/stage/", json={"files": [{"path": "/cygno/missing.mid.gz"}]}, timeout=10)
    assert r.status_code == 201
    doc = requests.get(r.headers["Location"], timeout=10).json()
    assert doc["files"][0]["state"] == "FAILED" and doc["files"][0]["error"] == "No such file or directory"
    assert disk_snapshot(tape.root) == before


def test_reading_a_nearline_file_fails_like_tape(tape: TapeServer) -> None:
    r = requests.get(tape.url(F), timeout=10)
    assert r.status_code == 503 and r.headers["Content-Type"] == "application/problem+json"
    assert "stage" in r.json()["detail"] and r.headers["Retry-After"]
    assert requests.head(tape.url(F), timeout=10).status_code == 200
    assert requests.get(tape.url("/cygno/none"), timeout=10).status_code == 404


def test_metrics_and_discovery(tape: TapeServer) -> None:
    doc = requests.get(tape.base + "/.well-known/wlcg-tape-rest-api", timeout=10).json()
    assert doc["endpoints"][0]["uri"] == f"{tape.base}/api/v1"
    text = requests.get(tape.base + "/metrics", timeout=10).text
    assert 'cygno_tape_files{locality="TAPE"} 1.0' in text


def test_chunked_and_concurrent_uploads_and_ranges(tape: TapeServer) -> None:
    def chunks():
        for i in range(50):
            yield bytes([i]) * 10_000

    path = "/cygno/cygno-sim/chunked.bin"
    assert requests.put(tape.url(path), data=chunks(), timeout=30).status_code == 201
    expected = b"".join(chunks())
    assert requests.head(tape.url(path), timeout=10).headers["Content-Length"] == str(len(expected))

    from concurrent.futures import ThreadPoolExecutor

    def put(i: int) -> int:
        return requests.put(tape.url(f"/cygno/cygno-sim/par/{i}"), data=bytes([i]) * 50_000, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(put, range(16))) == [201] * 16
    names = requests.request("PROPFIND", tape.url("/cygno/cygno-sim/par/"), headers={"Depth": "1"}, timeout=10).text
    assert all(f"<D:href>/cygno/cygno-sim/par/{i}</D:href>" in names for i in range(16))


def test_interrupted_upload_leaves_nothing(tape: TapeServer) -> None:
    path = "/cygno/cygno-sim/interrupted.bin"
    conn = http.client.HTTPConnection("127.0.0.1", tape.port, timeout=10)
    conn.putrequest("PUT", path)
    conn.putheader("Content-Length", "1000000")
    conn.endheaders(b"only a little")
    conn.close()
    wait_until(lambda: f"upload of {path} aborted" in tape.log())
    assert not list((tape.root / "tmp" / "upload").glob("*.part"))
    assert requests.head(tape.url(path), timeout=10).status_code == 404
    assert not (tape.root / "buffer" / path.lstrip("/")).exists()
