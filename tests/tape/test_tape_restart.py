"""Crash safety: SIGKILL of the whole endpoint in the middle of a migration loses nothing."""

from __future__ import annotations

import hashlib
import os
import signal

from .conftest import archiveinfo, wait_until, web

PATH = "/cygno/cygno-data/LNGS/run114498.mid.gz"


def test_sigkill_mid_migration_then_restart_finishes_it(tape_factory) -> None:
    data = os.urandom(6 * 1024 * 1024)
    # a slow "tape drive" (1 MB/s) so that the migration is surely in progress when we kill
    server = tape_factory("--migrate-after", "0", "--evict-after", "3600", "--stage-latency", "0.2",
                          "--tape-rate", "1000000", "--workers", "2", name="crash")
    assert web.put(server.url(PATH), data=data, timeout=60).status_code == 201
    pinned = web.post(server.base + "/api/v1/stage", json={"files": [{"path": PATH}]}, timeout=10)
    rid = pinned.json()["requestId"]

    migrate_tmp = server.root / "tmp" / "migrate"
    tape_copy = server.root / "tape" / PATH.lstrip("/")
    wait_until(lambda: any(p.stat().st_size > 0 for p in migrate_tmp.glob("*.part")))
    assert archiveinfo(server, PATH)["locality"] == "DISK"
    server.kill(signal.SIGKILL)

    partial = list(migrate_tmp.glob("*.part"))
    assert partial and all(p.stat().st_size < len(data) for p in partial)
    assert not tape_copy.exists()  # a partial copy never appears under the tape name

    server.args = [a for a in server.args if a not in ("--tape-rate", "1000000")]
    server.start()
    wait_until(lambda: archiveinfo(server, PATH)["locality"] == "DISK_AND_TAPE")
    assert hashlib.md5(tape_copy.read_bytes()).hexdigest() == hashlib.md5(data).hexdigest()
    assert not list(migrate_tmp.glob("*.part"))
    got = web.get(server.url(PATH), timeout=60)
    assert got.status_code == 200 and got.content == data
    # stage requests live in SQLite: the one made before the crash is still there
    doc = web.get(f"{server.base}/api/v1/stage/{rid}", timeout=10).json()
    assert doc["id"] == rid and doc["files"][0]["state"] == "COMPLETED"
    # of the two gunicorn workers, one ran the lifecycle worker in each life of the endpoint
    assert server.log().count("this process runs the tape lifecycle worker") == 2


def test_restart_keeps_namespace_and_tape_state(tape_factory) -> None:
    server = tape_factory("--migrate-after", "0", "--evict-after", "0", "--stage-latency", "3600",
                          "--server", "werkzeug", name="keep")
    assert web.put(server.url(PATH), data=b"abc", timeout=10).status_code == 201
    wait_until(lambda: archiveinfo(server, PATH)["locality"] == "TAPE")
    rid = web.post(server.base + "/api/v1/stage/", json={"files": [{"path": PATH}]}, timeout=10)
    rid = rid.json()["requestId"]
    server.kill(signal.SIGKILL)
    server.start()
    assert archiveinfo(server, PATH)["locality"] == "TAPE"
    assert web.get(server.url(PATH), timeout=10).status_code == 503
    head = web.head(server.url(PATH), headers={"Want-Digest": "adler32"}, timeout=10)
    assert head.headers["Digest"] == "adler32=024d0127"
    state = web.get(f"{server.base}/api/v1/stage/{rid}", timeout=10).json()["files"][0]["state"]
    assert state in ("SUBMITTED", "STARTED")


def test_another_gunicorn_worker_takes_over_when_the_leader_dies(tape_factory) -> None:
    data = os.urandom(3 * 1024 * 1024)
    server = tape_factory("--migrate-after", "0", "--evict-after", "3600", "--tape-rate", "1000000",
                          "--workers", "2", name="takeover")
    lock = server.root / "worker.lock"
    wait_until(lambda: lock.exists() and lock.read_text().strip())
    leader = int(lock.read_text())
    assert web.put(server.url(PATH), data=data, timeout=60).status_code == 201
    wait_until(lambda: any(p.stat().st_size > 0 for p in (server.root / "tmp" / "migrate").glob("*.part")))
    os.kill(leader, signal.SIGKILL)  # only the worker running the lifecycle; the master and the other stay
    wait_until(lambda: archiveinfo(server, PATH)["locality"] == "DISK_AND_TAPE", limit=60)
    tape_copy = server.root / "tape" / PATH.lstrip("/")
    assert hashlib.md5(tape_copy.read_bytes()).hexdigest() == hashlib.md5(data).hexdigest()
    assert int(lock.read_text()) != leader
