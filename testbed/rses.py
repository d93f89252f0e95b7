"""How each kind of RSE in a profile becomes a Rucio RSE (type, protocols, attributes) and a storage process."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cygno_dm.profile import Profile, Rse
from testbed.storage.rucio_rse import (
    ALL_LAN,
    ALL_WAN,
    S3_RSE_ATTRIBUTES,
    WEBDAV_RSE_ATTRIBUTES,
    rse_accounts_entry,
    s3_protocol,
    webdav_protocol,
)

DOMAINS = {"lan": ALL_LAN, "wan": ALL_WAN}


def host_port(rse: Rse) -> tuple[str, int]:
    """Host and port of a networked RSE's endpoint."""
    parts = urlsplit(rse.endpoint or "")
    return parts.hostname or "", parts.port or (443 if parts.scheme in ("https", "davs") else 80)


def storage_dir(name: str, rse: Rse, state: Path) -> Path:
    """Where an RSE's bytes live on this machine (posix path, S3 persistence, WebDAV/tape root)."""
    path = Path(rse.path) if rse.path else Path("storage") / name
    return path if path.is_absolute() else state / path


def rse_settings(name: str, rse: Rse, state: Path, fts_url: str) -> dict[str, Any]:
    """Rucio RSE type, protocols and attributes for one profile RSE."""
    settings = _settings(name, rse, state, fts_url)
    if rse.accepts_tokens:
        # The conveyor and the reaper ask the identity provider for tokens whose scope paths are the protocol
        # prefix less `oidc_base_path`: relative to the endpoint's base path (XRootD's base_path, the tape's
        # --token-base-path), `storage.read:/` covers the RSE. Rucio adds the prefix's trailing slash itself.
        settings["attributes"]["oidc_support"] = True
        if rse.prefix.strip("/"):
            settings["attributes"]["oidc_base_path"] = rse.prefix.rstrip("/")
        for proto in settings["protocols"]:
            proto["prefix"] = proto["prefix"].rstrip("/") + "/"
    return settings


def _settings(name: str, rse: Rse, state: Path, fts_url: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {"fts": fts_url, "site": rse.site or "LOCAL"}
    if rse.kind == "posix":
        prefix = str(storage_dir(name, rse, state)).rstrip("/") + "/"
        proto = {"scheme": "file", "hostname": "", "port": 0, "prefix": prefix,
                 "impl": "rucio.rse.protocols.gfal.Default", "domains": DOMAINS}
        return {"rse_type": "DISK", "protocols": [proto], "attributes": attributes}
    host, port = host_port(rse)
    if rse.kind == "s3":
        return {"rse_type": "DISK", "protocols": [s3_protocol(host, port)],
                "attributes": {**S3_RSE_ATTRIBUTES, **attributes}}
    if rse.kind == "webdav":
        scheme = "davs" if urlsplit(rse.endpoint or "").scheme in ("https", "davs") else "dav"
        return {"rse_type": "DISK", "protocols": [webdav_protocol(host, port, rse.prefix, scheme)],
                "attributes": {**WEBDAV_RSE_ATTRIBUTES, **attributes}}
    # tape: WebDAV data + WLCG Tape REST; the conveyor asks FTS to wait for the archive (archive_timeout).
    scheme = urlsplit(rse.endpoint or "").scheme
    proto = {"scheme": scheme, "hostname": host, "port": port, "prefix": rse.prefix,
             "impl": "rucio.rse.protocols.gfal.Default", "domains": DOMAINS}
    return {"rse_type": "TAPE", "protocols": [proto],
            "attributes": {"archive_timeout": 3600, "verify_checksum": True,
                           "istape": True, **attributes}}


def s3_credentials(profile: Profile) -> dict[str, dict[str, str]]:
    """Per-host S3 keys ({host: {access_key, secret_key, region}}), as the transfer service reads them."""
    creds = {}
    for rse in profile.rses.values():
        if rse.kind == "s3":
            host, _ = host_port(rse)
            creds[host] = {"region": "us-east-1", **rse.credentials}
    return creds


def rse_accounts(profile: Profile, rse_ids: dict[str, str]) -> dict[str, dict[str, str]]:
    """rse-accounts.cfg content: the server signs S3 URLs with these, keyed by RSE id."""
    return {rse_ids[name]: rse_accounts_entry(rse.credentials["access_key"], rse.credentials["secret_key"],
                                              rse.credentials.get("region", "us-east-1"))
            for name, rse in profile.rses.items() if rse.kind == "s3"}
