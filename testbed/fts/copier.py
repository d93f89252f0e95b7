"""One file copy with gfal2: overwrite rules, streamed copy with on-the-fly checksums, verification."""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import checksums, credentials, urls
from .errors import TransferError, from_gerror

log = logging.getLogger(__name__)

CHUNK = 8 * 1024 * 1024
PREFETCH = 4
EXISTS_MESSAGE = "Destination file exists and overwrite is not enabled"
ENOTSUP_CODES = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


@dataclass
class CopyRequest:
    """What to copy and how to check it."""

    source: str
    dest: str
    filesize: int | None = None
    checksum: str | None = None
    verify: str = "none"
    overwrite: bool = False
    copy_mode: str = "streamed"
    timeout: int = 3600
    cancel: threading.Event = field(default_factory=threading.Event)
    source_token: str | None = field(default=None, repr=False)  # Rucio's per-file bearer tokens
    dest_token: str | None = field(default=None, repr=False)


@dataclass
class CopyResult:
    """What arrived at the destination."""

    size: int
    checksums: dict[str, str]
    duration: float


def _gerror_type() -> type[BaseException]:
    import gfal2

    return gfal2.GError


class Copier:
    """Copies files with gfal2, configuring S3 credentials per transfer."""

    def __init__(self, creds: dict[str, credentials.S3Credential], streamed: bool = True):
        self.creds = creds
        self.streamed = streamed
        self._no_native: set[tuple[str, str]] = set()

    def _urls(self, req: CopyRequest) -> tuple[str, str, str | None]:
        hosts = credentials.hosts(self.creds)
        _, mode = urls.split_copy_mode(req.source)
        return urls.to_gfal_url(req.source, hosts), urls.to_gfal_url(req.dest, hosts), mode

    def context(self, req: CopyRequest) -> Any:
        """A gfal2 context for this transfer's hosts, with its bearer tokens where Rucio gave them."""
        ctx = credentials.new_context(self.creds, [req.source, req.dest], self.streamed, req.timeout)
        gsrc, gdst, _ = self._urls(req)
        # the destination's last: on one host it wins (Rucio's destination token also has storage.read)
        credentials.set_bearer(ctx, gsrc, req.source_token)
        credentials.set_bearer(ctx, gdst, req.dest_token)
        return ctx

    def remove_destination(self, dest: str, timeout: int = 60) -> bool:
        """Delete a destination (best effort); True if something was removed."""
        req = CopyRequest(source=dest, dest=dest, timeout=timeout)
        ctx = self.context(req)
        _, gdst, _ = self._urls(req)
        try:
            ctx.unlink(gdst)
            log.info("removed destination %s", dest)
            return True
        except _gerror_type() as exc:
            if getattr(exc, "code", None) != errno.ENOENT:
                log.warning("could not remove destination %s: %s", dest, exc)
            return False

    def stat_destination(self, dest: str, algorithm: str | None) -> dict[str, Any] | None:
        """Size (and native checksum when the store gives one) of an existing destination, else None."""
        req = CopyRequest(source=dest, dest=dest)
        ctx = self.context(req)
        _, gdst, _ = self._urls(req)
        try:
            st = ctx.stat(gdst)
        except _gerror_type():
            return None
        report: dict[str, Any] = {"file_size": int(st.st_size), "file_on_tape": False}
        if algorithm:
            value = _native_checksum(ctx, gdst, algorithm)
            if value:
                report["checksum_type"] = algorithm
                report["checksum_value"] = value
        return report

    def copy(self, req: CopyRequest, on_started: Any = None) -> CopyResult:
        """Copy source to destination; raises TransferError with an FTS-style reason (naming a refused token)."""
        try:
            return self._copy(req, on_started)
        except TransferError as err:
            token = {"SOURCE": req.source_token, "DESTINATION": req.dest_token}.get(err.side)
            if token and any(f"HTTP {status}" in err.message for status in (401, 403)):
                err.message += " (the endpoint refused the per-file bearer token)"
            raise

    def _copy(self, req: CopyRequest, on_started: Any = None) -> CopyResult:
        gerror = _gerror_type()
        ctx = self.context(req)
        gsrc, gdst, url_mode = self._urls(req)
        alg, user_value = checksums.split(req.checksum)
        if req.verify != "none" and alg is None:
            alg = "ADLER32"
        if req.verify == "none":
            alg = None
        started = time.monotonic()
        try:
            src_stat = ctx.stat(gsrc)
        except gerror as exc:
            raise from_gerror("SOURCE", exc, "failed to stat source") from None
        src_size = int(src_stat.st_size)
        if req.filesize and req.filesize > 0 and src_size != req.filesize:
            raise TransferError("SOURCE", errno.EIO,
                                f"source size {src_size} differs from the expected size {req.filesize}", False)
        self._prepare_destination(ctx, gdst, req.overwrite)
        if on_started is not None:
            on_started()
        mode = (url_mode or req.copy_mode or "streamed").lower()
        local = gsrc.startswith("file:") or gdst.startswith("file:")
        if (self.streamed or mode == "streamed") and (alg is not None or local):
            # bytes must pass through us: hash them on the way (stores like S3 give no ADLER32)
            size, sums = self._pipe(ctx, gsrc, gdst, alg, req)
        else:
            # nothing to hash: gfal2 moves the bytes itself (streamed mode is set on the context)
            size, sums = self._filecopy(ctx, gsrc, gdst, alg, user_value, req)
        try:
            self._verify(ctx, gdst, req, src_size, size, alg, user_value, sums)
        except TransferError:
            self._safe_unlink(ctx, gdst)
            raise
        return CopyResult(size=size, checksums=sums, duration=time.monotonic() - started)

    def _prepare_destination(self, ctx: Any, gdst: str, overwrite: bool) -> None:
        """Refuse or remove an existing destination (gfal2 cannot open an existing http/S3 object for writing)."""
        gerror = _gerror_type()
        if overwrite:
            try:
                ctx.unlink(gdst)
            except gerror as exc:
                if exc.code != errno.ENOENT:
                    raise from_gerror("DESTINATION", exc, "cannot clear the destination before writing") from None
        else:
            try:
                ctx.stat(gdst)
            except gerror as exc:
                if exc.code != errno.ENOENT:
                    raise from_gerror("DESTINATION", exc, "failed to stat destination") from None
            else:
                raise TransferError("DESTINATION", errno.EEXIST, EXISTS_MESSAGE, False)
        if not gdst.startswith(("s3://", "s3s://")):
            parent = gdst.rsplit("/", 1)[0]
            try:
                ctx.mkdir_rec(parent, 0o755)
            except gerror as exc:
                if exc.code != errno.EEXIST:
                    raise from_gerror("DESTINATION", exc, "failed to create parent directory") from None

    def _pipe(self, ctx: Any, gsrc: str, gdst: str, alg: str | None, req: CopyRequest) -> tuple[int, dict[str, str]]:
        """Stream source → destination through gfal2 file handles, hashing on the way (reads run ahead)."""
        gerror = _gerror_type()
        hasher = checksums.StreamingChecksums([alg] if alg else [])
        try:
            fin = ctx.open(gsrc, "r")
        except gerror as exc:
            raise from_gerror("SOURCE", exc, "failed to open source") from None
        try:
            fout = ctx.open(gdst, "w")
        except gerror as exc:
            raise from_gerror("DESTINATION", exc, "failed to open destination") from None
        chunks: queue.Queue[bytes | TransferError] = queue.Queue(maxsize=PREFETCH)
        stop = threading.Event()

        def reader() -> None:
            try:
                while not stop.is_set():
                    chunk = fin.read_bytes(CHUNK)
                    chunks.put(chunk)
                    if not chunk:
                        return
            except gerror as exc:
                chunks.put(from_gerror("SOURCE", exc, "read failed"))

        thread = threading.Thread(target=reader, name="fts-read", daemon=True)
        thread.start()
        size = 0
        try:
            while True:
                if req.cancel.is_set():
                    raise TransferError("TRANSFER", errno.ECANCELED, "Transfer canceled", False)
                try:
                    item = chunks.get(timeout=0.5)
                except queue.Empty:
                    continue
                if isinstance(item, TransferError):
                    raise item
                if not item:
                    break
                hasher.update(item)
                try:
                    fout.write(item)
                except gerror as exc:
                    raise from_gerror("DESTINATION", exc, "write failed") from None
                size += len(item)
        except TransferError:
            del fout
            self._safe_unlink(ctx, gdst)
            raise
        finally:
            stop.set()
            deadline = time.monotonic() + 5
            while thread.is_alive() and time.monotonic() < deadline:
                try:
                    chunks.get_nowait()
                except queue.Empty:
                    thread.join(0.05)
            if thread.is_alive():
                log.warning("source read of %s still blocked; abandoning it", gsrc)
        del fout  # closes the handle: gfal2 completes the upload here
        return size, hasher.values()

    def _filecopy(self, ctx: Any, gsrc: str, gdst: str, alg: str | None, user_value: str | None,
                  req: CopyRequest) -> tuple[int, dict[str, str]]:
        """gfal2-managed copy (streamed or third-party, as configured on the context), cancellable."""
        import gfal2

        params = ctx.transfer_parameters()
        params.overwrite = True
        params.create_parent = True
        params.timeout = req.timeout
        if alg and req.verify in ("both", "source"):
            mode = gfal2.checksum_mode.both if req.verify == "both" else gfal2.checksum_mode.source
            params.set_checksum(mode, alg, user_value or "")
        done = threading.Event()

        def watch_cancel() -> None:
            while not done.is_set():
                if req.cancel.wait(0.2):
                    ctx.cancel()
                    return

        watcher = threading.Thread(target=watch_cancel, name="fts-cancel", daemon=True)
        watcher.start()
        try:
            ctx.filecopy(params, gsrc, gdst)
        except gfal2.GError as exc:
            self._safe_unlink(ctx, gdst)
            if req.cancel.is_set():
                raise TransferError("TRANSFER", errno.ECANCELED, "Transfer canceled", False) from None
            raise from_gerror("TRANSFER", exc) from None
        finally:
            done.set()
        try:
            st = ctx.stat(gdst)
        except gfal2.GError as exc:
            raise from_gerror("DESTINATION", exc, "destination missing after copy") from None
        sums: dict[str, str] = {}
        if alg:
            value = _native_checksum(ctx, gdst, alg) or _read_checksum(ctx, gdst, alg)
            sums[alg] = value
        return int(st.st_size), sums

    def _verify(self, ctx: Any, gdst: str, req: CopyRequest, src_size: int, size: int, alg: str | None,
                user_value: str | None, sums: dict[str, str]) -> None:
        gerror = _gerror_type()
        try:
            dst_size = int(ctx.stat(gdst).st_size)
        except gerror as exc:
            raise from_gerror("DESTINATION", exc, "destination missing after copy") from None
        if dst_size != src_size or size != src_size:
            raise TransferError("TRANSFER", errno.EIO,
                                f"size mismatch: source {src_size}, copied {size}, destination {dst_size}", True)
        if not alg:
            return
        got = sums.get(alg)
        if req.verify in ("target", "both"):
            native = self._native(ctx, gdst, alg)
            if native is not None and not checksums.same(alg, native, got):
                raise TransferError("DESTINATION", errno.EIO,
                                    f"Checksum mismatch: destination {alg} {native} != transferred {got}", True)
        if user_value and not checksums.same(alg, user_value, got):
            side = "SOURCE" if req.verify == "source" else "TRANSFER"
            raise TransferError(side, errno.EIO,
                                f"Checksum mismatch: user defined {alg} {user_value} != {got} of the bytes copied",
                                True)

    def _native(self, ctx: Any, url: str, alg: str) -> str | None:
        """Native checksum, remembering hosts that cannot give this algorithm."""
        key = (urls.host_port(url), alg)
        if key in self._no_native:
            return None
        value = _native_checksum(ctx, url, alg)
        if value is None and not url.startswith("file://"):
            self._no_native.add(key)
        return value

    def _safe_unlink(self, ctx: Any, gdst: str) -> None:
        try:
            ctx.unlink(gdst)
            log.info("removed bad destination %s", gdst)
        except _gerror_type():
            pass


def _native_checksum(ctx: Any, url: str, alg: str) -> str | None:
    """The checksum the store itself reports (None when it cannot: e.g. ADLER32 on S3)."""
    if url.startswith("file://"):
        return None
    try:
        return str(ctx.checksum(url, alg)).lower()
    except _gerror_type():
        return None


def _read_checksum(ctx: Any, url: str, alg: str) -> str:
    """Checksum computed by reading the file back."""
    hasher = checksums.StreamingChecksums([alg])
    f = ctx.open(url, "r")
    while True:
        chunk = f.read_bytes(CHUNK)
        if not chunk:
            break
        hasher.update(chunk)
    return hasher.values()[alg]
