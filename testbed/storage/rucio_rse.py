"""What Rucio 41 needs to use these endpoints: RSE protocol dicts, RSE attributes, rse-accounts.cfg entries."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

ALL_WAN = {"read": 1, "write": 1, "delete": 1, "third_party_copy_read": 1, "third_party_copy_write": 1}
ALL_LAN = {"read": 1, "write": 1, "delete": 1}

#: RSE attributes of an S3 RSE (values as Rucio stores them)
S3_RSE_ATTRIBUTES: dict[str, Any] = {
    "sign_url": "s3",           # server signs https PFNs (GET /credentials/signurl); conveyor sends s3s:// to FTS
    "s3_url_style": "path",     # path-style URLs; also makes the conveyor send s3alternate=True
    "skip_upload_stat": True,   # the upload PFN is signed for PUT only: a stat of it is refused
    "verify_checksum": False,   # S3 has no ADLER32
    "strict_copy": True,        # FTS must not stat/checksum/mkdir on S3
}

#: RSE attributes of the WebDAV RSE
WEBDAV_RSE_ATTRIBUTES: dict[str, Any] = {
    "verify_checksum": True,    # XRootD answers Want-Digest: adler32 / md5 (RFC 3230)
}


def s3_protocol(host: str, port: int, scheme: str = "https") -> dict[str, Any]:
    """Protocol dict for `rucio-admin rse add-protocol` / RSEClient.add_protocol of an S3 RSE.

    Rucio signs only https PFNs and always signs for https://host:port, so the site must serve TLS.
    """
    return {
        "scheme": scheme, "hostname": host, "port": port, "prefix": "/",
        "impl": "rucio_policies.protocols.S3",
        "domains": {"lan": ALL_LAN, "wan": ALL_WAN},
    }


def webdav_protocol(host: str, port: int, prefix: str = "/cygno", scheme: str = "davs") -> dict[str, Any]:
    """Protocol dict of the WebDAV RSE (XRootD supports MOVE, so the renaming gfal impl is fine)."""
    return {
        "scheme": scheme, "hostname": host, "port": port, "prefix": prefix,
        "impl": "rucio.rse.protocols.gfal.Default",
        "domains": {"lan": ALL_LAN, "wan": ALL_WAN},
    }


def rse_accounts_entry(access_key: str, secret_key: str, region: str = "us-east-1") -> dict[str, str]:
    """One value of rse-accounts.cfg (a JSON object keyed by RSE *id*)."""
    return {"access_key": access_key, "secret_key": secret_key, "signature_version": "s3v4", "region": region}
