"""Refusals over real HTTP (gunicorn): raw '..' paths, missing files, nearline reads; nothing changes on disk."""

from __future__ import annotations

import json
import subprocess

import pytest
import requests

from .conftest import TLS, TapeServer, archiveinfo, disk_snapshot, https_connection, wait_until, web

F = "/cygno/cygno-data/LNGS/run114499.mid.gz"


@pytest.fixture(scope="module")
def tape(module_tape) -> TapeServer:
    server = module_tape("--migrate-after", "0", "--evict-after", "0", "--stage-latency", "3600", name="http")
    assert web.put(server.url(F), data=b"x" * 1000, timeout=10).status_code == 201
    wait_until(lambda: archiveinfo(server, F)["locality"] == "TAPE")
    return server


def raw(server: TapeServer, method: str, target: str, body: bytes = b"") -> tuple[int, dict]:
    """Send a request with the target exactly as given (no client-side dot-segment removal)."""
    conn = https_connection(server.port)
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
    r = web.post(tape.base + "/api/v1/stage/", json={"files": [{"path": "/cygno/missing.mid.gz"}]}, timeout=10)
    assert r.status_code == 201
    doc = web.get(r.headers["Location"], timeout=10).json()
    assert doc["files"][0]["state"] == "FAILED" and doc["files"][0]["error"] == "No such file or directory"
    assert disk_snapshot(tape.root) == before


def test_reading_a_nearline_file_fails_like_tape(tape: TapeServer) -> None:
    r = web.get(tape.url(F), timeout=10)
    assert r.status_code == 503 and r.headers["Content-Type"] == "application/problem+json"
    assert "stage" in r.json()["detail"] and r.headers["Retry-After"]
    assert web.head(tape.url(F), timeout=10).status_code == 200
    assert web.get(tape.url("/cygno/none"), timeout=10).status_code == 404


def test_metrics_and_discovery(tape: TapeServer) -> None:
    doc = web.get(tape.base + "/.well-known/wlcg-tape-rest-api", timeout=10).json()
    assert doc["endpoints"][0]["uri"] == f"{tape.base}/api/v1"
    text = web.get(tape.base + "/metrics", timeout=10).text
    assert 'cygno_tape_files{locality="TAPE"} 1.0' in text


def test_chunked_and_concurrent_uploads_and_ranges(tape: TapeServer) -> None:
    def chunks():
        for i in range(50):
            yield bytes([i]) * 10_000

    path = "/cygno/cygno-sim/chunked.bin"
    assert web.put(tape.url(path), data=chunks(), timeout=30).status_code == 201
    expected = b"".join(chunks())
    assert web.head(tape.url(path), timeout=10).headers["Content-Length"] == str(len(expected))

    from concurrent.futures import ThreadPoolExecutor

    def put(i: int) -> int:
        return web.put(tape.url(f"/cygno/cygno-sim/par/{i}"), data=bytes([i]) * 50_000, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(put, range(16))) == [201] * 16
    names = web.request("PROPFIND", tape.url("/cygno/cygno-sim/par/"), headers={"Depth": "1"}, timeout=10).text
    assert all(f"<D:href>/cygno/cygno-sim/par/{i}</D:href>" in names for i in range(16))


def test_interrupted_upload_leaves_nothing(tape: TapeServer) -> None:
    path = "/cygno/cygno-sim/interrupted.bin"
    conn = https_connection(tape.port)
    conn.putrequest("PUT", path)
    conn.putheader("Content-Length", "1000000")
    conn.endheaders(b"only a little")
    conn.close()
    wait_until(lambda: f"upload of {path} aborted" in tape.log())
    assert not list((tape.root / "tmp" / "upload").glob("*.part"))
    assert web.head(tape.url(path), timeout=10).status_code == 404
    assert not (tape.root / "buffer" / path.lstrip("/")).exists()


@pytest.mark.parametrize("method, target, body", [
    ("PUT", "/cygno/cygno-sim/anon.bin", b"x"),
    ("DELETE", F, b""),
    ("MKCOL", "/cygno/cygno-sim/anon-dir", b""),
    ("POST", "/api/v1/stage/", json.dumps({"files": [{"path": F}]}).encode()),
    ("POST", "/api/v1/release/some-id", json.dumps({"paths": [F]}).encode()),
    ("DELETE", "/api/v1/stage/some-id", b""),
])
def test_anonymous_writes_deletes_and_staging_are_refused(tape: TapeServer, method: str, target: str,
                                                         body: bytes) -> None:
    conn = https_connection(tape.port, anonymous=True)
    try:
        conn.request(method, target, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        doc = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 401 and resp.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert doc["detail"].startswith(f"{method} needs a credential:") and "\n" not in doc["detail"]
    assert web.request("PROPFIND", tape.url("/cygno/cygno-sim/"), headers={"Depth": "1"}, timeout=10).text.count(
        "anon") == 0
    assert archiveinfo(tape, F)["locality"] == "TAPE"


def test_anonymous_reads_stay_open_and_a_foreign_certificate_is_refused(tape: TapeServer, tmp_path) -> None:
    assert web.head(tape.url(F), anonymous=True, timeout=10).status_code == 200
    assert web.post(tape.base + "/api/v1/archiveinfo", anonymous=True, json={"paths": [F]}, timeout=10).ok
    key, cert = tmp_path / "forged.key", tmp_path / "forged.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/O=cygno-dm testbed/CN=tape-test-client"], check=True, capture_output=True)
    with pytest.raises(requests.exceptions.SSLError):
        requests.put(tape.url("/cygno/cygno-sim/forged.bin"), data=b"x", cert=(str(cert), str(key)),
                     verify=TLS["ca"], timeout=10)
    assert not web.head(tape.url("/cygno/cygno-sim/forged.bin"), timeout=10).ok
