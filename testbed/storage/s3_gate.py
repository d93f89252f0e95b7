"""WSGI gate in front of moto: health, refusal of unsigned/SigV2/admin requests, presigned-URL checks."""

from __future__ import annotations

import base64
import io
import json
import logging
import posixpath
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote
from xml.sax.saxutils import escape

from testbed.storage import sigv4
from testbed.storage.health import S3_HEALTH_PATH as HEALTH_PATH
from testbed.storage.s3_listing import reorder_listing

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: called after a mutating request succeeded, with (method, bucket, key-or-None)
MutationHook = Callable[[str, str, str | None], None]
MUTATING = frozenset({"PUT", "POST", "DELETE"})
#: (bucket, upload id, part numbers) -> full-object checksum of those parts' bytes, {"CRC32C": base64} (or empty)
PartsChecksum = Callable[[str, str, list[int]], dict[str, str]]
#: the additional checksums S3 checks on upload (x-amz-checksum-<name>); moto stores them without checking
CHECKSUM_HEADERS = {"HTTP_X_AMZ_CHECKSUM_CRC32C": "CRC32C", "HTTP_X_AMZ_CHECKSUM_CRC32": "CRC32",
                    "HTTP_X_AMZ_CHECKSUM_SHA1": "SHA1", "HTTP_X_AMZ_CHECKSUM_SHA256": "SHA256"}


def body_checksum(body: bytes, algorithm: str) -> str:
    """S3's base64 spelling of a checksum of `body` (CRC32C from google-crc32c: moto may fall back to CRC32)."""
    if algorithm == "CRC32C":
        import google_crc32c

        return base64.b64encode(google_crc32c.value(body).to_bytes(4, "big")).decode()
    from moto.s3.utils import compute_checksum

    value = compute_checksum(body, algorithm)
    return value.decode() if isinstance(value, bytes) else value


def check_upload_checksum(environ: dict[str, Any]) -> tuple[str, str] | None:
    """Verify the x-amz-checksum-* header of an object or part upload against its body, as S3 does.

    Returns (code, message) to refuse it with, or None; the body is read once and handed on to moto.
    """
    declared = [(h, a) for h, a in CHECKSUM_HEADERS.items() if environ.get(h)]
    if not declared or environ.get("HTTP_X_AMZ_COPY_SOURCE"):
        return None
    if "STREAMING" in environ.get("HTTP_X_AMZ_CONTENT_SHA256", "") or "aws-chunked" in environ.get(
            "HTTP_CONTENT_ENCODING", ""):
        return "InvalidRequest", "declare x-amz-checksum-* with a plain (not aws-chunked) body on this site"
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    for header, algorithm in declared:
        if body_checksum(body, algorithm) != environ[header]:
            return "BadDigest", f"The {algorithm} you specified did not match the calculated checksum."
    return None


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
        on_mutation: MutationHook | None = None, parts_checksum: PartsChecksum | None = None,
    ) -> None:
        self.app = app
        self.access_key = access_key
        self.secret_key = secret_key
        self.buckets = buckets
        self.on_mutation = on_mutation
        self.parts_checksum = parts_checksum

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
        if method == "PUT":
            refused_checksum = check_upload_checksum(environ)
            if refused_checksum is not None:
                return _error(start_response, "400 Bad Request", *refused_checksum)
        elif method == "POST":
            refused_completion = self._check_completion_checksum(environ, path)
            if refused_completion is not None:
                return _error(start_response, "400 Bad Request", "BadDigest", refused_completion)
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

    def _check_completion_checksum(self, environ: dict[str, Any], path: str) -> str | None:
        """CompleteMultipartUpload with a declared full-object checksum: it must be the checksum of the parts it
        lists, computed from their stored bytes, else the completion is refused and the upload stays open (S3)."""
        declared = {a: environ[h] for h, a in CHECKSUM_HEADERS.items() if environ.get(h)}
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        bucket, _ = bucket_and_key(path)
        if not declared or self.parts_checksum is None or not bucket or "uploadId" not in query:
            return None
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        parts = [int(n) for n in re.findall(rb"<PartNumber>\s*(\d+)\s*</PartNumber>", body)]
        computed = self.parts_checksum(bucket, query["uploadId"], parts)
        for algorithm, value in declared.items():
            if algorithm in computed and computed[algorithm] != value:
                log.warning("refused completion of %s: %s %s declared, %s computed", path, algorithm, value,
                            computed[algorithm])
                return f"The {algorithm} you specified did not match the calculated checksum."
        return None
