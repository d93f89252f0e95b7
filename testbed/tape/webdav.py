"""WebDAV data access: GET (ranges), PUT, HEAD, DELETE, MKCOL, PROPFIND, MOVE, OPTIONS, RFC 3230 digests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from email.utils import formatdate
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request, Response

from testbed.tape import fsio
from testbed.tape.checksums import digest_header, parse_digest, parse_want_digest
from testbed.tape.davxml import multistatus
from testbed.tape.namespace import Namespace
from testbed.tape.paths import BadPath, normalize
from testbed.tape.problems import Problem
from testbed.tape.store import DirRecord, FileRecord

log = logging.getLogger(__name__)

ALLOW = "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, PROPFIND, MOVE"


def _stream(fh: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    try:
        fh.seek(start)
        left = length
        while left > 0:
            chunk = fh.read(min(fsio.CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        fh.close()


class WebDav:
    """Handles the data requests of the namespace."""

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns

    def handle(self, req: Request, path: str) -> Response:
        """Dispatch one WebDAV request for the canonical path ``path``."""
        handler = getattr(self, "do_" + req.method.upper(), None)
        if handler is None:
            raise Problem(405, f"method {req.method} is not supported", {"Allow": ALLOW})
        return handler(req, path)

    def _file_headers(self, req: Request, rec: FileRecord) -> dict[str, str]:
        headers = {"ETag": f'"{rec.file_id}"', "Last-Modified": formatdate(rec.mtime, usegmt=True),
                   "Accept-Ranges": "bytes"}
        digest = digest_header(parse_want_digest(req.headers.get("Want-Digest")), rec.adler32, rec.md5)
        if digest:
            headers["Digest"] = digest
        return headers

    def do_OPTIONS(self, req: Request, path: str) -> Response:
        """Announce the supported methods and WebDAV class 1."""
        return Response(b"", 200, {"Allow": ALLOW, "DAV": "1", "MS-Author-Via": "DAV"})

    def do_HEAD(self, req: Request, path: str) -> Response:
        """Return the metadata of a file (works for files on tape only too)."""
        entry = self.ns.lookup(path)
        if entry is None:
            raise Problem(404, f"{path} does not exist")
        if isinstance(entry, DirRecord):
            return Response(b"", 200, content_type="text/plain")
        resp = Response(b"", 200, self._file_headers(req, entry), content_type="application/octet-stream")
        resp.headers["Content-Length"] = str(entry.size)
        return resp

    def do_GET(self, req: Request, path: str) -> Response:
        """Return a file (or one byte range of it); a file only on tape fails with 503."""
        entry = self.ns.lookup(path)
        if entry is None:
            raise Problem(404, f"{path} does not exist")
        if isinstance(entry, DirRecord):
            dirs, files = self.ns.store.children(path)
            names = [d.name + "/" for d in dirs] + [f.name for f in files]
            return Response("\n".join(names) + ("\n" if names else ""), 200, content_type="text/plain")
        rec, fh = self.ns.open_for_read(path)
        headers = self._file_headers(req, rec)
        start, length, status = 0, rec.size, 200
        rng = req.range
        if rng is not None and rng.units == "bytes" and len(rng.ranges) == 1:
            bounds = rng.range_for_length(rec.size)
            if bounds is None:
                fh.close()
                raise Problem(416, f"range {req.headers.get('Range')} not satisfiable",
                              {"Content-Range": f"bytes */{rec.size}"})
            start, length, status = bounds[0], bounds[1] - bounds[0], 206
            headers["Content-Range"] = f"bytes {bounds[0]}-{bounds[1] - 1}/{rec.size}"
        resp = Response(_stream(fh, start, length), status, headers, content_type="application/octet-stream",
                        direct_passthrough=True)
        resp.headers["Content-Length"] = str(length)
        return resp

    def do_PUT(self, req: Request, path: str) -> Response:
        """Store a file: streamed to a temporary name, checksummed, then renamed into the buffer."""
        self.ns.check_writable(path)
        tmp = fsio.temp_path(self.ns.config.tmp_dir, "upload")
        try:
            try:
                digest = fsio.receive(req.stream, tmp)
            except ClientDisconnected as exc:
                log.warning("upload of %s aborted by the client: nothing stored", path)
                raise Problem(400, f"upload of {path} ended before its Content-Length") from exc
            expected = req.content_length
            if expected is not None and digest.size != expected:
                log.warning("upload of %s aborted by the client: nothing stored", path)
                raise Problem(400, f"received {digest.size} bytes, Content-Length said {expected}")
            sent = parse_digest(req.headers.get("Digest"))
            for name, value in sent.items():
                if getattr(digest, name) != value:
                    raise Problem(409, f"{name} mismatch: client sent {value}, server computed "
                                       f"{getattr(digest, name)}")
            created = self.ns.commit_upload(path, tmp, digest)
        finally:
            tmp.unlink(missing_ok=True)
        return Response(b"", 201 if created else 204)

    def do_DELETE(self, req: Request, path: str) -> Response:
        """Delete a file with all its copies, or an empty collection."""
        self.ns.delete(path)
        return Response(b"", 204)

    def do_MKCOL(self, req: Request, path: str) -> Response:
        """Create a collection."""
        if req.content_length:
            raise Problem(415, "MKCOL with a body is not supported")
        if path == "/":
            raise Problem(405, "the root collection exists")
        self.ns.mkcol(path)
        return Response(b"", 201)

    def do_MOVE(self, req: Request, path: str) -> Response:
        """Rename a file within the namespace."""
        dest = req.headers.get("Destination")
        if not dest:
            raise Problem(400, "MOVE needs a Destination header")
        try:
            target = normalize(unquote(urlsplit(dest).path))
        except BadPath as exc:
            raise Problem(400, f"Destination: {exc}") from exc
        overwrite = req.headers.get("Overwrite", "T").strip().upper() != "F"
        created = self.ns.move(path, target, overwrite)
        return Response(b"", 201 if created else 204)

    def do_PROPFIND(self, req: Request, path: str) -> Response:
        """Describe a file or a collection (Depth 0) and its children (Depth 1)."""
        depth = req.headers.get("Depth", "1").strip().lower()
        if depth not in ("0", "1"):
            raise Problem(403, "PROPFIND with Depth infinity is not supported; use 0 or 1")
        req.get_data()
        entry = self.ns.lookup(path)
        if entry is None:
            raise Problem(404, f"{path} does not exist")
        entries: list[FileRecord | DirRecord] = [entry]
        if depth == "1" and isinstance(entry, DirRecord):
            dirs, files = self.ns.store.children(path)
            entries.extend(dirs)
            entries.extend(files)
        return Response(multistatus(entries), 207, content_type='application/xml; charset="utf-8"')
