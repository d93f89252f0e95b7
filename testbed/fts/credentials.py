"""Per-host S3 credentials, per-transfer bearer tokens and the gfal2 context configured for one transfer."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import urls

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3Credential:
    """Access key, secret key and region of one S3 host."""

    access_key: str
    secret_key: str
    region: str = "us-east-1"


def load(path: str | Path | None) -> dict[str, S3Credential]:
    """Read {"host[:port]": {"access_key","secret_key","region"}}; a missing path gives {}."""
    if not path:
        return {}
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: must be a JSON object keyed by host")
    out: dict[str, S3Credential] = {}
    for host, entry in raw.items():
        if not isinstance(entry, dict) or not entry.get("access_key") or not entry.get("secret_key"):
            raise ValueError(f"{path}: entry {host!r} needs access_key and secret_key")
        out[str(host)] = S3Credential(str(entry["access_key"]), str(entry["secret_key"]),
                                      str(entry.get("region") or "us-east-1"))
    log.info("loaded S3 credentials for %d host(s)", len(out))
    return out


def lookup(creds: dict[str, S3Credential], url: str) -> S3Credential | None:
    """Credentials for a URL's host (`host:port` first, then `host`)."""
    return creds.get(urls.host_port(url)) or creds.get(urls.host_of(url))


def hosts(creds: dict[str, S3Credential]) -> set[str]:
    """Every key (host and host:port) that has credentials."""
    return set(creds)


def new_context(creds: dict[str, S3Credential], transfer_urls: list[str], streamed: bool,
                timeout: int) -> Any:
    """A fresh gfal2 context with the S3 credentials of the hosts of `transfer_urls`."""
    import gfal2

    ctx = gfal2.creat_context()
    ctx.set_opt_boolean("HTTP PLUGIN", "INSECURE", True)
    ctx.set_opt_integer("HTTP PLUGIN", "OPERATION_TIMEOUT", max(int(timeout), 1))
    if streamed:
        ctx.set_opt_string("HTTP PLUGIN", "DEFAULT_COPY_MODE", "streamed")
        ctx.set_opt_boolean("HTTP PLUGIN", "ENABLE_REMOTE_COPY", False)
    for url in transfer_urls:
        cred = lookup(creds, url)
        if cred is None:
            continue
        host = urls.host_of(url)
        for group in {f"S3:{host}", f"S3:{host.upper()}"}:
            ctx.set_opt_string(group, "ACCESS_KEY", cred.access_key)
            ctx.set_opt_string(group, "SECRET_KEY", cred.secret_key)
            ctx.set_opt_string(group, "REGION", cred.region)
            ctx.set_opt_boolean(group, "ALTERNATE", True)
    return ctx


def set_bearer(ctx: Any, url: str, token: str | None) -> None:
    """Have gfal2 send `Authorization: Bearer <token>` to the URL's endpoint (its credential API) for this
    transfer's context; without a token the service's own certificate (X509_USER_PROXY) is presented."""
    if not token:
        return
    import gfal2

    parts = urlsplit(url)
    ctx.cred_set(f"{parts.scheme}://{parts.netloc}/", gfal2.cred_new("BEARER", token))
