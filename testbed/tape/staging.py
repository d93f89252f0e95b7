"""Stage requests, pins and archive information: the state behind the WLCG Tape REST API."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

from testbed.tape.namespace import Namespace
from testbed.tape.paths import BadPath, normalize
from testbed.tape.problems import Problem
from testbed.tape.store import TERMINAL, FileRecord, StageRequest, Store

log = logging.getLogger(__name__)

GFAL2_PLACEHOLDER_ID = "gfal2-placeholder-id"
_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_lifetime(value: Any) -> float | None:
    """Return a diskLifetime (ISO 8601 duration like 'PT1H', or seconds) in seconds; None if absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Problem(400, "diskLifetime must be an ISO 8601 duration or a number of seconds")
    if isinstance(value, int | float):
        if value < 0:
            raise Problem(400, "diskLifetime must not be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value.strip().upper())
        if m and value.strip().upper() not in ("P", "PT"):
            d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            return d * 86400 + h * 3600 + mi * 60 + s
    raise Problem(400, f"diskLifetime {value!r} is not an ISO 8601 duration (e.g. 'PT1H') or seconds")


@dataclass(frozen=True)
class PathArg:
    """A path as the client sent it and its canonical form."""

    raw: str
    norm: str


def parse_paths(values: Any, field: str) -> list[PathArg]:
    """Validate a JSON list of paths (all or nothing) and return them with their canonical form."""
    if not isinstance(values, list) or not values:
        raise Problem(400, f"'{field}' must be a non-empty list")
    out = []
    for i, raw in enumerate(values):
        if not isinstance(raw, str):
            raise Problem(400, f"'{field}[{i}]' must be a string")
        try:
            out.append(PathArg(raw, normalize(raw, collapse=True)))
        except BadPath as exc:
            raise Problem(400, f"'{field}[{i}]': {exc}") from exc
    return out


class Staging:
    """Stage requests and pins kept in the store; file copies handled by the namespace and the worker."""

    def __init__(self, ns: Namespace, store: Store, pin_lifetime: float) -> None:
        self.ns = ns
        self.store = store
        self.pin_lifetime = pin_lifetime

    # --- requests from clients ---------------------------------------------------------------------------
    def create(self, body: Any) -> str:
        """Record a stage request (files already on disk complete at once) and return its id."""
        if not isinstance(body, dict) or not isinstance(body.get("files"), list) or not body["files"]:
            raise Problem(400, "body must be a JSON object with a non-empty 'files' list")
        entries = []
        for i, item in enumerate(body["files"]):
            if not isinstance(item, dict) or "path" not in item:
                raise Problem(400, f"'files[{i}]' must be an object with a 'path'")
            (arg,) = parse_paths([item["path"]], f"files[{i}].path")
            lifetime = parse_lifetime(item.get("diskLifetime"))
            meta = item.get("targetedMetadata")
            entries.append((arg, lifetime, json.dumps(meta) if meta is not None else None))
        request_id = str(uuid.uuid4())
        now = time.time()
        with self.ns.lock.held():
            states = [self._initial_state(arg.norm, lifetime, now) for arg, lifetime, _ in entries]
            with self.store.tx() as c:
                self._insert(c, request_id, now, entries, states)
        log.info("stage request %s for %s", request_id, ", ".join(a.norm for a, _, _ in entries))
        return request_id

    def _insert(self, c: sqlite3.Connection, request_id: str, now: float, entries: list, states: list) -> None:
        c.execute("INSERT INTO stage_requests(id, created_at, started_at) VALUES (?, ?, ?)",
                  (request_id, now, now))
        for idx, ((arg, lifetime, meta), (state, error, finished, pin)) in enumerate(zip(entries, states, strict=True)):
            c.execute(
                "INSERT INTO stage_files(request_id, idx, path, norm, state, error, disk_lifetime, metadata,"
                " started_at, finished_at, pin_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (request_id, idx, arg.raw, arg.norm, state, error, lifetime, meta,
                 now if state != "SUBMITTED" else None, finished, pin))
        self._complete_requests(c, [request_id], now)

    def _initial_state(self, norm: str, lifetime: float | None, now: float
                       ) -> tuple[str, str | None, float | None, float | None]:
        rec = self.ns.lookup(norm)
        if rec is None:
            return "FAILED", "No such file or directory", now, None
        if not isinstance(rec, FileRecord):
            return "FAILED", "Is a directory", now, None
        if rec.on_disk and self.ns.buffer_path(norm).is_file():
            return "COMPLETED", None, now, now + (lifetime if lifetime is not None else self.pin_lifetime)
        return "SUBMITTED", None, None, None

    def status(self, request_id: str) -> StageRequest:
        """Return a stage request or raise 404."""
        req = self.store.get_request(request_id)
        if req is None:
            raise Problem(404, f"stage request {request_id} does not exist")
        return req

    def cancel(self, request_id: str, body: Any) -> None:
        """Cancel the still pending files of a request."""
        paths = self._request_paths(request_id, body)
        now = time.time()
        with self.ns.lock.held(), self.store.tx() as c:
            for p in paths:
                c.execute("UPDATE stage_files SET state = 'CANCELLED', finished_at = ? WHERE request_id = ?"
                          " AND norm = ? AND state IN ('SUBMITTED', 'STARTED')", (now, request_id, p))
            self._complete_requests(c, [request_id], now)
        log.info("stage request %s: cancelled %s", request_id, ", ".join(paths))

    def release(self, request_id: str, body: Any) -> None:
        """Release the pins a request holds on files (gfal2's placeholder id releases every pin)."""
        if request_id == GFAL2_PLACEHOLDER_ID and self.store.get_request(request_id) is None:
            if not isinstance(body, dict):
                raise Problem(400, "body must be a JSON object with a 'paths' list")
            paths = [a.norm for a in parse_paths(body.get("paths"), "paths")]
            where = "norm = ?"
            args: list[tuple[str, ...]] = [(p,) for p in paths]
        else:
            paths = self._request_paths(request_id, body)
            where = "request_id = ? AND norm = ?"
            args = [(request_id, p) for p in paths]
        with self.ns.lock.held(), self.store.tx() as c:
            for a in args:
                c.execute(f"UPDATE stage_files SET released = 1 WHERE {where}", a)
        log.info("stage request %s: released %s", request_id, ", ".join(paths))

    def delete(self, request_id: str) -> None:
        """Forget a request: pending files are cancelled and its pins dropped."""
        with self.ns.lock.held(), self.store.tx() as c:
            if c.execute("SELECT 1 FROM stage_requests WHERE id = ?", (request_id,)).fetchone() is None:
                raise Problem(404, f"stage request {request_id} does not exist")
            c.execute("DELETE FROM stage_files WHERE request_id = ?", (request_id,))
            c.execute("DELETE FROM stage_requests WHERE id = ?", (request_id,))
        log.info("stage request %s deleted", request_id)

    def on_disk(self, norm: str) -> bool:
        """Return whether the file at a canonical path has a copy in the buffer now."""
        rec = self.store.get_file(norm)
        return rec is not None and self.ns.locality(rec) in ("DISK", "DISK_AND_TAPE")

    def archiveinfo(self, body: Any) -> list[dict[str, str]]:
        """Return the locality (or an error) of each path."""
        if not isinstance(body, dict):
            raise Problem(400, "body must be a JSON object with a 'paths' list")
        out = []
        for arg in parse_paths(body.get("paths"), "paths"):
            rec = self.ns.lookup(arg.norm)
            if rec is None:
                out.append({"path": arg.raw, "error": "No such file or directory"})
            elif not isinstance(rec, FileRecord):
                out.append({"path": arg.raw, "error": "Is a directory"})
            else:
                out.append({"path": arg.raw, "locality": self.ns.locality(rec)})
        return out

    def _request_paths(self, request_id: str, body: Any) -> list[str]:
        req = self.status(request_id)
        if not isinstance(body, dict):
            raise Problem(400, "body must be a JSON object with a 'paths' list")
        paths = [a.norm for a in parse_paths(body.get("paths"), "paths")]
        known = {f.norm for f in req.files}
        missing = [p for p in paths if p not in known]
        if missing:
            raise Problem(400, f"paths not in stage request {request_id}: {', '.join(missing)}")
        return paths

    # --- transitions driven by the worker ----------------------------------------------------------------
    def mark_started(self, norm: str, now: float) -> None:
        """Mark the submitted entries of a file as being recalled."""
        with self.ns.lock.held(), self.store.tx() as c:
            c.execute("UPDATE stage_files SET state = 'STARTED', started_at = ? WHERE norm = ? AND state = 'SUBMITTED'",
                      (now, norm))

    def finish(self, norm: str, now: float, error: str | None = None) -> None:
        """Complete (or fail with ``error``) every pending entry of a file and pin it."""
        with self.ns.lock.held(), self.store.tx() as c:
            ids = [r[0] for r in c.execute("SELECT DISTINCT request_id FROM stage_files WHERE norm = ?"
                                           " AND state IN ('SUBMITTED', 'STARTED')", (norm,))]
            if error is None:
                c.execute("UPDATE stage_files SET state = 'COMPLETED', finished_at = ?, started_at ="
                          " COALESCE(started_at, ?), pin_until = ? + COALESCE(disk_lifetime, ?) WHERE norm = ?"
                          " AND state IN ('SUBMITTED', 'STARTED')", (now, now, now, self.pin_lifetime, norm))
            else:
                c.execute("UPDATE stage_files SET state = 'FAILED', error = ?, finished_at = ? WHERE norm = ?"
                          " AND state IN ('SUBMITTED', 'STARTED')", (error, now, norm))
            self._complete_requests(c, ids, now)

    @staticmethod
    def _complete_requests(c: sqlite3.Connection, ids: list[str], now: float) -> None:
        marks = ",".join("?" * len(TERMINAL))
        for rid in ids:
            left = c.execute(f"SELECT 1 FROM stage_files WHERE request_id = ? AND state NOT IN ({marks}) LIMIT 1",
                             (rid, *TERMINAL)).fetchone()
            if left is None:
                c.execute("UPDATE stage_requests SET completed_at = COALESCE(completed_at, ?) WHERE id = ?",
                          (now, rid))
