"""WSGI gate in front of moto: health, refusal of unsigned/SigV2/admin requests, presigned-URL checks."""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from testbed.storage import sigv4
from testbed.storage.health import S3_HEALTH_PATH as HEALTH_PATH
from testbed.storage.s3_listing import reorder_listing

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: called after a mutating request succeeded, with (method, bucket, key-or-None)
MutationHook = Callable[[str, str, str | None], None]
MUTATING = frozenset({"PUT", "POST", "DELETE"})


def _error(start_response: Callable[..., Any], status: str, code: str, message: str) -> list[bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
    ).encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def raw_path(environ: dict[str, Any]) -> str:
    """The request path as the client sent it (still percent-encoded)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
    if "://" in raw.split("?", 1)[0]:
        raw = "/" + raw.split("://", 1)[1].partition("/")[2]
    return raw.split("?", 1)[0] or "/"


def is_moto_admin(environ: dict[str, Any], path: str) -> bool:
    """Whether a request reaches moto's admin API (`/moto-api`), however its path is encoded or padded."""
    for candidate in (path, environ.get("PATH_INFO", "")):
        text = candidate
        for _ in range(4):  # %256d... decodes in steps
            text = unquote(text)
        first = posixpath.normpath("/" + text.replace("\\", "/")).lstrip("/").split("/", 1)[0]
        if first.lower() == "moto-api":
            return True
    return False


def bucket_and_key(path: str) -> tuple[str | None, str | None]:
    """Split a path-style S3 path into (bucket, key)."""
    parts = unquote(path).lstrip("/").split("/", 1)
    bucket = parts[0] or None
    key = parts[1] if len(parts) > 1 and parts[1] else None
    return bucket, key


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    out = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            out[name.replace("_", "-").lower()] = environ[name]
    return out


class S3Gate:
    """Front moto with the checks moto's server mode lacks; moto's IAM still checks header signatures."""

    def __init__(
        self, app: WsgiApp, access_key: str, secret_key: str, buckets: list[str],
        on_mutation: MutationHook | None = None,
    ) -> None:
        self.app = app
        self.access_key = access_key
        self.secret_key = secret_key
        self.buckets = buckets
        self.on_mutation = on_mutation

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve one request."""
        path = raw_path(environ)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if path == HEALTH_PATH:
            body = json.dumps({"service": "s3", "buckets": self.buckets}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if is_moto_admin(environ, path):
            return _error(start_response, "404 Not Found", "NotFound", "moto admin API is disabled")
        query = environ.get("QUERY_STRING", "")
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if authorization:
            if not authorization.startswith(sigv4.ALGORITHM):
                return _error(start_response, "403 Forbidden", "AccessDenied",
                              "Only AWS4-HMAC-SHA256 signatures are accepted")
        elif sigv4.is_query_signed(query):
            refused = self._resign_presigned(environ, method, path, query)
            if refused is not None:
                log.info("refused presigned %s %s: %s", method, path, refused.message)
                return _error(start_response, "403 Forbidden", refused.code, refused.message)
        elif method != "OPTIONS":
            return _error(start_response, "403 Forbidden", "AccessDenied", "Anonymous access is not allowed")
        return self._forward(environ, start_response, method, path)

    def _resign_presigned(
        self, environ: dict[str, Any], method: str, path: str, query: str
    ) -> sigv4.SignatureError | None:
        """Verify a presigned request and turn it into a header-signed one for moto's IAM check."""
        try:
            auth = sigv4.verify_query_signature(
                self.access_key, self.secret_key, method, path, query, _headers(environ))
        except sigv4.SignatureError as err:
            return err
        rest = sigv4.strip_auth_params(query)
        path_and_query = path + ("?" + rest if rest else "")
        host = environ.get("HTTP_HOST", "")
        signed = sigv4.header_auth(self.access_key, self.secret_key, auth.region, method, path_and_query, host)
        environ["QUERY_STRING"] = rest
        environ["RAW_URI"] = environ["REQUEST_URI"] = path_and_query
        environ["HTTP_AUTHORIZATION"] = signed["Authorization"]
        environ["HTTP_X_AMZ_DATE"] = signed["X-Amz-Date"]
        environ["HTTP_X_AMZ_CONTENT_SHA256"] = signed["X-Amz-Content-SHA256"]
        return None

    def _forward(
        self, environ: dict[str, Any], start_response: Callable[..., Any], method: str, path: str
    ) -> Iterable[bytes]:
        bucket, key = bucket_and_key(path)
        captured: list[Any] = []

        def capture(st: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], Any]:
            captured[:] = [st, headers]
            return lambda _data: None

        result = self.app(environ, capture)
        status, headers = captured
        if method == "GET" and bucket and key is None and status.startswith("200"):
            try:
                body = reorder_listing(b"".join(result))
            finally:
                getattr(result, "close", lambda: None)()
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
            result = [body]
        if self.on_mutation and bucket and method in MUTATING and status[:1] == "2":
            try:
                self.on_mutation(method, bucket, key)
            except Exception:  # persistence must never break the S3 answer
                log.exception("could not persist %s %s/%s", method, bucket, key)
        start_response(status, headers)
        return result
