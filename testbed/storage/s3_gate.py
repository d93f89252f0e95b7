"""WSGI gate in front of moto: health, refusal of unsigned/SigV2/admin requests, presigned-URL checks, STS.

With a token verifier the gate also offers STS AssumeRoleWithWebIdentity (s3_sts.py) and accepts the temporary
credentials it mints: it verifies their signatures itself, authorises by the token's scopes, and hands the
request to moto re-signed with the site's own key pair.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import posixpath
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote
from xml.sax.saxutils import escape

from testbed.auth import TokenVerifier
from testbed.storage import s3_sts, sigv4
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


def _sts_error(start_response: Callable[..., Any], err: s3_sts.StsError) -> list[bytes]:
    body = s3_sts.error_xml(err)
    start_response(err.status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def _check_payload_hash(environ: dict[str, Any]) -> sigv4.SignatureError | None:
    """A signed body hash (hex x-amz-content-sha256) must be the body's: moto does not check it."""
    declared = environ.get("HTTP_X_AMZ_CONTENT_SHA256", "")
    if not re.fullmatch(r"[0-9a-f]{64}", declared):
        return None  # UNSIGNED-PAYLOAD, STREAMING-* (moto decodes aws-chunked bodies)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    if hashlib.sha256(body).hexdigest() != declared:
        return sigv4.SignatureError("XAmzContentSHA256Mismatch",
                                    "The provided 'x-amz-content-sha256' header does not match what was computed.")
    return None


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
        token_verifier: TokenVerifier | None = None, exists: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.app = app
        self.access_key = access_key
        self.secret_key = secret_key
        self.buckets = buckets
        self.on_mutation = on_mutation
        self.parts_checksum = parts_checksum
        self.token_verifier = token_verifier
        self.exists = exists or (lambda _bucket, _key: True)  # unknown: treat every write as an overwrite
        self.temporary = s3_sts.CredentialStore()

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
        if path == "/" and method == "POST" and not authorization:
            try:
                params = s3_sts.sts_params(environ)
                if params is not None:
                    return self._sts(start_response, params)
            except s3_sts.StsError as err:
                return _sts_error(start_response, err)
        temporary = self._temporary_key(environ, authorization, query)
        if temporary:
            refused = self._check_temporary(environ, method, path, query, authorization, temporary)
            if refused is not None:
                log.info("refused %s %s with temporary credentials %s: %s", method, path, temporary,
                         refused.message)
                return _error(start_response, "403 Forbidden", refused.code, refused.message)
        elif authorization:
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

    def _sts(self, start_response: Callable[..., Any], params: dict[str, str]) -> list[bytes]:
        """Answer an STS request: temporary credentials for a valid token, or an STS ErrorResponse."""
        if self.token_verifier is None:
            raise s3_sts.StsError("400 Bad Request", "InvalidAction",
                                  "STS is not offered by this site (it has no --token-issuer)")
        creds, identity = s3_sts.assume_role_with_web_identity(params, self.token_verifier, self.temporary)
        body = s3_sts.response_xml(creds, identity)
        start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
        return [body]

    def _temporary_key(self, environ: dict[str, Any], authorization: str, query: str) -> str | None:
        """The access key id of a request signed with temporary (STS) credentials, else None."""
        try:
            if authorization:
                key = sigv4.parse_header_auth(authorization).access_key
                token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN")
            elif sigv4.is_query_signed(query):
                key = sigv4.parse_query_auth(query).access_key
                token = dict(parse_qsl(query)).get("X-Amz-Security-Token")
            else:
                return None
        except sigv4.SignatureError:
            return None  # refused on the usual path
        return key if key != self.access_key and (token or self.temporary.get(key)) else None

    def _check_temporary(
        self, environ: dict[str, Any], method: str, path: str, query: str, authorization: str, access_key: str
    ) -> sigv4.SignatureError | None:
        """Verify a request signed with temporary credentials, authorise it by its token's scopes, and re-sign it
        with the site's key pair for moto (the session token removed)."""
        headers = _headers(environ)
        try:
            if authorization:
                creds = self.temporary.check(access_key, environ.get("HTTP_X_AMZ_SECURITY_TOKEN", ""))
                auth = sigv4.parse_header_auth(authorization)
                sigv4.verify_header_signature(auth, creds.secret_key, method,
                                              path + ("?" + query if query else ""), headers)
                refused_payload = _check_payload_hash(environ)
                if refused_payload:
                    return refused_payload
            else:
                creds = self.temporary.check(access_key, dict(parse_qsl(query)).get("X-Amz-Security-Token", ""))
        except s3_sts.StsError as err:
            return sigv4.SignatureError(err.code, err.message)
        except sigv4.SignatureError as err:
            return err
        bucket, key = bucket_and_key(path)
        params = {k: v for k, v in parse_qsl(query, keep_blank_values=True) if k not in sigv4.AUTH_PARAMS}
        needs = s3_sts.required_permissions(method, bucket, key, params, headers, self.exists)
        if needs is None:
            return sigv4.SignatureError("AccessDenied", f"{method} of this resource is not granted to tokens")
        for operation, target in needs:
            if not creds.allows(operation, target):
                return sigv4.SignatureError("AccessDenied", f"the token has no storage.{operation} scope for "
                                                            f"{target}")
        if ("create", f"/{bucket}/{key}") in needs and method == "PUT" and "uploadId" not in params:
            environ["HTTP_IF_NONE_MATCH"] = "*"  # create-only: never overwrite, even in a race
        if not authorization:
            return self._resign_presigned(environ, method, path, query, creds.access_key, creds.secret_key)
        environ.pop("HTTP_X_AMZ_SECURITY_TOKEN", None)
        environ["HTTP_AUTHORIZATION"] = sigv4.resign_header(
            auth, self.access_key, self.secret_key, method, path + ("?" + query if query else ""), _headers(environ))
        return None

    def _resign_presigned(
        self, environ: dict[str, Any], method: str, path: str, query: str,
        access_key: str | None = None, secret_key: str | None = None,
    ) -> sigv4.SignatureError | None:
        """Verify a presigned request (by default with the site's key pair) and turn it into a header-signed one
        under the site's key pair for moto's IAM check."""
        try:
            auth = sigv4.verify_query_signature(
                access_key or self.access_key, secret_key or self.secret_key, method, path, query, _headers(environ))
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
