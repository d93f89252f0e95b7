"""S3 landing storage with boto3: parallel multipart uploads of any size, never overwriting, verified by the storage.

Every object is sent with its full-object CRC32C (`x-amz-checksum-crc32c`; multipart uploads of checksum type
FULL_OBJECT), which the storage checks against the bytes it received and keeps: a later HEAD with checksum mode
returns it, so the bytes on the storage are verified without reading them back. Where the storage does not return
a full-object CRC32C (objects written by other clients, or a storage without the feature), the adler32 of the
stored bytes is read back.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlparse

import boto3
import google_crc32c
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from cygno_dm.ingest.checksums import Checksums, scan
from cygno_dm.ingest.storage import (
    ObjectExists,
    Progress,
    StorageError,
    StorageUnavailable,
    Stored,
    _adler_stream,
    verify_by_adler32,
)
from cygno_dm.tokens import TokenError, TokenSource

log = logging.getLogger(__name__)

MIB = 1 << 20
STS_ROLE = "arn:aws:iam::000000000000:role/cygno-dm"  # required by the API's syntax; MinIO ignores it
MIN_PART = 5 * MIB  # S3's smallest part (except the last)
MAX_PARTS = 10_000


def plan_parts(size: int, part_size: int = 64 * MIB) -> list[tuple[int, int]]:
    """(offset, length) of each part: at most 10,000 parts of at least 5 MiB; one part for small files."""
    part = max(part_size, MIN_PART, math.ceil(size / MAX_PARTS / MIB) * MIB)
    if size <= part:
        return [(0, size)]
    return [(off, min(part, size - off)) for off in range(0, size, part)]


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def crc32c_b64(hex_value: str) -> str:
    """S3's spelling of a CRC32C (base64 of the 4 big-endian bytes) from our hex spelling."""
    return _b64(bytes.fromhex(hex_value))


def crc32c_hex(s3_value: str | None) -> str | None:
    """Our hex spelling of a full-object S3 CRC32C; None for none or a composite one (`<b64>-<parts>`)."""
    if not s3_value or "-" in s3_value:
        return None
    try:
        return base64.b64decode(s3_value).hex()
    except ValueError:
        return None


def split_pfn(pfn: str) -> tuple[str, str, str]:
    """(endpoint URL, bucket, key) of a path-style S3 PFN (s3:// means plain http)."""
    u = urlparse(pfn)
    scheme = "http" if u.scheme in ("s3", "http") else "https"
    bucket, _, key = unquote(u.path).lstrip("/").partition("/")
    if not bucket or not key:
        raise StorageError(f"{pfn}: not a path-style S3 URL with bucket and key")
    return f"{scheme}://{u.netloc}", bucket, key


