"""Health checks of the storage endpoints (no credentials needed)."""

from __future__ import annotations

import logging
import warnings

import requests
from urllib3.exceptions import InsecureRequestWarning

log = logging.getLogger(__name__)

S3_HEALTH_PATH = "/_health"


def s3_ready(endpoint: str, timeout: float = 2.0) -> bool:
    """True if the S3 site at `endpoint` (http(s)://host:port) answers its health check."""
    try:
        with warnings.catch_warnings():  # the testbed CA need not be trusted by a liveness probe
            warnings.simplefilter("ignore", InsecureRequestWarning)
            response = requests.get(endpoint.rstrip("/") + S3_HEALTH_PATH, timeout=timeout, verify=False)
        return response.status_code == 200 and response.json().get("service") == "s3"
    except (requests.RequestException, ValueError):
        return False


def webdav_ready(url: str, timeout: float = 2.0) -> bool:
    """True if the WebDAV endpoint answers a depth-0 PROPFIND on `url` (its root) with 207."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            response = requests.request("PROPFIND", url, headers={"Depth": "0"}, timeout=timeout, verify=False)
        return response.status_code == 207
    except requests.RequestException:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True if a GET of `url` answers 200 (the testbed CA need not be trusted by a liveness probe)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            return requests.get(url, timeout=timeout, verify=False).status_code == 200
    except requests.RequestException:
        return False
