"""WLCG Tape REST API v1: discovery, stage, stage status, cancel, delete, release, archiveinfo."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from testbed.tape.problems import Problem
from testbed.tape.staging import Staging
from testbed.tape.store import StageRequest

log = logging.getLogger(__name__)

DISCOVERY = "/.well-known/wlcg-tape-rest-api"
API = "/api/v1"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/stage$"), "create"),
    ("GET", re.compile(r"^/stage/(?P<rid>[^/]+)$"), "status"),
    ("DELETE", re.compile(r"^/stage/(?P<rid>[^/]+)$"), "delete"),
    ("POST", re.compile(r"^/stage/(?P<rid>[^/]+)/cancel$"), "cancel"),
    ("POST", re.compile(r"^/release/(?P<rid>[^/]+)$"), "release"),
    ("POST", re.compile(r"^/archiveinfo$"), "archiveinfo"),
]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status, headers, content_type="application/json")


def _body(req: Request) -> Any:
    raw = req.get_data()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Problem(400, f"request body is not valid JSON: {exc}") from exc


def _wants_one_l(req: Request) -> bool:
    """gfal2 (libdavix) up to 2.21 only understands the state spelled CANCELED."""
    agent = req.headers.get("User-Agent", "").lower()
    return "davix" in agent or "gfal2" in agent


def _epoch(t: float | None) -> int | None:
    return int(t) if t is not None else None


def render_status(req: StageRequest, one_l: bool = False,
                  on_disk: Callable[[str], bool] = lambda _: True) -> dict[str, Any]:
    """Return the JSON document of a stage request (onDisk only for completed files still in the buffer)."""
    files = []
    for f in req.files:
        item: dict[str, Any] = {"path": f.path}
        state = "CANCELED" if (one_l and f.state == "CANCELLED") else f.state
        item["state"] = state
        if f.error:
            item["error"] = f.error
        if f.state == "COMPLETED" and f.norm is not None and on_disk(f.norm):
            item["onDisk"] = True
        if f.started_at is not None:
            item["startedAt"] = _epoch(f.started_at)
        if f.finished_at is not None:
            item["finishedAt"] = _epoch(f.finished_at)
        files.append(item)
    doc: dict[str, Any] = {"id": req.id, "createdAt": _epoch(req.created_at), "startedAt": _epoch(req.started_at),
                           "files": files}
    if req.completed_at is not None:
        doc["completedAt"] = _epoch(req.completed_at)
    return doc


class TapeRest:
    """Handles the Tape REST API requests."""

    def __init__(self, staging: Staging, sitename: str) -> None:
        self.staging = staging
        self.sitename = sitename

    def discovery(self, req: Request) -> Response:
        """Announce the v1 endpoint (absolute URI built from the Host the client used)."""
        if req.method not in ("GET", "HEAD"):
            raise Problem(405, "discovery answers GET only", {"Allow": "GET, HEAD"})
        base = req.host_url.rstrip("/")
        return _json({"sitename": self.sitename,
                      "description": "CYGNO testbed tape endpoint (disk buffer + simulated tape)",
                      "endpoints": [{"uri": base + API, "version": "v1", "metadata": {}}]})

    def handle(self, req: Request, sub: str) -> Response:
        """Dispatch a request below /api/v1 (trailing slashes accepted, as gfal2 sends them)."""
        sub = sub.rstrip("/") or "/"
        allowed = []
        for method, pattern, name in _ROUTES:
            m = pattern.match(sub)
            if m is None:
                continue
            if method != req.method:
                allowed.append(method)
                continue
            return getattr(self, "do_" + name)(req, **m.groupdict())
        if allowed:
            raise Problem(405, f"{req.method} is not allowed on {API}{sub}", {"Allow": ", ".join(allowed)})
        raise Problem(404, f"no Tape REST API resource at {API}{sub}")

    def do_create(self, req: Request) -> Response:
        """POST /stage: create a stage request."""
        rid = self.staging.create(_body(req))
        location = req.host_url.rstrip("/") + f"{API}/stage/{rid}"
        return _json({"requestId": rid}, 201, {"Location": location})

    def do_status(self, req: Request, rid: str) -> Response:
        """GET /stage/{id}: the progress of a stage request."""
        return _json(render_status(self.staging.status(rid), _wants_one_l(req), self.staging.on_disk))

    def do_delete(self, req: Request, rid: str) -> Response:
        """DELETE /stage/{id}: cancel and forget a request."""
        self.staging.delete(rid)
        return Response(b"", 200)

    def do_cancel(self, req: Request, rid: str) -> Response:
        """POST /stage/{id}/cancel: cancel some files of a request."""
        self.staging.cancel(rid, _body(req))
        return Response(b"", 200)

    def do_release(self, req: Request, rid: str) -> Response:
        """POST /release/{id}: drop the pins of some files."""
        self.staging.release(rid, _body(req))
        return Response(b"", 200)

    def do_archiveinfo(self, req: Request) -> Response:
        """POST /archiveinfo: the locality of each path."""
        return _json(self.staging.archiveinfo(_body(req)))
