"""AWS Signature V4 for S3 requests: verify header-signed and presigned (query-string) requests; presign URLs."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

log = logging.getLogger(__name__)

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_EXPIRES = 7 * 24 * 3600
#: query parameters that carry a query-string signature (not passed on to the S3 operations)
AUTH_PARAMS = frozenset({
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token",
})


class SignatureError(Exception):
    """A presigned request that must be refused; `code` is the S3 error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class QueryAuth:
    """The signature fields of a presigned request."""

    access_key: str
    date: str
    region: str
    service: str
    amz_date: str
    expires: int
    signed_headers: tuple[str, ...]
    signature: str


def is_query_signed(query_string: str) -> bool:
    """True if the query string carries a SigV4 or SigV2 signature."""
    names = {k for k, _ in parse_qsl(query_string, keep_blank_values=True)}
    return bool(names & {"X-Amz-Signature", "Signature"})


def parse_query_auth(query_string: str) -> QueryAuth:
    """Extract the SigV4 fields of a presigned query string, or raise SignatureError."""
    params = dict(parse_qsl(query_string, keep_blank_values=True))
    if "Signature" in params and "X-Amz-Signature" not in params:
        raise SignatureError("AccessDenied", "Signature version 2 is not accepted: use AWS4-HMAC-SHA256")
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise SignatureError("AuthorizationQueryParametersError", f"X-Amz-Algorithm must be {ALGORITHM}")
    try:
        access_key, date, region, service, terminal = params["X-Amz-Credential"].split("/")
        expires = int(params["X-Amz-Expires"])
        amz_date = params["X-Amz-Date"]
        signed = tuple(params["X-Amz-SignedHeaders"].lower().split(";"))
        signature = params["X-Amz-Signature"]
    except (KeyError, ValueError) as err:
        raise SignatureError("AuthorizationQueryParametersError", f"malformed query signature: {err}") from err
    if terminal != "aws4_request" or not amz_date.startswith(date):
        raise SignatureError("AuthorizationQueryParametersError", "malformed X-Amz-Credential scope")
    if not 0 < expires <= MAX_EXPIRES:
        raise SignatureError("AuthorizationQueryParametersError", f"X-Amz-Expires must be in 1..{MAX_EXPIRES}")
    return QueryAuth(access_key, date, region, service, amz_date, expires, signed, signature)


def check_not_expired(auth: QueryAuth, now: datetime | None = None) -> None:
    """Raise SignatureError when the presigned request is outside its validity window."""
    now = now or datetime.now(UTC)
    try:
        signed_at = datetime.strptime(auth.amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError as err:
        raise SignatureError("AuthorizationQueryParametersError", "malformed X-Amz-Date") from err
    if now > signed_at + timedelta(seconds=auth.expires):
        raise SignatureError("AccessDenied", "Request has expired")
    if signed_at - now > timedelta(minutes=15):
        raise SignatureError("AccessDenied", "Request is not yet valid")


def _canonical_queries(query_string: str) -> list[str]:
    """Candidate canonical query strings (RFC 3986 re-encoded, and as sent) without the signature."""
    decoded = [(k, v) for k, v in parse_qsl(query_string, keep_blank_values=True) if k != "X-Amz-Signature"]
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in decoded)
    raw = sorted(
        tuple(pair.partition("=")[::2]) for pair in query_string.split("&")
        if pair and pair.partition("=")[0] != "X-Amz-Signature"
    )
    return list(dict.fromkeys("&".join(f"{k}={v}" for k, v in pairs) for pairs in (encoded, raw)))


