"""STS AssumeRoleWithWebIdentity at an S3 site, as MinIO offers it: a WLCG token becomes temporary S3 keys.

The token is checked by `WlcgTokenVerifier` (issuer, JWKS signature, audience = the site's host, expiry). Its
permissions, with bucket = the path's first component (the Rucio scope on the testbed), come from
- its `storage.*` scopes, when it has any (WLCG capability-based authorisation: the scopes alone decide), else
- its `wlcg.groups`, through the profile's `[[tokens.group_grants]]` (MinIO's claim-based policy: a group names
  what it may do; WLCG group semantics: only the groups listed count, a subgroup does not imply its parent).
Temporary credentials live only in this process's memory and expire with min(DurationSeconds, the token's
expiry). Secrets and tokens are never logged.
"""

from __future__ import annotations

import hmac
import io
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, unquote
from xml.sax.saxutils import escape

from cygno_dm.profile import load_profile
from cygno_dm.tokens import expiry
from testbed.auth import AuthError, TokenIdentity
from testbed.tokens import has_storage_scope

log = logging.getLogger(__name__)

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
ACTION = "AssumeRoleWithWebIdentity"
VERSION = "2011-06-15"
DEFAULT_DURATION = 3600
MIN_DURATION, MAX_DURATION = 900, 365 * 24 * 3600  # MinIO's (and AWS's) bounds for DurationSeconds
#: expired credentials are remembered this long, to answer ExpiredToken rather than InvalidAccessKeyId
EXPIRED_GRACE = 3600
STORAGE_OPS = ("read", "create", "modify")


class StsError(Exception):
    """An STS request refused: HTTP status, STS error code, one-line message."""

    def __init__(self, status: str, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class TempCredentials:
    """One set of temporary credentials and what its token allowed."""

    access_key: str
    secret_key: str
    session_token: str
    expires: float
    subject: str
    scopes: frozenset[str]

    def allows(self, operation: str, path: str) -> bool:
        """Whether the token's scopes allow `operation` (read, create, modify) on `/bucket[/key]`."""
        return has_storage_scope(self.scopes, operation, path)


class CredentialStore:
    """Temporary credentials by access key id, in memory only."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._by_key: dict[str, TempCredentials] = {}
        self._lock = threading.Lock()

    def mint(self, identity: TokenIdentity, expires: float) -> TempCredentials:
        """New random credentials for this token identity, valid until `expires` (epoch seconds)."""
        creds = TempCredentials("ASIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30),
                                secrets.token_urlsafe(48), expires, identity.subject, identity.scopes)
        with self._lock:
            now = self.clock()
            for key in [k for k, c in self._by_key.items() if c.expires + EXPIRED_GRACE < now]:
                del self._by_key[key]
            self._by_key[creds.access_key] = creds
        return creds

    def get(self, access_key: str) -> TempCredentials | None:
        """The credentials of this access key id (expired ones too, for the grace period), or None."""
        with self._lock:
            return self._by_key.get(access_key)

    def check(self, access_key: str, session_token: str) -> TempCredentials:
        """The live credentials for this key and session token, or StsError (S3 code) saying why not."""
        creds = self.get(access_key)
        if creds is None:
            raise StsError("403 Forbidden", "InvalidAccessKeyId",
                           "The AWS Access Key Id you provided does not exist in our records.")
        if not session_token or not hmac.compare_digest(session_token, creds.session_token):
            raise StsError("403 Forbidden", "InvalidToken", "The provided token is malformed or otherwise invalid.")
        if self.clock() >= creds.expires:
            raise StsError("403 Forbidden", "ExpiredToken", "The provided token has expired.")
        return creds


def sts_params(environ: dict[str, Any]) -> dict[str, str] | None:
    """The parameters of an STS request (`POST /` with Action in the query or form body), or None if not one."""
    if environ.get("REQUEST_METHOD", "").upper() != "POST":
        return None
    params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > 64 * 1024:
            raise StsError("400 Bad Request", "InvalidParameterValue", "request body too large for STS")
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # not STS after all: the body stays readable
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params if "Action" in params else None


@cache
def profile_grants() -> dict[str, tuple[str, ...]]:
    """group -> the storage scopes the profile ($CYGNO_DM_PROFILE, as for every testbed process) grants it."""
    tokens = load_profile().tokens
    grants: dict[str, tuple[str, ...]] = {}
    for grant in tokens.group_grants if tokens else ():
        grants[grant.group] = (*grants.get(grant.group, ()), *grant.scopes())
    return grants


def granted_scopes(identity: TokenIdentity, grants: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    """The storage scopes a token's credentials get: its own storage scopes if it has any, else its groups'."""
    own = frozenset(s for s in identity.scopes if s.partition(":")[0] in {f"storage.{op}" for op in STORAGE_OPS})
    return own or frozenset(s for group in identity.groups for s in grants.get(group, ()))


def assume_role_with_web_identity(
    params: dict[str, str], verify: Callable[[str], TokenIdentity], store: CredentialStore,
    grants: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[TempCredentials, TokenIdentity]:
    """Check the request and its token, and mint credentials; StsError (one-line reason) when refused.

    `grants` (group -> storage scopes) default to the profile's group grants."""
    if params.get("Action") != ACTION:
        raise StsError("400 Bad Request", "InvalidAction", f"Action: only {ACTION} is offered by this site")
    if params.get("Version") != VERSION:
        raise StsError("400 Bad Request", "InvalidParameterValue", f"Version: must be {VERSION}")
    if params.get("Policy"):
        raise StsError("400 Bad Request", "InvalidParameterValue", "Policy: session policies are not supported here")
    token = params.get("WebIdentityToken", "")
    if not token:
        raise StsError("400 Bad Request", "MissingParameter", "WebIdentityToken: required")
    duration = DEFAULT_DURATION
    if params.get("DurationSeconds"):
        try:
            duration = int(params["DurationSeconds"])
        except ValueError:
            duration = -1
        if not MIN_DURATION <= duration <= MAX_DURATION:
            raise StsError("400 Bad Request", "InvalidParameterValue",
                           f"DurationSeconds: must be an integer in {MIN_DURATION}..{MAX_DURATION}")
    try:
        identity = verify(token)
    except AuthError as exc:
        raise StsError("400 Bad Request", "InvalidIdentityToken", str(exc)) from None
    scopes = granted_scopes(identity, profile_grants() if grants is None else grants)
    if not scopes:
        raise StsError("403 Forbidden", "AccessDenied", "WebIdentityToken: no storage.read/create/modify scope and "
                       f"no group with a grant here (groups: {', '.join(identity.groups) or 'none'}), nothing to grant")
    expires = min(store.clock() + duration, expiry(token))  # a token the verifier accepted
    creds = store.mint(replace(identity, scopes=scopes), expires)
    log.info("STS: %s for sub=%s scopes=%s%s until %s", creds.access_key, identity.subject, " ".join(sorted(scopes)),
             "" if scopes <= identity.scopes else f" (granted to groups {','.join(identity.groups)})", iso(expires))
    return creds, identity


def iso(epoch: float) -> str:
    """ISO 8601 UTC time, as STS writes Expiration."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def response_xml(creds: TempCredentials, identity: TokenIdentity) -> bytes:
    """The AssumeRoleWithWebIdentityResponse document (MinIO's and AWS's form)."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<AssumeRoleWithWebIdentityResponse xmlns="{STS_NS}">'
        "<AssumeRoleWithWebIdentityResult><AssumedRoleUser><Arn></Arn><AssumeRoleId></AssumeRoleId>"
        "</AssumedRoleUser><Credentials>"
        f"<AccessKeyId>{creds.access_key}</AccessKeyId><SecretAccessKey>{creds.secret_key}</SecretAccessKey>"
        f"<SessionToken>{creds.session_token}</SessionToken><Expiration>{iso(creds.expires)}</Expiration>"
        f"</Credentials><SubjectFromWebIdentityToken>{escape(identity.subject)}</SubjectFromWebIdentityToken>"
        "</AssumeRoleWithWebIdentityResult>"
        f"<ResponseMetadata><RequestId>{secrets.token_hex(8).upper()}</RequestId></ResponseMetadata>"
        "</AssumeRoleWithWebIdentityResponse>"
    ).encode()


