"""Checksums computed while streaming, and RFC 3230 Want-Digest / Digest headers."""

from __future__ import annotations

import base64
import hashlib
import zlib

SUPPORTED = ("adler32", "md5")


class StreamDigest:
    """Running adler32 and md5 of a byte stream."""

    def __init__(self) -> None:
        self._adler = 1
        self._md5 = hashlib.md5()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        """Feed the next chunk of the stream."""
        self._adler = zlib.adler32(chunk, self._adler)
        self._md5.update(chunk)
        self.size += len(chunk)

    @property
    def adler32(self) -> str:
        """Adler-32 as 8 lower-case hex digits."""
        return f"{self._adler & 0xFFFFFFFF:08x}"

    @property
    def md5(self) -> str:
        """MD5 as 32 lower-case hex digits."""
        return self._md5.hexdigest()


def parse_want_digest(header: str | None) -> list[str]:
    """Return the supported algorithms a Want-Digest header asks for, best first (q=0 dropped)."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for pos, item in enumerate(header.split(",")):
        fields = [f.strip() for f in item.split(";")]
        name = fields[0].lower()
        q = 1.0
        for f in fields[1:]:
            if f.lower().startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        if name in SUPPORTED and q > 0:
            ranked.append((-q, pos, name))
    return [name for _, _, name in sorted(ranked)]


def digest_header(algorithms: list[str], adler32: str, md5: str) -> str | None:
    """Return the RFC 3230 Digest header value for the wanted algorithms (md5 base64, adler32 hex)."""
    values = []
    for name in algorithms:
        if name == "adler32":
            values.append(f"adler32={adler32}")
        elif name == "md5":
            values.append("md5=" + base64.b64encode(bytes.fromhex(md5)).decode())
    return ",".join(values) or None


def parse_digest(header: str | None) -> dict[str, str]:
    """Return {algorithm: hex value} for the supported entries of a Digest header sent by a client."""
    out: dict[str, str] = {}
    if not header:
        return out
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        name = name.strip().lower()
        value = value.strip()
        if name == "adler32" and value:
            out[name] = value.lower().zfill(8)
        elif name == "md5" and value:
            try:
                out[name] = base64.b64decode(value, validate=True).hex()
            except ValueError:
                out[name] = value.lower()
    return out
