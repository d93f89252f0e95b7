"""WebDAV (and other gfal2 URLs) landing storage: gfal2 copy with overwrite off and an adler32 check."""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path
from urllib.parse import urlsplit

from cygno_dm.ingest.checksums import Checksums
from cygno_dm.ingest.storage import (
    ObjectExists,
    Progress,
    StorageError,
    StorageUnavailable,
    Stored,
    verify_by_adler32,
)
from cygno_dm.tokens import TokenError, TokenSource

log = logging.getLogger(__name__)

TRANSIENT = {errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ECOMM, errno.EAGAIN, errno.EIO,
             errno.ECONNRESET, errno.ENETUNREACH}


class GfalStorage:
    """Any gfal2 URL (davs://, https://, root://); checksums are asked of the storage (RFC 3230 digests)."""

    def __init__(self, timeout: int = 3600, tokens: TokenSource | None = None) -> None:
        import gfal2

        self._gfal2 = gfal2
        self._local = threading.local()
        self.timeout = timeout
        self.tokens = tokens

    @property
    def _ctx(self):
        """This thread's gfal2 context: the uploader's workers each have their own, so a credential replaced in
        one (a renewed token) is never freed under another's running copy."""
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._local.ctx = self._gfal2.creat_context()
            self._local.bearer = {}
        return ctx

    def _authorize(self, url: str) -> None:
        """With a token source: a bearer token for the URL's host (its audience), fresh for this request."""
        if self.tokens is None:
            return
        parts = urlsplit(url)
        try:
            token = self.tokens.token(parts.hostname or "")
        except TokenError as err:
            raise StorageUnavailable(str(err)) from None
        ctx, prefix = self._ctx, f"{parts.scheme}://{parts.netloc}/"
        if self._local.bearer.get(prefix) != token:  # only a new token replaces the credential
            ctx.cred_set(prefix, ctx.cred_new("BEARER", token))
            self._local.bearer[prefix] = token

    def _fail(self, url: str, err: Exception) -> Exception:
        code = getattr(err, "code", None)
        if code == errno.EEXIST:
            return ObjectExists(f"{url} already exists")
        if code in TRANSIENT:
            return StorageUnavailable(f"{url}: {err}")
        return StorageError(f"{url}: {err}")

    def stat(self, pfn: str) -> Stored | None:
        self._authorize(pfn)
        try:
            return Stored(self._ctx.stat(pfn).st_size)
        except self._gfal2.GError as err:
            if err.code == errno.ENOENT:
                return None
            raise self._fail(pfn, err) from err

    def put(self, path: Path, pfn: str, sums: Checksums, progress: Progress | None = None) -> None:
        params = self._ctx.transfer_parameters()
        params.overwrite = False
        params.create_parent = True
        params.timeout = self.timeout
        params.checksum_check = True
        params.set_user_defined_checksum("ADLER32", sums.adler32)
        self._authorize(pfn)
        try:
            self._ctx.filecopy(params, f"file://{path.resolve()}", pfn)
        except self._gfal2.GError as err:
            raise self._fail(pfn, err) from err
        stored = self.stat(pfn)
        if stored is None or stored.size != sums.size:
            raise StorageError(f"{pfn}: stored size {stored and stored.size} != {sums.size}")
        if progress:
            progress(sums.size)

    def adler32(self, pfn: str) -> str:
        self._authorize(pfn)
        try:
            return self._ctx.checksum(pfn, "ADLER32").lower().zfill(8)
        except self._gfal2.GError as err:
            raise self._fail(pfn, err) from err

    def verify(self, pfn: str, sums: Checksums) -> tuple[str | None, str]:
        """The storage's own adler32 (WebDAV: `Want-Digest: adler32` answered by a `Digest` header)."""
        return verify_by_adler32(self, pfn, sums, "storage adler32 (Digest)")