def _signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def expected_signatures(
    auth: QueryAuth, secret_key: str, method: str, raw_path: str, query_string: str, headers: dict[str, str]
) -> list[str]:
    """The signatures a client holding `secret_key` could have produced for this request."""
    lower = {k.lower(): " ".join(v.strip().split()) for k, v in headers.items()}
    canonical_headers = "".join(f"{name}:{lower.get(name, '')}\n" for name in auth.signed_headers)
    scope = f"{auth.date}/{auth.region}/{auth.service}/aws4_request"
    key = _signing_key(secret_key, auth.date, auth.region, auth.service)
    payload = dict(parse_qsl(query_string)).get("X-Amz-Content-Sha256", UNSIGNED_PAYLOAD)
    paths = list(dict.fromkeys([raw_path, quote(raw_path, safe="/~%")]))
    out = []
    for path in paths:
        for query in _canonical_queries(query_string):
            request = "\n".join([method.upper(), path, query, canonical_headers, ";".join(auth.signed_headers), payload])
            to_sign = "\n".join([ALGORITHM, auth.amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
            out.append(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest())
    return out


def verify_query_signature(
    access_key: str, secret_key: str, method: str, raw_path: str, query_string: str, headers: dict[str, str],
    now: datetime | None = None,
) -> QueryAuth:
    """Check a presigned request against one key pair and the clock; raise SignatureError if refused."""
    auth = parse_query_auth(query_string)
    if auth.access_key != access_key:
        raise SignatureError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
    check_not_expired(auth, now)
    candidates = expected_signatures(auth, secret_key, method, raw_path, query_string, headers)
    if not any(hmac.compare_digest(auth.signature, c) for c in candidates):
        raise SignatureError("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
    return auth


@dataclass(frozen=True)
class HeaderAuth:
    """The fields of an `Authorization: AWS4-HMAC-SHA256 ...` header."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_header_auth(authorization: str) -> HeaderAuth:
    """Split a SigV4 Authorization header into its fields, or raise SignatureError."""
    if not authorization.startswith(ALGORITHM + " "):
        raise SignatureError("AccessDenied", "Only AWS4-HMAC-SHA256 signatures are accepted")
    fields = dict(part.strip().partition("=")[::2] for part in authorization[len(ALGORITHM):].split(","))
    try:
        access_key, date, region, service, terminal = fields["Credential"].split("/")
        signed = tuple(fields["SignedHeaders"].lower().split(";"))
        signature = fields["Signature"]
    except (KeyError, ValueError) as err:
        raise SignatureError("AuthorizationHeaderMalformed", f"malformed Authorization header: {err}") from err
    if terminal != "aws4_request" or not signature:
        raise SignatureError("AuthorizationHeaderMalformed", "malformed Authorization header credential scope")
    return HeaderAuth(access_key, date, region, service, signed, signature)


def header_signature(
    auth: HeaderAuth, access_key: str, secret_key: str, method: str, path_and_query: str, headers: dict[str, str]
) -> str:
    """The SigV4 header signature of this request under one key pair, computed as botocore (and moto) do."""
    signed = {name: value for name, value in headers.items() if name.lower() in auth.signed_headers}
    request = AWSRequest(method=method.upper(), url=path_and_query, headers=signed)
    request.context["timestamp"] = signed.get("x-amz-date", "")
    signer = S3SigV4Auth(Credentials(access_key, secret_key), auth.service, auth.region)
    return signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)


def verify_header_signature(
    auth: HeaderAuth, secret_key: str, method: str, path_and_query: str, headers: dict[str, str],
    now: datetime | None = None,
) -> None:
    """Check a header-signed request (signature, date within 15 minutes); raise SignatureError if refused."""
    if "x-amz-date" not in auth.signed_headers or not headers.get("x-amz-date", "").startswith(auth.date):
        raise SignatureError("AccessDenied", "x-amz-date must be signed and match the credential scope")
    try:
        signed_at = datetime.strptime(headers["x-amz-date"], AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError as err:
        raise SignatureError("AccessDenied", "malformed X-Amz-Date") from err
    if abs((now or datetime.now(UTC)) - signed_at) > timedelta(minutes=15):
        raise SignatureError("RequestTimeTooSkewed", "The difference between the request time and the current "
                             "time is too large.")
    expected = header_signature(auth, auth.access_key, secret_key, method, path_and_query, headers)
    if not hmac.compare_digest(auth.signature, expected):
        raise SignatureError("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                             "signature you provided.")


def presign(
    method: str, url: str, access_key: str, secret_key: str, region: str = "us-east-1",
    expires: int = 3600, now: datetime | None = None,
) -> str:
    """A SigV4 presigned URL (path-style, host header only) signed at `now` (default: the clock)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    now = now or datetime.now(UTC)
    amz_date = now.strftime(AMZ_DATE_FORMAT)
    date = amz_date[:8]
    params = parse_qsl(parts.query, keep_blank_values=True) + [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access_key}/{date}/{region}/s3/aws4_request"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params))
    path = quote(parts.path or "/", safe="/~%")
    auth = QueryAuth(access_key, date, region, "s3", amz_date, expires, ("host",), "")
    signature = expected_signatures(auth, secret_key, method, path, query, {"host": parts.netloc})[0]
    return f"{parts.scheme}://{parts.netloc}{path}?{query}&X-Amz-Signature={signature}"