class S3Storage:
    """One S3 endpoint (path-style) with a key pair."""

    @property
    def cheap_put_max(self) -> int:
        """Objects up to this size go in one conditional PUT: no HEAD before it (a refused PUT costs little)."""
        return max(self.part_size, MIN_PART)

    def __init__(self, access_key: str | None, secret_key: str | None, region: str = "us-east-1",
                 part_size: int = 64 * MIB, parallel: int = 4, verify_tls: bool | str = True,
                 tokens: TokenSource | None = None) -> None:
        """A key pair, or (`tokens`) temporary keys from the site's STS for bearer tokens of the token source."""
        self.part_size = part_size
        self.parallel = max(1, parallel)
        self._keys = (access_key, secret_key, region)
        self._tokens = tokens
        self._verify = verify_tls
        self._clients: dict[str, object] = {}
        self.vouches: bool | None = None  # whether the storage returned a full-object CRC32C (None: not known yet)

    def _client(self, endpoint: str):
        if endpoint not in self._clients:
            access, secret, region = self._keys
            cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"},
                         connect_timeout=5, read_timeout=120, max_pool_connections=self.parallel + 4,
                         request_checksum_calculation="when_required",
                         response_checksum_validation="when_required")
            if self._tokens is not None:
                self._clients[endpoint] = self._web_identity_session(endpoint).client(
                    "s3", endpoint_url=endpoint, region_name=region, config=cfg, verify=self._verify)
            else:
                self._clients[endpoint] = boto3.session.Session().client(
                    "s3", endpoint_url=endpoint, aws_access_key_id=access, aws_secret_access_key=secret,
                    region_name=region, config=cfg, verify=self._verify)
        return self._clients[endpoint]

    def _web_identity_session(self, endpoint: str) -> boto3.session.Session:
        """A session whose keys come from the site's STS (AssumeRoleWithWebIdentity, as MinIO offers it) for a
        token of the site's host, and are fetched again by botocore before they expire."""
        from botocore import UNSIGNED
        from botocore.credentials import RefreshableCredentials
        from botocore.session import get_session

        region = self._keys[2]
        host = urlparse(endpoint).hostname or ""
        sts = boto3.session.Session().client("sts", endpoint_url=endpoint, region_name=region, verify=self._verify,
                                             config=Config(signature_version=UNSIGNED))

        def fetch() -> dict[str, str]:
            try:
                token = self._tokens.token(host)
            except TokenError as err:
                raise StorageUnavailable(str(err)) from None
            try:
                creds = sts.assume_role_with_web_identity(RoleArn=STS_ROLE, RoleSessionName="cygno-dm",
                                                          WebIdentityToken=token)["Credentials"]
            except ClientError as err:
                error = err.response.get("Error", {})
                raise StorageError(f"{endpoint}: STS refused the token: {error.get('Code')}: "
                                   f"{error.get('Message')}") from None
            except (ConnectionError, HTTPClientError, BotoCoreError) as err:
                raise StorageUnavailable(f"{endpoint}: STS: {err}") from None
            return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                    "token": creds["SessionToken"], "expiry_time": creds["Expiration"].isoformat()}

        session = get_session()
        session._credentials = RefreshableCredentials.create_from_metadata(fetch(), fetch,
                                                                           "assume-role-with-web-identity")
        return boto3.session.Session(botocore_session=session)

    @staticmethod
    def _fail(pfn: str, err: Exception) -> Exception:
        if isinstance(err, ClientError):
            code = err.response.get("Error", {}).get("Code", "")
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
                return ObjectExists(f"{pfn} already exists")
            if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"):
                return StorageUnavailable(f"{pfn}: S3 {status} {code}")
            return StorageError(f"{pfn}: S3 {status} {code}: {err}")
        if isinstance(err, ConnectionError | HTTPClientError | BotoCoreError):
            return StorageUnavailable(f"{pfn}: {err}")
        return err

    def stat(self, pfn: str) -> Stored | None:
        endpoint, bucket, key = split_pfn(pfn)
        try:
            head = self._client(endpoint).head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as err:
            if err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise self._fail(pfn, err) from err
        except Exception as err:
            raise self._fail(pfn, err) from err
        full = head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
        return Stored(head["ContentLength"], head.get("ETag", "").strip('"') or None, dict(head.get("Metadata", {})),
                      crc32c_hex(head.get("ChecksumCRC32C")) if full else None)

    def put(self, path: Path, pfn: str, sums: Checksums, progress: Progress | None = None) -> None:
        """Upload with the scan's checksums declared; the storage checks them against the bytes it receives.

        A single PUT carries Content-MD5 and the CRC32C of the scan; the body read for it is checked against the
        scan's CRC32C first (hardware CRC: no second MD5 pass). Multipart parts carry their CRC32C; their MD5
        (Content-MD5 and the ETag check) is computed only once this storage has shown that it keeps no full-object
        CRC32C. A BadDigest refusal reads the file again to tell a rewritten file (quarantine) from bytes damaged
        on the way (retry). Every upload ends
        verified: the storage's full-object CRC32C equals the scan's, or (a storage that does not vouch) the
        ETag matches, or the stored bytes are read back for their adler32.
        """
        endpoint, bucket, key = split_pfn(pfn)
        s3 = self._client(endpoint)
        parts = plan_parts(sums.size, self.part_size)
        meta = {"adler32": sums.adler32, "md5": sums.md5, "crc32c": sums.crc32c, "partsize": str(parts[0][1])}
        try:
            if len(parts) == 1:
                with open(path, "rb") as f:
                    body = f.read()
                if len(body) != sums.size or f"{google_crc32c.value(body):08x}" != sums.crc32c:
                    raise StorageError(f"{path}: changed since it was checksummed")
                res = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentMD5=_b64(bytes.fromhex(sums.md5)),
                                    ChecksumAlgorithm="CRC32C", ChecksumCRC32C=crc32c_b64(sums.crc32c),
                                    Metadata=meta, IfNoneMatch="*")
                if progress:
                    progress(sums.size)
                expected: str | None = sums.md5
            else:
                res = self._multipart(s3, path, pfn, bucket, key, parts, meta, sums, progress)
                digests = res.pop("digests")
                expected = (f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"
                            if digests else None)
        except (StorageError, StorageUnavailable):
            raise
        except Exception as err:
            if isinstance(err, ClientError) and err.response.get("Error", {}).get("Code") in ("BadDigest",
                                                                                             "InvalidDigest"):
                raise self._bad_digest(path, pfn, sums) from err
            raise self._fail(pfn, err) from err
        etag = res["ETag"].strip('"')
        if expected is not None and etag != expected:
            raise StorageError(f"{pfn}: stored ETag {etag} != expected {expected}")
        # The storage checked our CRC32C against the bytes it received (a mismatch is refused with BadDigest);
        # it must also say so: an answer without it means a storage that ignores checksums.
        vouched = crc32c_hex(res.get("ChecksumCRC32C"))
        if vouched is None:  # not in the answer (multipart completions often): ask with a HEAD
            stored = self.stat(pfn)
            if stored is None or stored.size != sums.size:
                raise StorageError(f"{pfn}: stored size {stored and stored.size} != {sums.size}")
            vouched = stored.crc32c
        if vouched is not None and vouched != sums.crc32c:
            raise StorageError(f"{pfn}: storage CRC32C {vouched} != {sums.crc32c}")
        self.vouches = vouched is not None
        how = "crc32c checked by the storage" if vouched else "etag"
        if vouched is None and expected is None:  # parts sent without MD5 and no storage checksum: read back
            problem, how = verify_by_adler32(self, pfn, sums, "read-back adler32 (no storage checksum)")
            if problem:
                raise StorageError(f"{pfn}: {problem}")
        log.info("%s stored (%d bytes, %d part(s), etag %s, %s)", pfn, sums.size, len(parts), etag, how)

    def _bad_digest(self, path: Path, pfn: str, sums: Checksums) -> Exception:
        """The storage refused the bytes as not matching the declared checksums: the file changed, or the bytes
        were damaged on the way (retry)."""
        try:
            now = scan(path, gzip=False)
        except OSError as err:
            return StorageError(f"{path}: changed since it was checksummed (cannot read it: {err})")
        if (now.size, now.md5, now.crc32c) != (sums.size, sums.md5, sums.crc32c):
            return StorageError(f"{path}: changed since it was checksummed (md5 {now.md5} != {sums.md5})")
        return StorageUnavailable(f"{pfn}: the storage received other bytes than sent (BadDigest): retrying")

    def _multipart(self, s3, path: Path, pfn: str, bucket: str, key: str, parts: list[tuple[int, int]],
                   meta: dict[str, str], sums: Checksums, progress: Progress | None) -> dict:
        self.abort_stale(pfn)
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, Metadata=meta, ChecksumAlgorithm="CRC32C",
                                               ChecksumType="FULL_OBJECT")["UploadId"]
        fd = os.open(path, os.O_RDONLY)
        with_md5 = self.vouches is False  # a storage that keeps full-object CRC32Cs checks the parts by their CRC32C

        def one(num: int, off: int, length: int) -> tuple[bytes | None, str, str]:
            data = os.pread(fd, length, off)
            if len(data) != length:
                raise StorageError(f"{path}: shrank while uploading")
            crc = _b64(google_crc32c.value(data).to_bytes(4, "big"))
            extra = {}
            digest = None
            if with_md5:
                digest = hashlib.md5(data, usedforsecurity=False).digest()
                extra["ContentMD5"] = _b64(digest)
            res = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=num, Body=data,
                                 ChecksumAlgorithm="CRC32C", ChecksumCRC32C=crc, **extra)
            if digest is not None and res["ETag"].strip('"') != digest.hex():
                raise StorageError(f"{pfn}: part {num} ETag {res['ETag']} != md5 {digest.hex()}")
            if progress:
                progress(length)
            return digest, res["ETag"], crc

        try:
            with ThreadPoolExecutor(self.parallel, thread_name_prefix="s3part") as pool:
                done = list(pool.map(lambda p: one(p[0] + 1, *p[1]), enumerate(parts)))
            listing = {"Parts": [{"PartNumber": i + 1, "ETag": etag, "ChecksumCRC32C": crc}
                                 for i, (_, etag, crc) in enumerate(done)]}
            res = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=listing,
                                               ChecksumCRC32C=crc32c_b64(sums.crc32c), ChecksumType="FULL_OBJECT",
                                               IfNoneMatch="*")
        except BaseException:
            try:
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception as err:  # the storage may be down: abort_stale cleans up next time
                log.warning("%s: could not abort multipart upload %s: %s", pfn, upload_id, err)
            raise
        finally:
            os.close(fd)
        return {**res, "digests": [d for d, _, _ in done] if with_md5 else []}

    def abort_stale(self, pfn: str) -> int:
        """Abort unfinished multipart uploads of this key (left by a killed uploader); return how many."""
        endpoint, bucket, key = split_pfn(pfn)
        s3 = self._client(endpoint)
        try:
            uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
            for up in uploads:
                if up["Key"] == key:
                    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"])
                    log.info("%s: aborted stale multipart upload %s", pfn, up["UploadId"])
            return sum(1 for up in uploads if up["Key"] == key)
        except Exception as err:
            raise self._fail(pfn, err) from err

    def adler32(self, pfn: str) -> str:
        endpoint, bucket, key = split_pfn(pfn)
        try:
            body = self._client(endpoint).get_object(Bucket=bucket, Key=key)["Body"]
            return _adler_stream(body.read)
        except Exception as err:
            raise self._fail(pfn, err) from err

    def verify(self, pfn: str, sums: Checksums) -> tuple[str | None, str]:
        """The storage's full-object CRC32C (HEAD, no read) when it keeps one, else the read-back adler32."""
        stored = self.stat(pfn)
        if stored is None:
            return f"no object at {pfn}", "HEAD"
        if stored.size != sums.size:
            return f"size {stored.size} at {pfn} != {sums.size}", "HEAD"
        if stored.crc32c is not None:
            problem = None if stored.crc32c == sums.crc32c else f"CRC32C {stored.crc32c} at {pfn} != {sums.crc32c}"
            return problem, "storage full-object CRC32C"
        return verify_by_adler32(self, pfn, sums, "read-back adler32 (no storage checksum)")
