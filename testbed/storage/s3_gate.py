"""WSGI gate of an S3 site: health, authentication of every request, then the S3 operations (s3_api.py).

Accepted: SigV4 header signatures and presigned URLs (with expiry) under the site's key pair, and, with a token
verifier, STS AssumeRoleWithWebIdentity (s3_sts.py) and the temporary credentials it mints, authorised by the
token's scopes. Refused: unsigned, SigV2 and unknown-key requests, and paths of moto's old admin API.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote

from testbed.auth import TokenVerifier
from testbed.storage import s3_sts, sigv4
from testbed.storage.health import S3_HEALTH_PATH as HEALTH_PATH
from testbed.storage.s3_api import S3Api, error_body

log = logging.getLogger(__name__)


def _error(start_response: Callable[..., Any], status: str, code: str, message: str) -> list[bytes]:
    body = error_body(code, message)
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def _sts_error(start_response: Callable[..., Any], err: s3_sts.StsError) -> list[bytes]:
    body = s3_sts.error_xml(err)
    start_response(err.status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def raw_path(environ: dict[str, Any]) -> str:
    """The request path as the client sent it (still percent-encoded)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
    if "://" in raw.split("?", 1)[0]:
        raw = "/" + raw.split("://", 1)[1].partition("/")[2]
    return raw.split("?", 1)[0] or "/"


def is_moto_admin(environ: dict[str, Any], path: str) -> bool:
    """Whether a request aims at moto's admin API (`/moto-api`), however its path is encoded or padded: it stays
    closed (404) now that the site no longer runs moto, so old probes get the same answer."""
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
    """Authenticate every request (see the module docstring) and hand it to the S3 operations."""

    def __init__(self, api: S3Api, access_key: str, secret_key: str,
                 token_verifier: TokenVerifier | None = None) -> None:
        self.api = api
        self.access_key = access_key
        self.secret_key = secret_key
        self.token_verifier = token_verifier
        self.temporary = s3_sts.CredentialStore()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve one request."""
        path = raw_path(environ)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if path == HEALTH_PATH:
            body = json.dumps({"service": "s3", "buckets": sorted(self.api.store.buckets)}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if is_moto_admin(environ, path):
            return _error(start_response, "404 Not Found", "NotFound", "there is no admin API")
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
        elif authorization:
            refused = self._check_header(environ, method, path, query, authorization)
        elif sigv4.is_query_signed(query):
            refused = self._check_presigned(environ, method, path, query, self.access_key, self.secret_key)
        else:
            refused = sigv4.SignatureError("AccessDenied", "Anonymous access is not allowed")
        if refused is not None:
            log.info("refused %s %s%s: %s", method, path, f" (temporary key {temporary})" if temporary else "",
                     refused.message)
            return _error(start_response, "403 Forbidden", refused.code, refused.message)
        bucket, key = bucket_and_key(path)
        params = {k: v for k, v in parse_qsl(query, keep_blank_values=True) if k not in sigv4.AUTH_PARAMS}
        return self.api(environ, start_response, bucket, key, params)

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

    def _check_header(self, environ: dict[str, Any], method: str, path: str, query: str, authorization: str,
                      access_key: str | None = None, secret_key: str | None = None) -> sigv4.SignatureError | None:
        """Verify a header-signed request (SigV4 only) under one key pair, by default the site's. A signed hex
        payload hash is checked against the body while it streams (s3_body.py)."""
        try:
            auth = sigv4.parse_header_auth(authorization)
            if auth.access_key != (access_key or self.access_key):
                raise sigv4.SignatureError("InvalidAccessKeyId",
                                           "The AWS Access Key Id you provided does not exist in our records.")
            sigv4.verify_header_signature(auth, secret_key or self.secret_key, method,
                                          path + ("?" + query if query else ""), _headers(environ))
        except sigv4.SignatureError as err:
            return err
        return None

    def _check_temporary(
        self, environ: dict[str, Any], method: str, path: str, query: str, authorization: str, access_key: str
    ) -> sigv4.SignatureError | None:
        """Verify a request signed with temporary credentials and authorise it by its token's scopes."""
        headers = _headers(environ)
        try:
            if authorization:
                creds = self.temporary.check(access_key, environ.get("HTTP_X_AMZ_SECURITY_TOKEN", ""))
                refused = self._check_header(environ, method, path, query, authorization, creds.access_key,
                                             creds.secret_key)
            else:
                creds = self.temporary.check(access_key, dict(parse_qsl(query)).get("X-Amz-Security-Token", ""))
                refused = self._check_presigned(environ, method, path, query, creds.access_key, creds.secret_key)
        except s3_sts.StsError as err:
            return sigv4.SignatureError(err.code, err.message)
        if refused is not None:
            return refused
        bucket, key = bucket_and_key(path)
        params = {k: v for k, v in parse_qsl(query, keep_blank_values=True) if k not in sigv4.AUTH_PARAMS}
        needs = s3_sts.required_permissions(method, bucket, key, params, headers, self.api.store.exists)
        if needs is None:
            return sigv4.SignatureError("AccessDenied", f"{method} of this resource is not granted to tokens")
        for operation, target in needs:
            if not creds.allows(operation, target):
                return sigv4.SignatureError("AccessDenied", f"the token has no storage.{operation} scope for "
                                                            f"{target}")
        if ("create", f"/{bucket}/{key}") in needs and method == "PUT" and "uploadId" not in params:
            environ["HTTP_IF_NONE_MATCH"] = "*"  # create-only: never overwrite, even in a race
        return None

    def _check_presigned(self, environ: dict[str, Any], method: str, path: str, query: str, access_key: str,
                         secret_key: str) -> sigv4.SignatureError | None:
        """Verify a presigned request (signature, expiry) under one key pair."""
        try:
            sigv4.verify_query_signature(access_key, secret_key, method, path, query, _headers(environ))
        except sigv4.SignatureError as err:
            return err
        return None