def error_xml(err: StsError) -> bytes:
    """An STS ErrorResponse document."""
    kind = "Receiver" if err.status.startswith("5") else "Sender"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{STS_NS}"><Error><Type>{kind}</Type>'
        f"<Code>{escape(err.code)}</Code><Message>{escape(err.message)}</Message></Error>"
        f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></ErrorResponse>"
    ).encode()


def required_permissions(
    method: str, bucket: str | None, key: str | None, query: dict[str, str], headers: dict[str, str],
    exists: Callable[[str, str], bool],
) -> list[tuple[str, str]] | None:
    """(operation, path) pairs a request with temporary credentials needs; None when tokens may never do it.

    read: GET/HEAD of objects and bucket listings; create: new objects (PUT, multipart); modify: overwrite
    and delete. Bucket administration (create/delete buckets, policies, ACLs) is never granted.
    """
    if not bucket:
        return [("read", "/")] if method in ("GET", "HEAD") else None
    path = f"/{bucket}/{key}" if key else f"/{bucket}"
    if method in ("GET", "HEAD"):
        return [("read", path)]
    if key is None:
        return [("modify", path)] if method == "POST" and "delete" in query else None
    if method == "DELETE":
        return [("create" if "uploadId" in query else "modify", path)]
    if method == "PUT" and "uploadId" in query and "partNumber" in query:
        needs = [("create", path)]
    elif method == "PUT" and not (set(query) - {"x-id"}):
        # `If-None-Match: *` never overwrites (an existing key answers 412): a create, whether the key exists or not
        conditional = headers.get("if-none-match") == "*"
        needs = [("modify" if exists(bucket, key) and not conditional else "create", path)]
    elif method == "POST" and "uploads" in query:
        needs = [("create", path)]
    elif method == "POST" and "uploadId" in query:
        needs = [("modify" if exists(bucket, key) else "create", path)]
    elif method == "PUT":
        needs = [("modify", path)]  # tagging, ACLs, retention of an object
    else:
        return None
    source = headers.get("x-amz-copy-source")
    if source:
        needs.append(("read", "/" + unquote(source.split("?", 1)[0]).lstrip("/")))
    return needs
