"""Shared fixtures: a real Rucio testbed per database backend, brought up once per test session."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import tomllib
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import rucio.rse  # noqa: F401  first import here, before a test sets a server rucio.cfg: the process stays a client
import tomli_w

from cygno_dm.profile import PACKAGED
from testbed.stack import Testbed, drop_postgres_database, ensure_postgres_database

PG_BASE = os.environ.get("CYGNO_DM_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
DATABASES = [d for d in os.environ.get("CYGNO_DM_TEST_DATABASES", "sqlite,postgresql").split(",") if d]


@contextmanager
def scratch_postgres_database(prefix: str, tmp_path: Path) -> Iterator[str]:
    """A new PostgreSQL database `<prefix>_<random>` (as a lifecycle store URL), dropped afterwards."""
    from lifecycle.store import database_url

    url = database_url(f"{PG_BASE}/{prefix}_{uuid.uuid4().hex[:8]}", tmp_path)
    ensure_postgres_database(url)
    try:
        yield url
    finally:
        drop_postgres_database(url)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def profile_on_free_ports(path: Path, edit: Callable[[dict], None] | None = None) -> Path:
    """Write a copy of the CYGNO testbed profile whose endpoints and services use free ports."""
    data = tomllib.loads((PACKAGED / "cygno-testbed.toml").read_text())
    for rse in data["rses"].values():
        if "endpoint" in rse:
            parts = urlsplit(rse["endpoint"])
            rse["endpoint"] = f"{parts.scheme}://{parts.hostname}:{free_port()}{parts.path}"
    data.setdefault("testbed", {}).update(rucio_port=free_port(), fts_port=free_port())
    data["tokens"]["issuer"] = f"https://{urlsplit(data['tokens']['issuer']).hostname}:{free_port()}"
    if "messaging" in data:  # Hermes of each testbed on its own topic of the shared broker
        data["messaging"]["destination"] = f"/topic/rucio.events.{uuid.uuid4().hex[:8]}"
    if edit:
        edit(data)
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def traversable_dir(prefix: str) -> Path:
    """A new directory that other users can traverse (XRootD runs as its own user and serves from it)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@contextmanager
def running_testbed(backend: str, edit: Callable[[dict], None] | None = None) -> Iterator[Testbed]:
    """Bring a testbed up on `backend` ('sqlite' or 'postgresql'), yield it, then stop it and remove its state."""
    state = traversable_dir(f"cygno-testbed-{backend}-")
    database = f"{PG_BASE}/cygno_test_{uuid.uuid4().hex[:8]}" if backend == "postgresql" else None
    tb = Testbed(state / "state", profile=str(profile_on_free_ports(state / "profile.toml", edit)),
                 database=database)
    try:
        tb.up()
        yield tb
    finally:
        tb.down()
        if database:
            drop_postgres_database(database)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session", params=DATABASES)
def testbed(request: pytest.FixtureRequest) -> Iterator[Testbed]:
    """A running testbed (storage, FTS, Rucio server, daemons) on SQLite or PostgreSQL, CYGNO testbed profile."""
    with running_testbed(request.param) as tb:
        yield tb
