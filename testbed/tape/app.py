"""The WSGI application: routes discovery, Tape REST API, metrics and WebDAV."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.wrappers import Request, Response

from testbed.auth import AuthError, TokenVerifier, authenticate
from testbed.tape.config import TapeConfig
from testbed.tape.lifecycle import Lifecycle
from testbed.tape.locking import StateLock
from testbed.tape.metrics import Metrics
from testbed.tape.namespace import Namespace
from testbed.tape.paths import BadPath, normalize
from testbed.tape.problems import Problem
from testbed.tape.staging import Staging
from testbed.tape.store import Store
from testbed.tape.taperest import API, DISCOVERY, TapeRest
from testbed.tape.webdav import WebDav
from testbed.tokens import has_storage_scope

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "PROPFIND", "OPTIONS"})


def request_path(req: Request) -> str:
    """Return the decoded request path exactly as sent (werkzeug's ``path`` drops repeated leading slashes)."""
    info = req.environ.get("PATH_INFO", "")
    return info.encode("latin-1").decode("utf-8", "replace") or "/"


class TapeApp:
    """WSGI callable of one tape endpoint."""

    def __init__(self, config: TapeConfig, start_worker: bool = True, verify_token: TokenVerifier | None = None,
                 token_base: str = "/") -> None:
        config.prepare()
        self.config = config
        self.verify_token = verify_token
        self.token_base = token_base  # token scope paths are relative to it
        self.store = Store(config.db_path)
        self.ns = Namespace(config, self.store, StateLock(config.root / "state.lock"))
        self.staging = Staging(self.ns, self.store, config.pin_lifetime)
        self.rest = TapeRest(self.staging, config.sitename)
        self.dav = WebDav(self.ns)
        self.metrics = Metrics(self.store)
        self.lifecycle = Lifecycle(config, self.ns, self.staging)
        if start_worker:
            self.lifecycle.start()

    def dispatch(self, req: Request) -> Response:
        """Return the response to one request."""
        raw = request_path(req)
        if req.method not in READ_METHODS and raw.rstrip("/") != API + "/archiveinfo":
            self.check_caller(req, raw)
        if raw.rstrip("/") == DISCOVERY:
            return self.rest.discovery(req)
        if raw == API or raw.startswith(API + "/"):
            return self.rest.handle(req, raw[len(API):])
        if raw == "/metrics" and req.method == "GET":
            return Response(self.metrics.render(), 200, content_type=CONTENT_TYPE_LATEST)
        try:
            path = normalize(raw)
        except BadPath as exc:
            raise Problem(400, str(exc)) from exc
        return self.dav.handle(req, path)

    def check_caller(self, req: Request, raw: str) -> None:
        """Writes, deletes and Tape REST stage/release/cancel need a client certificate of the testbed CA, or a
        bearer token whose WLCG storage scopes cover the paths."""
        try:
            caller = authenticate(req.environ, frozenset(), self.verify_token)
        except AuthError as exc:
            log.warning("refused %s %s from %s: %s", req.method, req.path, req.remote_addr, exc)
            raise Problem(401, f"{req.method} needs a credential: {exc}",
                          {"WWW-Authenticate": 'Bearer realm="tape"'}) from None
        if caller.method == "token":
            operation, paths = self._token_operation(req, raw)
            missing = [p for p in paths if not has_storage_scope(caller.scopes, operation, p, self.token_base)]
            if missing:
                log.warning("refused %s %s to %s: no storage.%s scope for %s", req.method, req.path, caller.dn,
                            operation, missing[0])
                raise Problem(403, f"bearer token has no storage.{operation} scope covering {missing[0]}")
        log.info("%s %s by %s (%s)", req.method, req.path, caller.dn, caller.method)

    @staticmethod
    def _token_operation(req: Request, raw: str) -> tuple[str, list[str]]:
        """The WLCG storage operation a request needs and the paths it touches."""
        if raw == API or raw.startswith(API + "/"):
            body = req.get_json(silent=True, cache=True) or {}
            files = body.get("files") or [] if isinstance(body, dict) else []
            paths = [f.get("path", "") for f in files if isinstance(f, dict)]
            paths += [p for p in (body.get("paths") or [] if isinstance(body, dict) else []) if isinstance(p, str)]
            return "stage", paths or ["/"]
        return ("create" if req.method in ("PUT", "MKCOL") else "modify"), [raw]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        req = Request(environ)
        try:
            resp = self.dispatch(req)
        except Problem as exc:
            resp = exc.response(req.path)
            if exc.status >= 500 and exc.status != 503:
                log.error("%s %s: %s", req.method, req.path, exc.detail)
        except Exception:
            log.exception("%s %s failed", req.method, req.path)
            resp = Problem(500, "internal error").response(req.path)
        self.metrics.requests.labels(req.method, str(resp.status_code)).inc()
        return resp(environ, start_response)


def create_app(config: TapeConfig, start_worker: bool = True, verify_token: TokenVerifier | None = None,
               token_base: str = "/") -> TapeApp:
    """Build the WSGI application of a tape endpoint (and start its background worker)."""
    return TapeApp(config, start_worker, verify_token, token_base)
