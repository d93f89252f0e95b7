"""gfal2 set-up for the testbed endpoints: per-host S3 credentials, copy modes, checksums."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Site:
    """One S3 endpoint and the key pair gfal2 signs with (gfal2 keys credentials by host, not port)."""

    host: str
    port: int
    access_key: str
    secret_key: str
    region: str = DEFAULT_REGION

    @property
    def group(self) -> str:
        """The gfal2 configuration group holding this host's credentials."""
        return f"S3:{self.host.upper()}"

    @property
    def endpoint(self) -> str:
        """http://host:port, for boto3 and the health check."""
        return f"http://{self.host}:{self.port}"

    def url(self, bucket: str, key: str = "") -> str:
        """The gfal2 URL of an object (s3:// = plain http, signed by gfal2 with this site's key)."""
        return f"s3://{self.host}:{self.port}/{bucket}/{key}"


def gfal2_options(sites: Iterable[S3Site], streamed: bool = False) -> dict[str, dict[str, str]]:
    """gfal2 configuration groups for these sites (what `[S3:HOST]` in a gfal2 .conf would hold)."""
    groups: dict[str, dict[str, str]] = {}
    for site in sites:
        groups[site.group] = {
            "ACCESS_KEY": site.access_key, "SECRET_KEY": site.secret_key,
            "REGION": site.region, "ALTERNATE": "true",
        }
    if streamed:
        groups["HTTP PLUGIN"] = {"DEFAULT_COPY_MODE": "streamed"}
    return groups


def gfal2_ini(sites: Iterable[S3Site], streamed: bool = False) -> str:
    """The same options as a gfal2 configuration file (for /etc/gfal2.d/ or GFAL_CONFIG_DIR)."""
    out = []
    for group, values in gfal2_options(sites, streamed).items():
        out.append(f"[{group}]")
        out += [f"{k}={v}" for k, v in values.items()]
        out.append("")
    return "\n".join(out)


def configure(ctx: Any, sites: Iterable[S3Site], streamed: bool = False) -> Any:
    """Set the sites' credentials (and optionally streamed copies) on a gfal2 context; return it."""
    for group, values in gfal2_options(sites, streamed).items():
        for name, value in values.items():
            if value in ("true", "false"):
                ctx.set_opt_boolean(group, name, value == "true")
            else:
                ctx.set_opt_string(group, name, value)
    return ctx


def context(sites: Iterable[S3Site] = (), streamed: bool = False) -> Any:
    """A new gfal2 context that can talk to these S3 sites."""
    import gfal2

    return configure(gfal2.creat_context(), sites, streamed)

