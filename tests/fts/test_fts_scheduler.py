"""Scheduler decisions in process: priorities (and their update) and the global / per-link limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.fts import states
from testbed.fts.scheduler import Limits
from testbed.fts.service import FtsService, ServiceConfig

from .conftest import TEST_ENDPOINTS, USER, FtsTls, MotoServer, wait_for
from .test_fts_transfers import put


@pytest.fixture
def make_service(tmp_path: Path, s3_creds_file: Path) -> Iterator[Any]:
    made: list[FtsService] = []

    def make(**limits: Any) -> FtsService:
        svc = FtsService(ServiceConfig(db=tmp_path / f"s{len(made)}.db", s3_credentials=s3_creds_file,
                                       limits=Limits(**limits),
                                       storage_endpoints=(f"file://{tmp_path}", *TEST_ENDPOINTS),
                                       s3_users=frozenset({FtsTls.dn(USER)})))
        made.append(svc)
        return svc  # the scheduling thread is not started: the test calls _dispatch() itself

    yield make
    for svc in made:
        svc.scheduler.stop(grace=10)
        svc.store.close()


def _submit(client: Any, files: list[dict[str, Any]], **params: Any) -> str:
    r = client.post("/jobs", json={"files": files, "params": params})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["job_id"]


def test_highest_priority_first_and_priority_updates_count(make_service: Any, tmp_path: Path, fts_tls: FtsTls) -> None:
    svc = make_service(max_active=1, max_per_link=1)
    client = fts_tls.client(svc.app)
    (tmp_path / "src").write_bytes(b"data")
    jobs = {}
    for name, prio in (("low", 1), ("mid", 3), ("high", 5)):
        jobs[name] = _submit(client, [{"sources": [f"file://{tmp_path}/src"],
                                       "destinations": [f"file://{tmp_path}/{name}"]}], priority=prio)
    assert client.post(f"/jobs/{jobs['low']}", json={"params": {"priority": 4}}).status_code == 200
    order: list[str] = []
    for _ in range(3):
        svc.scheduler._dispatch()
        started = [j for j in jobs.values()
                   if j not in order and svc.store.get_files(j)[0]["file_state"] != states.SUBMITTED]
        assert len(started) == 1  # max_active=1: one claim per pass
        order.append(started[0])
        wait_for(lambda: svc.scheduler.running_count() == 0, 30, what="transfer done")
    assert order == [jobs["high"], jobs["low"], jobs["mid"]]
    assert all(svc.store.get_job(j)["job_state"] == states.FINISHED for j in jobs.values())


def test_global_and_per_link_limits(make_service: Any, tmp_path: Path, fts_tls: FtsTls,
                                    s3_servers: tuple[MotoServer, MotoServer], buckets: tuple[str, str]) -> None:
    a, b = s3_servers
    src_bucket, dst_bucket = buckets
    b.client().create_bucket(Bucket=src_bucket)
    a.client().create_bucket(Bucket=dst_bucket)
    svc = make_service(max_active=3, max_per_link=1)
    client = fts_tls.client(svc.app)
    (tmp_path / "f").write_bytes(b"x" * 1000)
    put(a, src_bucket, "k", 1000)
    put(b, src_bucket, "k", 1000)
    links = {
        "local": [{"sources": [f"file://{tmp_path}/f"], "destinations": [f"file://{tmp_path}/o{i}"]} for i in range(3)],
        "a->b": [{"sources": [a.url(src_bucket, "k")], "destinations": [b.url(dst_bucket, f"o{i}")]} for i in range(3)],
        "b->a": [{"sources": [b.url(src_bucket, "k")], "destinations": [a.url(dst_bucket, f"o{i}")]} for i in range(3)],
    }
    job_ids = [_submit(client, files) for files in links.values()]
    svc.scheduler._dispatch()
    started = [f for j in job_ids for f in svc.store.get_files(j) if f["file_state"] != states.SUBMITTED]
    assert len(started) == 3
    assert {(f["source_se"], f["dest_se"]) for f in started} == {
        ("file://", "file://"), (f"s3://{a.host}", f"s3://{b.host}"), (f"s3://{b.host}", f"s3://{a.host}")}
    for _ in range(10):
        wait_for(lambda: svc.scheduler.running_count() == 0, 30, what="running transfers done")
        svc.scheduler._dispatch()
    wait_for(lambda: svc.scheduler.running_count() == 0, 30, what="running transfers done")
    assert all(svc.store.get_job(j)["job_state"] == states.FINISHED for j in job_ids)
    assert svc.scheduler.peak_active <= 3
    assert max(svc.scheduler.peak_per_link.values()) == 1


def test_max_time_in_queue_expires_waiting_files(make_service: Any, tmp_path: Path, fts_tls: FtsTls) -> None:
    svc = make_service(max_active=1)
    client = fts_tls.client(svc.app)
    job_id = _submit(client, [{"sources": [f"file://{tmp_path}/a"], "destinations": [f"file://{tmp_path}/b"]}],
                     max_time_in_queue="1s")
    assert svc.store.expired_in_queue(svc.store.get_job(job_id)["submit_epoch"]) == []
    wait_for(lambda: svc.store.expired_in_queue(time.time()), 30, what="queue time exceeded")
    svc.scheduler._expire_queued()
    job = client.get(f"/jobs/{job_id}?files=").get_json()
    assert job["job_state"] == "FAILED" and "max_time_in_queue" in job["files"][0]["reason"]
