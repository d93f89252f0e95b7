"""Endpoint behaviour through its WSGI app, with the background worker driven step by step."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import pytest
from werkzeug.test import Client

from testbed.tape import TapeConfig, create_app
from testbed.tape.app import TapeApp

from .conftest import disk_snapshot, with_certificate

F = "/cygno/cygno-data/LNGS/run114497.mid.gz"
DATA = bytes(range(256)) * 1000


def make(tmp_path: Path, **kw: float) -> tuple[TapeApp, Client]:
    settings = {"migrate_after": 0.0, "evict_after": 0.0, "stage_latency": 0.0, **kw}
    app = create_app(TapeConfig(root=tmp_path / "root", **settings), start_worker=False)
    return app, Client(with_certificate(app))


def locality(client: Client, path: str = F) -> str:
    r = client.post("/api/v1/archiveinfo/", json={"paths": [path]})
    assert r.status_code == 200
    (entry,) = r.get_json()
    assert entry["path"] == path
    return entry.get("locality") or entry["error"]


def stage(client: Client, *paths: str, **extra: object) -> str:
    r = client.post("/api/v1/stage/", json={"files": [{"path": p, **extra} for p in paths]})
    assert r.status_code == 201, r.get_data(as_text=True)
    rid = r.get_json()["requestId"]
    assert r.headers["Location"].endswith(f"/api/v1/stage/{rid}")
    return rid


def status(client: Client, rid: str, agent: str = "python-requests/2") -> dict:
    r = client.get(f"/api/v1/stage/{rid}", headers={"User-Agent": agent})
    assert r.status_code == 200
    doc = r.get_json()
    assert doc["id"] == rid and "createdAt" in doc
    return doc


def assert_problem(resp: object, status_code: int) -> dict:
    assert resp.status_code == status_code, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"] == "application/problem+json"
    doc = json.loads(resp.get_data())
    assert doc["status"] == status_code and doc["title"] and doc["detail"]
    return doc


def test_discovery_announces_v1_endpoint(tmp_path: Path) -> None:
    _, c = make(tmp_path)
    for url in ("/.well-known/wlcg-tape-rest-api", "/.well-known/wlcg-tape-rest-api/"):
        doc = c.get(url).get_json()
        assert doc["sitename"]
        assert doc["endpoints"] == [{"uri": "https://localhost/api/v1", "version": "v1", "metadata": {}}]


def test_full_tape_lifecycle_with_pins(tmp_path: Path) -> None:
    app, c = make(tmp_path)
    assert c.put(F, data=DATA).status_code == 201
    assert locality(c) == "DISK"
    pin = stage(c, F)  # on disk already: completes at once and pins the file
    assert status(c, pin)["files"][0]["state"] == "COMPLETED"
    app.lifecycle.step()  # migrates; the pin keeps the buffer copy
    assert locality(c) == "DISK_AND_TAPE"
    assert (app.config.tape_dir / F.lstrip("/")).read_bytes() == DATA
    assert c.post(f"/api/v1/release/{pin}/", json={"paths": [F]}).status_code == 200
    app.lifecycle.step()
    assert locality(c) == "TAPE"
    assert not (app.config.buffer_dir / F.lstrip("/")).exists()

    assert_problem(c.get(F), 503)  # reading a nearline file fails like real tape
    head = c.head(F, headers={"Want-Digest": "adler32"})  # metadata and checksums still answer
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(DATA))
    assert head.headers["Digest"] == f"adler32={zlib.adler32(DATA):08x}"

    rid = stage(c, F)
    assert status(c, rid)["files"][0]["state"] == "SUBMITTED"
    app.lifecycle.step()
    assert status(c, rid)["files"][0]["state"] == "STARTED"
    app.lifecycle.step()
    doc = status(c, rid)
    assert doc["files"][0]["state"] == "COMPLETED" and doc["files"][0]["onDisk"] is True
    assert "completedAt" in doc
    assert locality(c) == "DISK_AND_TAPE"
    assert c.get(F).get_data() == DATA
    assert c.post(f"/api/v1/release/{rid}", json={"paths": [F]}).status_code == 200
    app.lifecycle.step()
    doc = status(c, rid)  # still COMPLETED, but no longer claimed on disk once evicted
    assert doc["files"][0]["state"] == "COMPLETED" and "onDisk" not in doc["files"][0]
    assert c.delete(f"/api/v1/stage/{rid}").status_code == 200
    assert_problem(c.get(f"/api/v1/stage/{rid}"), 404)
    assert locality(c) == "TAPE"


def test_cancel_reports_cancelled_and_gfal2_spelling(tmp_path: Path) -> None:
    app, c = make(tmp_path, stage_latency=3600)
    c.put(F, data=DATA)
    app.lifecycle.step()
    assert locality(c) == "TAPE"
    rid = stage(c, F)
    app.lifecycle.step()
    assert status(c, rid)["files"][0]["state"] == "STARTED"
    assert c.post(f"/api/v1/stage/{rid}/cancel/", json={"paths": [F]}).status_code == 200
    doc = status(c, rid)
    assert doc["files"][0]["state"] == "CANCELLED" and "completedAt" in doc
    assert status(c, rid, agent="libdavix/0.8.4 libneon/0.0.29")["files"][0]["state"] == "CANCELED"
    app.lifecycle.step()
    assert locality(c) == "TAPE"


def test_request_errors_are_rfc7807(tmp_path: Path) -> None:
    app, c = make(tmp_path, stage_latency=3600)
    c.put(F, data=DATA)
    rid = stage(c, F)
    assert_problem(c.post(f"/api/v1/stage/{rid}/cancel", json={"paths": ["/other"]}), 400)
    assert_problem(c.post(f"/api/v1/release/{rid}", json={"paths": ["/other"]}), 400)
    assert_problem(c.post("/api/v1/stage/nope/cancel", json={"paths": [F]}), 404)
    assert_problem(c.post("/api/v1/release/nope", json={"paths": [F]}), 404)
    assert_problem(c.delete("/api/v1/stage/nope"), 404)
    assert_problem(c.post("/api/v1/stage", data="{not json"), 400)
    assert_problem(c.post("/api/v1/stage", json={"files": []}), 400)
    assert_problem(c.post("/api/v1/stage", json={"files": [{"path": F, "diskLifetime": "soon"}]}), 400)
    assert_problem(c.post("/api/v1/archiveinfo", json={"paths": "x"}), 400)
    assert_problem(c.get("/api/v1/stage"), 405)
    assert_problem(c.get("/api/v1/nothing"), 404)
    # gfal2 releases without a request id: its placeholder id drops every pin of the paths
    assert c.post("/api/v1/release/gfal2-placeholder-id", json={"paths": [F]}).status_code == 200


def test_stage_of_missing_file_fails_per_file_and_touches_nothing(tmp_path: Path) -> None:
    app, c = make(tmp_path)
    c.put(F, data=DATA)
    before = disk_snapshot(app.config.root)
    rid = stage(c, "/cygno/cygno-data/LNGS/run00000.mid.gz", "/cygno/cygno-data/LNGS")
    doc = status(c, rid)
    assert [f["state"] for f in doc["files"]] == ["FAILED", "FAILED"]
    assert all(f["error"] for f in doc["files"]) and "completedAt" in doc
    assert locality(c, "/cygno/cygno-data/LNGS/run00000.mid.gz") == "No such file or directory"
    assert disk_snapshot(app.config.root) == before


def test_dot_dot_paths_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    app, c = make(tmp_path)
    c.put(F, data=DATA)
    before = disk_snapshot(app.config.root)
    for path in ("/cygno/../../etc/x", "/cygno/%2e%2e/x", "/cygno//x", "/cygno/./x"):
        assert_problem(c.put(path, data=b"evil"), 400)
        assert_problem(c.open(path, method="MKCOL"), 400)
        assert_problem(c.delete(path), 400)
    assert_problem(c.post("/api/v1/stage/", json={"files": [{"path": "/cygno/../x"}]}), 400)
    assert_problem(c.open(F, method="MOVE", headers={"Destination": "http://localhost/cygno/../x"}), 400)
    assert disk_snapshot(app.config.root) == before
    with app.store.tx() as conn:
        assert conn.execute("SELECT COUNT(*) FROM stage_requests").fetchone()[0] == 0


def test_put_with_wrong_digest_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    app, c = make(tmp_path)
    assert_problem(c.put(F, data=DATA, headers={"Digest": "adler32=00000001"}), 409)
    assert c.head(F).status_code == 404
    assert not list((app.config.root / "buffer").rglob("*.gz"))
    assert not list((app.config.tmp_dir / "upload").iterdir())
    good = f"adler32={zlib.adler32(DATA):08x}"
    assert c.put(F, data=DATA, headers={"Digest": good}).status_code == 201


def test_get_range_and_digests(tmp_path: Path) -> None:
    _, c = make(tmp_path)
    c.put(F, data=DATA)
    r = c.get(F, headers={"Range": "bytes=10-19", "Want-Digest": "md5"})
    assert r.status_code == 206 and r.get_data() == DATA[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(DATA)}"
    assert r.headers["Digest"].startswith("md5=")
    assert c.get(F, headers={"Range": "bytes=-5"}).get_data() == DATA[-5:]
    assert_problem(c.get(F, headers={"Range": f"bytes={len(DATA) + 10}-"}), 416)
    full = c.get(F)
    assert full.status_code == 200 and hashlib.md5(full.get_data()).hexdigest() == hashlib.md5(DATA).hexdigest()


def test_overwrite_resets_to_disk_and_drops_old_tape_copy(tmp_path: Path) -> None:
    app, c = make(tmp_path, evict_after=3600)
    c.put(F, data=DATA)
    app.lifecycle.step()
    assert locality(c) == "DISK_AND_TAPE"
    assert c.put(F, data=b"new").status_code == 204
    assert locality(c) == "DISK"
    assert not (app.config.tape_dir / F.lstrip("/")).exists()
    app.lifecycle.step()
    assert (app.config.tape_dir / F.lstrip("/")).read_bytes() == b"new"


def test_collections_propfind_move_delete(tmp_path: Path) -> None:
    app, c = make(tmp_path, evict_after=3600)
    assert_problem(c.open("/a/b", method="MKCOL"), 409)
    assert c.open("/a", method="MKCOL").status_code == 201
    assert_problem(c.open("/a", method="MKCOL"), 405)
    c.put("/a/f1", data=b"1")
    app.lifecycle.step()
    r = c.open("/a/", method="PROPFIND", headers={"Depth": "1"})
    assert r.status_code == 207
    body = r.get_data(as_text=True)
    assert "<D:href>/a/</D:href>" in body and "<D:href>/a/f1</D:href>" in body and "<D:collection" in body
    assert "<D:getcontentlength>1</D:getcontentlength>" in body
    assert c.open("/a/f1", method="PROPFIND", headers={"Depth": "0"}).status_code == 207
    assert_problem(c.open("/a", method="PROPFIND", headers={"Depth": "infinity"}), 403)
    assert_problem(c.open("/nope", method="PROPFIND", headers={"Depth": "0"}), 404)
    c.put("/a/f2", data=b"2")
    assert_problem(c.open("/a/f1", method="MOVE", headers={"Destination": "/a/f2", "Overwrite": "F"}), 412)
    assert c.open("/a/f1", method="MOVE", headers={"Destination": "http://localhost/a/f3"}).status_code == 201
    assert c.get("/a/f3").get_data() == b"1" and locality(c, "/a/f3") == "DISK_AND_TAPE"
    assert c.head("/a/f1").status_code == 404
    assert_problem(c.delete("/a"), 409)
    assert c.delete("/a/f2").status_code == 204 and c.delete("/a/f3").status_code == 204
    assert c.delete("/a").status_code == 204
    assert_problem(c.delete("/"), 403)
    assert_problem(c.put("/", data=b"x"), 405)
    opts = c.options("/")
    assert opts.status_code == 200 and "PROPFIND" in opts.headers["Allow"] and opts.headers["DAV"] == "1"


def test_delete_during_stage_fails_the_entry(tmp_path: Path) -> None:
    app, c = make(tmp_path, stage_latency=3600)
    c.put(F, data=DATA)
    app.lifecycle.step()
    rid = stage(c, F)
    assert c.delete(F).status_code == 204
    doc = status(c, rid)
    assert doc["files"][0]["state"] == "FAILED" and doc["files"][0]["error"]
    assert not (app.config.tape_dir / F.lstrip("/")).exists()


def test_reconcile_adopts_orphans_and_drops_partial_copies(tmp_path: Path) -> None:
    app, c = make(tmp_path)
    orphan = app.config.buffer_dir / "cygno" / "x" / "orphan"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"renamed but never recorded")
    partial = app.config.tmp_dir / "migrate" / "dead.part"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half")
    app.ns.reconcile()
    assert not partial.exists()
    assert locality(c, "/cygno/x/orphan") == "DISK"
    assert c.get("/cygno/x/orphan").get_data() == b"renamed but never recorded"


def test_metrics(tmp_path: Path) -> None:
    app, c = make(tmp_path)
    c.put(F, data=DATA)
    text = c.get("/metrics").get_data(as_text=True)
    assert 'cygno_tape_files{locality="DISK"} 1.0' in text
    assert "cygno_tape_http_requests_total" in text


@pytest.mark.parametrize("method", ["PATCH", "LOCK"])
def test_unsupported_methods(tmp_path: Path, method: str) -> None:
    _, c = make(tmp_path)
    assert_problem(c.open("/x", method=method), 405)


def test_deleting_a_request_or_a_zero_disk_lifetime_drops_the_pin(tmp_path: Path) -> None:
    app, c = make(tmp_path)
    c.put(F, data=DATA)
    rid = stage(c, F)
    app.lifecycle.step()
    assert locality(c) == "DISK_AND_TAPE"  # pinned
    assert c.delete(f"/api/v1/stage/{rid}/").status_code == 200
    app.lifecycle.step()
    assert locality(c) == "TAPE"
    rid = stage(c, F, diskLifetime="PT0S")
    app.lifecycle.step()
    app.lifecycle.step()
    assert status(c, rid)["files"][0]["state"] == "COMPLETED"
    app.lifecycle.step()
    assert locality(c) == "TAPE"  # recalled, and its zero-length pin let it go at once
