"""Shared fixtures: a real Rucio testbed per database backend, brought up once per test session."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

from testbed.stack import Testbed, drop_postgres_database

PG_BASE = os.environ.get("CYGNO_DM_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
DATABASES = [d for d in os.environ.get("CYGNO_DM_TEST_DATABASES", "sqlite,postgresql").split(",") if d]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", params=DATABASES)
def testbed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    """A running testbed (server, daemons, storage) on SQLite or PostgreSQL, with the CYGNO testbed profile."""
    backend = request.param
    state = tmp_path_factory.mktemp(f"testbed-{backend}")
    database = None
    if backend == "postgresql":
        database = f"{PG_BASE}/cygno_test_{uuid.uuid4().hex[:8]}"
    tb = Testbed(state, database=database, rucio_port=free_port(), fts_port=free_port())
    try:
        tb.up()
        yield tb
    finally:
        tb.down()
        if database:
            drop_postgres_database(database)
