"""The storage endpoints this service may copy between; every other URL of a submission is refused.

An endpoint is `scheme://host:port` (any of the HTTP, WebDAV and S3 schemes reaches it: Rucio writes
`davs://` and `https://` for the same server), `scheme://host` (every port of a host that serves storage
only) or `file:///directory` for a local storage area.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

NETWORK_SCHEMES = {"http": 80, "dav": 80, "s3": 80, "https": 443, "davs": 443, "s3s": 443}


class EndpointError(ValueError):
    """A URL outside the configured storage endpoints (the message names the rule)."""


@dataclass(frozen=True)
class Endpoints:
    """Allowed (host, port) pairs and local directories."""

    hosts: frozenset[tuple[str, int | None]]  # port None: every port of the host
    directories: tuple[str, ...]

    @classmethod
    def parse(cls, specs: list[str]) -> Endpoints:
        """Endpoints from `scheme://host[:port]` and `file:///dir` strings; a malformed one raises ValueError."""
        hosts: set[tuple[str, int | None]] = set()
        dirs = []
        for spec in specs:
            parts = urlsplit(spec)
            if parts.scheme == "file":
                if not parts.path.startswith("/") or parts.netloc not in ("", "localhost"):
                    raise ValueError(f"storage endpoint {spec!r}: a file endpoint is file:///absolute/directory")
                dirs.append(os.path.realpath(parts.path))
            elif parts.scheme in NETWORK_SCHEMES and parts.hostname:
                hosts.add((parts.hostname.lower(), parts.port))
            else:
                raise ValueError(f"storage endpoint {spec!r}: must be scheme://host[:port] "
                                 f"({', '.join(NETWORK_SCHEMES)}) or file:///directory")
        return cls(frozenset(hosts), tuple(dirs))

    def check(self, url: str, where: str) -> None:
        """Raise EndpointError unless `url` is on one of the endpoints."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise EndpointError(f"{where}: {url!r} names a host; file URLs are local paths")
            path = os.path.realpath(parts.path)
            if not any(os.path.commonpath([path, d]) == d for d in self.directories):
                raise EndpointError(f"{where}: {url!r} is not under a local storage area of this service")
            return
        if scheme not in NETWORK_SCHEMES:
            raise EndpointError(f"{where}: scheme {scheme!r} is not one this service copies with "
                                f"({', '.join(NETWORK_SCHEMES)}, file)")
        try:
            port = parts.port or NETWORK_SCHEMES[scheme]
        except ValueError:
            raise EndpointError(f"{where}: {url!r} has an invalid port") from None
        if parts.username or parts.password:
            raise EndpointError(f"{where}: {url!r} carries credentials in the URL")
        host = (parts.hostname or "").lower()
        if (host, port) not in self.hosts and (host, None) not in self.hosts:
            raise EndpointError(f"{where}: {parts.hostname}:{port} is not a storage endpoint of this service")
