"""The FTS3 REST endpoints (the subset Rucio and the fts3 client use), as a Flask app."""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, jsonify, request

from testbed.auth import AuthError, Caller, authenticate

from . import clock, states, urls, views
from .endpoints import EndpointError
from .store import DuplicateJob
from .submission import Identity, SubmissionError, build_job

if TYPE_CHECKING:
    from .service import FtsService

log = logging.getLogger(__name__)

API_VERSION = {"major": 3, "minor": 12, "patch": 0}
SCHEMA_VERSION = {"major": 8, "minor": 0, "patch": 0}
_SLASHES = re.compile(r"/{2,}")


class MergeSlashes:
    """WSGI middleware: `//jobs` (what the fts3 client sends) is served as `/jobs`."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Collapse repeated slashes in PATH_INFO."""
        environ["PATH_INFO"] = _SLASHES.sub("/", environ.get("PATH_INFO", "") or "/")
        return self.app(environ, start_response)


def _error(status: int, message: str) -> tuple[Response, int]:
    phrase = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
              500: "Internal Server Error"}.get(status, "")
    return jsonify({"status": f"{status} {phrase}", "message": message}), status


def _ids(text: str) -> list[str]:
    return [i for i in (p.strip() for p in text.split(",")) if i]


def create_app(service: FtsService) -> Flask:
    """Build the Flask app serving `service`."""
    app = Flask("testbed.fts")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.wsgi_app = MergeSlashes(app.wsgi_app)  # type: ignore[method-assign]
    store = service.store

    @app.before_request
    def check_caller() -> Any:
        if request.path == "/health":
            return None
        try:
            g.caller = authenticate(request.environ, service.admins, service.verify_token)
            if g.caller.method == "token" and g.caller.dn in service.token_subjects:
                dn = service.token_subjects[g.caller.dn]
                g.caller = replace(g.caller, dn=dn, admin=dn in service.admins)
        except AuthError as exc:
            log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote_addr, exc)
            return _error(401, str(exc))
        return None

    def caller() -> Caller:
        return g.caller

    def identity() -> Identity:
        return Identity(user_dn=caller().dn, vo=service.vo)

    def may_see(job: dict[str, Any]) -> bool:
        return caller().admin or job["user_dn"] == caller().dn

    def check_url(url: str, where: str) -> None:
        service.endpoints.check(url, where)
        if urls.uses_service_keys(url, service.s3_hosts) and not (caller().admin or caller().dn in service.s3_users):
            raise EndpointError(f"{where}: an unsigned URL of S3 host {urls.host_of(url)} would be signed with this "
                                "service's keys, which only its S3 users may have; send a presigned URL")

    def refused(job_id: str) -> tuple[Response, int]:
        log.warning("refused %s %s to %s: not the owner", request.method, request.path, caller().dn)
        return _error(403, f"job {job_id} belongs to another user: only its owner and admins may see or change it")

    def job_with_files(job_id: str, keys: list[str] | None) -> dict[str, Any] | None:
        job = store.get_job(job_id)
        if job is None:
            return None
        if not may_see(job):
            return {"job_id": job_id, "job_state": None, "http_status": "403 Forbidden",
                    "http_message": f"job {job_id} belongs to another user"}
        view = views.job_view(job)
        if keys is not None:
            view["files"] = views.select_file_keys(store.get_files(job_id), keys or None)
        return view

    @app.get("/")
    def root() -> Any:
        return jsonify({"api": API_VERSION, "schema": SCHEMA_VERSION, "delegation": {"major": 1, "minor": 0, "patch": 0},
                        "_links": {"jobs": {"href": "/jobs"}, "whoami": {"href": "/whoami"}}})

    @app.get("/health")
    def health() -> Any:
        return jsonify({"status": "ok"})

    @app.get("/whoami")
    def whoami() -> Any:
        who = identity()
        return jsonify({"user_dn": who.user_dn, "dn": [who.user_dn], "vos": [who.vo],
                        "vos_id": [], "voms_cred": [], "roles": [], "delegation_id": who.delegation_id,
                        "base_id": who.base_id, "level": {"transfer": "all" if caller().admin else "vo"},
                        "is_root": caller().admin, "method": caller().method})

    @app.get("/delegation/<dlg_id>")
    def delegation(dlg_id: str) -> Any:
        until = (clock.utcnow() + dt.timedelta(days=365)).strftime(clock.FTS_TIME_FORMAT)
        return jsonify({"delegation_id": dlg_id, "user_dn": caller().dn, "termination_time": until})

    @app.get("/metrics")
    def metrics() -> Any:
        return Response(service.metrics.render(), mimetype="text/plain; version=0.0.4")

    @app.get("/ban/se")
    @app.get("/ban/dn")
    def bans() -> Any:
        return jsonify([])

    @app.get("/config/se")
    def config_se() -> Any:
        return jsonify({})

    @app.post("/jobs")
    def submit() -> Any:
        body = request.get_json(force=True, silent=True)
        if body is None:
            return _error(400, "body: not valid JSON")
        try:
            job, files = build_job(body, identity(), service.defaults)
            for row in files:
                for key, where in (("source_surl", "sources"), ("dest_surl", "destinations")):
                    check_url(row[key], f"files[{row['file_index']}].{where}")
        except EndpointError as exc:
            log.warning("refused a submission from %s: %s", caller().dn, exc)
            return _error(403, str(exc))
        except SubmissionError as exc:
            return _error(400, str(exc))
        try:
            store.insert_job(job, files)
        except DuplicateJob:
            return _error(409, f"A job with the id {job['job_id']} already exists")
        service.metrics.jobs.inc()
        service.scheduler.wake()
        log.info("job %s submitted: %d file row(s), type %s", job["job_id"], len(files), job["job_type"])
        return jsonify({"job_id": job["job_id"]})

    @app.get("/jobs")
    def list_jobs() -> Any:
        wanted = _ids(request.args.get("state_in", ""))
        limit = int(request.args.get("limit", 1000))
        owner = None if caller().admin else caller().dn
        return jsonify([views.job_view(j) for j in store.list_jobs(wanted or None, limit, owner)])

    @app.get("/jobs/<job_ids>")
    def get_jobs(job_ids: str) -> Any:
        ids = _ids(job_ids)
        keys_arg = request.args.get("files")
        keys = None if keys_arg is None else _ids(keys_arg)
        if len(ids) == 1:
            view = job_with_files(ids[0], keys)
            if view is None:
                return jsonify(views.not_found(ids[0])), 404
            if view["job_state"] is None:
                return refused(ids[0])
            return jsonify(view)
        out, missing = [], False
        for job_id in ids:
            view = job_with_files(job_id, keys)
            if view is None or view["job_state"] is None:
                missing = True
                view = view or views.not_found(job_id)
            out.append(view)
        return jsonify(out), (207 if missing else 200)

    @app.get("/jobs/<job_id>/files")
    def get_files(job_id: str) -> Any:
        job = store.get_job(job_id)
        if job is None:
            return _error(404, f"No job with the id {job_id} has been found")
        if not may_see(job):
            return refused(job_id)
        return jsonify([views.file_view(f) for f in store.get_files(job_id)])

    @app.get("/jobs/<job_id>/files/<int:file_id>/retries")
    def get_retries(job_id: str, file_id: int) -> Any:
        row = store.get_file(file_id)
        if row is None or row["job_id"] != job_id:
            return _error(404, f"No file {file_id} in job {job_id}")
        if not may_see(store.get_job(job_id)):
            return refused(job_id)
        return jsonify([{"attempt": r["attempt"], "datetime": r["datetime"], "reason": r["reason"]}
                        for r in store.retries(file_id)])

    @app.get("/jobs/<job_id>/dm")
    def get_dm(job_id: str) -> Any:
        job = store.get_job(job_id)
        if job is None:
            return _error(404, f"No job with the id {job_id} has been found")
        if not may_see(job):
            return refused(job_id)
        return jsonify([])

    @app.delete("/jobs/<job_ids>")
    def cancel_jobs(job_ids: str) -> Any:
        ids = _ids(job_ids)
        out, missing = [], False
        if len(ids) == 1 and (job := store.get_job(ids[0])) is not None and not may_see(job):
            return refused(ids[0])
        for job_id in ids:
            job = store.get_job(job_id)
            if job is None or not may_see(job):
                missing = True
                out.append(views.not_found(job_id) if job is None else
                           {"job_id": job_id, "http_status": "403 Forbidden",
                            "http_message": f"job {job_id} belongs to another user"})
                continue
            service.scheduler.cancel(job_id)
            out.append(views.job_view(store.get_job(job_id)))
            log.info("job %s cancel requested", job_id)
        if len(ids) == 1:
            return (jsonify(out[0]), 404) if missing else jsonify(out[0])
        return jsonify(out), (207 if missing else 200)

    @app.delete("/jobs/<job_id>/files/<file_ids>")
    def cancel_files(job_id: str, file_ids: str) -> Any:
        job = store.get_job(job_id)
        if job is None:
            return _error(404, f"No job with the id {job_id} has been found")
        if not may_see(job):
            return refused(job_id)
        try:
            wanted = [int(i) for i in _ids(file_ids)]
        except ValueError:
            return _error(400, "file ids: must be integers")
        service.scheduler.cancel(job_id, wanted)
        rows = {f["file_id"]: f for f in store.get_files(job_id)}
        result = [rows[i]["file_state"] if i in rows else "File not found" for i in wanted]
        return jsonify(result[0] if len(result) == 1 else result)

    @app.post("/jobs/<job_id>")
    def modify_job(job_id: str) -> Any:
        job = store.get_job(job_id)
        if job is None:
            return _error(404, f"No job with the id {job_id} has been found")
        if not may_see(job):
            return refused(job_id)
        body = request.get_json(force=True, silent=True) or {}
        params = body.get("params", body) if isinstance(body, dict) else {}
        if "priority" not in params:
            return _error(400, "params.priority: required")
        try:
            priority = int(params["priority"])
        except (TypeError, ValueError):
            return _error(400, f"params.priority: {params['priority']!r} is not an integer")
        if not 1 <= priority <= 5:
            return _error(400, f"params.priority: {priority} is not between 1 and 5")
        if job["job_state"] in states.JOB_TERMINAL:
            view = views.job_view(job)
            view["http_message"] = f"Job is in a terminal state ({job['job_state']}): priority unchanged"
            return jsonify(view)
        store.set_priority(job_id, priority)
        service.scheduler.wake()
        view = views.job_view(store.get_job(job_id))
        view["http_message"] = f"Priority set to {priority}"
        log.info("job %s priority -> %d", job_id, priority)
        return jsonify(view)

    return app
