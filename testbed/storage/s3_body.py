"""Request bodies of an S3 site: streamed to a file in 1 MiB chunks and hashed on the way, at C speed.

Every body gets its MD5 (the ETag) and CRC32C (to combine per-part CRCs into a full-object one); the checksum a
client declares (x-amz-checksum-*, in a header or an aws-chunked trailer) and a signed payload hash
(x-amz-content-sha256) are computed in the same pass. Nothing is held in memory beyond one chunk.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import crc32c

CHUNK = 1 << 20
#: x-amz-checksum-<name> algorithms this site checks and keeps
ALGORITHMS = ("CRC32C", "CRC32", "SHA1", "SHA256")
#: reflected polynomials of the CRCs whose full-object value is combined from per-part values
CRC_POLY = {"CRC32C": 0x82F63B78, "CRC32": 0xEDB88320}


class S3Error(Exception):
    """A request refused with an S3 error: HTTP status, S3 code, one-line message."""

    def __init__(self, status: str, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad_request(code: str, message: str) -> S3Error:
    return S3Error("400 Bad Request", code, message)


class _Crc:
    """hashlib-style wrapper of a 32-bit CRC (crc32c: SSE4.2; zlib: CRC32)."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.value = fn, 0

    def update(self, data: Any) -> None:
        self.value = self.fn(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def new_hash(algorithm: str) -> Any:
    """A hashlib-style object for an x-amz-checksum algorithm."""
    if algorithm == "CRC32C":
        return _Crc(crc32c.crc32c)
    if algorithm == "CRC32":
        return _Crc(zlib.crc32)
    return hashlib.new(algorithm.lower())


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def crc_combine(crc1: int, crc2: int, len2: int, poly: int) -> int:
    """The CRC of A+B from crc(A), crc(B) and len(B), without the bytes (zlib's GF(2) matrix method)."""
    def times(mat: list[int], vec: int) -> int:
        out, i = 0, 0
        while vec:
            if vec & 1:
                out ^= mat[i]
            vec >>= 1
            i += 1
        return out

    def square(mat: list[int]) -> list[int]:
        return [times(mat, mat[n]) for n in range(32)]

    if len2 <= 0:
        return crc1
    odd = [poly] + [1 << n for n in range(31)]  # one zero bit
    even = square(odd)  # two zero bits
    odd = square(even)  # four zero bits
    while True:
        even = square(odd)
        if len2 & 1:
            crc1 = times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = square(even)
        if len2 & 1:
            crc1 = times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


@dataclass
class Received:
    """What was streamed to disk: size, MD5, CRC32C, the declared algorithms' values (base64)."""

    size: int
    md5: bytes
    crc32c: int
    checksums: dict[str, str] = field(default_factory=dict)


def declared_checksums(environ: dict[str, Any]) -> dict[str, str]:
    """{algorithm: base64} from the x-amz-checksum-* headers; an unknown algorithm is refused."""
    out = {}
    for name, value in environ.items():
        if name.startswith("HTTP_X_AMZ_CHECKSUM_") and name not in ("HTTP_X_AMZ_CHECKSUM_TYPE",
                                                                    "HTTP_X_AMZ_CHECKSUM_ALGORITHM",
                                                                    "HTTP_X_AMZ_CHECKSUM_MODE"):
            algorithm = name[len("HTTP_X_AMZ_CHECKSUM_"):]
            if algorithm not in ALGORITHMS:
                raise bad_request("InvalidRequest", f"x-amz-checksum-{algorithm.lower()}: not supported here "
                                                    f"(use one of {', '.join(ALGORITHMS)})")
            out[algorithm] = value
    return out


def receive(environ: dict[str, Any], fd: int, extra: tuple[str, ...] = ()) -> Received:
    """Stream the request body into `fd`, checking what the client declared; S3Error (nothing kept) if refused.

    Checks Content-MD5, x-amz-checksum-* (header or aws-chunked trailer) and a hex x-amz-content-sha256;
    `extra` names algorithms to compute anyway (a multipart upload's).
    """
    declared = declared_checksums(environ)
    sha256 = environ.get("HTTP_X_AMZ_CONTENT_SHA256", "")
    chunked = "aws-chunked" in environ.get("HTTP_CONTENT_ENCODING", "") or sha256.startswith("STREAMING-")
    if chunked and sha256 != "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
        raise bad_request("NotImplemented", f"x-amz-content-sha256: {sha256} is not supported here "
                                            "(send a plain body or STREAMING-UNSIGNED-PAYLOAD-TRAILER)")
    trailer = environ.get("HTTP_X_AMZ_TRAILER", "").strip().lower()
    trailer_alg = trailer[len("x-amz-checksum-"):].upper() if trailer.startswith("x-amz-checksum-") else None
    if trailer and trailer_alg not in ALGORITHMS:
        raise bad_request("InvalidRequest", f"x-amz-trailer: {trailer} is not supported here")
    algorithms = set(declared) | set(extra) | ({trailer_alg} if trailer_alg else set())
    hashes = {a: new_hash(a) for a in algorithms if a != "CRC32C"}
    md5, crc = hashlib.md5(usedforsecurity=False), 0
    payload = hashlib.sha256() if len(sha256) == 64 else None
    stream: BinaryIO = environ["wsgi.input"]
    size = 0

    def take(length: int | None) -> None:
        """Stream `length` bytes (None: up to the end of the body)."""
        nonlocal size, crc
        while length is None or length > 0:
            data = stream.read(CHUNK if length is None else min(CHUNK, length))
            if not data and length is None:
                return
            if not data:
                raise bad_request("IncompleteBody", "The request body ended before Content-Length bytes")
            md5.update(data)
            crc = crc32c.crc32c(data, crc)
            for h in hashes.values():
                h.update(data)
            if payload is not None:
                payload.update(data)
            os.write(fd, data)  # a regular file: one write takes it all
            size += len(data)
            if length is not None:
                length -= len(data)

    trailers: dict[str, str] = {}
    if chunked:
        while True:
            line = stream.readline(4096).split(b";", 1)[0].strip()
            try:
                length = int(line, 16)
            except ValueError:
                raise bad_request("IncompleteBody", "malformed aws-chunked body") from None
            if length == 0:
                break
            take(length)
            stream.readline(16)  # CRLF after the chunk
        for _ in range(16):
            line = stream.readline(4096).strip()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            trailers[name.strip().lower()] = value.strip()
        if trailer_alg and trailer in trailers:
            declared[trailer_alg] = trailers[trailer]
        decoded = environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH")
        if decoded and int(decoded) != size:
            raise bad_request("IncompleteBody", "x-amz-decoded-content-length does not match the body")
    elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        take(None)
    else:
        take(int(environ.get("CONTENT_LENGTH") or 0))
    values = {a: b64(h.digest()) for a, h in hashes.items()}
    values["CRC32C"] = b64(crc.to_bytes(4, "big"))
    if payload is not None and payload.hexdigest() != sha256:
        raise S3Error("403 Forbidden", "XAmzContentSHA256Mismatch",  # the signed body is not this one
                      "The provided 'x-amz-content-sha256' header does not match what was computed.")
    content_md5 = environ.get("HTTP_CONTENT_MD5")
    if content_md5 and content_md5 != b64(md5.digest()):
        raise bad_request("BadDigest", "The Content-MD5 you specified did not match what we received.")
    for algorithm, value in declared.items():
        if values[algorithm] != value:
            raise bad_request("BadDigest", f"The {algorithm} you specified did not match the calculated checksum.")
    kept = {a: values[a] for a in algorithms}
    return Received(size, md5.digest(), crc, kept)
