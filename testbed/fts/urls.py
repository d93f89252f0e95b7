"""URL helpers: storage element names, link keys, S3 rewriting and copy-mode hints."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SIGNED_QUERY_KEYS = ("x-amz-signature", "signature", "x-amz-credential")


def storage_element(url: str) -> str:
    """FTS storage element name of a URL: `scheme://host` ('' for local files)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return f"{parts.scheme}://" if parts.scheme else ""
    return f"{parts.scheme}://{parts.hostname}"


def host_of(url: str) -> str:
    """The host of a URL ('localhost' for file:// URLs)."""
    return urlsplit(url).hostname or "localhost"


def host_port(url: str) -> str:
    """`host:port` of a URL (port omitted when absent)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port}" if parts.port else host


def split_copy_mode(url: str) -> tuple[str, str | None]:
    """Remove a `copy_mode=` query parameter (Rucio adds it) and return (url, mode)."""
    parts = urlsplit(url)
    if not parts.query:
        return url, None
    query = parse_qsl(parts.query, keep_blank_values=True)
    mode = next((v for k, v in query if k == "copy_mode"), None)
    rest = [(k, v) for k, v in query if k != "copy_mode"]
    return urlunsplit(parts._replace(query=urlencode(rest))), mode


def is_presigned(url: str) -> bool:
    """Whether an http(s) URL carries an S3 query-string signature."""
    query = urlsplit(url).query.lower()
    return any(k in query for k in SIGNED_QUERY_KEYS)


def uses_service_keys(url: str, s3_hosts: set[str]) -> bool:
    """Whether copying `url` would be signed with this service's own S3 keys (an unsigned URL of an S3 host)."""
    url, _ = split_copy_mode(url)
    return (host_of(url) in s3_hosts or host_port(url) in s3_hosts) and not is_presigned(url)


def to_gfal_url(url: str, s3_hosts: set[str]) -> str:
    """The URL gfal2 should use: http(s) to a host with S3 credentials becomes s3(s) (unless presigned)."""
    url, _ = split_copy_mode(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme in ("http", "https") and not is_presigned(url) and (host in s3_hosts or host_port(url) in s3_hosts):
        return urlunsplit(parts._replace(scheme="s3" if scheme == "http" else "s3s"))
    return url


def http_base(url: str) -> str:
    """`http(s)://host:port` of a WebDAV/HTTP URL (dav/http → http, davs/https → https)."""
    parts = urlsplit(url)
    scheme = "https" if parts.scheme.lower() in ("davs", "https", "s3s") else "http"
    return f"{scheme}://{parts.netloc}"


def path_of(url: str) -> str:
    """The path part of a URL (what the Tape REST API calls a path)."""
    return urlsplit(url).path or "/"
