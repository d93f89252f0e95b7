"""The S3 operations of a testbed site, on the disk store: what boto3, Rucio and gfal2/davix use, and no more.

Buckets (list, create, head, delete), objects (PUT with Content-MD5, x-amz-checksum-*, If-None-Match: *; GET with
Range; HEAD with checksum mode; DELETE; DeleteObjects), listings (V1, V2) and multipart uploads (create, upload
part, list parts, complete, abort, list uploads). Requests reach it authenticated by the gate (s3_gate.py).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from testbed.storage.s3_body import ALGORITHMS, CHUNK, S3Error, bad_request, declared_checksums, receive
from testbed.storage.s3_listing import NS, iso, list_objects
from testbed.storage.s3_state import MAX_PARTS, Obj, Part, Store, Upload

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]
XML = "application/xml"
#: query parameters a GET/HEAD of an object may carry
READ_PARAMS = frozenset({"versionId", "response-content-type", "response-content-disposition"})


def xml(root: str, inner: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}">{inner}</{root}>'.encode()


def error_body(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error>").encode()


def _user_metadata(environ: dict[str, Any]) -> dict[str, str]:
    return {k[len("HTTP_X_AMZ_META_"):].lower().replace("_", "-"): v
            for k, v in environ.items() if k.startswith("HTTP_X_AMZ_META_")}


def _checksum_headers(checksum: dict[str, str]) -> Headers:
    if not checksum:
        return []
    return [(f"x-amz-checksum-{checksum['algorithm'].lower()}", checksum["value"]),
            ("x-amz-checksum-type", checksum["type"])]


def _byte_range(spec: str, size: int) -> tuple[int, int] | None:
    """(first, last) of a `Range: bytes=` header, None when absent; S3Error when unsatisfiable."""
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", spec or "")
    if not spec or not m or not (m[1] or m[2]):
        return None  # ignored, as S3 does with a malformed or multi-range header
    if m[1]:
        first, last = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
    else:
        first, last = max(0, size - int(m[2])), size - 1
    if first >= size or first > last:
        raise S3Error("416 Requested Range Not Satisfiable", "InvalidRange", "The requested range is not satisfiable")
    return first, last


def _file_chunks(segments: list[tuple[Path, int]], first: int, length: int) -> Iterator[bytes]:
    """`length` bytes from offset `first` of the concatenated segments, in chunks of up to 1 MiB."""
    for path, size in segments:
        if first >= size:
            first -= size
            continue
        with open(path, "rb", buffering=0) as f:
            f.seek(first)
            todo = min(length, size - first)
            length -= todo
            while todo > 0:
                data = f.read(min(CHUNK, todo))
                if not data:
                    raise OSError(f"{path}: shorter than recorded")
                todo -= len(data)
                yield data
        first = 0
        if length <= 0:
            return


class S3Api:
    """WSGI-style dispatcher of path-style S3 requests to a `Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, environ: dict[str, Any], start_response: StartResponse, bucket: str | None,
                 key: str | None, params: dict[str, str]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        try:
            status, headers, body = self._dispatch(environ, method, bucket, key, params)
        except Exception as exc:
            if not isinstance(exc, S3Error):
                log.exception("%s %s/%s failed", method, bucket, key)
            err = exc if isinstance(exc, S3Error) else S3Error("500 Internal Server Error", "InternalError",
                                                                f"{type(exc).__name__}: {exc}")
            payload = error_body(err.code, err.message)
            headers = [("Content-Type", XML), ("Content-Length", str(len(payload)))]
            start_response(err.status, headers)
            return [] if method == "HEAD" else [payload]
        if isinstance(body, bytes):
            headers.append(("Content-Length", str(len(body))))
            body = [body]
        start_response(status, headers)
        return body

    def _dispatch(self, env: dict[str, Any], method: str, bucket: str | None, key: str | None,
                  q: dict[str, str]) -> tuple[str, Headers, Any]:
        if bucket is None:
            if method == "GET":
                return self.list_buckets()
        elif key is None:
            if method == "GET" and "uploads" in q:
                return self.list_uploads(bucket, q)
            if method == "GET" and "location" in q:
                self.store.objects(bucket)
                return "200 OK", [("Content-Type", XML)], xml("LocationConstraint", "")
            if method == "GET" and not set(q) - {"list-type", "prefix", "delimiter", "max-keys", "marker",
                                                 "start-after", "continuation-token", "encoding-type",
                                                 "fetch-owner"}:
                return "200 OK", [("Content-Type", XML)], list_objects(bucket, self.store.objects(bucket), q)
            if method == "HEAD" and not q:
                self.store.objects(bucket)
                return "200 OK", [], b""
            if method == "PUT" and not q:
                self.store.create_bucket(bucket)
                return "200 OK", [("Location", f"/{bucket}")], b""
            if method == "DELETE" and not q:
                self.store.delete_bucket(bucket)
                return "204 No Content", [], b""
            if method == "POST" and "delete" in q:
                return self.delete_objects(env, bucket)
        else:
            if "uploadId" in q:
                up = self.store.upload(bucket, key, q["uploadId"])
                if method == "PUT" and "partNumber" in q and not env.get("HTTP_X_AMZ_COPY_SOURCE"):
                    return self.upload_part(env, up, q["partNumber"])
                if method == "POST":
                    return self.complete(env, up)
                if method == "DELETE":
                    self.store.abort(up)
                    return "204 No Content", [], b""
                if method == "GET":
                    return self.list_parts(up)
            elif method == "POST" and "uploads" in q:
                return self.create_upload(env, bucket, key)
            elif not set(q) - {"x-id"} - (READ_PARAMS if method in ("GET", "HEAD") else set()):
                if method == "PUT" and not env.get("HTTP_X_AMZ_COPY_SOURCE"):
                    return self.put_object(env, bucket, key)
                if method in ("GET", "HEAD"):
                    return self.get_object(env, method, bucket, key)
                if method == "DELETE":
                    self.store.objects(bucket)
                    self.store.delete(bucket, key)
                    return "204 No Content", [], b""
        raise S3Error("501 Not Implemented", "NotImplemented",
                      f"{method} {'/'.join(filter(None, (bucket, key)))}?{'&'.join(sorted(q))}: not offered by this "
                      "testbed site")

    # ---- objects ----------------------------------------------------------------------------------------------
    def _receive(self, env: dict[str, Any], extra: tuple[str, ...] = ()) -> tuple[Any, Path]:
        fd, path = self.store.new_incoming()
        try:
            received = receive(env, fd, extra)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        return received, path

    def put_object(self, env: dict[str, Any], bucket: str, key: str) -> tuple[str, Headers, bytes]:
        self.store.objects(bucket)
        received, path = self._receive(env)
        declared = [a for a in ALGORITHMS if a in declared_checksums(env) or a == _trailer_algorithm(env)]
        checksum = ({"algorithm": declared[0], "value": received.checksums[declared[0]], "type": "FULL_OBJECT"}
                    if declared else {})
        obj = Obj(key, received.size, received.md5.hex(), time.time(), [], _user_metadata(env),
                  env.get("CONTENT_TYPE") or "binary/octet-stream", checksum)
        try:
            self.store.commit(bucket, obj, [(path, received.size)], env.get("HTTP_IF_NONE_MATCH", "").strip() == "*")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return "200 OK", [("ETag", f'"{obj.etag}"'), *_checksum_headers(checksum)[:1]], b""

    def get_object(self, env: dict[str, Any], method: str, bucket: str, key: str) -> tuple[str, Headers, Any]:
        obj, segments = self.store.get(bucket, key)
        headers = [("ETag", f'"{obj.etag}"'), ("Last-Modified", formatdate(obj.modified, usegmt=True)),
                   ("Content-Type", obj.content_type), ("Accept-Ranges", "bytes"),
                   *((f"x-amz-meta-{k}", v) for k, v in obj.metadata.items())]
        span = _byte_range(env.get("HTTP_RANGE", ""), obj.size) if method == "GET" else None
        if span is None and env.get("HTTP_X_AMZ_CHECKSUM_MODE", "").upper() == "ENABLED":
            headers += _checksum_headers(obj.checksum)
        first, last = span or (0, obj.size - 1)
        headers.append(("Content-Length", str(last - first + 1)))
        if span:
            headers.append(("Content-Range", f"bytes {first}-{last}/{obj.size}"))
        status = "206 Partial Content" if span else "200 OK"
        return status, headers, [] if method == "HEAD" else _file_chunks(segments, first, last - first + 1)

    def delete_objects(self, env: dict[str, Any], bucket: str) -> tuple[str, Headers, bytes]:
        self.store.objects(bucket)
        body = env["wsgi.input"].read(min(int(env.get("CONTENT_LENGTH") or 0), 1 << 20))
        done = []
        for key in re.findall(rb"<Key>(.*?)</Key>", body, re.S):
            name = _unxml(key.decode())
            self.store.delete(bucket, name)
            done.append(f"<Deleted><Key>{escape(name)}</Key></Deleted>")
        return "200 OK", [("Content-Type", XML)], xml("DeleteResult", "".join(done))

    def list_buckets(self) -> tuple[str, Headers, bytes]:
        names = sorted(self.store.buckets)
        inner = "".join(f"<Bucket><Name>{escape(n)}</Name><CreationDate>{iso(0)}</CreationDate></Bucket>"
                        for n in names)
        return "200 OK", [("Content-Type", XML)], xml(
            "ListAllMyBucketsResult", f"<Owner><ID>site</ID></Owner><Buckets>{inner}</Buckets>")

    # ---- multipart uploads ------------------------------------------------------------------------------------
    def create_upload(self, env: dict[str, Any], bucket: str, key: str) -> tuple[str, Headers, bytes]:
        algorithm = (env.get("HTTP_X_AMZ_CHECKSUM_ALGORITHM") or "").upper() or None
        if algorithm and algorithm not in ALGORITHMS:
            raise bad_request("InvalidRequest", f"x-amz-checksum-algorithm: {algorithm} is not supported here")
        ctype = (env.get("HTTP_X_AMZ_CHECKSUM_TYPE") or "").upper() or None
        if ctype == "FULL_OBJECT" and algorithm not in ("CRC32C", "CRC32"):
            raise bad_request("InvalidRequest", "x-amz-checksum-type: FULL_OBJECT needs CRC32C or CRC32")
        up = Upload(secrets.token_urlsafe(24), bucket, key, time.time(), _user_metadata(env),
                    env.get("CONTENT_TYPE") or "binary/octet-stream", algorithm, ctype or (algorithm and "COMPOSITE"))
        self.store.create_upload(up)
        inner = f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key><UploadId>{up.id}</UploadId>"
        headers = [("Content-Type", XML)]
        if algorithm:
            headers += [("x-amz-checksum-algorithm", algorithm), ("x-amz-checksum-type", up.checksum_type or "")]
        return "200 OK", headers, xml("InitiateMultipartUploadResult", inner)

    def upload_part(self, env: dict[str, Any], up: Upload, number: str) -> tuple[str, Headers, bytes]:
        if not number.isdigit() or not 1 <= int(number) <= MAX_PARTS:
            raise bad_request("InvalidArgument", f"partNumber: must be an integer in 1..{MAX_PARTS}")
        received, path = self._receive(env, (up.algorithm,) if up.algorithm else ())
        value = received.checksums.get(up.algorithm) if up.algorithm else None
        try:
            self.store.put_part(up, Part(int(number), received.size, received.md5.hex(), received.crc32c, value),
                                path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        headers = [("ETag", f'"{received.md5.hex()}"')]
        if value:
            headers.append((f"x-amz-checksum-{up.algorithm.lower()}", value))
        return "200 OK", headers, b""

    def complete(self, env: dict[str, Any], up: Upload) -> tuple[str, Headers, bytes]:
        body = env["wsgi.input"].read(min(int(env.get("CONTENT_LENGTH") or 0), 4 << 20))
        listed = _listed_parts(body)
        obj = self.store.complete(up, listed, declared_checksums(env), env.get("HTTP_IF_NONE_MATCH", "").strip() == "*")
        inner = (f"<Location>/{escape(up.bucket)}/{escape(up.key)}</Location><Bucket>{escape(up.bucket)}</Bucket>"
                 f"<Key>{escape(up.key)}</Key><ETag>&quot;{obj.etag}&quot;</ETag>")
        if obj.checksum:
            inner += (f"<Checksum{obj.checksum['algorithm']}>{obj.checksum['value']}"
                      f"</Checksum{obj.checksum['algorithm']}><ChecksumType>{obj.checksum['type']}</ChecksumType>")
        return "200 OK", [("Content-Type", XML)], xml("CompleteMultipartUploadResult", inner)

    def list_parts(self, up: Upload) -> tuple[str, Headers, bytes]:
        parts = "".join(f"<Part><PartNumber>{p.number}</PartNumber><ETag>&quot;{p.etag}&quot;</ETag>"
                        f"<Size>{p.size}</Size></Part>" for _, p in sorted(up.parts.items()))
        inner = (f"<Bucket>{escape(up.bucket)}</Bucket><Key>{escape(up.key)}</Key><UploadId>{up.id}</UploadId>"
                 f"<IsTruncated>false</IsTruncated>{parts}")
        return "200 OK", [("Content-Type", XML)], xml("ListPartsResult", inner)

    def list_uploads(self, bucket: str, q: dict[str, str]) -> tuple[str, Headers, bytes]:
        self.store.objects(bucket)
        prefix = q.get("prefix", "")
        url = q.get("encoding-type") == "url"
        ups = sorted((u for u in list(self.store.uploads.values()) if u.bucket == bucket and u.key.startswith(prefix)),
                     key=lambda u: (u.key, u.initiated))
        inner = "".join(f"<Upload><Key>{escape(quote(u.key, safe='/') if url else u.key)}</Key>"
                        f"<UploadId>{u.id}</UploadId><Initiated>{iso(u.initiated)}</Initiated></Upload>"
                        for u in ups)
        return "200 OK", [("Content-Type", XML)], xml(
            "ListMultipartUploadsResult", f"<Bucket>{escape(bucket)}</Bucket><Prefix>{escape(prefix)}</Prefix>"
            f"{'<EncodingType>url</EncodingType>' if url else ''}<IsTruncated>false</IsTruncated>{inner}")


def _trailer_algorithm(env: dict[str, Any]) -> str | None:
    trailer = env.get("HTTP_X_AMZ_TRAILER", "").strip().lower()
    return trailer[len("x-amz-checksum-"):].upper() if trailer.startswith("x-amz-checksum-") else None


def _listed_parts(body: bytes) -> list[tuple[int, str]]:
    """(PartNumber, ETag) of each Part of a CompleteMultipartUpload document."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise bad_request("MalformedXML", "CompleteMultipartUpload: the body is not well-formed XML") from None
    out = []
    for part in (e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Part"):
        fields = {c.tag.rsplit("}", 1)[-1]: (c.text or "").strip() for c in part}
        if not fields.get("PartNumber", "").isdigit():
            raise bad_request("MalformedXML", "CompleteMultipartUpload: a Part has no PartNumber")
        out.append((int(fields["PartNumber"]), fields.get("ETag", "")))
    return out


def _unxml(text: str) -> str:
    from xml.sax.saxutils import unescape

    return unescape(text, {"&quot;": '"', "&apos;": "'"})
