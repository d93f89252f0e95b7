"""REST surface of the service (in process, scheduler not started): ids, shapes, states, errors."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from testbed.fts import ids
from testbed.fts.service import FtsService, ServiceConfig

from .conftest import ADMIN, FtsTls

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
RUCIO_QUERY = "files=file_state,dest_surl,finish_time,start_time,staging_start,staging_finished,reason,source_surl," \
              "file_metadata"


@pytest.fixture
def service(tmp_path: Path, fts_tls: FtsTls) -> Any:
    svc = FtsService(ServiceConfig(db=tmp_path / "api.db", storage_endpoints=("file:///tmp",),
                                   admins=frozenset({fts_tls.dn(ADMIN)})))
    yield svc
    svc.store.close()


@pytest.fixture
def client(service: Any, fts_tls: FtsTls) -> Any:
    return fts_tls.client(service.app)


def _file(n: int = 0, **kw: Any) -> dict[str, Any]:
    spec = {"sources": [f"file:///tmp/src{n}"], "destinations": [f"file:///tmp/dst{n}"],
            "metadata": {"request_id": f"req{n}", "nested": {"a": [1, 2, None]}, "x": 1.5},
            "filesize": 10, "checksum": "ADLER32:0000abcd", "activity": "User Subscriptions"}
    spec.update(kw)
    return spec


def submit(client: Any, files: list[dict[str, Any]], **params: Any) -> Any:
    return client.post("/jobs", json={"files": files, "params": params})


def test_root_reports_api_version_as_integers(client: Any) -> None:
    body = client.get("/").get_json()
    for key in ("api", "schema"):
        assert all(isinstance(body[key][k], int) for k in ("major", "minor", "patch"))


def test_double_slash_paths_of_the_fts3_client(client: Any) -> None:
    def raw(method: str, path: str, **kw: Any) -> Any:
        return client.open("/", method=method, environ_overrides={"PATH_INFO": path}, **kw)

    assert raw("GET", "//whoami").status_code == 200
    job_id = raw("POST", "//jobs", json={"files": [_file()]}).get_json()["job_id"]
    assert raw("GET", f"//jobs/{job_id}").get_json()["job_id"] == job_id


def test_whoami_has_what_rucio_and_the_client_read(client: Any) -> None:
    who = client.get("/whoami").get_json()
    assert who["base_id"] == ids.BASE_ID
    assert who["vos"] == ["cygno"]
    assert who["delegation_id"] and who["user_dn"]


def test_deterministic_id_matches_rucio_formula_and_duplicates_conflict(client: Any) -> None:
    sid = str(uuid.uuid4())
    expected = str(uuid.uuid5(uuid.uuid5(uuid.UUID(ids.BASE_ID), "cygno"), sid))
    r = submit(client, [_file()], id_generator="deterministic", sid=sid)
    assert r.status_code == 200 and r.get_json()["job_id"] == expected
    again = submit(client, [_file()], id_generator="deterministic", sid=sid)
    assert again.status_code == 409


def test_parameters_stored_and_metadata_echoed_unchanged(client: Any) -> None:
    params = {"verify_checksum": "both", "bring_online": None, "copy_pin_lifetime": 172800, "overwrite": True,
              "overwrite_when_only_on_disk": False, "priority": 4, "s3alternate": True, "strict_copy": True,
              "job_metadata": {"issuer": "rucio", "multi_sources": False}, "account": "root",
              "some_future_param": {"k": "v"}}
    f = _file(staging_metadata={"default": {"activity": "x"}}, archive_metadata={"collocation_hints": {"0": "a"}},
              scitag=65)
    job_id = submit(client, [f], **params).get_json()["job_id"]
    job = client.get(f"/jobs/{job_id}?files=").get_json()
    assert job["job_metadata"] == params["job_metadata"]
    assert job["params"] == params
    assert job["priority"] == 4 and job["verify_checksum"] == "both" and job["copy_pin_lifetime"] == 172800
    (row,) = job["files"]
    assert row["file_metadata"] == f["metadata"]
    assert row["staging_metadata"] == f["staging_metadata"] and row["archive_metadata"] == f["archive_metadata"]
    assert row["checksum"] == "ADLER32:0000abcd" and row["filesize"] == 10 and row["scitag"] == 65
    assert row["activity"] == "User Subscriptions"


def test_bulk_query_shape_rucio_parses(client: Any) -> None:
    job_id = submit(client, [_file(0), _file(1)], job_metadata={"multi_sources": False}).get_json()["job_id"]
    single = client.get(f"/jobs/{job_id}?{RUCIO_QUERY}")
    assert single.status_code == 200
    body = single.get_json()
    assert body["http_status"] == "200 Ok" and body["job_state"] == "SUBMITTED"
    for f in body["files"]:
        assert set(f) == set(RUCIO_QUERY.split("=")[1].split(","))
        assert f["start_time"] is None and f["finish_time"] is None and f["staging_start"] is None
    assert [f["file_metadata"]["request_id"] for f in body["files"]] == ["req0", "req1"]
    assert TIME_RE.match(client.get(f"/jobs/{job_id}").get_json()["submit_time"])


def test_bulk_query_with_missing_ids_is_207(client: Any) -> None:
    job_id = submit(client, [_file()]).get_json()["job_id"]
    missing = str(uuid.uuid4())
    r = client.get(f"/jobs/{job_id},{missing}?{RUCIO_QUERY}")
    assert r.status_code == 207
    found, lost = r.get_json()
    assert found["http_status"] == "200 Ok" and lost == {**lost, "job_id": missing, "http_status": "404 Not Found"}
    one = client.get(f"/jobs/{missing}?{RUCIO_QUERY}")
    assert one.status_code == 404 and one.get_json()["http_status"] == "404 Not Found"
    assert client.get(f"/jobs/{job_id},{job_id}").status_code == 200


def test_multiple_sources_give_one_row_per_source_not_used(client: Any) -> None:
    f = _file(sources=["file:///tmp/a", "file:///tmp/b", "file:///tmp/c"])
    job_id = submit(client, [f], job_metadata={"multi_sources": True}).get_json()["job_id"]
    job = client.get(f"/jobs/{job_id}?files=").get_json()
    assert job["job_type"] == "R"
    assert [r["file_state"] for r in job["files"]] == ["SUBMITTED", "NOT_USED", "NOT_USED"]
    assert [r["source_surl"] for r in job["files"]] == f["sources"]
    assert {r["file_index"] for r in job["files"]} == {0}


def test_multihop_waits_hops_as_not_used(client: Any) -> None:
    hops = [_file(0), _file(1)]
    job_id = submit(client, hops, multihop=True).get_json()["job_id"]
    job = client.get(f"/jobs/{job_id}?files=").get_json()
    assert job["job_type"] == "H"
    assert [r["file_state"] for r in job["files"]] == ["SUBMITTED", "NOT_USED"]


def test_bring_online_jobs_start_staging(client: Any) -> None:
    job_id = submit(client, [_file()], bring_online=600).get_json()["job_id"]
    job = client.get(f"/jobs/{job_id}?files=").get_json()
    assert job["job_state"] == "STAGING" and job["files"][0]["file_state"] == "STAGING"


@pytest.mark.parametrize(("body", "field"), [
    ({"files": []}, "files"),
    ({"files": [{"sources": [], "destinations": ["file:///x"]}]}, "files[0].sources"),
    ({"files": [{"sources": ["file:///x"]}]}, "files[0].destinations"),
    ({"files": [{"sources": ["nota url"], "destinations": ["file:///x"]}]}, "files[0].sources"),
    ({"files": [_file(checksum="SHA1:abc")]}, "files[0].checksum"),
    ({"files": [_file(checksum="ADLER32:xyz")]}, "files[0].checksum"),
    ({"files": [_file()], "params": {"verify_checksum": "sometimes"}}, "params.verify_checksum"),
    ({"files": [_file()], "params": {"priority": 9}}, "params.priority"),
    ({"files": [_file()], "params": {"id_generator": "deterministic"}}, "params.sid"),
    ({"delete": ["file:///x"]}, "delete"),
    ({"files": [_file(source_tokens=["a", "b"])]}, "files[0].source_tokens"),
    ({"files": [_file(destination_tokens="tok")]}, "files[0].destination_tokens"),
])
def test_bad_submissions_are_400_naming_the_field(client: Any, body: dict[str, Any], field: str) -> None:
    r = client.post("/jobs", json=body)
    assert r.status_code == 400
    assert r.get_json()["message"].startswith(field)


def test_not_json_is_400(client: Any) -> None:
    r = client.post("/jobs", data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_priority_update(client: Any) -> None:
    job_id = submit(client, [_file()]).get_json()["job_id"]
    r = client.post(f"/jobs/{job_id}", json={"params": {"priority": 5}})
    assert r.status_code == 200 and "http_message" in r.get_json() and r.get_json()["priority"] == 5
    assert client.get(f"/jobs/{job_id}").get_json()["priority"] == 5
    assert client.post(f"/jobs/{job_id}", json={"params": {"priority": 0}}).status_code == 400
    assert client.post(f"/jobs/{uuid.uuid4()}", json={"params": {"priority": 2}}).status_code == 404


def test_cancel_job_and_files(client: Any) -> None:
    job_id = submit(client, [_file(0), _file(1)]).get_json()["job_id"]
    files = client.get(f"/jobs/{job_id}/files").get_json()
    assert client.delete(f"/jobs/{job_id}/files/{files[0]['file_id']}").get_json() == "CANCELED"
    assert client.get(f"/jobs/{job_id}").get_json()["job_state"] not in ("CANCELED", "FAILED", "FINISHED")
    r = client.delete(f"/jobs/{job_id}")
    assert r.status_code == 200 and r.get_json()["job_state"] == "CANCELED"
    job = client.get(f"/jobs/{job_id}?files=").get_json()
    assert {f["file_state"] for f in job["files"]} == {"CANCELED"}
    assert TIME_RE.match(job["job_finished"])
    assert client.delete(f"/jobs/{uuid.uuid4()}").status_code == 404


def test_job_list_and_dm_and_retries_endpoints(client: Any) -> None:
    job_id = submit(client, [_file()]).get_json()["job_id"]
    assert job_id in [j["job_id"] for j in client.get("/jobs?state_in=SUBMITTED,ACTIVE").get_json()]
    assert job_id not in [j["job_id"] for j in client.get("/jobs?state_in=FINISHED").get_json()]
    assert client.get(f"/jobs/{job_id}/dm").get_json() == []
    fid = client.get(f"/jobs/{job_id}/files").get_json()[0]["file_id"]
    assert client.get(f"/jobs/{job_id}/files/{fid}/retries").get_json() == []
    assert client.get(f"/jobs/{uuid.uuid4()}/files").status_code == 404


def test_jobs_survive_reopening_the_database(tmp_path: Path, fts_tls: FtsTls) -> None:
    svc = FtsService(ServiceConfig(db=tmp_path / "p.db", storage_endpoints=("file:///tmp",)))
    job_id = submit(fts_tls.client(svc.app), [_file()], job_metadata={"k": "v"}).get_json()["job_id"]
    svc.store.close()
    again = FtsService(ServiceConfig(db=tmp_path / "p.db"))
    job = fts_tls.client(again.app).get(f"/jobs/{job_id}?files=").get_json()
    assert job["job_metadata"] == {"k": "v"} and job["files"][0]["file_metadata"]["request_id"] == "req0"
    again.store.close()
