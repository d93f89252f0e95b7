"""The DAQ run log (table Runlog) over SQLAlchemy, and sidecar JSON files holding one run-log row."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".json"


class RunLogUnavailable(RuntimeError):
    """The run-log database cannot be reached."""


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


class RunLog:
    """Read-only access to the run-log table of any SQLAlchemy URL (MySQL in production)."""

    def __init__(self, url: str, table: str = "Runlog") -> None:
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        self.table_name = table
        self._table: sa.Table | None = None

    def _t(self) -> sa.Table:
        if self._table is None:
            try:
                self._table = sa.Table(self.table_name, sa.MetaData(), autoload_with=self.engine)
            except sa.exc.OperationalError as err:
                raise RunLogUnavailable(f"run log: {err.orig}") from err
            except sa.exc.NoSuchTableError:
                raise RunLogUnavailable(f"run log: no table {self.table_name!r}") from None
        return self._table

    def row(self, run: int) -> dict[str, Any] | None:
        """The run-log row of a run as plain JSON values, or None."""
        t = self._t()
        try:
            with self.engine.connect() as conn:
                r = conn.execute(sa.select(t).where(t.c.run_number == run)).mappings().first()
        except sa.exc.OperationalError as err:
            raise RunLogUnavailable(f"run log: {err.orig}") from err
        return {k: _plain(v) for k, v in r.items()} if r else None

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def sidecar_path(data_file: Path) -> Path:
    """`run<N>.mid.gz.json` beside the data file: the DAQ's 'this run is complete' marker with its row."""
    return data_file.with_name(data_file.name + SIDECAR_SUFFIX)


def read_sidecar(data_file: Path) -> dict[str, Any] | None:
    """The sidecar's run-log row, None if there is no sidecar; ValueError if it is not a JSON object."""
    p = sidecar_path(data_file)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}: not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: must hold a JSON object (one run-log row)")
    return data


SKIPPED_KEYS = frozenset({"file_size", "file_checksum", "online_reco_status"})


def did_metadata(row: dict[str, Any], run: int, run_number: bool = True) -> dict[str, Any]:
    """DID run metadata from a run-log row: run_number (unless told not to) plus the row's scalar fields
    (storage status left out)."""
    meta: dict[str, Any] = {"run_number": run} if run_number else {}
    for key, value in row.items():
        if key == "run_number" or key in SKIPPED_KEYS or key.startswith("storage_"):
            continue
        if value is not None and value != "" and isinstance(value, str | int | float | bool):
            meta[key] = value
    return meta
