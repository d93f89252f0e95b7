"""Fixtures for the policy-package tests: a Rucio config for unit tests, and the lead's `testbed` when present."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rucio_policies import server_config
from tests.policies.world import World


def _unit_config() -> str:
    """Write a throwaway rucio.cfg (SQLite, this package) so Rucio modules import in unit tests."""
    base = Path(tempfile.mkdtemp(prefix="rucio-policies-unit-"))
    sections = {
        "common": {"logdir": str(base)},
        "database": {"default": f"sqlite:///{base}/rucio.db"},
        "client": {"rucio_host": "http://127.0.0.1:1", "auth_host": "http://127.0.0.1:1", "auth_type": "userpass",
                   "account": "root", "username": "root", "password": "unused"},
    }
    for section, keys in server_config().items():
        sections.setdefault(section, {}).update(keys)
    cfg = base / "rucio.cfg"
    cfg.write_text("".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items()) + "\n"
                           for s, kv in sections.items()))
    return str(cfg)


@pytest.fixture(scope="session", autouse=True)
def rucio_config() -> Iterator[str]:
    """RUCIO_CONFIG for in-process Rucio code: the one already set, else a throwaway one (restored afterwards)."""
    if "RUCIO_CONFIG" in os.environ:
        yield os.environ["RUCIO_CONFIG"]
        return
    os.environ["RUCIO_CONFIG"] = path = _unit_config()
    try:
        yield path
    finally:
        os.environ.pop("RUCIO_CONFIG", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the real-server tests cleanly while no `testbed` fixture (tests/conftest.py) is defined."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if "testbed" in getattr(item, "fixturenames", ()) and info is not None \
                and not info.name2fixturedefs.get("testbed"):
            item.add_marker(pytest.mark.skip(reason="the `testbed` fixture (real Rucio server) is not available"))


@pytest.fixture(scope="session")
def world(testbed: Any) -> World:
    """The testbed seen by the policy tests."""
    return World(testbed)
