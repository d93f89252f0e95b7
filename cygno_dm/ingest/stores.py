"""Pick the storage client of an RSE from the profile and the PFN's scheme."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from cygno_dm.ingest.checksums import Checksums
from cygno_dm.ingest.storage import PosixStorage, Storage, StorageError, Stored, multipart_etag
from cygno_dm.profile import Profile
from cygno_dm.tokens import TokenSource

log = logging.getLogger(__name__)


CA_ENV = "CYGNO_DM_CA"


def tls_verify() -> bool | str:
    """CA bundle or directory for HTTPS storage: $CYGNO_DM_CA, else $X509_CERT_DIR, else the system CAs."""
    return os.environ.get(CA_ENV) or os.environ.get("X509_CERT_DIR") or True


def ca_bundle(verify: bool | str) -> bool | str:
    """A CA *file* for clients that take no directory (boto3): a CA directory's certificates, concatenated."""
    if not isinstance(verify, str) or not os.path.isdir(verify):
        return verify
    pems = []
    for entry in sorted(Path(verify).iterdir()):
        try:
            text = entry.read_text(errors="ignore") if entry.is_file() else ""
        except OSError:
            continue
        if "BEGIN CERTIFICATE" in text and text not in pems:
            pems.append(text)
    digest = hashlib.sha256("".join(pems).encode()).hexdigest()[:16]
    bundle = Path(tempfile.gettempdir()) / f"cygno-dm-ca-{digest}.pem"
    if not bundle.exists():
        # A temporary name of its own per call: threads and processes may race here, each renames a whole file.
        fd, tmp = tempfile.mkstemp(prefix=f"{bundle.name}.", suffix=".tmp", dir=bundle.parent)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(pems))
        os.chmod(tmp, 0o644)
        os.replace(tmp, bundle)
    return str(bundle)


class Stores:
    """Storage clients per RSE, built once from the profile (S3 credentials) and reused."""

    def __init__(self, profile: Profile, part_size: int = 64 << 20, parallel: int = 4,
                 tokens: TokenSource | None = None) -> None:
        self.profile = profile
        self.part_size = part_size
        self.parallel = parallel
        self.tokens = tokens  # bearer tokens (gfal2 storage) and STS keys (S3) instead of certificates and keys
        self._cache: dict[tuple[str, str], Storage] = {}

    def for_pfn(self, rse: str, pfn: str) -> Storage:
        """The client that reads/writes `pfn` on `rse`."""
        scheme = pfn.split(":", 1)[0]
        key = (rse, scheme)
        if key not in self._cache:
            self._cache[key] = self._make(rse, scheme)
        return self._cache[key]

    def _make(self, rse: str, scheme: str) -> Storage:
        conf = self.profile.rses.get(rse)
        if scheme == "file":
            return PosixStorage()
        if conf is not None and conf.kind == "s3" and scheme in ("s3", "http", "https"):
            from cygno_dm.ingest.s3 import S3Storage

            creds = conf.credentials
            if self.tokens is not None:  # temporary keys from the site's STS for our tokens
                return S3Storage(None, None, creds.get("region", "us-east-1"), part_size=self.part_size,
                                 parallel=self.parallel, verify_tls=ca_bundle(tls_verify()), tokens=self.tokens)
            if not creds.get("access_key") or not creds.get("secret_key"):
                raise StorageError(f"profile: rses.{rse}.credentials needs access_key and secret_key for S3")
            return S3Storage(creds["access_key"], creds["secret_key"], creds.get("region", "us-east-1"),
                             part_size=self.part_size, parallel=self.parallel, verify_tls=ca_bundle(tls_verify()))
        from cygno_dm.ingest.davs import GfalStorage

        return GfalStorage(tokens=self.tokens)


def differs(store: Storage, pfn: str, stored: Stored, path: Path, sums: Checksums) -> str | None:
    """None when the object at pfn holds exactly the bytes of `path`, else what differs."""
    if stored.size != sums.size:
        return f"size {stored.size} at {pfn} != local {sums.size}"
    if stored.meta.get("adler32") and stored.etag:  # our own S3 upload: metadata plus the server's ETag
        if stored.meta["adler32"] != sums.adler32 or stored.meta.get("md5") != sums.md5:
            return f"checksums recorded at {pfn} ({stored.meta['adler32']}) != local ({sums.adler32})"
        if "-" in stored.etag:
            expected = multipart_etag(path, int(stored.meta.get("partsize", "0") or 0) or sums.size)
        else:
            expected = sums.md5
        return None if stored.etag == expected else f"ETag {stored.etag} at {pfn} != local {expected}"
    remote = store.adler32(pfn)
    return None if remote == sums.adler32 else f"adler32 {remote} at {pfn} != local {sums.adler32}"
