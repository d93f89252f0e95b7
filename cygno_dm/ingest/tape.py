"""Ask a tape endpoint whether a file is archived (WLCG Tape REST v1 archiveinfo) and what it holds (HEAD with
an RFC 3230 `Want-Digest: adler32`, which tape systems answer from their namespace, also for files only on tape)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlparse

import requests

log = logging.getLogger(__name__)

ARCHIVED = frozenset({"TAPE", "DISK_AND_TAPE"})


class TapeUnavailable(RuntimeError):
    """The tape endpoint cannot be reached or answers 5xx."""


@dataclass(frozen=True)
class TapeCopy:
    """What the tape endpoint says of one file."""

    locality: str
    size: int | None
    adler32: str | None

    def problem(self, size: int, adler32: str) -> str | None:
        """None when this is an archived copy of a file of this size and adler32, else what is wrong."""
        if self.locality not in ARCHIVED:
            return f"the tape endpoint reports {self.locality}, not on tape"
        if self.size != size:
            return f"the tape endpoint has {self.size} bytes, expected {size}"
        if self.adler32 is None:
            return "the tape endpoint gives no adler32 digest: the copy cannot be confirmed"
        if self.adler32 != adler32:
            return f"the tape endpoint has adler32 {self.adler32}, expected {adler32}"
        return None


class TapeRest:
    """A Tape REST client for the endpoints of PFNs (discovery cached per host)."""

    def __init__(self, session: requests.Session | None = None, verify: bool | str = True, timeout: float = 30) -> None:
        self.session = session or requests.Session()
        self.verify = verify
        self.timeout = timeout
        self._uris: dict[str, str] = {}

    @staticmethod
    def _base(pfn: str) -> tuple[str, str]:
        u = urlparse(pfn)
        scheme = {"davs": "https", "dav": "http"}.get(u.scheme, u.scheme)
        return f"{scheme}://{u.netloc}", u.path

    def _request(self, method: str, url: str, **kw) -> requests.Response:
        try:
            r = self.session.request(method, url, timeout=self.timeout, verify=self.verify, **kw)
        except requests.RequestException as err:
            raise TapeUnavailable(f"{url}: {err}") from err
        if r.status_code >= 500:
            raise TapeUnavailable(f"{url}: HTTP {r.status_code}")
        return r

    def endpoint(self, pfn: str) -> str:
        """The Tape REST v1 URI serving this PFN's host."""
        base, _ = self._base(pfn)
        if base not in self._uris:
            r = self._request("GET", f"{base}/.well-known/wlcg-tape-rest-api")
            if r.status_code != 200:
                raise TapeUnavailable(f"{base}: no Tape REST discovery (HTTP {r.status_code})")
            v1 = [e["uri"] for e in r.json().get("endpoints", []) if str(e.get("version", "")).startswith("v1")]
            if not v1:
                raise TapeUnavailable(f"{base}: Tape REST discovery lists no v1 endpoint")
            self._uris[base] = v1[0].rstrip("/")
        return self._uris[base]

    def locality(self, pfn: str) -> str:
        """Locality of the file: DISK, TAPE, DISK_AND_TAPE, LOST, NONE, UNAVAILABLE (or ERROR: ...)."""
        uri = self.endpoint(pfn)
        _, path = self._base(pfn)
        r = self._request("POST", f"{uri}/archiveinfo", json={"paths": [path]})
        if r.status_code != 200:
            return f"ERROR: archiveinfo HTTP {r.status_code}"
        for item in r.json():
            if item.get("path", "").rstrip("/") == path.rstrip("/") or len(r.json()) == 1:
                if "error" in item:
                    return f"ERROR: {item['error']}"
                return str(item.get("locality", "NONE"))
        return "NONE"

    def copy(self, pfn: str) -> TapeCopy:
        """Locality, size and adler32 of the file at `pfn` as the tape endpoint knows them."""
        locality = self.locality(pfn)
        base, path = self._base(pfn)
        r = self._request("HEAD", base + path, headers={"Want-Digest": "adler32"})
        if r.status_code == 404:
            return TapeCopy(locality, None, None)
        if r.status_code >= 400:
            raise TapeUnavailable(f"{pfn}: HEAD HTTP {r.status_code}")
        size = r.headers.get("Content-Length")
        digests = dict(part.strip().split("=", 1) for part in r.headers.get("Digest", "").split(",") if "=" in part)
        adler32 = digests.get("adler32") or digests.get("ADLER32")
        return TapeCopy(locality, int(size) if size is not None else None,
                        adler32.lower().zfill(8) if adler32 else None)
