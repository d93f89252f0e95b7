"""WLCG Tape REST API v1 client: discovery, stage requests and archive information.

Each call presents either a file's bearer token (what Rucio sent with the job) or the service's client
certificate (jobs without tokens). Stage requests go with the source token only when it carries a
`storage.stage` scope: Rucio 41 asks only `storage.read` for sources, which WLCG tape endpoints refuse for
staging; such jobs stage with the certificate, as FTS3 stages with the job's delegated proxy.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import requests

from cygno_dm.tokens import TokenError, unverified_claims

from . import urls

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/wlcg-tape-rest-api"
ON_TAPE = {"TAPE", "DISK_AND_TAPE"}


class TapeError(Exception):
    """The tape endpoint refused or failed a request (`status`: its HTTP status, if it answered)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def refused(self) -> bool:
        """The endpoint refused the credential: retrying with it cannot help."""
        return self.status in (401, 403)


def stage_token(source_token: str | None) -> str | None:
    """The token to stage a file with: its source token if that carries a `storage.stage` scope, else None (the
    service's certificate). The scope is read unverified, only to choose; the tape endpoint verifies the token."""
    if not source_token:
        return None
    try:
        scopes = str(unverified_claims(source_token).get("scope", "")).split()
    except TokenError:
        return source_token  # not a JWT: presented anyway, and the endpoint says why it refuses it
    return source_token if any(s.split(":", 1)[0] == "storage.stage" for s in scopes) else None


@dataclass
class StageFileStatus:
    """State of one file in a stage request."""

    path: str
    state: str
    error: str | None = None


class TapeClient:
    """Talks to the Tape REST endpoint of a storage URL (found through the discovery document)."""

    def __init__(self, timeout: float = 30.0, verify: bool = False, cert: str | None = None):
        self.timeout = timeout
        self.verify = verify
        self.cert = cert  # the service's client certificate + key (one PEM): stage and release need a credential
        self._endpoints: dict[str, str] = {}
        self._lock = threading.Lock()

    def endpoint(self, url: str) -> str:
        """The Tape REST v1 base URI serving a storage URL (cached per host)."""
        base = urls.http_base(url)
        with self._lock:
            if base in self._endpoints:
                return self._endpoints[base]
        try:
            resp = requests.get(base + DISCOVERY_PATH, timeout=self.timeout, verify=self.verify, cert=self.cert)
        except requests.RequestException as exc:
            raise TapeError(f"tape REST discovery at {base} failed: {exc}") from None
        if resp.status_code != 200:
            raise TapeError(f"tape REST discovery at {base} answered HTTP {resp.status_code}")
        doc = resp.json()
        uri = None
        for ep in doc.get("endpoints", []):
            if str(ep.get("version", "")).lower().startswith("v1"):
                uri = ep.get("uri")
                break
        if not uri:
            raise TapeError(f"tape REST discovery at {base} lists no v1 endpoint")
        if uri.startswith("/"):
            uri = base + uri
        uri = uri.rstrip("/")
        with self._lock:
            self._endpoints[base] = uri
        return uri

    def _call(self, method: str, url: str, body: Any = None, token: str | None = None) -> requests.Response:
        """One Tape REST call with the bearer `token`, or with the service's certificate when there is none."""
        auth = {"headers": {"Authorization": f"Bearer {token}"}} if token else {"cert": self.cert}
        try:
            resp = requests.request(method, url, json=body, timeout=self.timeout, verify=self.verify, **auth)
        except requests.RequestException as exc:
            raise TapeError(f"{method} {url} failed: {exc}") from None
        if resp.status_code >= 400:
            via = "the file's bearer token" if token else "the service certificate"
            raise TapeError(f"{method} {url} answered HTTP {resp.status_code}: {_problem(resp)} ({via})",
                            resp.status_code)
        return resp

    def stage(self, surls: list[str], disk_lifetime: int | None = None,
              metadata: dict[str, Any] | None = None, token: str | None = None) -> str:
        """Create a stage request for files of one endpoint; returns its request id."""
        uri = self.endpoint(surls[0])
        files = []
        for surl in surls:
            entry: dict[str, Any] = {"path": urls.path_of(surl)}
            if disk_lifetime:
                entry["diskLifetime"] = f"PT{int(disk_lifetime)}S"
            if metadata:
                entry["targetedMetadata"] = metadata
            files.append(entry)
        resp = self._call("POST", f"{uri}/stage", {"files": files}, token)
        request_id = resp.json().get("requestId")
        if not request_id:
            raise TapeError(f"POST {uri}/stage returned no requestId")
        log.info("stage request %s for %d file(s) at %s", request_id, len(files), uri)
        return str(request_id)

    def stage_status(self, surl: str, request_id: str, token: str | None = None) -> dict[str, StageFileStatus]:
        """State of every file of a stage request, keyed by path."""
        uri = self.endpoint(surl)
        doc = self._call("GET", f"{uri}/stage/{request_id}", token=token).json()
        out: dict[str, StageFileStatus] = {}
        for f in doc.get("files", []):
            state = f.get("state")
            if not state:
                state = "COMPLETED" if f.get("onDisk") else ("FAILED" if f.get("error") else "STARTED")
            state = "CANCELLED" if state == "CANCELED" else state
            out[f.get("path")] = StageFileStatus(f.get("path"), state, f.get("error"))
        return out

    def cancel_stage(self, surl: str, request_id: str, paths: list[str], token: str | None = None) -> None:
        """Cancel files of a stage request (best effort)."""
        uri = self.endpoint(surl)
        try:
            self._call("POST", f"{uri}/stage/{request_id}/cancel", {"paths": paths}, token)
        except TapeError as exc:
            log.warning("cancel of stage request %s failed: %s", request_id, exc)

    def archive_info(self, surls: list[str], token: str | None = None) -> dict[str, dict[str, Any]]:
        """archiveinfo of files (locality or error), keyed by path."""
        uri = self.endpoint(surls[0])
        body = {"paths": [urls.path_of(s) for s in surls]}
        doc = self._call("POST", f"{uri}/archiveinfo", body, token).json()
        return {entry.get("path"): entry for entry in doc}


def _problem(resp: requests.Response) -> str:
    """The title/detail of an RFC 7807 error body, or its text."""
    try:
        doc = resp.json()
        return str(doc.get("detail") or doc.get("title") or doc)
    except ValueError:
        return resp.text[:300]
