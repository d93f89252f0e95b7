"""Run-log rows over SQLAlchemy (real SQLite and PostgreSQL), sidecars and DID metadata."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
import sqlalchemy as sa

from cygno_dm.ingest.runlog import RunLog, RunLogUnavailable, did_metadata, read_sidecar

PG = "postgresql://postgres@127.0.0.1:5432"


def _fill(url: str) -> None:
    eng = sa.create_engine(url)
    md = sa.MetaData()
    t = sa.Table("Runlog", md, sa.Column("run_number", sa.Integer, primary_key=True),
                 sa.Column("start_time", sa.DateTime), sa.Column("stop_time", sa.DateTime),
                 sa.Column("number_of_events", sa.Integer), sa.Column("run_type", sa.String(32)),
                 sa.Column("HV_GEM1", sa.Float), sa.Column("file_checksum", sa.String(32)),
                 sa.Column("storage_cloud_status", sa.Integer))
    md.create_all(eng)
    with eng.begin() as c:
        c.execute(t.insert(), [{"run_number": 114497, "start_time": dt.datetime(2026, 1, 1, 10),
                                "stop_time": dt.datetime(2026, 1, 1, 11), "number_of_events": 400,
                                "run_type": "physics", "HV_GEM1": 440.5, "file_checksum": "ab" * 16,
                                "storage_cloud_status": 1},
                               {"run_number": 114498, "start_time": dt.datetime(2026, 1, 1, 11), "stop_time": None,
                                "number_of_events": None, "run_type": None, "HV_GEM1": None, "file_checksum": None,
                                "storage_cloud_status": None}])
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def runlog_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'runlog.db'}"
        _fill(url)
        yield url
        return
    name = f"cygno_runlog_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    try:
        _fill(f"{PG}/{name}")
        yield f"{PG}/{name}"
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_row_of_a_run(runlog_url):
    log = RunLog(runlog_url)
    row = log.row(114497)
    assert row["stop_time"] == "2026-01-01T11:00:00" and row["number_of_events"] == 400
    assert log.row(114498)["stop_time"] is None
    assert log.row(1) is None
    log.dispose()


def test_missing_table_or_server_is_unavailable(tmp_path):
    with pytest.raises(RunLogUnavailable, match="no table"):
        RunLog(f"sqlite:///{tmp_path / 'empty.db'}").row(1)
    with pytest.raises(RunLogUnavailable):
        RunLog("postgresql://postgres@127.0.0.1:1/x").row(1)


def test_metadata_keeps_run_fields_and_drops_storage_status():
    meta = did_metadata({"run_number": 5, "number_of_events": 3, "storage_cloud_status": 1, "file_checksum": "x",
                         "run_type": "ped", "empty": None}, 5)
    assert meta == {"run_number": 5, "number_of_events": 3, "run_type": "ped"}


def test_sidecar(tmp_path):
    f = tmp_path / "run12345.mid.gz"
    assert read_sidecar(f) is None
    (tmp_path / "run12345.mid.gz.json").write_text(json.dumps({"run_number": 12345}))
    assert read_sidecar(f) == {"run_number": 12345}
    (tmp_path / "run12345.mid.gz.json").write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        read_sidecar(f)
